//! Making jobs (install, upgrade, reconfigure, uninstall, destroy-failed), running them, resuming
//! them after a restart, and `drive`, which follows the state machine step by step.

use super::*;

impl Engine {
    /// Creates the job record of an install (answering at once: the work runs later).
    pub async fn create_install_job(
        &self,
        snapshot: &CatalogSnapshot,
        request: &InstallRequest,
    ) -> Result<i64, EngineError> {
        let app = snapshot
            .app(&request.app_id)
            .ok_or_else(|| EngineError::Invalid {
                fields: [(
                    "app_id".to_string(),
                    format!("no app `{}` in the catalog", request.app_id),
                )]
                .into(),
            })?;
        let new = NewJob {
            kind: JobKind::Install,
            app_id: request.app_id.clone(),
            install_id: None,
            ctid: None,
            node: self.config.node.clone(),
            pool: self.config.pool.clone(),
            user_action: format!("install {} {}", app.manifest.id(), app.manifest.version()),
            manifest_version: app.manifest.version().to_string(),
            manifest_sha256: app.manifest_sha256.clone(),
            commit_id: snapshot.source().commit.clone(),
            request: request.redacted_json(&app.manifest).to_string(),
        };
        self.record_app(app, snapshot.source().commit.clone())
            .await?;
        // The whole request (secrets too) is kept sealed, so the job can resume after a restart.
        let ctx =
            serde_json::to_value(install::InstallContext::new(request.clone())).unwrap_or_default();
        Ok(self.queue_job(new, ctx).await?.id)
    }

    /// Creates job `new` with its sealed `context` (`Null`: none) and announces it as queued.
    pub(super) async fn queue_job(
        &self,
        new: NewJob,
        context: serde_json::Value,
    ) -> Result<crate::store::JobRecord, EngineError> {
        let store = self.store.clone();
        let job = blocking(move || store.create_job(&new)).await?;
        self.save_context(job.id, context, &mut String::new())
            .await?;
        let _ = self.events.send(JobEvent::State {
            job_id: job.id,
            state: JobState::Queued,
            reason: None,
        });
        Ok(job)
    }

    /// Keeps the `apps` table up to date with the app a job is made for.
    pub(super) async fn record_app(
        &self,
        app: &CatalogApp,
        commit: Option<String>,
    ) -> Result<(), EngineError> {
        let store = self.store.clone();
        let (id, name, version, sha) = (
            app.manifest.id().to_string(),
            app.manifest.name().to_string(),
            app.manifest.version().to_string(),
            app.manifest_sha256.clone(),
        );
        blocking(move || store.record_app(&id, &name, &version, &sha, commit.as_deref())).await?;
        Ok(())
    }

    pub(super) async fn enter(
        &self,
        job: i64,
        from: JobState,
        to: JobState,
        reason: Option<String>,
    ) -> Result<(), EngineError> {
        let store = self.store.clone();
        let r = reason.clone();
        blocking(move || store.transition(job, from, to, r.as_deref())).await?;
        let _ = self.events.send(JobEvent::State {
            job_id: job,
            state: to,
            reason,
        });
        Ok(())
    }

    /// Runs an install job to its end; returns the final state.
    pub async fn run_install(
        &self,
        job_id: i64,
        snapshot: Arc<CatalogSnapshot>,
        request: InstallRequest,
        cancel: CancelFlag,
    ) -> Result<JobState, EngineError> {
        let log = JobLog::new(self, job_id);
        let app: Arc<CatalogApp> = match snapshot.app(&request.app_id) {
            Some(a) => Arc::clone(a),
            None => {
                self.enter(
                    job_id,
                    JobState::Queued,
                    JobState::Failed,
                    Some(format!("no app `{}` in the catalog", request.app_id)),
                )
                .await?;
                return Ok(JobState::Failed);
            }
        };
        let mut work = install::InstallWork::new(
            self.clone(),
            job_id,
            snapshot,
            app,
            request,
            log.clone(),
            GitCache::new(&self.config.catalog_cache),
        );
        let end = self
            .drive(JobKind::Install, job_id, &mut work, &log, &cancel, None)
            .await;
        self.gpu_claims.release(job_id);
        end
    }

    /// The app as an install has it: from `snapshot` when the catalog still has that manifest,
    /// otherwise from the install's own commit of the catalog repository.
    pub async fn installed_app(
        &self,
        snapshot: &Arc<CatalogSnapshot>,
        install: &InstallRecord,
    ) -> Result<(Arc<CatalogSnapshot>, Arc<CatalogApp>), String> {
        if let Some(app) = snapshot.app(&install.app_id) {
            if app.manifest_sha256 == install.manifest_sha256 {
                return Ok((Arc::clone(snapshot), Arc::clone(app)));
            }
        }
        let Some(commit) = install.commit_id.clone() else {
            return Err(format!(
                "{} {} is no longer in the catalog",
                install.app_id, install.version
            ));
        };
        let source = appstore_catalog::GitSource {
            url: snapshot.source().url.clone(),
            branch: snapshot.source().branch.clone(),
            path: snapshot.source().path.clone(),
        };
        let cache = GitCache::new(&self.config.catalog_cache);
        let pinned = tokio::task::spawn_blocking(move || {
            appstore_catalog::GitCatalog::new(cache, source)
                .pin(&commit)
                .map(|r| r.snapshot)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| {
            format!(
                "loading the catalog as {} was installed: {e}",
                install.app_id
            )
        })?;
        let app = pinned
            .app(&install.app_id)
            .filter(|a| a.manifest_sha256 == install.manifest_sha256)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "{} {} cannot be found at its catalog commit",
                    install.app_id, install.version
                )
            })?;
        Ok((pinned, app))
    }

    /// Creates the job record of an upgrade or reconfigure of `install` (the request's keys are
    /// checked here, so a bad one is refused before a job exists).
    pub async fn create_maintain_job(
        &self,
        kind: JobKind,
        snapshot: &Arc<CatalogSnapshot>,
        install: &InstallRecord,
        request: &MaintainRequest,
    ) -> Result<i64, EngineError> {
        let (app, action) = match kind {
            JobKind::Upgrade => {
                let app = snapshot.app(&install.app_id).cloned().ok_or_else(|| {
                    EngineError::Rejected(format!("{} is no longer in the catalog", install.app_id))
                })?;
                match appstore_core::upgrade::check(&install.version, &app.manifest) {
                    appstore_core::upgrade::UpgradeCheck::Available { from, to, .. } => {
                        let action = format!("upgrade {} from {from} to {to}", install.app_id);
                        (app, action)
                    }
                    appstore_core::upgrade::UpgradeCheck::UpToDate { version } => {
                        return Err(EngineError::Rejected(format!(
                            "{} {version} is already the newest version in the catalog",
                            install.app_id
                        )))
                    }
                    appstore_core::upgrade::UpgradeCheck::Blocked { reason, .. } => {
                        return Err(EngineError::Rejected(reason))
                    }
                }
            }
            _ => {
                let (_, app) = self
                    .installed_app(snapshot, install)
                    .await
                    .map_err(EngineError::Rejected)?;
                if kind == JobKind::GpuSync {
                    if install.ctid.is_none() {
                        return Err(EngineError::Conflict("the install has no container".into()));
                    }
                    let action = format!(
                        "GPU sync of {} (container {})",
                        install.app_id,
                        shown_ctid(install.ctid)
                    );
                    (app, action)
                } else {
                    reconfigure_keys(&app.manifest, &request.inputs)?;
                    let keys: Vec<&str> = request.inputs.keys().map(String::as_str).collect();
                    let action = format!(
                        "reconfigure {} ({})",
                        install.app_id,
                        if keys.is_empty() {
                            "no changes".to_string()
                        } else {
                            keys.join(", ")
                        }
                    );
                    (app, action)
                }
            }
        };
        let new = NewJob {
            kind,
            app_id: install.app_id.clone(),
            install_id: Some(install.id),
            ctid: install.ctid,
            node: install.node.clone(),
            pool: install.pool.clone(),
            user_action: action,
            manifest_version: app.manifest.version().to_string(),
            manifest_sha256: app.manifest_sha256.clone(),
            commit_id: if kind == JobKind::Upgrade {
                snapshot.source().commit.clone()
            } else {
                install.commit_id.clone()
            },
            request: request.redacted_json(&app.manifest).to_string(),
        };
        self.record_app(&app, new.commit_id.clone()).await?;
        let mut ctx = install::InstallContext::new(InstallRequest {
            app_id: install.app_id.clone(),
            ..Default::default()
        });
        ctx.maintain = Some(request.clone());
        ctx.ctid = install.ctid;
        ctx.created = true;
        // The scripts of an upgrade or reconfigure learn the GPU the container has, as the
        // install's did, with the host's driver version of now.
        if let Some(ctid) = install.ctid {
            ctx.gpu = self.attached_gpu(ctid).await;
        }
        let ctx = serde_json::to_value(ctx).unwrap_or_default();
        Ok(self.queue_job(new, ctx).await?.id)
    }

    /// Runs an upgrade or reconfigure job to its end.
    pub async fn run_maintain(
        &self,
        kind: JobKind,
        job_id: i64,
        snapshot: Arc<CatalogSnapshot>,
        install: InstallRecord,
        request: MaintainRequest,
        cancel: CancelFlag,
    ) -> Result<JobState, EngineError> {
        let log = JobLog::new(self, job_id);
        let found = match kind {
            JobKind::Upgrade => snapshot
                .app(&install.app_id)
                .cloned()
                .map(|a| (Arc::clone(&snapshot), a))
                .ok_or_else(|| format!("{} is no longer in the catalog", install.app_id)),
            _ => self.installed_app(&snapshot, &install).await,
        };
        let (snapshot, app) = match found {
            Ok(f) => f,
            Err(e) => {
                self.enter(job_id, JobState::Queued, JobState::Failed, Some(e))
                    .await?;
                return Ok(JobState::Failed);
            }
        };
        let mut work = install::InstallWork::new(
            self.clone(),
            job_id,
            snapshot,
            app,
            InstallRequest {
                app_id: install.app_id.clone(),
                ..Default::default()
            },
            log.clone(),
            GitCache::new(&self.config.catalog_cache),
        );
        let ctid = install.ctid;
        work.maintain(kind, install, request);
        if let Some(ctid) = ctid {
            work.with_gpu(self.attached_gpu(ctid).await);
        }
        self.drive(kind, job_id, &mut work, &log, &cancel, None)
            .await
    }

    /// Resumes a job that a restart interrupted, from the state it was in; the steps check what was
    /// already done. A job that cannot resume ends `failed` with the reason.
    pub async fn resume(
        &self,
        job: crate::store::JobRecord,
        snapshot: Option<Arc<CatalogSnapshot>>,
        cancel: CancelFlag,
    ) -> Result<JobState, EngineError> {
        let log = JobLog::new(self, job.id);
        let state = job.state;
        match job.kind {
            JobKind::Control => self.resume_control(job, cancel).await,
            JobKind::Backup => self.resume_backup(job, cancel).await,
            JobKind::Restore => self.resume_restore(job, snapshot, cancel).await,
            kind @ (JobKind::Upgrade | JobKind::Reconfigure | JobKind::GpuSync) => {
                let ctx = match self.load_context(job.id).await {
                    Ok(c) => c,
                    Err(e) => return self.give_up(&job, &e).await,
                };
                let Some(request) = ctx.maintain.clone() else {
                    return self.give_up(&job, "the job saved no request").await;
                };
                let Some(snapshot) = snapshot else {
                    return self.give_up(&job, "the catalog is not loaded").await;
                };
                let store = self.store.clone();
                let install_id = request.install_id;
                let install = blocking(move || store.install(install_id)).await?;
                let Some(install) = install else {
                    return self.give_up(&job, "its install record is gone").await;
                };
                // The job's own manifest: the upgrade's target or the installed one.
                let pinned = InstallRecord {
                    manifest_sha256: job.manifest_sha256.clone(),
                    commit_id: job.commit_id.clone(),
                    ..install.clone()
                };
                let (snapshot, app) = match self.installed_app(&snapshot, &pinned).await {
                    Ok(f) => f,
                    Err(e) => return self.give_up(&job, &e).await,
                };
                let mut work = install::InstallWork::new(
                    self.clone(),
                    job.id,
                    snapshot,
                    app,
                    ctx.request.clone(),
                    log.clone(),
                    GitCache::new(&self.config.catalog_cache),
                );
                work.maintain(kind, install, request);
                if let Err(e) = work.restore(ctx, state) {
                    return self.give_up(&job, &e).await;
                }
                self.drive(kind, job.id, &mut work, &log, &cancel, Some(state))
                    .await
            }
            JobKind::Install => {
                let ctx = match self.load_context(job.id).await {
                    Ok(c) => c,
                    Err(e) => return self.give_up(&job, &e).await,
                };
                let snapshot = match snapshot {
                    Some(s) => s,
                    None => return self.give_up(&job, "the catalog is not loaded").await,
                };
                let app = match snapshot.app(&job.app_id) {
                    Some(a) if a.manifest_sha256 == job.manifest_sha256 => Arc::clone(a),
                    _ => {
                        return self
                            .give_up(&job, "the app changed in the catalog while the service was down; install it again")
                            .await
                    }
                };
                if let (Some(id), false) = (ctx.ctid, ctx.created) {
                    self.reserved_ctids.hold(id).await;
                }
                let request = ctx.request.clone();
                let mut work = install::InstallWork::new(
                    self.clone(),
                    job.id,
                    snapshot,
                    app,
                    request,
                    log.clone(),
                    GitCache::new(&self.config.catalog_cache),
                );
                if let Err(e) = work.restore(ctx, state) {
                    return self.give_up(&job, &e).await;
                }
                self.drive(
                    JobKind::Install,
                    job.id,
                    &mut work,
                    &log,
                    &cancel,
                    Some(state),
                )
                .await
            }
            JobKind::Uninstall => {
                let store = self.store.clone();
                let install_id = job.install_id.unwrap_or_default();
                let mut install = blocking(move || store.install(install_id)).await?;
                if job.install_id.is_none() {
                    // Destroying a failed install's container: its job says which.
                    if let Some(failed) = UninstallRequest::of(&job).failed_job {
                        let store = self.store.clone();
                        if let Some(fj) = blocking(move || store.job(failed)).await? {
                            install = Self::failed_install_of(&fj).ok();
                        }
                    }
                }
                let Some(install) = install else {
                    return self.give_up(&job, "its install record is gone").await;
                };
                let app = match &snapshot {
                    Some(s) => self.installed_app(s, &install).await.ok(),
                    None => None,
                };
                let stored = UninstallRequest::of(&job);
                let mut work =
                    uninstall::UninstallWork::new(self.clone(), job.id, install, app, log.clone())
                        .keeping_volumes(stored.keep_volumes)
                        .for_failed_job(stored.failed_job);
                self.drive(
                    JobKind::Uninstall,
                    job.id,
                    &mut work,
                    &log,
                    &cancel,
                    Some(state),
                )
                .await
            }
        }
    }

    /// Ends an interrupted job that cannot resume.
    pub(super) async fn give_up(
        &self,
        job: &crate::store::JobRecord,
        why: &str,
    ) -> Result<JobState, EngineError> {
        let reason = format!(
            "the service restarted while this job was in `{}` and it cannot resume: {why}",
            job.state
        );
        tracing::warn!(job_id = job.id, %reason, "interrupted job settled");
        JobLog::new(self, job.id).info(&reason).await;
        let store = self.store.clone();
        let (id, state, r) = (job.id, job.state, reason.clone());
        blocking(move || store.transition(id, state, JobState::Failed, Some(&r))).await?;
        let _ = self.events.send(JobEvent::State {
            job_id: job.id,
            state: JobState::Failed,
            reason: Some(reason),
        });
        Ok(JobState::Failed)
    }

    /// Creates the job record of an uninstall of `install`; `keep_volumes` keeps its data volumes
    /// for a later install of the same app.
    pub async fn create_uninstall_job(
        &self,
        install: &InstallRecord,
        keep_volumes: bool,
    ) -> Result<i64, EngineError> {
        let new = NewJob {
            kind: JobKind::Uninstall,
            app_id: install.app_id.clone(),
            install_id: Some(install.id),
            ctid: install.ctid,
            node: install.node.clone(),
            pool: install.pool.clone(),
            user_action: format!(
                "uninstall {} (container {})",
                install.app_id,
                shown_ctid(install.ctid)
            ),
            manifest_version: install.version.clone(),
            manifest_sha256: install.manifest_sha256.clone(),
            commit_id: install.commit_id.clone(),
            request: serde_json::json!(UninstallRequest {
                install_id: Some(install.id),
                failed_job: None,
                keep_volumes,
            })
            .to_string(),
        };
        let job = self.queue_job(new, serde_json::Value::Null).await?;
        Ok(job.id)
    }

    /// Runs an uninstall job to its end. `snapshot` supplies the app's uninstall script, when the
    /// catalog still has the app.
    pub async fn run_uninstall(
        &self,
        job_id: i64,
        install: InstallRecord,
        snapshot: Option<Arc<CatalogSnapshot>>,
        cancel: CancelFlag,
    ) -> Result<JobState, EngineError> {
        let log = JobLog::new(self, job_id);
        // The app as it was installed (from its catalog commit when the catalog moved on), for its
        // uninstall hook; without it the hook is skipped.
        let found = match &snapshot {
            Some(s) => self.installed_app(s, &install).await.ok(),
            None => None,
        };
        let stored = self.uninstall_request(job_id).await;
        let (keep, failed_job) = (stored.keep_volumes, stored.failed_job);
        let mut work =
            uninstall::UninstallWork::new(self.clone(), job_id, install, found, log.clone())
                .keeping_volumes(keep)
                .for_failed_job(failed_job);
        self.drive(JobKind::Uninstall, job_id, &mut work, &log, &cancel, None)
            .await
    }

    /// Stores the job's resume context, sealed, when it changed since `last`.
    pub(super) async fn save_context(
        &self,
        job_id: i64,
        context: serde_json::Value,
        last: &mut String,
    ) -> Result<(), EngineError> {
        if context.is_null() {
            return Ok(());
        }
        let text = context.to_string();
        if text == *last {
            return Ok(());
        }
        let sealed = self.secrets.seal(&text);
        let store = self.store.clone();
        blocking(move || store.set_job_context(job_id, &sealed)).await?;
        *last = text;
        Ok(())
    }

    /// The job's stored resume context, opened.
    pub(super) async fn load_context(
        &self,
        job_id: i64,
    ) -> Result<install::InstallContext, String> {
        let store = self.store.clone();
        let sealed = blocking(move || store.job_context(job_id))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the job saved no context")?;
        let text = self
            .secrets
            .open_value(&sealed)
            .map_err(|e| format!("the job's saved context cannot be opened: {e}"))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("the job's saved context is not valid: {e}"))
    }

    /// The container a failed or canceled install left behind, as an install record an uninstall
    /// can remove (it was never recorded as installed).
    pub fn failed_install_of(job: &crate::store::JobRecord) -> Result<InstallRecord, String> {
        // A restore into a new container leaves one as an install does; a restore over an
        // install's container (which names the install) does not.
        let makes_container = job.kind == JobKind::Install
            || (job.kind == JobKind::Restore && job.install_id.is_none());
        if !makes_container || !matches!(job.state, JobState::Failed | JobState::Canceled) {
            return Err(format!(
                "job {} is a {} job in `{}`; only a failed or canceled install leaves a container to destroy",
                job.id, job.kind, job.state
            ));
        }
        let Some(ctid) = job.ctid else {
            return Err(format!("job {} made no container", job.id));
        };
        Ok(InstallRecord {
            id: 0,
            app_id: job.app_id.clone(),
            ctid: Some(ctid),
            node: job.node.clone(),
            pool: job.pool.clone(),
            version: job.manifest_version.clone(),
            manifest_sha256: job.manifest_sha256.clone(),
            commit_id: job.commit_id.clone(),
            inputs: "{}".into(),
            outputs: "[]".into(),
            status: "failed".into(),
            created_at: job.created_at,
        })
    }

    /// Creates the job that destroys the container of the failed install `failed_job` (the same
    /// steps as an uninstall: boundary check, stop, destroy with purge).
    pub async fn create_destroy_failed_job(
        &self,
        failed_job: &crate::store::JobRecord,
    ) -> Result<(i64, InstallRecord), EngineError> {
        let install = Self::failed_install_of(failed_job).map_err(EngineError::Conflict)?;
        let new = NewJob {
            kind: JobKind::Uninstall,
            app_id: install.app_id.clone(),
            install_id: None,
            ctid: install.ctid,
            node: install.node.clone(),
            pool: install.pool.clone(),
            user_action: format!(
                "destroy the container {} of failed job {}",
                shown_ctid(install.ctid),
                failed_job.id
            ),
            manifest_version: install.version.clone(),
            manifest_sha256: install.manifest_sha256.clone(),
            commit_id: install.commit_id.clone(),
            request: serde_json::json!(UninstallRequest {
                install_id: None,
                failed_job: Some(failed_job.id),
                keep_volumes: false,
            })
            .to_string(),
        };
        let job = self.queue_job(new, serde_json::Value::Null).await?;
        Ok((job.id, install))
    }

    /// The stored request of uninstall job `job_id` (its volumes choice, the failed job it
    /// destroys the container of).
    pub(super) async fn uninstall_request(&self, job_id: i64) -> UninstallRequest {
        let store = self.store.clone();
        blocking(move || store.job(job_id))
            .await
            .ok()
            .flatten()
            .map(|j| UninstallRequest::of(&j))
            .unwrap_or_default()
    }

    /// Follows the state machine's decisions for one job until it ends, from `Queued` or, for a
    /// resumed job, from the state it was in.
    pub(super) async fn drive<W: Steps>(
        &self,
        kind: JobKind,
        job_id: i64,
        work: &mut W,
        log: &JobLog,
        cancel: &CancelFlag,
        resume_from: Option<JobState>,
    ) -> Result<JobState, EngineError> {
        let mut state = resume_from.unwrap_or(JobState::Queued);
        let mut attempts = 0;
        let mut saved = String::new();
        // An upgrade that failed after its snapshot: why, while the rollback runs.
        let mut rolling_back: Option<String> = None;
        if let Some(from) = resume_from {
            saved = work.context().to_string();
            tracing::info!(job_id, state = %from, "job resumed");
            log.info(&format!(
                "the service restarted; resuming at `{from}` (steps already done are checked, not repeated)"
            ))
            .await;
        }
        loop {
            let outcome = if cancel.is_canceled() {
                StepOutcome::Canceled
            } else {
                work.step(state).await
            };
            if outcome == StepOutcome::Done {
                // The hardest point to resume from: the step's work is done, none of it recorded.
                #[cfg(feature = "fault-injection")]
                if self.config.fault_hold_after == Some(state) {
                    log.info(&format!("fault injection: holding after `{state}`"))
                        .await;
                    std::future::pending::<()>().await;
                }
                self.save_context(job_id, work.context(), &mut saved)
                    .await?;
            }
            match next(kind, state, &outcome, attempts, &self.config.network_wait) {
                Transition::Advance { to } => {
                    tracing::info!(job_id, from = %state, to = %to, "job state");
                    self.enter(job_id, state, to, None).await?;
                    state = to;
                    attempts = 0;
                }
                Transition::Retry { after, attempt } => {
                    attempts = attempt;
                    tokio::time::sleep(after).await;
                }
                Transition::End {
                    to: JobState::Rollback,
                    reason,
                } => {
                    let why = reason.unwrap_or_default();
                    log.info(&format!("failed at {state}: {why}")).await;
                    tracing::info!(job_id, from = %state, reason = %why, "rolling back");
                    self.enter(job_id, state, JobState::Rollback, Some(why.clone()))
                        .await?;
                    state = JobState::Rollback;
                    attempts = 0;
                    rolling_back = Some(why);
                }
                Transition::End { to, reason } => {
                    // After a rollback the job fails with the upgrade's own reason.
                    let reason = match (rolling_back.take(), &outcome) {
                        (Some(why), StepOutcome::Done) => Some(format!(
                            "{why}; rolled back to the snapshot taken before the upgrade"
                        )),
                        (Some(why), _) => Some(format!(
                            "{why}; the rollback failed too: {}",
                            reason.unwrap_or_default()
                        )),
                        (None, _) => reason,
                    };
                    if let Some(r) = &reason {
                        log.line(
                            "engine",
                            &format!(
                                "{} at {}: {r}",
                                if to == JobState::Canceled {
                                    "canceled"
                                } else {
                                    "failed"
                                },
                                state
                            ),
                        )
                        .await;
                    }
                    if to != JobState::Completed {
                        work.after_failure().await;
                    }
                    tracing::info!(job_id, from = %state, to = %to, reason = reason.as_deref().unwrap_or(""), "job ended");
                    self.enter(job_id, state, to, reason).await?;
                    return Ok(to);
                }
            }
        }
    }
}

/// A container id for a job's description: `?` before one is allocated.
fn shown_ctid(ctid: Option<Ctid>) -> String {
    ctid.map_or_else(|| "?".to_string(), |c| c.to_string())
}
