//! The steps of an uninstall: the boundary checked against PVE's own view, the app's uninstall hook,
//! a clean shutdown, destroy with purge, and the records.

use super::{blocking, Engine, JobLog};
use crate::store::InstallRecord;
use appstore_catalog::{CatalogApp, CatalogSnapshot};
use appstore_core::job::{JobState, StepOutcome};
use appstore_core::Ctid;
use appstore_pve::wait_task;
use std::sync::Arc;

fn failed(reason: impl Into<String>) -> StepOutcome {
    StepOutcome::Failed {
        reason: reason.into(),
    }
}

pub(super) struct UninstallWork {
    engine: Engine,
    job_id: i64,
    install: InstallRecord,
    /// The app as installed and the catalog snapshot it comes from.
    app: Option<(Arc<CatalogSnapshot>, Arc<CatalogApp>)>,
    log: JobLog,
    /// The user chose to keep the data volumes for a later install.
    keep_volumes: bool,
    /// The failed install whose container this job destroys (a destroy-failed job).
    failed_job: Option<i64>,
}

impl UninstallWork {
    pub(super) fn new(
        engine: Engine,
        job_id: i64,
        install: InstallRecord,
        app: Option<(Arc<CatalogSnapshot>, Arc<CatalogApp>)>,
        log: JobLog,
    ) -> Self {
        UninstallWork {
            engine,
            job_id,
            install,
            app,
            log,
            keep_volumes: false,
            failed_job: None,
        }
    }

    /// Destroys the container of failed install `job` (which may lack the managed tag when the
    /// job failed between the create and the tagging).
    pub(super) fn for_failed_job(mut self, job: Option<i64>) -> Self {
        self.failed_job = job;
        self
    }

    /// Keeps the data volumes (from the job's request).
    pub(super) fn keeping_volumes(mut self, keep: bool) -> Self {
        self.keep_volumes = keep;
        self
    }

    /// Is the container gone (destroyed by this job before a restart, or removed by hand in PVE)?
    async fn gone(&self, ctid: Ctid) -> Result<bool, StepOutcome> {
        self.engine
            .pve
            .is_id_free(ctid)
            .await
            .map_err(|e| failed(format!("checking container {ctid}: {e}")))
    }

    fn ctid(&self) -> Result<Ctid, StepOutcome> {
        self.install
            .ctid
            .ok_or_else(|| failed("the install has no container"))
    }

    async fn check_boundary(&self) -> StepOutcome {
        let ctid = match self.ctid() {
            Ok(c) => c,
            Err(o) => return o,
        };
        match self.gone(ctid).await {
            Ok(true) => {
                self.log
                    .info(&format!(
                        "container {ctid} no longer exists; only the store's records are removed"
                    ))
                    .await;
                return StepOutcome::Done;
            }
            Ok(false) => {}
            Err(o) => return o,
        }
        if let Some(job) = self.failed_job {
            match super::adopt_created_container(&self.engine, ctid, job, &self.install.app_id)
                .await
            {
                Ok(true) => {
                    self.log
                        .info(&format!(
                            "container {ctid} lacked the managed tag (job {job} failed before tagging it); its description names job {job}, so it is tagged as the store's now"
                        ))
                        .await
                }
                Ok(false) => {}
                Err(e) => return failed(e),
            }
        }
        super::check_boundary(&self.engine, ctid).await
    }

    async fn stop(&self) -> StepOutcome {
        let ctid = match self.ctid() {
            Ok(c) => c,
            Err(o) => return o,
        };
        match self.gone(ctid).await {
            Ok(true) => return StepOutcome::Done,
            Ok(false) => {}
            Err(o) => return o,
        }
        let pve = &self.engine.pve;
        let node = &self.engine.config.node;
        let running = match pve.lxc_status(node, ctid).await {
            Ok(s) => s.status == "running",
            Err(e) => return failed(format!("reading container {ctid}: {e}")),
        };
        if !running {
            return StepOutcome::Done;
        }
        // The app's own uninstall hook, run as its other scripts are: files delivered again, the
        // environment from the kept inputs. A hook that fails or cannot run does not stop the
        // uninstall.
        if let Some((snapshot, app)) = self.app.clone() {
            if let Some(script) = app.manifest.provision().uninstall.clone() {
                let mut work = super::install::InstallWork::new(
                    self.engine.clone(),
                    self.job_id,
                    snapshot,
                    app,
                    super::InstallRequest {
                        app_id: self.install.app_id.clone(),
                        ..Default::default()
                    },
                    self.log.clone(),
                    appstore_catalog::GitCache::new(&self.engine.config.catalog_cache),
                );
                work.with_gpu(self.engine.attached_gpu(ctid).await);
                self.log.info(&format!("running {script}")).await;
                match work.uninstall_hook(&self.install, script.as_str()).await {
                    Ok(0) => self.log.info(&format!("{script} finished")).await,
                    Ok(code) => {
                        self.log
                            .info(&format!("{script} exited with code {code}; going on"))
                            .await
                    }
                    Err(e) => {
                        self.log
                            .info(&format!("{script} could not run ({e}); going on"))
                            .await
                    }
                }
            }
        }
        let deadline = self.engine.config.task_deadline;
        let shutdown = match pve.lxc_shutdown(node, ctid, 60).await {
            Ok(upid) => wait_task(pve.as_ref(), &upid, deadline).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = shutdown {
            self.log
                .info(&format!("clean shutdown failed ({e}); stopping"))
                .await;
            let stopped = match pve.lxc_stop(node, ctid).await {
                Ok(upid) => wait_task(pve.as_ref(), &upid, deadline).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = stopped {
                return failed(format!("stopping container {ctid}: {e}"));
            }
        }
        StepOutcome::Done
    }

    async fn destroy(&self) -> StepOutcome {
        let ctid = match self.ctid() {
            Ok(c) => c,
            Err(o) => return o,
        };
        match self.gone(ctid).await {
            Ok(true) => return StepOutcome::Done,
            Ok(false) => {}
            Err(o) => return o,
        }
        if self.keep_volumes {
            let names: Vec<(String, String)> = self
                .app
                .as_ref()
                .map(|(_, a)| {
                    a.manifest
                        .volumes()
                        .iter()
                        .map(|v| (v.mount_path.clone(), v.name.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let name_of = move |mount: &str| {
                names
                    .iter()
                    .find(|(m, _)| m == mount)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_else(|| mount.trim_matches('/').replace('/', "-"))
            };
            if let Err(e) = super::volumes::keep(
                &self.engine,
                &self.install.app_id,
                ctid,
                &name_of,
                &self.log,
            )
            .await
            {
                return failed(format!("keeping the data volumes: {e}"));
            }
        }
        let pve = &self.engine.pve;
        let result = match pve.lxc_destroy(&self.engine.config.node, ctid, true).await {
            Ok(upid) => wait_task(pve.as_ref(), &upid, self.engine.config.task_deadline)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                let what = if self.keep_volumes {
                    "its data volumes were kept"
                } else {
                    "with its data volumes"
                };
                self.log
                    .info(&format!("container {ctid} destroyed ({what}); bind-mounted host directories are never touched"))
                    .await;
                StepOutcome::Done
            }
            Err(e) => failed(format!("destroying container {ctid}: {e}")),
        }
    }

    async fn cleanup(&self) -> StepOutcome {
        let store = self.engine.store.clone();
        let id = self.install.id;
        let _ = std::fs::remove_dir_all(self.engine.config.jobs_dir.join(self.job_id.to_string()));
        // The container is gone, and its GPU nodes with it.
        if let Ok(ctid) = self.ctid() {
            let s = store.clone();
            if let Err(e) = blocking(move || s.remove_gpu_attachments(ctid)).await {
                return failed(format!("forgetting the container's GPU attachments: {e}"));
            }
        }
        if id == 0 {
            // A failed install's container: there is no install record to mark.
            return StepOutcome::Done;
        }
        match blocking(move || store.set_install_status(id, "removed")).await {
            Ok(()) => StepOutcome::Done,
            Err(e) => failed(format!("recording the removal: {e}")),
        }
    }
}

impl super::Steps for UninstallWork {
    async fn step(&mut self, state: JobState) -> StepOutcome {
        match state {
            JobState::Queued => StepOutcome::Done,
            JobState::CheckBoundary => self.check_boundary().await,
            JobState::StopContainer => self.stop().await,
            JobState::DestroyContainer => self.destroy().await,
            JobState::Cleanup => self.cleanup().await,
            other => failed(format!("`{other}` is not a step of an uninstall")),
        }
    }

    async fn after_failure(&mut self) {}
}
