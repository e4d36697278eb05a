//! The REST API: routes, JSON shapes, and the mapping of every failure to
//! `{"error":{"code","message","fields"}}` with a 4xx status (never a 500 for bad input).

use actix::{Addr, Recipient};
use appstore_actors::engine::{InstallRequest, JobEvent, MaintainRequest};
use appstore_actors::store::Store;
use appstore_actors::{
    CancelJob, CatalogHandle, JobRegistry, RefreshCatalog, SubmitInstall, SubmitMaintain,
    SubmitUninstall,
};
use appstore_catalog::{CatalogApp, CatalogSnapshot, Query, Sort};
use appstore_core::job::JobKind;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use warp::http::{header, Response, StatusCode};
use warp::reply::{Reply, Response as WarpResponse};
use warp::Filter;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Read handle on the catalog.
    pub catalog: CatalogHandle,
    /// Where refresh requests go.
    pub refresh: Recipient<RefreshCatalog>,
    /// The job engine, when this mode runs one.
    pub jobs: Option<JobsApi>,
    /// The GPU inventory.
    pub gpus: appstore_actors::GpuHandle,
    /// New GPU inventories as they are found (for `/api/events`).
    pub gpu_changes: tokio::sync::broadcast::Sender<appstore_actors::GpuChange>,
    /// Password login, when `web.auth.mode` is `password` (`None`: no login).
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// Rendered `GET /api/apps` pages.
    pub apps_cache: Arc<AppsCache>,
    /// The running configuration with credentials removed (for the debug bundle).
    pub config_summary: Arc<Value>,
    /// Which GPUs may be attached (the config's `gpu` section).
    pub gpu_policy: appstore_core::gpu::GpuPolicy,
    /// The demo's simulated GPU host (plug and unplug), only in the demo.
    pub demo_gpus: Option<Arc<crate::demo::DemoGpus>>,
    /// Host names the API answers to (against DNS rebinding).
    pub allowed_hosts: Arc<crate::origin::AllowedHosts>,
}

/// Rendered `GET /api/apps` answers, valid for one catalog snapshot and one set of install counts;
/// a new snapshot or new counts empty it. Counts are re-read from the store at most every few
/// seconds, so the "popular" order follows installs without a store read per request.
#[derive(Debug, Default)]
pub struct AppsCache {
    inner: std::sync::Mutex<AppsCacheInner>,
}

#[derive(Debug, Default)]
struct AppsCacheInner {
    /// The snapshot the pages were rendered from (held, so its identity cannot be reused).
    snapshot: Option<Arc<CatalogSnapshot>>,
    /// Goes up whenever the pages are emptied: a page rendered before is not stored after.
    generation: u64,
    counts: Arc<HashMap<String, u64>>,
    counts_read: Option<std::time::Instant>,
    pages: HashMap<String, Bytes>,
}

/// How often install counts are re-read for the "popular" order.
const COUNTS_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// Rendered pages kept at most; past it the cache starts over.
const CACHED_PAGES: usize = 1024;

impl AppsCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, AppsCacheInner> {
        // A panic while holding the lock leaves only a cache behind: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The page for `key` rendered from `snap`, or the generation to store a new one under.
    fn page(&self, snap: &Arc<CatalogSnapshot>, key: &str) -> Result<Bytes, u64> {
        let mut inner = self.lock();
        if !inner
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snap))
        {
            inner.snapshot = Some(Arc::clone(snap));
            inner.pages.clear();
            inner.generation += 1;
        }
        inner.pages.get(key).cloned().ok_or(inner.generation)
    }

    fn store_page(&self, generation: u64, key: String, page: Bytes) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.pages.len() >= CACHED_PAGES {
            inner.pages.clear();
        }
        inner.pages.insert(key, page);
    }

    /// The install counts, when they are fresh enough.
    fn fresh_counts(&self) -> Option<Arc<HashMap<String, u64>>> {
        let inner = self.lock();
        inner
            .counts_read
            .filter(|at| at.elapsed() < COUNTS_TTL)
            .map(|_| inner.counts.clone())
    }

    /// Makes the next request re-read the install counts (a job completed).
    pub fn forget_counts(&self) {
        self.lock().counts_read = None;
    }

    fn set_counts(&self, counts: HashMap<String, u64>) -> Arc<HashMap<String, u64>> {
        let mut inner = self.lock();
        if *inner.counts != counts {
            inner.counts = Arc::new(counts);
            inner.pages.clear();
            inner.generation += 1;
        }
        inner.counts_read = Some(std::time::Instant::now());
        inner.counts.clone()
    }
}

/// The job engine as the API uses it.
#[derive(Debug, Clone)]
pub struct JobsApi {
    /// Schedules jobs.
    pub registry: Addr<JobRegistry>,
    /// Reads jobs, logs and installs.
    pub store: Store,
    /// What the node offers (cached discovery).
    pub proxmox: Addr<appstore_actors::ProxmoxActor>,
    /// Job states and log lines as they happen (the SSE streams).
    pub events: tokio::sync::broadcast::Sender<appstore_actors::engine::JobEvent>,
    /// Opens sealed secret outputs for an authorised reveal.
    pub secrets: appstore_actors::secrets::SecretBox,
}

fn jobs_of(state: &ApiState) -> Result<JobsApi, ApiError> {
    state.jobs.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_engine",
            "this mode runs no job engine",
        )
    })
}

async fn read<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, appstore_actors::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )),
    }
}

/// The answer to an accepted job request: 202 with where to follow it.
fn job_accepted(id: i64) -> WarpResponse {
    warp::reply::with_status(
        warp::reply::json(&json!({"job_id": id, "url": format!("/api/jobs/{id}")})),
        StatusCode::ACCEPTED,
    )
    .into_response()
}

/// The job registry did not answer (it is restarting).
fn engine_unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "engine_unavailable",
        e.to_string(),
    )
}

async fn submit_install(state: ApiState, body: Bytes) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let request: InstallRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the install request is not valid JSON of the expected shape: {e}"),
        )
    })?;
    let app_id = request.app_id.clone();
    // The host name and network settings, strictly, each error on its field.
    let problems = appstore_core::network::check(&request.network_fields());
    if !problems.is_empty() {
        let mut err = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect::<Vec<_>>()
                .join("; "),
        );
        for p in &problems {
            err = err.field(p.field, &p.message);
        }
        return Err(err);
    }
    // The form's values are checked before a job exists, each error on its field.
    if let Some(app) = state
        .catalog
        .snapshot()
        .and_then(|s| s.app(&app_id).cloned())
    {
        if let Err(errors) =
            appstore_core::inputs::resolve(&app.manifest, &request.inputs, &mut || "x".repeat(24))
        {
            let mut err = ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_inputs",
                format!(
                    "{} install option(s) are not valid: {}",
                    errors.len(),
                    errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            );
            for e in &errors {
                err = err.field(&format!("inputs.{}", e.field), &e.message);
            }
            return Err(err);
        }
        // The GPU asked for, checked the way the job will check it.
        let m = &app.manifest;
        if request.gpu != appstore_core::gpu::GpuRequest::None || m.gpu().required {
            let store = jobs.store.clone();
            let attachments = read(move || store.gpu_attachments()).await?;
            let host = appstore_actors::engine::gpu::candidates(&state.gpus, &attachments);
            if let Err(e) = appstore_core::gpu::decide(
                m.gpu(),
                &state.gpu_policy,
                &request.gpu,
                &host.candidates,
                &host.shared,
                !m.lxc().unprivileged,
            ) {
                return Err(
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_gpu", e.to_string())
                        .field("gpu", e.to_string()),
                );
            }
        }
    }
    match jobs.registry.send(SubmitInstall(request)).await {
        Ok(Ok(id)) => Ok(job_accepted(id)),
        Ok(Err(e)) => Err(submit_error(e)),
        Err(e) => Err(engine_unavailable(e)),
    }
}

/// The API's answer to a job that was not made: each variant its status, never read from the text.
fn submit_error(e: appstore_actors::SubmitError) -> ApiError {
    use appstore_actors::SubmitError;
    match e {
        SubmitError::NotFound(m) => ApiError::not_found(m),
        SubmitError::Busy { ctid } => ApiError::new(
            StatusCode::CONFLICT,
            "busy",
            format!("a job is already running on container {ctid}; wait for it to end"),
        ),
        SubmitError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        SubmitError::Invalid { message, fields } => {
            let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
            for (k, v) in &fields {
                err = err.field(k, v);
            }
            err
        }
        SubmitError::CatalogNotLoaded => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "catalog_not_loaded",
            SubmitError::CatalogNotLoaded.to_string(),
        ),
        e @ (SubmitError::Store(_) | SubmitError::Internal(_)) => {
            // The whole chain: the cause is what an admin needs.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            tracing::error!(error = %text, "a job could not be made");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", text)
        }
    }
}

async fn submit_uninstall(state: ApiState, body: Bytes) -> ApiResult {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Uninstall {
        install_id: i64,
        #[serde(default)]
        keep_volumes: bool,
    }
    let jobs = jobs_of(&state)?;
    let req: Uninstall = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("expected {{\"install_id\": N, \"keep_volumes\": true|false}}: {e}"),
        )
        .field("install_id", "required, a whole number")
    })?;
    match jobs
        .registry
        .send(SubmitUninstall {
            install_id: req.install_id,
            keep_volumes: req.keep_volumes,
        })
        .await
    {
        Ok(Ok(id)) => Ok(job_accepted(id)),
        Ok(Err(e)) => Err(submit_error(e)),
        Err(e) => Err(engine_unavailable(e)),
    }
}

async fn submit_maintain(state: ApiState, kind: JobKind, body: Bytes) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let req: MaintainRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the request is not valid JSON of the expected shape: {e}"),
        )
        .field("install_id", "required, a whole number")
    })?;
    match jobs
        .registry
        .send(SubmitMaintain { kind, request: req })
        .await
    {
        Ok(Ok(id)) => Ok(job_accepted(id)),
        Ok(Err(e)) => Err(submit_error(e)),
        Err(e) => Err(engine_unavailable(e)),
    }
}

/// What an upgrade of an install would do, for the user to read before asking for it.
async fn upgrade_plan(state: ApiState, id: i64) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    let install = read(move || store.install(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no install {id}")))?;
    let snapshot = state.catalog.snapshot().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "catalog_unavailable",
            "the catalog has not been loaded yet",
        )
    })?;
    let Some(app) = snapshot.app(&install.app_id) else {
        return ok_json(
            &json!({"install_id": id, "check": {"status": "blocked", "from": install.version, "to": null,
            "reason": format!("{} is no longer in the catalog", install.app_id)}, "steps": []}),
        );
    };
    let check = appstore_core::upgrade::check(&install.version, &app.manifest);
    let p = app.manifest.provision();
    let mut steps = vec![
        format!("check that container {} is still the store's", install.ctid.unwrap_or_default()),
        "take a PVE snapshot of the container (where its storage cannot, stop unless you allow going on without one)".to_string(),
        format!("push the scripts of {} {} and run {}", app.manifest.id(), app.manifest.version(),
            p.upgrade.as_ref().map(|u| u.to_string()).unwrap_or_else(|| "-".into())),
    ];
    if p.healthcheck.is_some() {
        steps.push("run the health check".into());
    }
    steps.push(
        "on failure, roll back to the snapshot; on success, remove it (unless you keep it)".into(),
    );
    ok_json(&json!({"install_id": id, "check": check, "steps": steps,
        "commit": snapshot.source().commit, "manifest_sha256": app.manifest_sha256}))
}

/// `GET /api/system/discovery`: pool, storages, bridges and templates as the store's token sees them
/// (cached 30 s; `?refresh=1` reads PVE again), and the GPUs.
async fn discovery(state: ApiState, q: HashMap<String, String>) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let refresh = q.get("refresh").is_some_and(|v| v == "1" || v == "true");
    let d = jobs
        .proxmox
        .send(appstore_actors::Discover { refresh })
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "engine_unavailable",
                e.to_string(),
            )
        })?;
    let gpus = state.gpus.status();
    let host = tokio::task::spawn_blocking(appstore_gpu::host_resources)
        .await
        .ok();
    ok_json(&json!({"pve": *d, "gpus": gpus, "host": host}))
}

/// `GET /api/gpus`: the host's GPU inventory.
/// What the install form's GPU step offers for one app: each GPU with its vendor, name, PCI address,
/// users, and whether (with which profile) or why not the app can use it; the auto-select pick.
async fn gpu_options(state: ApiState, id: String) -> ApiResult {
    let snap = snapshot(&state)?;
    let app = find_app(&snap, &id)?;
    let spec = app.manifest.gpu().clone();
    let inventory = state.gpus.status().inventory;
    let attachments = match &state.jobs {
        Some(jobs) => {
            let store = jobs.store.clone();
            read(move || store.gpu_attachments()).await?
        }
        None => Vec::new(),
    };
    let (opts, best) =
        appstore_actors::engine::gpu::options(&state.gpus, &attachments, &state.gpu_policy, &spec);
    let gpus: Vec<Value> = opts
        .iter()
        .map(|o| {
            let g = inventory
                .gpus
                .iter()
                .find(|g| g.pci_address == o.pci_address);
            json!({
                "pci_address": o.pci_address, "vendor": o.vendor, "users": o.users,
                "profile": o.profile, "usable": o.reason.is_none(), "reason": o.reason,
                "name": g.and_then(|g| g.name.clone()), "driver": g.and_then(|g| g.driver.clone()),
                "nodes": g.map(|g| g.nodes.clone()).unwrap_or_default(),
                "problems": g.map(|g| g.problems.clone()).unwrap_or_default(),
            })
        })
        .collect();
    ok_json(&json!({
        "supported": spec.supported, "required": spec.required, "notes": spec.notes,
        "policy": state.gpu_policy.mode,
        "privileged": !app.manifest.lxc().unprivileged,
        "best": best,
        "nvidia_driver_version": inventory.nvidia_driver_version,
        "gpus": gpus,
    }))
}

/// The demo's simulated GPUs: each with whether it is plugged in.
async fn demo_gpus_list(state: ApiState) -> ApiResult {
    let demo = state
        .demo_gpus
        .as_ref()
        .ok_or_else(|| ApiError::not_found("GPU simulation exists only in the demo"))?;
    ok_json(&json!({"gpus": demo.list()}))
}

/// Plugs a simulated GPU in or out (`{"pci_address": "...", "present": false}`).
async fn demo_gpus_set(state: ApiState, body: Bytes) -> ApiResult {
    let demo = state
        .demo_gpus
        .as_ref()
        .ok_or_else(|| ApiError::not_found("GPU simulation exists only in the demo"))?;
    #[derive(serde::Deserialize)]
    struct Plug {
        pci_address: String,
        present: bool,
    }
    let plug: Plug = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string())
            .field("pci_address", "required, with `present`: true or false")
    })?;
    let demo = Arc::clone(demo);
    let pci = plug.pci_address.clone();
    let done = tokio::task::spawn_blocking(move || demo.set(&pci, plug.present))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match done {
        Ok(()) => Ok(warp::reply::with_status(
            warp::reply::json(&json!({"status": "changed"})),
            StatusCode::ACCEPTED,
        )
        .into_response()),
        Err(e) => Err(
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.clone())
                .field("pci_address", e),
        ),
    }
}

/// The GPU inventory, with the containers each device node is attached to (`attachments`).
async fn gpu_inventory(state: ApiState) -> ApiResult {
    let mut v = serde_json::to_value(state.gpus.status()).unwrap_or_default();
    let attachments = match &state.jobs {
        Some(jobs) => {
            let store = jobs.store.clone();
            read(move || store.gpu_attachments()).await?
        }
        None => Vec::new(),
    };
    v["attachments"] = json!(attachments);
    ok_json(&v)
}

/// A request the login guard refused.
#[derive(Debug)]
struct Denied(ApiError);

impl warp::reject::Reject for Denied {}

fn denied(status: StatusCode, code: &'static str, message: &str) -> warp::Rejection {
    warp::reject::custom(Denied(ApiError::new(status, code, message)))
}

/// Every `/api` request must name a host the service answers to and, when it says where it comes
/// from, come from the store's own page; every request that changes something must be JSON
/// (`origin.rs`), with or without login. In password mode every `/api` request also needs a live
/// session, and every request that changes something its CSRF token; `GET /api/health`,
/// `GET /api/session` and `POST /api/login` are open.
fn guard(state: ApiState) -> warp::filters::BoxedFilter<()> {
    warp::path::full()
        .and(warp::method())
        .and(warp::cookie::optional::<String>(crate::auth::COOKIE))
        .and(warp::header::optional::<String>(crate::auth::CSRF_HEADER))
        .and(warp::header::optional::<String>("host"))
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("content-type"))
        .and_then(
            move |path: warp::path::FullPath,
                  method: warp::http::Method,
                  cookie: Option<String>,
                  csrf: Option<String>,
                  host: Option<String>,
                  origin: Option<String>,
                  content_type: Option<String>| {
                let auth = state.auth.clone();
                let allowed = Arc::clone(&state.allowed_hosts);
                async move {
                    let p = path.as_str();
                    if !p.starts_with("/api/") {
                        return Ok(());
                    }
                    let safe = matches!(
                        method,
                        warp::http::Method::GET
                            | warp::http::Method::HEAD
                            | warp::http::Method::OPTIONS
                    );
                    if let Err(refusal) = crate::origin::check(
                        &allowed,
                        host.as_deref(),
                        origin.as_deref(),
                        content_type.as_deref(),
                        !safe,
                    ) {
                        let (status, code) = match refusal {
                            crate::origin::Refusal::ContentType => {
                                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type")
                            }
                            _ => (StatusCode::FORBIDDEN, "origin"),
                        };
                        return Err(denied(status, code, &refusal.to_string()));
                    }
                    let Some(auth) = auth else { return Ok(()) };
                    let open = (method == warp::http::Method::GET
                        && (p == "/api/health" || p == "/api/session"))
                        || (method == warp::http::Method::POST && p == "/api/login");
                    if open {
                        return Ok(());
                    }
                    let Some(token) = cookie else {
                        return Err(denied(
                            StatusCode::UNAUTHORIZED,
                            "login_required",
                            "log in first (POST /api/login)",
                        ));
                    };
                    let session = tokio::task::spawn_blocking(move || auth.session(&token))
                        .await
                        .ok()
                        .flatten();
                    let Some(expected) = session else {
                        return Err(denied(
                            StatusCode::UNAUTHORIZED,
                            "session_expired",
                            "the session has ended; log in again",
                        ));
                    };
                    if !safe && csrf.as_deref() != Some(expected.as_str()) {
                        return Err(denied(
                            StatusCode::FORBIDDEN,
                            "csrf",
                            "missing or wrong X-CSRF-Token header (the token comes with the login and from GET /api/session); reload the page",
                        ));
                    }
                    Ok(())
                }
            },
        )
        .untuple_one()
        .boxed()
}

/// `POST /api/login` `{"password": "..."}`: a session cookie and the CSRF token.
async fn login(state: ApiState, remote: Option<std::net::SocketAddr>, body: Bytes) -> ApiResult {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Login {
        password: String,
    }
    let Some(auth) = state.auth.clone() else {
        return ok_json(&json!({"auth": "none", "csrf": null}));
    };
    let req: Login = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("expected {{\"password\": \"...\"}}: {e}"),
        )
        .field("password", "required")
    })?;
    let ip = remote
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let a = Arc::clone(&auth);
    let result = tokio::task::spawn_blocking(move || a.login(ip, &req.password))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    use crate::auth::LoginError;
    match result {
        Ok((token, csrf)) => {
            tracing::info!(%ip, "login");
            let reply = warp::reply::json(&json!({"auth": "password", "csrf": csrf}));
            Ok(warp::reply::with_header(reply, "set-cookie", auth.cookie(&token)).into_response())
        }
        Err(LoginError::Wrong) => {
            tracing::warn!(%ip, "failed login");
            Err(
                ApiError::new(StatusCode::UNAUTHORIZED, "wrong_password", "wrong password")
                    .field("password", "wrong password"),
            )
        }
        Err(LoginError::RateLimited(after)) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many failed logins from this address; try again in {after} s"),
        )),
        Err(LoginError::NoPassword) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_password",
            "no password is set on this node; run `pve-appstore passwd` as root",
        )),
        Err(LoginError::Store(e)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e,
        )),
    }
}

/// `POST /api/logout`: ends the session.
async fn logout(state: ApiState, cookie: Option<String>) -> ApiResult {
    let Some(auth) = state.auth.clone() else {
        return ok_json(&json!({"auth": "none"}));
    };
    if let Some(token) = cookie {
        let a = Arc::clone(&auth);
        let _ = tokio::task::spawn_blocking(move || a.logout(&token)).await;
    }
    let reply = warp::reply::json(&json!({"logged_out": true}));
    Ok(warp::reply::with_header(reply, "set-cookie", auth.clear_cookie()).into_response())
}

/// `GET /api/session`: the login mode, and whether this browser is logged in (with its CSRF token).
async fn session(state: ApiState, cookie: Option<String>) -> ApiResult {
    let Some(auth) = state.auth.clone() else {
        return ok_json(&json!({"auth": "none", "logged_in": true, "csrf": null}));
    };
    let csrf = match cookie {
        Some(token) => tokio::task::spawn_blocking(move || auth.session(&token))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    ok_json(&json!({"auth": "password", "logged_in": csrf.is_some(), "csrf": csrf}))
}

/// `POST /api/jobs/{id}/destroy`: removes the container a failed or canceled install left.
async fn destroy_failed(state: ApiState, id: i64) -> ApiResult {
    let jobs = jobs_of(&state)?;
    match jobs
        .registry
        .send(appstore_actors::SubmitDestroyFailed { job_id: id })
        .await
    {
        Ok(Ok(job)) => Ok(job_accepted(job)),
        Ok(Err(e)) => Err(submit_error(e)),
        Err(e) => Err(engine_unavailable(e)),
    }
}

/// Data volumes kept by uninstalls, waiting for a later install of their app.
async fn list_volumes(state: ApiState) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    let kept = read(move || store.kept_volumes(None)).await?;
    ok_json(&json!({"volumes": kept}))
}

/// Jobs the debug bundle describes.
const BUNDLE_JOBS: i64 = 20;

/// The debug bundle (a JSON download): version, redacted config, catalog status, GPU inventory, the
/// last jobs with their transitions, the last service log lines, and the last log lines of one job
/// (`job_id`, by default the newest failed job, else the newest job).
async fn debug_bundle(state: ApiState, params: HashMap<String, String>) -> ApiResult {
    let job_id = match params
        .get("job_id")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(v) => Some(v.parse::<i64>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "the query has invalid parameters",
            )
            .field(
                "job_id",
                format!("`{v}` is not a job id; use a number from GET /api/jobs"),
            )
        })?),
    };
    let catalog = state.catalog.status();
    let snap = catalog.snapshot.as_ref();
    let mut bundle = json!({
        "generated_at_ms": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        "version": appstore_core::STORE_VERSION,
        "config": *state.config_summary,
        "catalog": {
            "source": snap.map(|s| s.source()),
            "apps": snap.map(|s| s.apps().len()).unwrap_or(0),
            "broken": snap.map(|s| s.broken().len()).unwrap_or(0),
            "last_error": catalog.last_error.as_deref().map(crate::debug::scrub_urls),
        },
        "gpus": serde_json::to_value(state.gpus.status()).unwrap_or_default(),
        "service_log": crate::debug::service_log().lines(),
    });
    if let Some(jobs) = &state.jobs {
        let store = jobs.store.clone();
        let (list, chosen, lines) = read(move || {
            let list = store.jobs(BUNDLE_JOBS)?;
            let chosen = match job_id {
                Some(id) => store.job(id)?.map(|j| j.id),
                None => list
                    .iter()
                    .find(|j| j.state == "failed")
                    .or(list.first())
                    .map(|j| j.id),
            };
            let lines = match chosen {
                Some(id) => store.tail_logs(id, crate::debug::LOG_LINES as i64)?,
                None => Vec::new(),
            };
            let mut described = Vec::new();
            for job in list {
                let transitions = store.transitions(job.id)?;
                described.push(json!({"job": job, "transitions": transitions}));
            }
            Ok((described, chosen, lines))
        })
        .await?;
        if let (Some(asked), None) = (job_id, chosen) {
            return Err(ApiError::not_found(format!("no job {asked}")));
        }
        bundle["jobs"] = json!(list);
        bundle["job_log"] = json!({"job_id": chosen, "lines": lines});
    }
    let body = serde_json::to_vec_pretty(&bundle).unwrap_or_default();
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"pve-appstore-debug.json\"",
        )
        .body(Bytes::from(body))
        .map(Reply::into_response)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

async fn list_jobs(state: ApiState) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    let list = read(move || store.jobs(200)).await?;
    ok_json(&json!({"jobs": list}))
}

async fn get_job(state: ApiState, id: i64) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    let (job, transitions) = read(move || Ok((store.job(id)?, store.transitions(id)?))).await?;
    let job = job.ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    ok_json(&json!({"job": job, "transitions": transitions}))
}

fn sse_log(l: &appstore_actors::store::LogRecord) -> warp::sse::Event {
    warp::sse::Event::default()
        .id(l.seq.to_string())
        .event("log")
        .data(
            json!({"seq": l.seq, "at_ms": l.at_ms, "stream": l.stream, "line": l.line}).to_string(),
        )
}

fn sse_state(state: &str, reason: Option<&str>) -> warp::sse::Event {
    warp::sse::Event::default()
        .event("state")
        .data(json!({"state": state, "reason": reason}).to_string())
}

fn is_terminal(state: &str) -> bool {
    ["completed", "failed", "canceled"].contains(&state)
}

/// What an open job stream still has to send, and where it is.
struct JobStream {
    job: i64,
    rx: tokio::sync::broadcast::Receiver<JobEvent>,
    store: Store,
    last_seq: i64,
    pending: std::collections::VecDeque<warp::sse::Event>,
    /// Stored lines after `last_seq` are still to be read (page by page) before anything live.
    behind: bool,
    /// State changes to send once the stored lines are out: (event, final).
    states: std::collections::VecDeque<(warp::sse::Event, bool)>,
    done: bool,
}

/// Lines read from the store at a time while a stream catches up.
const STREAM_PAGE: i64 = 2000;

impl JobStream {
    /// The next event: lines in order (read from the store, a page at a time, however many there
    /// are, whenever this stream is behind the live feed), then the state changes, and after the
    /// final state the stream ends.
    async fn next(mut self) -> Option<(Result<warp::sse::Event, Infallible>, JobStream)> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some((Ok(e), self));
            }
            if self.behind {
                self.behind = self.read_page().await;
                continue;
            }
            if let Some((e, last)) = self.states.pop_front() {
                self.done = last;
                return Some((Ok(e), self));
            }
            if self.done {
                return None;
            }
            match self.rx.recv().await {
                Ok(JobEvent::Log {
                    job_id,
                    seq,
                    at_ms,
                    stream,
                    line,
                }) if job_id == self.job && seq > self.last_seq => {
                    if seq != self.last_seq + 1 {
                        self.behind = true;
                        continue;
                    }
                    self.last_seq = seq;
                    let l = appstore_actors::store::LogRecord {
                        seq,
                        at_ms,
                        stream,
                        line,
                    };
                    return Some((Ok(sse_log(&l)), self));
                }
                Ok(JobEvent::State {
                    job_id,
                    state,
                    reason,
                }) if job_id == self.job => {
                    // Lines stored before the state change come first.
                    self.behind = true;
                    self.states
                        .push_back((sse_state(&state, reason.as_deref()), is_terminal(&state)));
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.behind = true,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Reads the next page of stored lines; true when there may be more.
    async fn read_page(&mut self) -> bool {
        let (store, job, after) = (self.store.clone(), self.job, self.last_seq);
        match tokio::task::spawn_blocking(move || store.logs(job, after, STREAM_PAGE)).await {
            Ok(Ok(lines)) => {
                let full = lines.len() as i64 >= STREAM_PAGE;
                for l in lines {
                    self.last_seq = l.seq;
                    self.pending.push_back(sse_log(&l));
                }
                full
            }
            _ => false,
        }
    }
}

/// `GET /api/jobs/{id}/stream`: server-sent events, `log` (id = the line's cursor) and `state`; a
/// reconnecting client sends `Last-Event-ID` (or `?after=`) and gets only what it missed, every
/// line of it. The stream ends after the job's final state.
async fn job_stream(
    state: ApiState,
    id: i64,
    params: HashMap<String, String>,
    last_event_id: Option<String>,
) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let after = match last_event_id.or_else(|| params.get("after").cloned()) {
        None => 0,
        Some(v) => v.trim().parse::<i64>().map_err(|_| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "bad cursor")
                .field("after", "must be a whole number")
        })?,
    };
    // Subscribed before the job is read, so nothing falls between the two.
    let rx = jobs.events.subscribe();
    let store = jobs.store.clone();
    let job = read(move || store.job(id)).await?;
    let job = job.ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let stream = JobStream {
        job: id,
        rx,
        store: jobs.store.clone(),
        last_seq: after,
        pending: Default::default(),
        behind: true,
        states: [(
            sse_state(&job.state, job.error.as_deref()),
            is_terminal(&job.state),
        )]
        .into(),
        done: false,
    };
    let events = futures_util::stream::unfold(stream, JobStream::next);
    Ok(warp::sse::reply(warp::sse::keep_alive().stream(events)).into_response())
}

/// `GET /api/events`: every job's state changes as server-sent events, for live views.
/// Live events for the UI's views: `job` (a job changed state), `gpus` (the GPU inventory changed;
/// the data holds the GPUs added, removed or changed and the new inventory) and `lagged` (events
/// were missed: reload).
async fn all_events(state: ApiState) -> ApiResult {
    use tokio::sync::broadcast::error::RecvError;
    let lagged = |n: u64| {
        warp::sse::Event::default()
            .event("lagged")
            .data(json!({"missed": n}).to_string())
    };
    let jobs = state.jobs.as_ref().map(|j| j.events.subscribe());
    let job_events = futures_util::stream::unfold(jobs, move |rx| async move {
        let mut rx = rx?;
        loop {
            match rx.recv().await {
                Ok(JobEvent::State {
                    job_id,
                    state,
                    reason,
                }) => {
                    let e = warp::sse::Event::default().event("job").data(
                        json!({"job_id": job_id, "state": state, "reason": reason}).to_string(),
                    );
                    return Some((Ok::<_, Infallible>(e), Some(rx)));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => return Some((Ok(lagged(n)), Some(rx))),
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let gpu_events =
        futures_util::stream::unfold(state.gpu_changes.subscribe(), move |mut rx| async move {
            let e = match rx.recv().await {
                Ok(change) => warp::sse::Event::default()
                    .event("gpus")
                    .data(serde_json::to_string(&change).unwrap_or_default()),
                Err(RecvError::Lagged(n)) => lagged(n),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok::<_, Infallible>(e), rx))
        });
    let events = futures_util::stream::select(job_events, gpu_events);
    Ok(warp::sse::reply(warp::sse::keep_alive().stream(events)).into_response())
}

async fn job_logs(state: ApiState, id: i64, params: HashMap<String, String>) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let number = |k: &str, default: i64| -> Result<i64, ApiError> {
        match params.get(k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "bad cursor")
                    .field(k, "must be a whole number")
            }),
        }
    };
    let after = number("after", 0)?;
    let limit = number("limit", 500)?.clamp(1, 5000);
    let store = jobs.store.clone();
    let (job, lines) = read(move || Ok((store.job(id)?, store.logs(id, after, limit)?))).await?;
    let job = job.ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let next = lines.last().map(|l| l.seq).unwrap_or(after);
    ok_json(&json!({"state": job.state, "lines": lines, "next": next}))
}

async fn cancel_job(state: ApiState, id: i64) -> ApiResult {
    let jobs = jobs_of(&state)?;
    match jobs.registry.send(CancelJob(id)).await {
        Ok(true) => Ok(warp::reply::with_status(
            warp::reply::json(&json!({"canceling": id})),
            StatusCode::ACCEPTED,
        )
        .into_response()),
        Ok(false) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_running",
            format!("job {id} is neither queued nor running"),
        )),
        Err(e) => Err(engine_unavailable(e)),
    }
}

/// `POST /api/installs/{id}/outputs/{key}/reveal` `{"password": "..."}`: a secret output (a
/// generated password) in clear, for the person who is logged in and gives the password again;
/// every reveal is in the service log, without the value.
async fn reveal_output(
    state: ApiState,
    id: i64,
    key: String,
    remote: Option<std::net::SocketAddr>,
    body: Bytes,
) -> ApiResult {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Reveal {
        #[serde(default)]
        password: Option<String>,
    }
    let jobs = jobs_of(&state)?;
    let req: Reveal = if body.is_empty() {
        Reveal { password: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("expected {{\"password\": \"...\"}}: {e}"),
            )
        })?
    };
    let ip = remote
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    if let Some(auth) = state.auth.clone() {
        let Some(password) = req.password else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "password_required",
                "give the admin password again to reveal a secret",
            )
            .field("password", "required"));
        };
        let checked = tokio::task::spawn_blocking(move || auth.verify(ip, &password))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?;
        use crate::auth::LoginError;
        match checked {
            Ok(()) => {}
            Err(LoginError::Wrong) => {
                tracing::warn!(target: "pve_appstore::audit", %ip, install = id, output = %key, "secret reveal refused: wrong password");
                // 403, not 401: the session is fine, only this confirmation failed.
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wrong_password",
                    "wrong password",
                )
                .field("password", "wrong password"));
            }
            Err(LoginError::RateLimited(after)) => {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("too many attempts from this address; try again in {after} s"),
                ))
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_password",
                    format!("the password cannot be checked: {e:?}"),
                ))
            }
        }
    }
    let store = jobs.store.clone();
    let install = read(move || store.install(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no install {id}")))?;
    let outputs: Value = serde_json::from_str(&install.outputs).unwrap_or(Value::Null);
    let output = outputs
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["key"] == key.as_str())
        .ok_or_else(|| ApiError::not_found(format!("install {id} has no output `{key}`")))?;
    if output["secret"] != true {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_secret",
            format!("output `{key}` is not a secret; it is shown in GET /api/installs/{id}"),
        ));
    }
    let sealed = output["value"].as_str().unwrap_or("");
    let value = jobs.secrets.open_value(sealed).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sealed",
            format!("the secret cannot be opened with this node's key: {e}"),
        )
    })?;
    tracing::info!(target: "pve_appstore::audit", %ip, install = id, app = %install.app_id, output = %key, "secret output revealed");
    ok_json(&json!({"key": key, "value": value}))
}

/// An install as the API shows it: secret outputs only by presence, with its upgrade check.
fn install_view(
    i: &appstore_actors::store::InstallRecord,
    snapshot: Option<&Arc<CatalogSnapshot>>,
) -> Value {
    // Secret outputs are stored sealed and never listed; only their presence is.
    let outputs: Value = serde_json::from_str(&i.outputs).unwrap_or(Value::Null);
    let outputs: Vec<Value> = outputs
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            if o["secret"] == true {
                json!({"key": o["key"], "label": o["label"], "secret": true, "value": null})
            } else {
                o.clone()
            }
        })
        .collect();
    let upgrade = snapshot.and_then(|s| s.app(&i.app_id)).map(|a| {
        serde_json::to_value(appstore_core::upgrade::check(&i.version, &a.manifest))
            .unwrap_or(Value::Null)
    });
    let reconfigurable = snapshot
        .and_then(|s| s.app(&i.app_id))
        .is_some_and(|a| a.manifest.inputs().iter().any(|x| x.reconfigurable));
    json!({"id": i.id, "app_id": i.app_id, "ctid": i.ctid, "node": i.node, "pool": i.pool, "version": i.version,
           "status": i.status, "created_at": i.created_at, "inputs": serde_json::from_str::<Value>(&i.inputs).unwrap_or(Value::Null), "outputs": outputs,
           "upgrade": upgrade, "reconfigurable": reconfigurable})
}

async fn list_installs(state: ApiState) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    let installs = read(move || store.installs()).await?;
    let snapshot = state.catalog.snapshot();
    // The run state of each container, from PVE in one call; unknown when PVE does not answer.
    let live = match jobs.proxmox.send(appstore_actors::ListContainers).await {
        Ok(Ok(map)) => Some(map),
        _ => None,
    };
    let shown: Vec<Value> = installs
        .iter()
        .map(|i| {
            let mut v = install_view(i, snapshot.as_ref());
            v["container_status"] = match (&live, i.ctid) {
                (Some(map), Some(ctid)) if i.status != "removed" => json!(map
                    .get(&(ctid as u64))
                    .cloned()
                    .unwrap_or_else(|| "missing".into())),
                _ => Value::Null,
            };
            v
        })
        .collect();
    ok_json(&json!({"installs": shown}))
}

/// One install: the record, its job history, and — while it exists — the container's live
/// state from PVE (status, CPU, memory, disk, network, uptime), its config and its volumes.
async fn get_install(state: ApiState, id: i64) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    let (install, history) = read(move || {
        let Some(install) = store.install(id)? else {
            return Ok(None);
        };
        let history = store.install_jobs(&install)?;
        Ok(Some((install, history)))
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no install {id}")))?;
    let mut view = install_view(&install, state.catalog.snapshot().as_ref());
    view["jobs"] = json!(history);
    let live = match install.ctid.and_then(|c| u32::try_from(c).ok()) {
        Some(ctid) if install.status != "removed" => {
            match jobs
                .proxmox
                .send(appstore_actors::ReadContainer { ctid })
                .await
            {
                Ok(Ok(c)) => {
                    // The root file system first, then mp0, mp1, ...
                    let mut keys: Vec<&String> = c
                        .config
                        .keys()
                        .filter(|k| *k == "rootfs" || k.starts_with("mp"))
                        .collect();
                    keys.sort_by_key(|k| (*k != "rootfs", k.len(), k.as_str()));
                    let volumes: Vec<Value> =
                        keys.iter().map(|k| volume_view(k, &c.config[*k])).collect();
                    json!({"status": c.status, "config": c.config, "volumes": volumes})
                }
                Ok(Err(e)) => json!({"error": e}),
                Err(e) => json!({"error": format!("the PVE actor is unavailable: {e}")}),
            }
        }
        _ => Value::Null,
    };
    view["container"] = live;
    ok_json(&view)
}

/// A `rootfs` / `mpN` config value as parts: volume, mount point, size.
fn volume_view(key: &str, value: &str) -> Value {
    let mut parts = value.split(',');
    let volume = parts.next().unwrap_or_default();
    let mut v =
        json!({"key": key, "volume": volume, "mount": if key == "rootfs" { "/" } else { "" }});
    for p in parts {
        if let Some((k, val)) = p.split_once('=') {
            match k {
                "mp" => v["mount"] = json!(val),
                "size" => v["size"] = json!(val),
                "backup" | "ro" => v[k] = json!(val == "1"),
                _ => {}
            }
        }
    }
    v
}

/// An API error: status, stable code, message for people, and per-field messages.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: BTreeMap<String, String>,
}

impl ApiError {
    /// An error without field details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: BTreeMap::new(),
        }
    }

    /// Adds a message for one field.
    pub fn field(mut self, name: &str, message: impl Into<String>) -> Self {
        self.fields.insert(name.to_string(), message.into());
        self
    }

    fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    fn catalog_unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "catalog_unavailable",
            "the catalog has not been loaded yet; see GET /api/catalog for its status",
        )
    }
}

impl warp::reject::Reject for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> WarpResponse {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "fields": self.fields}});
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }
}

type ApiResult = Result<WarpResponse, ApiError>;

fn ok_json(value: &Value) -> ApiResult {
    Ok(warp::reply::json(value).into_response())
}

fn snapshot(state: &ApiState) -> Result<Arc<CatalogSnapshot>, ApiError> {
    state
        .catalog
        .snapshot()
        .ok_or_else(ApiError::catalog_unavailable)
}

/// The card-sized view of an app.
pub fn app_summary(app: &CatalogApp) -> Value {
    let m = &app.manifest;
    json!({
        "id": m.id(),
        "name": m.name(),
        "description": m.description(),
        "version": m.version().to_string(),
        "categories": m.categories(),
        "tags": m.tags(),
        "icon_url": app.icon.as_ref().map(|_| format!("/api/apps/{}/icon", m.id())),
        "featured": m.featured(),
        "updated": app.updated,
        "gpu": {"supported": m.gpu().supported, "required": m.gpu().required},
    })
}

/// Apps per page unless `limit` says otherwise, and the most one page holds.
pub const APPS_PAGE: usize = 48;
const APPS_PAGE_MAX: usize = 200;

/// A parsed `GET /api/apps` query.
struct AppsQuery {
    query: Query,
    offset: usize,
    limit: usize,
}

impl AppsQuery {
    /// The cache key: every part that changes the answer.
    fn key(&self) -> String {
        let q = &self.query;
        format!(
            "{}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{}\u{0}{}",
            q.q.as_deref().unwrap_or(""),
            q.category.as_deref().unwrap_or(""),
            q.tag.as_deref().unwrap_or(""),
            q.sort,
            self.offset,
            self.limit
        )
    }
}

fn parse_query(params: &HashMap<String, String>) -> Result<AppsQuery, ApiError> {
    const KNOWN: [&str; 6] = ["q", "category", "tag", "sort", "offset", "limit"];
    let mut err = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        "the query has invalid parameters",
    );
    let sort = match params.get("sort").map(String::as_str) {
        None | Some("") | Some("featured") => Sort::Featured,
        Some("name") => Sort::Name,
        Some("updated") => Sort::Updated,
        Some("popular") => Sort::Popular,
        Some(other) => {
            err = err.field(
                "sort",
                format!("`{other}` is not a sort; use featured, popular, updated or name"),
            );
            Sort::Featured
        }
    };
    let number = |key: &str, default: usize, min: usize, max: usize| -> Result<usize, String> {
        match params.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("`{v}` is not a whole number from {min} to {max}")),
        }
    };
    let offset = match number("offset", 0, 0, 1_000_000) {
        Ok(n) => n,
        Err(m) => {
            err = err.field("offset", m);
            0
        }
    };
    let limit = match number("limit", APPS_PAGE, 1, APPS_PAGE_MAX) {
        Ok(n) => n,
        Err(m) => {
            err = err.field("limit", m);
            APPS_PAGE
        }
    };
    for key in params.keys() {
        if !KNOWN.contains(&key.as_str()) {
            err = err.field(
                key,
                format!("unknown parameter; known: {}", KNOWN.join(", ")),
            );
        }
    }
    if !err.fields.is_empty() {
        return Err(err);
    }
    let non_empty = |k: &str| params.get(k).filter(|v| !v.trim().is_empty()).cloned();
    Ok(AppsQuery {
        query: Query {
            q: non_empty("q"),
            category: non_empty("category"),
            tag: non_empty("tag"),
            sort,
        },
        offset,
        limit,
    })
}

/// Install counts for the "popular" order: cached, re-read every few seconds; none without an
/// engine.
async fn install_counts(state: &ApiState) -> Arc<HashMap<String, u64>> {
    if let Some(counts) = state.apps_cache.fresh_counts() {
        return counts;
    }
    let counts = match &state.jobs {
        Some(jobs) => {
            let store = jobs.store.clone();
            read(move || store.install_counts())
                .await
                .unwrap_or_default()
        }
        None => HashMap::new(),
    };
    state.apps_cache.set_counts(counts)
}

async fn list_apps(state: ApiState, params: HashMap<String, String>) -> ApiResult {
    let query = parse_query(&params)?;
    let snap = snapshot(&state)?;
    let counts = install_counts(&state).await;
    let key = query.key();
    let body = match state.apps_cache.page(&snap, &key) {
        Ok(body) => body,
        Err(generation) => {
            let hits = snap.search_ranked(&query.query, &|id| counts.get(id).copied().unwrap_or(0));
            let apps: Vec<Value> = hits
                .iter()
                .skip(query.offset)
                .take(query.limit)
                .map(|a| {
                    let mut v = app_summary(a);
                    v["installs"] =
                        json!(counts.get(a.manifest.id().as_str()).copied().unwrap_or(0));
                    v
                })
                .collect();
            let body = Bytes::from(
                serde_json::to_vec(&json!({
                    "apps": apps,
                    "total": hits.len(),
                    "offset": query.offset,
                    "limit": query.limit,
                    "categories": snap.index().categories(),
                    "tags": snap.index().tags(),
                }))
                .unwrap_or_default(),
            );
            state.apps_cache.store_page(generation, key, body.clone());
            body
        }
    };
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .map(Reply::into_response)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

fn find_app(snap: &CatalogSnapshot, id: &str) -> Result<Arc<CatalogApp>, ApiError> {
    snap.app(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no app `{id}` in the catalog")))
}

async fn get_app(state: ApiState, id: String) -> ApiResult {
    let snap = snapshot(&state)?;
    let app = find_app(&snap, &id)?;
    ok_json(&json!({
        "app": app_summary(&app),
        "manifest": app.manifest,
        "readme": app.readme,
        "manifest_sha256": app.manifest_sha256,
        "files": app.files,
    }))
}

async fn get_icon(state: ApiState, id: String) -> ApiResult {
    let snap = snapshot(&state)?;
    let app = find_app(&snap, &id)?;
    let icon = app
        .icon
        .as_ref()
        .ok_or_else(|| ApiError::not_found(format!("app `{id}` has no icon")))?;
    // Catalog SVGs come from third parties: served so that a script inside one can never run.
    Response::builder()
        .header(header::CONTENT_TYPE, icon.content_type)
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        )
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CACHE_CONTROL, "max-age=300")
        .body(icon.bytes.clone())
        .map(Reply::into_response)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

async fn catalog_status(state: ApiState) -> ApiResult {
    let status = state.catalog.status();
    let snap = status.snapshot.as_ref();
    ok_json(&json!({
        "source": snap.map(|s| s.source()),
        "apps": snap.map(|s| s.apps().len()).unwrap_or(0),
        "broken": snap.map(|s| s.broken().iter().map(|b| json!(**b)).collect::<Vec<_>>()).unwrap_or_default(),
        "last_refresh": status.last_refresh,
        "last_error": status.last_error,
        "refreshing": status.refreshing,
    }))
}

async fn refresh_catalog(state: ApiState) -> ApiResult {
    state.refresh.do_send(RefreshCatalog);
    Ok(warp::reply::with_status(
        warp::reply::json(&json!({"status": "refreshing"})),
        StatusCode::ACCEPTED,
    )
    .into_response())
}

async fn health() -> ApiResult {
    ok_json(&json!({"status": "ok", "version": appstore_core::STORE_VERSION}))
}

async fn respond(
    fut: impl std::future::Future<Output = ApiResult>,
) -> Result<WarpResponse, Infallible> {
    Ok(fut.await.unwrap_or_else(Reply::into_response))
}

/// The (method, path) of each filter in `routes`, in order.
pub const ROUTER_KEYS: [(&str, &str); 32] = [
    ("GET", "/api/health"),
    ("GET", "/api/apps"),
    ("GET", "/api/apps/{app_id}"),
    ("GET", "/api/apps/{app_id}/icon"),
    ("GET", "/api/catalog"),
    ("POST", "/api/catalog/refresh"),
    ("POST", "/api/install"),
    ("POST", "/api/uninstall"),
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/{job_id}"),
    ("GET", "/api/jobs/{job_id}/logs"),
    ("POST", "/api/jobs/{job_id}/cancel"),
    ("GET", "/api/installs"),
    ("POST", "/api/upgrade"),
    ("POST", "/api/reconfigure"),
    ("GET", "/api/installs/{install_id}/upgrade"),
    ("GET", "/api/volumes"),
    ("GET", "/api/jobs/{job_id}/stream"),
    ("GET", "/api/events"),
    ("GET", "/api/system/discovery"),
    ("GET", "/api/gpus"),
    ("POST", "/api/jobs/{job_id}/destroy"),
    ("POST", "/api/login"),
    ("POST", "/api/logout"),
    ("GET", "/api/session"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/debug/bundle"),
    ("GET", "/api/installs/{install_id}"),
    ("GET", "/api/apps/{app_id}/gpu-options"),
    ("GET", "/api/demo/gpus"),
    ("POST", "/api/demo/gpus"),
    ("POST", "/api/installs/{install_id}/outputs/{key}/reveal"),
];

/// Every `/api` route.
pub fn routes(state: ApiState) -> warp::filters::BoxedFilter<(WarpResponse,)> {
    let gate = guard(state.clone());
    let with_state = warp::any().map(move || state.clone());
    let api = warp::path("api");
    let health = api
        .and(warp::path("health"))
        .and(warp::path::end())
        .and(warp::get())
        .and_then(|| respond(health()));
    let apps = api
        .and(warp::path("apps"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(|s, q| respond(list_apps(s, q)));
    let app = api
        .and(warp::path("apps"))
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|id, s| respond(get_app(s, id)));
    let icon = api
        .and(warp::path("apps"))
        .and(warp::path::param::<String>())
        .and(warp::path("icon"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|id, s| respond(get_icon(s, id)));
    let catalog = api
        .and(warp::path("catalog"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|s| respond(catalog_status(s)));
    let refresh = api
        .and(warp::path("catalog"))
        .and(warp::path("refresh"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and_then(|s| respond(refresh_catalog(s)));
    let install = api
        .and(warp::path("install"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::bytes())
        .and_then(|s, b| respond(submit_install(s, b)));
    let uninstall = api
        .and(warp::path("uninstall"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::body::content_length_limit(4 * 1024))
        .and(warp::body::bytes())
        .and_then(|s, b| respond(submit_uninstall(s, b)));
    let jobs = api
        .and(warp::path("jobs"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|s| respond(list_jobs(s)));
    let job = api
        .and(warp::path("jobs"))
        .and(warp::path::param::<i64>())
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|id, s| respond(get_job(s, id)));
    let logs = api
        .and(warp::path("jobs"))
        .and(warp::path::param::<i64>())
        .and(warp::path("logs"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(|id, s, q| respond(job_logs(s, id, q)));
    let stream = api
        .and(warp::path("jobs"))
        .and(warp::path::param::<i64>())
        .and(warp::path("stream"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::header::optional::<String>("last-event-id"))
        .and_then(|id, s, q, last| respond(job_stream(s, id, q, last)));
    let events = api
        .and(warp::path("events"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|s| respond(all_events(s)));
    let cancel = api
        .and(warp::path("jobs"))
        .and(warp::path::param::<i64>())
        .and(warp::path("cancel"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and_then(|id, s| respond(cancel_job(s, id)));
    let upgrade = api
        .and(warp::path("upgrade"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::bytes())
        .and_then(|s, b| respond(submit_maintain(s, JobKind::Upgrade, b)));
    let reconfigure = api
        .and(warp::path("reconfigure"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::body::content_length_limit(64 * 1024))
        .and(warp::body::bytes())
        .and_then(|s, b| respond(submit_maintain(s, JobKind::Reconfigure, b)));
    let plan = api
        .and(warp::path("installs"))
        .and(warp::path::param::<i64>())
        .and(warp::path("upgrade"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|id, s| respond(upgrade_plan(s, id)));
    let login_route = api
        .and(warp::path("login"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and(crate::tls::client_addr())
        .and(warp::body::content_length_limit(4 * 1024))
        .and(warp::body::bytes())
        .and_then(|s, r, b| respond(login(s, r, b)));
    let logout_route = api
        .and(warp::path("logout"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::cookie::optional::<String>(crate::auth::COOKIE))
        .and_then(|s, c| respond(logout(s, c)));
    let session_route = api
        .and(warp::path("session"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::cookie::optional::<String>(crate::auth::COOKIE))
        .and_then(|s, c| respond(session(s, c)));
    let destroy = api
        .and(warp::path("jobs"))
        .and(warp::path::param::<i64>())
        .and(warp::path("destroy"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and_then(|id, s| respond(destroy_failed(s, id)));
    let discover = api
        .and(warp::path("system"))
        .and(warp::path("discovery"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(|s, q| respond(discovery(s, q)));
    let gpus = api
        .and(warp::path("gpus"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|s| respond(gpu_inventory(s)));
    let volumes = api
        .and(warp::path("volumes"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|s| respond(list_volumes(s)));
    let openapi = api
        .and(warp::path("openapi.json"))
        .and(warp::path::end())
        .and(warp::get())
        .and_then(|| respond(async { ok_json(&crate::openapi::document()) }));
    let installs = api
        .and(warp::path("installs"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|s| respond(list_installs(s)));
    let install_detail = api
        .and(warp::path("installs"))
        .and(warp::path::param::<i64>())
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|id, s| respond(get_install(s, id)));
    let gpu_opts = api
        .and(warp::path("apps"))
        .and(warp::path::param::<String>())
        .and(warp::path("gpu-options"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|id, s| respond(gpu_options(s, id)));
    let demo_list = api
        .and(warp::path("demo"))
        .and(warp::path("gpus"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|s| respond(demo_gpus_list(s)));
    let demo_set = api
        .and(warp::path("demo"))
        .and(warp::path("gpus"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::body::content_length_limit(4 * 1024))
        .and(warp::body::bytes())
        .and_then(|s, b| respond(demo_gpus_set(s, b)));
    let reveal = api
        .and(warp::path("installs"))
        .and(warp::path::param::<i64>())
        .and(warp::path("outputs"))
        .and(warp::path::param::<String>())
        .and(warp::path("reveal"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and(crate::tls::client_addr())
        .and(warp::body::content_length_limit(4 * 1024))
        .and(warp::body::bytes())
        .and_then(|id, key, s, remote, b| respond(reveal_output(s, id, key, remote, b)));
    let bundle = api
        .and(warp::path("debug"))
        .and(warp::path("bundle"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(|s, q| respond(debug_bundle(s, q)));
    // Each filter is paired with its entry in ROUTER_KEYS (same length, checked by the compiler), and
    // a test keeps those equal to the documented routes (openapi::ROUTES). Each route is boxed before
    // it is joined: one flat type instead of a nested one per route, which keeps compile times sane.
    let filters: [warp::filters::BoxedFilter<(WarpResponse,)>; ROUTER_KEYS.len()] = [
        health.boxed(),
        apps.boxed(),
        app.boxed(),
        icon.boxed(),
        catalog.boxed(),
        refresh.boxed(),
        install.boxed(),
        uninstall.boxed(),
        jobs.boxed(),
        job.boxed(),
        logs.boxed(),
        cancel.boxed(),
        installs.boxed(),
        upgrade.boxed(),
        reconfigure.boxed(),
        plan.boxed(),
        volumes.boxed(),
        stream.boxed(),
        events.boxed(),
        discover.boxed(),
        gpus.boxed(),
        destroy.boxed(),
        login_route.boxed(),
        logout_route.boxed(),
        session_route.boxed(),
        openapi.boxed(),
        bundle.boxed(),
        install_detail.boxed(),
        gpu_opts.boxed(),
        demo_list.boxed(),
        demo_set.boxed(),
        reveal.boxed(),
    ];
    let [first, rest @ ..] = filters;
    let mut all = first;
    for route in rest {
        all = all.or(route).unify().boxed();
    }
    // The login check runs once, before any route.
    gate.and(all).boxed()
}

/// Turns warp's rejections into the API's error shape.
pub async fn recover(rejection: warp::Rejection) -> Result<WarpResponse, Infallible> {
    // A rejection joins those of every route tried. The body checks come first: they mean a route
    // matched the path and method, whatever the other routes said.
    let err = if let Some(Denied(e)) = rejection.find::<Denied>() {
        ApiError {
            status: e.status,
            code: e.code,
            message: e.message.clone(),
            fields: e.fields.clone(),
        }
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large for this endpoint",
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send the body with a Content-Length header",
        )
    } else if rejection.is_not_found() {
        ApiError::not_found("no such page or API path")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that HTTP method",
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.to_string())
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{rejection:?}"),
        )
    };
    Ok(err.into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented_and_every_documented_route_is_routed() {
        let routed: std::collections::BTreeSet<(&str, &str)> =
            super::ROUTER_KEYS.iter().copied().collect();
        assert_eq!(
            routed.len(),
            super::ROUTER_KEYS.len(),
            "a route is listed twice"
        );
        let documented: std::collections::BTreeSet<(&str, &str)> = crate::openapi::ROUTES
            .iter()
            .map(|r| (r.method, r.path))
            .collect();
        assert_eq!(routed, documented);
        let doc = crate::openapi::document();
        assert_eq!(doc["openapi"], "3.0.3");
        for (method, path) in super::ROUTER_KEYS {
            assert!(
                doc["paths"][path][method.to_lowercase()].is_object(),
                "{method} {path}"
            );
        }
    }
}
