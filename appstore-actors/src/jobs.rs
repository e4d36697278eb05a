//! JobRegistry: accepts install, uninstall, upgrade and reconfigure requests (answering with a job id
//! at once), runs at most `max_concurrent` jobs and queues the rest in order, never two on one
//! container, cancels on request, and resumes jobs that a restart interrupted. Each running job is a
//! [`JobActor`]: it owns the job's cancel switch and reports back when the job ended; the job's
//! steps run on the multi-thread runtime.

use crate::catalog::CatalogHandle;
use crate::engine::{CancelFlag, Engine, InstallRequest, MaintainRequest};
use crate::store::InstallRecord;
use actix::prelude::*;
use appstore_catalog::CatalogSnapshot;
use appstore_core::job::JobKind;
use appstore_core::Ctid;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Why a job was not made. The API maps each variant to its status, never the text.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// What the request names is not there (an install, a job).
    #[error("{0}")]
    NotFound(String),
    /// Another job is queued or running on the container.
    #[error("a job is already running on container {ctid}")]
    Busy {
        /// The container.
        ctid: Ctid,
    },
    /// The request does not fit the state of what it names.
    #[error("{0}")]
    Conflict(String),
    /// The request is not valid; `fields` says where, when it can.
    #[error("{message}")]
    Invalid {
        /// For people.
        message: String,
        /// Request field -> what is wrong with it.
        fields: std::collections::BTreeMap<String, String>,
    },
    /// The catalog has not been loaded yet (just after start).
    #[error("the catalog has not been loaded yet; try again in a moment")]
    CatalogNotLoaded,
    /// The job store failed.
    #[error("the job store failed")]
    Store(#[source] crate::store::StoreError),
    /// A blocking task of the submission died.
    #[error("the submission could not finish: {0}")]
    Internal(String),
    /// The engine did not answer (its registry is restarting).
    #[error("the job engine is unavailable: {0}")]
    Unavailable(String),
}

impl From<crate::engine::EngineError> for SubmitError {
    fn from(e: crate::engine::EngineError) -> Self {
        use crate::engine::EngineError;
        match e {
            EngineError::Store(s) => SubmitError::Store(s),
            EngineError::Rejected(message) => SubmitError::Invalid {
                message,
                fields: Default::default(),
            },
            e @ EngineError::Invalid { .. } => {
                let message = e.to_string();
                let EngineError::Invalid { fields } = e else {
                    unreachable!()
                };
                SubmitError::Invalid { message, fields }
            }
            EngineError::NotFound(m) => SubmitError::NotFound(m),
            EngineError::Conflict(m) => SubmitError::Conflict(m),
        }
    }
}

/// Request an install; answers with the job id (202 for the API) or why it was refused.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, SubmitError>")]
pub struct SubmitInstall(pub InstallRequest);

/// Cancel a job; answers whether it was queued or running.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct CancelJob(pub i64);

/// Request the uninstall of an installed app; answers with the job id.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, SubmitError>")]
pub struct SubmitUninstall {
    /// The install.
    pub install_id: i64,
    /// Keep the data volumes for a later install of the same app.
    pub keep_volumes: bool,
}

/// Request an upgrade (`JobKind::Upgrade`) or reconfigure (`JobKind::Reconfigure`) of an install;
/// answers with the job id.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, SubmitError>")]
pub struct SubmitMaintain {
    /// Upgrade or reconfigure.
    pub kind: JobKind,
    /// The install and the options.
    pub request: MaintainRequest,
}

/// Destroy the container a failed or canceled install left (stopped and tagged); answers with the
/// job id.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, SubmitError>")]
pub struct SubmitDestroyFailed {
    /// The failed install job.
    pub job_id: i64,
}

/// Request a power, resource or start-at-boot change of an install's container; answers with
/// the job id.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, SubmitError>")]
pub struct SubmitControl {
    /// The install.
    pub install_id: i64,
    /// The change.
    pub control: appstore_core::control::Control,
}

/// Request a backup of an install's container; answers with the job id.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, SubmitError>")]
pub struct SubmitBackup(pub crate::engine::BackupRequest);

/// Request a restore of one of the store's backups (into a new container, or over its install's
/// container); answers with the job id.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, SubmitError>")]
pub struct SubmitRestore(pub crate::engine::RestoreRequest);

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Finished(i64);

#[derive(Debug)]
enum Work {
    Install {
        request: InstallRequest,
        snapshot: Arc<CatalogSnapshot>,
    },
    Uninstall {
        install: InstallRecord,
        snapshot: Option<Arc<CatalogSnapshot>>,
    },
    Maintain {
        kind: JobKind,
        install: InstallRecord,
        request: MaintainRequest,
        snapshot: Arc<CatalogSnapshot>,
    },
    Control {
        install: InstallRecord,
        control: appstore_core::control::Control,
    },
    Backup {
        install: InstallRecord,
        request: crate::engine::BackupRequest,
    },
    Restore {
        request: crate::engine::RestoreRequest,
        over: Option<InstallRecord>,
        snapshot: Arc<CatalogSnapshot>,
    },
    /// A job a restart interrupted.
    Resume {
        job: crate::store::JobRecord,
        snapshot: Option<Arc<CatalogSnapshot>>,
    },
}

#[derive(Debug)]
struct Queued {
    job_id: i64,
    ctid: Option<Ctid>,
    work: Work,
}

/// One running job (and so, with the registry's check, the one job of its container).
#[derive(Debug)]
pub struct JobActor {
    job_id: i64,
    cancel: CancelFlag,
    work: Option<(Engine, Work)>,
    registry: Addr<JobRegistry>,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Cancel;

impl Actor for JobActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some((engine, work)) = self.work.take() else {
            ctx.stop();
            return;
        };
        let (job_id, cancel) = (self.job_id, self.cancel.clone());
        let handle = tokio::spawn(async move {
            let result = match work {
                Work::Install { request, snapshot } => {
                    engine.run_install(job_id, snapshot, request, cancel).await
                }
                Work::Uninstall { install, snapshot } => {
                    engine
                        .run_uninstall(job_id, install, snapshot, cancel)
                        .await
                }
                Work::Maintain {
                    kind,
                    install,
                    request,
                    snapshot,
                } => {
                    engine
                        .run_maintain(kind, job_id, snapshot, install, request, cancel)
                        .await
                }
                Work::Control { install, control } => {
                    engine
                        .run_control(job_id, install, control, cancel, None)
                        .await
                }
                Work::Backup { install, request } => {
                    engine
                        .run_backup(job_id, install, request, cancel, None)
                        .await
                }
                Work::Restore {
                    request,
                    over,
                    snapshot,
                } => {
                    engine
                        .run_restore(job_id, snapshot, request, over, cancel)
                        .await
                }
                Work::Resume { job, snapshot } => engine.resume(job, snapshot, cancel).await,
            };
            if let Err(e) = result {
                tracing::error!(job_id, error = %e, "job engine failed");
            }
        });
        ctx.spawn(
            async move {
                if let Err(e) = handle.await {
                    // A panic in a job's steps: the job stays where the store has it, and the next
                    // start resumes it.
                    tracing::error!(job_id, error = %e, "job task ended abnormally");
                }
            }
            .into_actor(self)
            .map(|(), act, ctx| {
                act.registry.do_send(Finished(act.job_id));
                ctx.stop();
            }),
        );
    }
}

impl Handler<Cancel> for JobActor {
    type Result = ();

    fn handle(&mut self, _: Cancel, _: &mut Self::Context) {
        self.cancel.cancel();
    }
}

/// Schedules jobs.
#[derive(Debug)]
pub struct JobRegistry {
    engine: Engine,
    catalog: CatalogHandle,
    max_concurrent: usize,
    running: HashMap<i64, (Addr<JobActor>, Option<Ctid>)>,
    queue: VecDeque<Queued>,
    /// Containers a submission has claimed while its job record is being written: the check and
    /// the claim happen in one actor step, so two submissions for one container never both pass.
    claimed: std::collections::HashSet<Ctid>,
}

impl JobRegistry {
    /// A registry running at most `max_concurrent` installs at once.
    pub fn new(engine: Engine, catalog: CatalogHandle, max_concurrent: usize) -> Self {
        JobRegistry {
            engine,
            catalog,
            max_concurrent: max_concurrent.max(1),
            running: HashMap::new(),
            queue: VecDeque::new(),
            claimed: Default::default(),
        }
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.running.len() < self.max_concurrent {
            let Some(q) = self.queue.pop_front() else {
                break;
            };
            let actor = JobActor {
                job_id: q.job_id,
                cancel: CancelFlag::default(),
                work: Some((self.engine.clone(), q.work)),
                registry: ctx.address(),
            }
            .start();
            self.running.insert(q.job_id, (actor, q.ctid));
        }
    }
}

impl Actor for JobRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Jobs a restart interrupted resume from their stored state (their steps check what was
        // already done), ahead of anything new. This runs before the registry takes any message, so a
        // new job is never mistaken for an old one.
        let engine = self.engine.clone();
        let catalog = self.catalog.clone();
        ctx.wait(
            async move {
                let store = engine.store.clone();
                let unfinished = tokio::task::spawn_blocking(move || store.unfinished_jobs()).await;
                let jobs = match unfinished {
                    Ok(Ok(jobs)) => jobs,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot read unfinished jobs");
                        Vec::new()
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read unfinished jobs");
                        Vec::new()
                    }
                };
                // An install resumes against the catalog it was requested from: wait for the first load.
                let mut snapshot = catalog.snapshot();
                if !jobs.is_empty() {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                    while snapshot.is_none() && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        snapshot = catalog.snapshot();
                    }
                }
                (jobs, snapshot)
            }
            .into_actor(self)
            .map(|(jobs, snapshot), act, ctx| {
                // After a supervised restart the jobs still running are not interrupted ones.
                let jobs: Vec<_> = jobs
                    .into_iter()
                    .filter(|j| {
                        !act.running.contains_key(&j.id) && !act.queue.iter().any(|q| q.job_id == j.id)
                    })
                    .collect();
                for job in jobs {
                    tracing::info!(job_id = job.id, state = %job.state, "resuming an interrupted job");
                    act.queue.push_back(Queued {
                        job_id: job.id,
                        ctid: job.ctid,
                        work: Work::Resume {
                            job,
                            snapshot: snapshot.clone(),
                        },
                    });
                }
                act.pump(ctx);
            }),
        );
    }
}

impl actix::Supervised for JobRegistry {}

impl Handler<SubmitInstall> for JobRegistry {
    type Result = ResponseActFuture<Self, Result<i64, SubmitError>>;

    fn handle(&mut self, msg: SubmitInstall, _: &mut Self::Context) -> Self::Result {
        let Some(snapshot) = self.catalog.snapshot() else {
            return Box::pin(actix::fut::ready(Err(SubmitError::CatalogNotLoaded)));
        };
        let engine = self.engine.clone();
        let request = msg.0;
        Box::pin(
            async move {
                let id = engine.create_install_job(&snapshot, &request).await?;
                Ok((id, request, snapshot))
            }
            .into_actor(self)
            .map(
                |res: Result<(i64, InstallRequest, Arc<CatalogSnapshot>), SubmitError>,
                 act,
                 ctx| {
                    let (job_id, request, snapshot) = res?;
                    act.queue.push_back(Queued {
                        job_id,
                        ctid: None,
                        work: Work::Install { request, snapshot },
                    });
                    act.pump(ctx);
                    Ok(job_id)
                },
            ),
        )
    }
}

impl JobRegistry {
    /// Is a job queued or running on `ctid`? (Never two jobs on one container.)
    fn busy(&self, ctid: Ctid) -> bool {
        self.claimed.contains(&ctid)
            || self.running.values().any(|(_, c)| *c == Some(ctid))
            || self.queue.iter().any(|q| q.ctid == Some(ctid))
    }

    /// A job on an existing container: `find` reads what it acts on and its container; back in the
    /// actor a busy container is refused; `create` makes the job record and its work, which is
    /// queued.
    fn submit_on_container<T, C, CF>(
        &mut self,
        find: impl std::future::Future<Output = Result<(T, Option<Ctid>), SubmitError>> + 'static,
        create: C,
    ) -> ResponseActFuture<Self, Result<i64, SubmitError>>
    where
        T: 'static,
        C: FnOnce(Engine, T) -> CF + 'static,
        CF: std::future::Future<Output = Result<Queued, SubmitError>> + 'static,
    {
        Box::pin(
            find.into_actor(self)
                .then(move |res: Result<(T, Option<Ctid>), SubmitError>, act, _| {
                    let engine = act.engine.clone();
                    let ctid = res.as_ref().ok().and_then(|(_, ctid)| *ctid);
                    let busy = ctid.filter(|c| act.busy(*c));
                    // Checked and claimed in this one step of the actor.
                    let claim = match (ctid, busy) {
                        (Some(c), None) => {
                            act.claimed.insert(c);
                            Some(c)
                        }
                        _ => None,
                    };
                    async move {
                        let (found, _) = res?;
                        if let Some(ctid) = busy {
                            return Err(SubmitError::Busy { ctid });
                        }
                        create(engine, found).await
                    }
                    .into_actor(act)
                    .map(move |res, act: &mut Self, _| {
                        if let Some(c) = claim {
                            act.claimed.remove(&c);
                        }
                        res
                    })
                })
                .map(|res: Result<Queued, SubmitError>, act, ctx| {
                    let queued = res?;
                    let job_id = queued.job_id;
                    act.queue.push_back(queued);
                    act.pump(ctx);
                    Ok(job_id)
                }),
        )
    }
}

/// The install `id`, which must be installed (not removed).
async fn installed(engine: Engine, id: i64) -> Result<(InstallRecord, Option<Ctid>), SubmitError> {
    let store = engine.store.clone();
    let install = tokio::task::spawn_blocking(move || store.install(id))
        .await
        .map_err(|e| SubmitError::Internal(e.to_string()))?
        .map_err(SubmitError::Store)?
        .ok_or_else(|| SubmitError::NotFound(format!("no install {id}")))?;
    if install.status != "installed" {
        return Err(SubmitError::Conflict(format!(
            "install {id} is {}, not installed",
            install.status
        )));
    }
    let ctid = install.ctid;
    Ok((install, ctid))
}

impl Handler<SubmitUninstall> for JobRegistry {
    type Result = ResponseActFuture<Self, Result<i64, SubmitError>>;

    fn handle(&mut self, msg: SubmitUninstall, _: &mut Self::Context) -> Self::Result {
        let snapshot = self.catalog.snapshot();
        let find = installed(self.engine.clone(), msg.install_id);
        self.submit_on_container(find, move |engine, install: InstallRecord| async move {
            let job_id = engine
                .create_uninstall_job(&install, msg.keep_volumes)
                .await?;
            Ok(Queued {
                job_id,
                ctid: install.ctid,
                work: Work::Uninstall { install, snapshot },
            })
        })
    }
}

impl Handler<SubmitMaintain> for JobRegistry {
    type Result = ResponseActFuture<Self, Result<i64, SubmitError>>;

    fn handle(&mut self, msg: SubmitMaintain, _: &mut Self::Context) -> Self::Result {
        let Some(snapshot) = self.catalog.snapshot() else {
            return Box::pin(actix::fut::ready(Err(SubmitError::CatalogNotLoaded)));
        };
        let SubmitMaintain { kind, request } = msg;
        let find = installed(self.engine.clone(), request.install_id);
        self.submit_on_container(find, move |engine, install: InstallRecord| async move {
            let job_id = engine
                .create_maintain_job(kind, &snapshot, &install, &request)
                .await?;
            Ok(Queued {
                job_id,
                ctid: install.ctid,
                work: Work::Maintain {
                    kind,
                    install,
                    request,
                    snapshot,
                },
            })
        })
    }
}

impl Handler<SubmitControl> for JobRegistry {
    type Result = ResponseActFuture<Self, Result<i64, SubmitError>>;

    fn handle(&mut self, msg: SubmitControl, _: &mut Self::Context) -> Self::Result {
        let find = installed(self.engine.clone(), msg.install_id);
        let control = msg.control;
        self.submit_on_container(find, move |engine, install: InstallRecord| async move {
            let job_id = engine.create_control_job(&install, &control).await?;
            Ok(Queued {
                job_id,
                ctid: install.ctid,
                work: Work::Control { install, control },
            })
        })
    }
}

impl Handler<SubmitBackup> for JobRegistry {
    type Result = ResponseActFuture<Self, Result<i64, SubmitError>>;

    fn handle(&mut self, msg: SubmitBackup, _: &mut Self::Context) -> Self::Result {
        let request = msg.0;
        let find = installed(self.engine.clone(), request.install_id);
        self.submit_on_container(find, move |engine, install: InstallRecord| async move {
            let job_id = engine.create_backup_job(&install, &request).await?;
            Ok(Queued {
                job_id,
                ctid: install.ctid,
                work: Work::Backup { install, request },
            })
        })
    }
}

impl Handler<SubmitRestore> for JobRegistry {
    type Result = ResponseActFuture<Self, Result<i64, SubmitError>>;

    fn handle(&mut self, msg: SubmitRestore, _: &mut Self::Context) -> Self::Result {
        let Some(snapshot) = self.catalog.snapshot() else {
            return Box::pin(actix::fut::ready(Err(SubmitError::CatalogNotLoaded)));
        };
        let request = msg.0;
        let engine = self.engine.clone();
        let over_id = request.over_install;
        let find = async move {
            match over_id {
                Some(id) => {
                    let (install, ctid) = installed(engine, id).await?;
                    Ok((Some(install), ctid))
                }
                None => Ok((None, None)),
            }
        };
        self.submit_on_container(
            find,
            move |engine, over: Option<InstallRecord>| async move {
                let job_id = engine
                    .create_restore_job(&snapshot, &request, over.as_ref())
                    .await?;
                Ok(Queued {
                    job_id,
                    ctid: over.as_ref().and_then(|i| i.ctid),
                    work: Work::Restore {
                        request,
                        over,
                        snapshot,
                    },
                })
            },
        )
    }
}

impl Handler<SubmitDestroyFailed> for JobRegistry {
    type Result = ResponseActFuture<Self, Result<i64, SubmitError>>;

    fn handle(&mut self, msg: SubmitDestroyFailed, _: &mut Self::Context) -> Self::Result {
        let snapshot = self.catalog.snapshot();
        let engine = self.engine.clone();
        let id = msg.job_id;
        let find = async move {
            let store = engine.store.clone();
            let job = tokio::task::spawn_blocking(move || store.job(id))
                .await
                .map_err(|e| SubmitError::Internal(e.to_string()))?
                .map_err(SubmitError::Store)?
                .ok_or_else(|| SubmitError::NotFound(format!("no job {id}")))?;
            Engine::failed_install_of(&job).map_err(SubmitError::Conflict)?;
            let ctid = job.ctid;
            Ok((job, ctid))
        };
        self.submit_on_container(
            find,
            move |engine, job: crate::store::JobRecord| async move {
                let (job_id, install) = engine.create_destroy_failed_job(&job).await?;
                Ok(Queued {
                    job_id,
                    ctid: install.ctid,
                    work: Work::Uninstall { install, snapshot },
                })
            },
        )
    }
}

impl Handler<Finished> for JobRegistry {
    type Result = ();

    fn handle(&mut self, msg: Finished, ctx: &mut Self::Context) {
        self.running.remove(&msg.0);
        self.pump(ctx);
    }
}

impl Handler<CancelJob> for JobRegistry {
    type Result = bool;

    fn handle(&mut self, msg: CancelJob, _: &mut Self::Context) -> bool {
        if let Some((actor, _)) = self.running.get(&msg.0) {
            actor.do_send(Cancel);
            return true;
        }
        if let Some(pos) = self.queue.iter().position(|q| q.job_id == msg.0) {
            self.queue.remove(pos);
            let store = self.engine.store.clone();
            let events = self.engine.events.clone();
            let id = msg.0;
            tokio::task::spawn_blocking(move || {
                if store
                    .transition(
                        id,
                        appstore_core::job::JobState::Queued,
                        appstore_core::job::JobState::Canceled,
                        Some("canceled by the user"),
                    )
                    .is_ok()
                {
                    let _ = events.send(crate::engine::JobEvent::State {
                        job_id: id,
                        state: appstore_core::job::JobState::Canceled,
                        reason: Some("canceled by the user".into()),
                    });
                }
            });
            return true;
        }
        false
    }
}
