//! The helper's own config (`/etc/pve-appstore/helper.yml`, root-owned): which pool it guards, where
//! the node's files and `pct` are, and what it may allow. The store's config never decides this.

use appstore_core::manifest::normalize_abs;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where the helper reads its config unless started as root directly with `--config`.
pub const DEFAULT_CONFIG: &str = "/etc/pve-appstore/helper.yml";

/// The helper's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelperConfig {
    /// The store's pool: the only one whose containers the helper acts on.
    pub pool: String,
    /// The cluster file system (`/etc/pve`).
    #[serde(default = "default_pve_etc")]
    pub pve_etc: PathBuf,
    /// `pct`.
    #[serde(default = "default_pct")]
    pub pct: PathBuf,
    /// PVE's config locks (`/run/lock/lxc`).
    #[serde(default = "default_lock_dir")]
    pub lock_dir: PathBuf,
    /// Files pushed into containers must come from below here.
    #[serde(default = "default_job_root")]
    pub job_root: PathBuf,
    /// Where one JSON line per action is appended; its directory must belong to the helper's user
    /// and be writable by no one else (it is created 0700 when missing).
    #[serde(default = "default_audit_log")]
    pub audit_log: PathBuf,
    /// The helper's private staging directory (created 0700 when missing): checked copies of what
    /// it delivers into containers, as unnamed files.
    #[serde(default = "default_staging_dir")]
    pub staging_dir: PathBuf,
    /// Act on privileged containers too. Off: a container whose config lacks `unprivileged: 1` is
    /// refused, since its root is the host's root.
    #[serde(default)]
    pub allow_privileged: bool,
    /// Host directories below which bind mounts are allowed.
    #[serde(default)]
    pub allowed_bind_paths: Vec<PathBuf>,
    /// Features the helper may turn on.
    #[serde(default = "default_features")]
    pub allowed_features: Vec<String>,
    /// Device paths (prefixes) that may be passed through.
    #[serde(default = "default_device_prefixes")]
    pub allowed_device_prefixes: Vec<String>,
    /// Socket peers allowed besides root, by uid.
    #[serde(default)]
    pub allowed_uids: Vec<u32>,
    /// Socket peers allowed by primary group id (the `appstore` group).
    #[serde(default)]
    pub allowed_gid: Option<u32>,
    /// PVE before 8.1: pass devices with raw `lxc.*` lines instead of `devN`.
    #[serde(default)]
    pub legacy_devices: bool,
    /// Where device paths are looked up on this host (`/`; the demo points it at its fixture tree).
    #[serde(default = "default_device_root")]
    pub device_root: PathBuf,
}

fn default_device_root() -> PathBuf {
    PathBuf::from("/")
}

fn default_pve_etc() -> PathBuf {
    PathBuf::from("/etc/pve")
}
fn default_pct() -> PathBuf {
    PathBuf::from("/usr/sbin/pct")
}
fn default_lock_dir() -> PathBuf {
    PathBuf::from("/run/lock/lxc")
}
fn default_job_root() -> PathBuf {
    PathBuf::from("/var/lib/pve-appstore/jobs")
}
fn default_audit_log() -> PathBuf {
    PathBuf::from("/var/log/pve-appstore-helper/audit.log")
}
fn default_staging_dir() -> PathBuf {
    PathBuf::from("/run/pve-appstore-helper")
}
fn default_features() -> Vec<String> {
    vec!["nesting".into()]
}
fn default_device_prefixes() -> Vec<String> {
    vec!["/dev/dri/".into(), "/dev/nvidia".into(), "/dev/kfd".into()]
}

impl HelperConfig {
    /// Parses the config text; every path must be absolute.
    pub fn parse(text: &str) -> Result<HelperConfig, String> {
        let value = appstore_core::yaml::parse_value(text).map_err(|e| e.to_string())?;
        let config: HelperConfig = serde_json::from_value(value).map_err(|e| e.to_string())?;
        appstore_core::policy::PoolId::parse(&config.pool)?;
        for p in [
            &config.pve_etc,
            &config.pct,
            &config.lock_dir,
            &config.job_root,
            &config.audit_log,
            &config.staging_dir,
        ]
        .into_iter()
        .chain(&config.allowed_bind_paths)
        {
            normalize_abs(&p.to_string_lossy())?;
        }
        Ok(config)
    }

    /// Reads the config, refusing a file that someone other than root could have written or replaced:
    /// the file is opened without following links, must be a root-owned regular file without group
    /// or other write, and every directory above it must be root's (see
    /// [`crate::safe_fs::root_controlled`]).
    pub fn load(path: &Path) -> Result<HelperConfig, String> {
        use std::io::Read;
        let me = rustix::process::geteuid().as_raw();
        crate::safe_fs::root_controlled(path, false, true, me, "the helper's config")
            .map_err(|e| e.to_string())?;
        let fd = rustix::fs::openat2(
            rustix::fs::CWD,
            path,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::NOFOLLOW
                | rustix::fs::OFlags::NONBLOCK
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
            rustix::fs::ResolveFlags::NO_SYMLINKS,
        )
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| format!("{}: {e}", path.display()))?;
        if crate::safe_fs::file_type(&st) != rustix::fs::FileType::RegularFile
            || st.st_uid != 0
            || st.st_mode & 0o022 != 0
        {
            return Err(format!(
                "{} must be a regular file owned by root and writable only by root",
                path.display()
            ));
        }
        let mut text = String::new();
        std::fs::File::from(fd)
            .take(1 << 20)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}
