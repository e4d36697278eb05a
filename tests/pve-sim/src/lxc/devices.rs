//! `devN` entries as PVE reads them, resolved to the host's device nodes below the node's device root.

use super::*;

/// `devN: [path=]/dev/...[,uid=N][,gid=N][,mode=0NNN][,deny-write=1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DevSpec {
    pub(super) path: String,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mode: Option<u32>,
    pub(super) deny_write: bool,
}

impl DevSpec {
    pub(super) fn parse(value: &str) -> Result<DevSpec, String> {
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
pub(super) struct Device {
    pub(super) path: String,
    /// `c` or `b`.
    pub(super) kind: char,
    pub(super) major: u64,
    pub(super) minor: u64,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mode: u32,
    pub(super) deny_write: bool,
}

impl Device {
    pub(super) fn cgroup_rule(&self) -> String {
        let access = if self.deny_write { "rm" } else { "rwm" };
        format!("{} {}:{} {access}", self.kind, self.major, self.minor)
    }
}

/// glibc's `major()` / `minor()` of a `dev_t`.
pub(super) fn split_rdev(rdev: u64) -> (u64, u64) {
    let (major, minor) = appstore_core::device::split_dev(rdev);
    let (major, minor) = (u64::from(major), u64::from(minor));
    (major, minor)
}

/// The node behind a `devN` entry: `host` is where its path is on this machine (below the node's
/// device root; the path itself on a real host).
pub(super) fn resolve_device(spec: &DevSpec, host: &Path) -> Result<Device, String> {
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
