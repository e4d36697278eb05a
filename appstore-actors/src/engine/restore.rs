//! Making, running and resuming restore jobs (the steps are `InstallWork`'s, in restore mode).

use super::install::{InstallContext, InstallRequest, InstallWork, RestoreRequest};
use super::*;

impl Engine {
    /// The app as backup `record` holds it (the catalog's manifest at the backup's commit when
    /// the catalog moved on).
    async fn app_of_backup(
        &self,
        snapshot: &Arc<CatalogSnapshot>,
        record: &crate::store::BackupRecord,
    ) -> Result<(Arc<CatalogSnapshot>, Arc<CatalogApp>), String> {
        let as_installed = InstallRecord {
            id: record.install_id,
            app_id: record.app_id.clone(),
            ctid: None,
            node: self.config.node.clone(),
            pool: self.config.pool.clone(),
            version: record.version.clone(),
            manifest_sha256: record.manifest_sha256.clone(),
            commit_id: record.commit_id.clone(),
            inputs: "{}".into(),
            outputs: "[]".into(),
            status: "installed".into(),
            created_at: record.created_at,
        };
        self.installed_app(snapshot, &as_installed).await
    }

    /// Creates the job record of a restore; `over` is the install restored over (it must be the
    /// one the backup was made of).
    pub async fn create_restore_job(
        &self,
        snapshot: &Arc<CatalogSnapshot>,
        request: &RestoreRequest,
        over: Option<&InstallRecord>,
    ) -> Result<i64, EngineError> {
        let store = self.store.clone();
        let volid = request.volid.clone();
        let record = blocking(move || store.backup(&volid))
            .await?
            .ok_or_else(|| EngineError::Invalid {
                fields: [(
                    "volid".to_string(),
                    format!(
                        "the store has no record of backup `{}`; pick one from the install's backups",
                        request.volid
                    ),
                )]
                .into(),
            })?;
        if let Some(install) = over {
            if install.id != record.install_id {
                return Err(EngineError::Invalid {
                    fields: [(
                        "over_install".to_string(),
                        format!(
                            "backup `{}` is of install {}, not of install {}; restore it into a new container instead",
                            request.volid, record.install_id, install.id
                        ),
                    )]
                    .into(),
                });
            }
        }
        let (_, app) = self
            .app_of_backup(snapshot, &record)
            .await
            .map_err(EngineError::Rejected)?;
        let new = NewJob {
            kind: JobKind::Restore,
            app_id: record.app_id.clone(),
            install_id: over.map(|i| i.id),
            ctid: over.and_then(|i| i.ctid),
            node: self.config.node.clone(),
            pool: self.config.pool.clone(),
            user_action: match over {
                Some(i) => format!(
                    "restore {} {} over container {} from {}",
                    record.app_id,
                    record.version,
                    i.ctid.map_or_else(|| "?".to_string(), |c| c.to_string()),
                    request.volid
                ),
                None => format!(
                    "restore {} {} into a new container from {}",
                    record.app_id, record.version, request.volid
                ),
            },
            manifest_version: app.manifest.version().to_string(),
            manifest_sha256: app.manifest_sha256.clone(),
            commit_id: record.commit_id.clone(),
            request: serde_json::json!(request).to_string(),
        };
        let mut ctx = InstallContext::new(InstallRequest {
            app_id: record.app_id.clone(),
            ..Default::default()
        });
        ctx.restore = Some(request.clone());
        if let Some(i) = over {
            ctx.ctid = i.ctid;
            ctx.created = true;
        }
        let ctx = serde_json::to_value(ctx).unwrap_or_default();
        Ok(self.queue_job(new, ctx).await?.id)
    }

    /// Runs a restore job to its end, from `Queued` or, resumed, from `resume_from` with the
    /// saved context.
    pub async fn run_restore(
        &self,
        job_id: i64,
        snapshot: Arc<CatalogSnapshot>,
        request: RestoreRequest,
        over: Option<InstallRecord>,
        cancel: CancelFlag,
    ) -> Result<JobState, EngineError> {
        self.drive_restore(job_id, snapshot, request, over, cancel, None)
            .await
    }

    async fn drive_restore(
        &self,
        job_id: i64,
        snapshot: Arc<CatalogSnapshot>,
        request: RestoreRequest,
        over: Option<InstallRecord>,
        cancel: CancelFlag,
        resume: Option<(install::InstallContext, JobState)>,
    ) -> Result<JobState, EngineError> {
        let log = JobLog::new(self, job_id);
        let store = self.store.clone();
        let volid = request.volid.clone();
        let found = match blocking(move || store.backup(&volid)).await? {
            Some(record) => self.app_of_backup(&snapshot, &record).await,
            None => Err(format!(
                "the store has no record of backup `{}`",
                request.volid
            )),
        };
        let (snapshot, app) = match found {
            Ok(f) => f,
            Err(e) => {
                let from = resume.as_ref().map_or(JobState::Queued, |(_, s)| *s);
                self.enter(job_id, from, JobState::Failed, Some(e)).await?;
                return Ok(JobState::Failed);
            }
        };
        let mut work = InstallWork::new(
            self.clone(),
            job_id,
            snapshot,
            Arc::clone(&app),
            InstallRequest {
                app_id: app.manifest.id().to_string(),
                ..Default::default()
            },
            log.clone(),
            GitCache::new(&self.config.catalog_cache),
        );
        work.restoring(request, over);
        let from = match resume {
            Some((ctx, state)) => {
                if let (Some(id), false) = (ctx.ctid, ctx.created) {
                    self.reserved_ctids.hold(id).await;
                }
                if let Err(e) = work.restore(ctx, state) {
                    let job = blocking({
                        let store = self.store.clone();
                        move || store.job(job_id)
                    })
                    .await?;
                    if let Some(job) = job {
                        return self.give_up(&job, &e).await;
                    }
                }
                Some(state)
            }
            None => None,
        };
        self.drive(JobKind::Restore, job_id, &mut work, &log, &cancel, from)
            .await
    }

    /// Resumes an interrupted restore: PVE's restore task, once started, is followed, not
    /// started again.
    pub(super) async fn resume_restore(
        &self,
        job: crate::store::JobRecord,
        snapshot: Option<Arc<CatalogSnapshot>>,
        cancel: CancelFlag,
    ) -> Result<JobState, EngineError> {
        let ctx = match self.load_context(job.id).await {
            Ok(c) => c,
            Err(e) => return self.give_up(&job, &e).await,
        };
        let Some(request) = ctx.restore.clone() else {
            return self.give_up(&job, "the job saved no restore request").await;
        };
        let Some(snapshot) = snapshot else {
            return self.give_up(&job, "the catalog is not loaded").await;
        };
        let over = match request.over_install {
            Some(id) => {
                let store = self.store.clone();
                blocking(move || store.install(id)).await?
            }
            None => None,
        };
        let state = job.state;
        self.drive_restore(job.id, snapshot, request, over, cancel, Some((ctx, state)))
            .await
    }
}
