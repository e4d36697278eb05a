//! ProxmoxActor: what the node offers the store (release, pool, storages, bridges, templates), read
//! through the store's own token and cached, so forms and the system page do not each ask PVE.
//! Jobs talk to PVE directly through the same client (`Engine::pve`); this actor only discovers.

use actix::prelude::*;
use appstore_core::Ctid;
use appstore_pve::types::{NetworkInterface, StorageInfo, Volume};
use appstore_pve::PveApi;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the node offers, as the store's token sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// Node name.
    pub node: String,
    /// PVE release (`8.4.1`).
    pub version: Option<String>,
    /// The store's pool, and whether it exists.
    pub pool: String,
    /// The pool exists and the token can read it.
    pub pool_ok: bool,
    /// Every pool the token can see (`Pool.Audit`).
    pub pools: Vec<String>,
    /// Where container templates are kept: the configured storage, or the one found.
    pub template_storage: Option<String>,
    /// Storages that can hold container disks.
    pub storages: Vec<StorageInfo>,
    /// Storages that can hold backups (content `backup`) the token sees.
    pub backup_storages: Vec<StorageInfo>,
    /// Bridges the token may use.
    pub bridges: Vec<NetworkInterface>,
    /// Container templates on the template storage.
    pub templates: Vec<Volume>,
    /// The config's defaults, to preselect.
    pub default_storage: String,
    /// Default bridge.
    pub default_bridge: String,
    /// Problems met while discovering (each part is tried on its own).
    pub errors: Vec<String>,
    /// When, seconds since the epoch.
    pub fetched_at: u64,
}

/// Ask for the discovery; `refresh` skips the cache.
#[derive(Debug, Message)]
#[rtype(result = "Arc<Discovery>")]
pub struct Discover {
    /// Read PVE again even when the cache is fresh.
    pub refresh: bool,
}

/// Ask for one container's live state (never cached): what an installed app's page shows.
#[derive(Debug, Message)]
#[rtype(result = "Result<ContainerState, String>")]
pub struct ReadContainer {
    /// The container.
    pub ctid: Ctid,
}

/// Ask for one container's usage history from PVE's RRD data (never cached).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<appstore_pve::types::RrdRow>, String>")]
pub struct ReadHistory {
    /// The container.
    pub ctid: Ctid,
    /// Hour, day or week.
    pub timeframe: appstore_pve::types::Timeframe,
}

/// Ask for the run state of every container the store's token can see (one API call, never
/// cached): `vmid -> running|stopped`.
#[derive(Debug, Message)]
#[rtype(result = "Result<std::collections::BTreeMap<u64, String>, String>")]
pub struct ListContainers;

/// A container as PVE reports it now.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerState {
    /// `status/current`: status, cpu, memory, disk, network, uptime.
    pub status: appstore_pve::types::LxcStatus,
    /// The container's config options.
    pub config: std::collections::BTreeMap<String, String>,
}

/// Reads and caches the node's offer.
#[derive(Debug)]
pub struct ProxmoxActor {
    pve: Arc<dyn PveApi>,
    node: String,
    pool: String,
    template_storage: Option<String>,
    defaults: (String, String),
    max_age: Duration,
    cached: Option<(Instant, Arc<Discovery>)>,
}

impl ProxmoxActor {
    /// An actor discovering `node` for `pool`; answers are reused for `max_age`.
    pub fn new(
        pve: Arc<dyn PveApi>,
        config: &crate::engine::EngineConfig,
        max_age: Duration,
    ) -> Self {
        ProxmoxActor {
            pve,
            node: config.node.clone(),
            pool: config.pool.clone(),
            template_storage: config.template_storage.clone(),
            defaults: (config.storage.clone(), config.bridge.clone()),
            max_age,
            cached: None,
        }
    }
}

impl Actor for ProxmoxActor {
    type Context = Context<Self>;
}

impl actix::Supervised for ProxmoxActor {}

async fn discover(
    pve: Arc<dyn PveApi>,
    node: String,
    pool: String,
    template_storage: Option<String>,
    defaults: (String, String),
) -> Discovery {
    let mut errors = Vec::new();
    let version = match pve.version().await {
        Ok(v) => Some(v.version),
        Err(e) => {
            errors.push(format!("version: {e}"));
            None
        }
    };
    let pool_ok = match pve.pool(&pool).await {
        Ok(_) => true,
        Err(e) => {
            errors.push(format!("pool `{pool}`: {e}"));
            false
        }
    };
    let storages = pve
        .storages(&node, Some("rootdir"))
        .await
        .unwrap_or_else(|e| {
            errors.push(format!("storages: {e}"));
            Vec::new()
        });
    let backup_storages = pve
        .storages(&node, Some("backup"))
        .await
        .unwrap_or_else(|e| {
            errors.push(format!("backup storages: {e}"));
            Vec::new()
        });
    let bridges = pve.bridges(&node).await.unwrap_or_else(|e| {
        errors.push(format!("bridges: {e}"));
        Vec::new()
    });
    let pools = match pve.pools().await {
        Ok(list) => list.into_iter().map(|p| p.poolid).collect(),
        Err(e) => {
            errors.push(format!("pools: {e}"));
            Vec::new()
        }
    };
    let template_storage =
        match crate::engine::template_storage(pve.as_ref(), &node, template_storage.as_deref())
            .await
        {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(e);
                None
            }
        };
    let templates = match &template_storage {
        Some(t) => pve.templates(&node, t).await.unwrap_or_else(|e| {
            errors.push(format!("templates on `{t}`: {e}"));
            Vec::new()
        }),
        None => Vec::new(),
    };
    Discovery {
        node,
        version,
        pool,
        pool_ok,
        pools,
        template_storage,
        storages,
        backup_storages,
        bridges,
        templates,
        default_storage: defaults.0,
        default_bridge: defaults.1,
        errors,
        fetched_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

impl Handler<Discover> for ProxmoxActor {
    type Result = ResponseActFuture<Self, Arc<Discovery>>;

    fn handle(&mut self, msg: Discover, _: &mut Self::Context) -> Self::Result {
        if let Some((at, d)) = &self.cached {
            if !msg.refresh && at.elapsed() < self.max_age {
                return Box::pin(actix::fut::ready(Arc::clone(d)));
            }
        }
        let fut = discover(
            Arc::clone(&self.pve),
            self.node.clone(),
            self.pool.clone(),
            self.template_storage.clone(),
            self.defaults.clone(),
        );
        Box::pin(fut.into_actor(self).map(|d, act, _| {
            let d = Arc::new(d);
            act.cached = Some((Instant::now(), Arc::clone(&d)));
            d
        }))
    }
}

impl Handler<ReadContainer> for ProxmoxActor {
    type Result = ResponseFuture<Result<ContainerState, String>>;

    fn handle(&mut self, msg: ReadContainer, _: &mut Self::Context) -> Self::Result {
        let (pve, node) = (Arc::clone(&self.pve), self.node.clone());
        Box::pin(async move {
            // The token only reads containers in the store's pool: PVE answers 403 for others.
            let status = pve
                .lxc_status(&node, msg.ctid)
                .await
                .map_err(|e| format!("reading container {}: {e}", msg.ctid))?;
            let config = pve
                .lxc_config(&node, msg.ctid)
                .await
                .map_err(|e| format!("reading container {}: {e}", msg.ctid))?;
            Ok(ContainerState {
                status,
                config: config.options,
            })
        })
    }
}

impl Handler<ReadHistory> for ProxmoxActor {
    type Result = ResponseFuture<Result<Vec<appstore_pve::types::RrdRow>, String>>;

    fn handle(&mut self, msg: ReadHistory, _: &mut Self::Context) -> Self::Result {
        let (pve, node) = (Arc::clone(&self.pve), self.node.clone());
        Box::pin(async move {
            pve.lxc_rrddata(&node, msg.ctid, msg.timeframe)
                .await
                .map_err(|e| format!("reading the history of container {}: {e}", msg.ctid))
        })
    }
}

impl Handler<ListContainers> for ProxmoxActor {
    type Result = ResponseFuture<Result<std::collections::BTreeMap<u64, String>, String>>;

    fn handle(&mut self, _: ListContainers, _: &mut Self::Context) -> Self::Result {
        let (pve, node) = (Arc::clone(&self.pve), self.node.clone());
        Box::pin(async move {
            let list = pve
                .lxc_list(&node)
                .await
                .map_err(|e| format!("listing the node's containers: {e}"))?;
            Ok(list.into_iter().map(|c| (c.vmid, c.status)).collect())
        })
    }
}
