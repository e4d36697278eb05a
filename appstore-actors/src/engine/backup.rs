//! The steps of a `backup` job: the pool boundary checked against PVE's own view, PVE's backup
//! (`vzdump` through the API, zstd, to the backup storage the admin chose), then the retention
//! (keep the newest N, remove older ones). The store prunes itself rather than passing
//! `prune-backups` to `vzdump`: that would need `Datastore.Allocate` on the storage, while removing
//! a container's own backups needs only what a backup needs.

use super::install::{failed, pve_failed};
use super::{blocking, Engine, JobLog, Steps};
use crate::store::{BackupRecord, InstallRecord};
use appstore_core::job::{JobKind, JobState, StepOutcome};
use appstore_core::Ctid;
use appstore_pve::types::{BackupMode, BackupVolume, Vzdump};
use appstore_pve::wait_task;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Longest wait for one `vzdump` task (a large container on slow storage).
const BACKUP_DEADLINE: Duration = Duration::from_secs(4 * 3600);

/// What a backup job records as its request (and reads back when it resumes).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// The install.
    pub install_id: i64,
    /// The backup storage (content `backup`).
    pub storage: String,
    /// How a running container is backed up.
    #[serde(default)]
    pub mode: BackupMode,
    /// How many backups of this install to keep (older ones are removed after this one); 0 keeps
    /// all.
    #[serde(default)]
    pub keep_last: u32,
}

impl BackupRequest {
    /// The request stored with job `job`.
    pub fn of(job: &crate::store::JobRecord) -> Option<BackupRequest> {
        serde_json::from_str(&job.request).ok()
    }
}

pub(super) struct BackupWork {
    engine: Engine,
    job_id: i64,
    /// When the job was made, ms since the epoch: a backup of the container newer than this is
    /// this job's (found again after a restart).
    since_ms: i64,
    install: InstallRecord,
    request: BackupRequest,
    log: JobLog,
    resumed: bool,
}

impl BackupWork {
    fn ctid(&self) -> Result<Ctid, StepOutcome> {
        self.install
            .ctid
            .ok_or_else(|| failed("the install has no container"))
    }

    async fn list(&self, ctid: Ctid) -> Result<Vec<BackupVolume>, StepOutcome> {
        self.engine
            .pve
            .backups(&self.engine.config.node, &self.request.storage, ctid)
            .await
            .map_err(|e| {
                pve_failed(
                    &format!("listing the backups on `{}`", self.request.storage),
                    e,
                )
            })
    }

    /// This job's backup among the container's, if it was made.
    async fn made(&self, ctid: Ctid) -> Result<Option<BackupVolume>, StepOutcome> {
        let since = (self.since_ms / 1000).saturating_sub(1) as u64;
        Ok(newest_since(self.list(ctid).await?, since))
    }

    async fn record(&self, b: &BackupVolume, ctid: Ctid) -> Result<(), StepOutcome> {
        let record = backup_record(&self.install, b, ctid, &self.request.storage, self.job_id);
        let store = self.engine.store.clone();
        blocking(move || store.record_backup(&record))
            .await
            .map_err(|e| failed(format!("recording the backup: {e}")))?;
        self.log
            .info(&format!(
                "backup {} ({})",
                b.volid,
                b.size.map_or_else(|| "size unknown".to_string(), human)
            ))
            .await;
        Ok(())
    }

    async fn backup(&mut self) -> Result<(), StepOutcome> {
        let ctid = self.ctid()?;
        let pve = self.engine.pve.as_ref();
        let node = self.engine.config.node.as_str();
        if self.resumed {
            if let Some(b) = self.made(ctid).await? {
                self.log
                    .info("the backup was made before the service restarted")
                    .await;
                return self.record(&b, ctid).await;
            }
            let cfg = pve
                .lxc_config(node, ctid)
                .await
                .map_err(|e| pve_failed("reading the container", e))?;
            if cfg.options.get("lock").map(String::as_str) == Some("backup") {
                return Err(StepOutcome::NotYet {
                    reason: format!("the backup of container {ctid} is still running"),
                });
            }
        }
        let spec = Vzdump {
            vmid: ctid,
            storage: self.request.storage.clone(),
            mode: self.request.mode,
            notes: Some(format!(
                "{} {} (PVE App Store, install {})",
                self.install.app_id, self.install.version, self.install.id
            )),
        };
        self.log
            .info(&format!(
                "backing up container {ctid} to `{}` (mode {}, zstd)",
                spec.storage,
                spec.mode.as_str()
            ))
            .await;
        let upid = pve
            .vzdump(node, &spec)
            .await
            .map_err(|e| pve_failed("starting the backup", e))?;
        let lines = wait_task(
            pve,
            &upid,
            BACKUP_DEADLINE.max(self.engine.config.task_deadline),
        )
        .await
        .map_err(|e| pve_failed("backing up", e));
        // PVE's own log of the backup, for the job log.
        for line in appstore_pve::task_log_tail(pve, &upid, 60).await {
            self.log.line("stdout", &line).await;
        }
        lines?;
        let made = self.made(ctid).await?.ok_or_else(|| {
            failed(format!(
                "the backup task ended but no new backup of container {ctid} is on `{}`",
                self.request.storage
            ))
        })?;
        self.record(&made, ctid).await
    }

    async fn prune(&self) -> Result<(), StepOutcome> {
        let keep = self.request.keep_last as usize;
        if keep == 0 {
            self.log.info("retention: all backups are kept").await;
            return Ok(());
        }
        let ctid = self.ctid()?;
        let mut list = self.list(ctid).await?;
        list.sort_by_key(|b| std::cmp::Reverse(b.ctime.unwrap_or(0)));
        let old: Vec<&BackupVolume> = list
            .iter()
            .skip(keep)
            .filter(|b| b.protected.unwrap_or(0) == 0)
            .collect();
        self.log
            .info(&format!(
                "retention: keep the last {keep}; {} older backup(s) to remove",
                old.len()
            ))
            .await;
        for b in old {
            let pve = self.engine.pve.as_ref();
            let upid = pve
                .delete_volume(&self.engine.config.node, &self.request.storage, &b.volid)
                .await
                .map_err(|e| pve_failed(&format!("removing {}", b.volid), e))?;
            wait_task(pve, &upid, self.engine.config.task_deadline)
                .await
                .map_err(|e| pve_failed(&format!("removing {}", b.volid), e))?;
            let (store, volid) = (self.engine.store.clone(), b.volid.clone());
            let _ = blocking(move || store.forget_backup(&volid)).await;
            self.log.info(&format!("removed {}", b.volid)).await;
        }
        Ok(())
    }
}

/// The newest of `list` made at or after `since` (seconds since the epoch).
pub(super) fn newest_since(list: Vec<BackupVolume>, since: u64) -> Option<BackupVolume> {
    list.into_iter()
        .filter(|b| b.ctime.unwrap_or(0) >= since)
        .max_by_key(|b| b.ctime.unwrap_or(0))
}

/// The store's record of backup `b` of `install`'s container `ctid`, made by job `job_id`.
pub(super) fn backup_record(
    install: &InstallRecord,
    b: &BackupVolume,
    ctid: Ctid,
    storage: &str,
    job_id: i64,
) -> BackupRecord {
    BackupRecord {
        volid: b.volid.clone(),
        install_id: install.id,
        app_id: install.app_id.clone(),
        version: install.version.clone(),
        manifest_sha256: install.manifest_sha256.clone(),
        commit_id: install.commit_id.clone(),
        ctid: i64::from(ctid.get()),
        storage: storage.to_string(),
        job_id: Some(job_id),
        created_at: b
            .ctime
            .map_or_else(crate::store::now_ms, |t| t as i64 * 1000),
    }
}

fn human(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

impl Steps for BackupWork {
    async fn step(&mut self, state: JobState) -> StepOutcome {
        let outcome = match state {
            JobState::Queued => Ok(()),
            JobState::CheckBoundary => match self.ctid() {
                Ok(ctid) => match super::check_boundary(&self.engine, ctid).await {
                    StepOutcome::Done => Ok(()),
                    other => Err(other),
                },
                Err(o) => Err(o),
            },
            JobState::Backup => self.backup().await,
            JobState::PruneBackups => self.prune().await,
            other => Err(failed(format!("`{other}` is not a step of a backup job"))),
        };
        // Only the first step run after a restart is a resumed one.
        self.resumed = false;
        outcome.err().unwrap_or(StepOutcome::Done)
    }

    async fn after_failure(&mut self) {}
}

impl Engine {
    /// Creates the job record of a backup of `install`.
    pub async fn create_backup_job(
        &self,
        install: &InstallRecord,
        request: &BackupRequest,
    ) -> Result<i64, super::EngineError> {
        if request.storage.trim().is_empty() {
            return Err(super::EngineError::Invalid {
                fields: [(
                    "storage".to_string(),
                    "name the backup storage (a storage with content `backup`, such as `local`)"
                        .to_string(),
                )]
                .into(),
            });
        }
        let ctid = install
            .ctid
            .ok_or_else(|| super::EngineError::Conflict("the install has no container".into()))?;
        let new = crate::store::NewJob {
            kind: JobKind::Backup,
            app_id: install.app_id.clone(),
            install_id: Some(install.id),
            ctid: install.ctid,
            node: install.node.clone(),
            pool: install.pool.clone(),
            user_action: format!(
                "back up {} (container {ctid}) to {}{}",
                install.app_id,
                request.storage,
                if request.keep_last > 0 {
                    format!(", keep the last {}", request.keep_last)
                } else {
                    String::new()
                }
            ),
            manifest_version: install.version.clone(),
            manifest_sha256: install.manifest_sha256.clone(),
            commit_id: install.commit_id.clone(),
            request: serde_json::json!(request).to_string(),
        };
        Ok(self.queue_job(new, serde_json::Value::Null).await?.id)
    }

    /// Runs a backup job to its end, from `Queued` or, resumed, from `resume_from`.
    pub async fn run_backup(
        &self,
        job_id: i64,
        install: InstallRecord,
        request: BackupRequest,
        cancel: super::CancelFlag,
        resume_from: Option<JobState>,
    ) -> Result<JobState, super::EngineError> {
        let log = JobLog::new(self, job_id);
        let store = self.store.clone();
        let since_ms = blocking(move || store.job(job_id))
            .await?
            .map_or_else(crate::store::now_ms, |j| j.created_at);
        let mut work = BackupWork {
            engine: self.clone(),
            job_id,
            since_ms,
            install,
            request,
            log: log.clone(),
            resumed: resume_from.is_some(),
        };
        self.drive(
            JobKind::Backup,
            job_id,
            &mut work,
            &log,
            &cancel,
            resume_from,
        )
        .await
    }

    /// Resumes an interrupted backup job: a backup made before the restart is found, not made
    /// again.
    pub(super) async fn resume_backup(
        &self,
        job: crate::store::JobRecord,
        cancel: super::CancelFlag,
    ) -> Result<JobState, super::EngineError> {
        let Some(request) = BackupRequest::of(&job) else {
            return self.give_up(&job, "its request cannot be read").await;
        };
        let store = self.store.clone();
        let install = blocking(move || store.install(request.install_id)).await?;
        let Some(install) = install else {
            return self.give_up(&job, "its install record is gone").await;
        };
        self.run_backup(job.id, install, request, cancel, Some(job.state))
            .await
    }
}
