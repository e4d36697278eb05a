//! The plain face of the actors. A front end starts them with [`start`] inside [`block_on`] and then
//! holds a [`Services`]: the catalog to read and refresh, the GPU inventory and its changes, and the
//! job engine's [`JobsService`]. No actix type crosses this face; the actors behind it are
//! supervised, so one that stops starts again.

use crate::engine::{Engine, EngineConfig, HostHelper, InstallRequest, JobEvent, MaintainRequest};
use crate::gpu::EventSourceFactory;
use crate::jobs::{
    CancelJob, JobRegistry, SubmitDestroyFailed, SubmitError, SubmitInstall, SubmitMaintain,
    SubmitUninstall,
};
use crate::proxmox::{ContainerState, Discover, Discovery, ListContainers, ReadContainer};
use crate::secrets::SecretBox;
use crate::store::{InstallRecord, Store};
use crate::RefreshCatalog;
use crate::{CatalogActor, CatalogHandle, GpuChange, GpuHandle, GpuManagerActor, ProxmoxActor};
use actix::{Addr, Supervisor};
use appstore_catalog::GitCatalog;
use appstore_core::job::JobKind;
use appstore_core::Ctid;
use appstore_gpu::GpuProbe;
use appstore_pve::PveApi;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Runs `fut` to its end on a multi-threaded runtime that can host the actors (an actix system).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the async runtime: {e}"))
    });
    system.block_on(fut)
}

/// What to start.
pub struct ServiceOptions {
    /// The catalog to follow.
    pub catalog: GitCatalog,
    /// How often to refresh it (`None`: only on request).
    pub refresh_every: Option<Duration>,
    /// Where the GPU inventory comes from.
    pub gpu_probe: Box<dyn GpuProbe + Send + Sync>,
    /// Device events that trigger a rescan (udev on a real host, the demo's simulated ones).
    pub gpu_events: Option<EventSourceFactory>,
    /// How often to rescan the GPUs without an event.
    pub gpu_rescan_every: Duration,
    /// The job engine, when this mode runs one.
    pub engine: Option<EngineOptions>,
}

/// The job engine's parts.
#[derive(Debug)]
pub struct EngineOptions {
    /// Settings.
    pub config: EngineConfig,
    /// PVE.
    pub pve: Arc<dyn PveApi>,
    /// The root helper.
    pub helper: Arc<dyn HostHelper>,
    /// The database.
    pub store: Store,
    /// Seals the secret outputs that are kept.
    pub secrets: SecretBox,
    /// Jobs at once.
    pub max_concurrent: usize,
    /// How long the node's offer (pools, storages, bridges, templates) is cached.
    pub discovery_max_age: Duration,
}

impl std::fmt::Debug for ServiceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceOptions")
            .field("refresh_every", &self.refresh_every)
            .field("gpu_events", &self.gpu_events.is_some())
            .field("gpu_rescan_every", &self.gpu_rescan_every)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// The catalog as a front end sees it: the published snapshot and a way to ask for a refresh.
#[derive(Clone)]
pub struct CatalogService {
    /// The published snapshot and the refresh status.
    pub handle: CatalogHandle,
    refresh: Arc<dyn Fn() + Send + Sync>,
}

impl CatalogService {
    /// A catalog whose refresh requests go to `refresh` (tests; a fixed catalog).
    pub fn new(handle: CatalogHandle, refresh: impl Fn() + Send + Sync + 'static) -> Self {
        CatalogService {
            handle,
            refresh: Arc::new(refresh),
        }
    }

    /// Asks for a refresh now; the answer shows in [`CatalogService::status`].
    pub fn refresh(&self) {
        (self.refresh)()
    }

    /// The loaded catalog, once there is one.
    pub fn snapshot(&self) -> Option<Arc<appstore_catalog::CatalogSnapshot>> {
        self.handle.snapshot()
    }

    /// The snapshot with the last refresh's outcome.
    pub fn status(&self) -> crate::CatalogStatus {
        self.handle.status()
    }
}

impl std::fmt::Debug for CatalogService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogService")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

/// Everything started.
#[derive(Debug, Clone)]
pub struct Services {
    /// The catalog.
    pub catalog: CatalogService,
    /// The GPU inventory, as last found.
    pub gpus: GpuHandle,
    /// New GPU inventories as they are found.
    pub gpu_changes: broadcast::Sender<GpuChange>,
    /// The job engine, when this mode runs one.
    pub jobs: Option<JobsService>,
}

/// Starts the catalog, the GPU manager and, when asked, the job engine. Must run inside
/// [`block_on`].
pub fn start(options: ServiceOptions) -> Services {
    let handle = CatalogHandle::default();
    let (catalog, every, h) = (options.catalog, options.refresh_every, handle.clone());
    let catalog_actor = Supervisor::start(move |_| CatalogActor::new(catalog, h, every));
    let refresh = catalog_actor.recipient::<RefreshCatalog>();

    let gpus = GpuHandle::default();
    let (gpu_changes, _) = broadcast::channel(16);
    let (probe, g, changes) = (options.gpu_probe, gpus.clone(), gpu_changes.clone());
    let (events, rescan_every) = (options.gpu_events, options.gpu_rescan_every);
    let _gpu_manager: Addr<GpuManagerActor> = Supervisor::start(move |_| {
        let manager = GpuManagerActor::new(probe, g, rescan_every, changes);
        match events {
            // A supervised restart keeps the schedule; the event source was handed over once.
            Some(open) => manager.with_events(open),
            None => manager,
        }
    });

    let jobs = options.engine.map(|e| {
        let engine = Engine {
            config: e.config.clone(),
            pve: Arc::clone(&e.pve),
            helper: Arc::clone(&e.helper),
            store: e.store.clone(),
            events: broadcast::channel(4096).0,
            secrets: e.secrets.clone(),
            reserved_ctids: Default::default(),
            gpus: gpus.clone(),
            gpu_claims: Default::default(),
        };
        let events = engine.events.clone();
        let pve_for_reads = Arc::clone(&e.pve);
        let node_name = e.config.node.clone();
        let (pve, config, max_age) = (e.pve, e.config, e.discovery_max_age);
        let proxmox = Supervisor::start(move |_| ProxmoxActor::new(pve, &config, max_age));
        let (h, max) = (handle.clone(), e.max_concurrent);
        // Supervised: should the registry stop, it starts again and picks up the queue.
        let registry = Supervisor::start(move |_| JobRegistry::new(engine, h, max));
        JobsService {
            registry,
            proxmox,
            pve: Arc::clone(&pve_for_reads),
            node: node_name,
            helper: e.helper,
            store: e.store,
            events,
            secrets: e.secrets,
        }
    });
    Services {
        catalog: CatalogService::new(handle, move || refresh.do_send(RefreshCatalog)),
        gpus,
        gpu_changes,
        jobs,
    }
}

/// The job engine as a front end uses it: submit and cancel jobs, read what they wrote, ask PVE.
#[derive(Debug, Clone)]
pub struct JobsService {
    registry: Addr<JobRegistry>,
    proxmox: Addr<ProxmoxActor>,
    /// The root helper, for reads inside containers (an app's service log).
    helper: Arc<dyn crate::engine::HostHelper>,
    /// PVE, for reads that are not jobs (the backups on a storage).
    pve: Arc<dyn appstore_pve::PveApi>,
    /// The node.
    node: String,
    /// Reads jobs, logs and installs.
    pub store: Store,
    /// Job states and log lines as they happen.
    pub events: broadcast::Sender<JobEvent>,
    /// Opens sealed secret outputs for an authorised reveal.
    pub secrets: SecretBox,
}

/// The engine did not answer: its registry or PVE reader is restarting.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the job engine is unavailable: {0}")]
pub struct Unavailable(String);

fn unavailable(e: actix::MailboxError) -> Unavailable {
    Unavailable(e.to_string())
}

impl From<Unavailable> for SubmitError {
    fn from(e: Unavailable) -> SubmitError {
        SubmitError::Unavailable(e.0)
    }
}

impl JobsService {
    /// Queues an install; the job's id.
    pub async fn install(&self, request: InstallRequest) -> Result<i64, SubmitError> {
        self.registry
            .send(SubmitInstall(request))
            .await
            .map_err(unavailable)?
    }

    /// Queues the uninstall of install `install_id`.
    pub async fn uninstall(&self, install_id: i64, keep_volumes: bool) -> Result<i64, SubmitError> {
        self.registry
            .send(SubmitUninstall {
                install_id,
                keep_volumes,
            })
            .await
            .map_err(unavailable)?
    }

    /// Queues an upgrade or a reconfigure.
    pub async fn maintain(
        &self,
        kind: JobKind,
        request: MaintainRequest,
    ) -> Result<i64, SubmitError> {
        self.registry
            .send(SubmitMaintain { kind, request })
            .await
            .map_err(unavailable)?
    }

    /// Queues the removal of the container that failed job `job_id` left.
    pub async fn destroy_failed(&self, job_id: i64) -> Result<i64, SubmitError> {
        self.registry
            .send(SubmitDestroyFailed { job_id })
            .await
            .map_err(unavailable)?
    }

    /// Cancels job `job_id`; false when it is neither queued nor running.
    pub async fn cancel(&self, job_id: i64) -> Result<bool, Unavailable> {
        self.registry
            .send(CancelJob(job_id))
            .await
            .map_err(unavailable)
    }

    /// What the node offers (cached; `refresh` reads PVE again).
    pub async fn discovery(&self, refresh: bool) -> Result<Arc<Discovery>, Unavailable> {
        self.proxmox
            .send(Discover { refresh })
            .await
            .map_err(unavailable)
    }

    /// The run state of every container the token can see: `vmid -> running|stopped`.
    pub async fn container_states(&self) -> Result<BTreeMap<u64, String>, String> {
        match self.proxmox.send(ListContainers).await {
            Ok(r) => r,
            Err(e) => Err(unavailable(e).to_string()),
        }
    }

    /// One container's live state and config.
    pub async fn container(&self, ctid: Ctid) -> Result<ContainerState, String> {
        match self.proxmox.send(ReadContainer { ctid }).await {
            Ok(r) => r,
            Err(e) => Err(unavailable(e).to_string()),
        }
    }

    /// Container `ctid`'s usage history over `timeframe`, from PVE's RRD data.
    pub async fn history(
        &self,
        ctid: Ctid,
        timeframe: appstore_pve::types::Timeframe,
    ) -> Result<Vec<appstore_pve::types::RrdRow>, String> {
        match self
            .proxmox
            .send(crate::proxmox::ReadHistory { ctid, timeframe })
            .await
        {
            Ok(r) => r,
            Err(e) => Err(unavailable(e).to_string()),
        }
    }

    /// The service log of `unit` in container `ctid` through the helper (which checks the pool
    /// boundary again): the last `lines` entries, or those after `after`, with `redactor`'s
    /// secrets masked; with the cursor to go on from.
    pub async fn app_log(
        &self,
        ctid: Ctid,
        unit: &str,
        lines: u32,
        after: Option<String>,
        redactor: &appstore_core::redact::Redactor,
    ) -> Result<(Vec<String>, Option<String>), String> {
        crate::engine::host::read_journal(self.helper.as_ref(), ctid, unit, lines, after, redactor)
            .await
    }

    /// What an install's app log is redacted with: its secret inputs and outputs, and the keys
    /// its manifest names (see [`crate::engine::install_redactor`]).
    pub async fn app_redactor(
        &self,
        install: InstallRecord,
        manifest: appstore_core::manifest::Manifest,
    ) -> appstore_core::redact::Redactor {
        let (store, secrets) = (self.store.clone(), self.secrets.clone());
        tokio::task::spawn_blocking(move || {
            crate::engine::install_redactor(&store, &secrets, &install, &manifest)
        })
        .await
        .unwrap_or_default()
    }

    /// Queues a backup of an install's container.
    pub async fn backup(&self, request: crate::engine::BackupRequest) -> Result<i64, SubmitError> {
        self.registry
            .send(crate::jobs::SubmitBackup(request))
            .await
            .map_err(unavailable)?
    }

    /// Queues a restore of one of the store's backups.
    pub async fn restore(
        &self,
        request: crate::engine::RestoreRequest,
    ) -> Result<i64, SubmitError> {
        self.registry
            .send(crate::jobs::SubmitRestore(request))
            .await
            .map_err(unavailable)?
    }

    /// The backups of container `ctid` on `storage`, as PVE lists them.
    pub async fn list_backups(
        &self,
        storage: &str,
        ctid: Ctid,
    ) -> Result<Vec<appstore_pve::types::BackupVolume>, String> {
        self.pve
            .backups(&self.node, storage, ctid)
            .await
            .map_err(|e| format!("listing the backups on `{storage}`: {e}"))
    }

    /// Queues a power, resource or start-at-boot change of an install's container.
    pub async fn control(
        &self,
        install_id: i64,
        control: appstore_core::control::Control,
    ) -> Result<i64, SubmitError> {
        self.registry
            .send(crate::jobs::SubmitControl {
                install_id,
                control,
            })
            .await
            .map_err(unavailable)?
    }
}
