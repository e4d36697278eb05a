//! The install engine against the simulator (inert back end) with the store's least-privilege token,
//! the real helper code and the reference catalog in a real git repository: every state in order, the
//! outputs, secrets nowhere on disk, and a failure that leaves the container stopped and tagged.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

mod common;

use appstore_actors::engine::{CancelFlag, InstallRequest};
use appstore_core::job::JobState;
use common::{ct, radicale, walk, world, SECRET};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread")]
async fn installs_an_app_through_every_state_without_leaking_its_secret() {
    let w = world();
    let mut events = w.engine.events.subscribe();
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
    let store = w.engine.store.clone();
    let logs = store.logs(job, 0, 1000).unwrap();
    let text: Vec<String> = logs
        .iter()
        .map(|l| format!("{}: {}", l.stream, l.line))
        .collect();
    assert_eq!(end, JobState::Completed, "{}", text.join("\n"));

    let states: Vec<String> = store
        .transitions(job)
        .unwrap()
        .into_iter()
        .map(|t| t.to_state)
        .collect();
    assert_eq!(
        states,
        [
            "queued",
            "validate_request",
            "validate_manifest",
            "validate_placement",
            "validate_gpu",
            "allocate_ctid",
            "create_container",
            "configure_container",
            "attach_gpu",
            "start_container",
            "wait_for_network",
            "push_assets",
            "provision",
            "healthcheck",
            "collect_outputs",
            "completed"
        ]
    );
    assert!(
        text.iter()
            .any(|l| l == "stdout: [inert] /bin/bash /opt/appstore/provision/provision/install.sh"),
        "{}",
        text.join("\n")
    );
    assert!(text
        .iter()
        .any(|l| l.contains("template: local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst")));

    let installs = store.installs().unwrap();
    assert_eq!(installs.len(), 1);
    let outputs: serde_json::Value = serde_json::from_str(&installs[0].outputs).unwrap();
    assert_eq!(outputs[0]["value"], "http://192.0.2.102:5232/");
    let sealed = outputs[2]["value"].as_str().unwrap();
    assert_eq!(
        w.engine.secrets.open_value(sealed).unwrap(),
        SECRET,
        "the password output is kept, sealed"
    );
    let ctid = installs[0].ctid.unwrap();
    let conf =
        std::fs::read_to_string(w.sim.root.join(format!("etc/pve/lxc/{ctid}.conf"))).unwrap();
    assert!(
        conf.contains("tags: appstore-app-radicale;appstore-managed\n"),
        "{conf}"
    );
    assert!(
        conf.contains("unprivileged: 1\n")
            && conf.contains(
                "mp0: local-lvm:vm-100-disk-1,mp=/var/lib/radicale/collections,backup=1,size=2G"
            ),
        "{conf}"
    );
    // The provision dir and inputs.json are gone from the container.
    assert!(!w
        .sim
        .root
        .join(format!("sim/ct/{ctid}/fs/opt/appstore/inputs.json"))
        .exists());
    assert!(!w
        .sim
        .root
        .join(format!("sim/ct/{ctid}/fs/opt/appstore/provision"))
        .exists());

    let mut seen_states = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let appstore_actors::engine::JobEvent::State { state, .. } = ev {
            seen_states.push(state);
        }
    }
    assert_eq!(seen_states.len(), 16, "every transition was published");

    // The secret is nowhere: not in the database, the job log, the audit log, the job dir, or what PVE saw.
    drop(store);
    for file in [
        w.state.path().join("state.db"),
        w.state.path().join("state.db-wal"),
        w.state.path().join("helper/audit.log"),
        w.sim.record.clone(),
    ] {
        if let Ok(bytes) = std::fs::read(&file) {
            let text = String::from_utf8_lossy(&bytes);
            if let Some(i) = text.find(SECRET) {
                panic!(
                    "the secret leaked into {}: ...{}...",
                    file.display(),
                    &text[i.saturating_sub(200)..(i + 60).min(text.len())]
                );
            }
        }
    }
    for f in walk(&w.state.path().join("jobs")) {
        assert!(
            !std::fs::read_to_string(&f)
                .unwrap_or_default()
                .contains(SECRET),
            "the secret stayed in {}",
            f.display()
        );
    }
    assert!(!text.iter().any(|l| l.contains(SECRET)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_start_leaves_the_container_stopped_and_tagged_failed() {
    let w = world();
    w.sim
        .fail_next_task("vzstart", "startup for container '100' failed")
        .unwrap();
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
    assert_eq!(end, JobState::Failed);
    let record = w.engine.store.job(job).unwrap().unwrap();
    assert_eq!(record.state, JobState::Failed);
    assert!(
        record
            .error
            .as_deref()
            .unwrap()
            .contains("startup for container '100' failed"),
        "{record:?}"
    );
    let conf = std::fs::read_to_string(w.sim.root.join("etc/pve/lxc/100.conf")).unwrap();
    assert!(
        conf.contains("tags: appstore-app-radicale;appstore-failed;appstore-managed\n"),
        "{conf}"
    );
    assert!(w.engine.store.installs().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_and_unknown_apps_fail_before_anything_is_created() {
    let w = world();
    let mut req = radicale();
    req.inputs.insert("port".into(), serde_json::json!(80));
    req.inputs.insert("colour".into(), serde_json::json!("red"));
    let job = w
        .engine
        .create_install_job(&w.snapshot, &req)
        .await
        .unwrap();
    let end = w
        .engine
        .run_install(job, Arc::clone(&w.snapshot), req, CancelFlag::default())
        .await
        .unwrap();
    assert_eq!(end, JobState::Failed);
    let error = w.engine.store.job(job).unwrap().unwrap().error.unwrap();
    assert!(
        error.contains("colour: this app has no input named `colour`")
            && error.contains("port: must be at least"),
        "{error}"
    );
    assert!(
        w.sim.requests().iter().all(|r| r["method"] != "POST"),
        "nothing was created"
    );
    let err = w
        .engine
        .create_install_job(
            &w.snapshot,
            &InstallRequest {
                app_id: "nope".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "app_id: no app `nope` in the catalog");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_the_job_at_the_next_step() {
    let w = world();
    let cancel = CancelFlag::default();
    cancel.cancel();
    let job = w
        .engine
        .create_install_job(&w.snapshot, &radicale())
        .await
        .unwrap();
    let end = w
        .engine
        .run_install(job, Arc::clone(&w.snapshot), radicale(), cancel)
        .await
        .unwrap();
    assert_eq!(end, JobState::Canceled);
}

#[tokio::test(flavor = "multi_thread")]
async fn uninstall_destroys_the_container_and_refuses_one_outside_the_boundary() {
    let w = world();
    let job = w
        .engine
        .create_install_job(&w.snapshot, &radicale())
        .await
        .unwrap();
    assert_eq!(
        w.engine
            .run_install(
                job,
                Arc::clone(&w.snapshot),
                radicale(),
                CancelFlag::default()
            )
            .await
            .unwrap(),
        JobState::Completed
    );
    let install = w.engine.store.installs().unwrap().remove(0);
    let job = w
        .engine
        .create_uninstall_job(&install, false)
        .await
        .unwrap();
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
        .logs(job, 0, 100)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(end, JobState::Completed, "{logs:?}");
    let states: Vec<String> = w
        .engine
        .store
        .transitions(job)
        .unwrap()
        .into_iter()
        .map(|t| t.to_state)
        .collect();
    assert_eq!(
        states,
        [
            "queued",
            "check_boundary",
            "stop_container",
            "destroy_container",
            "cleanup",
            "completed"
        ]
    );
    assert!(!w.sim.root.join("etc/pve/lxc/100.conf").exists());
    assert!(
        !std::fs::read_to_string(w.sim.root.join("etc/pve/user.cfg"))
            .unwrap()
            .contains("appstore:PVE App Store apps:100"),
        "purged from the pool"
    );
    assert_eq!(
        w.engine.store.install(install.id).unwrap().unwrap().status,
        "removed"
    );

    // A container the store does not own: in another pool.
    let pct = w.sim.root.join("usr/sbin/pct");
    let out = std::process::Command::new(&pct)
        .args([
            "create",
            "150",
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            "--tags",
            "appstore-managed",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut foreign = install.clone();
    foreign.ctid = Some(ct(150));
    let job = w
        .engine
        .create_uninstall_job(&foreign, false)
        .await
        .unwrap();
    assert_eq!(
        w.engine
            .run_uninstall(job, foreign, None, CancelFlag::default())
            .await
            .unwrap(),
        JobState::Failed
    );
    let error = w.engine.store.job(job).unwrap().unwrap().error.unwrap();
    assert!(
        error.contains("[pool-boundary] container 150 is outside the store's pool `appstore`"),
        "{error}"
    );
    assert!(
        w.sim.root.join("etc/pve/lxc/150.conf").exists(),
        "the foreign container is untouched"
    );
}

/// A container whose install failed between the create and the tagging: in the pool, untagged,
/// its description naming the job. The store recognises it by that description and destroys it;
/// an untagged container naming another job stays out of reach.
#[tokio::test(flavor = "multi_thread")]
async fn a_container_left_untagged_by_a_failed_install_is_recognised_and_destroyed() {
    use appstore_actors::store::NewJob;
    use appstore_pve::types::{CreateLxc, NetConfig};
    let w = world();
    let store = w.engine.store.clone();
    let failed_install = |ctid: appstore_core::Ctid| {
        let job = store
            .create_job(&NewJob {
                kind: appstore_core::job::JobKind::Install,
                app_id: "radicale".into(),
                install_id: None,
                ctid: None,
                node: "pve1".into(),
                pool: "appstore".into(),
                user_action: "install radicale 1.0.0".into(),
                manifest_version: "1.0.0".into(),
                manifest_sha256: String::new(),
                commit_id: None,
                request: "{}".into(),
            })
            .unwrap();
        store.set_job_ctid(job.id, ctid).unwrap();
        store
            .transition(
                job.id,
                JobState::Queued,
                JobState::Failed,
                Some("failed after the create"),
            )
            .unwrap();
        store.job(job.id).unwrap().unwrap()
    };
    let create = |vmid: appstore_core::Ctid, job: i64| {
        let pve = Arc::clone(&w.engine.pve);
        async move {
            let upid = pve
                .lxc_create(
                    "pve1",
                    &CreateLxc {
                        vmid,
                        ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
                        hostname: "radicale".into(),
                        pool: "appstore".into(),
                        storage: "local-lvm".into(),
                        disk_gb: 4,
                        cores: 1,
                        memory_mb: 512,
                        swap_mb: 512,
                        unprivileged: true,
                        onboot: false,
                        nesting: false,
                        net: NetConfig {
                            bridge: "vmbr0".into(),
                            ip: "dhcp".into(),
                            gw: None,
                            ip6: None,
                            gw6: None,
                            tag: None,
                            firewall: true,
                        },
                        description: Some(format!(
                            "Installed by PVE App Store: radicale 1.0.0 (job {job})"
                        )),
                        volumes: vec![],
                    },
                )
                .await
                .unwrap();
            appstore_pve::wait_task(pve.as_ref(), &upid, std::time::Duration::from_secs(10))
                .await
                .unwrap();
        }
    };
    let job = failed_install(ct(150));
    create(ct(150), job.id).await;
    let (destroy, install) = w.engine.create_destroy_failed_job(&job).await.unwrap();
    let end = w
        .engine
        .run_uninstall(destroy, install, None, CancelFlag::default())
        .await
        .unwrap();
    let logs: Vec<String> = store
        .logs(destroy, 0, 100)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(end, JobState::Completed, "{logs:#?}");
    assert!(
        logs.iter().any(|l| l.contains("lacked the managed tag")),
        "{logs:#?}"
    );
    assert!(w.engine.pve.is_id_free(ct(150)).await.unwrap(), "destroyed");

    // Another job's marker: not adopted, refused at the boundary, left alone.
    let job = failed_install(ct(151));
    create(ct(151), job.id + 1000).await;
    let (destroy, install) = w.engine.create_destroy_failed_job(&job).await.unwrap();
    let end = w
        .engine
        .run_uninstall(destroy, install, None, CancelFlag::default())
        .await
        .unwrap();
    assert_eq!(end, JobState::Failed);
    let error = store
        .job(destroy)
        .unwrap()
        .unwrap()
        .error
        .unwrap_or_default();
    assert!(error.contains("[managed-tag]"), "{error}");
    assert!(
        !w.engine.pve.is_id_free(ct(151)).await.unwrap(),
        "left alone"
    );
}

/// Installs `radicale` asking for `family` on a `version` node: the job's end and its log.
async fn install_on(
    version: pve_sim::PveVersion,
    family: &str,
) -> (JobState, String, common::World) {
    install_edited(version, &|t| {
        t.replace("ostemplate: debian-13", &format!("ostemplate: {family}"))
    })
    .await
}

/// Installs `radicale` with its manifest changed by `edit` on a `version` node.
async fn install_edited(
    version: pve_sim::PveVersion,
    edit: &dyn Fn(&str) -> String,
) -> (JobState, String, common::World) {
    let w = common::world_with(pve_sim::harness::HarnessOptions {
        version,
        task_latency: std::time::Duration::from_millis(5),
        ..Default::default()
    });
    let rel = "apps/radicale/app.yml";
    let text = std::fs::read_to_string(w.state.path().join("catalog-src").join(rel)).unwrap();
    let snapshot = common::commit_files(&w, &[(rel, edit(&text))]);
    let (job, end) = common::run_install(&w, &snapshot, radicale()).await;
    let log: Vec<String> = w
        .engine
        .store
        .logs(job, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    (end, log.join("\n"), w)
}

/// A manifest may ask for Debian 13: on a 9.1 node the store takes the newest standard one; an 8.4
/// node has none and offers none, and the install says so before it creates anything.
#[tokio::test(flavor = "multi_thread")]
async fn debian_13_installs_on_9_1_and_is_refused_on_8_4_by_name() {
    let (end, log, w) = install_on(pve_sim::PveVersion::V9_1, "debian-13").await;
    assert_eq!(end, JobState::Completed, "{log}");
    assert!(
        log.contains("template: local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst"),
        "{log}"
    );
    let conf = std::fs::read_to_string(w.sim.root.join("etc/pve/lxc/100.conf")).unwrap();
    assert!(conf.contains("ostype: debian"), "{conf}");
    let (end, log, w) = install_on(pve_sim::PveVersion::V8_4, "debian-13").await;
    assert_eq!(end, JobState::Failed, "{log}");
    assert!(
        log.contains("PVE offers no `debian-13` template to download"),
        "{log}"
    );
    assert!(!w.sim.root.join("etc/pve/lxc/100.conf").exists());
}

/// `requires.pve` is enforced: an app for 9.x fails on an 8.4 node before anything is created,
/// saying what it needs and what the node runs, and installs on a 9.1 node.
#[tokio::test(flavor = "multi_thread")]
async fn an_app_requiring_pve_9_is_refused_on_8_4_and_installs_on_9_1() {
    let needs_9 = |t: &str| t.replacen("\nlxc:", "\nrequires:\n  pve: \">=9.0\"\nlxc:", 1);
    let (end, log, w) = install_edited(pve_sim::PveVersion::V8_4, &needs_9).await;
    assert_eq!(end, JobState::Failed, "{log}");
    assert!(
        log.contains("radicale 1.1.0 needs Proxmox VE >=9.0; this node runs 8.4.1"),
        "{log}"
    );
    assert!(!w.sim.root.join("etc/pve/lxc/100.conf").exists());
    let (end, log, _) = install_edited(pve_sim::PveVersion::V9_1, &needs_9).await;
    assert_eq!(end, JobState::Completed, "{log}");
}
