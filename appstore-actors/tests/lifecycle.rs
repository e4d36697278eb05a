//! Upgrade (snapshot, script, health check, snapshot removed; rollback on failure; the consent to go
//! on without a snapshot) and reconfigure, against the simulated node.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first failure

mod common;

use appstore_actors::engine::{CancelFlag, MaintainRequest};
use appstore_actors::store::InstallRecord;
use appstore_catalog::CatalogSnapshot;
use appstore_core::job::{JobKind, JobState};
use common::{radicale, world, World, SECRET};
use std::sync::Arc;

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

fn bump(w: &World, version: &str) -> Arc<CatalogSnapshot> {
    common::set_version(w, "radicale", version)
}

async fn maintain(
    w: &World,
    kind: JobKind,
    snapshot: &Arc<CatalogSnapshot>,
    install: &InstallRecord,
    request: MaintainRequest,
) -> (i64, JobState, Vec<String>, Vec<String>) {
    let job = w
        .engine
        .create_maintain_job(kind, snapshot, install, &request)
        .await
        .unwrap();
    let end = w
        .engine
        .run_maintain(
            kind,
            job,
            Arc::clone(snapshot),
            install.clone(),
            request,
            CancelFlag::default(),
        )
        .await
        .unwrap();
    let states = w
        .engine
        .store
        .transitions(job)
        .unwrap()
        .into_iter()
        .map(|t| t.to_state)
        .collect();
    let logs = w
        .engine
        .store
        .logs(job, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    (job, end, states, logs)
}

fn conf(w: &World, ctid: appstore_core::Ctid) -> String {
    std::fs::read_to_string(w.sim.root.join(format!("etc/pve/lxc/{ctid}.conf"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_takes_a_snapshot_runs_the_script_and_removes_the_snapshot() {
    let w = world();
    let before = install(&w).await;
    let v2 = bump(&w, "9.9.0");
    let request = MaintainRequest {
        install_id: before.id,
        ..Default::default()
    };
    let (job, end, states, logs) = maintain(&w, JobKind::Upgrade, &v2, &before, request).await;
    assert_eq!(end, JobState::Completed, "{logs:#?}");
    assert_eq!(
        states,
        [
            "queued",
            "check_boundary",
            "validate_manifest",
            "snapshot",
            "start_container",
            "wait_for_network",
            "push_assets",
            "run_upgrade",
            "healthcheck",
            "collect_outputs",
            "remove_snapshot",
            "completed"
        ]
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("from 0.") || l.contains("to 9.9.0")),
        "{logs:#?}"
    );
    assert!(logs
        .iter()
        .any(|l| l.contains(&format!("snapshot `appstore_job_{job}` taken"))));
    let after = w.engine.store.install(before.id).unwrap().unwrap();
    assert_eq!(after.version, "9.9.0");
    assert_eq!(
        w.engine.store.app_version("radicale").unwrap().as_deref(),
        Some("9.9.0")
    );
    assert_eq!(after.ctid, before.ctid);
    // The snapshot is gone again, and the secret never reached the log.
    assert!(!conf(&w, before.ctid.unwrap()).contains("[appstore_job_"));
    assert!(logs.iter().all(|l| !l.contains(SECRET)));
    // The job record names what was asked.
    let record = w.engine.store.job(job).unwrap().unwrap();
    assert!(
        record.user_action.starts_with("upgrade radicale from "),
        "{}",
        record.user_action
    );
    assert_eq!(record.manifest_version, "9.9.0");

    // Nothing newer now: refused before a job exists.
    let again = w
        .engine
        .create_maintain_job(
            JobKind::Upgrade,
            &v2,
            &after,
            &MaintainRequest {
                install_id: after.id,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already the newest"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upgrade_rolls_back_to_its_snapshot() {
    let w = world();
    let before = install(&w).await;
    let ctid = before.ctid.unwrap();
    // The container is stopped, so the upgrade starts it, and that start fails after the snapshot.
    let pct = w.sim.root.join("usr/sbin/pct");
    assert!(std::process::Command::new(&pct)
        .args(["stop", &ctid.to_string()])
        .status()
        .unwrap()
        .success());
    w.sim
        .fail_next_task("vzstart", "startup for container failed")
        .unwrap();
    let v2 = bump(&w, "9.9.0");
    let request = MaintainRequest {
        install_id: before.id,
        ..Default::default()
    };
    let (job, end, states, logs) = maintain(&w, JobKind::Upgrade, &v2, &before, request).await;
    assert_eq!(end, JobState::Failed, "{logs:#?}");
    assert_eq!(
        states,
        [
            "queued",
            "check_boundary",
            "validate_manifest",
            "snapshot",
            "start_container",
            "rollback",
            "failed"
        ]
    );
    let record = w.engine.store.job(job).unwrap().unwrap();
    let error = record.error.unwrap();
    assert!(error.contains("startup for container failed"), "{error}");
    assert!(error.contains("rolled back to the snapshot"), "{error}");
    // The install is as it was, running its old version; the container is not tagged failed.
    let after = w.engine.store.install(before.id).unwrap().unwrap();
    assert_eq!(after.version, before.version);
    let text = conf(&w, ctid);
    assert!(!text.contains("appstore-failed"), "{text}");
    assert!(!text.contains("[appstore_job_"), "{text}");
    let status = std::process::Command::new(&pct)
        .args(["status", &ctid.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&status.stdout).trim(),
        "status: running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_snapshot_support_the_upgrade_takes_a_backup_and_restores_it_on_failure() {
    let w = world();
    let before = install(&w).await;
    let ctid = before.ctid.unwrap();
    let v2 = bump(&w, "9.9.0");

    // The storage cannot snapshot: a backup instead, kept among the app's backups.
    w.sim
        .fail_next_task("vzsnapshot", "snapshot feature is not available")
        .unwrap();
    let request = MaintainRequest {
        install_id: before.id,
        ..Default::default()
    };
    let (_, end, _, logs) = maintain(&w, JobKind::Upgrade, &v2, &before, request).await;
    assert_eq!(end, JobState::Completed, "{logs:#?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("backing it up to `local` instead")),
        "{logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("stays among the app's backups")),
        "{logs:#?}"
    );
    assert_eq!(w.engine.store.backups_of(before.id).unwrap().len(), 1);
    let upgraded = w.engine.store.install(before.id).unwrap().unwrap();
    assert_eq!(upgraded.version, "9.9.0");

    // A failed upgrade without snapshots is rolled back by restoring that backup.
    let v3 = bump(&w, "9.9.5");
    std::thread::sleep(std::time::Duration::from_millis(1100)); // archive names have 1 s steps
    let pct = w.sim.root.join("usr/sbin/pct");
    assert!(std::process::Command::new(&pct)
        .args(["stop", &ctid.to_string()])
        .status()
        .unwrap()
        .success());
    w.sim
        .fail_next_task("vzsnapshot", "snapshot feature is not available")
        .unwrap();
    w.sim
        .fail_next_task("vzstart", "startup for container failed")
        .unwrap();
    let request = MaintainRequest {
        install_id: before.id,
        ..Default::default()
    };
    let (job, end, _, logs) = maintain(&w, JobKind::Upgrade, &v3, &upgraded, request).await;
    assert_eq!(end, JobState::Failed, "{logs:#?}");
    assert!(
        logs.iter().any(|l| l.contains("restored from the backup")),
        "{logs:#?}"
    );
    let error = w.engine.store.job(job).unwrap().unwrap().error.unwrap();
    assert!(error.contains("startup for container failed"), "{error}");
    assert_eq!(
        w.engine.store.install(before.id).unwrap().unwrap().version,
        "9.9.0"
    );
    let status = std::process::Command::new(&pct)
        .args(["status", &ctid.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&status.stdout).trim(),
        "status: running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfigure_changes_only_reconfigurable_inputs() {
    let w = world();
    let before = install(&w).await;
    // Not reconfigurable: refused before a job exists, with the field named.
    let mut bad = MaintainRequest {
        install_id: before.id,
        ..Default::default()
    };
    bad.inputs.insert("port".into(), serde_json::json!(6000));
    let err = w
        .engine
        .create_maintain_job(JobKind::Reconfigure, &w.snapshot, &before, &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("inputs.port: cannot be changed after install"),
        "{err}"
    );

    let new_secret = "Another-Secret-0815";
    let mut request = MaintainRequest {
        install_id: before.id,
        restart: true,
        ..Default::default()
    };
    request
        .inputs
        .insert("password".into(), serde_json::json!(new_secret));
    let (job, end, states, logs) =
        maintain(&w, JobKind::Reconfigure, &w.snapshot, &before, request).await;
    assert_eq!(end, JobState::Completed, "{logs:#?}");
    assert_eq!(
        states,
        [
            "queued",
            "check_boundary",
            "validate_request",
            "push_assets",
            "run_reconfigure",
            "healthcheck",
            "collect_outputs",
            "completed"
        ]
    );
    assert!(
        logs.iter().any(|l| l.contains("changing password")),
        "{logs:#?}"
    );
    assert!(logs.iter().any(|l| l.contains("restarting the container")));
    // Neither secret in the logs or the stored request.
    let record = w.engine.store.job(job).unwrap().unwrap();
    for s in [SECRET, new_secret] {
        assert!(logs.iter().all(|l| !l.contains(s)));
        assert!(!record.request.contains(s));
    }
    // The new value is what later jobs see: a second reconfigure with no changes keeps it, and the
    // store's sealed copy opens to it.
    let sealed = w.engine.store.install_inputs(before.id).unwrap().unwrap();
    let inputs: serde_json::Value =
        serde_json::from_str(&w.engine.secrets.open_value(&sealed).unwrap()).unwrap();
    assert_eq!(inputs["password"], new_secret);
    assert_eq!(inputs["port"], 5232);
}

fn kept(w: &World) -> Vec<appstore_actors::store::KeptVolume> {
    w.engine.store.kept_volumes(Some("radicale")).unwrap()
}

async fn uninstall(w: &World, install: &InstallRecord, keep: bool) -> Vec<String> {
    let job = w.engine.create_uninstall_job(install, keep).await.unwrap();
    let end = w
        .engine
        .run_uninstall(
            job,
            install.clone(),
            Some(Arc::clone(&w.snapshot)),
            CancelFlag::default(),
        )
        .await
        .unwrap();
    let logs: Vec<String> = w
        .engine
        .store
        .logs(job, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(end, JobState::Completed, "{logs:#?}");
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_volumes_outlive_the_uninstall_and_come_back_with_the_next_install() {
    let w = world();
    let first = install(&w).await;
    let first_ctid = first.ctid.unwrap();
    let mp0 = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("mp0: "))
            .map(str::to_string)
    };
    let original = mp0(&conf(&w, first_ctid)).unwrap();
    assert!(
        original.contains("mp=/var/lib/radicale/collections"),
        "{original}"
    );

    // Uninstall keeping the data: the volume moves to a holder container.
    let logs = uninstall(&w, &first, true).await;
    assert!(
        logs.iter().any(|l| l.contains("kept volume `collections`")),
        "{logs:#?}"
    );
    let held = kept(&w);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].name, "collections");
    assert_eq!(held[0].from_ctid, Some(first_ctid));
    let holder = held[0].holder_ctid;
    let holder_conf = conf(&w, holder);
    assert!(holder_conf.contains("appstore-volumes"), "{holder_conf}");
    assert!(holder_conf.contains(&held[0].volid), "{holder_conf}");
    assert!(!w
        .sim
        .root
        .join(format!("etc/pve/lxc/{first_ctid}.conf"))
        .exists());

    // The next install takes it back as its mp0; the empty holder goes.
    let second = install(&w).await;
    let again = mp0(&conf(&w, second.ctid.unwrap())).unwrap();
    assert!(
        again.contains("mp=/var/lib/radicale/collections"),
        "{again}"
    );
    assert!(
        again.starts_with(&format!("local-lvm:vm-{}-disk-", second.ctid.unwrap())),
        "{again}"
    );
    assert!(kept(&w).is_empty());
    assert!(!w
        .sim
        .root
        .join(format!("etc/pve/lxc/{holder}.conf"))
        .exists());

    // Without keeping, nothing is held.
    uninstall(&w, &second, false).await;
    assert!(kept(&w).is_empty());
    let left: Vec<_> = std::fs::read_dir(w.sim.root.join("etc/pve/nodes/pve1/lxc"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_directories_are_bind_mounted_through_the_helper_only_where_allowed() {
    let w = world();
    let allowed = w.state.path().join("host-data/media");
    std::fs::create_dir_all(&allowed).unwrap();
    let app = |id: &str, path: &std::path::Path| {
        format!(
            "id: {id}\nname: {id}\ndescription: Media\nversion: 1.0.0\nlxc: {{ ostemplate: debian-12 }}\nprovision: {{ script: install.sh }}\nvolumes:\n  - {{ name: media, mount_path: /srv/media, host_path: {} }}\n",
            path.display()
        )
    };
    let snapshot = common::commit_files(
        &w,
        &[
            ("apps/media-ok/app.yml", app("media-ok", &allowed)),
            ("apps/media-ok/install.sh", "true\n".into()),
            (
                "apps/media-bad/app.yml",
                app("media-bad", std::path::Path::new("/etc")),
            ),
            ("apps/media-bad/install.sh", "true\n".into()),
        ],
    );
    let run = |id: &'static str| {
        let snapshot = Arc::clone(&snapshot);
        let w = &w;
        async move {
            let request = appstore_actors::engine::InstallRequest {
                app_id: id.into(),
                ..Default::default()
            };
            let job = w
                .engine
                .create_install_job(&snapshot, &request)
                .await
                .unwrap();
            let end = w
                .engine
                .run_install(job, snapshot, request, CancelFlag::default())
                .await
                .unwrap();
            (job, end)
        }
    };
    let (job, end) = run("media-ok").await;
    assert_eq!(end, JobState::Completed);
    let ctid = w.engine.store.job(job).unwrap().unwrap().ctid.unwrap();
    let text = conf(&w, ctid);
    assert!(
        text.contains(&format!("mp0: {},mp=/srv/media", allowed.display())),
        "{text}"
    );

    let (job, end) = run("media-bad").await;
    assert_eq!(end, JobState::Failed);
    let error = w.engine.store.job(job).unwrap().unwrap().error.unwrap();
    assert!(error.contains("/etc"), "{error}");
    assert!(error.contains("the privileged helper refused"), "{error}");
}
