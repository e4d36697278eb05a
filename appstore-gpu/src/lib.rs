//! GPU discovery: DRM devices (`card*`, `renderD*`) with their PCI address, vendor, device id, driver
//! and boot_vga flag, and NVIDIA's device nodes and driver version, read from a configurable host root
//! (`<root>/sys`, `<root>/dev`, `<root>/proc`) so that tests and catalog maintainers can use fixture
//! trees. Device numbers are read from the nodes themselves, never assumed.

use appstore_core::manifest::GpuVendor;
use serde::Serialize;
use std::path::{Path, PathBuf};

pub mod fixture;
pub mod hotplug;

/// Errors of GPU discovery.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A directory that must be listable could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Where the host's `sys`, `dev` and `proc` trees are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot {
    root: PathBuf,
}

impl HostRoot {
    /// The real host (`/`).
    pub fn system() -> Self {
        HostRoot {
            root: PathBuf::from("/"),
        }
    }

    /// A fixture tree with `sys/`, `dev/` and `proc/` below `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        HostRoot { root: root.into() }
    }

    fn sys(&self) -> PathBuf {
        self.root.join("sys")
    }

    fn dev(&self) -> PathBuf {
        self.root.join("dev")
    }

    fn proc(&self) -> PathBuf {
        self.root.join("proc")
    }

    /// The path a container sees for a node under this root's `dev/` (always `/dev/...`).
    fn container_path(&self, node: &Path) -> String {
        let rel = node.strip_prefix(self.dev()).unwrap_or(node);
        format!("/dev/{}", rel.display())
    }
}

/// Device nodes are the core's: the attach profiles take them as discovered here.
pub use appstore_core::gpu::{HostNode as DeviceNode, NodeKind};

/// One GPU (a PCI device with DRM or NVIDIA nodes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    /// PCI address, `0000:00:02.0`.
    pub pci_address: String,
    /// Vendor, when it is one the store supports.
    pub vendor: Option<GpuVendor>,
    /// PCI vendor id.
    pub vendor_id: u16,
    /// PCI device id.
    pub device_id: u16,
    /// Kernel driver (`i915`, `amdgpu`, `nvidia`), when bound.
    pub driver: Option<String>,
    /// The firmware's boot display.
    pub boot_vga: bool,
    /// Its nodes.
    pub nodes: Vec<DeviceNode>,
    /// A name for people: `nvidia-smi`'s, else the PCI ids database's, else the driver's model line.
    pub name: Option<String>,
    /// NVIDIA's GPU UUID, when known.
    pub uuid: Option<String>,
    /// What keeps it from being passed through, with the fix.
    pub problems: Vec<String>,
}

/// Everything found on a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GpuInventory {
    /// GPUs ordered by PCI address.
    pub gpus: Vec<Gpu>,
    /// Nodes shared by every NVIDIA GPU (`nvidiactl`, `nvidia-uvm`, ...) and `/dev/kfd`.
    pub shared_nodes: Vec<DeviceNode>,
    /// NVIDIA kernel driver version from `/proc/driver/nvidia/version`.
    pub nvidia_driver_version: Option<String>,
}

/// Finds GPUs. One real implementation reads the host; tests give it fixture trees.
pub trait GpuProbe {
    /// The current inventory.
    fn probe(&self) -> Result<GpuInventory, Error>;
}

/// Reads sysfs, /dev and /proc below a [`HostRoot`].
#[derive(Debug, Clone)]
pub struct SysfsProbe {
    root: HostRoot,
}

impl SysfsProbe {
    /// A probe of `root`.
    pub fn new(root: HostRoot) -> Self {
        SysfsProbe { root }
    }
}

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn read_hex(path: &Path) -> Option<u16> {
    let s = read_trim(path)?;
    u16::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// Major and minor of a character device node, from the node itself; else from sysfs's `dev` file.
fn device_numbers(node: &Path, sysfs_dev: Option<&Path>) -> Option<(u32, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        if let Ok(meta) = std::fs::metadata(node) {
            if meta.file_type().is_char_device() {
                return Some(appstore_core::device::split_dev(meta.rdev()));
            }
        }
    }
    let text = read_trim(sysfs_dev?)?;
    let (ma, mi) = text.split_once(':')?;
    Some((ma.parse().ok()?, mi.parse().ok()?))
}

/// Vendor of a PCI vendor id.
pub fn vendor_of(vendor_id: u16) -> Option<GpuVendor> {
    match vendor_id {
        0x8086 => Some(GpuVendor::Intel),
        0x1002 | 0x1022 => Some(GpuVendor::Amd),
        0x10de => Some(GpuVendor::Nvidia),
        _ => None,
    }
}

fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

impl SysfsProbe {
    fn pci_device(&self, device_link: &Path) -> Option<Gpu> {
        let real = std::fs::canonicalize(device_link).ok()?;
        let pci_address = real.file_name()?.to_string_lossy().into_owned();
        let vendor_id = read_hex(&real.join("vendor"))?;
        Some(Gpu {
            pci_address,
            vendor: vendor_of(vendor_id),
            vendor_id,
            device_id: read_hex(&real.join("device")).unwrap_or(0),
            driver: std::fs::read_link(real.join("driver"))
                .ok()
                .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned())),
            boot_vga: read_trim(&real.join("boot_vga")).as_deref() == Some("1"),
            nodes: Vec::new(),
            name: None,
            uuid: None,
            problems: Vec::new(),
        })
    }

    fn gpu_for(gpus: &mut Vec<Gpu>, found: Gpu) -> &mut Gpu {
        let pos = match gpus.iter().position(|g| g.pci_address == found.pci_address) {
            Some(p) => p,
            None => {
                gpus.push(found);
                gpus.len() - 1
            }
        };
        &mut gpus[pos]
    }
}

impl GpuProbe for SysfsProbe {
    fn probe(&self) -> Result<GpuInventory, Error> {
        let sys = self.root.sys();
        if let Err(source) = std::fs::read_dir(&sys) {
            return Err(Error::Read { path: sys, source });
        }
        let mut inv = GpuInventory::default();
        let drm = self.root.sys().join("class/drm");
        for name in sorted_names(&drm) {
            let kind = if name.starts_with("renderD") {
                NodeKind::Render
            } else if name.starts_with("card") && !name.contains('-') {
                NodeKind::Card
            } else {
                continue; // connectors such as card0-HDMI-A-1
            };
            let class_dir = drm.join(&name);
            let Some(found) = self.pci_device(&class_dir.join("device")) else {
                continue;
            };
            let node_path = self.root.dev().join("dri").join(&name);
            // A fixture tree made without root has no real nodes: its sysfs `dev` file stands in.
            // On the real host a missing node is a problem to report, not to paper over.
            let sysfs_dev = (self.root != HostRoot::system()).then(|| class_dir.join("dev"));
            let numbers = device_numbers(&node_path, sysfs_dev.as_deref());
            let gpu = Self::gpu_for(&mut inv.gpus, found);
            let Some((major, minor)) = numbers else {
                gpu.problems.push(format!(
                    "{} is missing although the kernel has {name} (fix: udev makes it; check `ls -l /dev/dri` and the udev rules)",
                    self.root.container_path(&node_path)
                ));
                continue;
            };
            gpu.nodes.push(DeviceNode {
                path: self.root.container_path(&node_path),
                kind,
                major,
                minor,
            });
        }

        // NVIDIA's proprietary driver has no DRM render node; its /dev/nvidiaN minor is the GPU's index
        // in /proc/driver/nvidia/gpus/<pci>/information ("Device Minor").
        let nv_gpus = self.root.proc().join("driver/nvidia/gpus");
        for pci in sorted_names(&nv_gpus) {
            let info =
                std::fs::read_to_string(nv_gpus.join(&pci).join("information")).unwrap_or_default();
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            };
            let Some(minor) = field("Device Minor:").and_then(|m| m.parse::<u32>().ok()) else {
                continue;
            };
            let device_link = self.root.sys().join("bus/pci/devices").join(&pci);
            let found = self.pci_device(&device_link).unwrap_or(Gpu {
                pci_address: pci.clone(),
                vendor: Some(GpuVendor::Nvidia),
                vendor_id: 0x10de,
                device_id: 0,
                driver: Some("nvidia".into()),
                boot_vga: false,
                nodes: Vec::new(),
                name: None,
                uuid: None,
                problems: Vec::new(),
            });
            let gpu = Self::gpu_for(&mut inv.gpus, found);
            gpu.name = gpu.name.take().or_else(|| field("Model:"));
            gpu.uuid = gpu.uuid.take().or_else(|| field("GPU UUID:"));
            let node_path = self.root.dev().join(format!("nvidia{minor}"));
            match device_numbers(&node_path, None) {
                Some((major, minor)) => gpu.nodes.push(DeviceNode {
                    path: self.root.container_path(&node_path),
                    kind: NodeKind::NvidiaGpu,
                    major,
                    minor,
                }),
                None => gpu.problems.push(format!(
                    "/dev/nvidia{minor} is missing: the driver is loaded but made no device node (fix: run `nvidia-modprobe -c {minor}` or start nvidia-persistenced on the host)"
                )),
            }
        }

        let dev = self.root.dev();
        let shared = [
            ("nvidiactl", NodeKind::NvidiaCtl),
            ("nvidia-uvm", NodeKind::NvidiaUvm),
            ("nvidia-uvm-tools", NodeKind::NvidiaUvmTools),
            ("nvidia-modeset", NodeKind::NvidiaModeset),
            ("kfd", NodeKind::Kfd),
        ];
        for (name, kind) in shared {
            let p = dev.join(name);
            if let Some((major, minor)) = device_numbers(&p, None) {
                inv.shared_nodes.push(DeviceNode {
                    path: self.root.container_path(&p),
                    kind,
                    major,
                    minor,
                });
            }
        }
        for name in sorted_names(&dev.join("nvidia-caps")) {
            let p = dev.join("nvidia-caps").join(&name);
            if let Some((major, minor)) = device_numbers(&p, None) {
                inv.shared_nodes.push(DeviceNode {
                    path: self.root.container_path(&p),
                    kind: NodeKind::NvidiaCap,
                    major,
                    minor,
                });
            }
        }

        inv.nvidia_driver_version = read_trim(&self.root.proc().join("driver/nvidia/version"))
            .and_then(|text| {
                // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.127.05  Tue Oct ..."
                text.lines()
                    .find(|l| l.starts_with("NVRM version"))
                    .and_then(|l| {
                        l.split_whitespace().find(|w| {
                            w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.')
                        })
                    })
                    .map(str::to_string)
            });
        let ids = self.pci_ids();
        for g in &mut inv.gpus {
            if let Some(name) = ids
                .as_deref()
                .and_then(|t| pci_name(t, g.vendor_id, g.device_id))
            {
                if g.name.is_none() || g.vendor != Some(GpuVendor::Nvidia) {
                    g.name = Some(name);
                }
            }
        }
        for (pci, name, uuid) in self.nvidia_smi() {
            if let Some(g) = inv.gpus.iter_mut().find(|g| g.pci_address == pci) {
                g.name = Some(name);
                g.uuid = Some(uuid);
            }
        }
        if inv.gpus.iter().any(|g| g.vendor == Some(GpuVendor::Nvidia))
            && !inv
                .shared_nodes
                .iter()
                .any(|n| n.kind == NodeKind::NvidiaCtl)
        {
            for g in inv
                .gpus
                .iter_mut()
                .filter(|g| g.vendor == Some(GpuVendor::Nvidia))
            {
                g.problems.push("/dev/nvidiactl is missing (fix: load the NVIDIA driver on the host; `nvidia-smi` makes the nodes)".into());
            }
        }
        inv.gpus.sort_by(|a, b| a.pci_address.cmp(&b.pci_address));
        Ok(inv)
    }
}

impl SysfsProbe {
    /// The PCI ids database of the host, when it has one.
    fn pci_ids(&self) -> Option<String> {
        ["usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids"]
            .iter()
            .find_map(|p| std::fs::read_to_string(self.root.root.join(p)).ok())
    }

    /// `nvidia-smi`'s (PCI address, name, UUID) per GPU, when the host has it.
    fn nvidia_smi(&self) -> Vec<(String, String, String)> {
        let bin = self.root.root.join("usr/bin/nvidia-smi");
        if !bin.is_file() {
            return Vec::new();
        }
        let Ok(mut child) = std::process::Command::new(&bin)
            .args(["--query-gpu=pci.bus_id,name,uuid", "--format=csv,noheader"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
        else {
            return Vec::new();
        };
        // A hung driver must not hang discovery: five seconds, then it is killed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                _ => {
                    // A process stuck in the driver may not die at once: reap it elsewhere.
                    let _ = child.kill();
                    std::thread::spawn(move || child.wait());
                    return Vec::new();
                }
            }
        }
        let mut text = String::new();
        if let Some(mut out) = child.stdout.take() {
            use std::io::Read;
            let _ = out.read_to_string(&mut text);
        }
        parse_nvidia_smi(&text)
    }
}

/// Lines `00000000:01:00.0, NVIDIA GeForce RTX 4090, GPU-...` as (`0000:01:00.0`, name, uuid).
pub fn parse_nvidia_smi(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split(',').map(str::trim);
            let bus = parts.next()?;
            let (name, uuid) = (parts.next()?, parts.next()?);
            // nvidia-smi prints an 8-digit domain; sysfs a 4-digit one.
            let pci = bus.get(bus.len().checked_sub(12)?..)?.to_ascii_lowercase();
            Some((pci, name.to_string(), uuid.to_string()))
        })
        .collect()
}

/// The name of `vendor:device` in a PCI ids database text.
pub fn pci_name(db: &str, vendor: u16, device: u16) -> Option<String> {
    let (v, d) = (format!("{vendor:04x}"), format!("{device:04x}"));
    let mut in_vendor = false;
    for line in db.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if !line.starts_with('\t') {
            if in_vendor {
                return None;
            }
            in_vendor = line.get(..4) == Some(v.as_str());
        } else if in_vendor && !line.starts_with("\t\t") {
            let rest = line.trim_start_matches('\t');
            if rest.get(..4) == Some(d.as_str()) {
                return Some(rest[4..].trim().to_string());
            }
        }
    }
    None
}

/// The host's CPU cores and memory (what resource caps are measured against).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HostResources {
    /// Logical CPUs.
    pub cores: usize,
    /// Total memory, MiB.
    pub memory_mb: u64,
}

/// Reads the host's cores and memory (through sysinfo).
pub fn host_resources() -> HostResources {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
    HostResources {
        cores: sys.cpus().len().max(1),
        memory_mb: sys.total_memory() / (1024 * 1024),
    }
}
