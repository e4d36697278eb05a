//! Day-2 jobs against the simulated node: container controls (power, resources, start at boot)
//! through the boundary check, and the usage history from the node's RRD data.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

mod common;

use appstore_actors::engine::CancelFlag;
use appstore_actors::store::InstallRecord;
use appstore_core::control::Control;
use appstore_core::job::{JobKind, JobState};
use appstore_pve::types::{BackupMode, Timeframe};
use common::{radicale, world_with, World, SECRET};
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

    let (end, _) = control(&w, &app, Control::Shutdown {}).await;
    assert_eq!(end, JobState::Completed);
    assert_eq!(status(&w, &app).await, "stopped");
    // Stopping a stopped container is done at once, without a PVE task that would fail.
    let (end, logs) = control(&w, &app, Control::Stop {}).await;
    assert_eq!(end, JobState::Completed);
    assert!(
        logs.iter().any(|l| l.contains("stopped already")),
        "{logs:?}"
    );
    // A reboot of a stopped container starts it.
    let (end, logs) = control(&w, &app, Control::Reboot {}).await;
    assert_eq!(end, JobState::Completed, "{logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("starting it instead")),
        "{logs:?}"
    );
    assert_eq!(status(&w, &app).await, "running");
    let (end, _) = control(&w, &app, Control::Reboot {}).await;
    assert_eq!(end, JobState::Completed);
    assert_eq!(status(&w, &app).await, "running");
    let (end, _) = control(&w, &app, Control::Stop {}).await;
    assert_eq!(end, JobState::Completed);
    let (end, _) = control(&w, &app, Control::Start {}).await;
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
    let (end, logs) = control(&w, &app, Control::Stop {}).await;
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

async fn backup(
    w: &World,
    install: &InstallRecord,
    storage: &str,
    keep_last: u32,
) -> (i64, JobState, Vec<String>) {
    backup_in_mode(w, install, storage, keep_last, Default::default()).await
}

async fn backup_in_mode(
    w: &World,
    install: &InstallRecord,
    storage: &str,
    keep_last: u32,
    mode: BackupMode,
) -> (i64, JobState, Vec<String>) {
    let (job, end) = common::run_backup(w, install, storage, keep_last, mode).await;
    (job, end, job_lines(w, job))
}

fn job_lines(w: &World, job: i64) -> Vec<String> {
    let mut lines: Vec<String> = w
        .engine
        .store
        .logs(job, 0, 5000)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    if let Some(e) = w.engine.store.job(job).unwrap().unwrap().error {
        lines.push(e);
    }
    lines
}

/// The inert back end keeps a container's files here.
fn ct_file(w: &World, ctid: u32, path: &str) -> std::path::PathBuf {
    w.sim.root.join(format!("sim/ct/{ctid}/fs")).join(path)
}

async fn restore(w: &World, volid: &str, over: Option<&InstallRecord>) -> (JobState, Vec<String>) {
    let (job, end) = common::run_restore(w, &w.snapshot, volid, over).await;
    (end, job_lines(w, job))
}

#[tokio::test]
async fn backups_keep_the_last_n_and_restore_into_a_new_container_or_over_the_old_one() {
    let w = fast_world();
    let app = install(&w).await;
    let ctid = app.ctid.unwrap();
    let marker = ct_file(&w, ctid.get(), "var/lib/radicale/marker");
    assert!(
        w.sim.root.join(format!("sim/ct/{ctid}/fs")).is_dir(),
        "inert container files"
    );
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    std::fs::write(&marker, "first").unwrap();

    // A backup through PVE's vzdump: the task's own log, the archive on `local`, the store's record.
    let (_, end, lines) = backup(&w, &app, "local", 2).await;
    assert_eq!(end, JobState::Completed, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("INFO: Starting Backup of VM")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("creating vzdump archive")),
        "{lines:#?}"
    );
    let list = w.engine.pve.backups("pve1", "local", ctid).await.unwrap();
    assert_eq!(list.len(), 1);
    let first = list[0].volid.clone();
    assert!(
        first.starts_with(&format!("local:backup/vzdump-lxc-{ctid}-"))
            && first.ends_with(".tar.zst"),
        "{first}"
    );
    let record = w.engine.store.backup(&first).unwrap().unwrap();
    assert_eq!(
        (record.app_id.as_str(), record.install_id),
        ("radicale", app.id)
    );

    // Two more: the retention keeps the newest two.
    std::fs::write(&marker, "second").unwrap();
    for _ in 0..2 {
        let (_, end, lines) = backup(&w, &app, "local", 2).await;
        assert_eq!(end, JobState::Completed, "{lines:#?}");
    }
    let list = w.engine.pve.backups("pve1", "local", ctid).await.unwrap();
    assert_eq!(list.len(), 2, "{list:#?}");
    assert!(
        list.iter().all(|b| b.volid != first),
        "the oldest was removed"
    );
    assert!(w.engine.store.backup(&first).unwrap().is_none());
    let newest = list.iter().max_by_key(|b| b.ctime).unwrap().volid.clone();

    // A storage without backup content: the job fails with PVE's words.
    let (_, end, lines) = backup(&w, &app, "local-lvm", 0).await;
    assert_eq!(end, JobState::Failed);
    assert!(
        lines.iter().any(|l| l.contains("does not support backups")),
        "{lines:#?}"
    );

    // Restore into a new container: a new install with the app's outputs, in the pool, with the
    // files of the backup.
    let (end, lines) = restore(&w, &newest.clone(), None).await;
    assert_eq!(end, JobState::Completed, "{lines:#?}");
    let installs = w.engine.store.installs().unwrap();
    let restored = installs.iter().find(|i| i.ctid != Some(ctid)).unwrap();
    assert_eq!(restored.app_id, "radicale");
    assert!(restored.outputs.contains(":5232/"), "{}", restored.outputs);
    let new_ctid = restored.ctid.unwrap();
    assert_eq!(
        std::fs::read_to_string(ct_file(&w, new_ctid.get(), "var/lib/radicale/marker")).unwrap(),
        "second"
    );
    let tags = config(&w, restored, "tags").await.unwrap();
    assert!(tags.contains("appstore-managed"), "{tags}");
    assert_eq!(status(&w, restored).await, "running");

    // Restore over the original: its files go back to the backup's.
    std::fs::write(&marker, "changed after the backup").unwrap();
    let (end, lines) = restore(&w, &newest.clone(), Some(&app)).await;
    assert_eq!(end, JobState::Completed, "{lines:#?}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "second");
    assert_eq!(status(&w, &app).await, "running");
    assert_eq!(w.engine.store.installs().unwrap().len(), 2);

    // A backup of one install cannot be restored over another.
    let err = w
        .engine
        .create_restore_job(
            &w.snapshot,
            &appstore_actors::engine::RestoreRequest {
                volid: newest,
                over_install: Some(restored.id),
                storage: None,
            },
            Some(restored),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("restore it into a new container instead"),
        "{err}"
    );

    // Stop mode stops the running container for the copy and starts it again, as PVE does.
    let (_, end, lines) = backup_in_mode(&w, &app, "local", 3, BackupMode::Stop).await;
    assert_eq!(end, JobState::Completed, "{lines:#?}");
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle));
    let (stopping, archive, restarting) = (
        at("INFO: stopping virtual guest"),
        at("creating vzdump archive"),
        at("INFO: restarting vm"),
    );
    assert!(
        stopping.is_some() && stopping < archive && archive < restarting,
        "{lines:#?}"
    );
    assert_eq!(status(&w, &app).await, "running");

    // Suspend mode syncs the container's files to a copy first and archives the copy.
    let (_, end, lines) = backup_in_mode(&w, &app, "local", 3, BackupMode::Suspend).await;
    assert_eq!(end, JobState::Completed, "{lines:#?}");
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle));
    let (sync, synced, archive) = (
        at("INFO: starting first sync"),
        at("INFO: first sync finished"),
        at("creating vzdump archive"),
    );
    assert!(
        sync.is_some() && sync < synced && synced < archive,
        "{lines:#?}"
    );
    assert_eq!(status(&w, &app).await, "running");
}

#[tokio::test]
async fn an_apps_own_log_is_shown_with_the_installs_secrets_masked() {
    let w = fast_world();
    let app = install(&w).await;
    let manifest = &w.snapshot.app("radicale").unwrap().manifest;
    let redactor = appstore_actors::engine::install_redactor(
        &w.engine.store,
        &w.engine.secrets,
        &app,
        manifest,
    );
    let mask = appstore_core::redact::MASK;
    assert_eq!(
        redactor.redact(&format!("GET request for '/{SECRET}/' received")),
        format!("GET request for '/{mask}/' received")
    );
    assert_eq!(
        redactor.redact("password=hunter22 user=radicale"),
        format!("password={mask} user=radicale"),
        "the manifest's secret input keys are masked too"
    );
    // Read through the helper as the installed app's page reads it.
    let (lines, cursor) = appstore_actors::engine::host::read_journal(
        w.engine.helper.as_ref(),
        app.ctid.unwrap(),
        "radicale.service",
        50,
        None,
        &redactor,
    )
    .await
    .unwrap();
    assert!(
        lines.iter().any(|l| l.contains("Started radicale.service")),
        "{lines:#?}"
    );
    assert!(cursor.is_some());
}
