//! System resources: health, node discovery and the debug bundle.

use super::*;

/// `GET /api/system/discovery`: pool, storages, bridges and templates as the store's token sees them
/// (cached 30 s; `?refresh=1` reads PVE again), and the GPUs.
pub(super) async fn discovery(state: ApiState, q: HashMap<String, String>) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let refresh = params::query::<params::DiscoveryParams>(&q)?.refresh;
    let d = jobs.discovery(refresh).await.map_err(engine_unavailable)?;
    let gpus = state.gpus.status();
    let host = tokio::task::spawn_blocking(appstore_gpu::host_resources)
        .await
        .ok();
    ok_json(&json!({"pve": *d, "gpus": gpus, "host": host}))
}

/// Jobs the debug bundle describes.
pub(super) const BUNDLE_JOBS: i64 = 20;

/// The debug bundle (a JSON download): version, redacted config, catalog status, GPU inventory, the
/// last jobs with their transitions, the last service log lines, and the last log lines of one job
/// (`job_id`, by default the newest failed job, else the newest job).
pub(super) async fn debug_bundle(state: ApiState, params: HashMap<String, String>) -> ApiResult {
    let job_id = params::query::<params::BundleParams>(&params)?.job_id;
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
                    .find(|j| j.state == appstore_core::job::JobState::Failed)
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

pub(super) async fn health() -> ApiResult {
    ok_json(&json!({"status": "ok", "version": appstore_core::STORE_VERSION}))
}
