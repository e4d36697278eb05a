//! GPU resources: the inventory with attachments, the install form's GPU options, and the demo's
//! simulated plug and unplug.

use super::*;

/// `GET /api/gpus`: the host's GPU inventory.
/// What the install form's GPU step offers for one app: each GPU with its vendor, name, PCI address,
/// users, and whether (with which profile) or why not the app can use it; the auto-select pick.
pub(super) async fn gpu_options(state: ApiState, id: String) -> ApiResult {
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
pub(super) async fn demo_gpus_list(state: ApiState) -> ApiResult {
    let demo = state
        .demo_gpus
        .as_ref()
        .ok_or_else(|| ApiError::not_found("GPU simulation exists only in the demo"))?;
    ok_json(&json!({"gpus": demo.list()}))
}

/// Plugs a simulated GPU in or out (`{"pci_address": "...", "present": false}`).
pub(super) async fn demo_gpus_set(state: ApiState, body: Bytes) -> ApiResult {
    let demo = state
        .demo_gpus
        .as_ref()
        .ok_or_else(|| ApiError::not_found("GPU simulation exists only in the demo"))?;
    let plug: params::PlugBody = params::body(&body)?;
    let demo = Arc::clone(demo);
    type Work = Box<dyn FnOnce() -> Result<(), String> + Send>;
    let (field, work): (&str, Work) = match (
        plug.nvidia_driver_version,
        plug.pci_address,
        plug.present,
    ) {
        (Some(v), None, None) => (
            "nvidia_driver_version",
            Box::new(move || demo.set_nvidia_driver(&v)),
        ),
        (None, Some(pci), Some(present)) => {
            ("pci_address", Box::new(move || demo.set(&pci, present)))
        }
        _ => return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "give pci_address and present (plug a card in or out), or nvidia_driver_version alone",
        )
        .field(
            "pci_address",
            "give it with present, or give nvidia_driver_version alone",
        )),
    };
    let done = tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match done {
        Ok(()) => Ok(warp::reply::with_status(
            warp::reply::json(&json!({"status": "changed"})),
            StatusCode::ACCEPTED,
        )
        .into_response()),
        Err(e) => Err(
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.clone()).field(field, e),
        ),
    }
}

/// The GPU inventory, with the containers each device node is attached to (`attachments`).
pub(super) async fn gpu_inventory(state: ApiState) -> ApiResult {
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
