//! GPU discovery: DRM devices (`card*`, `renderD*`) with their PCI address, vendor, device id, driver
//! and boot_vga flag, and NVIDIA's device nodes and driver version, read from a configurable host root
//! (`<root>/sys`, `<root>/dev`, `<root>/proc`) so that tests and catalog maintainers can use fixture
//! trees. Device numbers are read from the nodes themselves, never assumed.

use appstore_core::manifest::GpuVendor;
use serde::Serialize;
use std::path::{Path, PathBuf};

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
            let Some((major, minor)) = device_numbers(&node_path, Some(&class_dir.join("dev")))
            else {
                continue;
            };
            let gpu = Self::gpu_for(&mut inv.gpus, found);
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
            let Some(minor) = info
                .lines()
                .find_map(|l| l.strip_prefix("Device Minor:"))
                .and_then(|m| m.trim().parse::<u32>().ok())
            else {
                continue;
            };
            let node_path = self.root.dev().join(format!("nvidia{minor}"));
            let Some((major, minor)) = device_numbers(&node_path, None) else {
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
            });
            let gpu = Self::gpu_for(&mut inv.gpus, found);
            gpu.nodes.push(DeviceNode {
                path: self.root.container_path(&node_path),
                kind: NodeKind::NvidiaGpu,
                major,
                minor,
            });
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
        inv.gpus.sort_by(|a, b| a.pci_address.cmp(&b.pci_address));
        Ok(inv)
    }
}
