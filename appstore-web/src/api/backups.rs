//! Backups of installed apps: each install's backups as PVE lists them (with what the store knows
//! of each: app and version), a backup now, the install's backup settings (storage, mode,
//! retention, schedule), every backup the store made (restorable after an uninstall too), and
//! restores, into a new container or over the install's own.

use super::*;
use appstore_actors::engine::{BackupRequest, RestoreRequest};
use appstore_actors::store::BackupPolicy;
use appstore_core::schedule::Schedule;

/// What `POST /api/installs/{install_id}/backup` takes: each field falls back to the install's
/// backup settings.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupNow {
    /// The backup storage (content `backup`).
    #[serde(default)]
    pub storage: Option<String>,
    /// `snapshot`, `suspend` or `stop`.
    #[serde(default)]
    pub mode: Option<appstore_pve::types::BackupMode>,
    /// How many backups to keep; 0 keeps all.
    #[serde(default)]
    pub keep_last: Option<u32>,
}

/// An install's backup settings as the API takes them.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// The backup storage (content `backup`).
    pub storage: String,
    /// `snapshot`, `suspend` or `stop`.
    #[serde(default)]
    pub mode: appstore_pve::types::BackupMode,
    /// How many backups to keep; 0 keeps all.
    #[schemars(range(max = 1000))]
    pub keep_last: u32,
    /// `off`, `daily HH:MM` or `weekly <day> HH:MM` (the node's time zone, `time_zone` in the
    /// answer).
    pub schedule: String,
}

/// Settings of an install without its own: no schedule, the newest three kept, on `local`.
fn default_policy(install_id: i64) -> BackupPolicy {
    BackupPolicy {
        install_id,
        storage: "local".into(),
        mode: "snapshot".into(),
        keep_last: 3,
        schedule: "off".into(),
    }
}

/// `GET /api/installs/{install_id}/backups`.
pub(super) async fn list(state: ApiState, id: i64) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    let (install, policy, records) = read(move || {
        Ok((
            store.install(id)?,
            store.backup_policy(id)?,
            store.backups_of(id)?,
        ))
    })
    .await?;
    let install = install.ok_or_else(|| ApiError::not_found(format!("no install {id}")))?;
    let policy = policy.unwrap_or_else(|| default_policy(id));
    // What PVE has on every storage the store backed this install up to (the archives are the
    // truth: one removed by hand in PVE is not listed).
    let mut storages: Vec<String> = records.iter().map(|r| r.storage.clone()).collect();
    storages.push(policy.storage.clone());
    storages.sort();
    storages.dedup();
    let mut backups = Vec::new();
    let mut errors = Vec::new();
    if let Some(ctid) = install.ctid {
        for s in &storages {
            match jobs.list_backups(s, ctid).await {
                Ok(list) => {
                    for b in list {
                        let known = records.iter().find(|r| r.volid == b.volid);
                        backups.push(json!({"volid": b.volid, "storage": s, "size": b.size, "ctime": b.ctime,
                            "notes": b.notes, "protected": b.protected.unwrap_or(0) == 1,
                            "version": known.map(|r| r.version.clone()), "app_id": known.map(|r| r.app_id.clone()),
                            "restorable": known.is_some()}));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    backups.sort_by_key(|b| std::cmp::Reverse(b["ctime"].as_u64().unwrap_or(0)));
    // Host directories bind-mounted into the container are not in a PVE backup.
    let host_dirs: Vec<Value> = match install.ctid {
        Some(ctid) if install.status == "installed" => match jobs.container(ctid).await {
            Ok(c) => c
                .config
                .iter()
                .filter(|(k, v)| k.starts_with("mp") && v.starts_with('/'))
                .map(|(k, v)| volume_view(k, v))
                .collect(),
            Err(_) => Vec::new(),
        },
        _ => Vec::new(),
    };
    let schedule = Schedule::parse(&policy.schedule).ok();
    ok_json(
        &json!({"install_id": id, "policy": policy, "schedule": schedule,
        "time_zone": zone_name(&state),
        "backups": backups, "host_directories": host_dirs, "errors": errors}),
    )
}

/// `POST /api/installs/{install_id}/backup`: a backup job now.
pub(super) async fn backup_now(state: ApiState, id: i64, body: Bytes) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let req: BackupNow = if body.iter().all(u8::is_ascii_whitespace) {
        BackupNow::default()
    } else {
        params::body(&body)?
    };
    let store = jobs.store.clone();
    let policy = read(move || store.backup_policy(id))
        .await?
        .unwrap_or_else(|| default_policy(id));
    let request = BackupRequest {
        install_id: id,
        storage: req.storage.unwrap_or(policy.storage),
        mode: req
            .mode
            .unwrap_or_else(|| appstore_pve::types::BackupMode::parse(&policy.mode)),
        keep_last: req.keep_last.unwrap_or(policy.keep_last),
    };
    jobs.backup(request)
        .await
        .map(job_accepted)
        .map_err(submit_error)
}

/// `POST /api/installs/{install_id}/backup-policy`: the install's backup settings.
pub(super) async fn set_policy(state: ApiState, id: i64, body: Bytes) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let p: PolicyBody = params::body(&body)?;
    let mut fields = BTreeMap::new();
    if let Err(e) = Schedule::parse(&p.schedule) {
        fields.insert("schedule".to_string(), e);
    }
    if p.storage.trim().is_empty() {
        fields.insert(
            "storage".to_string(),
            "name a storage with content `backup`, such as `local`".to_string(),
        );
    }
    if !fields.is_empty() {
        let message = fields
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message);
        for (k, v) in fields {
            err = err.field(&k, v);
        }
        return Err(err);
    }
    let store = jobs.store.clone();
    let policy = BackupPolicy {
        install_id: id,
        storage: p.storage.trim().to_string(),
        mode: p.mode.as_str().to_string(),
        keep_last: p.keep_last,
        schedule: Schedule::parse(&p.schedule)
            .map(|s| s.to_string())
            .unwrap_or_default(),
    };
    let saved = policy.clone();
    read(move || {
        store
            .install(id)?
            .map(|_| store.set_backup_policy(&saved))
            .transpose()
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no install {id}")))?;
    ok_json(&json!({"policy": policy}))
}

/// `GET /api/backups`: every backup the store made, with its install's state (a backup of an
/// uninstalled app can be restored into a new container).
pub(super) async fn all(state: ApiState) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let store = jobs.store.clone();
    let (installs, lists) = read(move || {
        let installs = store.installs()?;
        let mut lists = Vec::new();
        for i in &installs {
            lists.extend(store.backups_of(i.id)?);
        }
        Ok((installs, lists))
    })
    .await?;
    let shown: Vec<Value> = lists
        .iter()
        .map(|b| {
            let status = installs
                .iter()
                .find(|i| i.id == b.install_id)
                .map(|i| i.status.clone());
            json!({"volid": b.volid, "install_id": b.install_id, "install_status": status, "app_id": b.app_id,
                   "version": b.version, "ctid": b.ctid, "storage": b.storage, "created_at": b.created_at})
        })
        .collect();
    ok_json(&json!({"backups": shown}))
}

/// `POST /api/restore`: a restore job.
pub(super) async fn restore(state: ApiState, body: Bytes) -> ApiResult {
    let jobs = jobs_of(&state)?;
    let req: RestoreRequest = params::body(&body)?;
    jobs.restore(req)
        .await
        .map(job_accepted)
        .map_err(submit_error)
}

/// The filters of this module's routes, in the order of their `ROUTER_KEYS` entries.
pub(super) fn filters(state: ApiState) -> [warp::filters::BoxedFilter<(WarpResponse,)>; 5] {
    let with_state = warp::any().map(move || state.clone());
    let install = warp::path("api")
        .and(warp::path("installs"))
        .and(warp::path::param::<i64>());
    let list_route = install
        .and(warp::path("backups"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|id, s| respond(list(s, id)));
    let now_route = install
        .and(warp::path("backup"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::body::content_length_limit(4 * 1024))
        .and(warp::body::bytes())
        .and_then(|id, s, b| respond(backup_now(s, id, b)));
    let policy_route = install
        .and(warp::path("backup-policy"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::body::content_length_limit(4 * 1024))
        .and(warp::body::bytes())
        .and_then(|id, s, b| respond(set_policy(s, id, b)));
    let all_route = warp::path("api")
        .and(warp::path("backups"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .and_then(|s| respond(all(s)));
    let restore_route = warp::path("api")
        .and(warp::path("restore"))
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state)
        .and(warp::body::content_length_limit(4 * 1024))
        .and(warp::body::bytes())
        .and_then(|s, b| respond(restore(s, b)));
    [
        list_route.boxed(),
        now_route.boxed(),
        policy_route.boxed(),
        all_route.boxed(),
        restore_route.boxed(),
    ]
}
