//! The PVE client against the simulator: every call, TLS by CA file and by fingerprint pin, each
//! error class, task waiting, version differences; and conformance: every request the client sent
//! in these tests is checked against the real API schema (`apidata.json`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

use appstore_core::Ctid;
use appstore_pve::types::{CreateLxc, NetConfig, ResourceKind};
use appstore_pve::{wait_task, HttpPve, PveApi, PveEndpoint, PveError, TlsMode};
use pve_sim::harness::{start, HarnessOptions, RunningSim};
use pve_sim::schema::{validate, Schema};
use pve_sim::PveVersion;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

const NODE: &str = "pve1";
const DEBIAN: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

/// The real schema of the release `sim` runs: 8.4's `apidata.json` or 9.1's `apidata-9.1.json`.
fn full_schema(version: PveVersion) -> Option<&'static Schema> {
    static S8: OnceLock<Option<Schema>> = OnceLock::new();
    static S9: OnceLock<Option<Schema>> = OnceLock::new();
    let (cell, file) = if version.is_9() {
        (&S9, "apidata-9.1.json")
    } else {
        (&S8, "apidata.json")
    };
    cell.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/pve-api")
            .join(file);
        std::fs::read_to_string(path)
            .ok()
            .map(|t| Schema::from_apidata(&t))
    })
    .as_ref()
}

/// Every request the client sent is one the real schema of the node's release accepts: method and
/// path exist, every parameter is known and well-formed, nothing required is missing.
fn assert_conformant(sim: &RunningSim) {
    assert_conformant_except(sim, &[]);
}

/// The same, for a test that sends the parameters in `deliberate` wrong on purpose.
fn assert_conformant_except(sim: &RunningSim, deliberate: &[&str]) {
    let version = sim.version();
    let schema = match full_schema(version) {
        Some(s) => s,
        None => {
            pve_sim::harness::prerequisite(
                false,
                "APPSTORE_REQUIRE_SHARED",
                "../shared/pve-api has no real schema beside the checkout; checking against the repo's subset",
            );
            version.schema()
        }
    };
    let requests = sim.requests();
    assert!(!requests.is_empty());
    for r in requests {
        let method = r["method"].as_str().unwrap();
        let path = r["path"].as_str().unwrap();
        let (endpoint, path_params) = schema
            .route(method, path)
            .unwrap_or_else(|e| panic!("{}: {r}", e.message));
        let mut params: BTreeMap<String, String> = r["params"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        params.extend(path_params);
        if let Err(errors) = validate(endpoint, &params).or_else(|e| {
            if e.keys().all(|k| deliberate.contains(&k.as_str())) {
                Ok(())
            } else {
                Err(e)
            }
        }) {
            panic!(
                "the client sent a request a real {} node rejects: {method} {path}: {errors:?}",
                version.release()
            );
        }
    }
}

fn client(sim: &RunningSim, token: &str, tls: TlsMode) -> HttpPve {
    let (id, secret) = token.rsplit_once('=').unwrap();
    HttpPve::new(&PveEndpoint {
        url: sim.url.clone(),
        token_id: id.into(),
        token_secret: secret.into(),
        tls,
    })
    .unwrap()
}

fn fingerprint(s: &str) -> [u8; 32] {
    appstore_core::config::parse_fingerprint(s).unwrap()
}

/// A container id of the tests.
fn ct(id: u32) -> Ctid {
    Ctid::new(id).unwrap()
}

fn spec(vmid: Ctid) -> CreateLxc {
    CreateLxc {
        vmid,
        ostemplate: DEBIAN.into(),
        hostname: "radicale".into(),
        pool: "appstore".into(),
        storage: "local-lvm".into(),
        disk_gb: 4,
        cores: 1,
        memory_mb: 512,
        swap_mb: 512,
        unprivileged: true,
        onboot: true,
        nesting: true,
        net: NetConfig {
            bridge: "vmbr0".into(),
            ip: "dhcp".into(),
            gw: None,
            ip6: Some("auto".into()),
            gw6: None,
            tag: Some(20),
            firewall: true,
        },
        description: Some("Installed by PVE App Store: radicale 1.0.0".into()),
        volumes: vec![(
            0,
            "local-lvm".into(),
            2,
            "/var/lib/radicale/collections".into(),
        )],
    }
}

async fn done(api: &HttpPve, upid: appstore_pve::Upid) {
    wait_task(api, &upid, Duration::from_secs(10))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn store_token_runs_a_container_lifecycle_over_tls_on_8_4() {
    lifecycle_over_tls(PveVersion::V8_4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_token_runs_a_container_lifecycle_over_tls_on_9_1() {
    lifecycle_over_tls(PveVersion::V9_1).await;
}

/// The store token's whole container lifecycle on `version`, every request checked against that
/// release's real schema.
async fn lifecycle_over_tls(version: PveVersion) {
    let sim = start(HarnessOptions {
        tls: true,
        version,
        ..Default::default()
    })
    .unwrap();
    let api = client(
        &sim,
        &sim.creds.store_token,
        TlsMode::CaFile(sim.creds.ca_file.clone()),
    );
    assert_eq!(api.version().await.unwrap().release, version.release());
    let nodes = api.nodes().await.unwrap();
    assert_eq!(
        nodes[0].ssl_fingerprint.as_deref(),
        Some(sim.creds.fingerprint.as_str())
    );

    let vmid = api.next_id().await.unwrap();
    assert_eq!(vmid, ct(100));
    assert!(api.is_id_free(vmid).await.unwrap());
    let storages = api.storages(NODE, Some("rootdir")).await.unwrap();
    assert_eq!(
        storages
            .iter()
            .map(|s| s.storage.as_str())
            .collect::<Vec<_>>(),
        ["local-lvm"]
    );
    let templates = api.templates(NODE, "local").await.unwrap();
    assert_eq!(templates[0].volid, DEBIAN);
    let appliances = api.appliances(NODE).await.unwrap();
    assert!(appliances.iter().any(|a| a.os == "debian-12"));
    assert_eq!(
        appliances.iter().any(|a| a.os == "debian-13"),
        version.is_9(),
        "Debian 13 templates come with 9.x"
    );
    let bridges = api.bridges(NODE).await.unwrap();
    assert_eq!(
        bridges.iter().map(|b| b.iface.as_str()).collect::<Vec<_>>(),
        ["vmbr0"],
        "only the bridge the token may use"
    );

    done(&api, api.lxc_create(NODE, &spec(vmid)).await.unwrap()).await;
    assert!(!api.is_id_free(vmid).await.unwrap());
    let cfg = api.lxc_config(NODE, vmid).await.unwrap();
    assert_eq!(cfg.options["rootfs"], "local-lvm:vm-100-disk-0,size=4G");
    assert_eq!(
        cfg.options["mp0"],
        "local-lvm:vm-100-disk-1,mp=/var/lib/radicale/collections,backup=1,size=2G"
    );
    assert_eq!(cfg.options["unprivileged"], "1");
    assert!(cfg.options["net0"].starts_with(
        "name=eth0,bridge=vmbr0,ip=dhcp,ip6=auto,tag=20,firewall=1,type=veth,hwaddr="
    ));
    assert_eq!(
        cfg.options["description"],
        "Installed by PVE App Store: radicale 1.0.0\n"
    );

    // Tags after the task, with the digest: the way a pool-scoped token may set them.
    let tags = vec![(
        "tags".to_string(),
        "appstore-managed;appstore-app-radicale".to_string(),
    )];
    api.lxc_update_config(NODE, vmid, &tags, &[], Some(&cfg.digest))
        .await
        .unwrap();
    assert_eq!(
        api.lxc_config(NODE, vmid).await.unwrap().tags(),
        ["appstore-app-radicale", "appstore-managed"]
    );
    let stale = api
        .lxc_update_config(
            NODE,
            vmid,
            &[("onboot".into(), "0".into())],
            &[],
            Some(&cfg.digest),
        )
        .await
        .unwrap_err();
    assert!(
        stale
            .to_string()
            .contains("detected modified configuration"),
        "{stale}"
    );

    let pool = api.pool("appstore").await.unwrap();
    assert!(pool.members.iter().any(|m| m.vmid == Some(100)));
    let resources = api.cluster_resources(Some(ResourceKind::Vm)).await.unwrap();
    assert_eq!(resources[0].pool.as_deref(), Some("appstore"));
    assert_eq!(api.lxc_list(NODE).await.unwrap()[0].vmid, 100);

    assert_eq!(
        api.lxc_interfaces(NODE, vmid).await.unwrap(),
        None,
        "no addresses while stopped"
    );
    done(&api, api.lxc_start(NODE, vmid).await.unwrap()).await;
    assert_eq!(api.lxc_status(NODE, vmid).await.unwrap().status, "running");
    let ifs = api.lxc_interfaces(NODE, vmid).await.unwrap().unwrap();
    assert!(ifs.iter().any(|i| i.name == "eth0" && i.inet.is_some()));

    done(
        &api,
        api.snapshot_create(NODE, vmid, "before_upgrade", "pre-upgrade")
            .await
            .unwrap(),
    )
    .await;
    assert!(api
        .snapshots(NODE, vmid)
        .await
        .unwrap()
        .iter()
        .any(|s| s.name == "before_upgrade"));
    done(
        &api,
        api.snapshot_rollback(NODE, vmid, "before_upgrade")
            .await
            .unwrap(),
    )
    .await;
    done(
        &api,
        api.snapshot_delete(NODE, vmid, "before_upgrade")
            .await
            .unwrap(),
    )
    .await;

    done(&api, api.lxc_start(NODE, vmid).await.unwrap()).await;
    done(&api, api.lxc_shutdown(NODE, vmid, 30).await.unwrap()).await;
    done(&api, api.lxc_destroy(NODE, vmid, true).await.unwrap()).await;
    assert!(api.lxc_list(NODE).await.unwrap().is_empty());
    assert!(api
        .pool("appstore")
        .await
        .unwrap()
        .members
        .iter()
        .all(|m| m.vmid.is_none()));
    assert_conformant(&sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn fingerprint_pin_accepts_the_node_and_refuses_another_certificate() {
    let sim = start(HarnessOptions {
        tls: true,
        ..Default::default()
    })
    .unwrap();
    let pinned = client(
        &sim,
        &sim.creds.root_token,
        TlsMode::Fingerprint(fingerprint(&sim.creds.fingerprint)),
    );
    assert!(pinned.version().await.is_ok());
    let wrong = client(&sim, &sim.creds.root_token, TlsMode::Fingerprint([7; 32]));
    let err = wrong.version().await.unwrap_err();
    assert!(matches!(err, PveError::Transport { .. }), "{err}");
    let other_ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other_ca.path(), "not a certificate").unwrap();
    let bad = HttpPve::new(&PveEndpoint {
        url: sim.url.clone(),
        token_id: "x@pve!y".into(),
        token_secret: "s".into(),
        tls: TlsMode::CaFile(other_ca.path().to_path_buf()),
    });
    assert!(matches!(bad, Err(PveError::Setup(_))));
    let insecure = client(&sim, &sim.creds.root_token, TlsMode::Insecure);
    assert!(insecure.version().await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn each_error_class_says_what_pve_said() {
    let sim = start(HarnessOptions::default()).unwrap();
    let store = client(&sim, &sim.creds.store_token, TlsMode::Insecure);

    let bad_secret = sim
        .creds
        .store_token
        .rsplit_once('=')
        .unwrap()
        .0
        .to_string()
        + "=11111111-2222-3333-4444-555555555555";
    let err = client(&sim, &bad_secret, TlsMode::Insecure)
        .version()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "PVE refused the API token (401); check proxmox.token_id and the token secret file"
    );

    let mut other = spec(ct(101));
    other.pool = "other".into();
    match store.lxc_create(NODE, &other).await.unwrap_err() {
        PveError::Forbidden {
            path, privilege, ..
        } => {
            assert_eq!(
                (path.as_deref(), privilege.as_deref()),
                (Some("/vms/101"), Some("VM.Allocate"))
            );
        }
        e => panic!("{e}"),
    }
    let err = client(&sim, &sim.creds.nobody_token, TlsMode::Insecure)
        .templates(NODE, "local")
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("the API token lacks privilege Datastore.Audit|Datastore.AllocateSpace on /storage/local (403)"), "{err}");

    done(
        &store,
        store.lxc_create(NODE, &spec(ct(101))).await.unwrap(),
    )
    .await;
    let dev = vec![(
        "dev0".to_string(),
        "/dev/dri/renderD128,gid=104".to_string(),
    )];
    let err = store
        .lxc_update_config(NODE, ct(101), &dev, &[], None)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "PVE refused the request (403): Permission check failed (configuring device passthrough is only allowed for root@pam)");

    let err = store
        .lxc_update_config(NODE, ct(101), &[("colour".into(), "red".into())], &[], None)
        .await
        .unwrap_err();
    match &err {
        PveError::BadRequest { params, .. } => {
            assert!(params["colour"].starts_with("property is not defined in schema"))
        }
        e => panic!("{e}"),
    }

    done(&store, store.lxc_start(NODE, ct(101)).await.unwrap()).await;
    let err = store.lxc_start(NODE, ct(101)).await.unwrap_err();
    assert_eq!(err.to_string(), "PVE failed (500): CT 101 already running");

    sim.fail_next_task(
        "vzstop",
        "command 'lxc-stop -n 101 --kill' failed: exit code 1",
    )
    .unwrap();
    let upid = store.lxc_stop(NODE, ct(101)).await.unwrap();
    match wait_task(&store, &upid, Duration::from_secs(10))
        .await
        .unwrap_err()
    {
        PveError::TaskFailed {
            exitstatus, log, ..
        } => {
            assert_eq!(
                exitstatus,
                "command 'lxc-stop -n 101 --kill' failed: exit code 1"
            );
            assert_eq!(
                log.last().map(String::as_str),
                Some("TASK ERROR: command 'lxc-stop -n 101 --kill' failed: exit code 1")
            );
        }
        e => panic!("{e}"),
    }
    assert_conformant_except(&sim, &["colour"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_create_task_leaves_nothing_and_a_slow_task_times_out() {
    let sim = start(HarnessOptions {
        task_latency: Duration::from_millis(1500),
        ..Default::default()
    })
    .unwrap();
    let api = client(&sim, &sim.creds.store_token, TlsMode::Insecure);
    sim.fail_next_task("vzcreate", "unable to create CT 100 - lvcreate 'pve/vm-100-disk-0' error: Volume group \"pve\" has insufficient free space").unwrap();
    let upid = api.lxc_create(NODE, &spec(ct(100))).await.unwrap();
    let err = wait_task(&api, &upid, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, PveError::TaskTimeout { .. }), "{err}");
    let err = wait_task(&api, &upid, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("insufficient free space"), "{err}");
    assert_conformant(&sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn older_releases_get_the_calls_they_have() {
    let sim = start(HarnessOptions {
        version: PveVersion::V8_0,
        ..Default::default()
    })
    .unwrap();
    let root = client(&sim, &sim.creds.root_token, TlsMode::Insecure);
    assert_eq!(root.version().await.unwrap().version, "8.0.9");
    let mut s = spec(ct(105));
    s.volumes.clear();
    done(&root, root.lxc_create(NODE, &s).await.unwrap()).await;
    // vmid comes as a string before 8.2.
    assert_eq!(root.lxc_list(NODE).await.unwrap()[0].vmid, 105);
    // The pool calls fall back to /pools/{poolid}.
    root.pool_members("appstore", ct(105), true).await.unwrap();
    assert!(root
        .pool("appstore")
        .await
        .unwrap()
        .members
        .iter()
        .all(|m| m.vmid != Some(105)));
    root.pool_members("appstore", ct(105), false).await.unwrap();
    assert!(root
        .pool("appstore")
        .await
        .unwrap()
        .members
        .iter()
        .any(|m| m.vmid == Some(105)));
    let err = root.lxc_interfaces(NODE, ct(105)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "reading a container's addresses (interfaces) needs PVE 8.1 or newer; this node runs 8.0.9"
    );
    // A template download through aplinfo is a task.
    done(
        &root,
        root.download_template(NODE, "local", "alpine-3.20-default_20240908_amd64.tar.xz")
            .await
            .unwrap(),
    )
    .await;
    assert!(root
        .templates(NODE, "local")
        .await
        .unwrap()
        .iter()
        .any(|v| v.volid.contains("alpine-3.20")));
    assert_conformant(&sim);
}

/// While pveproxy restarts (connections dropped for a while), a task wait keeps polling and
/// ends when the task does.
#[tokio::test(flavor = "multi_thread")]
async fn a_task_wait_survives_a_pveproxy_restart() {
    let sim = start(HarnessOptions {
        task_latency: Duration::from_millis(1500),
        ..Default::default()
    })
    .unwrap();
    let api = client(&sim, &sim.creds.store_token, TlsMode::Insecure);
    let upid = api.lxc_create(NODE, &spec(ct(100))).await.unwrap();
    // A proxy in front of the node that drops every connection for its first second, as a
    // restarting pveproxy does, then passes them through.
    let backend = sim.url.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let opened = std::time::Instant::now();
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let proxy = tokio::spawn({
        let dropped = dropped.clone();
        async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if opened.elapsed() < Duration::from_secs(1) {
                    dropped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    drop(inbound);
                    continue;
                }
                let backend = backend.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }
    });
    let (id, secret) = sim.creds.store_token.rsplit_once('=').unwrap();
    let through_proxy = HttpPve::new(&PveEndpoint {
        url: format!("http://127.0.0.1:{port}"),
        token_id: id.into(),
        token_secret: secret.into(),
        tls: TlsMode::Insecure,
    })
    .unwrap();
    let status = wait_task(&through_proxy, &upid, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(status.succeeded());
    assert!(
        dropped.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the restart was seen"
    );
    proxy.abort();
}
