//! Catalog resources: the app list (paged, from a cache of rendered pages), one app, its icon,
//! the catalog status and refresh.

use super::*;

/// Rendered `GET /api/apps` answers, valid for one catalog snapshot and one set of install counts;
/// a new snapshot or new counts empty it. Counts are re-read from the store at most every few
/// seconds, so the "popular" order follows installs without a store read per request.
#[derive(Debug, Default)]
pub struct AppsCache {
    inner: std::sync::Mutex<AppsCacheInner>,
}

#[derive(Debug, Default)]
pub(super) struct AppsCacheInner {
    /// The snapshot the pages were rendered from (held, so its identity cannot be reused).
    snapshot: Option<Arc<CatalogSnapshot>>,
    /// Goes up whenever the pages are emptied: a page rendered before is not stored after.
    generation: u64,
    counts: Arc<HashMap<String, u64>>,
    counts_read: Option<std::time::Instant>,
    pages: HashMap<String, Bytes>,
}

/// How often install counts are re-read for the "popular" order.
pub(super) const COUNTS_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// Rendered pages kept at most; past it the cache starts over.
pub(super) const CACHED_PAGES: usize = 1024;

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

/// Apps per page unless `limit` says otherwise (the most is in [`params::AppsParams`]).
pub const APPS_PAGE: usize = 48;

/// A parsed `GET /api/apps` query.
pub(super) struct AppsQuery {
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

pub(super) fn parse_query(params: &HashMap<String, String>) -> Result<AppsQuery, ApiError> {
    let p: params::AppsParams = params::query(params)?;
    Ok(AppsQuery {
        query: Query {
            q: p.q,
            category: p.category,
            tag: p.tag,
            sort: p.sort,
        },
        offset: p.offset as usize,
        limit: p.limit as usize,
    })
}

/// Install counts for the "popular" order: cached, re-read every few seconds; none without an
/// engine.
pub(super) async fn install_counts(state: &ApiState) -> Arc<HashMap<String, u64>> {
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

pub(super) async fn list_apps(state: ApiState, params: HashMap<String, String>) -> ApiResult {
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

pub(super) fn find_app(snap: &CatalogSnapshot, id: &str) -> Result<Arc<CatalogApp>, ApiError> {
    snap.app(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no app `{id}` in the catalog")))
}

/// What this store and this node lack of an app's `requires`: one sentence each. The node's
/// release comes from the cached discovery; without an engine only the store's version is checked.
pub(super) async fn unmet_requirements(state: &ApiState, app: &CatalogApp) -> Vec<String> {
    let requires = app.manifest.requires();
    let pve = match (&requires.pve, &state.jobs) {
        (Some(_), Some(jobs)) => jobs
            .discovery(false)
            .await
            .ok()
            .and_then(|d| d.version.clone()),
        _ => None,
    };
    let mut unmet = requires.unmet(appstore_core::STORE_VERSION, pve.as_deref());
    if state.jobs.is_none() {
        unmet.retain(|u| !u.starts_with("needs Proxmox VE"));
    }
    unmet
}

pub(super) async fn get_app(state: ApiState, id: String) -> ApiResult {
    let snap = snapshot(&state)?;
    let app = find_app(&snap, &id)?;
    let unmet = unmet_requirements(&state, &app).await;
    ok_json(&json!({
        "unmet_requirements": unmet,
        "app": app_summary(&app),
        "manifest": app.manifest,
        "readme": app.readme,
        "manifest_sha256": app.manifest_sha256,
        "files": app.files,
    }))
}

pub(super) async fn get_icon(state: ApiState, id: String) -> ApiResult {
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

pub(super) async fn catalog_status(state: ApiState) -> ApiResult {
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

pub(super) async fn refresh_catalog(state: ApiState) -> ApiResult {
    state.catalog.refresh();
    Ok(warp::reply::with_status(
        warp::reply::json(&json!({"status": "refreshing"})),
        StatusCode::ACCEPTED,
    )
    .into_response())
}
