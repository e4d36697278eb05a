//! The job engine: carries out a job's steps in the order the pure state machine
//! (`appstore_core::job`) decides, persisting every transition and every (redacted) log line, and
//! publishing them to subscribers. Plain async code over traits (`PveApi`, `HostHelper`), so the actor
//! layer only schedules it and tests drive it directly against the simulator.

mod backup;
mod boundary;
mod control;
pub mod gpu;
pub mod host;
mod install;
mod lifecycle;
mod log;
mod restore;
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

pub use backup::BackupRequest;
pub(crate) use boundary::{
    adopt_created_container, check_boundary, container_description, created_by_job,
};
pub use control::ControlRequest;
pub use host::{HostHelper, InProcessHelper, SocketHelper};
pub use install::{
    install_redactor, reconfigure_keys, InstallRequest, MaintainRequest, NetworkRequest,
    RestoreRequest, UninstallRequest,
};
pub use log::{JobLog, MAX_LOG_BYTES, MAX_LOG_LINE, MAX_LOG_LINES};

use crate::store::{InstallRecord, NewJob, Store, StoreError};
use appstore_catalog::{CatalogApp, CatalogSnapshot, GitCache};
use appstore_core::job::{next, JobKind, JobState, RetryPolicy, StepOutcome, Transition};
use appstore_core::policy::{
    app_tag, join_tags, parse_tags, ContainerFacts, Decision, InstallPolicy, PoolBoundary, PoolId,
    FAILED_TAG, MANAGED_TAG,
};
use appstore_core::redact::Redactor;
use appstore_core::Ctid;
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
    /// Storage holding container templates; `None`: found on the node ([`template_storage`]).
    pub template_storage: Option<String>,
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
        state: JobState,
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
pub struct CtidReservations(Arc<tokio::sync::Mutex<std::collections::BTreeSet<Ctid>>>);

impl CtidReservations {
    /// Allocates an id that PVE says is free and no other install holds.
    pub async fn allocate(&self, pve: &dyn PveApi) -> Result<Ctid, appstore_pve::PveError> {
        let mut held = self.0.lock().await;
        let mut id = pve.next_id().await?;
        loop {
            if !held.contains(&id) && pve.is_id_free(id).await? {
                held.insert(id);
                return Ok(id);
            }
            id = id.next().ok_or_else(|| appstore_pve::PveError::Server {
                status: 200,
                message: "no free container id is left".into(),
            })?;
        }
    }

    /// Holds an id allocated before a restart (its job resumes before the create).
    pub async fn hold(&self, id: Ctid) {
        self.0.lock().await.insert(id);
    }

    /// Lets go of an id (its container exists now, or the install failed).
    pub async fn release(&self, id: Ctid) {
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

/// The newest template of `family` (`debian-12`) on the template storage.
/// The storage that holds container templates: the configured one, else the first storage with
/// `vztmpl` content that the token sees (`local`, where a default node keeps them, first).
pub async fn template_storage(
    pve: &dyn PveApi,
    node: &str,
    configured: Option<&str>,
) -> Result<String, String> {
    if let Some(s) = configured {
        return Ok(s.to_string());
    }
    let list = pve
        .storages(node, Some("vztmpl"))
        .await
        .map_err(|e| format!("finding the template storage: {e}"))?;
    let names: Vec<&str> = list.iter().map(|s| s.storage.as_str()).collect();
    names
        .iter()
        .find(|n| **n == "local")
        .or(names.first())
        .map(|n| n.to_string())
        .ok_or_else(|| {
            "no storage for container templates (content `vztmpl`) is visible to the token; give it Datastore.Audit on one, or set defaults.template_storage".to_string()
        })
}

/// The newest standard template of `family` on `storage`.
async fn newest_template(
    engine: &Engine,
    storage: &str,
    family: &str,
) -> Result<Option<String>, String> {
    let vols = engine
        .pve
        .templates(&engine.config.node, storage)
        .await
        .map_err(|e| format!("listing templates: {e}"))?;
    Ok(
        appstore_core::ostemplate::newest(family, vols.iter().map(|v| v.volid.as_str()))
            .map(str::to_string),
    )
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
