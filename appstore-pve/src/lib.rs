//! The Proxmox VE API client of PVE App Store: typed calls behind the [`PveApi`] trait, one real
//! implementation over HTTPS ([`HttpPve`]) that only sends what a real PVE 8.x node accepts, task
//! waiting with backoff and a deadline, and errors that say what PVE said and how to fix it.

mod client;
mod error;
mod tls;
pub mod types;
pub mod upid;

pub use client::{HttpPve, PveEndpoint};
pub use error::PveError;
pub use tls::TlsMode;
pub use upid::Upid;

use appstore_core::Ctid;
use async_trait::async_trait;
use std::time::Duration;
use types::*;

/// Result of a PVE call.
pub type Result<T> = std::result::Result<T, PveError>;

/// Everything the store asks of a PVE node.
#[async_trait]
pub trait PveApi: Send + Sync + std::fmt::Debug {
    /// `GET /version` (cached by implementations).
    async fn version(&self) -> Result<VersionInfo>;
    /// `GET /cluster/nextid`.
    async fn next_id(&self) -> Result<Ctid>;
    /// `GET /cluster/nextid?vmid=N`: is `vmid` free?
    async fn is_id_free(&self, vmid: Ctid) -> Result<bool>;
    /// `GET /cluster/resources`.
    async fn cluster_resources(&self, kind: Option<ResourceKind>) -> Result<Vec<ClusterResource>>;
    /// `GET /nodes`.
    async fn nodes(&self) -> Result<Vec<NodeInfo>>;
    /// `GET /pools`.
    async fn pools(&self) -> Result<Vec<PoolSummary>>;
    /// `GET /access/permissions?path=`: the caller's effective privileges on `path`.
    async fn permissions(&self, path: &str) -> Result<std::collections::BTreeSet<String>>;
    /// A pool with its members (`GET /pools?poolid=` on 8.1+, `GET /pools/{poolid}` before).
    async fn pool(&self, poolid: &str) -> Result<PoolInfo>;
    /// Adds (or, with `remove`, takes out) a guest to a pool (`PUT /pools` on 8.1+, `PUT /pools/{poolid}` before).
    async fn pool_members(&self, poolid: &str, vmid: Ctid, remove: bool) -> Result<()>;
    /// `GET /nodes/{node}/storage?content=`.
    async fn storages(&self, node: &str, content: Option<&str>) -> Result<Vec<StorageInfo>>;
    /// `GET /nodes/{node}/storage/{storage}/content?content=vztmpl`.
    async fn templates(&self, node: &str, storage: &str) -> Result<Vec<Volume>>;
    /// `GET /nodes/{node}/aplinfo`.
    async fn appliances(&self, node: &str) -> Result<Vec<Appliance>>;
    /// `POST /nodes/{node}/aplinfo` (a task).
    async fn download_template(&self, node: &str, storage: &str, template: &str) -> Result<Upid>;
    /// Bridges of a node (`GET /nodes/{node}/network?type=any_bridge`).
    async fn bridges(&self, node: &str) -> Result<Vec<NetworkInterface>>;
    /// `GET /nodes/{node}/lxc`.
    async fn lxc_list(&self, node: &str) -> Result<Vec<LxcSummary>>;
    /// `POST /nodes/{node}/lxc` (a task).
    async fn lxc_create(&self, node: &str, spec: &CreateLxc) -> Result<Upid>;
    /// `GET .../config`.
    async fn lxc_config(&self, node: &str, vmid: Ctid) -> Result<LxcConfig>;
    /// `PUT .../config` with `digest` (when given) and `delete`.
    async fn lxc_update_config(
        &self,
        node: &str,
        vmid: Ctid,
        set: &[(String, String)],
        delete: &[String],
        digest: Option<&str>,
    ) -> Result<()>;
    /// `GET .../status/current`.
    async fn lxc_status(&self, node: &str, vmid: Ctid) -> Result<LxcStatus>;
    /// `POST .../status/start` (a task).
    async fn lxc_start(&self, node: &str, vmid: Ctid) -> Result<Upid>;
    /// `POST .../status/stop` (a task).
    async fn lxc_stop(&self, node: &str, vmid: Ctid) -> Result<Upid>;
    /// `POST .../status/shutdown` with a timeout in seconds (a task).
    async fn lxc_shutdown(&self, node: &str, vmid: Ctid, timeout_sec: u32) -> Result<Upid>;
    /// `POST .../status/reboot` (a task).
    async fn lxc_reboot(&self, node: &str, vmid: Ctid) -> Result<Upid>;
    /// `PUT .../resize`: grows config key `disk` (`rootfs`, `mpN`) to `size` (`12G`, or `+2G`; a task).
    async fn lxc_resize(&self, node: &str, vmid: Ctid, disk: &str, size: &str) -> Result<Upid>;
    /// `GET .../rrddata?timeframe=&cf=AVERAGE`: PVE's usage history of the container, oldest row first.
    async fn lxc_rrddata(
        &self,
        node: &str,
        vmid: Ctid,
        timeframe: Timeframe,
    ) -> Result<Vec<RrdRow>>;
    /// `POST /nodes/{node}/vzdump` of one container (a task).
    async fn vzdump(&self, node: &str, spec: &Vzdump) -> Result<Upid>;
    /// `GET .../storage/{storage}/content?content=backup&vmid=`: the container's backups there.
    async fn backups(&self, node: &str, storage: &str, vmid: Ctid) -> Result<Vec<BackupVolume>>;
    /// `DELETE .../storage/{storage}/content/{volume}` (a task).
    async fn delete_volume(&self, node: &str, storage: &str, volid: &str) -> Result<Upid>;
    /// `POST /nodes/{node}/lxc` with `restore=1` (a task).
    async fn lxc_restore(&self, node: &str, spec: &RestoreLxc) -> Result<Upid>;
    /// `DELETE /nodes/{node}/lxc/{vmid}` (a task); `purge` also removes it from its pool.
    async fn lxc_destroy(&self, node: &str, vmid: Ctid, purge: bool) -> Result<Upid>;
    /// `GET .../interfaces` (8.1+): `None` while stopped.
    async fn lxc_interfaces(&self, node: &str, vmid: Ctid) -> Result<Option<Vec<Interface>>>;
    /// `POST .../move_volume` with `target-vmid`: hands the volume at config key `volume` to container
    /// `target` as `target_key` (both stopped; a task).
    async fn lxc_move_volume(
        &self,
        node: &str,
        vmid: Ctid,
        volume: &str,
        target: Ctid,
        target_key: &str,
    ) -> Result<Upid>;
    /// `GET .../snapshot`.
    async fn snapshots(&self, node: &str, vmid: Ctid) -> Result<Vec<Snapshot>>;
    /// `POST .../snapshot` (a task).
    async fn snapshot_create(
        &self,
        node: &str,
        vmid: Ctid,
        name: &str,
        description: &str,
    ) -> Result<Upid>;
    /// `POST .../snapshot/{name}/rollback` (a task).
    async fn snapshot_rollback(&self, node: &str, vmid: Ctid, name: &str) -> Result<Upid>;
    /// `DELETE .../snapshot/{name}` (a task).
    async fn snapshot_delete(&self, node: &str, vmid: Ctid, name: &str) -> Result<Upid>;
    /// `GET .../tasks/{upid}/status`.
    async fn task_status(&self, upid: &Upid) -> Result<TaskStatus>;
    /// `GET .../tasks/{upid}/log`.
    async fn task_log(&self, upid: &Upid, start: u64, limit: u64) -> Result<Vec<LogLine>>;
}

/// The last `n` lines of a task's log, read page by page to its end (the log API reads from the
/// start); what could be read when the API fails on the way.
pub async fn task_log_tail(api: &dyn PveApi, upid: &Upid, n: usize) -> Vec<String> {
    const PAGE: u64 = 1000;
    let mut tail: std::collections::VecDeque<String> = Default::default();
    let mut start = 0;
    // A task log of a million lines is read to its end at most; none of the store's come close.
    for _ in 0..1000 {
        let Ok(page) = api.task_log(upid, start, PAGE).await else {
            break;
        };
        let got = page.len() as u64;
        for l in page {
            tail.push_back(l.t);
            if tail.len() > n {
                tail.pop_front();
            }
        }
        if got < PAGE {
            break;
        }
        start += got;
    }
    tail.into()
}

/// Waits for a task: polls with backoff (5 ms, doubling to 2 s) until `deadline`; a failed task comes
/// back as [`PveError::TaskFailed`] with PVE's own exit status and the end of its log.
/// While pveproxy cannot be reached or answers 502/503/504/595/596 (a restart), the wait goes on
/// up to the deadline.
pub async fn wait_task(api: &dyn PveApi, upid: &Upid, deadline: Duration) -> Result<TaskStatus> {
    let start = tokio::time::Instant::now();
    // Short first waits: most of the store's tasks (config-sized) end within milliseconds.
    let mut delay = Duration::from_millis(5);
    loop {
        let status = match api.task_status(upid).await {
            Ok(s) => s,
            // pveproxy restarting (a node update, a certificate change): the task goes on, so
            // does the wait, up to its deadline.
            Err(e) if e.is_transient() && start.elapsed() < deadline => {
                tokio::time::sleep(
                    delay
                        .max(Duration::from_millis(200))
                        .min(deadline.saturating_sub(start.elapsed())),
                )
                .await;
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
            Err(e) => return Err(e),
        };
        if status.status == "stopped" {
            if status.succeeded() {
                return Ok(status);
            }
            let tail = task_log_tail(api, upid, 20).await;
            return Err(PveError::TaskFailed {
                upid: upid.to_string(),
                exitstatus: status.exitstatus.unwrap_or_else(|| "unknown error".into()),
                log: tail,
            });
        }
        if start.elapsed() >= deadline {
            return Err(PveError::TaskTimeout {
                upid: upid.to_string(),
                secs: deadline.as_secs(),
            });
        }
        tokio::time::sleep(delay.min(deadline.saturating_sub(start.elapsed()))).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
