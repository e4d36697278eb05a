//! Notification targets: those of `config.yml` (shown, not changed here) and those added in the UI
//! (their tokens sealed, never shown again), with a test that sends to one or all.

use super::*;
use appstore_core::notify::{Notification, NotifyEvent, NotifyTarget};

/// A target added in the UI: the target and, if it needs one, its token.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTarget {
    /// A name to tell targets apart.
    pub name: String,
    /// `ntfy`, `gotify` or `webhook`.
    pub kind: appstore_core::notify::NotifyKind,
    /// ntfy: the topic's URL; Gotify: the server's URL; webhook: the URL to POST to.
    pub url: String,
    /// The events it gets; all of them when left out.
    #[serde(default)]
    pub events: Option<Vec<NotifyEvent>>,
    /// ntfy access token, Gotify app token, or a bearer token for a webhook (kept sealed).
    #[serde(default)]
    pub token: Option<String>,
}

/// What the test sends to.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    /// A target added in the UI; every target when left out.
    #[serde(default)]
    pub id: Option<i64>,
}

fn notifier(state: &ApiState) -> Result<Arc<crate::notify::Notifier>, ApiError> {
    state.notifier.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "engine_unavailable",
            "notifications need the job engine, which this mode does not run",
        )
    })
}

fn view(t: &crate::notify::Target) -> Value {
    json!({"id": t.id, "source": t.source, "name": t.target.name, "kind": t.target.kind, "url": t.target.url,
           "events": t.target.events, "has_token": t.has_token()})
}

/// `GET /api/notifications`.
pub(super) async fn list(state: ApiState) -> ApiResult {
    let n = notifier(&state)?;
    let targets: Vec<Value> = n.targets().await.iter().map(view).collect();
    ok_json(&json!({"targets": targets, "events": NotifyEvent::ALL}))
}

/// `POST /api/notifications`: adds a target (201).
pub(super) async fn add(state: ApiState, body: Bytes) -> ApiResult {
    let n = notifier(&state)?;
    let jobs = jobs_of(&state)?;
    let req: NewTarget = params::body(&body)?;
    let target = NotifyTarget {
        name: req.name.trim().to_string(),
        kind: req.kind,
        url: req.url.trim().to_string(),
        events: req.events,
        token_file: None,
    };
    let problems = target.check();
    if !problems.is_empty() {
        let message = problems
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
        for (k, v) in problems {
            err = err.field(&k, v);
        }
        return Err(err);
    }
    let sealed = req
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| n.seal(t));
    let text = serde_json::to_string(&target).unwrap_or_default();
    let store = jobs.store.clone();
    let id = read(move || store.add_notify_target(&text, sealed.as_deref())).await?;
    Ok(warp::reply::with_status(
        warp::reply::json(&json!({"id": id, "name": target.name})),
        StatusCode::CREATED,
    )
    .into_response())
}

/// `POST /api/notifications/{target_id}/delete`.
pub(super) async fn delete(state: ApiState, id: i64) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    if read(move || store.remove_notify_target(id)).await? {
        ok_json(&json!({"deleted": id}))
    } else {
        Err(ApiError::not_found(format!(
            "no notification target {id} added in the UI (targets of config.yml are changed there)"
        )))
    }
}

/// `POST /api/notifications/test`: a test notification to one target or all; each result.
pub(super) async fn test(state: ApiState, body: Bytes) -> ApiResult {
    let n = notifier(&state)?;
    let req: TestBody = if body.iter().all(u8::is_ascii_whitespace) {
        TestBody::default()
    } else {
        params::body(&body)?
    };
    let targets: Vec<_> = n
        .targets()
        .await
        .into_iter()
        .filter(|t| req.id.is_none() || t.id == req.id)
        .collect();
    if targets.is_empty() {
        return Err(ApiError::not_found(match req.id {
            Some(id) => format!("no notification target {id}"),
            None => "no notification targets; add one first".to_string(),
        }));
    }
    let note = Notification {
        event: NotifyEvent::Test,
        title: "PVE App Store: test notification".into(),
        message: "If you read this, the target works.".into(),
        install_id: None,
        app_id: None,
        job_id: None,
    };
    let mut results = Vec::new();
    for t in &targets {
        let r = n.send_to(t, &note).await;
        results.push(json!({"name": t.target.name, "ok": r.is_ok(), "error": r.err()}));
    }
    ok_json(&json!({"results": results}))
}

/// The filters of this module's routes, in the order of their `ROUTER_KEYS` entries.
pub(super) fn filters(state: ApiState) -> [warp::filters::BoxedFilter<(WarpResponse,)>; 4] {
    let with_state = warp::any().map(move || state.clone());
    let base = warp::path("api").and(warp::path("notifications"));
    let list_route = base
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|s| respond(list(s)));
    let add_route = base
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::body::content_length_limit(8 * 1024))
        .and(warp::body::bytes())
        .and_then(|s, b| respond(add(s, b)));
    let delete_route = base
        .and(warp::path::param::<i64>())
        .and(warp::path("delete"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and_then(|id, s| respond(delete(s, id)));
    let test_route = base
        .and(warp::path("test"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state)
        .and(warp::body::content_length_limit(4 * 1024))
        .and(warp::body::bytes())
        .and_then(|s, b| respond(test(s, b)));
    [
        list_route.boxed(),
        add_route.boxed(),
        delete_route.boxed(),
        test_route.boxed(),
    ]
}
