//! The API through `warp::test`, in process, without a server or an engine: the reference catalog
//! published on a handle, every answer checked for its status and its error shape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use appstore_actors::{CatalogHandle, CatalogService, GpuHandle};
use appstore_web::api::{ApiState, ROUTER_KEYS};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn app(refreshes: &Arc<AtomicUsize>) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
    app_on(&dir, refreshes)
}

/// The API over the catalog in `dir`.
fn app_on(
    dir: &std::path::Path,
    refreshes: &Arc<AtomicUsize>,
) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    let catalog = CatalogHandle::default();
    catalog.publish(Arc::new(appstore_catalog::load_dir(dir).unwrap()));
    // Refresh requests are counted instead of run.
    let count = Arc::clone(refreshes);
    let state = ApiState {
        catalog: CatalogService::new(catalog, move || {
            count.fetch_add(1, Ordering::SeqCst);
        }),
        jobs: None,
        gpus: GpuHandle::default(),
        updates: tokio::sync::broadcast::channel(4).0,
        gpu_changes: tokio::sync::broadcast::channel(4).0,
        auth: None,
        apps_cache: Default::default(),
        config_summary: Arc::new(serde_json::json!({"mode": "test"})),
        notifier: None,
        drift: tokio::sync::broadcast::channel(4).0,
        gpu_policy: Default::default(),
        demo_gpus: None,
        allowed_hosts: Default::default(),
        time_zone: jiff::tz::TimeZone::UTC,
    };
    appstore_web::server::filter(state)
}

async fn call(
    app: &warp::filters::BoxedFilter<(warp::reply::Response,)>,
    req: warp::test::RequestBuilder,
) -> (u16, Value) {
    let res = req.reply(app).await;
    let status = res.status().as_u16();
    let body = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
    (status, body)
}

fn get(path: &str) -> warp::test::RequestBuilder {
    warp::test::request().method("GET").path(path)
}

/// Every error has the documented shape.
fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["fields"].is_object(), "{body}");
}

/// How many apps the reference catalog has.
fn reference_app_count() -> usize {
    std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog/apps"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn apps_page_sort_and_refuse_bad_parameters_by_name() {
    let app = app(&Default::default());
    let (status, all) = call(&app, get("/api/apps")).await;
    assert_eq!(status, 200);
    let count = reference_app_count();
    assert_eq!(all["total"], count);
    assert_eq!(all["limit"], appstore_web::api::APPS_PAGE);
    // By name: the whole list is in order of the names, and a page is its slice.
    let (_, by_name) = call(&app, get("/api/apps?sort=name&limit=200")).await;
    let names: Vec<String> = by_name["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let ids_of = |v: &Value| -> Vec<String> {
        v["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, page) = call(&app, get("/api/apps?sort=name&limit=2&offset=2")).await;
    assert_eq!(ids_of(&page), ids_of(&by_name)[2..4]);
    assert_eq!(page["total"], count);
    // The same question twice gets the same (cached) answer.
    let (_, again) = call(&app, get("/api/apps?sort=name&limit=2&offset=2")).await;
    assert_eq!(page, again);
    // Without an engine nothing counts as installed: popular falls back to featured, then name.
    let (status, popular) = call(&app, get("/api/apps?sort=popular")).await;
    assert_eq!(status, 200);
    assert!(popular["apps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["installs"] == 0));
    let (status, bad) = call(
        &app,
        get("/api/apps?sort=best&limit=500&offset=x&color=red"),
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&bad, "invalid_query");
    let fields = bad["error"]["fields"].as_object().unwrap();
    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["color", "limit", "offset", "sort"]);
    assert_eq!(fields["limit"], "`500` is not a whole number from 1 to 200");
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_bodies_get_clear_4xx_never_500() {
    let app = app(&Default::default());
    let (status, body) = call(&app, get("/api/nope")).await;
    assert_eq!(status, 404);
    assert_error(&body, "not_found");
    let (status, body) = call(&app, get("/api/jobs/abc")).await;
    assert_eq!(status, 404);
    assert_error(&body, "not_found");
    let (status, body) = call(
        &app,
        warp::test::request()
            .method("DELETE")
            .path("/api/apps")
            .header("content-type", "application/json"),
    )
    .await;
    assert_eq!(status, 405);
    assert_error(&body, "method_not_allowed");
    // Too large: refused before it is read.
    let big = vec![b'x'; 70 * 1024];
    let (status, body) = call(
        &app,
        warp::test::request()
            .method("POST")
            .path("/api/install")
            .header("content-type", "application/json")
            .header("content-length", big.len())
            .body(big),
    )
    .await;
    assert_eq!(status, 413);
    assert_error(&body, "payload_too_large");
    // No engine in this mode: a clear 503, not a crash.
    let (status, body) = call(
        &app,
        warp::test::request()
            .method("POST")
            .path("/api/install")
            .json(&serde_json::json!({"app_id": "radicale"})),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]["code"].is_string());
    let (status, body) = call(&app, get("/api/apps/nope")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["message"], "no app `nope` in the catalog");
    let (status, body) = call(&app, get("/api/debug/bundle?job_id=x")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["fields"]["job_id"],
        "`x` is not a whole number of 1 or more; use a job id from GET /api/jobs"
    );
}

#[tokio::test]
async fn refresh_is_accepted_and_reaches_the_catalog() {
    let refreshes = Arc::new(AtomicUsize::new(0));
    let app = app(&refreshes);
    let (status, body) = call(
        &app,
        warp::test::request()
            .method("POST")
            .path("/api/catalog/refresh")
            .header("content-type", "application/json"),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(body["status"], "refreshing");
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_openapi_document_lists_every_routed_path_and_the_bundle_works_without_an_engine() {
    let app = app(&Default::default());
    let (status, doc) = call(&app, get("/api/openapi.json")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    for (method, path) in ROUTER_KEYS {
        assert!(
            doc["paths"][path][method.to_lowercase()].is_object(),
            "{method} {path} is routed but not documented"
        );
    }
    let res = get("/api/debug/bundle").reply(&app).await;
    assert_eq!(res.status(), 200);
    let bundle: Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!(bundle["config"]["mode"], "test");
    assert_eq!(bundle["catalog"]["apps"], reference_app_count());
    assert!(bundle.get("jobs").is_none(), "no engine, no jobs");
}

/// Against cross-site requests and DNS rebinding, with or without login: a change must be JSON, a
/// foreign `Origin` and a host name the service does not answer to are refused.
#[tokio::test]
async fn cross_site_and_rebound_requests_are_refused() {
    let refreshes = Arc::new(AtomicUsize::new(0));
    let app = app(&refreshes);
    let refresh = || {
        warp::test::request()
            .method("POST")
            .path("/api/catalog/refresh")
    };
    let (status, body) = call(&app, refresh()).await;
    assert_eq!(status, 415, "{body}");
    assert_error(&body, "content_type");
    let (status, body) = call(
        &app,
        refresh().header("content-type", "application/x-www-form-urlencoded"),
    )
    .await;
    assert_eq!(status, 415, "a plain form cannot change anything: {body}");
    let (status, body) = call(
        &app,
        refresh()
            .header("content-type", "application/json")
            .header("host", "127.0.0.1:8088")
            .header("origin", "http://evil.example"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_error(&body, "origin");
    let (status, body) = call(
        &app,
        warp::test::request()
            .path("/api/apps")
            .header("host", "rebound.evil.example:8088"),
    )
    .await;
    assert_eq!(
        status, 403,
        "a DNS-rebound name reads nothing either: {body}"
    );
    let (status, _) = call(
        &app,
        refresh()
            .header("content-type", "application/json")
            .header("host", "127.0.0.1:8088")
            .header("origin", "http://127.0.0.1:8088"),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        refreshes.load(Ordering::SeqCst),
        1,
        "only the accepted request reached the catalog"
    );
}

/// A 405 says which methods the path takes (`Allow`, RFC 9110); an unknown path stays a 404.
#[tokio::test]
async fn a_wrong_method_is_answered_with_the_allowed_ones() {
    let app = app(&Default::default());
    let json = |m: &str, p: &str| {
        warp::test::request()
            .method(m)
            .path(p)
            .header("content-type", "application/json")
    };
    for (method, path, allow) in [
        ("DELETE", "/api/apps", "GET"),
        ("PUT", "/api/install", "POST"),
        ("GET", "/api/catalog/refresh", "POST"),
        ("DELETE", "/api/demo/gpus", "GET, POST"),
        ("DELETE", "/api/installs/7", "GET"),
    ] {
        let res = json(method, path).reply(&app).await;
        assert_eq!(res.status().as_u16(), 405, "{method} {path}");
        assert_eq!(
            res.headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_string()),
            Some(allow.to_string()),
            "{method} {path}"
        );
    }
    let (status, _) = call(&app, json("DELETE", "/api/nope")).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, get("/api/installs/x/y/z")).await;
    assert_eq!(status, 404);
}

/// `POST /api/login` takes the body its document describes even without login.
#[tokio::test]
async fn login_needs_its_body_even_without_login() {
    let app = app(&Default::default());
    let login = || {
        warp::test::request()
            .method("POST")
            .path("/api/login")
            .header("content-type", "application/json")
    };
    let (status, body) = call(&app, login()).await;
    assert_eq!(status, 411, "no body at all: {body}");
    let (status, body) = call(&app, login().header("content-length", "0")).await;
    assert_eq!(status, 400, "an empty body: {body}");
    assert_eq!(body["error"]["fields"]["password"], "required");
    let (status, body) = call(&app, login().body(r#"{"password":"x"}"#)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"], "none");
}

/// An app for a newer store says so on its page: the UI shows the sentence and no install.
#[tokio::test]
async fn an_app_for_a_newer_store_shows_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let app_dir = dir.path().join("apps/future");
    std::fs::create_dir_all(&app_dir).unwrap();
    std::fs::write(
        app_dir.join("app.yml"),
        "id: future\nname: Future\ndescription: Needs a newer store\nversion: 1.0.0\nrequires:\n  store: \">=99\"\nlxc: { ostemplate: debian-12 }\nprovision: { script: install.sh }\n",
    )
    .unwrap();
    std::fs::write(app_dir.join("install.sh"), "echo ok\n").unwrap();
    let app = app_on(dir.path(), &Default::default());
    let (status, body) = call(&app, get("/api/apps/future")).await;
    assert_eq!(status, 200, "{body}");
    let unmet = body["unmet_requirements"].as_array().unwrap();
    assert_eq!(unmet.len(), 1, "{body}");
    assert!(unmet[0]
        .as_str()
        .unwrap()
        .starts_with("needs PVE App Store >=99; this store is "));
    let (_, radicale) = call(&self::app(&Default::default()), get("/api/apps/radicale")).await;
    assert_eq!(radicale["unmet_requirements"], serde_json::json!([]));
}
