//! Carrying out a checked request with `pct`, always as an argv (never a shell), with a fixed
//! environment, `--keep-env 0` and a time limit. A script's variables and inputs travel on the
//! standard input of `pct exec` to the helper's wrapper inside the container, never through a host
//! process's environment or command line. Config edits happen under PVE's config lock, with the
//! boundary checked again under that lock.

use crate::checks::{self, Refusal};
use crate::config::HelperConfig;
use crate::process;
use crate::protocol::{Reply, ReplyError, Request, WRAPPER_PATH};
use appstore_core::pve_config::PveConfig;
use appstore_core::Ctid;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

/// The limit for a `pct` call other than a script.
pub const PCT_LIMIT: Duration = Duration::from_secs(120);
/// How long the helper waits for PVE's config lock.
pub const LOCK_LIMIT: Duration = Duration::from_secs(10);
/// What the helper adds to a script's own limit before it kills `pct` on the host (the wrapper
/// stops the script inside at the limit and kills it 10 s later).
pub const SCRIPT_GRACE: Duration = Duration::from_secs(30);
/// The largest inputs document.
pub const MAX_INPUTS_BYTES: usize = 256 << 10;
/// Helpers acting at once, however they were started (socket or sudo).
pub const MAX_ACTING: usize = 16;

/// Takes one of [`MAX_ACTING`] slots (a `flock` on `slot-N` in the private staging directory),
/// waiting at most 30 s for one to be free; held while the returned descriptor lives.
pub fn take_slot(config: &HelperConfig) -> Result<std::os::fd::OwnedFd, String> {
    let me = rustix::process::geteuid().as_raw();
    let dir = crate::safe_fs::private_dir(&config.staging_dir, me, "the helper's staging")
        .map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        for i in 0..MAX_ACTING {
            if let Ok(fd) = crate::safe_fs::lock_file(
                &dir,
                &format!("slot-{i}"),
                Duration::ZERO,
                "a helper slot",
            ) {
                return Ok(fd);
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "{MAX_ACTING} helpers are already at work; try again later"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The helper for one config and one caller.
#[derive(Debug, Clone)]
pub struct Helper {
    config: HelperConfig,
    peer: String,
    caller_uid: u32,
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

fn s(v: &str) -> String {
    v.to_string()
}

/// `exec <id> --keep-env 0 -- argv...`
fn exec_args(id: &str, argv: &[&str]) -> Vec<String> {
    let mut args = vec![s("exec"), s(id), s("--keep-env"), s("0"), s("--")];
    args.extend(argv.iter().map(|a| s(a)));
    args
}

/// The wrapper's standard input: `NAME=value\0` entries, an empty entry, the inputs.
fn script_stdin(
    env: &BTreeMap<String, String>,
    inputs: Option<&serde_json::Value>,
) -> Result<Vec<u8>, Refusal> {
    let mut bytes = Vec::new();
    for (k, v) in env {
        if v.contains('\0') {
            return Err(Refusal {
                code: "bad_request",
                message: format!("env.{k}: the value holds a NUL byte"),
            });
        }
        bytes.extend_from_slice(k.as_bytes());
        bytes.push(b'=');
        bytes.extend_from_slice(v.as_bytes());
        bytes.push(0);
    }
    bytes.push(0);
    if let Some(i) = inputs {
        let text = i.to_string();
        if text.len() > MAX_INPUTS_BYTES {
            return Err(Refusal {
                code: "bad_request",
                message: format!("inputs: over {MAX_INPUTS_BYTES} bytes"),
            });
        }
        bytes.extend_from_slice(text.as_bytes());
    }
    Ok(bytes)
}

impl Helper {
    /// A helper acting for `peer` (recorded in the audit log) whose files belong to `caller_uid`.
    pub fn new(config: HelperConfig, peer: impl Into<String>, caller_uid: u32) -> Self {
        Helper {
            config,
            peer: peer.into(),
            caller_uid,
        }
    }

    /// A helper run inside the caller's own process (the simulator's demo and tests): the caller is
    /// this process's user.
    pub fn in_process(config: HelperConfig, peer: impl Into<String>) -> Self {
        Helper::new(config, peer, rustix::process::geteuid().as_raw())
    }

    fn pct_run(
        &self,
        args: &[String],
        stdin: Option<Stdio>,
        limit: Duration,
        on_line: &mut dyn FnMut(&'static str, &str),
    ) -> Result<process::Run, Reply> {
        let mut cmd = process::command(&self.config.pct);
        cmd.args(args);
        let run = process::run(cmd, stdin, limit, on_line).map_err(|e| {
            failed(
                "failed",
                format!("cannot run {}: {e}", self.config.pct.display()),
            )
        })?;
        if run.code.is_none() {
            return Err(failed(
                "timeout",
                format!(
                    "`pct {}` took longer than {} s and was stopped",
                    args.first().map(String::as_str).unwrap_or(""),
                    limit.as_secs()
                ),
            ));
        }
        Ok(run)
    }

    /// Runs `pct args` and expects exit code 0; returns its stdout.
    fn pct_ok(&self, args: Vec<String>) -> Result<String, Reply> {
        let run = self.pct_run(&args, None, PCT_LIMIT, &mut |_, _| {})?;
        if run.code == Some(0) {
            Ok(run.text("stdout"))
        } else {
            Err(failed(
                "failed",
                format!(
                    "pct {} failed: {}",
                    args.first().map(String::as_str).unwrap_or(""),
                    run.text("stderr").trim()
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
            Ok(conf) => {
                // Recorded before anything happens: an action that never ends is still on record.
                crate::audit::record(
                    &self.config.audit_log,
                    &self.peer,
                    req.name(),
                    Some(ctid),
                    "started",
                    self.audit_detail(req, serde_json::Value::Null),
                );
                self.act(req, &conf, emit)
            }
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
        let detail = self.audit_detail(req, detail);
        crate::audit::record(
            &self.config.audit_log,
            &self.peer,
            req.name(),
            Some(ctid),
            outcome,
            detail,
        );
        emit(&reply);
    }

    /// What the audit log says of `req`: its names and paths, never a variable's value.
    fn audit_detail(&self, req: &Request, result: serde_json::Value) -> serde_json::Value {
        match req {
            Request::RunScript { script, env, .. } => {
                json!({"script": script, "env_names": env.keys().collect::<Vec<_>>(), "result": result})
            }
            Request::Deliver { archive, .. } => json!({"archive": archive, "result": result}),
            _ => result,
        }
    }

    /// The boundary, the kind of container and every argument, before anything happens.
    fn prepare(&self, req: &Request) -> Result<PveConfig, Refusal> {
        let ctid = req.ctid();
        let conf = checks::read_config(&self.config, ctid)?;
        checks::boundary(&self.config, ctid, &conf)?;
        checks::container_kind(&self.config, ctid, &conf)?;
        match req {
            Request::RunScript {
                script,
                env,
                inputs,
                timeout_sec,
                ..
            } => {
                checks::script_path(script)?;
                for name in env.keys() {
                    checks::env_name(name)?;
                }
                script_stdin(env, inputs.as_ref())?;
                let max = appstore_core::script_env::MAX_SCRIPT_TIMEOUT_SEC;
                if *timeout_sec == 0 || *timeout_sec > max {
                    return Err(Refusal {
                        code: "bad_request",
                        message: format!("timeout_sec must be 1..={max}"),
                    });
                }
            }
            Request::Deliver { archive, .. } => {
                checks::archive_path(&self.config, archive)?;
            }
            Request::RemovePath { path, .. } => {
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
            Request::InspectDevices { paths, .. } | Request::DetachDevices { paths, .. } => {
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
            Request::CheckMounts { .. } => {
                checks::mounts(&self.config, ctid, &conf)?;
            }
            Request::Journal {
                unit,
                lines,
                after_cursor,
                ..
            } => {
                let bad = |message: String| Refusal {
                    code: "bad_request",
                    message,
                };
                appstore_core::journal::check_unit(unit).map_err(|e| bad(format!("unit: {e}")))?;
                if let Some(c) = after_cursor {
                    appstore_core::journal::check_cursor(c)
                        .map_err(|e| bad(format!("after_cursor: {e}")))?;
                }
                let max = appstore_core::journal::MAX_LINES;
                if *lines == 0 || *lines > max {
                    return Err(bad(format!("lines must be 1..={max}")));
                }
            }
            Request::Status { .. }
            | Request::ContainerGroups { .. }
            | Request::SmokeTest { .. } => {}
        }
        Ok(conf)
    }

    fn act(&self, req: &Request, conf: &PveConfig, emit: &mut dyn FnMut(&Reply)) -> Reply {
        let ctid = req.ctid();
        let id = ctid.to_string();
        let result = match req {
            Request::RunScript {
                script,
                env,
                inputs,
                timeout_sec,
                ..
            } => self.run_script(&id, script, env, inputs.as_ref(), *timeout_sec, emit),
            Request::Deliver { archive, .. } => self.deliver(&id, archive),
            Request::RemovePath { path, .. } => self
                .pct_ok(exec_args(&id, &["rm", "-rf", "--", path]))
                .map(|_| done()),
            Request::AttachDevices { devices, .. } => self.attach(ctid, devices),
            Request::ContainerGroups { .. } => {
                self.exec_lines(&id, &["getent", "group", "render", "video"], &[0, 2], emit)
            }
            Request::InspectDevices { paths, .. } => {
                let mut argv = vec!["stat", "-c", "%n %g %t %T %a"];
                argv.extend(paths.iter().map(String::as_str));
                self.exec_lines(&id, &argv, &[0, 1], emit)
            }
            Request::SmokeTest { tool, .. } => {
                let argv: Vec<&str> = tool.argv().to_vec();
                self.exec_lines(&id, &argv, &[], emit)
            }
            Request::Journal {
                unit,
                lines,
                after_cursor,
                ..
            } => {
                let argv = appstore_core::journal::argv(unit, *lines, after_cursor.as_deref());
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                // journalctl exits 1 when the unit has no entries yet.
                self.exec_lines(&id, &argv, &[0, 1], emit)
            }
            Request::DetachDevices { paths, .. } => self.detach(ctid, paths),
            Request::SetFeatures { features, .. } => self.edit_config(ctid, |c| {
                let cur = c.current_mut();
                let mut current: BTreeMap<String, String> = cur
                    .get("features")
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|kv| kv.split_once('=').map(|(k, v)| (s(k), s(v))))
                    .collect();
                for (k, on) in features {
                    current.insert(k.clone(), if *on { s("1") } else { s("0") });
                }
                let value = current
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                cur.try_set("features", &value).map_err(|e| e.to_string())
            }),
            Request::BindMount {
                index,
                host_path,
                mount_path,
                read_only,
                ..
            } => self.edit_config(ctid, |c| {
                // Checked again under the lock, with the container's config as it is now; what is
                // written is what was checked.
                let host = checks::bind_source(&self.config, host_path).map_err(|r| r.message)?;
                let mount = checks::mount_point(mount_path).map_err(|r| r.message)?;
                let key = format!("mp{index}");
                let mut value = format!("{},mp={mount}", host.display());
                if *read_only {
                    value.push_str(",ro=1");
                }
                match c.current().get(&key) {
                    Some(v) if v == value => return Ok(()),
                    Some(v) => {
                        return Err(format!(
                            "{key} is already used (`{v}`); choose a free mount point index"
                        ))
                    }
                    None => {}
                }
                c.current_mut()
                    .try_set(&key, &value)
                    .map_err(|e| e.to_string())
            }),
            Request::CheckMounts { .. } => {
                // Checked in `prepare`; say what was checked.
                let count = checks::host_mounts(conf).len();
                emit(&Reply::Output {
                    stream: s("stdout"),
                    line: format!("{count} host director(ies) checked"),
                });
                Ok(done())
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

    /// Checks and stages the archive, then unpacks it inside the container with one `tar` that reads
    /// it on standard input (nothing lands in the container but the files; `pct push` would also
    /// exit 0 on a failed copy).
    fn deliver(&self, id: &str, archive: &str) -> Result<Reply, Reply> {
        let rel = checks::archive_path(&self.config, archive).map_err(refused)?;
        let (staged, files) =
            crate::deliver::stage(&self.config, self.caller_uid, &rel).map_err(refused)?;
        let args = exec_args(id, &["tar", "-x", "--no-same-owner", "-f", "-", "-C", "/"]);
        let run = self.pct_run(&args, Some(Stdio::from(staged)), PCT_LIMIT, &mut |_, _| {})?;
        if run.code != Some(0) {
            return Err(failed(
                "failed",
                format!(
                    "unpacking the job's files in container {id} failed (exit {}): {}",
                    run.code.unwrap_or(-1),
                    run.text("stderr").trim()
                ),
            ));
        }
        Ok(Reply::Done {
            ok: true,
            exit_code: Some(i32::try_from(files).unwrap_or(i32::MAX)),
            status: None,
        })
    }

    /// Runs `argv` inside the container and emits its output lines. `ok_codes` are the exit codes
    /// that count as success (empty: any, and the code is returned).
    fn exec_lines(
        &self,
        id: &str,
        argv: &[&str],
        ok_codes: &[i32],
        emit: &mut dyn FnMut(&Reply),
    ) -> Result<Reply, Reply> {
        let args = exec_args(id, argv);
        // GPU checks are quick; a hung driver must not hold the job (or this helper) forever.
        let run = self.pct_run(&args, None, Duration::from_secs(60), &mut |stream, line| {
            emit(&Reply::Output {
                stream: s(stream),
                line: s(line),
            })
        })?;
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
                format!("`{}` in container {id} exited with {code}", argv.join(" ")),
            ))
        }
    }

    fn attach(
        &self,
        ctid: Ctid,
        devices: &[crate::protocol::DeviceRequest],
    ) -> Result<Reply, Reply> {
        use appstore_core::gpu::{self, DeviceSyntax, Passthrough};
        // The numbers come from the nodes on this host, read again here (never from the request).
        let mut list = Vec::new();
        for d in devices {
            let (major, minor) = checks::device(&self.config, &d.path).map_err(refused)?;
            list.push(Passthrough {
                path: d.path.clone(),
                major,
                minor,
                gid: d.gid,
                mode: d.mode.clone().unwrap_or_else(|| "0660".into()),
            });
        }
        let syntax = if self.config.legacy_devices {
            // Before PVE 8.1 a bind-mounted node keeps the host's owner, which an unprivileged
            // container sees as nobody: a node that needs a group cannot be given one.
            if let Some(d) = devices.iter().find(|d| d.gid.is_some()) {
                return Err(failed(
                    "not_allowed",
                    format!("{} needs a group inside the container, which only `devN` entries give (PVE 8.1 and later); this host is configured for an older PVE (legacy_devices) (fix: upgrade PVE to 8.1 or later, then set legacy_devices: false)", d.path),
                ));
            }
            DeviceSyntax::RawLxc
        } else {
            DeviceSyntax::DevEntries
        };
        // Slots are chosen under the lock, from the config as it is then.
        self.edit_config(ctid, |c| {
            gpu::merge(c.current_mut(), &list, syntax)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    fn detach(&self, ctid: Ctid, paths: &[String]) -> Result<Reply, Reply> {
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let numbers: Vec<(u32, u32)> = paths
            .iter()
            .filter_map(|p| checks::device(&self.config, p).ok())
            .collect();
        self.edit_config(ctid, |c| {
            appstore_core::gpu::detach(c.current_mut(), &refs, &numbers);
            Ok(())
        })
    }

    /// Edits `/etc/pve/lxc/<id>.conf` as PVE does: under the container's config lock (opened without
    /// following links), on the config read again under that lock, with the boundary and the kind
    /// of container checked again there, and only while the container is stopped and not locked by
    /// another task. The new text is written to a fresh file and renamed over the old one.
    fn edit_config(
        &self,
        ctid: Ctid,
        f: impl FnOnce(&mut PveConfig) -> Result<(), String>,
    ) -> Result<Reply, Reply> {
        use crate::safe_fs;
        let io = |e: safe_fs::UnsafePath| failed("failed", e.to_string());
        let me = rustix::process::geteuid().as_raw();
        let lock_dir =
            safe_fs::private_dir(&self.config.lock_dir, me, "PVE's lock directory").map_err(io)?;
        let _lock = safe_fs::lock_file(
            &lock_dir,
            &format!("pve-config-{ctid}.lock"),
            LOCK_LIMIT,
            "the container's config lock",
        )
        .map_err(io)?;
        let mut conf = checks::read_config(&self.config, ctid).map_err(refused)?;
        checks::boundary(&self.config, ctid, &conf).map_err(refused)?;
        checks::container_kind(&self.config, ctid, &conf).map_err(refused)?;
        if let Some(lock) = conf.current().get("lock") {
            return Err(failed(
                "failed",
                format!("CT {ctid} is locked ({lock}); wait for that task to end"),
            ));
        }
        let status = self.pct_ok(vec![s("status"), ctid.to_string()])?;
        if !status.contains("status: stopped") {
            return Err(failed(
                "failed",
                format!("container {ctid} must be stopped while the helper changes its config"),
            ));
        }
        f(&mut conf).map_err(|e| failed("failed", e))?;
        let dir =
            safe_fs::open_root_dir(&self.config.pve_etc.join("lxc"), "the containers' configs")
                .map_err(io)?;
        let tmp = format!("{ctid}.conf.tmp.{}", std::process::id());
        let write = || -> rustix::io::Result<()> {
            use rustix::fs::{Mode, OFlags};
            let fd = rustix::fs::openat(
                &dir,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o640),
            )?;
            let mut file = std::fs::File::from(fd);
            use std::io::Write;
            file.write_all(conf.to_text().as_bytes())
                .map_err(|_| rustix::io::Errno::IO)?;
            rustix::fs::renameat(&dir, tmp.as_str(), &dir, format!("{ctid}.conf").as_str())
        };
        write().map_err(|e| {
            let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), rustix::fs::AtFlags::empty());
            failed("failed", format!("writing the config of {ctid}: {e}"))
        })?;
        Ok(done())
    }

    fn run_script(
        &self,
        id: &str,
        script: &str,
        env: &BTreeMap<String, String>,
        inputs: Option<&serde_json::Value>,
        timeout_sec: u32,
        emit: &mut dyn FnMut(&Reply),
    ) -> Result<Reply, Reply> {
        let path = checks::script_path(script).map_err(refused)?;
        let stdin = script_stdin(env, inputs).map_err(refused)?;
        let limit = timeout_sec.to_string();
        let args = exec_args(id, &["/bin/bash", WRAPPER_PATH, &path, &limit]);
        // The bytes go through a pipe written on its own thread: a wrapper that does not read
        // cannot block the helper.
        let (reader, mut writer) =
            std::io::pipe().map_err(|e| failed("failed", format!("cannot make a pipe: {e}")))?;
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = writer.write_all(&stdin);
        });
        let started = std::time::Instant::now();
        let run = self.pct_run(
            &args,
            Some(Stdio::from(reader)),
            Duration::from_secs(u64::from(timeout_sec)) + SCRIPT_GRACE,
            &mut |stream, line| {
                emit(&Reply::Output {
                    stream: s(stream),
                    line: s(line),
                })
            },
        );
        let stopped = |_| {
            failed(
                "timeout",
                format!("the script ran longer than {timeout_sec} s and was stopped"),
            )
        };
        let run = run.map_err(|r| match &r {
            Reply::Failed { error, .. } if error.code == "timeout" => stopped(()),
            _ => r,
        })?;
        let code = run.code.unwrap_or(-1);
        // `timeout` inside the container ends with 124 (137 when it had to kill).
        if matches!(code, 124 | 137)
            && started.elapsed() >= Duration::from_secs(u64::from(timeout_sec))
        {
            return Err(stopped(()));
        }
        Ok(Reply::Done {
            ok: true,
            exit_code: Some(code),
            status: None,
        })
    }
}
