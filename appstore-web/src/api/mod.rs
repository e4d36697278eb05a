//! The REST API: routes, JSON shapes, and the mapping of every failure to
//! `{"error":{"code","message","fields"}}` with a 4xx status (never a 500 for bad input).
//! One module per resource (`apps`, `jobs`, `installs`, `login`, `gpus`, `system`); this one holds the
//! state, the error shape and the route table.

mod apps;
mod backups;
mod day2;
mod gpus;
mod installs;
mod jobs;
mod login;
mod notify;
pub mod params;
mod system;

use apps::*;
pub use apps::{app_summary, AppsCache, APPS_PAGE};
pub use backups::{BackupNow, PolicyBody};
use gpus::*;
use installs::*;
use jobs::*;
use login::*;
pub use notify::{NewTarget, TestBody};
use system::*;

use appstore_actors::engine::{InstallRequest, JobEvent, MaintainRequest};
use appstore_actors::{CatalogService, JobsService};
use appstore_catalog::{CatalogApp, CatalogSnapshot, Query};
use appstore_core::job::{JobKind, JobState};
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
    /// The catalog: the loaded snapshot, and refresh on request.
    pub catalog: CatalogService,
    /// The job engine, when this mode runs one.
    pub jobs: Option<JobsService>,
    /// The GPU inventory.
    pub gpus: appstore_actors::GpuHandle,
    /// New GPU inventories as they are found (for `/api/events`).
    pub gpu_changes: tokio::sync::broadcast::Sender<appstore_actors::GpuChange>,
    /// Newer catalog versions offered to installs, each once (for `/api/events`).
    pub updates: tokio::sync::broadcast::Sender<crate::updates::UpdateNotice>,
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
    /// Sends notifications, when this mode runs the job engine.
    pub notifier: Option<Arc<crate::notify::Notifier>>,
    /// GPU drift as it is found (for the notifications).
    pub drift: tokio::sync::broadcast::Sender<appstore_core::notify::Notification>,
    /// The time zone backup schedules and update windows are read in.
    pub time_zone: jiff::tz::TimeZone,
}

/// The name of the time zone schedules and windows are read in (`Europe/Berlin`, `UTC+05:30`).
fn zone_name(state: &ApiState) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    appstore_core::schedule::zone_name(&state.time_zone, now)
}

fn jobs_of(state: &ApiState) -> Result<JobsService, ApiError> {
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
    let accepted = params::JobAccepted {
        job_id: id,
        url: format!("/api/jobs/{id}"),
    };
    warp::reply::with_status(warp::reply::json(&accepted), StatusCode::ACCEPTED).into_response()
}

/// The job registry did not answer (it is restarting).
fn engine_unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "engine_unavailable",
        e.to_string(),
    )
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

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
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

async fn respond(
    fut: impl std::future::Future<Output = ApiResult>,
) -> Result<WarpResponse, Infallible> {
    Ok(fut.await.unwrap_or_else(Reply::into_response))
}

/// The (method, path) of each filter in `routes`, in order.
pub const ROUTER_KEYS: [(&str, &str); 48] = [
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
    ("POST", "/api/upgrade-all"),
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
    ("POST", "/api/installs/{install_id}/control"),
    ("GET", "/api/installs/{install_id}/history"),
    ("GET", "/api/installs/{install_id}/app-log"),
    ("GET", "/api/installs/{install_id}/app-log/stream"),
    ("POST", "/api/installs/{install_id}/update-policy"),
    ("POST", "/api/installs/{install_id}/gpu-sync"),
    ("GET", "/api/installs/{install_id}/backups"),
    ("POST", "/api/installs/{install_id}/backup"),
    ("POST", "/api/installs/{install_id}/backup-policy"),
    ("GET", "/api/backups"),
    ("POST", "/api/restore"),
    ("GET", "/api/notifications"),
    ("POST", "/api/notifications"),
    ("POST", "/api/notifications/{target_id}/delete"),
    ("POST", "/api/notifications/test"),
];

/// Every `/api` route.
pub fn routes(state: ApiState) -> warp::filters::BoxedFilter<(WarpResponse,)> {
    let gate = guard(state.clone());
    let [control, history, app_log, app_log_stream, update_policy, gpu_sync] =
        day2::filters(state.clone());
    let [backups_list, backup_now, backup_policy, backups_all, restore] =
        backups::filters(state.clone());
    let [notify_list, notify_add, notify_delete, notify_test] = notify::filters(state.clone());
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
    let upgrade_all_route = api
        .and(warp::path("upgrade-all"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and_then(|s| respond(upgrade_all(s)));
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
        upgrade_all_route.boxed(),
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
        control,
        history,
        app_log,
        app_log_stream,
        update_policy,
        gpu_sync,
        backups_list,
        backup_now,
        backup_policy,
        backups_all,
        restore,
        notify_list,
        notify_add,
        notify_delete,
        notify_test,
    ];
    let [first, rest @ ..] = filters;
    let mut all = first;
    for route in rest {
        all = all.or(route).unify().boxed();
    }
    // Last: a known path asked with a method it does not take is a 405 that names the methods it
    // does take (`Allow`, RFC 9110); anything else stays the other routes' rejection.
    let wrong_method = warp::path::full().and(warp::method()).and_then(
        |path: warp::path::FullPath, method: warp::http::Method| async move {
            let allowed = allowed_methods(path.as_str());
            if allowed.is_empty() && path.as_str().starts_with("/api/") {
                Err::<WarpResponse, _>(warp::reject::custom(NoSuchPath))
            } else if !allowed.is_empty() && !allowed.contains(&method.as_str()) {
                Err(warp::reject::custom(WrongMethod {
                    allow: allowed.join(", "),
                }))
            } else {
                Err(warp::reject::not_found())
            }
        },
    );
    let all = all.or(wrong_method).unify().boxed();
    // The login check runs once, before any route.
    gate.and(all).boxed()
}

/// A known path asked with another method; `allow` lists the methods it takes.
#[derive(Debug)]
struct WrongMethod {
    allow: String,
}

impl warp::reject::Reject for WrongMethod {}

/// An `/api` path the route table does not have, whatever the method.
#[derive(Debug)]
struct NoSuchPath;

impl warp::reject::Reject for NoSuchPath {}

/// The methods the route table has for `path` (`{param}` segments match any one segment).
fn allowed_methods(path: &str) -> Vec<&'static str> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut out: Vec<&'static str> = ROUTER_KEYS
        .iter()
        .filter(|(_, template)| {
            let t: Vec<&str> = template.split('/').collect();
            t.len() == segments.len()
                && t.iter().zip(&segments).all(|(a, b)| {
                    (a.starts_with('{') && a.ends_with('}') && !b.is_empty()) || a == b
                })
        })
        .map(|(m, _)| *m)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
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
    } else if let Some(w) = rejection.find::<WrongMethod>() {
        let err = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this path takes {}", w.allow),
        );
        let mut response = err.into_response();
        if let Ok(v) = header::HeaderValue::from_str(&w.allow) {
            response.headers_mut().insert(header::ALLOW, v);
        }
        return Ok(response);
    } else if rejection.is_not_found() || rejection.find::<NoSuchPath>().is_some() {
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
