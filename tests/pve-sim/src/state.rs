//! The simulated node's files, in PVE's own layout below a root directory, shared by the API server and
//! `pct` (and read by the privileged helper, as on a real node): `etc/pve/nodes/<node>/lxc/<vmid>.conf`,
//! `etc/pve/lxc` -> that directory, `etc/pve/user.cfg`, `etc/pve/priv/token.cfg`, `etc/pve/.vmlist`,
//! `var/lib/vz/template/cache/`, and per-container back-end data under `sim/ct/<vmid>/`.

use appstore_core::pve_config::PveConfig;
use sha1::{Digest, Sha1};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A simulated node's root directory.
#[derive(Debug, Clone)]
pub struct SimRoot {
    root: PathBuf,
    node: String,
}

/// A held file lock (released on drop).
#[derive(Debug)]
pub struct FileLock(File);

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn lock_file(path: &Path) -> std::io::Result<FileLock> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    f.lock()?;
    Ok(FileLock(f))
}

/// Writes `data` to `path` atomically (temporary file + rename), as pmxcfs makes writes appear.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Unique per write: threads of one process write the same files concurrently.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}.{n}", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(tmp, path)
}

/// SHA1 of a config file's raw text, as PVE's `digest`.
pub fn digest(raw: &str) -> String {
    hex::encode(Sha1::digest(raw.as_bytes()))
}

impl SimRoot {
    /// A root at `root` for node `node`. Directories are created by [`SimRoot::init_layout`].
    pub fn new(root: impl Into<PathBuf>, node: &str) -> Self {
        SimRoot {
            root: root.into(),
            node: node.to_string(),
        }
    }

    /// Reads the node name from an existing root (`etc/pve/.node`).
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        let node = std::fs::read_to_string(root.join("etc/pve/.node"))?
            .trim()
            .to_string();
        Ok(SimRoot { root, node })
    }

    /// Creates the directory layout and the `etc/pve/lxc` link.
    pub fn init_layout(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.lxc_dir())?;
        std::fs::create_dir_all(self.etc_pve().join("priv"))?;
        std::fs::create_dir_all(self.etc_pve().join("local"))?;
        std::fs::create_dir_all(self.template_dir())?;
        std::fs::create_dir_all(self.root.join("sim/ct"))?;
        std::fs::create_dir_all(self.root.join("usr/sbin"))?;
        write_atomic(
            &self.etc_pve().join(".node"),
            format!("{}\n", self.node).as_bytes(),
        )?;
        let link = self.etc_pve().join("lxc");
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("nodes/{}/lxc", self.node), &link)?;
        }
        Ok(())
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// `etc/pve`.
    pub fn etc_pve(&self) -> PathBuf {
        self.root.join("etc/pve")
    }

    /// `etc/pve/nodes/<node>/lxc`.
    pub fn lxc_dir(&self) -> PathBuf {
        self.etc_pve().join("nodes").join(&self.node).join("lxc")
    }

    /// `<vmid>.conf`.
    pub fn conf_path(&self, vmid: u32) -> PathBuf {
        self.lxc_dir().join(format!("{vmid}.conf"))
    }

    /// `etc/pve/user.cfg`.
    pub fn user_cfg_path(&self) -> PathBuf {
        self.etc_pve().join("user.cfg")
    }

    /// `etc/pve/priv/token.cfg` (`user@realm!tokenid <secret>` lines).
    pub fn token_cfg_path(&self) -> PathBuf {
        self.etc_pve().join("priv/token.cfg")
    }

    /// Where storage `local` keeps templates.
    pub fn template_dir(&self) -> PathBuf {
        self.root.join("var/lib/vz/template/cache")
    }

    /// Back-end data of one container.
    pub fn ct_dir(&self, vmid: u32) -> PathBuf {
        self.root.join("sim/ct").join(vmid.to_string())
    }

    /// The lock PVE takes around config changes: `run/lock/lxc/pve-config-<vmid>.lock` (below the root).
    pub fn lock_config(&self, vmid: u32) -> std::io::Result<FileLock> {
        lock_file(
            &self
                .root
                .join(format!("run/lock/lxc/pve-config-{vmid}.lock")),
        )
    }

    /// The release this node runs (`sim/version`; 8.4 when unset).
    pub fn version(&self) -> crate::PveVersion {
        std::fs::read_to_string(self.path().join("sim/version"))
            .ok()
            .and_then(|v| crate::PveVersion::parse(v.trim()))
            .unwrap_or(crate::PveVersion::V8_4)
    }

    /// The lock around `user.cfg` changes.
    pub fn lock_users(&self) -> std::io::Result<FileLock> {
        lock_file(&self.root.join("run/lock/pve-user-cfg.lock"))
    }

    /// The config of `vmid` and its raw text, if it exists.
    /// Where the node's device paths (`devN`) are found on this machine: `/`, or a fixture tree
    /// (`sim/device-root` holds it; the demo's GPUs live in one).
    pub fn device_root(&self) -> PathBuf {
        std::fs::read_to_string(self.path().join("sim/device-root"))
            .ok()
            .map(|s| PathBuf::from(s.trim()))
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// The host node behind a container device path, below [`SimRoot::device_root`].
    pub fn host_device(&self, path: &str) -> PathBuf {
        self.device_root().join(path.trim_start_matches('/'))
    }

    pub fn read_conf(&self, vmid: u32) -> Option<(PveConfig, String)> {
        let raw = std::fs::read_to_string(self.conf_path(vmid)).ok()?;
        PveConfig::parse(&raw).ok().map(|c| (c, raw))
    }

    /// Writes the config of `vmid` and refreshes `.vmlist`. Call with the config lock held.
    pub fn write_conf(&self, vmid: u32, conf: &PveConfig) -> std::io::Result<()> {
        write_atomic(&self.conf_path(vmid), conf.to_text().as_bytes())?;
        self.write_vmlist()
    }

    /// Removes the config of `vmid`.
    pub fn remove_conf(&self, vmid: u32) -> std::io::Result<()> {
        match std::fs::remove_file(self.conf_path(vmid)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.write_vmlist()
    }

    /// Every container id on this node, ascending.
    pub fn vmids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = std::fs::read_dir(self.lxc_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str()?.strip_suffix(".conf")?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    fn write_vmlist(&self) -> std::io::Result<()> {
        let ids: serde_json::Map<String, serde_json::Value> = self
            .vmids()
            .into_iter()
            .map(|id| {
                (
                    id.to_string(),
                    serde_json::json!({"node": self.node, "type": "lxc", "version": 1}),
                )
            })
            .collect();
        let doc = serde_json::json!({"version": 1, "ids": ids});
        write_atomic(&self.etc_pve().join(".vmlist"), doc.to_string().as_bytes())
    }

    /// `user.cfg` as text (empty when missing).
    pub fn read_user_cfg_text(&self) -> String {
        std::fs::read_to_string(self.user_cfg_path()).unwrap_or_default()
    }

    /// The secret of a token, from `priv/token.cfg`.
    pub fn token_secret(&self, tokenid: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.token_cfg_path()).ok()?;
        text.lines().find_map(|l| {
            let (id, secret) = l.split_once(' ')?;
            (id == tokenid).then(|| secret.trim().to_string())
        })
    }

    /// Forgets a token secret.
    pub fn remove_token_secret(&self, tokenid: &str) -> std::io::Result<()> {
        let text = std::fs::read_to_string(self.token_cfg_path()).unwrap_or_default();
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{tokenid} ")))
            .map(|l| format!("{l}\n"))
            .collect();
        write_atomic(&self.token_cfg_path(), kept.as_bytes())
    }

    /// Records a token secret in `priv/token.cfg`.
    pub fn set_token_secret(&self, tokenid: &str, secret: &str) -> std::io::Result<()> {
        let text = std::fs::read_to_string(self.token_cfg_path()).unwrap_or_default();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with(&format!("{tokenid} ")))
            .map(str::to_string)
            .collect();
        lines.push(format!("{tokenid} {secret}"));
        write_atomic(&self.token_cfg_path(), (lines.join("\n") + "\n").as_bytes())
    }
}
