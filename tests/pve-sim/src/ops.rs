//! Day-2 endpoints of the simulated node: a container's RRD data and disk resize.
//! (`vzdump`, the backup volumes of a storage and restores live in `backup.rs`.)

use crate::acl::Caller;
use crate::api::{ApiErr, Node};
use crate::metrics::Limits;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

type Params = BTreeMap<String, String>;

fn get<'a>(p: &'a Params, k: &str) -> Option<&'a str> {
    p.get(k).map(String::as_str)
}

pub(crate) fn vmid_of(p: &Params) -> Result<u32, ApiErr> {
    get(p, "vmid")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiErr::param("vmid", "property is missing and it is not optional"))
}

/// A size as PVE writes it in a config (`8G`, `512M`, bytes without a unit) -> bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, 'B'),
    };
    let value: f64 = num.parse().ok()?;
    let factor: u64 = match unit {
        'B' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        'T' => 1 << 40,
        _ => return None,
    };
    (value >= 0.0).then_some((value * factor as f64) as u64)
}

/// Bytes as PVE's `format_size` writes them: the largest unit that divides them exactly.
pub fn format_size(bytes: u64) -> String {
    for (unit, factor) in [
        ('T', 1u64 << 40),
        ('G', 1 << 30),
        ('M', 1 << 20),
        ('K', 1 << 10),
    ] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    bytes.to_string()
}

/// The `size=` of a volume line (`local-lvm:vm-101-disk-0,size=8G`).
pub fn volume_size(line: &str) -> Option<u64> {
    line.split(',')
        .find_map(|part| part.strip_prefix("size="))
        .and_then(parse_size)
}

impl Node {
    /// The `max*` columns of container `vmid` from its config.
    pub(crate) fn limits(&self, vmid: u32) -> Option<Limits> {
        let (conf, _) = self.root.read_conf(vmid)?;
        let c = conf.current();
        Some(Limits {
            cores: c.get("cores").and_then(|v| v.parse().ok()).unwrap_or(1),
            maxmem: c
                .get("memory")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(512)
                << 20,
            maxdisk: c.get("rootfs").and_then(volume_size).unwrap_or(8 << 30),
        })
    }

    /// One round of the sampler: every running container's usage into the RRD data.
    pub fn sample_usage(&self) {
        for vmid in self.root.vmids() {
            if !self.backend.is_running(vmid) {
                self.rrd.stopped(vmid);
                continue;
            }
            if let Some(limits) = self.limits(vmid) {
                self.rrd.sample(self.backend.as_ref(), vmid, limits);
            }
        }
    }

    /// `GET /nodes/{node}/lxc/{vmid}/rrddata`.
    pub(crate) fn rrddata(&self, p: &Params) -> Result<Value, ApiErr> {
        let vmid = vmid_of(p)?;
        let timeframe = get(p, "timeframe").unwrap_or("hour");
        let cf = get(p, "cf").unwrap_or("AVERAGE");
        self.rrd
            .rows(vmid, timeframe, cf, self.version.is_9())
            .map(Value::Array)
            .ok_or_else(|| ApiErr::param("timeframe", format!("value '{timeframe}' does not have a value in the enumeration 'hour, day, week, month, year'")))
    }

    /// `PUT /nodes/{node}/lxc/{vmid}/resize`: grows a volume (never shrinks it) and writes the new
    /// size into the config, as a `resize` task.
    pub(crate) fn resize(self: &Arc<Self>, p: &Params, caller: &Caller) -> Result<Value, ApiErr> {
        let vmid = vmid_of(p)?;
        let disk = get(p, "disk").unwrap_or("rootfs").to_string();
        let size = get(p, "size").unwrap_or_default().to_string();
        let (conf, raw) = self.conf(vmid)?;
        if let Some(d) = get(p, "digest") {
            if d != crate::state::digest(&raw) {
                return Err(ApiErr::runtime(
                    "detected modified configuration - file changed by other user? Try again.",
                ));
            }
        }
        if let Some(l) = conf.current().get("lock") {
            return Err(ApiErr::runtime(format!("CT {vmid} is locked ({l})")));
        }
        let Some(line) = conf.current().get(&disk).map(str::to_string) else {
            return Err(ApiErr::runtime(format!("unable to parse config '{disk}'")));
        };
        let volid = line.split(',').next().unwrap_or_default().to_string();
        let Some((storage, _)) = volid.split_once(':') else {
            return Err(ApiErr::runtime(format!(
                "unable to resize mount point '{disk}': not a storage volume"
            )));
        };
        let users = self.users()?;
        // PVE checks the `disk` parameter as an option too, so a token needs VM.Config.Options.
        let vm_path = format!("/vms/{vmid}");
        if !crate::acl::has(&users, caller, &vm_path, "VM.Config.Options") {
            return Err(ApiErr::perm(format!("{vm_path}, VM.Config.Options")));
        }
        if !crate::acl::has(
            &users,
            caller,
            &format!("/storage/{storage}"),
            "Datastore.AllocateSpace",
        ) {
            return Err(ApiErr::perm(format!(
                "/storage/{storage}, Datastore.AllocateSpace"
            )));
        }
        let old = volume_size(&line).unwrap_or(0);
        let (relative, amount) = match size.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, size.as_str()),
        };
        let Some(amount) = parse_size(amount) else {
            return Err(ApiErr::param(
                "size",
                format!("unable to parse size '{size}'"),
            ));
        };
        let new = if relative { old + amount } else { amount };
        if new < old {
            return Err(ApiErr::runtime("unable to shrink disk size"));
        }
        if new == old {
            return Err(ApiErr::runtime("disk is already at specified size"));
        }
        let node = Arc::clone(self);
        Ok(
            self.task("resize", &vmid.to_string(), caller, move |tasks, upid| {
                let _lock = node.root.lock_config(vmid).map_err(|e| e.to_string())?;
                let (mut conf, _) = node.root.read_conf(vmid).ok_or_else(|| {
                    format!(
                        "Configuration file 'nodes/{}/lxc/{vmid}.conf' does not exist",
                        node.root.node()
                    )
                })?;
                let parts: Vec<String> = line
                    .split(',')
                    .filter(|part| !part.starts_with("size="))
                    .map(str::to_string)
                    .chain([format!("size={}", format_size(new))])
                    .collect();
                tasks.log(
                    upid,
                    format!(
                        "  Size of logical volume {volid} changed from {} to {}.",
                        format_size(old),
                        format_size(new)
                    ),
                );
                conf.current_mut()
                    .try_set(&disk, &parts.join(","))
                    .map_err(|e| e.to_string())?;
                node.root.write_conf(vmid, &conf).map_err(|e| e.to_string())
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_write_as_pve_does() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("x"), None);
        assert_eq!(format_size(10 << 30), "10G");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(
            volume_size("local-lvm:vm-101-disk-0,size=8G"),
            Some(8 << 30)
        );
    }
}
