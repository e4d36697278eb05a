//! The reference catalog's GPU apps configure the device they are given, for every vendor they
//! support, in real containers: a host with an Intel iGPU, an AMD dGPU (with ROCm's `/dev/kfd`) and an
//! NVIDIA card whose device nodes are made with mknod; the engine attaches the chosen card with the
//! app's profile, then the app's own `gpu.sh configure` and `gpu.sh check` run inside (the same
//! script its install runs; the vendor userland, which comes from the vendors' sites, is not
//! installed here). Needs root and LXC; skipped otherwise, unless `APPSTORE_REQUIRE_LXC=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

mod common;

use appstore_actors::engine::{CancelFlag, InstallRequest};
use appstore_core::gpu::GpuRequest;
use appstore_core::job::JobState;
use appstore_gpu::fixture::{FixtureHost, Scenario};
use appstore_gpu::GpuProbe;
use common::world_with;
use pve_sim::harness::{lxc_available, HarnessOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The mixed fixture host's cards.
const CARDS: [(&str, &str); 3] = [
    ("intel", "0000:00:02.0"),
    ("amd", "0000:03:00.0"),
    ("nvidia", "0000:01:00.0"),
];

/// What each app's `gpu.sh configure` must have written for a vendor: (file inside, text it holds).
fn expected(app: &str, vendor: &str) -> Vec<(String, String)> {
    let unit = match app {
        "plex" => "plexmediaserver",
        other => other,
    };
    let dropin = format!("/etc/systemd/system/{unit}.service.d/appstore-gpu.conf");
    // Every app's service learns the vendor and the nodes it was given.
    let mut want = vec![(
        dropin.clone(),
        format!("Environment=\"APPSTORE_GPU_VENDOR={vendor}\""),
    )];
    let nodes = match vendor {
        "intel" => "/dev/dri/renderD128",
        "amd" if app == "ollama" => "/dev/dri/renderD129 /dev/kfd",
        "amd" => "/dev/dri/renderD129",
        _ => "/dev/nvidia0 /dev/nvidiactl /dev/nvidia-uvm",
    };
    want.push((dropin, format!("APPSTORE_GPU_DEVICES={nodes}")));
    let encoding = "/etc/jellyfin/encoding.xml".to_string();
    let plex_prefs =
        "/var/lib/plexmediaserver/Library/Application Support/Plex Media Server/Preferences.xml"
            .to_string();
    match (app, vendor) {
        ("jellyfin", "intel") => want.extend([
            (
                encoding.clone(),
                "<HardwareAccelerationType>qsv</HardwareAccelerationType>".into(),
            ),
            (
                encoding,
                "<QsvDevice>/dev/dri/renderD128</QsvDevice>".into(),
            ),
        ]),
        ("jellyfin", "amd") => want.extend([
            (
                encoding.clone(),
                "<HardwareAccelerationType>vaapi</HardwareAccelerationType>".into(),
            ),
            (
                encoding,
                "<VaapiDevice>/dev/dri/renderD129</VaapiDevice>".into(),
            ),
        ]),
        ("jellyfin", "nvidia") => want.push((
            encoding,
            "<HardwareAccelerationType>nvenc</HardwareAccelerationType>".into(),
        )),
        ("plex", _) => want.push((plex_prefs, "HardwareAcceleratedCodecs=\"1\"".into())),
        _ => {}
    }
    want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gpu_apps_configure_the_device_of_each_vendor_they_support() {
    if !lxc_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = FixtureHost::scenario(dir.path(), Scenario::Mixed).unwrap();
    assert!(host.real_nodes, "mknod works as root");
    // ROCm's compute node, for the AMD card.
    host.kfd(236, 0).unwrap();
    let w = world_with(HarnessOptions {
        backend: "lxc".into(),
        task_latency: Duration::ZERO,
        device_root: Some(dir.path().to_path_buf()),
        version: pve_sim::PveVersion::V9_1,
        ..Default::default()
    });
    w.engine.gpus.publish(
        appstore_gpu::SysfsProbe::new(appstore_gpu::HostRoot::at(dir.path()))
            .probe()
            .unwrap(),
    );
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog/apps");
    let mut tested = Vec::new();
    for entry in std::fs::read_dir(&catalog).unwrap() {
        let app_dir = entry.unwrap().path();
        let app = app_dir.file_name().unwrap().to_string_lossy().to_string();
        let manifest: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(app_dir.join("app.yml")).unwrap())
                .unwrap();
        let Some(gpu) = manifest.get("gpu").cloned() else {
            continue;
        };
        assert!(
            app_dir.join("provision/gpu.sh").is_file(),
            "{app} supports GPUs but has no provision/gpu.sh"
        );
        // A test app around the real one's scripts: its install runs gpu.sh configure and check.
        let id = format!("{app}-gpu-config");
        let test_manifest = serde_yaml::to_string(&serde_json::json!({
            "id": id,
            "name": format!("{app} GPU configuration"),
            "description": "Runs the app's GPU setup against the attached device",
            "version": "1.0.0",
            "lxc": { "ostemplate": manifest["lxc"]["ostemplate"].as_str().unwrap() },
            "gpu": serde_json::to_value(&gpu).unwrap(),
            "provision": { "script": "gpu-config.sh", "assets": ["provision"], "upgrade": "gpu-config.sh" },
        }))
        .unwrap();
        let mut files = vec![
            (format!("apps/{id}/app.yml"), test_manifest),
            (
                format!("apps/{id}/gpu-config.sh"),
                "set -euo pipefail\ncd \"$(dirname \"${BASH_SOURCE[0]}\")\"\nbash provision/gpu.sh configure\nbash provision/gpu.sh check\necho \"gpu-config: check passed for $APPSTORE_GPU_VENDOR ${APPSTORE_NVIDIA_DRIVER_VERSION:-}\"\n".to_string(),
            ),
        ];
        for f in common::walk(&app_dir.join("provision")) {
            let rel = f.strip_prefix(&app_dir).unwrap().display().to_string();
            files.push((
                format!("apps/{id}/{rel}"),
                std::fs::read_to_string(&f).unwrap(),
            ));
        }
        let refs: Vec<(&str, String)> =
            files.iter().map(|(p, t)| (p.as_str(), t.clone())).collect();
        let snapshot = common::commit_files(&w, &refs);
        let supported: Vec<String> = gpu["supported"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        for vendor in &supported {
            let pci = CARDS.iter().find(|(v, _)| v == vendor).unwrap().1;
            let (job, end) = common::run_install(
                &w,
                &snapshot,
                InstallRequest {
                    app_id: id.clone(),
                    gpu: GpuRequest::Devices {
                        pci_addresses: vec![pci.into()],
                    },
                    ..Default::default()
                },
            )
            .await;
            let logs: Vec<String> = w
                .engine
                .store
                .logs(job, 0, 100_000)
                .unwrap()
                .into_iter()
                .map(|l| format!("[{}] {}", l.stream, l.line))
                .collect();
            let text = logs.join("\n");
            assert_eq!(end, JobState::Completed, "{app} {vendor}:\n{text}");
            assert!(
                text.contains(&format!("==> GPU: {app} configured for {vendor}:")),
                "{app} {vendor}:\n{text}"
            );
            assert!(
                text.contains(&format!("==> GPU: {app} check passed for {vendor}:"))
                    && text.contains(&format!("gpu-config: check passed for {vendor}")),
                "{app} {vendor}:\n{text}"
            );
            let record = w.engine.store.job(job).unwrap().unwrap();
            let install = w
                .engine
                .store
                .install(record.install_id.unwrap())
                .unwrap()
                .unwrap();
            let ctid = install.ctid.unwrap();
            for (file, needle) in expected(&app, vendor) {
                let out = std::process::Command::new(w.sim.root.join("usr/sbin/pct"))
                    .args(["exec", &ctid.to_string(), "--", "cat", &file])
                    .output()
                    .unwrap();
                let content = String::from_utf8_lossy(&out.stdout);
                assert!(
                    content.contains(&needle),
                    "{app} {vendor}: {file} lacks {needle}:\n{content}"
                );
            }
            if vendor == "nvidia" {
                // An upgrade's scripts learn the attached GPU as the install's did, with the
                // host's driver version.
                let snap = common::set_version(&w, &id, "1.0.1");
                let request = appstore_actors::engine::MaintainRequest {
                    install_id: install.id,
                    ..Default::default()
                };
                let kind = appstore_core::job::JobKind::Upgrade;
                let job = w
                    .engine
                    .create_maintain_job(kind, &snap, &install, &request)
                    .await
                    .unwrap();
                let end = w
                    .engine
                    .run_maintain(
                        kind,
                        job,
                        snap,
                        install.clone(),
                        request,
                        CancelFlag::default(),
                    )
                    .await
                    .unwrap();
                let text = w
                    .engine
                    .store
                    .logs(job, 0, 100_000)
                    .unwrap()
                    .into_iter()
                    .map(|l| l.line)
                    .collect::<Vec<_>>()
                    .join("\n");
                assert_eq!(end, JobState::Completed, "{app} upgrade:\n{text}");
                assert!(
                    text.contains("gpu-config: check passed for nvidia 550.127.05"),
                    "{app} upgrade:\n{text}"
                );
            }
            let install = w.engine.store.install(install.id).unwrap().unwrap();
            let u = w
                .engine
                .create_uninstall_job(&install, false)
                .await
                .unwrap();
            let end = w
                .engine
                .run_uninstall(
                    u,
                    install,
                    Some(Arc::clone(&snapshot)),
                    CancelFlag::default(),
                )
                .await
                .unwrap();
            assert_eq!(end, JobState::Completed);
            tested.push(format!("{app}/{vendor}"));
        }
    }
    tested.sort();
    for want in [
        "jellyfin/amd",
        "jellyfin/intel",
        "jellyfin/nvidia",
        "ollama/amd",
        "ollama/nvidia",
        "plex/amd",
        "plex/intel",
        "plex/nvidia",
    ] {
        assert!(
            tested.iter().any(|t| t == want),
            "{want} not tested: {tested:?}"
        );
    }
    assert_eq!(tested.len(), 8, "{tested:?}");
}
