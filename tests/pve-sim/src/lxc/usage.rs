//! A running container's usage counters for the node's RRD data: CPU, memory and block I/O from
//! its cgroup (v2), network from the host side of its first veth (what the host sends is what the
//! container receives).

use super::LxcBackend;
use crate::backend::Usage;
use std::path::{Path, PathBuf};

impl LxcBackend {
    /// The counters of running container `vmid`.
    pub(super) fn read_usage(&self, vmid: u32) -> Option<Usage> {
        let pid = self.init_pid(vmid).ok()?;
        let cgroup = cgroup_dir(pid)?;
        let read = |name: &str| std::fs::read_to_string(cgroup.join(name)).ok();
        let cpu_usec = read("cpu.stat").and_then(|t| field(&t, "usage_usec"));
        let mem = read("memory.current").and_then(|t| t.trim().parse().ok());
        let (disk_read, disk_write) = read("io.stat").map(|t| io_bytes(&t)).unwrap_or_default();
        let veth = Path::new("/sys/class/net").join(self.veth_name(vmid, 0));
        let counter = |name: &str| {
            std::fs::read_to_string(veth.join("statistics").join(name))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Some(Usage {
            cpu_ns: cpu_usec.unwrap_or(0).saturating_mul(1000),
            mem: mem.unwrap_or(0),
            net_in: counter("tx_bytes"),
            net_out: counter("rx_bytes"),
            disk_read,
            disk_write,
            disk_used: 0,
        })
    }
}

/// The cgroup v2 directory of process `pid`: for a container's init, the container's own cgroup
/// (systemd inside moves itself into `init.scope` below it).
fn cgroup_dir(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let rel = rel.strip_suffix("/init.scope").unwrap_or(rel);
    let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

/// `name value` from a flat keyed file such as `cpu.stat`.
fn field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Bytes read and written over every device of an `io.stat`.
fn io_bytes(text: &str) -> (u64, u64) {
    let mut total = (0, 0);
    for word in text.split_whitespace() {
        if let Some(v) = word.strip_prefix("rbytes=") {
            total.0 += v.parse::<u64>().unwrap_or(0);
        } else if let Some(v) = word.strip_prefix("wbytes=") {
            total.1 += v.parse::<u64>().unwrap_or(0);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_files_are_read() {
        assert_eq!(
            field("usage_usec 1234\nuser_usec 1000\n", "usage_usec"),
            Some(1234)
        );
        assert_eq!(
            io_bytes("8:0 rbytes=100 wbytes=20 rios=1\n253:0 rbytes=5 wbytes=7 rios=2\n"),
            (105, 27)
        );
        // This process's own cgroup is found (every Linux with cgroup v2 has one).
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            assert!(cgroup_dir(std::process::id()).is_some());
        }
    }
}
