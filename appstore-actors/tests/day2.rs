//! Day-2 jobs against the simulated node: container controls (power, resources, start at boot)
//! through the boundary check, and the usage history from the node's RRD data.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

mod common;

use appstore_actors::engine::CancelFlag;
use appstore_actors::store::InstallRecord;
use appstore_core::control::Control;
use appstore_core::job::{JobKind, JobState};
use appstore_pve::types::Timeframe;
use common::{radicale, world_with, World};
use pve_sim::harness::HarnessOptions;
use std::sync::Arc;
use std::time::Duration;

fn fast_world() -> World {
    world_with(HarnessOptions {
        task_latency: Duration::from_millis(5),
        rrd_sample_every: Duration::from_millis(200),
        ..Default::default()
    })
}

async fn install(w: &World) -> InstallRecord {
    let job = w
        .engine
        .create_install_job(&w.snapshot, &radicale())
        .await
        .unwrap();
    let end = w
        .engine
        .run_install(
            job,
            Arc::clone(&w.snapshot),
            radicale(),
            CancelFlag::default(),
        )
        .await
        .unwrap();
    assert_eq!(end, JobState::Completed);
    w.engine.store.installs().unwrap().remove(0)
}

/// Runs `control` on `install`: (final state, job log and the job's error).
async fn control(w: &World, install: &InstallRecord, control: Control) -> (JobState, Vec<String>) {
    let job = w
        .engine
        .create_control_job(install, &control)
        .await
        .unwrap();
    let end = w
        .engine
        .run_control(job, install.clone(), control, CancelFlag::default(), None)
        .await
        .unwrap();
    let record = w.engine.store.job(job).unwrap().unwrap();
    assert_eq!(record.kind, JobKind::Control);
    let states: Vec<String> = w
        .engine
        .store
        .transitions(job)
        .unwrap()
        .into_iter()
        .map(|t| t.to_state)
        .collect();
    if end == JobState::Completed {
        assert_eq!(
            states,
            ["queued", "check_boundary", "apply_control", "completed"]
        );
    }
    let mut logs: Vec<String> = w
        .engine
        .store
        .logs(job, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    if let Some(r) = record.error {
        logs.push(r);
    }
    (end, logs)
}

async fn status(w: &World, install: &InstallRecord) -> String {
    w.engine
        .pve
        .lxc_status("pve1", install.ctid.unwrap())
        .await
        .unwrap()
        .status
}

async fn config(w: &World, install: &InstallRecord, key: &str) -> Option<String> {
    w.engine
        .pve
        .lxc_config("pve1", install.ctid.unwrap())
        .await
        .unwrap()
        .options
        .get(key)
        .cloned()
}

#[tokio::test]
async fn power_controls_run_as_jobs_and_check_the_state_first() {
    let w = fast_world();
    let app = install(&w).await;
    assert_eq!(status(&w, &app).await, "running");

    let (end, _) = control(&w, &app, Control::Shutdown).await;
    assert_eq!(end, JobState::Completed);
    assert_eq!(status(&w, &app).await, "stopped");
    // Stopping a stopped container is done at once, without a PVE task that would fail.
    let (end, logs) = control(&w, &app, Control::Stop).await;
    assert_eq!(end, JobState::Completed);
    assert!(
        logs.iter().any(|l| l.contains("stopped already")),
        "{logs:?}"
    );
    // A reboot of a stopped container starts it.
    let (end, logs) = control(&w, &app, Control::Reboot).await;
    assert_eq!(end, JobState::Completed, "{logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("starting it instead")),
        "{logs:?}"
    );
    assert_eq!(status(&w, &app).await, "running");
    let (end, _) = control(&w, &app, Control::Reboot).await;
    assert_eq!(end, JobState::Completed);
    assert_eq!(status(&w, &app).await, "running");
    let (end, _) = control(&w, &app, Control::Stop).await;
    assert_eq!(end, JobState::Completed);
    let (end, _) = control(&w, &app, Control::Start).await;
    assert_eq!(end, JobState::Completed);
    assert_eq!(status(&w, &app).await, "running");
}

#[tokio::test]
async fn resources_and_start_at_boot_change_within_the_caps() {
    let w = fast_world();
    let app = install(&w).await;
    let disk_before = config(&w, &app, "rootfs").await.unwrap();
    let (end, logs) = control(
        &w,
        &app,
        Control::Resize {
            cores: Some(2),
            memory_mb: Some(1024),
            disk_gb: Some(12),
        },
    )
    .await;
    assert_eq!(end, JobState::Completed, "{logs:?}");
    assert_eq!(config(&w, &app, "cores").await.as_deref(), Some("2"));
    assert_eq!(config(&w, &app, "memory").await.as_deref(), Some("1024"));
    let disk = config(&w, &app, "rootfs").await.unwrap();
    assert!(disk.ends_with("size=12G"), "{disk_before} -> {disk}");

    // Above the caps, or a disk that would shrink: refused on the field before a job exists.
    let err = w
        .engine
        .create_control_job(
            &app,
            &Control::Resize {
                cores: Some(64),
                memory_mb: None,
                disk_gb: Some(4),
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cores: 64 is above the cap of 8"), "{err}");
    assert!(
        err.contains("disk_gb: the root disk is 12 GiB already"),
        "{err}"
    );

    let (end, _) = control(&w, &app, Control::Onboot { enabled: true }).await;
    assert_eq!(end, JobState::Completed);
    assert_eq!(config(&w, &app, "onboot").await.as_deref(), Some("1"));
    let (end, _) = control(&w, &app, Control::Onboot { enabled: false }).await;
    assert_eq!(end, JobState::Completed);
    assert_eq!(config(&w, &app, "onboot").await.as_deref(), Some("0"));
}

#[tokio::test]
async fn a_container_that_lost_the_managed_tag_is_not_controlled() {
    let w = fast_world();
    let app = install(&w).await;
    let ctid = app.ctid.unwrap();
    // Someone took the managed tag off in the PVE UI: the store no longer touches it.
    w.engine
        .pve
        .lxc_update_config(
            "pve1",
            ctid,
            &[("tags".into(), "radicale".into())],
            &[],
            None,
        )
        .await
        .unwrap();
    let (end, logs) = control(&w, &app, Control::Stop).await;
    assert_eq!(end, JobState::Failed);
    assert!(logs.iter().any(|l| l.contains("managed")), "{logs:?}");
    assert_eq!(status(&w, &app).await, "running");
}

#[tokio::test]
async fn the_history_is_pve_rrd_data_with_empty_rows_before_the_container() {
    let w = fast_world();
    let app = install(&w).await;
    let ctid = app.ctid.unwrap();
    // The sampler runs every 200 ms here; wait for a few samples.
    let mut rows = Vec::new();
    for _ in 0..50 {
        rows = w
            .engine
            .pve
            .lxc_rrddata("pve1", ctid, Timeframe::Hour)
            .await
            .unwrap();
        if rows.iter().any(|r| r.cpu.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 9.1: an hour is 60 one-minute rows (59 when the last holds no data yet).
    assert!(rows.len() == 60 || rows.len() == 59, "{}", rows.len());
    assert!(rows.windows(2).all(|p| p[1].time - p[0].time == 60));
    let with_data: Vec<_> = rows.iter().filter(|r| r.cpu.is_some()).collect();
    assert!(!with_data.is_empty(), "no samples");
    let last = with_data.last().unwrap();
    assert!(last.maxmem.unwrap() > 0.0 && last.mem.unwrap() > 0.0);
    assert!((0.0..=1.0).contains(&last.cpu.unwrap()));
    assert!(
        rows[0].cpu.is_none() && rows[0].mem.is_none(),
        "before the container: only time"
    );
    let week = w
        .engine
        .pve
        .lxc_rrddata("pve1", ctid, Timeframe::Week)
        .await
        .unwrap();
    assert!(week.windows(2).all(|p| p[1].time - p[0].time == 1800));
}
