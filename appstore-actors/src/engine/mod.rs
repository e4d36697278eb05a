//! The job engine: carries out a job's steps in the order the pure state machine
//! (`appstore_core::job`) decides, persisting every transition and every (redacted) log line, and
//! publishing them to subscribers. Plain async code over traits (`PveApi`, `HostHelper`), so the actor
//! layer only schedules it and tests drive it directly against the simulator.

pub mod gpu;
pub mod host;
mod install;
mod uninstall;
pub mod volumes;

/// The steps of one job kind.
pub(crate) trait Steps {
    /// Runs the step of `state`.
    async fn step(&mut self, state: JobState) -> StepOutcome;
    /// Cleans up after a failure or cancel.
    async fn after_failure(&mut self);
    /// What a resumed job needs to go on (the resolved inputs, the container id, ...); stored sealed
    /// after every step that changed it.
    fn context(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

pub use host::{HostHelper, InProcessHelper, SocketHelper};
pub use install::{reconfigure_keys, InstallRequest, MaintainRequest, NetworkRequest};

use crate::store::{InstallRecord, NewJob, Store, StoreError};
use appstore_catalog::{CatalogApp, CatalogSnapshot, GitCache};
use appstore_core::job::{next, JobKind, JobState, RetryPolicy, StepOutcome, Transition};
use appstore_core::policy::{
    app_tag, join_tags, parse_tags, ContainerFacts, Decision, InstallPolicy, PoolBoundary, PoolId,
    FAILED_TAG, MANAGED_TAG,
};
use appstore_core::redact::Redactor;
use appstore_pve::PveApi;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Settings of the engine (from the store's config).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// PVE node.
    pub node: String,
    /// The store's pool.
    pub pool: String,
    /// Default storage for root disks and volumes.
    pub storage: String,
    /// Default bridge.
    pub bridge: String,
    /// Storage holding container templates.
    pub template_storage: String,
    /// Download a missing template through `aplinfo`.
    pub download_templates: bool,
    /// Job directories (the helper's `job_root`).
    pub jobs_dir: PathBuf,
    /// The catalog's git cache (exports come from the pinned commit).
    pub catalog_cache: PathBuf,
    /// Caps, features, privilege.
    pub policy: InstallPolicy,
    /// Waiting for the container's address.
    pub network_wait: RetryPolicy,
    /// Longest wait for one PVE task.
    pub task_deadline: Duration,
    /// Which GPUs may be attached, and to what.
    pub gpu_policy: appstore_core::gpu::GpuPolicy,
    /// Fault injection for the restart tests: after the step of this state succeeded (before its
    /// context and the next transition are stored), the job stops making progress, so the test can kill the service at
    /// a known point. Set from `APPSTORE_FAULT_HOLD_AFTER` ([`fault_hold_from_env`]), and only
    /// acted on in builds with the `fault-injection` feature (test builds).
    pub fault_hold_after: Option<JobState>,
}

/// What subscribers (SSE streams, the UI) hear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    /// A job entered a state.
    State {
        /// Job.
        job_id: i64,
        /// New state.
        state: String,
        /// Why (failures).
        reason: Option<String>,
    },
    /// A (redacted) log line.
    Log {
        /// Job.
        job_id: i64,
        /// Cursor.
        seq: i64,
        /// When it was stored, ms since the epoch.
        at_ms: i64,
        /// `stdout`, `stderr` or `engine`.
        stream: String,
        /// Text.
        line: String,
    },
}

/// Failures of the engine itself (not of a job's steps, which end the job instead).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error("job store")]
    Store(#[from] StoreError),
    /// A request was rejected before a job was made.
    #[error("{0}")]
    Rejected(String),
    /// A request was rejected before a job was made, each problem on its field.
    #[error("{}", .fields.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// Request field -> what is wrong with it.
        fields: std::collections::BTreeMap<String, String>,
    },
    /// What the request names is not there.
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the state of what it names (a removed install, a job that is not
    /// a failed install).
    #[error("{0}")]
    Conflict(String),
}

/// Everything a job needs from the outside.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Settings.
    pub config: EngineConfig,
    /// PVE.
    pub pve: Arc<dyn PveApi>,
    /// The root helper.
    pub helper: Arc<dyn HostHelper>,
    /// The database.
    pub store: Store,
    /// Events.
    pub events: broadcast::Sender<JobEvent>,
    /// Seals the secret outputs that are kept.
    pub secrets: crate::secrets::SecretBox,
    /// Container ids handed out but not yet created (PVE's nextid does not know them).
    pub reserved_ctids: CtidReservations,
    /// The host's GPUs, as the GPU manager last found them.
    pub gpus: crate::GpuHandle,
    /// GPUs chosen by running installs and not attached yet.
    pub gpu_claims: gpu::GpuClaims,
}

/// Container ids between allocation and the end of their create task; allocation is serialized so
/// two installs never get the same id.
#[derive(Debug, Clone, Default)]
pub struct CtidReservations(Arc<tokio::sync::Mutex<std::collections::BTreeSet<u32>>>);

impl CtidReservations {
    /// Allocates an id that PVE says is free and no other install holds.
    pub async fn allocate(&self, pve: &dyn PveApi) -> Result<u32, appstore_pve::PveError> {
        let mut held = self.0.lock().await;
        let mut id = pve.next_id().await?;
        loop {
            if !held.contains(&id) && pve.is_id_free(id).await? {
                held.insert(id);
                return Ok(id);
            }
            id += 1;
        }
    }

    /// Holds an id allocated before a restart (its job resumes before the create).
    pub async fn hold(&self, id: u32) {
        self.0.lock().await.insert(id);
    }

    /// Lets go of an id (its container exists now, or the install failed).
    pub async fn release(&self, id: u32) {
        self.0.lock().await.remove(&id);
    }
}

/// A job's cancel switch.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// Asks the job to stop at the next step.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Was it asked?
    pub fn is_canceled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The pool boundary, checked against PVE's own view: the container is in the store's pool and
/// carries the managed tag; anything else is refused with the reason.
pub(crate) async fn check_boundary(engine: &Engine, ctid: u32) -> StepOutcome {
    let failed = |reason: String| StepOutcome::Failed { reason };
    let pve = &engine.pve;
    let node = &engine.config.node;
    let cfg = match pve.lxc_config(node, ctid).await {
            Ok(c) => c,
            // The pool-scoped token cannot even read a container outside its pool.
            Err(appstore_pve::PveError::Forbidden { .. }) => {
                return failed(format!(
                    "[pool-boundary] container {ctid} is outside the store's pool `{}` (its API token cannot read it) (fix: the store only manages containers it created; manage this one in the PVE UI)",
                    engine.config.pool
                ))
            }
            Err(e) => return failed(format!("reading container {ctid}: {e}")),
        };
    let pool_id = &engine.config.pool;
    let in_pool = match pve.pool(pool_id).await {
        Ok(p) => p.members.iter().any(|m| m.vmid == Some(u64::from(ctid))),
        Err(e) => return failed(format!("reading pool `{pool_id}`: {e}")),
    };
    let facts = ContainerFacts {
        ctid,
        pool: in_pool.then(|| pool_id.clone()),
        tags: cfg
            .options
            .get("tags")
            .map(|t| parse_tags(t))
            .unwrap_or_default(),
    };
    let pool = match PoolId::parse(pool_id) {
        Ok(p) => p,
        Err(e) => return failed(e.to_string()),
    };
    match PoolBoundary::new(pool).decide(&facts) {
        Decision::Allow => StepOutcome::Done,
        Decision::Deny(reasons) => failed(
            reasons
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}

/// The marker every container the store creates carries in its description: `(job N)`.
pub(crate) fn job_marker(job_id: i64) -> String {
    format!("(job {job_id})")
}

/// Tags container `ctid` as the store's own (managed, failed, its app) when it lacks the managed
/// tag but is recognisably the container install job `job_id` created: in the store's pool, its
/// description carrying the job's marker, and no task holding it. This is what a job that failed
/// between the create and the tagging leaves behind. True when it tagged the container.
pub(crate) async fn adopt_created_container(
    engine: &Engine,
    ctid: u32,
    job_id: i64,
    app_id: &str,
) -> Result<bool, String> {
    let pve = &engine.pve;
    let node = &engine.config.node;
    let cfg = pve
        .lxc_config(node, ctid)
        .await
        .map_err(|e| format!("reading container {ctid}: {e}"))?;
    let tags: Vec<String> = cfg
        .options
        .get("tags")
        .map(|t| parse_tags(t))
        .unwrap_or_default();
    let ours = cfg.options.get("description").is_some_and(|d| {
        d.starts_with("Installed by PVE App Store:") && d.contains(&job_marker(job_id))
    });
    if tags.iter().any(|t| t == MANAGED_TAG) || !ours || cfg.options.contains_key("lock") {
        return Ok(false);
    }
    let pool_id = &engine.config.pool;
    let in_pool = pve
        .pool(pool_id)
        .await
        .map_err(|e| format!("reading pool `{pool_id}`: {e}"))?
        .members
        .iter()
        .any(|m| m.vmid == Some(u64::from(ctid)));
    if !in_pool {
        return Ok(false);
    }
    let app_tag = appstore_core::AppId::parse(app_id)
        .map(|id| app_tag(&id))
        .map_err(|e| format!("the failed job's app: {e}"))?;
    let mut all = tags.clone();
    for t in [MANAGED_TAG, FAILED_TAG, app_tag.as_str()] {
        if !all.iter().any(|x| x == t) {
            all.push(t.to_string());
        }
    }
    pve.lxc_update_config(
        node,
        ctid,
        &[("tags".into(), join_tags(all.iter().map(String::as_str)))],
        &[],
        Some(&cfg.digest),
    )
    .await
    .map_err(|e| format!("tagging container {ctid}: {e}"))?;
    Ok(true)
}

/// The newest template of `family` (`debian-12`) on the template storage.
async fn newest_template(engine: &Engine, family: &str) -> Result<Option<String>, String> {
    let storage = &engine.config.template_storage;
    let prefix = format!("{storage}:vztmpl/{family}-");
    let vols = engine
        .pve
        .templates(&engine.config.node, storage)
        .await
        .map_err(|e| format!("listing templates: {e}"))?;
    Ok(vols
        .into_iter()
        .map(|v| v.volid)
        .filter(|v| v.starts_with(&prefix))
        .max())
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(StoreError::Query(
            r2d2_sqlite::rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        )),
    }
}

/// Writes log lines of one job: redacted first, then stored, then published.
#[derive(Debug, Clone)]
pub struct JobLog {
    job_id: i64,
    store: Store,
    events: broadcast::Sender<JobEvent>,
    redactor: Arc<std::sync::RwLock<Redactor>>,
    /// What the job's log holds so far (read from the store on the first line, so a resumed job
    /// goes on counting); `None` until then.
    kept: Arc<std::sync::Mutex<Option<LogBudget>>>,
    /// (lines, bytes) a job keeps: [`MAX_LOG_LINES`], [`MAX_LOG_BYTES`].
    caps: (u64, u64),
}

/// Fault injection for the restart tests (`APPSTORE_FAULT_HOLD_AFTER=<state>`): jobs stop after that
/// state's step, so a test can kill the service at a known point. Without the `fault-injection`
/// feature (every release build) the variable is not even read.
pub fn fault_hold_from_env() -> Option<JobState> {
    #[cfg(feature = "fault-injection")]
    {
        let name = std::env::var("APPSTORE_FAULT_HOLD_AFTER").ok()?;
        let state = JobState::parse(&name);
        match state {
            Some(s) => tracing::warn!(state = %s, "fault injection: jobs hold after this state"),
            None => tracing::warn!(
                value = %name,
                "APPSTORE_FAULT_HOLD_AFTER names no job state; ignored"
            ),
        }
        state
    }
    #[cfg(not(feature = "fault-injection"))]
    None
}

/// Caps of one job's log: script output past them is dropped after one visible marker line (the
/// engine's own lines are always kept), and each line is cut at [`MAX_LOG_LINE`] bytes.
pub const MAX_LOG_LINES: u64 = 100_000;
/// Bytes of log text a job keeps.
pub const MAX_LOG_BYTES: u64 = 64 << 20;
/// The longest stored line.
pub const MAX_LOG_LINE: usize = 8 << 10;

#[derive(Debug, Clone, Copy)]
struct LogBudget {
    lines: u64,
    bytes: u64,
    truncated: bool,
}

impl JobLog {
    fn new(engine: &Engine, job_id: i64) -> Self {
        JobLog {
            job_id,
            store: engine.store.clone(),
            events: engine.events.clone(),
            redactor: Arc::new(std::sync::RwLock::new(Redactor::default())),
            kept: Arc::new(std::sync::Mutex::new(None)),
            caps: (MAX_LOG_LINES, MAX_LOG_BYTES),
        }
    }

    /// Whether `text` on `stream` may be stored; the marker line to store first, if the caps were
    /// just reached.
    fn admit(&self, stream: &str, text: &str) -> (bool, Option<String>) {
        let Ok(mut kept) = self.kept.lock() else {
            return (true, None);
        };
        let budget = kept.get_or_insert_with(|| {
            let (lines, bytes) = self.store.log_size(self.job_id).unwrap_or((0, 0));
            LogBudget {
                lines,
                bytes,
                truncated: false,
            }
        });
        if stream == "engine" {
            budget.lines += 1;
            budget.bytes += text.len() as u64;
            return (true, None);
        }
        if budget.truncated {
            return (false, None);
        }
        let (max_lines, max_bytes) = self.caps;
        if budget.lines + 1 > max_lines || budget.bytes + text.len() as u64 > max_bytes {
            budget.truncated = true;
            return (
                false,
                Some(format!(
                    "[log truncated: this job's log reached its cap ({max_lines} lines or {} KiB); later output of the scripts is not kept]",
                    max_bytes >> 10
                )),
            );
        }
        budget.lines += 1;
        budget.bytes += text.len() as u64;
        (true, None)
    }

    /// From now on, these secrets and keys are masked.
    pub fn set_redactor(&self, r: Redactor) {
        if let Ok(mut g) = self.redactor.write() {
            *g = r;
        }
    }

    fn redact(&self, line: &str) -> String {
        match self.redactor.read() {
            Ok(r) => r.redact(line),
            Err(_) => "*** (redaction unavailable)".into(),
        }
    }

    /// Stores and publishes one line (blocking; used from output callbacks on helper threads).
    pub fn line_blocking(&self, stream: &str, line: &str) {
        let mut text = self.redact(line);
        if text.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str(" … [line cut at 8 KiB]");
        }
        let (keep, marker) = self.admit(stream, &text);
        if let Some(m) = marker {
            self.store_line("engine", &m);
        }
        if keep {
            self.store_line(stream, &text);
        }
    }

    fn store_line(&self, stream: &str, text: &str) {
        match self.store.append_log(self.job_id, stream, text) {
            Ok(record) => {
                let _ = self.events.send(JobEvent::Log {
                    job_id: self.job_id,
                    seq: record.seq,
                    at_ms: record.at_ms,
                    stream: record.stream,
                    line: record.line,
                });
            }
            Err(e) => tracing::error!(job = self.job_id, error = %e, "cannot store a log line"),
        }
    }

    /// Stores and publishes one line.
    pub async fn line(&self, stream: &str, line: &str) {
        let me = self.clone();
        let stream = stream.to_string();
        let line = line.to_string();
        let _ = tokio::task::spawn_blocking(move || me.line_blocking(&stream, &line)).await;
    }

    /// An engine message.
    pub async fn info(&self, line: &str) {
        self.line("engine", line).await;
    }
}

impl Engine {
    /// Creates the job record of an install (answering at once: the work runs later).
    pub async fn create_install_job(
        &self,
        snapshot: &CatalogSnapshot,
        request: &InstallRequest,
    ) -> Result<i64, EngineError> {
        let app = snapshot
            .app(&request.app_id)
            .ok_or_else(|| EngineError::Invalid {
                fields: [(
                    "app_id".to_string(),
                    format!("no app `{}` in the catalog", request.app_id),
                )]
                .into(),
            })?;
        let new = NewJob {
            kind: "install".into(),
            app_id: request.app_id.clone(),
            install_id: None,
            ctid: None,
            node: self.config.node.clone(),
            pool: self.config.pool.clone(),
            user_action: format!("install {} {}", app.manifest.id(), app.manifest.version()),
            manifest_version: app.manifest.version().to_string(),
            manifest_sha256: app.manifest_sha256.clone(),
            commit_id: snapshot.source().commit.clone(),
            request: request.redacted_json(&app.manifest).to_string(),
        };
        self.record_app(app, snapshot.source().commit.clone())
            .await?;
        // The whole request (secrets too) is kept sealed, so the job can resume after a restart.
        let ctx =
            serde_json::to_value(install::InstallContext::new(request.clone())).unwrap_or_default();
        Ok(self.queue_job(new, ctx).await?.id)
    }

    /// Creates job `new` with its sealed `context` (`Null`: none) and announces it as queued.
    async fn queue_job(
        &self,
        new: NewJob,
        context: serde_json::Value,
    ) -> Result<crate::store::JobRecord, EngineError> {
        let store = self.store.clone();
        let job = blocking(move || store.create_job(&new)).await?;
        self.save_context(job.id, context, &mut String::new())
            .await?;
        let _ = self.events.send(JobEvent::State {
            job_id: job.id,
            state: "queued".into(),
            reason: None,
        });
        Ok(job)
    }

    /// Keeps the `apps` table up to date with the app a job is made for.
    async fn record_app(
        &self,
        app: &CatalogApp,
        commit: Option<String>,
    ) -> Result<(), EngineError> {
        let store = self.store.clone();
        let (id, name, version, sha) = (
            app.manifest.id().to_string(),
            app.manifest.name().to_string(),
            app.manifest.version().to_string(),
            app.manifest_sha256.clone(),
        );
        blocking(move || store.record_app(&id, &name, &version, &sha, commit.as_deref())).await?;
        Ok(())
    }

    async fn enter(
        &self,
        job: i64,
        from: JobState,
        to: JobState,
        reason: Option<String>,
    ) -> Result<(), EngineError> {
        let store = self.store.clone();
        let r = reason.clone();
        blocking(move || store.transition(job, from.as_str(), to.as_str(), r.as_deref())).await?;
        let _ = self.events.send(JobEvent::State {
            job_id: job,
            state: to.as_str().into(),
            reason,
        });
        Ok(())
    }

    /// Runs an install job to its end; returns the final state.
    pub async fn run_install(
        &self,
        job_id: i64,
        snapshot: Arc<CatalogSnapshot>,
        request: InstallRequest,
        cancel: CancelFlag,
    ) -> Result<JobState, EngineError> {
        let log = JobLog::new(self, job_id);
        let app: Arc<CatalogApp> = match snapshot.app(&request.app_id) {
            Some(a) => Arc::clone(a),
            None => {
                self.enter(
                    job_id,
                    JobState::Queued,
                    JobState::Failed,
                    Some(format!("no app `{}` in the catalog", request.app_id)),
                )
                .await?;
                return Ok(JobState::Failed);
            }
        };
        let mut work = install::InstallWork::new(
            self.clone(),
            job_id,
            snapshot,
            app,
            request,
            log.clone(),
            GitCache::new(&self.config.catalog_cache),
        );
        let end = self
            .drive(JobKind::Install, job_id, &mut work, &log, &cancel, None)
            .await;
        self.gpu_claims.release(job_id);
        end
    }

    /// The app as an install has it: from `snapshot` when the catalog still has that manifest,
    /// otherwise from the install's own commit of the catalog repository.
    pub async fn installed_app(
        &self,
        snapshot: &Arc<CatalogSnapshot>,
        install: &InstallRecord,
    ) -> Result<(Arc<CatalogSnapshot>, Arc<CatalogApp>), String> {
        if let Some(app) = snapshot.app(&install.app_id) {
            if app.manifest_sha256 == install.manifest_sha256 {
                return Ok((Arc::clone(snapshot), Arc::clone(app)));
            }
        }
        let Some(commit) = install.commit_id.clone() else {
            return Err(format!(
                "{} {} is no longer in the catalog",
                install.app_id, install.version
            ));
        };
        let source = appstore_catalog::GitSource {
            url: snapshot.source().url.clone(),
            branch: snapshot.source().branch.clone(),
        };
        let cache = GitCache::new(&self.config.catalog_cache);
        let pinned = tokio::task::spawn_blocking(move || {
            appstore_catalog::GitCatalog::new(cache, source)
                .pin(&commit)
                .map(|r| r.snapshot)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| {
            format!(
                "loading the catalog as {} was installed: {e}",
                install.app_id
            )
        })?;
        let app = pinned
            .app(&install.app_id)
            .filter(|a| a.manifest_sha256 == install.manifest_sha256)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "{} {} cannot be found at its catalog commit",
                    install.app_id, install.version
                )
            })?;
        Ok((pinned, app))
    }

    /// Creates the job record of an upgrade or reconfigure of `install` (the request's keys are
    /// checked here, so a bad one is refused before a job exists).
    pub async fn create_maintain_job(
        &self,
        kind: JobKind,
        snapshot: &Arc<CatalogSnapshot>,
        install: &InstallRecord,
        request: &MaintainRequest,
    ) -> Result<i64, EngineError> {
        let (app, action) = match kind {
            JobKind::Upgrade => {
                let app = snapshot.app(&install.app_id).cloned().ok_or_else(|| {
                    EngineError::Rejected(format!("{} is no longer in the catalog", install.app_id))
                })?;
                match appstore_core::upgrade::check(&install.version, &app.manifest) {
                    appstore_core::upgrade::UpgradeCheck::Available { from, to } => {
                        let action = format!("upgrade {} from {from} to {to}", install.app_id);
                        (app, action)
                    }
                    appstore_core::upgrade::UpgradeCheck::UpToDate { version } => {
                        return Err(EngineError::Rejected(format!(
                            "{} {version} is already the newest version in the catalog",
                            install.app_id
                        )))
                    }
                    appstore_core::upgrade::UpgradeCheck::Blocked { reason, .. } => {
                        return Err(EngineError::Rejected(reason))
                    }
                }
            }
            _ => {
                let (_, app) = self
                    .installed_app(snapshot, install)
                    .await
                    .map_err(EngineError::Rejected)?;
                reconfigure_keys(&app.manifest, &request.inputs)?;
                let keys: Vec<&str> = request.inputs.keys().map(String::as_str).collect();
                let action = format!(
                    "reconfigure {} ({})",
                    install.app_id,
                    if keys.is_empty() {
                        "no changes".to_string()
                    } else {
                        keys.join(", ")
                    }
                );
                (app, action)
            }
        };
        let new = NewJob {
            kind: if kind == JobKind::Upgrade {
                "upgrade".into()
            } else {
                "reconfigure".into()
            },
            app_id: install.app_id.clone(),
            install_id: Some(install.id),
            ctid: install.ctid,
            node: install.node.clone(),
            pool: install.pool.clone(),
            user_action: action,
            manifest_version: app.manifest.version().to_string(),
            manifest_sha256: app.manifest_sha256.clone(),
            commit_id: if kind == JobKind::Upgrade {
                snapshot.source().commit.clone()
            } else {
                install.commit_id.clone()
            },
            request: request.redacted_json(&app.manifest).to_string(),
        };
        self.record_app(&app, new.commit_id.clone()).await?;
        let mut ctx = install::InstallContext::new(InstallRequest {
            app_id: install.app_id.clone(),
            ..Default::default()
        });
        ctx.maintain = Some(request.clone());
        ctx.ctid = install.ctid.and_then(|c| u32::try_from(c).ok());
        ctx.created = true;
        let ctx = serde_json::to_value(ctx).unwrap_or_default();
        Ok(self.queue_job(new, ctx).await?.id)
    }

    /// Runs an upgrade or reconfigure job to its end.
    pub async fn run_maintain(
        &self,
        kind: JobKind,
        job_id: i64,
        snapshot: Arc<CatalogSnapshot>,
        install: InstallRecord,
        request: MaintainRequest,
        cancel: CancelFlag,
    ) -> Result<JobState, EngineError> {
        let log = JobLog::new(self, job_id);
        let found = match kind {
            JobKind::Upgrade => snapshot
                .app(&install.app_id)
                .cloned()
                .map(|a| (Arc::clone(&snapshot), a))
                .ok_or_else(|| format!("{} is no longer in the catalog", install.app_id)),
            _ => self.installed_app(&snapshot, &install).await,
        };
        let (snapshot, app) = match found {
            Ok(f) => f,
            Err(e) => {
                self.enter(job_id, JobState::Queued, JobState::Failed, Some(e))
                    .await?;
                return Ok(JobState::Failed);
            }
        };
        let mut work = install::InstallWork::new(
            self.clone(),
            job_id,
            snapshot,
            app,
            InstallRequest {
                app_id: install.app_id.clone(),
                ..Default::default()
            },
            log.clone(),
            GitCache::new(&self.config.catalog_cache),
        );
        work.maintain(kind, install, request);
        self.drive(kind, job_id, &mut work, &log, &cancel, None)
            .await
    }

    /// Resumes a job that a restart interrupted, from the state it was in; the steps check what was
    /// already done. A job that cannot resume ends `failed` with the reason.
    pub async fn resume(
        &self,
        job: crate::store::JobRecord,
        snapshot: Option<Arc<CatalogSnapshot>>,
        cancel: CancelFlag,
    ) -> Result<JobState, EngineError> {
        let log = JobLog::new(self, job.id);
        let Some(state) = JobState::parse(&job.state) else {
            return self
                .give_up(&job, &format!("unknown state `{}`", job.state))
                .await;
        };
        match job.kind.as_str() {
            "upgrade" | "reconfigure" => {
                let kind = if job.kind == "upgrade" {
                    JobKind::Upgrade
                } else {
                    JobKind::Reconfigure
                };
                let ctx = match self.load_context(job.id).await {
                    Ok(c) => c,
                    Err(e) => return self.give_up(&job, &e).await,
                };
                let Some(request) = ctx.maintain.clone() else {
                    return self.give_up(&job, "the job saved no request").await;
                };
                let Some(snapshot) = snapshot else {
                    return self.give_up(&job, "the catalog is not loaded").await;
                };
                let store = self.store.clone();
                let install_id = request.install_id;
                let install = blocking(move || store.install(install_id)).await?;
                let Some(install) = install else {
                    return self.give_up(&job, "its install record is gone").await;
                };
                // The job's own manifest: the upgrade's target or the installed one.
                let pinned = InstallRecord {
                    manifest_sha256: job.manifest_sha256.clone(),
                    commit_id: job.commit_id.clone(),
                    ..install.clone()
                };
                let (snapshot, app) = match self.installed_app(&snapshot, &pinned).await {
                    Ok(f) => f,
                    Err(e) => return self.give_up(&job, &e).await,
                };
                let mut work = install::InstallWork::new(
                    self.clone(),
                    job.id,
                    snapshot,
                    app,
                    ctx.request.clone(),
                    log.clone(),
                    GitCache::new(&self.config.catalog_cache),
                );
                work.maintain(kind, install, request);
                if let Err(e) = work.restore(ctx, state) {
                    return self.give_up(&job, &e).await;
                }
                self.drive(kind, job.id, &mut work, &log, &cancel, Some(state))
                    .await
            }
            "install" => {
                let ctx = match self.load_context(job.id).await {
                    Ok(c) => c,
                    Err(e) => return self.give_up(&job, &e).await,
                };
                let snapshot = match snapshot {
                    Some(s) => s,
                    None => return self.give_up(&job, "the catalog is not loaded").await,
                };
                let app = match snapshot.app(&job.app_id) {
                    Some(a) if a.manifest_sha256 == job.manifest_sha256 => Arc::clone(a),
                    _ => {
                        return self
                            .give_up(&job, "the app changed in the catalog while the service was down; install it again")
                            .await
                    }
                };
                if let (Some(id), false) = (ctx.ctid, ctx.created) {
                    self.reserved_ctids.hold(id).await;
                }
                let request = ctx.request.clone();
                let mut work = install::InstallWork::new(
                    self.clone(),
                    job.id,
                    snapshot,
                    app,
                    request,
                    log.clone(),
                    GitCache::new(&self.config.catalog_cache),
                );
                if let Err(e) = work.restore(ctx, state) {
                    return self.give_up(&job, &e).await;
                }
                self.drive(
                    JobKind::Install,
                    job.id,
                    &mut work,
                    &log,
                    &cancel,
                    Some(state),
                )
                .await
            }
            "uninstall" => {
                let store = self.store.clone();
                let install_id = job.install_id.unwrap_or_default();
                let mut install = blocking(move || store.install(install_id)).await?;
                if job.install_id.is_none() {
                    // Destroying a failed install's container: its job says which.
                    let failed = serde_json::from_str::<serde_json::Value>(&job.request)
                        .ok()
                        .and_then(|r| r["failed_job"].as_i64());
                    if let Some(failed) = failed {
                        let store = self.store.clone();
                        if let Some(fj) = blocking(move || store.job(failed)).await? {
                            install = Self::failed_install_of(&fj).ok();
                        }
                    }
                }
                let Some(install) = install else {
                    return self.give_up(&job, "its install record is gone").await;
                };
                let app = snapshot
                    .and_then(|s| s.app(&install.app_id).cloned())
                    .filter(|a| a.manifest.version().to_string() == install.version);
                let keep = self.keeps_volumes(job.id).await;
                let mut work =
                    uninstall::UninstallWork::new(self.clone(), job.id, install, app, log.clone())
                        .keeping_volumes(keep);
                self.drive(
                    JobKind::Uninstall,
                    job.id,
                    &mut work,
                    &log,
                    &cancel,
                    Some(state),
                )
                .await
            }
            other => {
                self.give_up(&job, &format!("`{other}` jobs cannot resume"))
                    .await
            }
        }
    }

    /// Ends an interrupted job that cannot resume.
    async fn give_up(
        &self,
        job: &crate::store::JobRecord,
        why: &str,
    ) -> Result<JobState, EngineError> {
        let reason = format!(
            "the service restarted while this job was in `{}` and it cannot resume: {why}",
            job.state
        );
        tracing::warn!(job_id = job.id, %reason, "interrupted job settled");
        JobLog::new(self, job.id).info(&reason).await;
        let store = self.store.clone();
        let (id, state, r) = (job.id, job.state.clone(), reason.clone());
        blocking(move || store.transition(id, &state, "failed", Some(&r))).await?;
        let _ = self.events.send(JobEvent::State {
            job_id: job.id,
            state: "failed".into(),
            reason: Some(reason),
        });
        Ok(JobState::Failed)
    }

    /// Creates the job record of an uninstall of `install`; `keep_volumes` keeps its data volumes
    /// for a later install of the same app.
    pub async fn create_uninstall_job(
        &self,
        install: &InstallRecord,
        keep_volumes: bool,
    ) -> Result<i64, EngineError> {
        let new = NewJob {
            kind: "uninstall".into(),
            app_id: install.app_id.clone(),
            install_id: Some(install.id),
            ctid: install.ctid,
            node: install.node.clone(),
            pool: install.pool.clone(),
            user_action: format!(
                "uninstall {} (container {})",
                install.app_id,
                install.ctid.unwrap_or_default()
            ),
            manifest_version: install.version.clone(),
            manifest_sha256: install.manifest_sha256.clone(),
            commit_id: install.commit_id.clone(),
            request: serde_json::json!({"install_id": install.id, "keep_volumes": keep_volumes})
                .to_string(),
        };
        let job = self.queue_job(new, serde_json::Value::Null).await?;
        Ok(job.id)
    }

    /// Runs an uninstall job to its end. `snapshot` supplies the app's uninstall script, when the
    /// catalog still has the app.
    pub async fn run_uninstall(
        &self,
        job_id: i64,
        install: InstallRecord,
        snapshot: Option<Arc<CatalogSnapshot>>,
        cancel: CancelFlag,
    ) -> Result<JobState, EngineError> {
        let log = JobLog::new(self, job_id);
        let app = snapshot
            .and_then(|s| s.app(&install.app_id).cloned())
            .filter(|a| a.manifest.version().to_string() == install.version);
        let keep = self.keeps_volumes(job_id).await;
        let failed_job = self.destroys_failed_job(job_id).await;
        let mut work =
            uninstall::UninstallWork::new(self.clone(), job_id, install, app, log.clone())
                .keeping_volumes(keep)
                .for_failed_job(failed_job);
        self.drive(JobKind::Uninstall, job_id, &mut work, &log, &cancel, None)
            .await
    }

    /// Stores the job's resume context, sealed, when it changed since `last`.
    async fn save_context(
        &self,
        job_id: i64,
        context: serde_json::Value,
        last: &mut String,
    ) -> Result<(), EngineError> {
        if context.is_null() {
            return Ok(());
        }
        let text = context.to_string();
        if text == *last {
            return Ok(());
        }
        let sealed = self.secrets.seal(&text);
        let store = self.store.clone();
        blocking(move || store.set_job_context(job_id, &sealed)).await?;
        *last = text;
        Ok(())
    }

    /// The job's stored resume context, opened.
    async fn load_context(&self, job_id: i64) -> Result<install::InstallContext, String> {
        let store = self.store.clone();
        let sealed = blocking(move || store.job_context(job_id))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the job saved no context")?;
        let text = self
            .secrets
            .open_value(&sealed)
            .map_err(|e| format!("the job's saved context cannot be opened: {e}"))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("the job's saved context is not valid: {e}"))
    }

    /// The container a failed or canceled install left behind, as an install record an uninstall
    /// can remove (it was never recorded as installed).
    pub fn failed_install_of(job: &crate::store::JobRecord) -> Result<InstallRecord, String> {
        if job.kind != "install" || !["failed", "canceled"].contains(&job.state.as_str()) {
            return Err(format!(
                "job {} is a {} job in `{}`; only a failed or canceled install leaves a container to destroy",
                job.id, job.kind, job.state
            ));
        }
        let Some(ctid) = job.ctid else {
            return Err(format!("job {} made no container", job.id));
        };
        Ok(InstallRecord {
            id: 0,
            app_id: job.app_id.clone(),
            ctid: Some(ctid),
            node: job.node.clone(),
            pool: job.pool.clone(),
            version: job.manifest_version.clone(),
            manifest_sha256: job.manifest_sha256.clone(),
            commit_id: job.commit_id.clone(),
            inputs: "{}".into(),
            outputs: "[]".into(),
            status: "failed".into(),
            created_at: job.created_at,
        })
    }

    /// Creates the job that destroys the container of the failed install `failed_job` (the same
    /// steps as an uninstall: boundary check, stop, destroy with purge).
    pub async fn create_destroy_failed_job(
        &self,
        failed_job: &crate::store::JobRecord,
    ) -> Result<(i64, InstallRecord), EngineError> {
        let install = Self::failed_install_of(failed_job).map_err(EngineError::Conflict)?;
        let new = NewJob {
            kind: "uninstall".into(),
            app_id: install.app_id.clone(),
            install_id: None,
            ctid: install.ctid,
            node: install.node.clone(),
            pool: install.pool.clone(),
            user_action: format!(
                "destroy the container {} of failed job {}",
                install.ctid.unwrap_or_default(),
                failed_job.id
            ),
            manifest_version: install.version.clone(),
            manifest_sha256: install.manifest_sha256.clone(),
            commit_id: install.commit_id.clone(),
            request: serde_json::json!({"failed_job": failed_job.id, "keep_volumes": false})
                .to_string(),
        };
        let job = self.queue_job(new, serde_json::Value::Null).await?;
        Ok((job.id, install))
    }

    /// The failed install whose container this uninstall destroys, if it is such a job.
    async fn destroys_failed_job(&self, job_id: i64) -> Option<i64> {
        let store = self.store.clone();
        blocking(move || store.job(job_id))
            .await
            .ok()
            .flatten()
            .and_then(|j| serde_json::from_str::<serde_json::Value>(&j.request).ok())
            .and_then(|r| r["failed_job"].as_i64())
    }

    /// Did the user ask this uninstall to keep the data volumes? (From the stored request.)
    async fn keeps_volumes(&self, job_id: i64) -> bool {
        let store = self.store.clone();
        blocking(move || store.job(job_id))
            .await
            .ok()
            .flatten()
            .and_then(|j| serde_json::from_str::<serde_json::Value>(&j.request).ok())
            .is_some_and(|r| r["keep_volumes"] == true)
    }

    /// Follows the state machine's decisions for one job until it ends, from `Queued` or, for a
    /// resumed job, from the state it was in.
    async fn drive<W: Steps>(
        &self,
        kind: JobKind,
        job_id: i64,
        work: &mut W,
        log: &JobLog,
        cancel: &CancelFlag,
        resume_from: Option<JobState>,
    ) -> Result<JobState, EngineError> {
        let mut state = resume_from.unwrap_or(JobState::Queued);
        let mut attempts = 0;
        let mut saved = String::new();
        // An upgrade that failed after its snapshot: why, while the rollback runs.
        let mut rolling_back: Option<String> = None;
        if let Some(from) = resume_from {
            saved = work.context().to_string();
            tracing::info!(job_id, state = %from, "job resumed");
            log.info(&format!(
                "the service restarted; resuming at `{from}` (steps already done are checked, not repeated)"
            ))
            .await;
        }
        loop {
            let outcome = if cancel.is_canceled() {
                StepOutcome::Canceled
            } else {
                work.step(state).await
            };
            if outcome == StepOutcome::Done {
                // The hardest point to resume from: the step's work is done, none of it recorded.
                #[cfg(feature = "fault-injection")]
                if self.config.fault_hold_after == Some(state) {
                    log.info(&format!("fault injection: holding after `{state}`"))
                        .await;
                    std::future::pending::<()>().await;
                }
                self.save_context(job_id, work.context(), &mut saved)
                    .await?;
            }
            match next(kind, state, &outcome, attempts, &self.config.network_wait) {
                Transition::Advance { to } => {
                    tracing::info!(job_id, from = %state, to = %to, "job state");
                    self.enter(job_id, state, to, None).await?;
                    state = to;
                    attempts = 0;
                }
                Transition::Retry { after, attempt } => {
                    attempts = attempt;
                    tokio::time::sleep(after).await;
                }
                Transition::End {
                    to: JobState::Rollback,
                    reason,
                } => {
                    let why = reason.unwrap_or_default();
                    log.info(&format!("failed at {state}: {why}")).await;
                    tracing::info!(job_id, from = %state, reason = %why, "rolling back");
                    self.enter(job_id, state, JobState::Rollback, Some(why.clone()))
                        .await?;
                    state = JobState::Rollback;
                    attempts = 0;
                    rolling_back = Some(why);
                }
                Transition::End { to, reason } => {
                    // After a rollback the job fails with the upgrade's own reason.
                    let reason = match (rolling_back.take(), &outcome) {
                        (Some(why), StepOutcome::Done) => Some(format!(
                            "{why}; rolled back to the snapshot taken before the upgrade"
                        )),
                        (Some(why), _) => Some(format!(
                            "{why}; the rollback failed too: {}",
                            reason.unwrap_or_default()
                        )),
                        (None, _) => reason,
                    };
                    if let Some(r) = &reason {
                        log.line(
                            "engine",
                            &format!(
                                "{} at {}: {r}",
                                if to == JobState::Canceled {
                                    "canceled"
                                } else {
                                    "failed"
                                },
                                state
                            ),
                        )
                        .await;
                    }
                    if to != JobState::Completed {
                        work.after_failure().await;
                    }
                    tracing::info!(job_id, from = %state, to = %to, reason = reason.as_deref().unwrap_or(""), "job ended");
                    self.enter(job_id, state, to, reason).await?;
                    return Ok(to);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_job_log_is_capped_with_a_visible_marker_and_cut_lines() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let job = store
            .create_job(&crate::store::NewJob {
                kind: "install".into(),
                app_id: "x".into(),
                install_id: None,
                ctid: None,
                node: "pve1".into(),
                pool: "appstore".into(),
                user_action: "{}".into(),
                manifest_version: "1.0.0".into(),
                manifest_sha256: String::new(),
                commit_id: None,
                request: "{}".into(),
            })
            .unwrap()
            .id;
        let log = JobLog {
            job_id: job,
            store: store.clone(),
            events: broadcast::channel(16).0,
            redactor: Default::default(),
            kept: Default::default(),
            caps: (10, 1 << 20),
        };
        log.line_blocking("stdout", &"x".repeat(MAX_LOG_LINE + 100));
        for i in 0..20 {
            log.line_blocking("stdout", &format!("line {i}"));
        }
        log.line_blocking("engine", "the engine's own line");
        let lines: Vec<String> = store
            .logs(job, 0, 100)
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect();
        assert!(lines[0].ends_with("… [line cut at 8 KiB]") && lines[0].len() < MAX_LOG_LINE + 40);
        assert_eq!(lines.len(), 12, "{lines:?}");
        assert!(lines[10].starts_with("[log truncated"), "{lines:?}");
        assert_eq!(lines[11], "the engine's own line");
        // A resumed job goes on counting from what is stored.
        let again = JobLog {
            kept: Default::default(),
            ..log.clone()
        };
        again.line_blocking("stdout", "after a restart");
        assert_eq!(
            store.logs(job, 0, 100).unwrap().len(),
            13,
            "one more marker, no line"
        );
    }
}
