//! The real LXC back end: every container is a privileged LXC container with systemd as init, run with
//! `lxc-start`, `lxc-attach`, `lxc-info` and `lxc-stop` in a private lxcpath below the simulated node's
//! root, on a bridge of its own, with the node's `devN` and raw `lxc.*` lines honoured at start.
//!
//! How it maps PVE onto the host, and where it differs from a real node:
//!
//! * **Root file system.** The template file in `var/lib/vz/template/cache/` is only checked to exist
//!   (the simulator's template files are placeholders) and must be a `debian-12-*` one; any other
//!   template is refused. Every container gets the same Debian 12 (bookworm) tree, made once per machine
//!   by `debootstrap --variant=minbase` (plus `systemd-sysv` and `ca-certificates`) from the Debian mirror
//!   the host's apt already uses, and cached in `/var/tmp/pve-sim-rootfs/debian-12` (or `$PVE_SIM_ROOTFS_CACHE`).
//!   The cache is built under a file lock into a temporary directory and renamed when complete. Each
//!   container sees it through an overlay whose upper and work directories live in `sim/ct/<vmid>/`, so a
//!   create costs nothing and the cache stays clean. The overlay is mounted by LXC inside the container's
//!   own mount namespace: the host has no mount to clean up. Disk sizes, `mpN` volumes and bind mounts
//!   are not created; a container's files live in its upper directory.
//! * **Privileges.** Containers are privileged. `unprivileged=1` is accepted but not mapped to an
//!   idmap; `features` (nesting, keyctl, fuse, ...) are not mapped either, and AppArmor is `unconfined`.
//!   Memory, swap and CPU limits are not applied.
//! * **Network.** Each simulated node has one Linux bridge (`psim<6 hex>`) with `10.<a>.<b>.1/24`, picked
//!   so that it overlaps no route of the host, created at the first start and deleted by
//!   [`Backend::cleanup`]. Every `netN` gets a veth on that bridge, whatever bridge the config names;
//!   `firewall`, `tag`, `rate`, `gw` and `ip6` are ignored. There is no DHCP server: for `ip=dhcp` (or
//!   no `ip`) `net0` gets the static address `10.<a>.<b>.<2 + vmid % 252>/24` through the LXC config
//!   (other `netN` get no IPv4 address then) with the bridge as its gateway, and a static `ip=` is
//!   assigned as written. Containers reach out (apt needs the Debian mirror) through a masquerade rule
//!   in an nft table named after the bridge, and IPv4 forwarding is turned on while any simulated node
//!   needs it: the last node to clean up deletes its table and puts the host's forwarding setting back
//!   (counted in `/run/pve-sim-forwarding`). Nothing else reaches the containers but the host.
//! * **Devices.** `devN: [path=]/dev/...[,uid=N][,gid=N][,mode=0NNN][,deny-write=1]` is resolved at start
//!   from the host's node (type, major and minor by `stat`): the node is made inside the container's
//!   `/dev` at the same path with the given owner and mode (default: root and the host node's mode) by
//!   an autodev hook, as PVE's own hook does, and allowed in the device cgroup (`rwm`, or `rm` with
//!   `deny-write`). Raw `lxc.*` lines are passed to LXC in order; `lxc.cgroup.devices.*` and
//!   `lxc.cgroup2.devices.*` lines are written in both spellings so they hold on cgroup v1 (hybrid) hosts
//!   as on a pure cgroup v2 host such as PVE 8.
//! * **exec.** `lxc-attach --clear-env` with exactly the given variables (`--set-var`); as on PVE,
//!   `lxc-attach` adds `container=lxc` (and a default `PATH` if none is given). The command's own exit
//!   code comes back, 128 + signal when it was killed, 127 when it cannot be executed; a failed attach
//!   is an error.
//! * **Names.** Containers are `psim-<8 hex>-<vmid>` and veths `vpsim<10 hex>`, the hex taken from a hash
//!   of the node's root (and the vmid), so parallel simulated nodes never collide.

use crate::backend::{Backend, Interface};
use crate::state::SimRoot;
use appstore_core::pve_config::PveConfig;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where the Debian 12 root file system is cached unless `PVE_SIM_ROOTFS_CACHE` says otherwise.
pub const DEFAULT_ROOTFS_CACHE: &str = "/var/tmp/pve-sim-rootfs/debian-12";
/// The variable that overrides [`DEFAULT_ROOTFS_CACHE`].
pub const ROOTFS_CACHE_ENV: &str = "PVE_SIM_ROOTFS_CACHE";
/// `PATH` of the host tools this back end runs, and the default inside containers.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Held while a node picks and creates its bridge, so two nodes never take the same subnet.
const NET_LOCK: &str = "pve-sim-net.lock";
/// LXC's shared defaults: device cgroup allow list, capabilities, seccomp, `/proc` and `/sys` mounts.
const LXC_COMMON_CONF: &str = "/usr/share/lxc/config/common.conf";
/// Packages added to debootstrap's minimal base.
const ROOTFS_PACKAGES: &str = "systemd-sysv,ca-certificates";
/// A file the finished cache holds (written last, before the rename).
const ROOTFS_MARKER: &str = "etc/pve-sim-rootfs";
/// LXC's per-lxcpath lock files.
const LXC_LOCK_DIR: &str = "/run/lxc/lock";

/// Real LXC containers for one simulated node.
#[derive(Debug, Clone)]
pub struct LxcBackend {
    root: SimRoot,
    /// The root, canonical: every path handed to LXC is absolute and the names do not depend on how
    /// the root was spelled.
    abs_root: PathBuf,
    /// 16 hex digits of SHA-256 of the canonical root.
    tag: String,
    rootfs: PathBuf,
}

impl LxcBackend {
    /// The LXC back end of `root`, with the root file system cache from [`rootfs_cache_dir`].
    pub fn new(root: SimRoot) -> Self {
        Self::with_rootfs_cache(root, rootfs_cache_dir())
    }

    /// The LXC back end of `root` with the Debian 12 cache at `rootfs`.
    pub fn with_rootfs_cache(root: SimRoot, rootfs: PathBuf) -> Self {
        // LXC needs absolute paths; a relative cache is taken from the current directory.
        let rootfs = std::env::current_dir()
            .map(|d| d.join(&rootfs))
            .unwrap_or(rootfs);
        let abs_root = std::fs::canonicalize(root.path()).unwrap_or_else(|_| root.path().into());
        let tag = hex::encode(Sha256::digest(abs_root.as_os_str().as_encoded_bytes()))[..16].into();
        LxcBackend {
            root,
            abs_root,
            tag,
            rootfs,
        }
    }

    /// The node's bridge (`psim` and 6 hex digits).
    pub fn bridge_name(&self) -> String {
        format!("psim{}", &self.tag[..6])
    }

    /// The LXC name of container `vmid`.
    pub fn container_name(&self, vmid: u32) -> String {
        format!("psim-{}-{vmid}", &self.tag[..8])
    }

    /// The host side of the veth of `netN` of container `vmid`.
    pub fn veth_name(&self, vmid: u32, index: u32) -> String {
        let h = Sha256::digest(format!("{}/{vmid}/{index}", self.tag));
        format!("vpsim{}", &hex::encode(h)[..10])
    }

    /// The private lxcpath (`sim/lxc` below the root).
    pub fn lxcpath(&self) -> PathBuf {
        self.abs_root.join("sim/lxc")
    }

    fn lxc_dir(&self, vmid: u32) -> PathBuf {
        self.lxcpath().join(self.container_name(vmid))
    }

    fn ct_dir(&self, vmid: u32) -> PathBuf {
        self.abs_root.join(
            self.root
                .ct_dir(vmid)
                .strip_prefix(self.root.path())
                .unwrap_or(Path::new("")),
        )
    }

    fn upper_dir(&self, vmid: u32) -> PathBuf {
        self.ct_dir(vmid).join("upper")
    }

    fn lxc_args(&self, vmid: u32) -> [std::ffi::OsString; 4] {
        [
            "-P".into(),
            self.lxcpath().into(),
            "-n".into(),
            self.container_name(vmid).into(),
        ]
    }

    /// State and init PID from `lxc-info`; `None` when LXC does not know the container.
    fn info(&self, vmid: u32) -> Option<(String, Option<u32>)> {
        if !self.lxc_dir(vmid).join("config").is_file() {
            return None;
        }
        let out = host_command("lxc-info")
            .args(self.lxc_args(vmid))
            .args(["-s", "-p"])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| Some(l.strip_prefix(name)?.trim().to_string()))
        };
        let state = field("State:")?;
        let pid = field("PID:").and_then(|p: String| p.parse().ok());
        Some((state, pid))
    }

    fn init_pid(&self, vmid: u32) -> Result<u32, String> {
        match self.info(vmid) {
            Some((state, Some(pid))) if state == "RUNNING" => Ok(pid),
            _ => Err(format!("CT {vmid} not running")),
        }
    }

    /// Makes sure the node's bridge exists and returns its subnet.
    fn ensure_bridge(&self) -> Result<Subnet, String> {
        let _lock = lock_file(&net_lock_path())?;
        let bridge = self.bridge_name();
        if let Some(subnet) = bridge_subnet(&bridge) {
            return Ok(subnet);
        }
        if link_exists(&bridge) {
            // Left half-made (no address): make it anew.
            delete_link(&bridge)?;
        }
        let routes = host_ipv4_routes()?;
        let seed = u32::from_str_radix(&self.tag[8..16], 16).unwrap_or(0);
        let subnet = pick_subnet(seed, &routes)
            .ok_or("no free 10.x.y.0/24 subnet for the simulated node's bridge")?;
        run(
            host_command("ip").args(["link", "add", "name", &bridge, "type", "bridge"]),
            "cannot create the bridge",
        )?;
        let configured = run(
            host_command("ip").args(["addr", "add", &subnet.gateway(), "dev", &bridge]),
            "cannot address the bridge",
        )
        .and_then(|_| {
            run(
                host_command("ip").args(["link", "set", &bridge, "up"]),
                "cannot bring the bridge up",
            )
        });
        if let Err(e) = configured.and_then(|_| enable_nat(&bridge, subnet)) {
            disable_nat(&bridge);
            let _ = delete_link(&bridge);
            return Err(e);
        }
        Ok(subnet)
    }

    /// What `start` writes: the LXC config and the autodev hook.
    fn start_files(
        &self,
        vmid: u32,
        conf: &PveConfig,
        subnet: Subnet,
    ) -> Result<(String, String), String> {
        let cur = conf.current();
        let hostname = cur
            .get("hostname")
            .map(str::to_string)
            .unwrap_or_else(|| format!("CT{vmid}"));
        let mut nets = Vec::new();
        for (key, value) in cur.keys() {
            let Some(index) = numbered(key, "net") else {
                continue;
            };
            let net = NetSpec::parse(value).map_err(|e| format!("{key}: {e}"))?;
            let ipv4 = match net.ip.as_deref() {
                None | Some("dhcp") | Some("manual") if index == 0 => Some(subnet.host(vmid)),
                None | Some("dhcp") | Some("manual") => None,
                Some(ip) => Some(ip.to_string()),
            };
            // The bridge routes (and masquerades) for addresses in its own subnet.
            let gateway = ipv4
                .as_deref()
                .filter(|ip| index == 0 && subnet.contains(ip))
                .map(|_| subnet.router());
            let mac = net.hwaddr.clone().unwrap_or_else(|| {
                let h = Sha256::digest(format!("{}/{vmid}/{index}/mac", self.tag));
                format!("BC:24:11:{:02X}:{:02X}:{:02X}", h[0], h[1], h[2])
            });
            nets.push(NetPlan {
                index,
                name: net.name.unwrap_or_else(|| format!("eth{index}")),
                veth: self.veth_name(vmid, index),
                mac,
                ipv4,
                gateway,
                mtu: net.mtu,
            });
        }
        let mut devices = Vec::new();
        for (key, value) in cur.keys() {
            if numbered(key, "dev").is_some() {
                let spec = DevSpec::parse(value).map_err(|e| format!("{key}: {e}"))?;
                let host = self.root.host_device(&spec.path);
                devices.push(resolve_device(&spec, &host).map_err(|e| format!("{key}: {e}"))?);
            }
        }
        let hook = self.lxc_dir(vmid).join("autodev-hook");
        let plan = StartPlan {
            hostname: hostname.clone(),
            lower: self.rootfs.clone(),
            upper: self.upper_dir(vmid),
            hook,
            bridge: self.bridge_name(),
            nets,
            devices: devices.clone(),
            raw: cur
                .raw_lxc()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        Ok((render_config(&plan)?, render_hook(&hostname, &devices)))
    }

    fn attach(&self, vmid: u32) -> Command {
        let mut c = host_command("lxc-attach");
        c.args(self.lxc_args(vmid));
        c
    }

    /// Stops a container without asking whether it runs (`lxc-stop -k`).
    fn kill(&self, vmid: u32) -> Result<(), String> {
        let out = host_command("lxc-stop")
            .args(self.lxc_args(vmid))
            .arg("-k")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run lxc-stop: {e}"))?;
        if self.is_running(vmid) {
            return Err(format!(
                "cannot stop CT {vmid}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    fn remove_lxc_dir(&self, name: &str) -> Result<(), String> {
        remove_dir_if_present(&self.lxcpath().join(name))?;
        // LXC's lock file for this container (`/run/lxc/lock/<lxcpath>/.<name>`).
        let _ = std::fs::remove_file(self.lxc_lock_dir().join(format!(".{name}")));
        Ok(())
    }

    fn lxc_lock_dir(&self) -> PathBuf {
        Path::new(LXC_LOCK_DIR).join(self.lxcpath().strip_prefix("/").unwrap_or(Path::new("")))
    }
}

impl Backend for LxcBackend {
    fn name(&self) -> &'static str {
        "lxc"
    }

    fn create(&self, vmid: u32, _conf: &PveConfig, template: &Path) -> Result<(), String> {
        if !template.is_file() {
            return Err(format!("template '{}' does not exist", template.display()));
        }
        let file = template
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !file.starts_with("debian-12-") {
            return Err(format!(
                "pve-sim (lxc back end): template '{file}' is not supported; only debian-12-* templates are (every container gets the cached Debian 12 root file system)"
            ));
        }
        ensure_rootfs(&self.rootfs)?;
        let ct = self.ct_dir(vmid);
        remove_dir_if_present(&ct)?;
        std::fs::create_dir_all(self.upper_dir(vmid))
            .map_err(|e| format!("cannot create {}: {e}", ct.display()))
    }

    fn start(&self, vmid: u32, conf: &PveConfig) -> Result<(), String> {
        if self.is_running(vmid) {
            return Err(format!("CT {vmid} already running"));
        }
        ensure_rootfs(&self.rootfs)?;
        std::fs::create_dir_all(self.upper_dir(vmid))
            .map_err(|e| format!("cannot create {}: {e}", self.upper_dir(vmid).display()))?;
        let subnet = self.ensure_bridge()?;
        let (config, hook) = self.start_files(vmid, conf, subnet)?;
        let dir = self.lxc_dir(vmid);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        crate::state::write_atomic(&dir.join("config"), config.as_bytes())
            .map_err(|e| format!("cannot write the LXC config: {e}"))?;
        let hook_path = dir.join("autodev-hook");
        crate::state::write_atomic(&hook_path, hook.as_bytes())
            .and_then(|()| {
                std::fs::set_permissions(&hook_path, std::fs::Permissions::from_mode(0o755))
            })
            .map_err(|e| format!("cannot write the autodev hook: {e}"))?;
        // A veth left over from a crash would make LXC fail; it is ours by its name.
        for index in 0..10 {
            let veth = self.veth_name(vmid, index);
            if link_exists(&veth) {
                delete_link(&veth)?;
            }
        }
        let log = dir.join("start.log");
        let _ = std::fs::remove_file(&log);
        let status = host_command("lxc-start")
            .args(self.lxc_args(vmid))
            .arg("-d")
            .arg("-o")
            .arg(&log)
            .args(["-l", "INFO"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run lxc-start: {e}"))?;
        if !status.success() || !self.is_running(vmid) {
            return Err(format!(
                "startup for container '{vmid}' failed: {}",
                error_lines(&log).unwrap_or_else(|| format!("lxc-start: {status}"))
            ));
        }
        Ok(())
    }

    fn stop(&self, vmid: u32) -> Result<(), String> {
        if !self.is_running(vmid) {
            return Ok(());
        }
        self.kill(vmid)
    }

    fn files_dir(&self, vmid: u32) -> PathBuf {
        self.upper_dir(vmid)
    }

    fn is_running(&self, vmid: u32) -> bool {
        matches!(self.info(vmid), Some((state, _)) if state == "RUNNING")
    }

    fn uptime(&self, vmid: u32) -> Option<u64> {
        // The container's init process was made when it started.
        match self.info(vmid)? {
            (state, Some(pid)) if state == "RUNNING" => {
                crate::backend::seconds_since_modified(Path::new(&format!("/proc/{pid}")))
            }
            _ => None,
        }
    }

    fn destroy(&self, vmid: u32) -> Result<(), String> {
        self.stop(vmid)?;
        self.remove_lxc_dir(&self.container_name(vmid))?;
        remove_dir_if_present(&self.ct_dir(vmid))
    }

    fn exec(&self, vmid: u32, argv: &[String], env: &[(String, String)]) -> Result<i32, String> {
        self.init_pid(vmid)?;
        // lxc-attach's own failures go to this log too, so they can be told from a command exiting 1.
        let log = tempfile::Builder::new()
            .prefix("attach-")
            .suffix(".log")
            .tempfile_in(self.ct_dir(vmid))
            .or_else(|_| {
                tempfile::Builder::new()
                    .prefix("pve-sim-attach-")
                    .tempfile()
            })
            .map_err(|e| format!("cannot create the attach log: {e}"))?;
        let mut cmd = self.attach(vmid);
        cmd.arg("-o")
            .arg(log.path())
            .args(["-l", "ERROR", "--clear-env"]);
        for (k, v) in env {
            cmd.arg("--set-var").arg(format!("{k}={v}"));
        }
        let status = cmd
            .arg("--")
            .args(argv)
            .status()
            .map_err(|e| format!("cannot run lxc-attach: {e}"))?;
        match (status.code(), status.signal()) {
            (Some(1), _) => match error_lines(log.path()) {
                Some(errors) => Err(format!("failed to attach to CT {vmid}: {errors}")),
                None => Ok(1),
            },
            (Some(code), _) => Ok(code),
            (None, Some(signal)) => Ok(128 + signal),
            (None, None) => Err(format!("lxc-attach ended without a status: {status}")),
        }
    }

    fn push(&self, vmid: u32, src: &Path, dest: &str, perms: Option<u32>) -> Result<(), String> {
        if !dest.starts_with('/') {
            return Err(format!("destination '{dest}' is not an absolute path"));
        }
        self.init_pid(vmid)?;
        let input =
            File::open(src).map_err(|e| format!("failed to open {}: {e}", src.display()))?;
        // The path is resolved inside the container (its symlinks, its mounts), as pct does.
        let script = r#"d=${1%/*}; [ -d "${d:-/}" ] || { echo "failed to open $1: No such file or directory" >&2; exit 2; }; cat > "$1" && chmod "$2" "$1""#;
        let out = self
            .attach(vmid)
            .args(["--clear-env", "--set-var"])
            .arg(format!("PATH={SYSTEM_PATH}"))
            .args(["--", "/bin/sh", "-c", script, "pve-sim-push", dest])
            .arg(format!("{:o}", perms.unwrap_or(0o644)))
            .stdin(input)
            .output()
            .map_err(|e| format!("cannot run lxc-attach: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(tool_error(&out, &format!("failed to write {dest}")))
        }
    }

    fn pull(&self, vmid: u32, src: &str, dest: &Path) -> Result<(), String> {
        if !src.starts_with('/') {
            return Err(format!("source '{src}' is not an absolute path"));
        }
        self.init_pid(vmid)?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::NamedTempFile::new_in(&dir)
            .map_err(|e| format!("failed to open {}: {e}", dest.display()))?;
        let sink = tmp
            .reopen()
            .map_err(|e| format!("failed to open {}: {e}", dest.display()))?;
        let out = self
            .attach(vmid)
            .args(["--clear-env", "--", "/bin/cat", "--", src])
            .stdin(Stdio::null())
            .stdout(sink)
            .output()
            .map_err(|e| format!("cannot run lxc-attach: {e}"))?;
        if !out.status.success() {
            return Err(tool_error(&out, &format!("failed to open {src}")));
        }
        tmp.persist(dest)
            .map(|_| ())
            .map_err(|e| format!("failed to write {}: {e}", dest.display()))
    }

    fn interfaces(&self, vmid: u32) -> Option<Vec<Interface>> {
        let pid = self.init_pid(vmid).ok()?;
        // The host's `ip` in the container's network namespace, as PVE does it.
        let out = host_command("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["--", "ip", "-j", "addr", "show"])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        parse_ip_addr_json(&String::from_utf8_lossy(&out.stdout))
    }

    fn cleanup(&self) {
        let names: Vec<String> = std::fs::read_dir(self.lxcpath())
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| n.starts_with("psim-"))
                    .collect()
            })
            .unwrap_or_default();
        for name in names {
            let stop = host_command("lxc-stop")
                .args(["-P".as_ref(), self.lxcpath().as_os_str()])
                .args(["-n", &name, "-k"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if let Err(e) = stop {
                eprintln!("pve-sim: cannot stop {name}: {e}");
            }
            if let Err(e) = self.remove_lxc_dir(&name) {
                eprintln!("pve-sim: {e}");
            }
        }
        let lock_dir = self.lxc_lock_dir();
        let _ = std::fs::remove_dir_all(&lock_dir);
        let mut parent = lock_dir.parent();
        while let Some(p) = parent {
            if p == Path::new(LXC_LOCK_DIR) || std::fs::remove_dir(p).is_err() {
                break;
            }
            parent = p.parent();
        }
        let bridge = self.bridge_name();
        match lock_file(&net_lock_path()) {
            Ok(_lock) => disable_nat(&bridge),
            Err(e) => eprintln!("pve-sim: {e}"),
        }
        if link_exists(&bridge) {
            if let Err(e) = delete_link(&bridge) {
                eprintln!("pve-sim: {e}");
            }
        }
    }
}

/// The Debian 12 root file system cache: `$PVE_SIM_ROOTFS_CACHE` or [`DEFAULT_ROOTFS_CACHE`].
pub fn rootfs_cache_dir() -> PathBuf {
    std::env::var_os(ROOTFS_CACHE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOTFS_CACHE))
}

fn host_command(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("LANG", "C.UTF-8");
    c
}

/// Runs a host tool to completion; a failure carries its standard error.
fn run(cmd: &mut Command, what: &str) -> Result<Output, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
        format!(
            "{what}: cannot run {}: {e}",
            cmd.get_program().to_string_lossy()
        )
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(tool_error(&out, what))
    }
}

fn tool_error(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    if stderr.is_empty() {
        format!("{what} ({})", out.status)
    } else {
        format!("{what}: {stderr}")
    }
}

/// The ERROR lines of an LXC log, joined; `None` when there are none.
fn error_lines(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" ERROR "))
        .map(|l| l.rsplit_once(" - ").map_or(l, |(_, msg)| msg))
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

fn remove_dir_if_present(dir: &Path) -> Result<(), String> {
    if !mounts_below(dir).is_empty() {
        return Err(format!(
            "{} has mounts below it; not removing it",
            dir.display()
        ));
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}

fn lock_file(path: &Path) -> Result<File, String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    f.lock()
        .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
    Ok(f)
}

fn net_lock_path() -> PathBuf {
    let run_lock = Path::new("/run/lock");
    if run_lock.is_dir() {
        run_lock.join(NET_LOCK)
    } else {
        std::env::temp_dir().join(NET_LOCK)
    }
}

/// `dev3` -> 3 for prefix `dev`.
fn numbered(key: &str, prefix: &str) -> Option<u32> {
    let n = key.strip_prefix(prefix)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

// ---------------------------------------------------------------------------------------------------
// Root file system cache

/// A sibling of `path` named `<name><suffix>`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Builds the Debian 12 root file system cache ([`rootfs_cache_dir`]) unless it is there, so that
/// a test's deadlines start after the one slow step a fresh machine has (30-60 s of debootstrap).
pub fn prepare_rootfs() -> Result<(), String> {
    let cache = rootfs_cache_dir();
    let cache = std::env::current_dir()
        .map(|d| d.join(&cache))
        .unwrap_or(cache);
    ensure_rootfs(&cache)
}

/// Builds the Debian 12 cache at `cache` unless it is there. Parallel callers (threads or processes)
/// wait on a lock beside it; the tree is built in a temporary directory and renamed when complete.
fn ensure_rootfs(cache: &Path) -> Result<(), String> {
    if cache.join(ROOTFS_MARKER).is_file() {
        return Ok(());
    }
    let _lock = lock_file(&sibling(cache, ".lock"))?;
    if cache.join(ROOTFS_MARKER).is_file() {
        return Ok(());
    }
    let parent = cache.parent().unwrap_or(Path::new("/"));
    let prefix = format!(
        "{}.tmp-",
        cache.file_name().unwrap_or_default().to_string_lossy()
    );
    // Whatever a crashed build left (we hold the lock: nobody else is building).
    if let Ok(rd) = std::fs::read_dir(parent) {
        for e in rd.filter_map(Result::ok) {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                discard_build(&e.path())?;
            }
        }
    }
    if cache.exists() {
        discard_build(cache)?;
    }
    let mirror = host_mirror()?;
    let tmp = sibling(cache, &format!(".tmp-{}", std::process::id()));
    let log_path = sibling(cache, ".log");
    let log = File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    eprintln!(
        "pve-sim: building the Debian 12 root file system in {} from {} (once per machine; log {})",
        cache.display(),
        mirror.uri,
        log_path.display()
    );
    let mut cmd = host_command("debootstrap");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .arg("--variant=minbase")
        .arg(format!("--include={ROOTFS_PACKAGES}"))
        .arg("--components=main");
    if let Some(keyring) = &mirror.keyring {
        cmd.arg(format!("--keyring={}", keyring.display()));
    }
    let status = cmd
        .arg("bookworm")
        .arg(&tmp)
        .arg(&mirror.uri)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status();
    let built = match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!(
            "debootstrap failed ({s}); see {}: {}",
            log_path.display(),
            tail(&log_path, 5)
        )),
        Err(e) => Err(format!("cannot run debootstrap: {e}")),
    };
    let finished = built.and_then(|()| {
        unmount_below(&tmp)?;
        finish_rootfs(&tmp, &mirror)?;
        std::fs::rename(&tmp, cache).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                tmp.display(),
                cache.display()
            )
        })
    });
    if let Err(e) = finished {
        let _ = discard_build(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Unmounts whatever a build left mounted inside `dir` (debootstrap mounts `/proc` and `/sys` in its
/// target), then removes it. Never removes a tree that still has a mount inside.
fn discard_build(dir: &Path) -> Result<(), String> {
    unmount_below(dir)?;
    remove_dir_if_present(dir)
}

fn finish_rootfs(tree: &Path, mirror: &Mirror) -> Result<(), String> {
    let archives = tree.join("var/cache/apt/archives");
    if let Ok(rd) = std::fs::read_dir(&archives) {
        for e in rd.filter_map(Result::ok) {
            if e.path().extension().is_some_and(|x| x == "deb") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // The build host's name; each container's is written at start.
    let _ = std::fs::write(tree.join("etc/hostname"), "localhost\n");
    std::fs::write(
        tree.join(ROOTFS_MARKER),
        format!(
            "Debian 12 (bookworm) root file system of pve-sim: debootstrap --variant=minbase --include={ROOTFS_PACKAGES} from {}\n",
            mirror.uri
        ),
    )
    .map_err(|e| format!("cannot finish the root file system: {e}"))
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

/// Mount points at or below `dir`, deepest first.
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(&dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    found.dedup();
    found
}

/// mountinfo writes space, tab, newline and backslash as `\NNN` (octal).
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unmount_below(dir: &Path) -> Result<(), String> {
    for m in mounts_below(dir) {
        let ok = host_command("umount")
            .arg(&m)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = host_command("umount")
                .arg("-l")
                .arg(&m)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    match mounts_below(dir).first() {
        Some(m) => Err(format!("cannot unmount {}", m.display())),
        None => Ok(()),
    }
}

/// The Debian archive the host's apt uses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mirror {
    uri: String,
    /// `Signed-By` keyring, when it is a binary keyring file debootstrap can read.
    keyring: Option<PathBuf>,
}

/// Debian release names: an entry for any of them shows a mirror that also serves bookworm.
const DEBIAN_SUITES: &[&str] = &[
    "bookworm", "trixie", "forky", "bullseye", "sid", "unstable", "testing", "stable",
];

/// One `deb` source: URI, suites, components, keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AptSource {
    uris: Vec<String>,
    suites: Vec<String>,
    components: Vec<String>,
    signed_by: Option<String>,
}

fn deb822_sources(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let flush = |fields: &mut Vec<(String, String)>, out: &mut Vec<AptSource>| {
        let get = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let words = |k: &str| -> Vec<String> {
            get(k)
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        let enabled = get("Enabled").is_none_or(|v| !v.trim().eq_ignore_ascii_case("no"));
        if enabled && words("Types").iter().any(|t| t == "deb") {
            out.push(AptSource {
                uris: words("URIs"),
                suites: words("Suites"),
                components: words("Components"),
                signed_by: get("Signed-By").map(|s| s.trim().to_string()),
            });
        }
        fields.clear();
    };
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut fields, &mut out);
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    flush(&mut fields, &mut out);
    out
}

fn one_line_sources(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((opts, after)) = opts.split_once(']') else {
                continue;
            };
            signed_by = opts
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by="))
                .map(str::to_string);
            rest = after.trim_start();
        }
        let mut words = rest.split_whitespace().map(str::to_string);
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(AptSource {
            uris: vec![uri],
            suites: vec![suite],
            components: words.collect(),
            signed_by,
        });
    }
    out
}

/// The mirror to debootstrap bookworm from: an entry for `bookworm` itself, else one for another Debian
/// release (its archive serves bookworm too). Security archives are never picked.
fn pick_mirror(sources: &[AptSource]) -> Option<Mirror> {
    let usable = |s: &&AptSource| {
        s.components.iter().any(|c| c == "main")
            && s.uris.first().is_some_and(|u| {
                !u.contains("security")
                    && (u.starts_with("http://")
                        || u.starts_with("https://")
                        || u.starts_with("file:"))
            })
    };
    let with_suite = |pred: &dyn Fn(&str) -> bool| {
        sources
            .iter()
            .filter(usable)
            .find(|s| s.suites.iter().any(|x| pred(x)))
    };
    let source =
        with_suite(&|s| s == "bookworm").or_else(|| with_suite(&|s| DEBIAN_SUITES.contains(&s)))?;
    let keyring = source
        .signed_by
        .as_deref()
        .filter(|k| k.starts_with('/') && k.ends_with(".gpg") && !k.contains('\n'))
        .map(PathBuf::from)
        .filter(|k| k.is_file());
    Some(Mirror {
        uri: source.uris.first()?.trim_end_matches('/').to_string(),
        keyring,
    })
}

/// The Debian mirror the host's apt uses (`/etc/apt/sources.list.d/*.sources`, `*.list`,
/// `/etc/apt/sources.list`).
fn host_mirror() -> Result<Mirror, String> {
    let mut sources = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        match f.extension().and_then(|x| x.to_str()) {
            Some("sources") => sources.extend(deb822_sources(&text)),
            Some("list") => sources.extend(one_line_sources(&text)),
            _ => {}
        }
    }
    sources.extend(one_line_sources(
        &std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default(),
    ));
    pick_mirror(&sources).ok_or_else(|| {
        "no Debian archive (suite bookworm or another Debian release, component main) in the host's apt sources; the LXC back end builds its root file system from it".to_string()
    })
}

// ---------------------------------------------------------------------------------------------------
// Network

/// `10.<a>.<b>.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Subnet {
    a: u8,
    b: u8,
}

impl Subnet {
    fn network(self) -> u32 {
        u32::from_be_bytes([10, self.a, self.b, 0])
    }

    /// The bridge's address with prefix.
    fn gateway(self) -> String {
        format!("10.{}.{}.1/24", self.a, self.b)
    }

    /// The bridge's address without prefix: the containers' gateway.
    fn router(self) -> String {
        format!("10.{}.{}.1", self.a, self.b)
    }

    /// Is `ip` (with or without a prefix) in this subnet?
    fn contains(self, ip: &str) -> bool {
        let addr = ip.split('/').next().unwrap_or("");
        addr.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| u32::from(a) & 0xffff_ff00 == self.network())
    }

    /// `10.a.b.0/24`.
    fn cidr(self) -> String {
        format!("10.{}.{}.0/24", self.a, self.b)
    }

    /// The address `net0` of `vmid` gets for `ip=dhcp`.
    fn host(self, vmid: u32) -> String {
        format!("10.{}.{}.{}/24", self.a, self.b, 2 + vmid % 252)
    }
}

fn overlaps(n1: u32, l1: u8, n2: u32, l2: u8) -> bool {
    let l = l1.min(l2);
    let mask = if l == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(l.min(32)))
    };
    n1 & mask == n2 & mask
}

/// The first `10.<100..=254>.<b>.0/24`, counted from `seed`, that overlaps none of `routes`
/// (`(network, prefix length)`; default routes are left out by the caller).
fn pick_subnet(seed: u32, routes: &[(u32, u8)]) -> Option<Subnet> {
    const COUNT: u32 = 155 * 256;
    (0..COUNT).find_map(|i| {
        let n = (seed % COUNT + i) % COUNT;
        let subnet = Subnet {
            a: u8::try_from(100 + n / 256).ok()?,
            b: u8::try_from(n % 256).ok()?,
        };
        let free = routes
            .iter()
            .all(|&(net, len)| !overlaps(subnet.network(), 24, net, len));
        free.then_some(subnet)
    })
}

/// `192.0.2.0/24` -> (network, 24); `192.0.2.7` -> (.., 32); `default` -> None.
fn parse_ipv4_prefix(s: &str) -> Option<(u32, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse().ok()?),
        None => (s, 32),
    };
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    (len <= 32 && len > 0).then_some((u32::from(addr), len))
}

/// Every IPv4 route of every table (local addresses included), without default routes.
fn host_ipv4_routes() -> Result<Vec<(u32, u8)>, String> {
    let out = run(
        host_command("ip").args(["-4", "-j", "route", "show", "table", "all"]),
        "cannot list the host's routes",
    )?;
    let routes: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cannot read `ip -j route`: {e}"))?;
    Ok(routes
        .iter()
        .filter_map(|r| parse_ipv4_prefix(r.get("dst")?.as_str()?))
        .collect())
}

/// Who needs IPv4 forwarding, and what the host had before the first of them.
const FORWARDING_USERS: &str = "/run/pve-sim-forwarding";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Outbound access for one bridge's containers (called with the network lock held): masquerade in
/// an nft table of the bridge's own name, and forwarding on.
fn enable_nat(bridge: &str, subnet: Subnet) -> Result<(), String> {
    let nft = |args: &[&str], what: &str| run(host_command("nft").args(args), what);
    nft(&["add", "table", "ip", bridge], "cannot add the nft table")?;
    nft(
        &[
            "add",
            "chain",
            "ip",
            bridge,
            "postrouting",
            "{",
            "type",
            "nat",
            "hook",
            "postrouting",
            "priority",
            "100",
            ";",
            "policy",
            "accept",
            ";",
            "}",
        ],
        "cannot add the nft chain",
    )?;
    let cidr = subnet.cidr();
    nft(
        &[
            "add",
            "rule",
            "ip",
            bridge,
            "postrouting",
            "ip",
            "saddr",
            &cidr,
            "oifname",
            "!=",
            bridge,
            "masquerade",
        ],
        "cannot add the masquerade rule",
    )?;
    let text = std::fs::read_to_string(FORWARDING_USERS).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        let was = std::fs::read_to_string(IP_FORWARD)
            .map_err(|e| format!("cannot read {IP_FORWARD}: {e}"))?;
        lines.push(format!("was={}", was.trim()));
    }
    if !lines.iter().any(|l| l == bridge) {
        lines.push(bridge.to_string());
    }
    std::fs::write(FORWARDING_USERS, lines.join("\n") + "\n")
        .map_err(|e| format!("cannot write {FORWARDING_USERS}: {e}"))?;
    std::fs::write(IP_FORWARD, "1").map_err(|e| format!("cannot turn on IPv4 forwarding: {e}"))
}

/// Undoes [`enable_nat`] for one bridge (called with the network lock held); the last user puts
/// the host's forwarding setting back.
fn disable_nat(bridge: &str) {
    let table_exists = host_command("nft")
        .args(["list", "table", "ip", bridge])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if table_exists {
        if let Err(e) = run(
            host_command("nft").args(["delete", "table", "ip", bridge]),
            "cannot delete the nft table",
        ) {
            eprintln!("pve-sim: {e}");
        }
    }
    let Ok(text) = std::fs::read_to_string(FORWARDING_USERS) else {
        return;
    };
    let mut lines: Vec<&str> = text.lines().collect();
    let before = lines.len();
    lines.retain(|l| *l != bridge);
    if lines.len() == before {
        return;
    }
    if lines.len() <= 1 {
        let was = lines
            .first()
            .and_then(|l| l.strip_prefix("was="))
            .unwrap_or("0");
        if let Err(e) = std::fs::write(IP_FORWARD, was) {
            eprintln!("pve-sim: cannot restore {IP_FORWARD}: {e}");
        }
        let _ = std::fs::remove_file(FORWARDING_USERS);
    } else if let Err(e) = std::fs::write(FORWARDING_USERS, lines.join("\n") + "\n") {
        eprintln!("pve-sim: cannot write {FORWARDING_USERS}: {e}");
    }
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn delete_link(name: &str) -> Result<(), String> {
    run(
        host_command("ip").args(["link", "del", name]),
        &format!("cannot delete {name}"),
    )
    .map(|_| ())
}

/// The subnet of an existing bridge, from its `10.a.b.1/24` address.
fn bridge_subnet(bridge: &str) -> Option<Subnet> {
    if !link_exists(bridge) {
        return None;
    }
    let out = host_command("ip")
        .args(["-4", "-j", "addr", "show", "dev", bridge])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let links: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
    links
        .iter()
        .flat_map(|l| {
            l.get("addr_info")
                .and_then(|a| a.as_array())
                .cloned()
                .unwrap_or_default()
        })
        .find_map(|info| {
            let local: std::net::Ipv4Addr = info.get("local")?.as_str()?.parse().ok()?;
            let [ten, a, b, one] = local.octets();
            (ten == 10 && one == 1 && info.get("prefixlen")?.as_u64() == Some(24))
                .then_some(Subnet { a, b })
        })
}

/// `ip -j addr show` output as PVE's `/interfaces` answer (first address of each family).
fn parse_ip_addr_json(text: &str) -> Option<Vec<Interface>> {
    let links: Vec<serde_json::Value> = serde_json::from_str(text).ok()?;
    Some(
        links
            .iter()
            .filter_map(|l| {
                let name = l.get("ifname")?.as_str()?.to_string();
                let hwaddr = l
                    .get("address")
                    .and_then(|a| a.as_str())
                    .unwrap_or("00:00:00:00:00:00")
                    .to_string();
                let addrs = l.get("addr_info").and_then(|a| a.as_array());
                let first = |family: &str| {
                    addrs?.iter().find_map(|a| {
                        (a.get("family")?.as_str()? == family).then(|| {
                            Some(format!(
                                "{}/{}",
                                a.get("local")?.as_str()?,
                                a.get("prefixlen")?.as_u64()?
                            ))
                        })?
                    })
                };
                Some(Interface {
                    name,
                    hwaddr,
                    inet: first("inet"),
                    inet6: first("inet6"),
                })
            })
            .collect(),
    )
}

/// The parts of `netN` this back end uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NetSpec {
    name: Option<String>,
    hwaddr: Option<String>,
    ip: Option<String>,
    mtu: Option<u32>,
}

impl NetSpec {
    fn parse(value: &str) -> Result<NetSpec, String> {
        let mut spec = NetSpec::default();
        for part in value.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not key=value"))?;
            match k {
                "name" => spec.name = Some(v.to_string()),
                "hwaddr" => spec.hwaddr = Some(v.to_string()),
                "ip" => spec.ip = Some(v.to_string()),
                "mtu" => spec.mtu = Some(v.parse().map_err(|_| format!("bad mtu '{v}'"))?),
                _ => {}
            }
        }
        if let Some(name) = &spec.name {
            if name.is_empty()
                || name.len() > 15
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(format!("bad interface name '{name}'"));
            }
        }
        if let Some(ip) = &spec.ip {
            if ip != "dhcp" && ip != "manual" && parse_ipv4_prefix(ip).is_none() {
                return Err(format!("bad ip '{ip}'"));
            }
        }
        if let Some(mac) = &spec.hwaddr {
            let ok = mac.split(':').count() == 6
                && mac
                    .split(':')
                    .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ok {
                return Err(format!("bad hwaddr '{mac}'"));
            }
        }
        Ok(spec)
    }
}

// ---------------------------------------------------------------------------------------------------
// Devices

/// `devN: [path=]/dev/...[,uid=N][,gid=N][,mode=0NNN][,deny-write=1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DevSpec {
    path: String,
    uid: u32,
    gid: u32,
    mode: Option<u32>,
    deny_write: bool,
}

impl DevSpec {
    fn parse(value: &str) -> Result<DevSpec, String> {
        let mut path = None;
        let (mut uid, mut gid, mut mode, mut deny_write) = (0, 0, None, false);
        for (i, part) in value.split(',').enumerate() {
            let (k, v) = match part.split_once('=') {
                Some(kv) => kv,
                None if i == 0 => ("path", part),
                None => return Err(format!("'{part}' is not key=value")),
            };
            let number = |v: &str| v.parse::<u32>().map_err(|_| format!("bad {k} '{v}'"));
            match k {
                "path" => path = Some(v.to_string()),
                "uid" => uid = number(v)?,
                "gid" => gid = number(v)?,
                "mode" => {
                    let m = u32::from_str_radix(v, 8).map_err(|_| format!("bad mode '{v}'"))?;
                    if m > 0o7777 {
                        return Err(format!("bad mode '{v}'"));
                    }
                    mode = Some(m);
                }
                "deny-write" => deny_write = v == "1",
                other => return Err(format!("unknown property '{other}'")),
            }
        }
        let path = path.ok_or("missing path")?;
        let safe = path.starts_with("/dev/")
            && !path.split('/').any(|c| c == ".." || c == ".")
            && path
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'\'' && b != b'\\');
        if !safe {
            return Err(format!("device path '{path}' is not a path below /dev"));
        }
        Ok(DevSpec {
            path,
            uid,
            gid,
            mode,
            deny_write,
        })
    }
}

/// A device of the host, ready for the container.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Device {
    path: String,
    /// `c` or `b`.
    kind: char,
    major: u64,
    minor: u64,
    uid: u32,
    gid: u32,
    mode: u32,
    deny_write: bool,
}

impl Device {
    fn cgroup_rule(&self) -> String {
        let access = if self.deny_write { "rm" } else { "rwm" };
        format!("{} {}:{} {access}", self.kind, self.major, self.minor)
    }
}

/// glibc's `major()` / `minor()` of a `dev_t`.
fn split_rdev(rdev: u64) -> (u64, u64) {
    let (major, minor) = appstore_core::device::split_dev(rdev);
    let (major, minor) = (u64::from(major), u64::from(minor));
    (major, minor)
}

/// The node behind a `devN` entry: `host` is where its path is on this machine (below the node's
/// device root; the path itself on a real host).
fn resolve_device(spec: &DevSpec, host: &Path) -> Result<Device, String> {
    let meta =
        std::fs::metadata(host).map_err(|e| format!("cannot use device '{}': {e}", spec.path))?;
    let kind = if meta.file_type().is_char_device() {
        'c'
    } else if meta.file_type().is_block_device() {
        'b'
    } else {
        return Err(format!("'{}' is not a device node", spec.path));
    };
    let (major, minor) = split_rdev(meta.rdev());
    Ok(Device {
        path: spec.path.clone(),
        kind,
        major,
        minor,
        uid: spec.uid,
        gid: spec.gid,
        mode: spec.mode.unwrap_or(meta.mode() & 0o7777),
        deny_write: spec.deny_write,
    })
}

// ---------------------------------------------------------------------------------------------------
// LXC config and hook

#[derive(Debug, Clone)]
struct NetPlan {
    index: u32,
    name: String,
    veth: String,
    mac: String,
    ipv4: Option<String>,
    gateway: Option<String>,
    mtu: Option<u32>,
}

#[derive(Debug, Clone)]
struct StartPlan {
    hostname: String,
    lower: PathBuf,
    upper: PathBuf,
    hook: PathBuf,
    bridge: String,
    nets: Vec<NetPlan>,
    devices: Vec<Device>,
    raw: Vec<(String, String)>,
}

/// A path LXC can take in `lxc.rootfs.path = overlay:...` and run as a hook (through `sh -c`).
fn plain_path(p: &Path) -> Result<String, String> {
    let s = p
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))?;
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
    {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' has characters LXC cannot take in a rootfs or hook path; use a simpler root directory"
        ))
    }
}

fn render_config(plan: &StartPlan) -> Result<String, String> {
    let mut c = String::new();
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(c, "{k} = {v}");
    };
    line("lxc.include", LXC_COMMON_CONF);
    line("lxc.uts.name", &plan.hostname);
    line(
        "lxc.rootfs.path",
        &format!(
            "overlay:{}:{}",
            plain_path(&plan.lower)?,
            plain_path(&plan.upper)?
        ),
    );
    line("lxc.apparmor.profile", "unconfined");
    line("lxc.autodev", "1");
    line("lxc.hook.autodev", &plain_path(&plan.hook)?);
    if plan.nets.is_empty() {
        // Without this LXC would leave the container in the host's network namespace.
        line("lxc.net.0.type", "empty");
    }
    for n in &plan.nets {
        let k = |s: &str| format!("lxc.net.{}.{s}", n.index);
        line(&k("type"), "veth");
        line(&k("link"), &plan.bridge);
        line(&k("flags"), "up");
        line(&k("name"), &n.name);
        line(&k("veth.pair"), &n.veth);
        line(&k("hwaddr"), &n.mac);
        if let Some(ip) = &n.ipv4 {
            line(&k("ipv4.address"), ip);
        }
        if let Some(gw) = &n.gateway {
            line(&k("ipv4.gateway"), gw);
        }
        if let Some(mtu) = n.mtu {
            line(&k("mtu"), &mtu.to_string());
        }
    }
    for d in &plan.devices {
        line("lxc.cgroup.devices.allow", &d.cgroup_rule());
        line("lxc.cgroup2.devices.allow", &d.cgroup_rule());
    }
    for (k, v) in &plan.raw {
        let device_rule = k
            .strip_prefix("lxc.cgroup2.devices.")
            .or_else(|| k.strip_prefix("lxc.cgroup.devices."));
        match device_rule {
            Some(which @ ("allow" | "deny")) => {
                line(&format!("lxc.cgroup.devices.{which}"), v);
                line(&format!("lxc.cgroup2.devices.{which}"), v);
            }
            _ => line(k, v),
        }
    }
    Ok(c)
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The autodev hook: runs in the container's mount namespace once its `/dev` is populated, before init.
fn render_hook(hostname: &str, devices: &[Device]) -> String {
    let mut s = String::from(
        "#!/bin/sh\n# pve-sim: the container's hostname and devN nodes, as PVE's hooks make them.\nset -e\nr=\"$LXC_ROOTFS_MOUNT\"\n",
    );
    let _ = writeln!(
        s,
        "printf '%s\\n' {} > \"$r/etc/hostname\"",
        sh_quote(hostname)
    );
    for d in devices {
        let p = format!("\"$r\"{}", sh_quote(&d.path));
        let dir = Path::new(&d.path)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/dev".into());
        let _ = writeln!(s, "mkdir -p \"$r\"{}", sh_quote(&dir));
        let _ = writeln!(s, "rm -f {p}");
        let _ = writeln!(s, "mknod {p} {} {} {}", d.kind, d.major, d.minor);
        let _ = writeln!(s, "chown {}:{} {p}", d.uid, d.gid);
        let _ = writeln!(s, "chmod {:04o} {p}", d.mode);
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check<T: std::fmt::Debug>(actual: T, expect: &str) {
        assert_eq!(format!("{actual:?}"), expect);
    }

    #[test]
    fn dev_specs_parse_like_pve() {
        check(
            DevSpec::parse("/dev/dri/renderD128,gid=104"),
            r#"Ok(DevSpec { path: "/dev/dri/renderD128", uid: 0, gid: 104, mode: None, deny_write: false })"#,
        );
        check(
            DevSpec::parse("path=/dev/fuse,uid=5,mode=0660,deny-write=1"),
            r#"Ok(DevSpec { path: "/dev/fuse", uid: 5, gid: 0, mode: Some(432), deny_write: true })"#,
        );
        check(
            DevSpec::parse("/etc/passwd"),
            r#"Err("device path '/etc/passwd' is not a path below /dev")"#,
        );
        check(
            DevSpec::parse("/dev/../etc/x"),
            r#"Err("device path '/dev/../etc/x' is not a path below /dev")"#,
        );
        check(
            DevSpec::parse("/dev/x,colour=red"),
            r#"Err("unknown property 'colour'")"#,
        );
        check(DevSpec::parse("/dev/x,gid=-1"), r#"Err("bad gid '-1'")"#);
        check(
            DevSpec::parse("/dev/x,mode=0999"),
            r#"Err("bad mode '0999'")"#,
        );
    }

    #[test]
    fn rdev_splits_into_major_and_minor() {
        check(split_rdev(0xe280), "(226, 128)");
        check(split_rdev(0x103), "(1, 3)");
        // Large numbers use the high bits, as glibc's makedev() puts them.
        let (major, minor) = (0x12345u64, 0x6789au64);
        let rdev = ((major & 0xfff) << 8)
            | ((major & !0xfff) << 32)
            | (minor & 0xff)
            | ((minor & !0xff) << 12);
        assert_eq!(split_rdev(rdev), (major, minor));
    }

    #[test]
    fn net_specs_parse_and_reject_nonsense() {
        check(
            NetSpec::parse(
                "name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth",
            ),
            r#"Ok(NetSpec { name: Some("eth0"), hwaddr: Some("BC:24:11:00:00:01"), ip: Some("dhcp"), mtu: None })"#,
        );
        check(
            NetSpec::parse("name=eth1,ip=10.1.2.3/24,mtu=1400"),
            r#"Ok(NetSpec { name: Some("eth1"), hwaddr: None, ip: Some("10.1.2.3/24"), mtu: Some(1400) })"#,
        );
        check(
            NetSpec::parse("name=eth0,ip=nope"),
            r#"Err("bad ip 'nope'")"#,
        );
        check(
            NetSpec::parse("name=e th0"),
            r#"Err("bad interface name 'e th0'")"#,
        );
        check(NetSpec::parse("hwaddr=zz"), r#"Err("bad hwaddr 'zz'")"#);
    }

    #[test]
    fn subnets_avoid_host_routes() {
        let r = |s: &str| parse_ipv4_prefix(s).unwrap();
        check(pick_subnet(0, &[]), "Some(Subnet { a: 100, b: 0 })");
        check(
            pick_subnet(0, &[r("10.100.0.0/23")]),
            "Some(Subnet { a: 100, b: 2 })",
        );
        check(
            pick_subnet(0, &[r("10.100.0.77")]),
            "Some(Subnet { a: 100, b: 1 })",
        );
        check(pick_subnet(0, &[r("10.0.0.0/8")]), "None");
        check(
            pick_subnet(0, &[r("192.0.2.0/24"), r("127.0.0.0/8")]),
            "Some(Subnet { a: 100, b: 0 })",
        );
        check(
            pick_subnet(155 * 256 - 1, &[r("10.254.255.0/24")]),
            "Some(Subnet { a: 100, b: 0 })",
        );
        check(parse_ipv4_prefix("default"), "None");
        let s = Subnet { a: 123, b: 45 };
        check(
            (s.gateway(), s.host(100), s.host(351)),
            r#"("10.123.45.1/24", "10.123.45.102/24", "10.123.45.101/24")"#,
        );
    }

    #[test]
    fn the_host_mirror_is_read_from_deb822_and_one_line_sources() {
        let deb822 = "Types: deb\n# a comment\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /nonexistent/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n";
        check(
            pick_mirror(&deb822_sources(deb822)),
            r#"Some(Mirror { uri: "http://deb.debian.org/debian", keyring: None })"#,
        );
        let disabled = "Enabled: no\nTypes: deb\nURIs: http://a.example/debian\nSuites: bookworm\nComponents: main\n";
        check(pick_mirror(&deb822_sources(disabled)), "None");
        let one_line = "# comment\ndeb-src http://src.example/debian bookworm main\ndeb [arch=amd64 signed-by=/x.gpg] http://mirror.example/debian/ trixie main contrib\ndeb http://security.debian.org/debian-security bookworm-security main\n";
        check(
            pick_mirror(&one_line_sources(one_line)),
            r#"Some(Mirror { uri: "http://mirror.example/debian", keyring: None })"#,
        );
        check(
            pick_mirror(&one_line_sources(
                "deb http://archive.ubuntu.com/ubuntu noble main\n",
            )),
            "None",
        );
    }

    #[test]
    fn mountinfo_escapes_are_read() {
        check(unescape_mountinfo(r"/tmp/a\040b\134c"), r#""/tmp/a b\\c""#);
        check(unescape_mountinfo(r"/x\04"), r#""/x\\04""#);
    }

    fn plan() -> StartPlan {
        StartPlan {
            hostname: "web".into(),
            lower: "/var/tmp/pve-sim-rootfs/debian-12".into(),
            upper: "/tmp/r/sim/ct/101/upper".into(),
            hook: "/tmp/r/sim/lxc/psim-1-101/autodev-hook".into(),
            bridge: "psim123456".into(),
            nets: vec![NetPlan {
                index: 0,
                name: "eth0".into(),
                veth: "vpsim0123456789".into(),
                mac: "BC:24:11:00:00:01".into(),
                ipv4: Some("10.1.2.3/24".into()),
                gateway: Some("10.1.2.1".into()),
                mtu: None,
            }],
            devices: vec![Device {
                path: "/dev/dri/renderD128".into(),
                kind: 'c',
                major: 226,
                minor: 128,
                uid: 0,
                gid: 104,
                mode: 0o660,
                deny_write: false,
            }],
            raw: vec![
                ("lxc.cgroup2.devices.allow".into(), "c 226:* rwm".into()),
                (
                    "lxc.mount.entry".into(),
                    "/dev/dri dev/dri none bind,optional,create=dir".into(),
                ),
            ],
        }
    }

    #[test]
    fn lxc_config_carries_network_devices_and_raw_lines() {
        let expect = "\
lxc.include = /usr/share/lxc/config/common.conf
lxc.uts.name = web
lxc.rootfs.path = overlay:/var/tmp/pve-sim-rootfs/debian-12:/tmp/r/sim/ct/101/upper
lxc.apparmor.profile = unconfined
lxc.autodev = 1
lxc.hook.autodev = /tmp/r/sim/lxc/psim-1-101/autodev-hook
lxc.net.0.type = veth
lxc.net.0.link = psim123456
lxc.net.0.flags = up
lxc.net.0.name = eth0
lxc.net.0.veth.pair = vpsim0123456789
lxc.net.0.hwaddr = BC:24:11:00:00:01
lxc.net.0.ipv4.address = 10.1.2.3/24
lxc.net.0.ipv4.gateway = 10.1.2.1
lxc.cgroup.devices.allow = c 226:128 rwm
lxc.cgroup2.devices.allow = c 226:128 rwm
lxc.cgroup.devices.allow = c 226:* rwm
lxc.cgroup2.devices.allow = c 226:* rwm
lxc.mount.entry = /dev/dri dev/dri none bind,optional,create=dir
";
        assert_eq!(render_config(&plan()).unwrap(), expect);
        let mut bad = plan();
        bad.upper = "/tmp/a:b/upper".into();
        check(
            render_config(&bad),
            r#"Err("'/tmp/a:b/upper' has characters LXC cannot take in a rootfs or hook path; use a simpler root directory")"#,
        );
    }

    #[test]
    fn autodev_hook_makes_nodes_with_owner_and_mode() {
        let expect = "\
#!/bin/sh
# pve-sim: the container's hostname and devN nodes, as PVE's hooks make them.
set -e
r=\"$LXC_ROOTFS_MOUNT\"
printf '%s\\n' 'it'\\''s' > \"$r/etc/hostname\"
mkdir -p \"$r\"'/dev/dri'
rm -f \"$r\"'/dev/dri/renderD128'
mknod \"$r\"'/dev/dri/renderD128' c 226 128
chown 0:104 \"$r\"'/dev/dri/renderD128'
chmod 0660 \"$r\"'/dev/dri/renderD128'
";
        assert_eq!(render_hook("it's", &plan().devices), expect);
    }

    #[test]
    fn ip_json_becomes_pve_interfaces() {
        let json = r#"[{"ifindex":1,"ifname":"lo","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8},{"family":"inet6","local":"::1","prefixlen":128}]},{"ifindex":2,"ifname":"eth0","address":"bc:24:11:00:00:01","addr_info":[{"family":"inet6","local":"fe80::1","prefixlen":64},{"family":"inet","local":"10.1.2.3","prefixlen":24}]}]"#;
        check(
            parse_ip_addr_json(json),
            r#"Some([Interface { name: "lo", hwaddr: "00:00:00:00:00:00", inet: Some("127.0.0.1/8"), inet6: Some("::1/128") }, Interface { name: "eth0", hwaddr: "bc:24:11:00:00:01", inet: Some("10.1.2.3/24"), inet6: Some("fe80::1/64") }])"#,
        );
    }

    #[test]
    fn names_are_short_and_differ_between_roots() {
        let a = LxcBackend::with_rootfs_cache(SimRoot::new("/tmp/a", "pve1"), "/c".into());
        let b = LxcBackend::with_rootfs_cache(SimRoot::new("/tmp/b", "pve1"), "/c".into());
        assert!(a.bridge_name().len() <= 15 && a.veth_name(999_999_999, 9).len() <= 15);
        assert_ne!(a.bridge_name(), b.bridge_name());
        assert_ne!(a.container_name(100), b.container_name(100));
        assert_ne!(a.veth_name(100, 0), a.veth_name(101, 0));
        assert_eq!(a.lxcpath(), Path::new("/tmp/a/sim/lxc"));
        assert_eq!(a.ct_dir(100), Path::new("/tmp/a/sim/ct/100"));
    }
}
