//! Fixture host trees (`sys/`, `dev/`, `proc/` below a directory) shaped like real hosts, for
//! tests, for the demo, and for catalog maintainers who want to see what the store would find
//! (`pve-appstore gpus --host-root DIR`). Device nodes are real character devices when this process
//! may create them (root); otherwise DRM nodes are described by sysfs `dev` files only, and NVIDIA
//! nodes are missing (the inventory then says so, as on a host whose driver made no nodes).

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// A fixture host being built.
#[derive(Debug, Clone)]
pub struct FixtureHost {
    root: PathBuf,
    /// Device nodes are real character devices (mknod worked).
    pub real_nodes: bool,
}

/// The fixture hosts the tests and the demo use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A host with no GPU.
    NoGpu,
    /// An Intel iGPU (the boot display).
    IntelIgpu,
    /// An AMD dGPU with ROCm's `/dev/kfd`, and an AMD iGPU as the boot display.
    AmdDgpuAndIgpu,
    /// Two NVIDIA GPUs with the driver loaded.
    TwoNvidia,
    /// An Intel iGPU, an AMD dGPU and an NVIDIA GPU.
    Mixed,
    /// The demo's host: an Intel iGPU and an NVIDIA card.
    Demo,
}

impl Scenario {
    /// Every scenario, for tests.
    pub const ALL: [Scenario; 6] = [
        Scenario::NoGpu,
        Scenario::IntelIgpu,
        Scenario::AmdDgpuAndIgpu,
        Scenario::TwoNvidia,
        Scenario::Mixed,
        Scenario::Demo,
    ];
}

/// The demo host's cards: (PCI address, name).
pub const DEMO_CARDS: [(&str, &str); 2] = [
    ("0000:00:02.0", "Intel Alder Lake-P GT2 [Iris Xe Graphics]"),
    ("0000:01:00.0", "NVIDIA GeForce RTX 3060"),
];

const PCI_IDS: &str = "\
# A few lines of the PCI ids database (https://pci-ids.ucw.cz), in its format.
1002  Advanced Micro Devices, Inc. [AMD/ATI]
\t164e  Raphael
\t744c  Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]
10de  NVIDIA Corporation
\t2484  GA104 [GeForce RTX 3070]
\t2504  GA106 [GeForce RTX 3060 Lite Hash Rate]
\t2684  AD102 [GeForce RTX 4090]
8086  Intel Corporation
\t4680  AlderLake-S GT1
\t46a6  Alder Lake-P GT2 [Iris Xe Graphics]
";

impl FixtureHost {
    /// An empty host at `root` (created).
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<FixtureHost> {
        let root = root.into();
        for d in ["sys/class/drm", "sys/bus/pci/devices", "dev", "proc"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        let probe = root.join("dev/.mknod-probe");
        let real_nodes = mknod(&probe, 1, 3);
        let _ = std::fs::remove_file(&probe);
        Ok(FixtureHost { root, real_nodes })
    }

    /// Builds `scenario` at `root`.
    pub fn scenario(root: impl Into<PathBuf>, scenario: Scenario) -> std::io::Result<FixtureHost> {
        let host = FixtureHost::new(root)?;
        host.write("usr/share/misc/pci.ids", PCI_IDS)?;
        match scenario {
            Scenario::NoGpu => {}
            Scenario::IntelIgpu => host.intel("0000:00:02.0", 0x46a6, 0, true)?,
            Scenario::AmdDgpuAndIgpu => {
                host.amd("0000:03:00.0", 0x744c, 0, false)?;
                host.amd("0000:0c:00.0", 0x164e, 1, true)?;
                host.kfd(236, 0)?;
            }
            Scenario::TwoNvidia => {
                host.nvidia("0000:01:00.0", 0x2684, 0, "NVIDIA GeForce RTX 4090")?;
                host.nvidia("0000:02:00.0", 0x2484, 1, "NVIDIA GeForce RTX 3070")?;
                host.nvidia_driver("550.127.05")?;
            }
            Scenario::Mixed => {
                host.intel("0000:00:02.0", 0x46a6, 0, true)?;
                host.amd("0000:03:00.0", 0x744c, 1, false)?;
                host.nvidia("0000:01:00.0", 0x2504, 0, "NVIDIA GeForce RTX 3060")?;
                host.nvidia_driver("550.127.05")?;
            }
            Scenario::Demo => {
                for (addr, _) in DEMO_CARDS {
                    host.plug_demo_card(addr)?;
                }
                host.nvidia_driver("550.127.05")?;
            }
        }
        Ok(host)
    }

    /// The tree's root (give it to `HostRoot::at`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn write(&self, rel: &str, text: &str) -> std::io::Result<()> {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, text)
    }

    fn link(&self, rel: &str, target: &str) -> std::io::Result<()> {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let _ = std::fs::remove_file(&p);
        symlink(target, p)
    }

    fn node(&self, rel: &str, major: u32, minor: u32) {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::remove_file(&p);
        if self.real_nodes {
            mknod(&p, major, minor);
        }
    }

    /// A PCI display device.
    pub fn pci_device(
        &self,
        addr: &str,
        vendor: u16,
        device: u16,
        driver: &str,
        boot_vga: bool,
    ) -> std::io::Result<()> {
        let dir = format!("sys/devices/pci0000:00/{addr}");
        self.write(&format!("{dir}/vendor"), &format!("0x{vendor:04x}\n"))?;
        self.write(&format!("{dir}/device"), &format!("0x{device:04x}\n"))?;
        self.write(&format!("{dir}/class"), "0x030000\n")?;
        self.write(
            &format!("{dir}/boot_vga"),
            if boot_vga { "1\n" } else { "0\n" },
        )?;
        self.link(
            &format!("{dir}/driver"),
            &format!("../../../bus/pci/drivers/{driver}"),
        )?;
        self.link(
            &format!("sys/bus/pci/devices/{addr}"),
            &format!("../../../devices/pci0000:00/{addr}"),
        )
    }

    /// A DRM node (`card0`, `renderD128`) of the PCI device at `addr`.
    pub fn drm_node(&self, name: &str, addr: &str, major: u32, minor: u32) -> std::io::Result<()> {
        self.link(
            &format!("sys/class/drm/{name}/device"),
            &format!("../../../devices/pci0000:00/{addr}"),
        )?;
        self.write(
            &format!("sys/class/drm/{name}/dev"),
            &format!("{major}:{minor}\n"),
        )?;
        self.node(&format!("dev/dri/{name}"), major, minor);
        Ok(())
    }

    /// An Intel GPU with `card<index>` and `renderD<128+index>`.
    pub fn intel(
        &self,
        addr: &str,
        device: u16,
        index: u32,
        boot_vga: bool,
    ) -> std::io::Result<()> {
        self.pci_device(addr, 0x8086, device, "i915", boot_vga)?;
        self.drm_node(&format!("card{index}"), addr, 226, index)?;
        self.drm_node(&format!("renderD{}", 128 + index), addr, 226, 128 + index)
    }

    /// An AMD GPU with `card<index>` and `renderD<128+index>`.
    pub fn amd(&self, addr: &str, device: u16, index: u32, boot_vga: bool) -> std::io::Result<()> {
        self.pci_device(addr, 0x1002, device, "amdgpu", boot_vga)?;
        self.drm_node(&format!("card{index}"), addr, 226, index)?;
        self.drm_node(&format!("renderD{}", 128 + index), addr, 226, 128 + index)
    }

    /// ROCm's `/dev/kfd`.
    pub fn kfd(&self, major: u32, minor: u32) -> std::io::Result<()> {
        self.node("dev/kfd", major, minor);
        Ok(())
    }

    /// An NVIDIA GPU on the proprietary driver: `/proc/driver/nvidia/gpus/<addr>/information` and
    /// `/dev/nvidia<minor>` (major 195, as the driver registers it).
    pub fn nvidia(&self, addr: &str, device: u16, minor: u32, model: &str) -> std::io::Result<()> {
        self.pci_device(addr, 0x10de, device, "nvidia", false)?;
        self.write(
            &format!("proc/driver/nvidia/gpus/{addr}/information"),
            &format!("Model: \t\t {model}\nIRQ:   \t\t 150\nGPU UUID: \t GPU-{minor:08x}-0000-4000-8000-{addr_hex}\nDevice Minor: \t {minor}\nBus Location: \t {addr}\n",
                addr_hex = addr.replace([':', '.'], "")),
        )?;
        self.node(&format!("dev/nvidia{minor}"), 195, minor);
        Ok(())
    }

    /// NVIDIA's driver version and shared nodes (`nvidiactl`, `nvidia-uvm`, `nvidia-uvm-tools`,
    /// `nvidia-modeset`, one capability node).
    pub fn nvidia_driver(&self, version: &str) -> std::io::Result<()> {
        self.write(
            "proc/driver/nvidia/version",
            &format!("NVRM version: NVIDIA UNIX x86_64 Kernel Module  {version}  Tue Oct  8 03:22:07 UTC 2024\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"),
        )?;
        self.node("dev/nvidiactl", 195, 255);
        self.node("dev/nvidia-modeset", 195, 254);
        self.node("dev/nvidia-uvm", 510, 0);
        self.node("dev/nvidia-uvm-tools", 510, 1);
        self.node("dev/nvidia-caps/nvidia-cap1", 511, 1);
        Ok(())
    }

    /// Plugs in the demo host's card at `addr` (one of [`DEMO_CARDS`]).
    pub fn plug_demo_card(&self, addr: &str) -> std::io::Result<()> {
        match addr {
            "0000:00:02.0" => self.intel(addr, 0x46a6, 0, true),
            "0000:01:00.0" => self.nvidia(addr, 0x2504, 0, "NVIDIA GeForce RTX 3060"),
            other => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the demo host has no card at {other}"),
            )),
        }
    }

    /// Removes the GPU at `addr` as an unplug does: its PCI device, DRM nodes, NVIDIA entry and
    /// device nodes.
    pub fn unplug(&self, addr: &str) -> std::io::Result<()> {
        let drm = self.root.join("sys/class/drm");
        for entry in std::fs::read_dir(&drm)?.flatten() {
            let device = std::fs::canonicalize(entry.path().join("device")).ok();
            if device.as_deref().and_then(Path::file_name) == Some(std::ffi::OsStr::new(addr)) {
                let name = entry.file_name();
                let _ = std::fs::remove_file(self.root.join("dev/dri").join(&name));
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        let info = self.root.join(format!("proc/driver/nvidia/gpus/{addr}"));
        if let Ok(text) = std::fs::read_to_string(info.join("information")) {
            if let Some(minor) = text
                .lines()
                .find_map(|l| l.strip_prefix("Device Minor:"))
                .map(str::trim)
            {
                let _ = std::fs::remove_file(self.root.join(format!("dev/nvidia{minor}")));
            }
            std::fs::remove_dir_all(&info)?;
        }
        let _ = std::fs::remove_file(self.root.join(format!("sys/bus/pci/devices/{addr}")));
        let dir = self.root.join(format!("sys/devices/pci0000:00/{addr}"));
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        Ok(())
    }
}

/// Makes a character device node (root only); false when it cannot.
fn mknod(path: &Path, major: u32, minor: u32) -> bool {
    std::process::Command::new("mknod")
        .arg(path)
        .args(["c", &major.to_string(), &minor.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
