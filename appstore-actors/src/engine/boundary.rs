//! The pool boundary as the engine checks it against PVE's own view, and the recognition of a
//! container a failed install left untagged.

use super::*;
use appstore_core::Ctid;

/// The pool boundary, checked against PVE's own view: the container is in the store's pool and
/// carries the managed tag; anything else is refused with the reason.
pub(crate) async fn check_boundary(engine: &Engine, ctid: Ctid) -> StepOutcome {
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
    let in_pool = match in_pool(engine, ctid).await {
        Ok(yes) => yes,
        Err(e) => return failed(e),
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

/// The description of the container install job `job_id` creates:
/// `Installed by PVE App Store: <app> <version> (job N)`.
pub(crate) fn container_description(app: &str, version: &str, job_id: i64) -> String {
    format!("{DESCRIPTION_PREFIX} {app} {version} (job {job_id})")
}

const DESCRIPTION_PREFIX: &str = "Installed by PVE App Store:";

/// Whether a container's description (from its config) is the one install job `job_id` gave it:
/// how a job recognises the container it created before it could record or tag it.
pub(crate) fn created_by_job(description: Option<&String>, job_id: i64) -> bool {
    description.is_some_and(|d| {
        d.starts_with(DESCRIPTION_PREFIX) && d.contains(&format!("(job {job_id})"))
    })
}

/// Whether container `ctid` is a member of the store's pool, by PVE's pool API.
async fn in_pool(engine: &Engine, ctid: Ctid) -> Result<bool, String> {
    let pool_id = &engine.config.pool;
    Ok(engine
        .pve
        .pool(pool_id)
        .await
        .map_err(|e| format!("reading pool `{pool_id}`: {e}"))?
        .members
        .iter()
        .any(|m| m.vmid == Some(u64::from(ctid.get()))))
}

/// Tags container `ctid` as the store's own (managed, failed, its app) when it lacks the managed
/// tag but is recognisably the container install job `job_id` created: in the store's pool, its
/// description carrying the job's marker, and no task holding it. This is what a job that failed
/// between the create and the tagging leaves behind. True when it tagged the container.
pub(crate) async fn adopt_created_container(
    engine: &Engine,
    ctid: Ctid,
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
    let ours = created_by_job(cfg.options.get("description"), job_id);
    if tags.iter().any(|t| t == MANAGED_TAG) || !ours || cfg.options.contains_key("lock") {
        return Ok(false);
    }
    if !in_pool(engine, ctid).await? {
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
