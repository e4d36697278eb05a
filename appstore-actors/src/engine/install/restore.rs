//! Restore of an app from one of its backups, through PVE's restore (a create with `restore=1`):
//! into a new container in the pool (recorded as an install again, with the inputs of the install
//! the backup was made of, sealed, and outputs rendered with the new address), or over the existing
//! container after a confirmation (stopped first; PVE replaces it). Then start, address, health
//! check and outputs, as an install ends.

use super::*;
use appstore_pve::types::RestoreLxc;
use serde::{Deserialize, Serialize};

/// What a restore job restores, and where.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The backup's volume id (`local:backup/vzdump-lxc-...`), one the store made.
    pub volid: String,
    /// Restore over this install's container (its data since the backup is lost); without it the
    /// backup becomes a new container and a new install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_install: Option<i64>,
    /// Storage for the root disk and volumes; the store's default storage without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

impl InstallWork {
    /// Makes this a restore: `over` is the install restored over, if any.
    pub(in crate::engine) fn restoring(
        &mut self,
        request: RestoreRequest,
        over: Option<InstallRecord>,
    ) {
        self.kind = JobKind::Restore;
        if let Some(install) = over {
            self.ctid = install.ctid;
            self.created = true;
            let keep = MaintainRequest {
                install_id: install.id,
                ..Default::default()
            };
            self.existing = Some((install, keep));
        }
        self.restore = Some(request);
    }

    fn in_place(&self) -> bool {
        self.existing.is_some()
    }

    pub(super) async fn restore_step(&mut self, state: JobState) -> StepOutcome {
        match state {
            JobState::ValidateRequest => self.validate_restore().await,
            JobState::CheckBoundary if self.in_place() => match self.ctid {
                Some(ctid) => crate::engine::check_boundary(&self.engine, ctid).await,
                None => failed("the install has no container"),
            },
            JobState::AllocateCtid if !self.in_place() && self.ctid.is_none() => {
                self.allocate_ctid().await
            }
            JobState::StopContainer if self.in_place() => self.stop_for_restore().await,
            JobState::RestoreContainer => self.restore_container().await,
            JobState::StartContainer => self.start().await,
            JobState::CheckBoundary | JobState::AllocateCtid | JobState::StopContainer => {
                StepOutcome::Done
            }
            other => failed(format!("`{other}` is not a step of a restore job")),
        }
    }

    /// The backup is one the store made and still on its storage; the inputs of the install it
    /// was made of are opened (the health check and the outputs need them).
    async fn validate_restore(&mut self) -> StepOutcome {
        let Some(req) = self.restore.clone() else {
            return failed("the job has no restore request");
        };
        let store = self.engine.store.clone();
        let volid = req.volid.clone();
        let record = match blocking(move || store.backup(&volid)).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return failed(format!(
                    "the store has no record of backup `{}`; only backups the store made can be restored here",
                    req.volid
                ))
            }
            Err(e) => return failed(format!("reading the backup record: {e}")),
        };
        let saved = match self.saved_inputs(record.install_id).await {
            Ok(s) => s,
            Err(o) => return o,
        };
        let inputs = match resolve(self.manifest(), &saved, &mut random_secret) {
            Ok(i) => i,
            Err(errors) => {
                return failed(format!(
                    "the inputs of install {} no longer resolve: {}",
                    record.install_id,
                    errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
            }
        };
        self.log.set_redactor(self.redactor(&inputs));
        self.inputs = Some(inputs);
        let Ok(owner) = Ctid::new(u32::try_from(record.ctid).unwrap_or(0)) else {
            return failed(format!("backup `{}` names no container", req.volid));
        };
        match self
            .engine
            .pve
            .backups(self.node(), &record.storage, owner)
            .await
        {
            Ok(list) if list.iter().any(|b| b.volid == req.volid) => {}
            Ok(_) => {
                return failed(format!(
                    "backup `{}` is no longer on storage `{}`",
                    req.volid, record.storage
                ))
            }
            Err(e) => {
                return pve_failed(&format!("listing the backups on `{}`", record.storage), e)
            }
        }
        self.log
            .info(&format!(
                "restoring {} {} from {} {}",
                record.app_id,
                record.version,
                req.volid,
                if self.in_place() {
                    format!(
                        "over container {}",
                        self.ctid.map_or_else(String::new, |c| c.to_string())
                    )
                } else {
                    "into a new container".to_string()
                }
            ))
            .await;
        StepOutcome::Done
    }

    async fn stop_for_restore(&mut self) -> StepOutcome {
        let Some(ctid) = self.ctid else {
            return failed("the install has no container");
        };
        let pve = Arc::clone(&self.engine.pve);
        match pve.lxc_status(self.node(), ctid).await {
            Ok(s) if s.status == "running" => {}
            Ok(_) => return StepOutcome::Done,
            Err(e) => return pve_failed("reading the container status", e),
        }
        self.log
            .info(&format!("shutting container {ctid} down for the restore"))
            .await;
        if self
            .wait(
                "shutting the container down",
                pve.lxc_shutdown(self.node(), ctid, 60).await,
            )
            .await
            .is_ok()
        {
            return StepOutcome::Done;
        }
        match self
            .wait(
                "stopping the container",
                pve.lxc_stop(self.node(), ctid).await,
            )
            .await
        {
            Ok(()) => StepOutcome::Done,
            Err(o) => o,
        }
    }

    async fn restore_container(&mut self) -> StepOutcome {
        let (Some(ctid), Some(req)) = (self.ctid, self.restore.clone()) else {
            return failed("no container id or restore request");
        };
        let pve = Arc::clone(&self.engine.pve);
        // Resumed: the task this job started is followed to its end, not started again.
        if let Some(upid) = self.restore_upid.clone() {
            let upid = match appstore_pve::Upid::parse(&upid) {
                Ok(u) => u,
                Err(e) => return failed(format!("the saved restore task: {e}")),
            };
            return match self.wait("restoring the backup", Ok(upid)).await {
                Ok(()) => self.restored(ctid).await,
                Err(o) => o,
            };
        }
        if !self.in_place() {
            if let Some(found) = self.find_created(ctid).await {
                return found;
            }
        }
        let storage = req
            .storage
            .clone()
            .unwrap_or_else(|| self.engine.config.storage.clone());
        let spec = RestoreLxc {
            vmid: ctid,
            archive: req.volid.clone(),
            storage,
            pool: (!self.in_place()).then(|| self.engine.config.pool.clone()),
            force: self.in_place(),
            unique: !self.in_place(),
            options: vec![(
                "description".to_string(),
                crate::engine::container_description(
                    self.manifest().id().as_str(),
                    &self.manifest().version().to_string(),
                    self.job_id,
                ),
            )],
        };
        let upid = match pve.lxc_restore(self.node(), &spec).await {
            Ok(u) => u,
            Err(e) => return pve_failed("starting the restore", e),
        };
        // Saved at once: a restart follows this task instead of starting another.
        self.restore_upid = Some(upid.to_string());
        let _ = self
            .engine
            .save_context(self.job_id, self.context_value(), &mut String::new())
            .await;
        match self.wait("restoring the backup", Ok(upid)).await {
            Ok(()) => self.restored(ctid).await,
            Err(o) => o,
        }
    }

    async fn restored(&mut self, ctid: Ctid) -> StepOutcome {
        self.created = true;
        self.engine.reserved_ctids.release(ctid).await;
        self.log
            .info(&format!("container {ctid} restored from the backup"))
            .await;
        self.carry_gpu_records(ctid).await
    }

    /// The restored config has the GPU nodes (`devN`) of the backup: the store's records of them
    /// (which GPU, which profile, which driver its userland was set up for) follow, so GPU drift
    /// is tracked for the restored container too.
    async fn carry_gpu_records(&mut self, ctid: Ctid) -> StepOutcome {
        let Some(volid) = self.restore.as_ref().map(|r| r.volid.clone()) else {
            return StepOutcome::Done;
        };
        let store = self.engine.store.clone();
        let from = match blocking(move || store.backup(&volid)).await {
            Ok(Some(r)) => u32::try_from(r.ctid).ok().and_then(|c| Ctid::new(c).ok()),
            Ok(None) => None,
            Err(e) => return failed(format!("reading the backup record: {e}")),
        };
        let Some(from) = from else {
            return StepOutcome::Done;
        };
        let cfg = match self.engine.pve.lxc_config(self.node(), ctid).await {
            Ok(c) => c,
            Err(e) => return pve_failed("reading the restored config", e),
        };
        let paths: Vec<String> = cfg
            .options
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix("dev")
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .map(|(_, v)| appstore_core::gpu::dev_entry_path(v).to_string())
            .collect();
        let store = self.engine.store.clone();
        let job = self.job_id;
        match blocking(move || store.carry_gpu_records(from, ctid, &paths, job)).await {
            Ok(0) => StepOutcome::Done,
            Ok(n) => {
                self.log
                    .info(&format!(
                        "the backup's GPU passthrough ({n} device node{}) is tracked for container {ctid}",
                        if n == 1 { "" } else { "s" }
                    ))
                    .await;
                StepOutcome::Done
            }
            Err(e) => failed(format!("recording the GPU attachment: {e}")),
        }
    }
}
