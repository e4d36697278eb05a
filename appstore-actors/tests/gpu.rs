//! GPU installs against the simulated node on a fixture host (the demo's: an Intel iGPU and an
//! NVIDIA card, with real device nodes made by mknod, so root): the best GPU is chosen, passed
//! through with the container's own group, checked inside, recorded, and forgotten on uninstall.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

mod common;

use appstore_actors::engine::{CancelFlag, InstallRequest};
use appstore_core::gpu::GpuRequest;
use appstore_core::job::JobState;
use appstore_gpu::fixture::{FixtureHost, Scenario};
use appstore_gpu::{GpuProbe, HostRoot, SysfsProbe};
use pve_sim::harness::HarnessOptions;
use std::sync::Arc;
use std::time::Duration;

/// A world whose node and helper find their devices in a fixture host; `None` without root.
fn gpu_world() -> Option<(common::World, tempfile::TempDir)> {
    gpu_world_on(pve_sim::PveVersion::V9_1)
}

fn gpu_world_on(version: pve_sim::PveVersion) -> Option<(common::World, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let host = FixtureHost::scenario(dir.path(), Scenario::Demo).unwrap();
    if !host.real_nodes {
        assert!(
            std::env::var("APPSTORE_REQUIRE_LXC").as_deref() != Ok("1"),
            "mknod needs root, which CI has"
        );
        eprintln!("skipped: device nodes need root");
        return None;
    }
    let w = common::world_with(HarnessOptions {
        version,
        task_latency: Duration::from_millis(5),
        device_root: Some(dir.path().to_path_buf()),
        ..Default::default()
    });
    w.engine
        .gpus
        .publish(SysfsProbe::new(HostRoot::at(dir.path())).probe().unwrap());
    Some((w, dir))
}

async fn install(w: &common::World, app: &str, gpu: GpuRequest) -> (i64, JobState, String) {
    let req = InstallRequest {
        app_id: app.into(),
        gpu,
        ..Default::default()
    };
    let (job, end) = common::run_install(w, &w.snapshot, req).await;
    let log: Vec<String> = w
        .engine
        .store
        .logs(job, 0, 10_000)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    (job, end, log.join("\n"))
}

/// Jellyfin installed on the NVIDIA card, the world's first install: (job, log, the install).
async fn jellyfin_on_the_nvidia_card(
    w: &common::World,
) -> (i64, String, appstore_actors::store::InstallRecord) {
    let (job, end, log) = install(
        w,
        "jellyfin",
        GpuRequest::Devices {
            pci_addresses: vec!["0000:01:00.0".into()],
        },
    )
    .await;
    assert_eq!(end, JobState::Completed, "{log}");
    (job, log, w.engine.store.installs().unwrap().remove(0))
}

fn conf(w: &common::World, ctid: appstore_core::Ctid) -> String {
    std::fs::read_to_string(w.sim.root.join(format!("etc/pve/lxc/{ctid}.conf"))).unwrap()
}

#[tokio::test]
async fn auto_select_spreads_installs_over_the_gpus_and_passes_them_through_checked() {
    let Some((w, _dir)) = gpu_world() else { return };
    // First: both GPUs are free; the NVIDIA card is not the boot display, so it wins.
    let (job, end, log) = install(&w, "jellyfin", GpuRequest::Auto).await;
    assert_eq!(end, JobState::Completed, "{log}");
    assert!(
        log.contains("GPU: 0000:01:00.0 (nvidia) with profile nvidia-basic (/dev/nvidia0)"),
        "{log}"
    );
    assert!(log.contains("host NVIDIA driver 550.127.05"), "{log}");
    assert!(
        log.contains("GPU check inside the container: /dev/nvidia0"),
        "{log}"
    );
    let first = w.engine.store.job(job).unwrap().unwrap().ctid.unwrap();
    let text = conf(&w, first);
    assert!(
        text.contains("dev0: /dev/nvidia0,mode=0666\ndev1: /dev/nvidiactl,mode=0666\n"),
        "{text}"
    );
    let attached = w.engine.store.gpu_attachments().unwrap();
    assert_eq!(attached.len(), 5, "{attached:?}");
    assert_eq!(
        attached
            .iter()
            .filter(|a| a.pci_address.as_deref() == Some("0000:01:00.0"))
            .count(),
        1
    );

    // Second: the NVIDIA card has a user now, the Intel iGPU none: the iGPU's render node, owned by
    // the container's own render group (read inside it: 993 in the simulator's template).
    let (job2, end, log) = install(&w, "jellyfin", GpuRequest::Auto).await;
    assert_eq!(end, JobState::Completed, "{log}");
    assert!(
        log.contains("the container's groups: render 993, video 44"),
        "{log}"
    );
    let second = w.engine.store.job(job2).unwrap().unwrap().ctid.unwrap();
    assert!(conf(&w, second).contains("dev0: /dev/dri/renderD128,gid=993,mode=0660\n"));

    // Uninstall the first: its attachments go with its container.
    let install = w
        .engine
        .store
        .installs()
        .unwrap()
        .into_iter()
        .find(|i| i.ctid == Some(first))
        .unwrap();
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
            Some(Arc::clone(&w.snapshot)),
            CancelFlag::default(),
        )
        .await
        .unwrap();
    assert_eq!(end, JobState::Completed);
    let left = w.engine.store.gpu_attachments().unwrap();
    assert!(
        left.iter().all(|a| a.ctid == second) && left.len() == 1,
        "{left:?}"
    );
}

#[tokio::test]
async fn a_named_gpu_that_does_not_fit_or_does_not_exist_fails_by_name() {
    let Some((w, _dir)) = gpu_world() else { return };
    // radicale has no GPU support.
    let ask = |pci: &str| GpuRequest::Devices {
        pci_addresses: vec![pci.into()],
    };
    let (_, end, log) = install(&w, "radicale", ask("0000:00:02.0")).await;
    assert_eq!(end, JobState::Failed);
    assert!(log.contains("this app does not use a GPU"), "{log}");
    let (_, end, log) = install(&w, "jellyfin", ask("0000:09:00.0")).await;
    assert_eq!(end, JobState::Failed);
    assert!(
        log.contains("GPU 0000:09:00.0 cannot be used: no such GPU on this host"),
        "{log}"
    );
    // Nothing was attached by failed jobs.
    assert!(w.engine.store.gpu_attachments().unwrap().is_empty());
}

#[tokio::test]
async fn an_app_that_requires_a_gpu_is_blocked_without_one_that_fits() {
    let Some((w, _dir)) = gpu_world() else { return };
    let yml = std::fs::read_to_string(w.state.path().join("catalog-src/apps/jellyfin/app.yml"))
        .unwrap()
        .replace("  supported: [intel, amd, nvidia]", "  supported: [amd]")
        .replace(
            "  required: false\n  profiles: [dri-render, nvidia-basic]",
            "  required: true",
        );
    assert!(yml.contains("required: true"));
    let snapshot = common::commit_files(&w, &[("apps/jellyfin/app.yml", yml)]);
    assert!(snapshot.broken().is_empty(), "{:?}", snapshot.broken());
    let req = InstallRequest {
        app_id: "jellyfin".into(),
        ..Default::default()
    };
    let (job, end) = common::run_install(&w, &snapshot, req).await;
    assert_eq!(end, JobState::Failed);
    let why = w.engine.store.job(job).unwrap().unwrap().error.unwrap();
    assert!(why.contains("requires a GPU (amd)"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_choosing_at_the_same_moment_get_different_cards() {
    let Some((w, _dir)) = gpu_world() else { return };
    let (a, b) = tokio::join!(
        install(&w, "jellyfin", GpuRequest::Auto),
        install(&w, "jellyfin", GpuRequest::Auto)
    );
    assert_eq!(a.1, JobState::Completed, "{}", a.2);
    assert_eq!(b.1, JobState::Completed, "{}", b.2);
    let mut cards: Vec<String> = w
        .engine
        .store
        .gpu_attachments()
        .unwrap()
        .into_iter()
        .filter_map(|x| x.pci_address)
        .collect();
    cards.sort();
    assert_eq!(cards, ["0000:00:02.0", "0000:01:00.0"]);
}

#[tokio::test]
async fn a_node_before_pve_8_1_refuses_a_render_node_with_the_fix() {
    let Some((mut w, _dir)) = gpu_world_on(pve_sim::PveVersion::V8_0) else {
        return;
    };
    // As declared, jellyfin asks for PVE 8.1 and is refused by that requirement first:
    let ask = GpuRequest::Devices {
        pci_addresses: vec!["0000:00:02.0".into()],
    };
    let (_, end, log) = install(&w, "jellyfin", ask.clone()).await;
    assert_eq!(end, JobState::Failed, "{log}");
    assert!(
        log.contains("jellyfin 1.1.0 needs Proxmox VE >=8.1; this node runs 8.0.9"),
        "{log}"
    );
    // An app that does not declare it still meets the GPU step's own check of the release (on the
    // Debian 12 template, which 8.0 has).
    let rel = "apps/jellyfin/app.yml";
    let text = std::fs::read_to_string(w.state.path().join("catalog-src").join(rel)).unwrap();
    let undeclared: String = text
        .lines()
        .filter(|l| !l.starts_with("  pve: ") && !l.contains("arrived in Proxmox VE 8.1"))
        .map(|l| format!("{}\n", l.replace("debian-13", "debian-12")))
        .collect();
    w.snapshot = common::commit_files(&w, &[(rel, undeclared)]);
    let (_, end, log) = install(&w, "jellyfin", ask).await;
    assert_eq!(end, JobState::Failed, "{log}");
    assert!(
        log.contains("this node runs PVE 8.0.9, which cannot give a passed-through intel node the container's group")
            && log.contains("upgrade the node to PVE 8.1 or later"),
        "{log}"
    );
    assert!(w.engine.store.gpu_attachments().unwrap().is_empty());
}

/// A GPU sync stopped after each of its steps (as a killed service leaves it) resumes and completes,
/// leaving the GPU attached once.
#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_sync_interrupted_after_any_step_resumes_and_completes() {
    use appstore_actors::engine::MaintainRequest;
    use appstore_core::job::{steps, JobKind};
    let Some((w, _dir)) = gpu_world() else {
        return;
    };
    let (job, log, install) = jellyfin_on_the_nvidia_card(&w).await;
    let ctid = install.ctid.unwrap();
    let attached = |w: &common::World| {
        w.engine
            .store
            .gpu_attachments()
            .unwrap()
            .into_iter()
            .filter(|a| a.ctid == ctid)
            .count()
    };
    let before = attached(&w);
    assert!(before > 0, "job {job}: {log}");
    for &state in steps(JobKind::GpuSync) {
        let request = MaintainRequest {
            install_id: install.id,
            ..Default::default()
        };
        let job = w
            .engine
            .create_maintain_job(JobKind::GpuSync, &w.snapshot, &install, &request)
            .await
            .unwrap();
        let mut held = w.engine.clone();
        held.config.fault_hold_after = Some(state);
        let (snapshot, rec) = (Arc::clone(&w.snapshot), install.clone());
        let task = tokio::spawn(async move {
            held.run_maintain(
                JobKind::GpuSync,
                job,
                snapshot,
                rec,
                request,
                CancelFlag::default(),
            )
            .await
        });
        let needle = format!("holding after `{state}`");
        let mut seen = false;
        for _ in 0..400 {
            let lines = w.engine.store.logs(job, 0, 10_000).unwrap();
            if lines.iter().any(|l| l.line.contains(&needle)) {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(seen, "never held after {state}");
        task.abort();
        let record = w.engine.store.job(job).unwrap().unwrap();
        assert_eq!(record.state, state);
        let end = w
            .engine
            .resume(record, Some(Arc::clone(&w.snapshot)), CancelFlag::default())
            .await
            .unwrap();
        let lines: Vec<String> = w
            .engine
            .store
            .logs(job, 0, 10_000)
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect();
        assert_eq!(
            end,
            JobState::Completed,
            "interrupted after {state}: {lines:#?}"
        );
        assert_eq!(attached(&w), before, "after {state}");
        assert!(conf(&w, ctid).contains("dev0:"), "after {state}");
    }
}

/// A backup of a GPU app restored into a new container keeps its passthrough (PVE restores the
/// `devN` lines) and the store's records of it follow: which GPU, which profile, and the driver its
/// userland was set up for, so drift is tracked for the copy too.
#[tokio::test]
async fn a_restored_gpu_app_keeps_its_gpu_records() {
    let Some((w, _dir)) = gpu_world() else { return };
    let (_, _, original) = jellyfin_on_the_nvidia_card(&w).await;
    let ctid = original.ctid.unwrap();
    let (_, end) = common::run_backup(&w, &original, "local", 1, Default::default()).await;
    assert_eq!(end, JobState::Completed);
    let volid = w.engine.pve.backups("pve1", "local", ctid).await.unwrap()[0]
        .volid
        .clone();
    let (job, end) = common::run_restore(&w, &w.snapshot, &volid, None).await;
    let lines: Vec<String> = w
        .engine
        .store
        .logs(job, 0, 10_000)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(end, JobState::Completed, "{lines:#?}");
    let copy = w.engine.store.job(job).unwrap().unwrap().ctid.unwrap();
    assert_ne!(copy, ctid);
    assert!(conf(&w, copy).contains("dev0: /dev/nvidia0,mode=0666\n"));
    assert!(
        lines.iter().any(|l| l.contains("GPU passthrough")),
        "{lines:#?}"
    );
    let records = w.engine.store.gpu_attachments().unwrap();
    let of = |c: appstore_core::Ctid| {
        records
            .iter()
            .filter(|a| a.ctid == c)
            .map(|a| {
                (
                    a.device_path.clone(),
                    a.pci_address.clone(),
                    a.profile.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(!of(ctid).is_empty());
    assert_eq!(of(copy), of(ctid));
    let userland = w.engine.store.gpu_userland().unwrap();
    assert_eq!(userland.get(&copy.get()), userland.get(&ctid.get()));
    assert!(userland.contains_key(&copy.get()), "{userland:?}");
}
