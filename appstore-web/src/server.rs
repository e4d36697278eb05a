//! Starting the product: the actors, then the web server on its address, until a stop signal.

use crate::api::{self, ApiState};
use anyhow::Context as _;
use appstore_actors::engine::{EngineConfig, HostHelper, JobEvent};
use appstore_actors::gpu::EventSourceFactory;
use appstore_actors::secrets::SecretBox;
use appstore_actors::store::Store;
use appstore_actors::{EngineOptions, ServiceOptions};
use appstore_catalog::{GitCache, GitCatalog, GitSource};
use appstore_pve::PveApi;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use warp::Filter;

/// The job engine's parts, when this mode runs one.
#[derive(Debug, Clone)]
pub struct EngineSetup {
    /// Engine settings.
    pub config: EngineConfig,
    /// PVE client.
    pub pve: Arc<dyn PveApi>,
    /// The privileged helper.
    pub helper: Arc<dyn HostHelper>,
    /// The SQLite file.
    pub database: PathBuf,
    /// The key that seals kept secrets.
    pub secret_key: PathBuf,
    /// Installs at once.
    pub max_concurrent: usize,
}

/// What the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// The catalog to follow.
    pub catalog: GitSource,
    /// Where the catalog cache lives.
    pub cache_dir: PathBuf,
    /// How often to refresh the catalog.
    pub refresh_every: Option<Duration>,
    /// The job engine.
    pub engine: Option<EngineSetup>,
    /// Where the GPU inventory is read (`/` on a real host; a fixture tree in tests).
    pub gpu_root: appstore_gpu::HostRoot,
    /// Password login against this hash file (`web.auth.mode: password`); `None`: no login.
    pub password_file: Option<PathBuf>,
    /// HTTPS with this certificate and key (PEM files); `None`: plain HTTP.
    pub tls: Option<crate::tls::WebTls>,
    /// The configuration as the debug bundle shows it (credentials removed by the server).
    pub config_summary: serde_json::Value,
    /// Which GPUs may be attached.
    pub gpu_policy: appstore_core::gpu::GpuPolicy,
    /// The demo's simulated GPU host.
    pub demo_gpus: Option<Arc<crate::demo::DemoGpus>>,
    /// Host names the API answers to besides IP addresses, `localhost` and the node's own.
    pub allowed_hosts: Vec<String>,
    /// Notification targets from the config.
    pub notifications: Vec<appstore_core::notify::NotifyTarget>,
    /// The time zone backup schedules and update windows are read in.
    pub time_zone: jiff::tz::TimeZone,
}

/// Runs the product until SIGINT or SIGTERM. Must be called inside [`appstore_actors::block_on`].
pub async fn run(settings: ServerSettings) -> anyhow::Result<()> {
    // Certificate problems stop the start before anything else runs.
    let tls = match &settings.tls {
        Some(t) => Some(crate::tls::load(t)?),
        None => None,
    };
    // Device events: the demo's simulated ones, or udev's on the real host (none for a fixture tree).
    let demo_events = settings.demo_gpus.as_ref().and_then(|d| d.take_events());
    let real_host = settings.gpu_root == appstore_gpu::HostRoot::system();
    let gpu_events: Option<EventSourceFactory> = if let Some(source) = demo_events {
        Some(Box::new(move || {
            Ok(Box::new(source) as Box<dyn appstore_gpu::hotplug::UeventSource>)
        }))
    } else if real_host {
        Some(Box::new(|| {
            appstore_gpu::hotplug::UdevMonitor::open(&appstore_gpu::hotplug::GPU_SUBSYSTEMS)
                .map(|m| Box::new(m) as Box<dyn appstore_gpu::hotplug::UeventSource>)
        }))
    } else {
        None
    };
    let mut auth = None;
    let engine = match &settings.engine {
        None => None,
        Some(setup) => {
            let store = Store::open(&setup.database).context("opening the job database")?;
            if let Some(file) = &settings.password_file {
                auth = Some(Arc::new(crate::auth::Auth::new(
                    store.clone(),
                    file.clone(),
                    tls.is_some(),
                )));
            }
            let secrets = SecretBox::open(&setup.secret_key).context("opening the secret key")?;
            Some(EngineOptions {
                config: setup.config.clone(),
                pve: Arc::clone(&setup.pve),
                helper: Arc::clone(&setup.helper),
                store,
                secrets,
                max_concurrent: setup.max_concurrent,
                discovery_max_age: Duration::from_secs(30),
            })
        }
    };
    let services = appstore_actors::start(ServiceOptions {
        catalog: GitCatalog::new(GitCache::new(&settings.cache_dir), settings.catalog.clone()),
        refresh_every: settings.refresh_every,
        gpu_probe: Box::new(appstore_gpu::SysfsProbe::new(settings.gpu_root.clone())),
        gpu_events,
        gpu_rescan_every: Duration::from_secs(60),
        engine,
    });
    let notifier = services.jobs.as_ref().map(|j| {
        Arc::new(crate::notify::Notifier::new(
            settings.notifications.clone(),
            j.store.clone(),
            j.secrets.clone(),
        ))
    });
    let state = ApiState {
        catalog: services.catalog,
        jobs: services.jobs,
        gpus: services.gpus,
        gpu_changes: services.gpu_changes,
        updates: tokio::sync::broadcast::channel(64).0,
        auth,
        apps_cache: Default::default(),
        config_summary: Arc::new(crate::debug::redact_config(&settings.config_summary)),
        gpu_policy: settings.gpu_policy.clone(),
        demo_gpus: settings.demo_gpus.clone(),
        allowed_hosts: Arc::new(crate::origin::AllowedHosts::new(&settings.allowed_hosts)),
        notifier,
        drift: tokio::sync::broadcast::channel(64).0,
        time_zone: settings.time_zone.clone(),
    };
    if let Some(jobs) = &state.jobs {
        crate::updates::watch(
            state.catalog.clone(),
            jobs.store.clone(),
            state.updates.clone(),
            Duration::from_secs(5),
        );
        crate::schedules::watch(
            jobs.clone(),
            Duration::from_secs(15),
            state.time_zone.clone(),
        );
        crate::gpu_drift::watch(state.clone());
        if let Some(n) = &state.notifier {
            Arc::clone(n).run(
                jobs.events.subscribe(),
                state.updates.subscribe(),
                state.drift.subscribe(),
            );
        }
        crate::schedules::watch_updates(
            state.catalog.clone(),
            jobs.clone(),
            Duration::from_secs(15),
            state.time_zone.clone(),
        );
    }
    if let Some(jobs) = &state.jobs {
        // A completed job can change the "popular" order: the next apps request re-counts.
        let (mut rx, cache) = (jobs.events.subscribe(), Arc::clone(&state.apps_cache));
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(JobEvent::State {
                        state: appstore_core::job::JobState::Completed,
                        ..
                    }) => cache.forget_counts(),
                    Err(RecvError::Lagged(_)) => cache.forget_counts(),
                    Ok(_) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    let routes = filter(state);

    let listener = tokio::net::TcpListener::bind(settings.addr).await.with_context(|| {
        format!("cannot listen on {}; is another program using that port? (choose another with --port)", settings.addr)
    })?;
    let local = listener
        .local_addr()
        .context("listening socket has no address")?;
    // Tests and scripts read this line to learn the port when started with --port 0.
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("PVE App Store listening on {scheme}://{local}");
    tracing::info!(%local, scheme, catalog = %settings.catalog.url, branch = %settings.catalog.branch, "web server started");
    // HTTP and HTTPS alike: a connection cap, a header timeout, a graceful drain.
    crate::tls::serve(routes, listener, tls, shutdown_signal()).await;
    tracing::info!("web server stopped");
    Ok(())
}

/// The whole web app: the API, the embedded UI, errors in the API's shape, request logging.
pub fn filter(state: ApiState) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    api::routes(state)
        .or(crate::ui::routes().map(warp::Reply::into_response))
        .unify()
        .recover(api::recover)
        .unify()
        .with(warp::log::custom(log_request))
        .map(warp::Reply::into_response)
        .boxed()
}

/// One line per request: refusals at info and failures at warn, successes only at debug (the UI
/// polls, and journald should not fill with it; `RUST_LOG=pve_appstore::http=debug` shows them).
fn log_request(info: warp::log::Info<'_>) {
    let (status, method, path) = (info.status().as_u16(), info.method(), info.path());
    let ms = info.elapsed().as_secs_f64() * 1e3;
    match status {
        500.. => {
            tracing::warn!(target: "pve_appstore::http", status, %method, path, ms, "request failed")
        }
        400.. => {
            tracing::info!(target: "pve_appstore::http", status, %method, path, ms, "request refused")
        }
        _ => tracing::debug!(target: "pve_appstore::http", status, %method, path, ms, "request"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
