//! The steps of an install, each idempotent so a resumed job finds what it already did. The work
//! itself is split along its seams: `request` (what the user asks), `create` (to a running
//! container), `gpu_steps`, `provision` (files, scripts, health check, outputs) and `maintain`
//! (upgrade and reconfigure).

mod create;
mod gpu_steps;
mod gpu_sync;
mod maintain;
mod provision;
mod request;
mod restore;

pub use maintain::reconfigure_keys;
pub use request::{InstallRequest, MaintainRequest, NetworkRequest, UninstallRequest};
pub use restore::RestoreRequest;

use super::gpu::GpuPlan;
use super::{blocking, Engine, JobLog};
use crate::store::{InstallRecord, Store};
use appstore_catalog::{CatalogApp, CatalogSnapshot, GitCache};
use appstore_core::inputs::{resolve, ResolvedInputs};
use appstore_core::job::{JobKind, JobState, StepOutcome};
use appstore_core::manifest::{GpuProfile, Manifest, VolumeSource};
use appstore_core::policy::{
    app_tag, join_tags, parse_tags, Decision, ResourceRequest, FAILED_TAG, MANAGED_TAG,
};
use appstore_core::redact::Redactor;
use appstore_core::template;
use appstore_core::upgrade::{check, UpgradeCheck};
use appstore_core::Ctid;
use appstore_helper::{Reply, Request};
use appstore_pve::types::{CreateLxc, NetConfig};
use appstore_pve::{wait_task, PveError, Upid};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

fn random_secret() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

pub(in crate::engine) fn failed(reason: impl Into<String>) -> StepOutcome {
    StepOutcome::Failed {
        reason: reason.into(),
    }
}

/// Waits for the PVE task `upid` (`what` it does, for the failure) within the task deadline.
pub(in crate::engine) async fn wait_for(
    engine: &Engine,
    what: &str,
    upid: Result<Upid, PveError>,
) -> Result<(), StepOutcome> {
    let upid = upid.map_err(|e| pve_failed(what, e))?;
    wait_task(engine.pve.as_ref(), &upid, engine.config.task_deadline)
        .await
        .map(|_| ())
        .map_err(|e| pve_failed(what, e))
}

pub(in crate::engine) fn pve_failed(what: &str, e: PveError) -> StepOutcome {
    let mut reason = format!("{what}: {e}");
    if let PveError::TaskFailed { log, .. } = &e {
        if let Some(last) = log.iter().rev().find(|l| !l.starts_with("TASK ERROR")) {
            reason.push_str(&format!(" (task log: {last})"));
        }
    }
    failed(reason)
}

/// What an install has decided so far, kept (sealed) so a restarted service resumes it: the whole
/// request, the resolved inputs (generated passwords included), the template, the container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct InstallContext {
    pub(super) request: InstallRequest,
    #[serde(default)]
    inputs: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    pub(super) ctid: Option<Ctid>,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    pub(super) created: bool,
    /// Upgrade and reconfigure: what was asked.
    #[serde(default)]
    pub(super) maintain: Option<MaintainRequest>,
    /// Upgrade: the snapshot taken before it.
    #[serde(default)]
    pub(super) snapshot: Option<String>,
    /// The GPU chosen and, once attached, what was passed through.
    #[serde(default)]
    pub(super) gpu: Option<GpuPlan>,
    /// Restore: what is restored, and where.
    #[serde(default)]
    pub(super) restore: Option<restore::RestoreRequest>,
    /// Restore: PVE's restore task, once started.
    #[serde(default)]
    pub(super) restore_upid: Option<String>,
}

impl InstallContext {
    /// A new install's context: only the request.
    pub(super) fn new(request: InstallRequest) -> Self {
        InstallContext {
            request,
            ..Default::default()
        }
    }
}

/// The state of one install between steps.
pub(super) struct InstallWork {
    kind: JobKind,
    /// Upgrade and reconfigure: the install and what was asked.
    existing: Option<(InstallRecord, MaintainRequest)>,
    /// Upgrade: the snapshot to roll back to.
    pve_snapshot: Option<String>,
    engine: Engine,
    job_id: i64,
    snapshot: Arc<CatalogSnapshot>,
    app: Arc<CatalogApp>,
    request: InstallRequest,
    log: JobLog,
    cache: GitCache,
    inputs: Option<ResolvedInputs>,
    template: Option<String>,
    ctid: Option<Ctid>,
    ip: Option<String>,
    created: bool,
    /// The GPU plan (install), or the GPU the container has (upgrade, reconfigure).
    gpu: Option<GpuPlan>,
    /// Set when the service restarted in this state: the first step run is a resumed one.
    resumed_in: Option<JobState>,
    /// Restore: what is restored, and where.
    restore: Option<restore::RestoreRequest>,
    /// Restore: PVE's restore task, once started.
    restore_upid: Option<String>,
}

impl InstallWork {
    pub(super) fn new(
        engine: Engine,
        job_id: i64,
        snapshot: Arc<CatalogSnapshot>,
        app: Arc<CatalogApp>,
        request: InstallRequest,
        log: JobLog,
        cache: GitCache,
    ) -> Self {
        InstallWork {
            kind: JobKind::Install,
            existing: None,
            pve_snapshot: None,
            engine,
            job_id,
            snapshot,
            app,
            request,
            log,
            cache,
            inputs: None,
            template: None,
            ctid: None,
            ip: None,
            created: false,
            gpu: None,
            resumed_in: None,
            restore: None,
            restore_upid: None,
        }
    }

    /// Takes up what a job saved before the service restarted in `state`.
    pub(super) fn restore(&mut self, ctx: InstallContext, state: JobState) -> Result<(), String> {
        if let Some(saved) = &ctx.inputs {
            // The saved values (generated secrets included) resolve to themselves.
            let inputs = resolve(self.manifest(), saved, &mut random_secret).map_err(|errors| {
                format!(
                    "the saved inputs no longer resolve: {}",
                    errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            self.log.set_redactor(self.redactor(&inputs));
            self.inputs = Some(inputs);
        }
        self.request = ctx.request;
        self.template = ctx.template;
        self.ctid = ctx.ctid;
        self.ip = ctx.ip;
        self.created = ctx.created;
        self.pve_snapshot = ctx.snapshot;
        self.gpu = ctx.gpu;
        self.restore = ctx.restore;
        self.restore_upid = ctx.restore_upid;
        if self.restore.is_some() {
            self.kind = JobKind::Restore;
        }
        self.resumed_in = Some(state);
        Ok(())
    }

    /// Makes this an upgrade or reconfigure of `install`.
    /// The GPU the container has, for the environment of an upgrade's or reconfigure's scripts.
    pub(super) fn with_gpu(&mut self, gpu: Option<GpuPlan>) {
        self.gpu = gpu;
    }

    pub(super) fn maintain(
        &mut self,
        kind: JobKind,
        install: InstallRecord,
        request: MaintainRequest,
    ) {
        self.kind = kind;
        self.ctid = install.ctid;
        self.created = true;
        self.existing = Some((install, request));
    }

    pub(super) fn redactor(&self, inputs: &ResolvedInputs) -> Redactor {
        manifest_redactor(self.manifest(), inputs.secret_values())
    }

    pub(super) fn context_value(&self) -> Value {
        let ctx = InstallContext {
            request: self.request.clone(),
            inputs: self.inputs.as_ref().and_then(|i| match i.to_json() {
                Value::Object(m) => Some(m),
                _ => None,
            }),
            template: self.template.clone(),
            ctid: self.ctid,
            ip: self.ip.clone(),
            created: self.created,
            maintain: self.existing.as_ref().map(|(_, r)| r.clone()),
            snapshot: self.pve_snapshot.clone(),
            gpu: self.gpu.clone(),
            restore: self.restore.clone(),
            restore_upid: self.restore_upid.clone(),
        };
        serde_json::to_value(ctx).unwrap_or(Value::Null)
    }

    pub(super) fn manifest(&self) -> &Manifest {
        &self.app.manifest
    }

    pub(super) fn node(&self) -> &str {
        &self.engine.config.node
    }

    pub(super) async fn step_impl(&mut self, state: JobState) -> StepOutcome {
        if self.resumed_in.take() == Some(JobState::Provision) {
            if !self.manifest().provision().retry_safe {
                return failed(format!(
                    "the service restarted while {} was running; the app does not mark it `retry_safe`, so it is not run twice: destroy this container and install again",
                    self.manifest().provision().script
                ));
            }
            // The files may be gone or half-changed: deliver them again before the second run.
            self.log
                .info("the install script is retry_safe: running it again")
                .await;
            let pushed = self.push_assets().await;
            if pushed != StepOutcome::Done {
                return pushed;
            }
        }
        match (self.kind, state) {
            (_, JobState::Queued) => return StepOutcome::Done,
            (JobKind::Restore, s)
                if !matches!(
                    s,
                    JobState::WaitForNetwork
                        | JobState::PushAssets
                        | JobState::Healthcheck
                        | JobState::CollectOutputs
                ) =>
            {
                return self.restore_step(s).await
            }
            (JobKind::Upgrade | JobKind::Reconfigure, JobState::CheckBoundary) => {
                return match self.ctid {
                    Some(ctid) => super::check_boundary(&self.engine, ctid).await,
                    None => failed("the install has no container"),
                }
            }
            (JobKind::Upgrade, JobState::ValidateManifest) => return self.validate_upgrade().await,
            (JobKind::Reconfigure, JobState::ValidateRequest) => {
                return self.validate_reconfigure().await
            }
            (JobKind::Upgrade, JobState::Snapshot) => return self.take_snapshot().await,
            (JobKind::Upgrade, JobState::RunUpgrade) => return self.run_upgrade().await,
            (JobKind::Upgrade, JobState::Rollback) => return self.rollback().await,
            (JobKind::Upgrade, JobState::RemoveSnapshot) => return self.remove_snapshot().await,
            (JobKind::Reconfigure, JobState::RunReconfigure) => {
                return self.run_reconfigure().await
            }
            (JobKind::GpuSync, JobState::CheckBoundary) => {
                return match self.ctid {
                    Some(ctid) => super::check_boundary(&self.engine, ctid).await,
                    None => failed("the install has no container"),
                }
            }
            (JobKind::GpuSync, JobState::ValidateRequest) => return self.validate_gpu_sync().await,
            (JobKind::GpuSync, JobState::AttachGpu) => return self.reattach_gpu().await,
            (JobKind::GpuSync, JobState::RunGpuSync) => return self.run_gpu_sync().await,
            _ => {}
        }
        match state {
            JobState::Queued => StepOutcome::Done,
            JobState::ValidateRequest => self.validate_request().await,
            JobState::ValidateManifest => self.validate_manifest().await,
            JobState::ValidatePlacement => self.validate_placement().await,
            JobState::ValidateGpu => self.validate_gpu().await,
            JobState::AttachGpu => self.attach_gpu().await,
            JobState::AllocateCtid => self.allocate_ctid().await,
            JobState::CreateContainer => self.create().await,
            JobState::ConfigureContainer => self.configure().await,
            JobState::StartContainer => self.start().await,
            JobState::WaitForNetwork => self.wait_for_network().await,
            JobState::PushAssets => self.push_assets().await,
            JobState::Provision => self.provision().await,
            JobState::Healthcheck => self.healthcheck().await,
            JobState::CollectOutputs => self.collect_outputs().await,
            other => failed(format!("`{other}` is not a step of an install")),
        }
    }

    pub(super) async fn wait(
        &self,
        what: &str,
        upid: Result<Upid, PveError>,
    ) -> Result<(), StepOutcome> {
        wait_for(&self.engine, what, upid).await
    }

    /// Runs a helper request and returns its stdout lines (every line also goes to the job log).
    pub(super) async fn helper_lines(&self, req: Request) -> Result<Vec<String>, StepOutcome> {
        self.helper_with_output(req).await.map(|(_, lines)| lines)
    }

    pub(super) async fn helper(&self, req: Request) -> Result<Reply, StepOutcome> {
        self.helper_with_output(req).await.map(|(reply, _)| reply)
    }

    /// Runs a helper request: its output lines go to the job log, and its stdout lines come back
    /// with the final reply; a refusal or failure ends the step with the helper's message.
    pub(super) async fn helper_with_output(
        &self,
        req: Request,
    ) -> Result<(Reply, Vec<String>), StepOutcome> {
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (log, sink) = (self.log.clone(), Arc::clone(&lines));
        let reply = self
            .engine
            .helper
            .call(
                req,
                Box::new(move |stream, line| {
                    log.line_blocking(stream, line);
                    if stream == "stdout" {
                        if let Ok(mut l) = sink.lock() {
                            l.push(line.to_string());
                        }
                    }
                }),
            )
            .await
            .map_err(|e| failed(format!("the privileged helper: {e}")))?;
        if let Reply::Failed { error, .. } = reply {
            return Err(failed(format!(
                "the privileged helper refused or failed ({}): {}",
                error.code, error.message
            )));
        }
        let out = lines.lock().map(|l| l.clone()).unwrap_or_default();
        Ok((reply, out))
    }

    pub(super) fn job_dir(&self) -> std::path::PathBuf {
        self.engine.config.jobs_dir.join(self.job_id.to_string())
    }

    /// After a failure or cancel: the container (if this job made one) is stopped and tagged failed.
    pub(super) async fn after_failure_impl(&mut self) {
        let _ = std::fs::remove_file(self.job_dir().join("files.tar"));
        let new_container = self.kind == JobKind::Install
            || (self.kind == JobKind::Restore && self.existing.is_none());
        if !new_container {
            // An installed app stays as the rollback (or the failed step) left it, running.
            return;
        }
        if let (Some(ctid), false) = (self.ctid, self.created) {
            // The create may have gone through although the job never saw it end (a task that
            // outlived its deadline): the container says so in its description.
            if let Ok(cfg) = self.engine.pve.lxc_config(self.node(), ctid).await {
                if super::created_by_job(cfg.options.get("description"), self.job_id) {
                    self.created = true;
                }
            }
            if !self.created {
                self.engine.reserved_ctids.release(ctid).await;
            }
        }
        let (Some(ctid), true) = (self.ctid, self.created) else {
            return;
        };
        let pve = Arc::clone(&self.engine.pve);
        if let Ok(s) = pve.lxc_status(self.node(), ctid).await {
            if s.status == "running" {
                if let Ok(upid) = pve.lxc_stop(self.node(), ctid).await {
                    let _ = wait_task(pve.as_ref(), &upid, self.engine.config.task_deadline).await;
                }
            }
        }
        if let Ok(cfg) = pve.lxc_config(self.node(), ctid).await {
            let mut tags = cfg
                .options
                .get("tags")
                .map(|t| parse_tags(t))
                .unwrap_or_default();
            // Created by this job, so the store's: managed, failed and its app, whatever step
            // the job failed at (the tagging may not have happened yet).
            let app = app_tag(self.manifest().id());
            for t in [MANAGED_TAG, FAILED_TAG, app.as_str()] {
                if !tags.iter().any(|x| x == t) {
                    tags.push(t.into());
                }
            }
            let value = join_tags(tags.iter().map(String::as_str));
            let _ = pve
                .lxc_update_config(
                    self.node(),
                    ctid,
                    &[("tags".into(), value)],
                    &[],
                    Some(&cfg.digest),
                )
                .await;
        }
        self.log.info(&format!("container {ctid} was stopped and tagged {FAILED_TAG}; destroy it from the job page, or look inside first")).await;
    }
}

impl super::Steps for InstallWork {
    async fn step(&mut self, state: JobState) -> StepOutcome {
        self.step_impl(state).await
    }

    fn context(&self) -> Value {
        self.context_value()
    }

    async fn after_failure(&mut self) {
        self.after_failure_impl().await
    }
}

/// A redactor for an app's `secrets`, masking also the values of the keys its manifest names
/// (`provision.redact_keys` and its secret inputs).
fn manifest_redactor(m: &Manifest, secrets: Vec<String>) -> Redactor {
    let mut keys: Vec<String> = m.provision().redact_keys.clone();
    keys.extend(secret_input_keys(m).map(str::to_string));
    Redactor::new(secrets, keys)
}

/// The keys of the manifest's secret inputs.
fn secret_input_keys(m: &Manifest) -> impl Iterator<Item = &str> {
    m.inputs()
        .iter()
        .filter(|i| i.kind == appstore_core::manifest::InputType::Secret)
        .map(|i| i.key.as_str())
}

/// The inputs kept sealed for install `id` (every value, secrets included), opened; `None` when
/// none were kept. Blocking (it reads the store).
pub(crate) fn open_saved_inputs(
    store: &Store,
    secrets: &crate::secrets::SecretBox,
    id: i64,
) -> Result<Option<serde_json::Map<String, Value>>, String> {
    let Some(sealed) = store
        .install_inputs(id)
        .map_err(|e| format!("reading the install's inputs: {e}"))?
    else {
        return Ok(None);
    };
    let text = secrets
        .open_value(&sealed)
        .map_err(|e| format!("the install's inputs cannot be opened: {e}"))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("the install's inputs are not valid: {e}"))
}

/// A redactor for what an installed app prints (its service log): the install's secret inputs as
/// kept sealed at its last install, upgrade or reconfigure, and its secret outputs. Blocking (it
/// reads the store). Inputs or outputs that cannot be opened add nothing.
pub fn install_redactor(
    store: &Store,
    secrets: &crate::secrets::SecretBox,
    install: &InstallRecord,
    manifest: &Manifest,
) -> Redactor {
    let saved = open_saved_inputs(store, secrets, install.id)
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut values: Vec<String> = secret_input_keys(manifest)
        .filter_map(|key| saved.get(key)?.as_str().map(str::to_string))
        .collect();
    let outputs: Value = serde_json::from_str(&install.outputs).unwrap_or(Value::Null);
    for o in outputs.as_array().into_iter().flatten() {
        if o["secret"] == true {
            if let Some(v) = o["value"].as_str().and_then(|s| secrets.open_value(s).ok()) {
                values.push(v);
            }
        }
    }
    manifest_redactor(manifest, values)
}
