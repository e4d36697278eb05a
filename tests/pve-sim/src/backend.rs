//! Container back ends of the simulator. `inert` runs no processes (for the UI demo and fast tests) and
//! says so; `lxc` runs real LXC containers. The server drives create/start/stop/destroy; `pct` drives
//! exec/push/pull.

use crate::state::SimRoot;
use appstore_core::pve_config::PveConfig;
use std::path::{Path, PathBuf};

/// One network interface of a running container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// MAC address.
    pub hwaddr: String,
    /// IPv4 address with prefix.
    pub inet: Option<String>,
    /// IPv6 address with prefix.
    pub inet6: Option<String>,
}

/// What a back end does for the node.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// `inert` or `lxc`.
    fn name(&self) -> &'static str;
    /// Prepares the container's root file system from `template`.
    fn create(&self, vmid: u32, conf: &PveConfig, template: &Path) -> Result<(), String>;
    /// Starts it.
    fn start(&self, vmid: u32, conf: &PveConfig) -> Result<(), String>;
    /// Stops it (hard).
    fn stop(&self, vmid: u32) -> Result<(), String>;
    /// True while it runs.
    fn is_running(&self, vmid: u32) -> bool;
    /// Seconds since it started, while it runs.
    fn uptime(&self, vmid: u32) -> Option<u64>;
    /// Removes everything of it.
    fn destroy(&self, vmid: u32) -> Result<(), String>;
    /// Runs `argv` inside with exactly `env`; the command's stdio is this process's. Returns its exit
    /// code (128 + signal when killed).
    fn exec(&self, vmid: u32, argv: &[String], env: &[(String, String)]) -> Result<i32, String>;
    /// Copies a host file into the container.
    fn push(&self, vmid: u32, src: &Path, dest: &str, perms: Option<u32>) -> Result<(), String>;
    /// Copies a file out of the container.
    fn pull(&self, vmid: u32, src: &str, dest: &Path) -> Result<(), String>;
    /// Interfaces of a running container.
    fn interfaces(&self, vmid: u32) -> Option<Vec<Interface>>;
    /// The container's own files (what a snapshot of its volumes keeps).
    fn files_dir(&self, vmid: u32) -> PathBuf;
    /// Tears down what the back end made on the host for this node (containers, bridge); the node's
    /// files stay. Called when a test node is dropped and when `pve-sim` exits.
    fn cleanup(&self) {}
    /// A storage volume (`storage:name`) was renamed (`move_volume` to another container).
    fn volume_renamed(&self, _old: &str, _new: &str) -> Result<(), String> {
        Ok(())
    }
    /// A storage volume (`storage:name`) was freed with its container.
    fn volume_freed(&self, _volid: &str) {}
    /// The running container's usage counters, when the back end can read them.
    fn usage(&self, _vmid: u32) -> Option<Usage> {
        None
    }
    /// Where the files of storage volume `volid` are, when the back end keeps them.
    fn volume_path(&self, _volid: &str) -> Option<PathBuf> {
        None
    }
    /// What a backup must carry besides the container's files to be restored (the LXC back end:
    /// the Debian release its overlay starts from).
    fn backup_extra(&self, _vmid: u32) -> Option<String> {
        None
    }
    /// Prepares container `vmid` for a restore and returns the directory its files go to.
    fn restore_target(&self, vmid: u32, extra: Option<&str>) -> Result<PathBuf, String>;
}

/// A running container's usage counters (monotonic except `mem` and `disk_used`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time, ns.
    pub cpu_ns: u64,
    /// Memory in use, bytes.
    pub mem: u64,
    /// Bytes received.
    pub net_in: u64,
    /// Bytes sent.
    pub net_out: u64,
    /// Bytes read from disk.
    pub disk_read: u64,
    /// Bytes written to disk.
    pub disk_write: u64,
    /// Root disk in use, bytes.
    pub disk_used: u64,
}

/// The storage volumes (`storage:name`) a config's `mpN` keys hold; bind mounts are not volumes.
pub fn storage_volumes(conf: &PveConfig) -> Vec<String> {
    conf.current()
        .keys()
        .filter(|(k, _)| {
            k.strip_prefix("mp")
                .or_else(|| k.strip_prefix("unused"))
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|(_, v)| {
            let first = v.split(',').next()?.trim_start_matches("volume=");
            (!first.starts_with('/') && first.contains(':')).then(|| first.to_string())
        })
        .collect()
}

/// Where snapshot `name` of a container's files is kept.
fn snapshot_files(backend: &dyn Backend, vmid: u32, name: &str) -> PathBuf {
    let files = backend.files_dir(vmid);
    files.with_file_name(format!("snapshot-{name}"))
}

/// Copies the container's files aside, as a storage snapshot of its volumes does.
pub fn snapshot_files_create(backend: &dyn Backend, vmid: u32, name: &str) -> Result<(), String> {
    let dest = snapshot_files(backend, vmid, name);
    copy_tree(&backend.files_dir(vmid), &dest)
}

/// Puts the container's files back as snapshot `name` had them (the container is stopped).
pub fn snapshot_files_rollback(backend: &dyn Backend, vmid: u32, name: &str) -> Result<(), String> {
    let src = snapshot_files(backend, vmid, name);
    let files = backend.files_dir(vmid);
    if files.exists() {
        std::fs::remove_dir_all(&files).map_err(|e| format!("{}: {e}", files.display()))?;
    }
    copy_tree(&src, &files)
}

/// Drops the copy of snapshot `name`.
pub fn snapshot_files_delete(backend: &dyn Backend, vmid: u32, name: &str) -> Result<(), String> {
    let dir = snapshot_files(backend, vmid, name);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

/// `cp -a` keeps owners, modes, links and special files, which a container's tree has.
fn copy_tree(src: &Path, dest: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    if !src.exists() {
        return Ok(());
    }
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dest)
        .output()
        .map_err(|e| format!("cp: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "copying {}: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The back end a root was initialised with (`sim/backend`).
pub fn backend_for(root: &SimRoot) -> Result<Box<dyn Backend>, String> {
    let name =
        std::fs::read_to_string(root.path().join("sim/backend")).unwrap_or_else(|_| "inert".into());
    match name.trim() {
        "inert" => Ok(Box::new(Inert { root: root.clone() })),
        "lxc" => Ok(Box::new(crate::lxc::LxcBackend::new(root.clone()))),
        other => Err(format!(
            "unknown back end `{other}` in {}",
            root.path().join("sim/backend").display()
        )),
    }
}

/// No processes: state in files, pushed files kept under `sim/ct/<vmid>/fs/`.
#[derive(Debug, Clone)]
pub struct Inert {
    root: SimRoot,
}

impl Inert {
    /// An inert back end for `root`.
    pub fn new(root: SimRoot) -> Self {
        Inert { root }
    }

    fn state_file(&self, vmid: u32) -> PathBuf {
        self.root.ct_dir(vmid).join("state")
    }

    fn fs(&self, vmid: u32) -> PathBuf {
        self.root.ct_dir(vmid).join("fs")
    }

    fn inside(&self, vmid: u32, path: &str) -> Result<PathBuf, String> {
        if !path.starts_with('/') || path.split('/').any(|p| p == "..") {
            return Err(format!("bad path '{path}'"));
        }
        Ok(self.fs(vmid).join(path.trim_start_matches('/')))
    }

    fn set_state(&self, vmid: u32, state: &str) -> Result<(), String> {
        crate::state::write_atomic(&self.state_file(vmid), state.as_bytes())
            .map_err(|e| e.to_string())
    }
}

/// `/etc/group` of an inert container.
const INERT_GROUPS: &str =
    "root:x:0:\nvideo:x:44:\nusers:x:100:\nrender:x:993:\nnogroup:x:65534:\n";

impl Inert {
    fn stat_devices(&self, vmid: u32, paths: &[&str]) -> i32 {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let conf = self.root.read_conf(vmid).map(|(c, _)| c);
        let mut code = 0;
        for path in paths {
            let entry = conf.as_ref().and_then(|c| {
                c.current().keys().find_map(|(k, v)| {
                    let is_dev = k
                        .strip_prefix("dev")
                        .is_some_and(|i| i.parse::<u32>().is_ok());
                    (is_dev && appstore_core::gpu::dev_entry_path(v) == *path)
                        .then(|| v.to_string())
                })
            });
            let host = self.root.host_device(path);
            let node = std::fs::metadata(&host)
                .ok()
                .filter(|m| m.file_type().is_char_device());
            match (entry, node) {
                (Some(value), Some(meta)) => {
                    let opt = |name: &str| {
                        value
                            .split(',')
                            .find_map(|p| p.strip_prefix(&format!("{name}=")).map(str::to_string))
                    };
                    let (major, minor) = appstore_core::device::split_dev(meta.rdev());
                    let gid = opt("gid").unwrap_or_else(|| "0".into());
                    let mode = opt("mode")
                        .map(|m| m.trim_start_matches('0').to_string())
                        .unwrap_or_else(|| format!("{:o}", meta.mode() & 0o7777));
                    println!("{path} {gid} {major:x} {minor:x} {mode}");
                }
                _ => {
                    eprintln!("stat: cannot statx '{path}': No such file or directory");
                    code = 1;
                }
            }
        }
        code
    }
}

impl Backend for Inert {
    fn name(&self) -> &'static str {
        "inert"
    }

    fn create(&self, vmid: u32, _conf: &PveConfig, template: &Path) -> Result<(), String> {
        eprintln!("pve-sim (inert back end): CT {vmid} gets no root file system; template {} is only checked", template.display());
        std::fs::create_dir_all(self.fs(vmid).join("etc")).map_err(|e| e.to_string())?;
        // The groups a Debian 12 container has for devices (render is a system group made by
        // systemd; its id differs between templates, which is why the store reads it).
        std::fs::write(self.fs(vmid).join("etc/group"), INERT_GROUPS).map_err(|e| e.to_string())?;
        self.set_state(vmid, "stopped")
    }

    fn start(&self, vmid: u32, _conf: &PveConfig) -> Result<(), String> {
        self.set_state(vmid, "running")
    }

    fn restore_target(&self, vmid: u32, _extra: Option<&str>) -> Result<PathBuf, String> {
        let fs = self.fs(vmid);
        if fs.exists() {
            std::fs::remove_dir_all(&fs).map_err(|e| format!("{}: {e}", fs.display()))?;
        }
        std::fs::create_dir_all(&fs).map_err(|e| e.to_string())?;
        self.set_state(vmid, "stopped")?;
        Ok(fs)
    }

    fn stop(&self, vmid: u32) -> Result<(), String> {
        self.set_state(vmid, "stopped")
    }

    fn files_dir(&self, vmid: u32) -> PathBuf {
        self.fs(vmid)
    }

    fn is_running(&self, vmid: u32) -> bool {
        std::fs::read_to_string(self.state_file(vmid))
            .map(|s| s == "running")
            .unwrap_or(false)
    }

    fn uptime(&self, vmid: u32) -> Option<u64> {
        // The state file is written when the container starts.
        self.is_running(vmid)
            .then(|| seconds_since_modified(&self.state_file(vmid)))
            .flatten()
    }

    fn destroy(&self, vmid: u32) -> Result<(), String> {
        match std::fs::remove_dir_all(self.root.ct_dir(vmid)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn exec(&self, vmid: u32, argv: &[String], _env: &[(String, String)]) -> Result<i32, String> {
        // A few file checks are answered from the pushed files, so callers can verify a push; anything
        // else is reported and treated as success.
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["true"] => Ok(0),
            ["false"] => Ok(1),
            ["test", flag @ ("-e" | "-f" | "-d" | "-s"), path] => {
                let p = self.inside(vmid, path)?;
                let ok = match *flag {
                    "-f" => p.is_file(),
                    "-d" => p.is_dir(),
                    "-s" => p.metadata().map(|m| m.len() > 0).unwrap_or(false),
                    _ => p.exists(),
                };
                Ok(if ok { 0 } else { 1 })
            }
            ["cat", path] => match std::fs::read(self.inside(vmid, path)?) {
                Ok(bytes) => {
                    use std::io::Write;
                    let _ = std::io::stdout().write_all(&bytes);
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("cat: {path}: {e}");
                    Ok(1)
                }
            },
            ["getent", "group", names @ ..] => {
                let text =
                    std::fs::read_to_string(self.inside(vmid, "/etc/group")?).unwrap_or_default();
                let mut missing = false;
                for name in names.iter() {
                    match text.lines().find(|l| l.split(':').next() == Some(*name)) {
                        Some(line) => println!("{line}"),
                        None => missing = true,
                    }
                }
                Ok(if missing { 2 } else { 0 })
            }
            // `stat -c '%n %g %t %T %a'` of passed-through devices: what a container sees of its
            // `devN` entries (numbers from the node on the host, group and mode from the entry).
            ["stat", "-c", "%n %g %t %T %a", paths @ ..] => Ok(self.stat_devices(vmid, paths)),
            ["mkdir", "-p", path] => std::fs::create_dir_all(self.inside(vmid, path)?)
                .map(|()| 0)
                .map_err(|e| e.to_string()),
            // The helper's delivery: an archive on standard input, unpacked at the root.
            ["tar", "-x", "--no-same-owner", "-f", "-", "-C", "/"] => {
                let mut archive = tar::Archive::new(std::io::stdin().lock());
                match archive.unpack(self.fs(vmid)) {
                    Ok(()) => Ok(0),
                    Err(e) => {
                        eprintln!("tar: {e}");
                        Ok(2)
                    }
                }
            }
            // The helper's script wrapper: what a script would get, by name only (values may be
            // secrets), since an inert container runs nothing.
            ["/bin/bash", "/opt/appstore/bin/run-script", script, _limit] => {
                if !self.inside(vmid, "/opt/appstore/bin/run-script")?.is_file() {
                    eprintln!("/bin/bash: /opt/appstore/bin/run-script: No such file or directory");
                    return Ok(127);
                }
                let mut input = Vec::new();
                use std::io::Read;
                let _ = std::io::stdin().lock().read_to_end(&mut input);
                let mut parts = input.split(|b| *b == 0);
                let names: Vec<String> = parts
                    .by_ref()
                    .take_while(|e| !e.is_empty())
                    .map(|e| {
                        let text = String::from_utf8_lossy(e);
                        text.split('=').next().unwrap_or("").to_string()
                    })
                    .collect();
                let inputs: usize = parts.map(<[u8]>::len).sum();
                println!("[inert] /bin/bash {script}");
                println!("[inert] env: {}; inputs: {inputs} bytes", names.join(" "));
                Ok(0)
            }
            // The service log of an inert container: its unit started when the container did,
            // then one line a minute (it runs no processes that would write more).
            ["journalctl", rest @ ..] => {
                let unit = rest
                    .windows(2)
                    .find(|w| w[0] == "--unit")
                    .map_or("app", |w| w[1]);
                let after: u64 = rest
                    .windows(2)
                    .find(|w| w[0] == "--after-cursor")
                    .and_then(|w| w[1].rsplit("i=").next()?.parse().ok())
                    .unwrap_or(0);
                let Some(up) = self.uptime(vmid) else {
                    println!("-- No entries --");
                    return Ok(0);
                };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let start = now.saturating_sub(up);
                let last = up / 60 + 1;
                for i in (after + 1)..=last {
                    let (t, text) = if i == 1 {
                        (start, format!("systemd[1]: Started {unit}."))
                    } else {
                        (start + (i - 1) * 60, format!("{unit}[1]: running (an inert container of the simulator has no processes)"))
                    };
                    println!("{} ct{vmid} {text}", iso_time(t));
                }
                println!("-- cursor: s=inert{vmid};i={last}");
                Ok(0)
            }
            ["rm", "-rf" | "-f" | "-r", "--", path] | ["rm", "-rf" | "-f" | "-r", path] => {
                let p = self.inside(vmid, path)?;
                let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
                Ok(0)
            }
            _ => {
                eprintln!(
                    "pve-sim (inert back end): CT {vmid} runs no processes; not running {argv:?}"
                );
                println!("[inert] {}", argv.join(" "));
                Ok(0)
            }
        }
    }

    fn push(&self, vmid: u32, src: &Path, dest: &str, perms: Option<u32>) -> Result<(), String> {
        let target = self.inside(vmid, dest)?;
        if let Some(parent) = target.parent() {
            if !parent.is_dir() {
                return Err(format!("failed to open {dest}: No such file or directory"));
            }
        }
        std::fs::copy(src, &target)
            .map_err(|e| format!("failed to copy {}: {e}", src.display()))?;
        if let Some(mode) = perms {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn pull(&self, vmid: u32, src: &str, dest: &Path) -> Result<(), String> {
        std::fs::copy(self.inside(vmid, src)?, dest)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn interfaces(&self, vmid: u32) -> Option<Vec<Interface>> {
        if !self.is_running(vmid) {
            return None;
        }
        // A documentation address (TEST-NET-1): nothing is reachable there, and it says so.
        Some(vec![
            Interface {
                name: "lo".into(),
                hwaddr: "00:00:00:00:00:00".into(),
                inet: Some("127.0.0.1/8".into()),
                inet6: Some("::1/128".into()),
            },
            Interface {
                name: "eth0".into(),
                hwaddr: format!(
                    "BC:24:11:{:02X}:{:02X}:{:02X}",
                    (vmid >> 16) & 0xff,
                    (vmid >> 8) & 0xff,
                    vmid & 0xff
                ),
                inet: Some(format!("192.0.2.{}/24", vmid % 250 + 2)),
                inet6: None,
            },
        ])
    }
}

/// Whole seconds since `path` was last modified.
pub(crate) fn seconds_since_modified(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(modified.elapsed().map(|d| d.as_secs()).unwrap_or(0))
}

/// `2026-12-06T10:00:00+0000` (UTC), as `journalctl --output short-iso` prints times.
pub(crate) fn iso_time(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+0000",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod iso_tests {
    #[test]
    fn iso_times_are_utc_calendar_dates() {
        assert_eq!(super::iso_time(0), "1970-01-01T00:00:00+0000");
        assert_eq!(super::iso_time(1_796_558_400), "2026-12-06T12:00:00+0000");
        assert_eq!(super::iso_time(951_782_400), "2000-02-29T00:00:00+0000");
    }
}
