//! The whole engine on real containers (the simulator's LXC back end): two apps of the reference
//! catalog that use only Debian packages are installed through every state, their health checks pass
//! and their URLs answer from the host; one is upgraded after a catalog commit bumps its version;
//! radicale's own log is read through the helper, it is backed up with its data volume and
//! restored into a new container and over itself; all are uninstalled. An app whose install script fails ends `failed` with the script's own error
//! in the log and its container stopped and tagged. Needs root, LXC, debootstrap and the Debian
//! mirror; skipped otherwise, unless `APPSTORE_REQUIRE_LXC=1` (CI) makes that a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first failure

mod common;

use appstore_actors::engine::{CancelFlag, InstallRequest, MaintainRequest};
use appstore_actors::store::InstallRecord;
use appstore_catalog::CatalogSnapshot;
use appstore_core::job::{JobKind, JobState};
use common::{world_with, World, SECRET};
use pve_sim::harness::{lxc_available, HarnessOptions};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

struct Done {
    job: i64,
    end: JobState,
    logs: Vec<String>,
}

async fn logs_of(w: &World, job: i64) -> Vec<String> {
    w.engine
        .store
        .logs(job, 0, 100_000)
        .unwrap()
        .into_iter()
        .map(|l| format!("[{}] {}", l.stream, l.line))
        .collect()
}

async fn install(w: &World, snapshot: &Arc<CatalogSnapshot>, request: InstallRequest) -> Done {
    let (job, end) = common::run_install(w, snapshot, request).await;
    Done {
        job,
        end,
        logs: logs_of(w, job).await,
    }
}

fn install_of(w: &World, job: i64) -> InstallRecord {
    let id = w
        .engine
        .store
        .job(job)
        .unwrap()
        .unwrap()
        .install_id
        .unwrap();
    w.engine.store.install(id).unwrap().unwrap()
}

fn output(install: &InstallRecord, key: &str) -> String {
    let outputs: serde_json::Value = serde_json::from_str(&install.outputs).unwrap();
    outputs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"] == key)
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string()
}

/// GET `url` from the host; the status code.
fn http_status(url: &str) -> u16 {
    let rest = url.strip_prefix("http://").unwrap();
    let (hostport, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(hostport).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn states(w: &World, job: i64) -> Vec<String> {
    w.engine
        .store
        .transitions(job)
        .unwrap()
        .into_iter()
        .map(|t| t.to_state)
        .collect()
}

/// Runs `sh -c script` in container `ctid` (the test bed's `pct exec`); its standard output.
fn in_container(w: &World, ctid: appstore_core::Ctid, script: &str) -> String {
    let out = std::process::Command::new(w.sim.root.join("usr/sbin/pct"))
        .args(["exec", &ctid.to_string(), "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn backup_of(w: &World, install: &InstallRecord) -> String {
    let (job, end) = common::run_backup(w, install, "local", 1, Default::default()).await;
    let logs = logs_of(w, job).await;
    assert_eq!(end, JobState::Completed, "{logs:#?}");
    let list = w
        .engine
        .pve
        .backups("pve1", "local", install.ctid.unwrap())
        .await
        .unwrap();
    assert_eq!(list.len(), 1, "keep the last 1: {list:#?}");
    list[0].volid.clone()
}

async fn restore_of(
    w: &World,
    snapshot: &Arc<CatalogSnapshot>,
    volid: &str,
    over: Option<&InstallRecord>,
) -> Done {
    let (job, end) = common::run_restore(w, snapshot, volid, over).await;
    Done {
        job,
        end,
        logs: logs_of(w, job).await,
    }
}

fn pct_status(w: &World, ctid: appstore_core::Ctid) -> String {
    let out = std::process::Command::new(w.sim.root.join("usr/sbin/pct"))
        .args(["status", &ctid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_debian_apps_install_upgrade_and_uninstall_in_real_containers() {
    if !lxc_available() {
        return;
    }
    let w = world_with(HarnessOptions {
        backend: "lxc".into(),
        task_latency: Duration::ZERO,
        ..Default::default()
    });
    let install_states = [
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
        "completed",
    ];

    // Radicale, with a password of the user's.
    let radicale = install(&w, &w.snapshot, common::radicale()).await;
    assert_eq!(radicale.end, JobState::Completed, "{:#?}", radicale.logs);
    assert_eq!(states(&w, radicale.job), install_states);
    assert!(
        radicale
            .logs
            .iter()
            .any(|l| l.contains("Installed radicale")),
        "{:#?}",
        radicale.logs
    );
    assert!(radicale.logs.iter().any(|l| l.contains("healthy after")));
    assert!(radicale.logs.iter().all(|l| !l.contains(SECRET)));
    let radicale_install = install_of(&w, radicale.job);
    let url = output(&radicale_install, "url");
    assert!([200, 302, 401].contains(&http_status(&url)), "{url}");

    // Apt-Cacher NG, with a generated password.
    let acng = install(
        &w,
        &w.snapshot,
        InstallRequest {
            app_id: "apt-cacher-ng".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(acng.end, JobState::Completed, "{:#?}", acng.logs);
    assert_eq!(states(&w, acng.job), install_states);
    let acng_install = install_of(&w, acng.job);
    let report = output(&acng_install, "url");
    assert!(report.ends_with(":3142/acng-report.html"), "{report}");
    assert!([200, 401].contains(&http_status(&report)), "{report}");

    // A catalog commit releases radicale 1.9.0: the upgrade runs its script for real.
    let v2 = common::set_version(&w, "radicale", "1.9.0");
    let request = MaintainRequest {
        install_id: radicale_install.id,
        ..Default::default()
    };
    let job = w
        .engine
        .create_maintain_job(JobKind::Upgrade, &v2, &radicale_install, &request)
        .await
        .unwrap();
    let end = w
        .engine
        .run_maintain(
            JobKind::Upgrade,
            job,
            Arc::clone(&v2),
            radicale_install.clone(),
            request,
            CancelFlag::default(),
        )
        .await
        .unwrap();
    let logs = logs_of(&w, job).await;
    assert_eq!(end, JobState::Completed, "{logs:#?}");
    assert!(
        logs.iter().any(|l| l.contains("Upgrade finished")),
        "{logs:#?}"
    );
    assert!(logs.iter().any(|l| l.contains("snapshot `appstore_job_")));
    let upgraded = w
        .engine
        .store
        .install(radicale_install.id)
        .unwrap()
        .unwrap();
    assert_eq!(upgraded.version, "1.9.0");
    assert!([200, 302, 401].contains(&http_status(&output(&upgraded, "url"))));

    // The app's own log: radicale's journal, read through the helper. Radicale logs each request
    // path, so a request for the password puts it in the journal; the log shown masks it.
    let ctid = upgraded.ctid.unwrap();
    let url = output(&upgraded, "url");
    http_status(&format!("{}/{SECRET}/", url.trim_end_matches('/')));
    let redactor = appstore_actors::engine::install_redactor(
        &w.engine.store,
        &w.engine.secrets,
        &upgraded,
        &v2.app("radicale").unwrap().manifest,
    );
    let read = || {
        appstore_actors::engine::host::read_journal(
            w.engine.helper.as_ref(),
            ctid,
            "radicale.service",
            200,
            None,
            &redactor,
        )
    };
    let masked = format!("/{}/", appstore_core::redact::MASK);
    let mut tries = 0;
    let (log, cursor) = loop {
        let (log, cursor) = read().await.unwrap();
        tries += 1;
        if log.iter().any(|l| l.contains(&masked)) || tries == 20 {
            break (log, cursor);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(log.iter().any(|l| l.contains("radicale")), "{log:#?}");
    assert!(cursor.is_some(), "{log:#?}");
    assert!(log.iter().any(|l| l.contains(&masked)), "{log:#?}");
    assert!(log.iter().all(|l| !l.contains(SECRET)), "{log:#?}");
    // PVE's usage history of the container: the node's samples of its real cgroup counters.
    let rows = w
        .engine
        .pve
        .lxc_rrddata("pve1", ctid, appstore_pve::types::Timeframe::Hour)
        .await
        .unwrap();
    let sampled: Vec<_> = rows.iter().filter(|r| r.mem.is_some()).collect();
    assert!(!sampled.is_empty(), "no samples in {rows:#?}");
    assert!(
        sampled.iter().all(|r| r.mem.unwrap() > 1_000_000.0),
        "{sampled:#?}"
    );

    // A backup with its data volume, then a restore into a new container and one over the
    // original: the data comes back, the app answers.
    let data = "/var/lib/radicale/collections/appstore-marker";
    in_container(&w, ctid, &format!("echo before-backup > {data}"));
    // A file that keeps changing during the backup (as a journal does): a snapshot-mode backup
    // of a running container must still be a consistent copy.
    in_container(
        &w,
        ctid,
        "rm -f /run/churn-stop; nohup sh -c 'while [ ! -e /run/churn-stop ]; do \
         dd if=/dev/zero of=/var/tmp/churn bs=1M count=8 conv=notrunc status=none; done' \
         >/dev/null 2>&1 &",
    );
    let volid = backup_of(&w, &upgraded).await;
    in_container(&w, ctid, "touch /run/churn-stop");
    in_container(&w, ctid, &format!("echo after-backup > {data}"));
    let copy = restore_of(&w, &v2, &volid, None).await;
    assert_eq!(copy.end, JobState::Completed, "{:#?}", copy.logs);
    let copy_install = install_of(&w, copy.job);
    let copy_ctid = copy_install.ctid.unwrap();
    assert_ne!(copy_ctid, ctid);
    assert_eq!(
        in_container(&w, copy_ctid, &format!("cat {data}")),
        "before-backup"
    );
    assert!([200, 302, 401].contains(&http_status(&output(&copy_install, "url"))));
    let over = restore_of(&w, &v2, &volid, Some(&upgraded)).await;
    assert_eq!(over.end, JobState::Completed, "{:#?}", over.logs);
    assert_eq!(
        in_container(&w, ctid, &format!("cat {data}")),
        "before-backup"
    );
    let upgraded = w.engine.store.install(upgraded.id).unwrap().unwrap();
    assert!([200, 302, 401].contains(&http_status(&output(&upgraded, "url"))));

    // An install script that fails: its own error in the log, the container stopped and tagged.
    let broken = common::commit_files(
        &w,
        &[
            (
                "apps/broken-app/app.yml",
                "id: broken-app\nname: Broken app\ndescription: Its install script fails\nversion: 1.0.0\nlxc: { ostemplate: debian-12 }\nprovision: { script: install.sh, retry_safe: true }\n".to_string(),
            ),
            (
                "apps/broken-app/install.sh",
                "echo 'preparing'\necho 'ERROR: the disk is on fire' >&2\nexit 3\n".to_string(),
            ),
        ],
    );
    let failed = install(
        &w,
        &broken,
        InstallRequest {
            app_id: "broken-app".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(failed.end, JobState::Failed, "{:#?}", failed.logs);
    // retry_safe: a second run after the first failure, then the job fails.
    assert_eq!(
        failed
            .logs
            .iter()
            .filter(|l| *l == "[stderr] ERROR: the disk is on fire")
            .count(),
        2,
        "{:#?}",
        failed.logs
    );
    assert!(failed.logs.iter().any(|l| l.contains("runs once more")));
    let record = w.engine.store.job(failed.job).unwrap().unwrap();
    assert!(record
        .error
        .as_deref()
        .unwrap()
        .contains("exited with code 3"));
    let ctid = record.ctid.unwrap();
    assert_eq!(pct_status(&w, ctid), "status: stopped");
    let conf =
        std::fs::read_to_string(w.sim.root.join(format!("etc/pve/lxc/{ctid}.conf"))).unwrap();
    assert!(conf.contains("appstore-failed"), "{conf}");

    // Both apps uninstalled: their containers are gone.
    for install in [upgraded, acng_install, copy_install] {
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
                Some(Arc::clone(&v2)),
                CancelFlag::default(),
            )
            .await
            .unwrap();
        let logs = logs_of(&w, job).await;
        assert_eq!(end, JobState::Completed, "{logs:#?}");
        let ctid = install.ctid.unwrap();
        assert!(!w.sim.root.join(format!("etc/pve/lxc/{ctid}.conf")).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_node_made_with_mknod_is_passed_through_with_the_containers_own_group() {
    if !lxc_available() {
        return;
    }
    use appstore_gpu::fixture::{FixtureHost, Scenario};
    use appstore_gpu::GpuProbe;
    // The host: an Intel iGPU whose nodes are real character devices (226:0, 226:128) in a tree of
    // their own, which the node and the helper use as their device root.
    let dir = tempfile::tempdir().unwrap();
    let host = FixtureHost::scenario(dir.path(), Scenario::IntelIgpu).unwrap();
    assert!(host.real_nodes, "mknod works as root");
    let w = world_with(HarnessOptions {
        backend: "lxc".into(),
        task_latency: Duration::ZERO,
        device_root: Some(dir.path().to_path_buf()),
        ..Default::default()
    });
    w.engine.gpus.publish(
        appstore_gpu::SysfsProbe::new(appstore_gpu::HostRoot::at(dir.path()))
            .probe()
            .unwrap(),
    );
    let snapshot = common::commit_files(
        &w,
        &[
            (
                "apps/gpu-check/app.yml",
                "id: gpu-check\nname: GPU check\ndescription: Reports the render node it was given\nversion: 1.0.0\nlxc: { ostemplate: debian-12 }\nprovision: { script: install.sh }\ngpu: { supported: [intel] }\n".to_string(),
            ),
            (
                "apps/gpu-check/install.sh",
                "set -e\nstat -c 'seen %n gid=%g dev=%t:%T' /dev/dri/renderD128\ntest -c /dev/dri/renderD128\n".to_string(),
            ),
        ],
    );
    let done = install(
        &w,
        &snapshot,
        InstallRequest {
            app_id: "gpu-check".into(),
            gpu: appstore_core::gpu::GpuRequest::Devices {
                pci_addresses: vec!["0000:00:02.0".into()],
            },
            ..Default::default()
        },
    )
    .await;
    assert_eq!(done.end, JobState::Completed, "{:#?}", done.logs);
    let text = done.logs.join("\n");
    // The group the node belongs to inside is the container's own render group (else video), as
    // read inside it before the attach.
    let groups = done
        .logs
        .iter()
        .find_map(|l| l.split("the container's groups: ").nth(1))
        .expect("the groups line")
        .to_string();
    let gid = groups
        .strip_prefix("render ")
        .and_then(|r| r.split(',').next())
        .filter(|g| *g != "none")
        .map(str::to_string)
        .unwrap_or_else(|| groups.rsplit("video ").next().unwrap().trim().to_string());
    assert!(
        text.contains(&format!("seen /dev/dri/renderD128 gid={gid} dev=e2:80")),
        "{text}"
    );
    assert!(
        text.contains(
            "GPU check inside the container: /dev/dri/renderD128 present with the right group"
        ),
        "{text}"
    );
    let install = install_of(&w, done.job);
    let ctid = install.ctid.unwrap();
    let u = w
        .engine
        .create_uninstall_job(&install, false)
        .await
        .unwrap();
    let end = w
        .engine
        .run_uninstall(u, install, Some(snapshot), CancelFlag::default())
        .await
        .unwrap();
    assert_eq!(end, JobState::Completed);
    assert!(w.engine.store.gpu_attachments().unwrap().is_empty());
    assert!(!w.sim.root.join(format!("etc/pve/lxc/{ctid}.conf")).exists());
}
