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

mod scenarios {
    use appstore_core::manifest::GpuVendor;
    use appstore_gpu::fixture::{FixtureHost, Scenario};
    use appstore_gpu::{GpuInventory, GpuProbe, HostRoot, NodeKind, SysfsProbe};

    fn probe(host: &FixtureHost) -> GpuInventory {
        SysfsProbe::new(HostRoot::at(host.root())).probe().unwrap()
    }

    /// Real nodes need root; CI has it, and there the node assertions must run.
    fn nodes_expected(host: &FixtureHost) -> bool {
        if !host.real_nodes {
            assert!(
                std::env::var("APPSTORE_REQUIRE_LXC").as_deref() != Ok("1"),
                "mknod needs root, which CI has"
            );
        }
        host.real_nodes
    }

    fn summary(inv: &GpuInventory) -> Vec<(String, Option<GpuVendor>, bool, usize)> {
        inv.gpus
            .iter()
            .map(|g| (g.pci_address.clone(), g.vendor, g.boot_vga, g.nodes.len()))
            .collect()
    }

    #[test]
    fn no_gpu() {
        let dir = tempfile::tempdir().unwrap();
        let host = FixtureHost::scenario(dir.path(), Scenario::NoGpu).unwrap();
        let inv = probe(&host);
        assert!(inv.gpus.is_empty() && inv.shared_nodes.is_empty());
    }

    #[test]
    fn intel_igpu_named_from_the_pci_ids_database() {
        let dir = tempfile::tempdir().unwrap();
        let host = FixtureHost::scenario(dir.path(), Scenario::IntelIgpu).unwrap();
        let inv = probe(&host);
        assert_eq!(
            summary(&inv),
            [("0000:00:02.0".into(), Some(GpuVendor::Intel), true, 2)]
        );
        assert_eq!(
            inv.gpus[0].name.as_deref(),
            Some("Alder Lake-P GT2 [Iris Xe Graphics]")
        );
        assert!(inv.gpus[0].problems.is_empty());
    }

    #[test]
    fn amd_dgpu_and_igpu_with_rocm() {
        let dir = tempfile::tempdir().unwrap();
        let host = FixtureHost::scenario(dir.path(), Scenario::AmdDgpuAndIgpu).unwrap();
        let inv = probe(&host);
        assert_eq!(
            summary(&inv),
            [
                ("0000:03:00.0".into(), Some(GpuVendor::Amd), false, 2),
                ("0000:0c:00.0".into(), Some(GpuVendor::Amd), true, 2)
            ]
        );
        let render: Vec<&str> = inv.gpus[0]
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Render)
            .map(|n| n.path.as_str())
            .collect();
        assert_eq!(render, ["/dev/dri/renderD128"]);
        if nodes_expected(&host) {
            let kfd = inv
                .shared_nodes
                .iter()
                .find(|n| n.kind == NodeKind::Kfd)
                .unwrap();
            assert_eq!((kfd.major, kfd.minor), (236, 0));
        }
    }

    #[test]
    fn two_nvidia_gpus_with_the_driver_version_and_shared_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let host = FixtureHost::scenario(dir.path(), Scenario::TwoNvidia).unwrap();
        let inv = probe(&host);
        assert_eq!(inv.nvidia_driver_version.as_deref(), Some("550.127.05"));
        let names: Vec<&str> = inv
            .gpus
            .iter()
            .map(|g| g.name.as_deref().unwrap())
            .collect();
        assert_eq!(
            names,
            ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3070"]
        );
        assert!(inv.gpus[0].uuid.as_deref().unwrap().starts_with("GPU-"));
        if nodes_expected(&host) {
            assert_eq!(
                summary(&inv)[1],
                ("0000:02:00.0".into(), Some(GpuVendor::Nvidia), false, 1)
            );
            assert_eq!(
                (inv.gpus[1].nodes[0].major, inv.gpus[1].nodes[0].minor),
                (195, 1)
            );
            let kinds: Vec<NodeKind> = inv.shared_nodes.iter().map(|n| n.kind).collect();
            assert_eq!(
                kinds,
                [
                    NodeKind::NvidiaCtl,
                    NodeKind::NvidiaUvm,
                    NodeKind::NvidiaUvmTools,
                    NodeKind::NvidiaModeset,
                    NodeKind::NvidiaCap
                ]
            );
            assert!(inv.gpus.iter().all(|g| g.problems.is_empty()));
        } else {
            // Without nodes the GPUs are still listed, each with the missing node and the fix.
            assert!(
                inv.gpus[0].problems[0].contains("/dev/nvidia0 is missing"),
                "{:?}",
                inv.gpus[0].problems
            );
        }
    }

    #[test]
    fn mixed_host_and_an_unplug() {
        let dir = tempfile::tempdir().unwrap();
        let host = FixtureHost::scenario(dir.path(), Scenario::Mixed).unwrap();
        let inv = probe(&host);
        let vendors: Vec<Option<GpuVendor>> = inv.gpus.iter().map(|g| g.vendor).collect();
        assert_eq!(
            vendors,
            [
                Some(GpuVendor::Intel),
                Some(GpuVendor::Nvidia),
                Some(GpuVendor::Amd)
            ]
        );
        host.unplug("0000:01:00.0").unwrap();
        host.unplug("0000:03:00.0").unwrap();
        let after = probe(&host);
        assert_eq!(
            summary(&after),
            [("0000:00:02.0".into(), Some(GpuVendor::Intel), true, 2)]
        );
        if host.real_nodes {
            assert!(
                !host.root().join("dev/nvidia0").exists()
                    && !host.root().join("dev/dri/renderD129").exists()
            );
        }
    }

    #[test]
    fn nvidia_smi_names_and_uuids_win_when_present() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let host = FixtureHost::scenario(dir.path(), Scenario::Demo).unwrap();
        let smi = dir.path().join("usr/bin/nvidia-smi");
        std::fs::create_dir_all(smi.parent().unwrap()).unwrap();
        std::fs::write(&smi, "#!/bin/sh\necho '00000000:01:00.0, NVIDIA GeForce RTX 3060 12GB, GPU-5c1e2f3a-1111-2222-3333-444455556666'\n").unwrap();
        std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
        let inv = probe(&host);
        let nv = inv
            .gpus
            .iter()
            .find(|g| g.vendor == Some(GpuVendor::Nvidia))
            .unwrap();
        assert_eq!(nv.name.as_deref(), Some("NVIDIA GeForce RTX 3060 12GB"));
        assert_eq!(
            nv.uuid.as_deref(),
            Some("GPU-5c1e2f3a-1111-2222-3333-444455556666")
        );
    }

    #[test]
    fn host_resources_are_read() {
        let r = appstore_gpu::host_resources();
        assert!(r.cores >= 1 && r.memory_mb > 64, "{r:?}");
    }
}
