//! The REST API: routes, JSON shapes, and the mapping of every failure to
//! `{"error":{"code","message","fields"}}` with a 4xx status (never a 500 for bad input).

use actix::Recipient;
use appstore_actors::{CatalogHandle, RefreshCatalog};
use appstore_catalog::{CatalogApp, CatalogSnapshot, Query, Sort};
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

fn parse_query(params: &HashMap<String, String>) -> Result<Query, ApiError> {
    let mut err = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        "the query has invalid parameters",
    );
    let sort = match params.get("sort").map(String::as_str) {
        None | Some("") | Some("featured") => Sort::Featured,
        Some("name") => Sort::Name,
        Some("updated") => Sort::Updated,
        Some(other) => {
            err = err.field(
                "sort",
                format!("`{other}` is not a sort; use featured, name or updated"),
            );
            Sort::Featured
        }
    };
    for key in params.keys() {
        if !["q", "category", "tag", "sort"].contains(&key.as_str()) {
            err = err.field(key, "unknown parameter; known: q, category, tag, sort");
        }
    }
    if !err.fields.is_empty() {
        return Err(err);
    }
    let non_empty = |k: &str| params.get(k).filter(|v| !v.trim().is_empty()).cloned();
    Ok(Query {
        q: non_empty("q"),
        category: non_empty("category"),
        tag: non_empty("tag"),
        sort,
    })
}

async fn list_apps(state: ApiState, params: HashMap<String, String>) -> ApiResult {
    let query = parse_query(&params)?;
    let snap = snapshot(&state)?;
    let apps: Vec<Value> = snap
        .search(&query)
        .into_iter()
        .map(|a| app_summary(a))
        .collect();
    ok_json(&json!({
        "apps": apps,
        "total": apps.len(),
        "categories": snap.index().categories(),
        "tags": snap.index().tags(),
    }))
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

/// Every `/api` route.
pub fn routes(
    state: ApiState,
) -> impl Filter<Extract = (WarpResponse,), Error = warp::Rejection> + Clone {
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
        .and(with_state)
        .and_then(|s| respond(refresh_catalog(s)));
    health
        .or(apps)
        .unify()
        .or(app)
        .unify()
        .or(icon)
        .unify()
        .or(catalog)
        .unify()
        .or(refresh)
        .unify()
}

/// Turns warp's rejections into the API's error shape.
pub async fn recover(rejection: warp::Rejection) -> Result<WarpResponse, Infallible> {
    let err = if rejection.is_not_found() {
        ApiError::not_found("no such page or API path")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that HTTP method",
        )
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
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
