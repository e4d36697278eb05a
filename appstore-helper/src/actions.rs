//! Carrying out a checked request with `pct`, always as an argv (never a shell), with a cleared
//! environment; a script's secrets travel in `pct`'s environment, which `--keep-env 1` hands to the
//! container, never on a command line.

use crate::checks::{self, Refusal};
use crate::config::HelperConfig;
use crate::protocol::{Reply, ReplyError, Request};
use appstore_core::pve_config::PveConfig;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The helper for one config.
#[derive(Debug, Clone)]
pub struct Helper {
    config: HelperConfig,
    peer: String,
}

fn failed(code: &str, message: impl Into<String>) -> Reply {
    Reply::Failed {
        ok: false,
        error: ReplyError {
            code: code.into(),
            message: message.into(),
        },
    }
}

fn refused(r: Refusal) -> Reply {
    failed(r.code, r.message)
}

fn done() -> Reply {
    Reply::Done {
        ok: true,
        exit_code: None,
        status: None,
    }
}

/// What running `pct` gave.
struct PctRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Helper {
    /// A helper acting for `peer` (recorded in the audit log).
    pub fn new(config: HelperConfig, peer: impl Into<String>) -> Self {
        Helper {
            config,
            peer: peer.into(),
        }
    }

    fn pct(&self) -> Command {
        let mut c = Command::new(&self.config.pct);
        c.env_clear()
            .env("PATH", PATH)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        c
    }

    fn run_pct(&self, args: &[String]) -> Result<PctRun, String> {
        let out = self
            .pct()
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.config.pct.display()))?;
        Ok(PctRun {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// `run_pct` with a time limit: past it the process is killed and the run fails.
    fn run_pct_limited(&self, args: &[String], limit: Duration) -> Result<PctRun, String> {
        use std::io::Read;
        let mut child = self
            .pct()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.config.pct.display()))?;
        let read = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_string(&mut text);
                }
                text
            })
        };
        let out = read(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = read(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = child.kill();
                    std::thread::spawn(move || child.wait());
                    return Err(format!(
                        "`pct {}` took longer than {} s and was stopped",
                        args.join(" "),
                        limit.as_secs()
                    ));
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        Ok(PctRun {
            code: status.code(),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }

    fn pct_ok(&self, args: Vec<String>) -> Result<String, Reply> {
        let run = self.run_pct(&args).map_err(|e| failed("failed", e))?;
        if run.code == Some(0) {
            Ok(run.stdout)
        } else {
            Err(failed(
                "failed",
                format!(
                    "pct {} failed: {}",
                    args.first().map(String::as_str).unwrap_or(""),
                    run.stderr.trim()
                ),
            ))
        }
    }

    /// Checks and carries out `req`; `emit` receives output lines and the final reply. Every action is
    /// audited.
    pub fn handle(&self, req: &Request, emit: &mut dyn FnMut(&Reply)) {
        let ctid = req.ctid();
        let reply = match self.prepare(req) {
            Err(r) => refused(r),
            Ok(conf) => self.act(req, &conf, emit),
        };
        let (outcome, detail) = match &reply {
            Reply::Done {
                exit_code, status, ..
            } => ("ok", json!({"exit_code": exit_code, "status": status})),
            Reply::Failed { error, .. }
                if matches!(
                    error.code.as_str(),
                    "bad_request" | "boundary" | "not_allowed"
                ) =>
            {
                (
                    "refused",
                    json!({"code": error.code, "message": error.message}),
                )
            }
            Reply::Failed { error, .. } => (
                "failed",
                json!({"code": error.code, "message": error.message}),
            ),
            Reply::Output { .. } => ("ok", json!(null)),
        };
        let detail = match req {
            Request::RunScript { script, env, .. } => {
                json!({"script": script, "env_names": env.keys().collect::<Vec<_>>(), "result": detail})
            }
            Request::Push { dest, .. } => json!({"dest": dest, "result": detail}),
            _ => detail,
        };
        crate::audit::record(
            &self.config.audit_log,
            &self.peer,
            req.name(),
            ctid,
            outcome,
            detail,
        );
        emit(&reply);
    }

    /// The boundary and every argument, before anything happens.
    fn prepare(&self, req: &Request) -> Result<PveConfig, Refusal> {
        let ctid = req.ctid();
        checks::ctid(ctid)?;
        let conf = checks::read_config(&self.config, ctid)?;
        checks::boundary(&self.config, ctid, &conf)?;
        match req {
            Request::RunScript {
                script,
                env,
                timeout_sec,
                ..
            } => {
                checks::script_path(script)?;
                for name in env.keys() {
                    checks::env_name(name)?;
                }
                if *timeout_sec == 0 || *timeout_sec > 86_400 {
                    return Err(Refusal {
                        code: "bad_request",
                        message: "timeout_sec must be 1..=86400".into(),
                    });
                }
            }
            Request::Push {
                source,
                dest,
                perms,
                ..
            } => {
                checks::host_path_below(source, &self.config.job_root, "source")?;
                checks::container_path(dest)?;
                checks::mode(perms)?;
            }
            Request::MakeDir { path, .. } | Request::RemovePath { path, .. } => {
                checks::container_path(path)?;
            }
            Request::AttachDevices { devices, .. } => {
                for d in devices {
                    checks::device(&self.config, &d.path)?;
                    if let Some(m) = &d.mode {
                        checks::mode(m)?;
                    }
                }
            }
            Request::InspectDevices { paths, .. } => {
                for p in paths {
                    checks::device_path(&self.config, p)?;
                }
            }
            Request::DetachDevices { paths, .. } => {
                for p in paths {
                    checks::device_path(&self.config, p)?;
                }
            }
            Request::SetFeatures { features, .. } => {
                for (name, on) in features {
                    checks::feature(&self.config, name, *on)?;
                }
            }
            Request::BindMount {
                host_path,
                mount_path,
                ..
            } => {
                checks::bind_source(&self.config, host_path)?;
                checks::mount_point(mount_path)?;
            }
            Request::Status { .. }
            | Request::ContainerGroups { .. }
            | Request::SmokeTest { .. } => {}
        }
        Ok(conf)
    }

    fn act(&self, req: &Request, conf: &PveConfig, emit: &mut dyn FnMut(&Reply)) -> Reply {
        let id = req.ctid().to_string();
        let s = |v: &str| v.to_string();
        let result = match req {
            Request::RunScript {
                script,
                env,
                timeout_sec,
                ..
            } => match checks::script_path(script) {
                Ok(path) => {
                    return self.run_script(
                        &id,
                        &path,
                        env,
                        Duration::from_secs(u64::from(*timeout_sec)),
                        emit,
                    )
                }
                Err(r) => return refused(r),
            },
            Request::Push {
                source,
                dest,
                perms,
                ..
            } => self.push(&id, source, dest, perms),
            Request::MakeDir { path, .. } => self
                .pct_ok(vec![
                    s("exec"),
                    id.clone(),
                    s("--keep-env"),
                    s("0"),
                    s("--"),
                    s("mkdir"),
                    s("-p"),
                    path.clone(),
                ])
                .map(|_| done()),
            Request::RemovePath { path, .. } => self
                .pct_ok(vec![
                    s("exec"),
                    id.clone(),
                    s("--keep-env"),
                    s("0"),
                    s("--"),
                    s("rm"),
                    s("-rf"),
                    path.clone(),
                ])
                .map(|_| done()),
            Request::AttachDevices { devices, .. } => self.attach(&id, conf, devices),
            Request::ContainerGroups { .. } => {
                let mut argv = vec![s("getent"), s("group"), s("render"), s("video")];
                self.exec_lines(&id, &mut argv, &[0, 2], emit)
            }
            Request::InspectDevices { paths, .. } => {
                let mut argv = vec![s("stat"), s("-c"), s("%n %g %t %T %a")];
                argv.extend(paths.iter().cloned());
                self.exec_lines(&id, &mut argv, &[0, 1], emit)
            }
            Request::SmokeTest { tool, .. } => {
                let mut argv: Vec<String> = tool.argv().iter().map(|a| s(a)).collect();
                self.exec_lines(&id, &mut argv, &[], emit)
            }
            Request::DetachDevices { paths, .. } => self.detach(&id, conf, paths),
            Request::SetFeatures { features, .. } => {
                let mut current: BTreeMap<String, String> = conf
                    .current()
                    .get("features")
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|kv| {
                        kv.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                    })
                    .collect();
                for (k, on) in features {
                    current.insert(k.clone(), if *on { s("1") } else { s("0") });
                }
                let value = current
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                self.pct_ok(vec![s("set"), id.clone(), s("--features"), value])
                    .map(|_| done())
            }
            Request::BindMount {
                index,
                host_path,
                mount_path,
                read_only,
                ..
            } => {
                let mut value = format!("{host_path},mp={mount_path}");
                if *read_only {
                    value.push_str(",ro=1");
                }
                self.pct_ok(vec![s("set"), id.clone(), format!("--mp{index}"), value])
                    .map(|_| done())
            }
            Request::Status { .. } => self.pct_ok(vec![s("status"), id.clone()]).map(|out| {
                let state = out
                    .lines()
                    .find_map(|l| l.strip_prefix("status: "))
                    .unwrap_or("unknown")
                    .trim()
                    .to_string();
                Reply::Done {
                    ok: true,
                    exit_code: None,
                    status: Some(state),
                }
            }),
        };
        result.unwrap_or_else(|r| r)
    }

    fn push(&self, id: &str, source: &str, dest: &str, perms: &str) -> Result<Reply, Reply> {
        let s = |v: &str| v.to_string();
        self.pct_ok(vec![
            s("push"),
            id.to_string(),
            source.to_string(),
            dest.to_string(),
            s("--perms"),
            perms.to_string(),
        ])?;
        // pct push exits 0 even when the copy failed: look for the file.
        let check = self
            .run_pct(&[
                s("exec"),
                id.to_string(),
                s("--keep-env"),
                s("0"),
                s("--"),
                s("test"),
                s("-f"),
                dest.to_string(),
            ])
            .map_err(|e| failed("failed", e))?;
        if check.code == Some(0) {
            Ok(done())
        } else {
            Err(failed(
                "failed",
                format!("pushing {dest} into container {id} failed: the file is not there"),
            ))
        }
    }

    /// Runs `argv` inside the container and emits its output lines. `ok_codes` are the exit codes
    /// that count as success (empty: any, and the code is returned).
    fn exec_lines(
        &self,
        id: &str,
        argv: &mut Vec<String>,
        ok_codes: &[i32],
        emit: &mut dyn FnMut(&Reply),
    ) -> Result<Reply, Reply> {
        let mut args = vec![
            "exec".to_string(),
            id.to_string(),
            "--keep-env".into(),
            "0".into(),
            "--".into(),
        ];
        args.append(argv);
        // GPU checks are quick; a hung driver must not hold the job (or this helper) forever.
        let run = self
            .run_pct_limited(&args, Duration::from_secs(60))
            .map_err(|e| failed("timeout", e))?;
        for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            for line in text.lines() {
                emit(&Reply::Output {
                    stream: stream.into(),
                    line: line.to_string(),
                });
            }
        }
        let code = run.code.unwrap_or(-1);
        if ok_codes.is_empty() || ok_codes.contains(&code) {
            Ok(Reply::Done {
                ok: true,
                exit_code: Some(code),
                status: None,
            })
        } else {
            Err(failed(
                "failed",
                format!(
                    "`{}` in container {id} exited with {code}",
                    args[5..].join(" ")
                ),
            ))
        }
    }

    fn attach(
        &self,
        id: &str,
        conf: &PveConfig,
        devices: &[crate::protocol::DeviceRequest],
    ) -> Result<Reply, Reply> {
        use appstore_core::gpu::{self, DeviceSyntax, Edit, Passthrough};
        // The numbers come from the nodes on this host, read again here (never from the request).
        let mut list = Vec::new();
        for d in devices {
            let (major, minor) =
                checks::device(&self.config, &d.path).map_err(|r| failed(r.code, r.message))?;
            list.push(Passthrough {
                path: d.path.clone(),
                major,
                minor,
                gid: d.gid,
                mode: d.mode.clone().unwrap_or_else(|| "0660".into()),
            });
        }
        if self.config.legacy_devices {
            // Before PVE 8.1 a bind-mounted node keeps the host's owner, which an unprivileged
            // container sees as nobody: a node that needs a group cannot be given one.
            if let Some(d) = devices.iter().find(|d| d.gid.is_some()) {
                return Err(failed(
                    "not_allowed",
                    format!("{} needs a group inside the container, which only `devN` entries give (PVE 8.1 and later); this host is configured for an older PVE (legacy_devices) (fix: upgrade PVE to 8.1 or later, then set legacy_devices: false)", d.path),
                ));
            }
            // Raw lines cannot go through `pct set`: the config file is edited under PVE's lock.
            return self.edit_config(id, |c| {
                gpu::merge(c.current_mut(), &list, DeviceSyntax::RawLxc)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        }
        for edit in gpu::edits(conf.current(), &list, DeviceSyntax::DevEntries) {
            if let Edit::Dev { index, value } = edit {
                self.pct_ok(vec![
                    "set".into(),
                    id.to_string(),
                    format!("--dev{index}"),
                    value,
                ])?;
            }
        }
        Ok(done())
    }

    fn detach(&self, id: &str, conf: &PveConfig, paths: &[String]) -> Result<Reply, Reply> {
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        if self.config.legacy_devices {
            let numbers: Vec<(u32, u32)> = paths
                .iter()
                .filter_map(|p| checks::device(&self.config, p).ok())
                .collect();
            return self.edit_config(id, |c| {
                appstore_core::gpu::detach(c.current_mut(), &refs, &numbers);
                Ok(())
            });
        }
        let keys: Vec<String> = conf
            .current()
            .keys()
            .filter(|(k, v)| {
                k.strip_prefix("dev")
                    .is_some_and(|i| i.parse::<u32>().is_ok())
                    && refs.contains(&appstore_core::gpu::dev_entry_path(v))
            })
            .map(|(k, _)| k.to_string())
            .collect();
        if keys.is_empty() {
            return Ok(done());
        }
        self.pct_ok(vec![
            "set".into(),
            id.to_string(),
            "--delete".into(),
            keys.join(","),
        ])
        .map(|_| done())
    }

    /// Edits `/etc/pve/lxc/<id>.conf` under PVE's lock (legacy raw lines cannot go through pct set).
    fn edit_config(
        &self,
        id: &str,
        f: impl FnOnce(&mut PveConfig) -> Result<(), String>,
    ) -> Result<Reply, Reply> {
        let lock_path = self.config.lock_dir.join(format!("pve-config-{id}.lock"));
        std::fs::create_dir_all(&self.config.lock_dir)
            .map_err(|e| failed("failed", e.to_string()))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| failed("failed", e.to_string()))?;
        lock.lock().map_err(|e| failed("failed", e.to_string()))?;
        let path = self.config.pve_etc.join("lxc").join(format!("{id}.conf"));
        let text = std::fs::read_to_string(&path).map_err(|e| failed("failed", e.to_string()))?;
        let mut conf = PveConfig::parse(&text).map_err(|e| failed("failed", e.to_string()))?;
        f(&mut conf).map_err(|e| failed("failed", e))?;
        let tmp = path.with_extension("conf.tmp");
        std::fs::write(&tmp, conf.to_text())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| failed("failed", e.to_string()))?;
        Ok(done())
    }

    fn run_script(
        &self,
        id: &str,
        path: &str,
        env: &BTreeMap<String, String>,
        timeout: Duration,
        emit: &mut dyn FnMut(&Reply),
    ) -> Reply {
        let mut cmd = self.pct();
        // `--keep-env 1` hands pct's own (cleared, then exactly this) environment to the script.
        cmd.args(["exec", id, "--keep-env", "1", "--", "/bin/bash", path])
            .env("HOME", "/root");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
            Ok(c) => c,
            Err(e) => {
                return failed(
                    "failed",
                    format!("cannot run {}: {e}", self.config.pct.display()),
                )
            }
        };
        let (tx, rx) = mpsc::channel::<(String, String)>();
        let mut readers = Vec::new();
        for (name, pipe) in [
            (
                "stdout",
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            ),
            (
                "stderr",
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            ),
        ] {
            if let Some(pipe) = pipe {
                let tx = tx.clone();
                readers.push(std::thread::spawn(move || {
                    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                        if tx.send((name.to_string(), line)).is_err() {
                            break;
                        }
                    }
                }));
            }
        }
        drop(tx);
        let deadline = Instant::now() + timeout;
        let mut timed_out = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok((stream, line)) => emit(&Reply::Output { stream, line }),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if !timed_out && Instant::now() >= deadline {
                timed_out = true;
                let _ = child.kill();
            }
        }
        for r in readers {
            let _ = r.join();
        }
        let status = child.wait();
        if timed_out {
            return failed(
                "timeout",
                format!(
                    "the script ran longer than {} s and was stopped",
                    timeout.as_secs()
                ),
            );
        }
        match status {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                let code = s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0));
                Reply::Done {
                    ok: true,
                    exit_code: Some(code),
                    status: None,
                }
            }
            Err(e) => failed("failed", e.to_string()),
        }
    }
}
