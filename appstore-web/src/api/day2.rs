//! Day-2 routes of an installed app: container controls (power, resources, start at boot) as jobs,
//! and the usage history from PVE's RRD data.

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

/// The filters of this module's routes, in the order of their `ROUTER_KEYS` entries.
pub(super) fn filters(state: ApiState) -> [warp::filters::BoxedFilter<(WarpResponse,)>; 2] {
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
        .and(with_state)
        .and(warp::query::<HashMap<String, String>>())
        .and_then(|id, s, q| respond(history(s, id, q)));
    [control.boxed(), history.boxed()]
}
