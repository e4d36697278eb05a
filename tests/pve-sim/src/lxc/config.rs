//! The LXC config and the autodev hook a start writes from a container's PVE config.

use super::*;

#[derive(Debug, Clone)]
pub(super) struct NetPlan {
    pub(super) index: u32,
    pub(super) name: String,
    pub(super) veth: String,
    pub(super) mac: String,
    pub(super) ipv4: Option<String>,
    pub(super) gateway: Option<String>,
    pub(super) mtu: Option<u32>,
}

#[derive(Debug, Clone)]
pub(super) struct StartPlan {
    pub(super) hostname: String,
    pub(super) lower: PathBuf,
    pub(super) upper: PathBuf,
    pub(super) hook: PathBuf,
    pub(super) bridge: String,
    pub(super) nets: Vec<NetPlan>,
    pub(super) devices: Vec<Device>,
    /// Bind mounts: host directory, absolute path inside.
    pub(super) mounts: Vec<(PathBuf, String)>,
    pub(super) raw: Vec<(String, String)>,
}

/// A path LXC can take in `lxc.rootfs.path = overlay:...` and run as a hook (through `sh -c`).
pub(super) fn plain_path(p: &Path) -> Result<String, String> {
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

pub(super) fn render_config(plan: &StartPlan) -> Result<String, String> {
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
    for (host, inside) in &plan.mounts {
        let target = inside.trim_start_matches('/');
        if target.is_empty() || target.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(format!(
                "mount point '{inside}' is not a clean absolute path"
            ));
        }
        line(
            "lxc.mount.entry",
            &format!(
                "{} {} none bind,create=dir 0 0",
                plain_path(host)?,
                plain_path(Path::new(target))?
            ),
        );
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

pub(super) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The autodev hook: runs in the container's mount namespace once its `/dev` is populated, before init.
pub(super) fn render_hook(hostname: &str, devices: &[Device]) -> String {
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
