//! What the engine tests share: a simulated node, the reference catalog in a git repository, and an
//! engine wired to both.
#![allow(dead_code)] // each test binary uses a part

use appstore_actors::engine::{Engine, EngineConfig, InProcessHelper, InstallRequest};
use appstore_actors::store::Store;
use appstore_catalog::{CatalogSnapshot, GitCache, GitCatalog, GitSource};
use appstore_core::job::RetryPolicy;
use appstore_core::policy::{InstallPolicy, ResourceCaps};
use appstore_helper::{Helper, HelperConfig};
use appstore_pve::{HttpPve, PveApi, PveEndpoint, TlsMode};
use pve_sim::harness::{start, HarnessOptions, RunningSim};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The reference catalog in a fresh git repository.
pub fn catalog_repo(dir: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
    for entry in walk(&src) {
        let target = dir.join(entry.strip_prefix(&src).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &target).unwrap();
    }
    let repo = git2::Repository::init(dir).unwrap();
    repo.set_head("refs/heads/main").unwrap();
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.org").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "catalog", &tree, &[])
        .unwrap();
    format!("file://{}", dir.display())
}

pub struct World {
    /// Nanoseconds the engine's PVE client spent waiting for the node.
    pub pve_waiting: Arc<std::sync::atomic::AtomicU64>,
    pub sim: RunningSim,
    pub engine: Engine,
    pub snapshot: Arc<CatalogSnapshot>,
    pub catalog: GitSource,
    pub state: tempfile::TempDir,
}

pub fn world() -> World {
    world_with(HarnessOptions {
        task_latency: Duration::from_millis(5),
        ..Default::default()
    })
}

/// A world on a simulated node started with `opts`.
pub fn world_with(opts: HarnessOptions) -> World {
    let device_root = opts
        .device_root
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("/"));
    let sim = start(opts).unwrap();
    let state = tempfile::tempdir().unwrap();
    let url = catalog_repo(&state.path().join("catalog-src"));
    let cache = state.path().join("catalog-cache");
    let source = GitSource {
        url,
        branch: "main".into(),
        path: String::new(),
    };
    let mut catalog = GitCatalog::new(GitCache::new(&cache), source.clone());
    let snapshot = catalog.refresh().unwrap().snapshot;
    let jobs = state.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let helper_config = HelperConfig::parse(&format!(
        "pool: appstore\npve_etc: {r}/etc/pve\npct: {r}/usr/sbin/pct\nlock_dir: {r}/run/lock/lxc\njob_root: {j}\naudit_log: {s}/helper/audit.log\nstaging_dir: {s}/helper/staging\nallowed_bind_paths: [{s}/host-data]\ndevice_root: {d}\n",
        d = device_root.display(),
        r = sim.root.display(),
        j = jobs.display(),
        s = state.path().display()
    ))
    .unwrap();
    let (id, secret) = sim.creds.store_token.rsplit_once('=').unwrap();
    let http = HttpPve::new(&PveEndpoint {
        url: sim.url.clone(),
        token_id: id.into(),
        token_secret: secret.into(),
        tls: TlsMode::Insecure,
    })
    .unwrap();
    let pve_waiting = http.time_waiting();
    let pve: Arc<dyn PveApi> = Arc::new(http);
    let engine = Engine {
        config: EngineConfig {
            node: "pve1".into(),
            pool: "appstore".into(),
            storage: "local-lvm".into(),
            bridge: "vmbr0".into(),
            template_storage: None,
            download_templates: true,
            jobs_dir: jobs,
            catalog_cache: cache,
            policy: InstallPolicy {
                caps: ResourceCaps {
                    max_cores: 8,
                    max_memory_mb: 16384,
                    max_disk_gb: 256,
                },
                allowed_features: [appstore_core::manifest::Feature::Nesting].into(),
                unprivileged_only: true,
            },
            network_wait: RetryPolicy {
                max_attempts: 20,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(100),
            },
            task_deadline: Duration::from_secs(30),
            gpu_policy: Default::default(),
            fault_hold_after: None,
        },
        pve,
        helper: Arc::new(InProcessHelper::new(Helper::in_process(
            helper_config,
            "test",
        ))),
        store: Store::open(&state.path().join("state.db")).unwrap(),
        events: tokio::sync::broadcast::channel(1024).0,
        secrets: appstore_actors::secrets::SecretBox::open(&state.path().join("secret.key"))
            .unwrap(),
        reserved_ctids: Default::default(),
        gpus: Default::default(),
        gpu_claims: Default::default(),
    };
    World {
        pve_waiting,
        sim,
        engine,
        snapshot,
        catalog: source,
        state,
    }
}

/// Runs a backup job of `install` to `storage` in `mode`, keeping the last `keep_last`: (job, end).
pub async fn run_backup(
    w: &World,
    install: &appstore_actors::store::InstallRecord,
    storage: &str,
    keep_last: u32,
    mode: appstore_pve::types::BackupMode,
) -> (i64, appstore_core::job::JobState) {
    let request = appstore_actors::engine::BackupRequest {
        install_id: install.id,
        storage: storage.into(),
        mode,
        keep_last,
    };
    let job = w.engine.create_backup_job(install, &request).await.unwrap();
    let end = w
        .engine
        .run_backup(
            job,
            install.clone(),
            request,
            appstore_actors::engine::CancelFlag::default(),
            None,
        )
        .await
        .unwrap();
    (job, end)
}

/// Runs a restore job of backup `volid`, into a new container or `over` an install: (job, end).
pub async fn run_restore(
    w: &World,
    snapshot: &Arc<CatalogSnapshot>,
    volid: &str,
    over: Option<&appstore_actors::store::InstallRecord>,
) -> (i64, appstore_core::job::JobState) {
    let request = appstore_actors::engine::RestoreRequest {
        volid: volid.into(),
        over_install: over.map(|i| i.id),
        storage: None,
    };
    let job = w
        .engine
        .create_restore_job(snapshot, &request, over)
        .await
        .unwrap();
    let end = w
        .engine
        .run_restore(
            job,
            Arc::clone(snapshot),
            request,
            over.cloned(),
            appstore_actors::engine::CancelFlag::default(),
        )
        .await
        .unwrap();
    (job, end)
}

/// Creates an install job for `request` on `snapshot` and runs it to its end: (job, final state).
pub async fn run_install(
    w: &World,
    snapshot: &Arc<CatalogSnapshot>,
    request: InstallRequest,
) -> (i64, appstore_core::job::JobState) {
    let job = w
        .engine
        .create_install_job(snapshot, &request)
        .await
        .unwrap();
    let end = w
        .engine
        .run_install(
            job,
            Arc::clone(snapshot),
            request,
            appstore_actors::engine::CancelFlag::default(),
        )
        .await
        .unwrap();
    (job, end)
}

pub const SECRET: &str = "Radicale-Secret-4711";

pub fn radicale() -> InstallRequest {
    let mut req = InstallRequest {
        app_id: "radicale".into(),
        ..Default::default()
    };
    req.inputs
        .insert("password".into(), serde_json::json!(SECRET));
    req
}

/// Writes `files` (path below the catalog, text) into the world's catalog repository, commits them
/// and loads the new commit.
pub fn commit_files(w: &World, files: &[(&str, String)]) -> Arc<CatalogSnapshot> {
    let dir = w.state.path().join("catalog-src");
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let repo = git2::Repository::open(&dir).unwrap();
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.org").unwrap();
    let parent = repo.head().unwrap().peel_to_commit().unwrap();
    repo.commit(
        Some("HEAD"),
        &sig,
        &sig,
        "catalog change",
        &tree,
        &[&parent],
    )
    .unwrap();
    let mut catalog = GitCatalog::new(
        GitCache::new(w.engine.config.catalog_cache.clone()),
        w.catalog.clone(),
    );
    catalog.refresh().unwrap().snapshot
}

/// Commits `app` at `version` (a catalog maintainer's release) and loads it.
pub fn set_version(w: &World, app: &str, version: &str) -> Arc<CatalogSnapshot> {
    let rel = format!("apps/{app}/app.yml");
    let text = std::fs::read_to_string(w.state.path().join("catalog-src").join(&rel)).unwrap();
    let old = text
        .lines()
        .find(|l| l.starts_with("version:"))
        .unwrap()
        .to_string();
    commit_files(
        w,
        &[(&rel, text.replace(&old, &format!("version: {version}")))],
    )
}

/// A container id of the tests.
#[allow(dead_code)] // not every test binary names an id
pub fn ct(id: u32) -> appstore_core::Ctid {
    appstore_core::Ctid::new(id).unwrap()
}
