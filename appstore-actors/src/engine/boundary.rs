//! The pool boundary as the engine checks it against PVE's own view, and the recognition of a
//! container a failed install left untagged.

use super::*;

/// The pool boundary, checked against PVE's own view: the container is in the store's pool and
/// carries the managed tag; anything else is refused with the reason.
pub(crate) async fn check_boundary(engine: &Engine, ctid: u32) -> StepOutcome {
    let failed = |reason: String| StepOutcome::Failed { reason };
    let pve = &engine.pve;
    let node = &engine.config.node;
    let cfg = match pve.lxc_config(node, ctid).await {
            Ok(c) => c,
            // The pool-scoped token cannot even read a container outside its pool.
            Err(appstore_pve::PveError::Forbidden { .. }) => {
                return failed(format!(
                    "[pool-boundary] container {ctid} is outside the store's pool `{}` (its API token cannot read it) (fix: the store only manages containers it created; manage this one in the PVE UI)",
                    engine.config.pool
                ))
            }
            Err(e) => return failed(format!("reading container {ctid}: {e}")),
        };
    let pool_id = &engine.config.pool;
    let in_pool = match pve.pool(pool_id).await {
        Ok(p) => p.members.iter().any(|m| m.vmid == Some(u64::from(ctid))),
        Err(e) => return failed(format!("reading pool `{pool_id}`: {e}")),
    };
    let facts = ContainerFacts {
        ctid,
        pool: in_pool.then(|| pool_id.clone()),
        tags: cfg
            .options
            .get("tags")
            .map(|t| parse_tags(t))
            .unwrap_or_default(),
    };
    let pool = match PoolId::parse(pool_id) {
        Ok(p) => p,
        Err(e) => return failed(e.to_string()),
    };
    match PoolBoundary::new(pool).decide(&facts) {
        Decision::Allow => StepOutcome::Done,
        Decision::Deny(reasons) => failed(
            reasons
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}

/// The marker every container the store creates carries in its description: `(job N)`.
pub(crate) fn job_marker(job_id: i64) -> String {
    format!("(job {job_id})")
}

/// Tags container `ctid` as the store's own (managed, failed, its app) when it lacks the managed
/// tag but is recognisably the container install job `job_id` created: in the store's pool, its
/// description carrying the job's marker, and no task holding it. This is what a job that failed
/// between the create and the tagging leaves behind. True when it tagged the container.
pub(crate) async fn adopt_created_container(
    engine: &Engine,
    ctid: u32,
    job_id: i64,
    app_id: &str,
) -> Result<bool, String> {
    let pve = &engine.pve;
    let node = &engine.config.node;
    let cfg = pve
        .lxc_config(node, ctid)
        .await
        .map_err(|e| format!("reading container {ctid}: {e}"))?;
    let tags: Vec<String> = cfg
        .options
        .get("tags")
        .map(|t| parse_tags(t))
        .unwrap_or_default();
    let ours = cfg.options.get("description").is_some_and(|d| {
        d.starts_with("Installed by PVE App Store:") && d.contains(&job_marker(job_id))
    });
    if tags.iter().any(|t| t == MANAGED_TAG) || !ours || cfg.options.contains_key("lock") {
        return Ok(false);
    }
    let pool_id = &engine.config.pool;
    let in_pool = pve
        .pool(pool_id)
        .await
        .map_err(|e| format!("reading pool `{pool_id}`: {e}"))?
        .members
        .iter()
        .any(|m| m.vmid == Some(u64::from(ctid)));
    if !in_pool {
        return Ok(false);
    }
    let app_tag = appstore_core::AppId::parse(app_id)
        .map(|id| app_tag(&id))
        .map_err(|e| format!("the failed job's app: {e}"))?;
    let mut all = tags.clone();
    for t in [MANAGED_TAG, FAILED_TAG, app_tag.as_str()] {
        if !all.iter().any(|x| x == t) {
            all.push(t.to_string());
        }
    }
    pve.lxc_update_config(
        node,
        ctid,
        &[("tags".into(), join_tags(all.iter().map(String::as_str)))],
        &[],
        Some(&cfg.digest),
    )
    .await
    .map_err(|e| format!("tagging container {ctid}: {e}"))?;
    Ok(true)
}
