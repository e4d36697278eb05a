//! What the helper checks before it acts: the container boundary from the node's own files, and every
//! argument (numbers are numbers, paths are canonical and inside their allowed roots, names are names).

use crate::config::HelperConfig;
use crate::protocol::CONTAINER_BASE;
use appstore_core::manifest::normalize_abs;
use appstore_core::policy::{parse_tags, ContainerFacts, Decision, PoolBoundary, PoolId};
use appstore_core::pve_config::PveConfig;
use appstore_core::Ctid;
use std::path::{Path, PathBuf};

/// A refusal: a code and a message naming the rule and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `bad_request`, `boundary` or `not_allowed`.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

pub(crate) fn bad(message: impl Into<String>) -> Refusal {
    Refusal {
        code: "bad_request",
        message: message.into(),
    }
}

pub(crate) fn not_allowed(message: impl Into<String>) -> Refusal {
    Refusal {
        code: "not_allowed",
        message: message.into(),
    }
}

/// The container's config, read from the node's files.
pub fn read_config(config: &HelperConfig, ctid: Ctid) -> Result<PveConfig, Refusal> {
    let path = config.pve_etc.join("lxc").join(format!("{ctid}.conf"));
    let text = std::fs::read_to_string(&path).map_err(|e| Refusal {
        code: "boundary",
        message: if e.kind() == std::io::ErrorKind::NotFound {
            format!("container {ctid} does not exist on this node")
        } else {
            format!("container {ctid}: {} cannot be read: {e}", path.display())
        },
    })?;
    PveConfig::parse(&text).map_err(|e| Refusal {
        code: "boundary",
        message: format!("container {ctid}: its config cannot be read: {e}"),
    })
}

/// Pool membership (from `user.cfg`) and the managed tag (from the config's `tags`, never from its
/// description), decided by the same rule the store uses.
pub fn boundary(config: &HelperConfig, ctid: Ctid, conf: &PveConfig) -> Result<(), Refusal> {
    let users_path = config.pve_etc.join("user.cfg");
    let users_text = match std::fs::read_to_string(&users_path) {
        Ok(t) => t,
        // A node without users or pools yet has no user.cfg: then nothing is in a pool.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Refusal {
                code: "boundary",
                message: format!(
                    "{} cannot be read ({e}), so the pool of container {ctid} is unknown",
                    users_path.display()
                ),
            })
        }
    };
    let pool_of_vm =
        appstore_core::pve_pools::pool_of_vm(&users_text, ctid).map_err(|e| Refusal {
            code: "boundary",
            message: format!("user.cfg cannot be read: {e}"),
        })?;
    let pool = PoolId::parse(&config.pool).map_err(bad)?;
    let facts = ContainerFacts {
        ctid,
        pool: pool_of_vm,
        tags: conf
            .current()
            .get("tags")
            .map(parse_tags)
            .unwrap_or_default(),
    };
    match PoolBoundary::new(pool).decide(&facts) {
        Decision::Allow => Ok(()),
        Decision::Deny(reasons) => Err(Refusal {
            code: "boundary",
            message: reasons
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// An environment variable name a script may get (the rule manifest validation applies too).
pub fn env_name(name: &str) -> Result<(), Refusal> {
    appstore_core::script_env::check_env_name(name).map_err(|e| bad(format!("env: {e}")))
}

/// What kind of container the helper acts on: unprivileged (unless the helper's config allows
/// privileged ones), and without raw `lxc.*` lines other than the device lines the helper itself
/// writes (a raw line can mount any host path or lift any confinement).
pub fn container_kind(config: &HelperConfig, ctid: Ctid, conf: &PveConfig) -> Result<(), Refusal> {
    let cur = conf.current();
    if cur.get("unprivileged") != Some("1") && !config.allow_privileged {
        return Err(Refusal {
            code: "boundary",
            message: format!("[unprivileged] container {ctid} is privileged (its config lacks `unprivileged: 1`), so its root is the host's root; the helper acts only on unprivileged containers (fix: recreate it unprivileged, or set allow_privileged: true in the helper's config)"),
        });
    }
    // A cgroup rule must allow the numbers of a node that one of the mount lines passes through.
    let mounted: Vec<String> = cur
        .raw_lxc()
        .filter(|(k, _)| *k == "lxc.mount.entry")
        .filter_map(|(_, v)| v.split(' ').next())
        .filter_map(|path| device(config, path).ok())
        .map(|(major, minor)| format!("c {major}:{minor} rwm"))
        .collect();
    if let Some((key, value)) = cur.raw_lxc().find(|(k, v)| {
        !appstore_core::gpu::is_passthrough_line(k, v, &config.allowed_device_prefixes)
            || (*k == "lxc.cgroup2.devices.allow" && !mounted.iter().any(|m| m == v))
    }) {
        return Err(Refusal {
            code: "boundary",
            message: format!("[raw-lxc] container {ctid} carries `{key}: {value}`, a raw LXC line the helper did not write; the helper does not act on it (fix: remove the line from /etc/pve/lxc/{ctid}.conf)"),
        });
    }
    Ok(())
}

/// The archive of a `deliver`: an absolute, normalised path below the job root; returns it
/// relative to that root.
pub fn archive_path(config: &HelperConfig, path: &str) -> Result<String, Refusal> {
    let normal = normalize_abs(path).map_err(|e| bad(format!("archive: {e}")))?;
    if normal != path {
        return Err(bad(format!("archive `{path}` is not a normalised path")));
    }
    let root = config.job_root.to_string_lossy();
    let rel = path
        .strip_prefix(root.as_ref())
        .and_then(|r| r.strip_prefix('/'))
        .filter(|r| !r.is_empty())
        .ok_or_else(|| not_allowed(format!("archive `{path}` is outside {root}, the job root")))?;
    Ok(rel.to_string())
}

/// The volume of an `mpN` value: the field without `=`, or `volume=...`, wherever it stands.
pub fn mp_volume(value: &str) -> &str {
    value
        .split(',')
        .find_map(|f| match f.split_once('=') {
            None => Some(f),
            Some(("volume", v)) => Some(v),
            Some(_) => None,
        })
        .unwrap_or("")
}

/// The host directories bind-mounted into the container: `(mpN, path)` for every `mpN` whose
/// volume is an absolute path, in the current config or pending for the next start.
pub fn host_mounts(conf: &PveConfig) -> Vec<(&str, &str)> {
    std::iter::once(conf.current())
        .chain(conf.pending())
        .flat_map(|section| section.keys())
        .filter(|(key, _)| {
            key.strip_prefix("mp")
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|(key, value)| (key, mp_volume(value)))
        .filter(|(_, volume)| volume.starts_with('/'))
        .collect()
}

/// Every host directory bind-mounted into the container ([`host_mounts`]) passes [`bind_source`]
/// again; returns how many were checked.
pub fn mounts(config: &HelperConfig, ctid: Ctid, conf: &PveConfig) -> Result<usize, Refusal> {
    let found = host_mounts(conf);
    for (key, volume) in &found {
        bind_source(config, volume).map_err(|r| Refusal {
            code: r.code,
            message: format!("container {ctid} {key}: {}", r.message),
        })?;
    }
    Ok(found.len())
}

/// A path that goes into a config line: no blank or control character.
fn plain(path: &str, what: &str) -> Result<(), Refusal> {
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(format!(
            "{what} `{}` has a blank or a control character",
            path.escape_debug()
        )));
    }
    Ok(())
}

/// A script below `/opt/appstore/provision/`, as an absolute container path.
pub fn script_path(rel: &str) -> Result<String, Refusal> {
    if rel.chars().any(char::is_control) {
        return Err(bad("script: the path has a control character"));
    }
    let rel = appstore_core::RelPath::parse(rel).map_err(|e| bad(format!("script: {e}")))?;
    Ok(format!("{CONTAINER_BASE}/provision/{rel}"))
}

/// An absolute, normalised path below `/opt/appstore/` inside the container.
pub fn container_path(path: &str) -> Result<String, Refusal> {
    let p = normalize_abs(path).map_err(|e| bad(format!("path: {e}")))?;
    if p != path {
        return Err(bad(format!("`{path}` is not a normalised path; use `{p}`")));
    }
    if p == CONTAINER_BASE || p.starts_with(&format!("{CONTAINER_BASE}/")) {
        Ok(p)
    } else {
        Err(not_allowed(format!(
            "`{p}` is outside {CONTAINER_BASE}/, where the store keeps its files"
        )))
    }
}

/// A host path that is canonical (no symlink, no `..`, absolute) and below `root`.
pub fn host_path_below(path: &str, root: &Path, what: &str) -> Result<PathBuf, Refusal> {
    let normal = normalize_abs(path).map_err(|e| bad(format!("{what}: {e}")))?;
    let canonical =
        std::fs::canonicalize(&normal).map_err(|e| bad(format!("{what} `{path}`: {e}")))?;
    if canonical != Path::new(&normal) || normal != path {
        return Err(not_allowed(format!(
            "{what} `{path}` goes through a symlink or is not normalised"
        )));
    }
    let root = std::fs::canonicalize(root).map_err(|e| bad(format!("{}: {e}", root.display())))?;
    if !canonical.starts_with(&root) || canonical == root {
        return Err(not_allowed(format!(
            "{what} `{path}` is outside {}",
            root.display()
        )));
    }
    Ok(canonical)
}

/// An octal mode such as `0644` or `644`.
pub fn mode(text: &str) -> Result<u32, Refusal> {
    let digits = text
        .strip_prefix('0')
        .filter(|d| d.len() == 3)
        .unwrap_or(text);
    if digits.len() == 3 && digits.chars().all(|c| ('0'..='7').contains(&c)) {
        u32::from_str_radix(digits, 8).map_err(|_| bad(format!("`{text}` is not an octal mode")))
    } else {
        Err(bad(format!("`{text}` is not an octal mode like 0644")))
    }
}

/// A device path the helper may name: canonical, without blanks (it goes into config lines),
/// below an allowed prefix.
pub fn device_path(config: &HelperConfig, path: &str) -> Result<(), Refusal> {
    let normal = normalize_abs(path).map_err(|e| bad(format!("device: {e}")))?;
    if normal != path {
        return Err(bad(format!("device `{path}` is not a normalised path")));
    }
    if path.chars().any(|c| c.is_whitespace() || c == ',') {
        return Err(bad(format!(
            "device `{path}` has a blank or a comma, which a container config cannot hold"
        )));
    }
    if !config
        .allowed_device_prefixes
        .iter()
        .any(|p| path.starts_with(p.as_str()))
    {
        return Err(not_allowed(format!(
            "device `{path}` is not below an allowed prefix ({})",
            config.allowed_device_prefixes.join(", ")
        )));
    }
    Ok(())
}

/// A device node that may be passed through: see [`device_path`], and a character device (looked up
/// below the config's `device_root`).
pub fn device(config: &HelperConfig, path: &str) -> Result<(u32, u32), Refusal> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    device_path(config, path)?;
    let on_host = config.device_root.join(path.trim_start_matches('/'));
    let meta =
        std::fs::symlink_metadata(&on_host).map_err(|e| bad(format!("device `{path}`: {e}")))?;
    if !meta.file_type().is_char_device() {
        return Err(not_allowed(format!("`{path}` is not a character device")));
    }
    Ok(appstore_core::device::split_dev(meta.rdev()))
}

/// A feature the config allows turning on.
pub fn feature(config: &HelperConfig, name: &str, on: bool) -> Result<(), Refusal> {
    if !["nesting", "keyctl", "fuse", "mknod"].contains(&name) {
        return Err(bad(format!(
            "`{name}` is not a container feature the helper sets (nesting, keyctl, fuse, mknod)"
        )));
    }
    if on && !config.allowed_features.iter().any(|f| f == name) {
        return Err(not_allowed(format!(
            "feature `{name}` is not allowed; add it to allowed_features in the helper's config"
        )));
    }
    Ok(())
}

/// A bind-mount source below an allowed host directory: a real directory (no symlink at any
/// component), and every directory above it owned by root and writable by no one else, so neither
/// the service nor a container can swap what it names.
pub fn bind_source(config: &HelperConfig, path: &str) -> Result<PathBuf, Refusal> {
    plain(path, "bind mount source")?;
    for root in &config.allowed_bind_paths {
        match host_path_below(path, root, "bind mount source") {
            Ok(p) => {
                let me = rustix::process::geteuid().as_raw();
                crate::safe_fs::root_controlled(&p, false, false, me, "bind mount source")
                    .map_err(|e| not_allowed(e.to_string()))?;
                crate::safe_fs::open_dir(&p, "bind mount source")
                    .map_err(|_| bad(format!("`{path}` is not a directory")))?;
                return Ok(p);
            }
            // Outside this root: try the next one.
            Err(e) if e.message.contains(" is outside ") => {}
            Err(e) => return Err(e),
        }
    }
    let roots: Vec<String> = config
        .allowed_bind_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let roots = if roots.is_empty() {
        "none".to_string()
    } else {
        roots.join(", ")
    };
    Err(not_allowed(format!(
        "`{path}` is not below an allowed bind path ({roots})"
    )))
}

/// A mount point inside the container.
pub fn mount_point(path: &str) -> Result<String, Refusal> {
    plain(path, "mount_path")?;
    let p = normalize_abs(path).map_err(|e| bad(format!("mount_path: {e}")))?;
    let reserved = [
        "/", "/proc", "/sys", "/dev", "/run", "/bin", "/sbin", "/lib", "/usr", "/etc", "/boot",
    ];
    if reserved.contains(&p.as_str())
        || ["/proc/", "/sys/", "/dev/"]
            .iter()
            .any(|r| p.starts_with(r))
    {
        return Err(not_allowed(format!("`{p}` is a system directory")));
    }
    Ok(p)
}
