//! Discovery on fixture host trees: an Intel iGPU through DRM (device numbers from sysfs), an NVIDIA
//! card whose nodes are real character devices made with mknod (root), and a host without GPUs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

use appstore_core::manifest::GpuVendor;
use appstore_gpu::{GpuProbe, HostRoot, NodeKind, SysfsProbe};
use std::os::unix::fs::symlink;
use std::path::Path;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn link(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    symlink(target, p).unwrap();
}

fn pci_device(root: &Path, addr: &str, vendor: &str, device: &str, driver: &str, boot_vga: bool) {
    let dir = format!("sys/devices/pci0000:00/{addr}");
    write(root, &format!("{dir}/vendor"), &format!("{vendor}\n"));
    write(root, &format!("{dir}/device"), &format!("{device}\n"));
    write(
        root,
        &format!("{dir}/boot_vga"),
        if boot_vga { "1\n" } else { "0\n" },
    );
    link(
        root,
        &format!("{dir}/driver"),
        &format!("../../../bus/pci/drivers/{driver}"),
    );
    link(
        root,
        &format!("sys/bus/pci/devices/{addr}"),
        &format!("../../../devices/pci0000:00/{addr}"),
    );
}

fn drm_node(root: &Path, name: &str, addr: &str, dev: &str) {
    link(
        root,
        &format!("sys/class/drm/{name}/device"),
        &format!("../../../devices/pci0000:00/{addr}"),
    );
    write(
        root,
        &format!("sys/class/drm/{name}/dev"),
        &format!("{dev}\n"),
    );
}

fn intel_host(root: &Path) {
    pci_device(root, "0000:00:02.0", "0x8086", "0x46a6", "i915", true);
    drm_node(root, "card0", "0000:00:02.0", "226:0");
    drm_node(root, "renderD128", "0000:00:02.0", "226:128");
    link(
        root,
        "sys/class/drm/card0-HDMI-A-1/device",
        "../../../devices/pci0000:00/0000:00:02.0",
    );
}

#[test]
fn finds_an_intel_igpu_with_its_card_and_render_nodes() {
    let dir = tempfile::tempdir().unwrap();
    intel_host(dir.path());
    let inv = SysfsProbe::new(HostRoot::at(dir.path())).probe().unwrap();
    assert_eq!(inv.gpus.len(), 1);
    let gpu = &inv.gpus[0];
    assert_eq!(gpu.pci_address, "0000:00:02.0");
    assert_eq!(gpu.vendor, Some(GpuVendor::Intel));
    assert_eq!((gpu.vendor_id, gpu.device_id), (0x8086, 0x46a6));
    assert_eq!(gpu.driver.as_deref(), Some("i915"));
    assert!(gpu.boot_vga);
    let nodes: Vec<(String, NodeKind, u32, u32)> = gpu
        .nodes
        .iter()
        .map(|n| (n.path.clone(), n.kind, n.major, n.minor))
        .collect();
    assert_eq!(
        nodes,
        [
            ("/dev/dri/card0".to_string(), NodeKind::Card, 226, 0),
            (
                "/dev/dri/renderD128".to_string(),
                NodeKind::Render,
                226,
                128
            )
        ]
    );
    assert!(inv.shared_nodes.is_empty() && inv.nvidia_driver_version.is_none());
}

#[test]
fn a_host_without_gpus_has_an_empty_inventory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sys/class/drm")).unwrap();
    let inv = SysfsProbe::new(HostRoot::at(dir.path())).probe().unwrap();
    assert!(inv.gpus.is_empty());
}

#[test]
fn a_wrong_host_root_is_an_error() {
    let err = SysfsProbe::new(HostRoot::at("/nonexistent/root"))
        .probe()
        .unwrap_err();
    assert_eq!(err.to_string(), "cannot read /nonexistent/root/sys");
}

fn mknod(path: &Path, major: u32, minor: u32) -> bool {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::process::Command::new("mknod")
        .arg(path)
        .args(["c", &major.to_string(), &minor.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn reads_nvidia_device_numbers_from_real_nodes_as_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    intel_host(root);
    pci_device(root, "0000:01:00.0", "0x10de", "0x2684", "nvidia", false);
    write(
        root,
        "proc/driver/nvidia/gpus/0000:01:00.0/information",
        "Model: NVIDIA GeForce RTX 4090\nIRQ: 150\nDevice Minor: 0\n",
    );
    write(root, "proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.127.05  Tue Oct  8 03:22:07 UTC 2024\nGCC version:  gcc version 12.2.0\n");
    // Unusual numbers on purpose: they must come from the nodes, not from a table.
    let made = mknod(&root.join("dev/nvidia0"), 195, 0)
        && mknod(&root.join("dev/nvidiactl"), 195, 255)
        && mknod(&root.join("dev/nvidia-uvm"), 509, 0)
        && mknod(&root.join("dev/nvidia-caps/nvidia-cap1"), 511, 1)
        && mknod(&root.join("dev/dri/renderD128"), 226, 129);
    if !made {
        assert!(
            std::env::var("APPSTORE_REQUIRE_LXC").as_deref() != Ok("1"),
            "mknod needs root, which CI has"
        );
        eprintln!("skipped: mknod needs root");
        return;
    }
    let inv = SysfsProbe::new(HostRoot::at(root)).probe().unwrap();
    assert_eq!(inv.gpus.len(), 2);
    let nv = &inv.gpus[1];
    assert_eq!(nv.vendor, Some(GpuVendor::Nvidia));
    assert_eq!(nv.nodes[0].path, "/dev/nvidia0");
    assert_eq!((nv.nodes[0].major, nv.nodes[0].minor), (195, 0));
    // The real node wins over sysfs's `dev` file.
    assert_eq!(inv.gpus[0].nodes[1].minor, 129);
    let shared: Vec<(&str, u32, u32)> = inv
        .shared_nodes
        .iter()
        .map(|n| (n.path.as_str(), n.major, n.minor))
        .collect();
    assert_eq!(
        shared,
        [
            ("/dev/nvidiactl", 195, 255),
            ("/dev/nvidia-uvm", 509, 0),
            ("/dev/nvidia-caps/nvidia-cap1", 511, 1)
        ]
    );
    assert_eq!(inv.nvidia_driver_version.as_deref(), Some("550.127.05"));
}
