//! Day-2 routes of an installed app: container controls (power, resources, start at boot) as jobs,
//! the usage history from PVE's RRD data, and the app's own service log (its journal, read inside
//! the container through the root helper), once or followed.

use super::*;
use appstore_core::control::Control;

/// The install `id` with its container, or a 404 / 409 that says why there is none.
async fn install_with_container(
    jobs: &JobsService,
    id: i64,
) -> Result<(appstore_actors::store::InstallRecord, appstore_core::Ctid), ApiError> {
    let store = jobs.store.clone();
    let install = read(move || store.install(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no install {id}")))?;
    match install.ctid {
        Some(ctid) if install.status == "installed" => Ok((install, ctid)),
        _ => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("install {id} is {} and has no container", install.status),
        )),
    }
}

/// `POST /api/installs/{install_id}/control`: a `control` job (202), or the request's problems on
/// their fields (400).
pub(super) async fn submit_control(state: ApiState, id: i64, body: Bytes) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let control: Control = params::body(&body)?;
    jobs.control(id, control)
        .await
        .map(job_accepted)
        .map_err(submit_error)
}

/// `GET /api/installs/{install_id}/history?timeframe=hour|day|week`: PVE's RRD rows for the
/// container, oldest first; rows without data carry only `time`.
pub(super) async fn history(state: ApiState, id: i64, query: HashMap<String, String>) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let p: params::HistoryParams = params::query(&query)?;
    let (_, ctid) = install_with_container(&jobs, id).await?;
    let rows = jobs
        .history(ctid, p.timeframe.into())
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "pve_unavailable", e))?;
    ok_json(&json!({"install_id": id, "ctid": ctid, "timeframe": p.timeframe, "rows": rows}))
}

/// The install's container, the systemd unit its app's manifest names, and what its log lines are
/// redacted with (the install's secrets).
async fn app_service(
    state: &ApiState,
    jobs: &JobsService,
    id: i64,
) -> Result<(appstore_core::Ctid, String, appstore_core::redact::Redactor), ApiError> {
    let (install, ctid) = install_with_container(jobs, id).await?;
    let manifest = state
        .catalog
        .snapshot()
        .and_then(|s| s.app(&install.app_id).map(|a| a.manifest.clone()));
    let (manifest, unit) = manifest
        .and_then(|m| {
            let unit = m.service()?.to_string();
            Some((m, unit))
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_service",
                format!(
                    "the manifest of {} names no service unit (`service`), so there is no app log to show; the container's own log is in PVE",
                    install.app_id
                ),
            )
        })?;
    let redactor = jobs.app_redactor(install, manifest).await;
    Ok((ctid, unit, redactor))
}

fn helper_error(e: String) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "helper_failed", e)
}

/// `GET /api/installs/{install_id}/app-log?lines=N`: the newest entries of the app's service log.
pub(super) async fn app_log(state: ApiState, id: i64, query: HashMap<String, String>) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let p: params::AppLogParams = params::query(&query)?;
    let (ctid, unit, redactor) = app_service(&state, &jobs, id).await?;
    let (lines, cursor) = jobs
        .app_log(ctid, &unit, p.lines, None, &redactor)
        .await
        .map_err(helper_error)?;
    ok_json(&json!({"install_id": id, "unit": unit, "lines": lines, "cursor": cursor}))
}

/// How often a followed log asks for new entries.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /api/installs/{install_id}/app-log/stream?lines=N`: the newest entries, then each new one
/// as it is written (`line` events), until the client goes away; `error` when a read fails.
pub(super) async fn app_log_stream(
    state: ApiState,
    id: i64,
    query: HashMap<String, String>,
) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let p: params::AppLogParams = params::query(&query)?;
    let (ctid, unit, redactor) = app_service(&state, &jobs, id).await?;
    // Read once before answering, so a refusal is an HTTP error rather than an event.
    let (first, cursor) = jobs
        .app_log(ctid, &unit, p.lines, None, &redactor)
        .await
        .map_err(helper_error)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<warp::sse::Event>(256);
    let line = |l: String| warp::sse::Event::default().event("line").data(l);
    // The reader runs until the client goes away (its channel closes).
    tokio::spawn(async move {
        let mut cursor = cursor;
        for l in first {
            if tx.send(line(l)).await.is_err() {
                return;
            }
        }
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            if tx.is_closed() {
                return;
            }
            let event = match jobs
                .app_log(
                    ctid,
                    &unit,
                    appstore_core::journal::MAX_LINES,
                    cursor.clone(),
                    &redactor,
                )
                .await
            {
                Ok((lines, next)) => {
                    if next.is_some() {
                        cursor = next;
                    }
                    for l in lines {
                        if tx.send(line(l)).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                Err(e) => warp::sse::Event::default().event("error").data(e),
            };
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(warp::sse::reply(warp::sse::keep_alive().stream(events)).into_response())
}

/// `POST /api/installs/{install_id}/update-policy`: off, notify or automatic, with the
/// maintenance window and hold-off of automatic upgrades.
pub(super) async fn set_update_policy(state: ApiState, id: i64, body: Bytes) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let p: params::UpdatePolicyBody = params::body(&body)?;
    let default = appstore_core::update_policy::UpdatePolicy::default();
    let window = match p.window.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) => appstore_core::schedule::Window::parse(w).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("window: {e}"),
            )
            .field("window", e)
        })?,
        None => default.window,
    };
    let mode = serde_json::to_value(p.mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "notify".into());
    let stored = appstore_actors::store::StoredUpdatePolicy {
        install_id: id,
        mode,
        window: window.to_string(),
        hold_off_days: p.hold_off_days.unwrap_or(default.hold_off_days),
    };
    let store = jobs.store.clone();
    let saved = stored.clone();
    read(move || {
        store
            .install(id)?
            .map(|_| store.set_update_policy(&saved))
            .transpose()
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no install {id}")))?;
    ok_json(
        &json!({"install_id": id, "update_policy": super::installs::policy_view(&state, Some(&stored))}),
    )
}

/// `POST /api/installs/{install_id}/gpu-sync`: a GPU sync job (attach again from the host's
/// inventory, the app's `gpu_sync` script, the GPU check and the health check).
pub(super) async fn gpu_sync(state: ApiState, id: i64) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let request = MaintainRequest {
        install_id: id,
        ..Default::default()
    };
    jobs.maintain(JobKind::GpuSync, request)
        .await
        .map(job_accepted)
        .map_err(submit_error)
}

/// The filters of this module's routes, in the order of their `ROUTER_KEYS` entries.
pub(super) fn filters(state: ApiState) -> [warp::filters::BoxedFilter<(WarpResponse,)>; 6] {
    let with_state = warp::any().map(move || state.clone());
    let install = warp::path("api")
        .and(warp::path("installs"))
        .and(warp::path::param::<i64>());
    let control = install
        .and(warp::path("control"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::body::content_length_limit(4 * 1024))
        .and(warp::body::bytes())
        .and_then(|id, s, b| respond(submit_control(s, id, b)));
    let history = install
        .and(warp::path("history"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(|id, s, q| respond(history(s, id, q)));
    let log = install
        .and(warp::path("app-log"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(|id, s, q| respond(app_log(s, id, q)));
    let log_stream = install
        .and(warp::path("app-log"))
        .and(warp::path("stream"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(|id, s, q| respond(app_log_stream(s, id, q)));
    let sync = install
        .and(warp::path("gpu-sync"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and_then(|id, s| respond(gpu_sync(s, id)));
    let policy = install
        .and(warp::path("update-policy"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state)
        .and(warp::body::content_length_limit(4 * 1024))
        .and(warp::body::bytes())
        .and_then(|id, s, b| respond(set_update_policy(s, id, b)));
    [
        control.boxed(),
        history.boxed(),
        log.boxed(),
        log_stream.boxed(),
        policy.boxed(),
        sync.boxed(),
    ]
}
