//! Installed apps: the list, one install with its live state from PVE, the upgrade plan, kept
//! volumes, and the reveal of secret outputs.

use super::*;

/// What an upgrade of an install would do, for the user to read before asking for it.
pub(super) async fn upgrade_plan(state: ApiState, id: i64) -> ApiResult {
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
        format!(
            "check that container {} is still the store's",
            install
                .ctid
                .map_or_else(|| "?".to_string(), |c| c.to_string())
        ),
        "take a PVE snapshot of the container (where its storage cannot, a PVE backup instead)"
            .to_string(),
        format!(
            "push the scripts of {} {} and run {}",
            app.manifest.id(),
            app.manifest.version(),
            p.upgrade
                .as_ref()
                .map(|u| u.to_string())
                .unwrap_or_else(|| "-".into())
        ),
    ];
    if p.healthcheck.is_some() {
        steps.push("run the health check".into());
    }
    steps.push(
        "on failure, roll back to the snapshot (or restore the backup); on success, remove the snapshot (unless you keep it)".into(),
    );
    ok_json(&json!({"install_id": id, "check": check, "steps": steps,
        "commit": snapshot.source().commit, "manifest_sha256": app.manifest_sha256}))
}

/// Data volumes kept by uninstalls, waiting for a later install of their app.
pub(super) async fn list_volumes(state: ApiState) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    let kept = read(move || store.kept_volumes(None)).await?;
    ok_json(&json!({"volumes": kept}))
}

/// `POST /api/installs/{id}/outputs/{key}/reveal` `{"password": "..."}`: a secret output (a
/// generated password) in clear, for the person who is logged in and gives the password again;
/// every reveal is in the service log, without the value.
pub(super) async fn reveal_output(
    state: ApiState,
    id: i64,
    key: String,
    remote: Option<std::net::SocketAddr>,
    body: Bytes,
) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let req: params::RevealBody = if body.is_empty() {
        params::RevealBody::default()
    } else {
        params::body(&body)?
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
pub(super) fn install_view(
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

pub(super) async fn list_installs(state: ApiState) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    let (installs, policies, attachments, userland) = read(move || {
        Ok((
            store.installs()?,
            store.update_policies()?,
            store.gpu_attachments()?,
            store.gpu_userland()?,
        ))
    })
    .await?;
    let drift = crate::gpu_drift::compute(&installs, &attachments, &userland, &state.gpus.status());
    let snapshot = state.catalog.snapshot();
    // The run state of each container, from PVE in one call; unknown when PVE does not answer.
    let live = jobs.container_states().await.ok();
    let shown: Vec<Value> = installs
        .iter()
        .map(|i| {
            let mut v = install_view(i, snapshot.as_ref());
            v["update_policy"] =
                policy_view(&state, policies.iter().find(|p| p.install_id == i.id));
            v["gpu_drift"] = drift_view(drift.get(&i.id));
            v["container_status"] = match (&live, i.ctid) {
                (Some(map), Some(ctid)) if i.status != "removed" => json!(map
                    .get(&u64::from(ctid.get()))
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
pub(super) async fn get_install(state: ApiState, id: i64) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    let gpus = state.gpus.clone();
    let (install, history, policy, drift) = read(move || {
        let Some(install) = store.install(id)? else {
            return Ok(None);
        };
        let history = store.install_jobs(&install)?;
        let policy = store.update_policy(id)?;
        let drift = crate::gpu_drift::compute(
            std::slice::from_ref(&install),
            &store.gpu_attachments()?,
            &store.gpu_userland()?,
            &gpus.status(),
        );
        Ok(Some((install, history, policy, drift)))
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no install {id}")))?;
    let mut view = install_view(&install, state.catalog.snapshot().as_ref());
    view["update_policy"] = policy_view(&state, policy.as_ref());
    view["gpu_drift"] = drift_view(drift.get(&id));
    view["jobs"] = json!(history);
    let live = match install.ctid {
        Some(ctid) if install.status != "removed" => {
            match jobs.container(ctid).await {
                Ok(c) => {
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
                Err(e) => json!({"error": e}),
            }
        }
        _ => Value::Null,
    };
    view["container"] = live;
    ok_json(&view)
}

/// An install's GPU drift as the API shows it: kind, message and the details.
fn drift_view(d: Option<&Vec<appstore_core::gpu_drift::Drift>>) -> Value {
    Value::Array(
        d.into_iter()
            .flatten()
            .map(|x| {
                let mut v = serde_json::to_value(x).unwrap_or_default();
                v["message"] = json!(x.message());
                v
            })
            .collect(),
    )
}

/// An install's update policy as the API shows it (the default when it has none of its own), with
/// the time zone its window is read in.
pub(super) fn policy_view(
    state: &ApiState,
    p: Option<&appstore_actors::store::StoredUpdatePolicy>,
) -> Value {
    let policy = crate::schedules::policy_of(p);
    json!({"mode": policy.mode, "window": policy.window.to_string(), "time_zone": zone_name(state),
        "hold_off_days": policy.hold_off_days})
}

/// A `rootfs` / `mpN` config value as parts: volume, mount point, size.
pub(super) fn volume_view(key: &str, value: &str) -> Value {
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
