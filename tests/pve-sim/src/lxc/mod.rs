//! The real LXC back end: every container is a privileged LXC container with systemd as init, run with
//! `lxc-start`, `lxc-attach`, `lxc-info` and `lxc-stop` in a private lxcpath below the simulated node's
//! root, on a bridge of its own, with the node's `devN` and raw `lxc.*` lines honoured at start.
//!
//! How it maps PVE onto the host, and where it differs from a real node:
//!
//! * **Root file system.** The template file in `var/lib/vz/template/cache/` is only checked to exist
//!   (the simulator's template files are placeholders) and must be a `debian-12-*` or `debian-13-*` one;
//!   any other template is refused. Every container gets the Debian 12 (bookworm) or 13 (trixie) tree of
//!   its template, each made once per machine
//!   by `debootstrap --variant=minbase` (plus `systemd-sysv` and `ca-certificates`) from the Debian mirror
//!   the host's apt already uses, and cached in `/var/tmp/pve-sim-rootfs/debian-12` (or `$PVE_SIM_ROOTFS_CACHE`),
//!   Debian 13 beside it.
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

mod config;
mod devices;
mod network;
mod rootfs;
mod usage;

use config::*;
use devices::*;
use network::*;
use rootfs::*;
pub use rootfs::{prepare_rootfs, rootfs_cache_dir, DebianRelease};

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
/// Where the node keeps the path of the test bed's shared package cache (see
/// [`crate::harness::HarnessOptions::package_cache`]).
pub const PACKAGE_CACHE_FILE: &str = "sim/package-cache";
/// The caches below it and where containers see them.
const PACKAGE_CACHES: [(&str, &str); 3] = [
    ("apt", "/var/cache/apt/archives"),
    ("pip", "/root/.cache/pip"),
    ("npm", "/root/.npm"),
];
/// The host's own extra CA certificates.
const HOST_CA_DIR: &str = "/usr/local/share/ca-certificates";
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

    /// The Debian release a container was created from.
    fn release(&self, vmid: u32) -> DebianRelease {
        match std::fs::read_to_string(self.ct_dir(vmid).join("debian-release")) {
            Ok(n) if n.trim() == "13" => DebianRelease::Trixie,
            _ => DebianRelease::Bookworm,
        }
    }

    /// The root file system its overlay starts from.
    fn lower_dir(&self, vmid: u32) -> PathBuf {
        self.release(vmid).cache_beside(&self.rootfs)
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
        let mut mounts = Vec::new();
        for (key, value) in cur.keys() {
            if numbered(key, "mp").is_none() {
                continue;
            }
            let mut parts = value.split(',');
            let source = parts.next().unwrap_or("").trim_start_matches("volume=");
            let Some(path) = parts.find_map(|p| p.strip_prefix("mp=")) else {
                return Err(format!("{key}: missing 'mp' (the path inside)"));
            };
            let host = if source.starts_with('/') {
                PathBuf::from(source)
            } else {
                let dir = self.volume_dir(source)?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("{key}: cannot create {}: {e}", dir.display()))?;
                dir
            };
            mounts.push((host, path.to_string()));
        }
        mounts.extend(self.package_cache_mounts()?);
        let plan = StartPlan {
            hostname: hostname.clone(),
            lower: self.lower_dir(vmid),
            upper: self.upper_dir(vmid),
            hook,
            bridge: self.bridge_name(),
            nets,
            devices: devices.clone(),
            mounts,
            raw: cur
                .raw_lxc()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        Ok((render_config(&plan)?, render_hook(&hostname, &devices)))
    }

    /// The host directory that holds storage volume `storage:name` (a file system of its own on PVE;
    /// here a directory below the node's root, bind-mounted at the mount point).
    fn volume_dir(&self, volid: &str) -> Result<PathBuf, String> {
        let (storage, name) = volid
            .split_once(':')
            .filter(|(s, n)| {
                let ok = |t: &str| {
                    !t.is_empty()
                        && !t.starts_with('.')
                        && t.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                };
                ok(s) && ok(n)
            })
            .ok_or_else(|| format!("unable to parse volume ID '{volid}'"))?;
        Ok(self.abs_root.join("sim/volumes").join(storage).join(name))
    }

    /// The test bed's shared download caches (apt's archives, pip's and npm's caches) when the node
    /// was given one (`sim/package-cache`): every container sees the same directories, so a package
    /// is downloaded once per run. Not something PVE does; it keeps real-container tests fast.
    fn package_cache_mounts(&self) -> Result<Vec<(PathBuf, String)>, String> {
        let Ok(text) = std::fs::read_to_string(self.root.path().join(PACKAGE_CACHE_FILE)) else {
            return Ok(Vec::new());
        };
        let base = PathBuf::from(text.trim());
        let mut mounts = Vec::new();
        for (sub, inside) in PACKAGE_CACHES {
            let dir = base.join(sub);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            mounts.push((dir, inside.to_string()));
        }
        std::fs::create_dir_all(base.join("apt/partial"))
            .map_err(|e| format!("cannot create the apt cache: {e}"))?;
        Ok(mounts)
    }

    /// Gives the container the host's own extra CA certificates (`/usr/local/share/ca-certificates`),
    /// in its CA directory and its bundle, so HTTPS through an intercepting proxy of the test machine
    /// works inside. A test-bed matter: a real node's containers trust what their template trusts.
    fn trust_host_cas(&self, vmid: u32, release: DebianRelease) -> Result<(), String> {
        let host_dir = Path::new(HOST_CA_DIR);
        let Ok(entries) = std::fs::read_dir(host_dir) else {
            return Ok(());
        };
        let mut extra = String::new();
        let upper = self.upper_dir(vmid);
        let ca_dir = upper.join(HOST_CA_DIR.trim_start_matches('/'));
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "crt") || !path.is_file() {
                continue;
            }
            let pem = std::fs::read_to_string(&path)
                .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
            std::fs::create_dir_all(&ca_dir)
                .map_err(|err| format!("cannot create {}: {err}", ca_dir.display()))?;
            std::fs::write(ca_dir.join(e.file_name()), &pem)
                .map_err(|err| format!("cannot write a CA certificate: {err}"))?;
            extra.push_str(pem.trim_end());
            extra.push('\n');
        }
        if extra.is_empty() {
            return Ok(());
        }
        let bundle = "etc/ssl/certs/ca-certificates.crt";
        let lower = release.cache_beside(&self.rootfs).join(bundle);
        let mut text = std::fs::read_to_string(&lower).unwrap_or_default();
        text.push_str(&extra);
        let target = upper.join(bundle);
        std::fs::create_dir_all(target.parent().unwrap_or(&upper))
            .and_then(|()| std::fs::write(&target, text))
            .map_err(|err| format!("cannot write the CA bundle: {err}"))
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
        let Some(release) = DebianRelease::of_template(&file) else {
            return Err(format!(
                "pve-sim (lxc back end): template '{file}' is not supported; only debian-12-* and debian-13-* templates are (a container gets the cached Debian root file system of its release)"
            ));
        };
        ensure_rootfs(&release.cache_beside(&self.rootfs), release)?;
        let ct = self.ct_dir(vmid);
        remove_dir_if_present(&ct)?;
        std::fs::create_dir_all(self.upper_dir(vmid))
            .map_err(|e| format!("cannot create {}: {e}", ct.display()))?;
        // Which tree the container's overlay starts from.
        std::fs::write(ct.join("debian-release"), release.number())
            .map_err(|e| format!("cannot write {}: {e}", ct.display()))?;
        self.trust_host_cas(vmid, release)
    }

    fn start(&self, vmid: u32, conf: &PveConfig) -> Result<(), String> {
        if self.is_running(vmid) {
            return Err(format!("CT {vmid} already running"));
        }
        ensure_rootfs(&self.lower_dir(vmid), self.release(vmid))?;
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

    fn volume_renamed(&self, old: &str, new: &str) -> Result<(), String> {
        let (from, to) = (self.volume_dir(old)?, self.volume_dir(new)?);
        if !from.exists() {
            return Ok(());
        }
        std::fs::rename(&from, &to)
            .map_err(|e| format!("cannot rename {} to {}: {e}", from.display(), to.display()))
    }

    fn volume_freed(&self, volid: &str) {
        if let Ok(dir) = self.volume_dir(volid) {
            let _ = remove_dir_if_present(&dir);
        }
    }

    fn usage(&self, vmid: u32) -> Option<crate::backend::Usage> {
        self.read_usage(vmid)
    }

    fn volume_path(&self, volid: &str) -> Option<PathBuf> {
        self.volume_dir(volid).ok()
    }

    fn backup_extra(&self, vmid: u32) -> Option<String> {
        Some(self.release(vmid).number().to_string())
    }

    fn restore_target(&self, vmid: u32, extra: Option<&str>) -> Result<PathBuf, String> {
        let release = match extra {
            Some("13") => DebianRelease::Trixie,
            _ => DebianRelease::Bookworm,
        };
        ensure_rootfs(&release.cache_beside(&self.rootfs), release)?;
        let ct = self.ct_dir(vmid);
        remove_dir_if_present(&ct)?;
        std::fs::create_dir_all(&ct).map_err(|e| format!("cannot create {}: {e}", ct.display()))?;
        std::fs::write(ct.join("debian-release"), release.number())
            .map_err(|e| format!("cannot write {}: {e}", ct.display()))?;
        Ok(self.upper_dir(vmid))
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
            mounts: vec![(
                "/tmp/r/sim/volumes/local-lvm/vm-101-disk-1".into(),
                "/var/lib/app".into(),
            )],
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
lxc.mount.entry = /tmp/r/sim/volumes/local-lvm/vm-101-disk-1 var/lib/app none bind,create=dir 0 0
lxc.cgroup.devices.allow = c 226:* rwm
lxc.cgroup2.devices.allow = c 226:* rwm
lxc.mount.entry = /dev/dri dev/dri none bind,optional,create=dir
";
        assert_eq!(render_config(&plan()).unwrap(), expect);
        let mut escape = plan();
        escape.mounts[0].1 = "/var/../etc".into();
        check(
            render_config(&escape),
            r#"Err("mount point '/var/../etc' is not a clean absolute path")"#,
        );
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
