//! The steps of an install, each idempotent so a resumed job finds what it already did.

use super::gpu::GpuPlan;
use super::{blocking, Engine, JobLog};
use crate::store::InstallRecord;
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
use appstore_helper::{Reply, Request};
use appstore_pve::types::{CreateLxc, NetConfig};
use appstore_pve::{wait_task, PveError, Upid};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Network choices of an install.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkRequest {
    /// `dhcp` (default) or a static IPv4 address with prefix.
    #[serde(default)]
    pub ip: Option<String>,
    /// IPv4 gateway (static only).
    #[serde(default)]
    pub gw: Option<String>,
    /// `auto`, `dhcp` or a static IPv6 address with prefix.
    #[serde(default)]
    pub ip6: Option<String>,
    /// IPv6 gateway.
    #[serde(default)]
    pub gw6: Option<String>,
    /// VLAN tag.
    #[serde(default)]
    pub vlan: Option<u16>,
}

/// What the user asked for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// The app.
    pub app_id: String,
    /// Form values.
    #[serde(default)]
    pub inputs: serde_json::Map<String, Value>,
    /// Hostname (default: the app id).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Storage override.
    #[serde(default)]
    pub storage: Option<String>,
    /// Bridge override.
    #[serde(default)]
    pub bridge: Option<String>,
    /// Cores override.
    #[serde(default)]
    pub cores: Option<u32>,
    /// Memory override (MiB).
    #[serde(default)]
    pub memory_mb: Option<u32>,
    /// Disk override (GiB).
    #[serde(default)]
    pub disk_gb: Option<u32>,
    /// Network.
    #[serde(default)]
    pub network: NetworkRequest,
    /// Take back data volumes kept by an earlier uninstall of this app (default: yes).
    #[serde(default)]
    pub reuse_volumes: Option<bool>,
    /// GPU: none (default), the best one, or named devices.
    #[serde(default)]
    pub gpu: appstore_core::gpu::GpuRequest,
    /// Optional volumes (by name) not to mount.
    #[serde(default)]
    pub skip_volumes: Vec<String>,
}

impl InstallRequest {
    /// The request's host name and network settings, for [`appstore_core::network::check`].
    pub fn network_fields(&self) -> appstore_core::network::NetworkFields<'_> {
        appstore_core::network::NetworkFields {
            hostname: self.hostname.as_deref(),
            ip: self.network.ip.as_deref(),
            gw: self.network.gw.as_deref(),
            ip6: self.network.ip6.as_deref(),
            gw6: self.network.gw6.as_deref(),
            vlan: self.network.vlan,
        }
    }
}

impl InstallRequest {
    /// The request as stored: secret inputs masked.
    pub fn redacted_json(&self, manifest: &Manifest) -> Value {
        let inputs: serde_json::Map<String, Value> = self
            .inputs
            .iter()
            .map(|(k, v)| {
                let secret = manifest
                    .input(k)
                    .is_some_and(|i| i.kind == appstore_core::manifest::InputType::Secret);
                (k.clone(), if secret { json!("***") } else { v.clone() })
            })
            .collect();
        json!({
            "app_id": self.app_id, "inputs": inputs, "hostname": self.hostname, "storage": self.storage,
            "bridge": self.bridge, "cores": self.cores, "memory_mb": self.memory_mb, "disk_gb": self.disk_gb,
            "network": {"ip": self.network.ip, "gw": self.network.gw, "ip6": self.network.ip6, "gw6": self.network.gw6, "vlan": self.network.vlan},
            "reuse_volumes": self.reuse_volumes,
        })
    }
}

fn random_secret() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

fn failed(reason: impl Into<String>) -> StepOutcome {
    StepOutcome::Failed {
        reason: reason.into(),
    }
}

fn pve_failed(what: &str, e: PveError) -> StepOutcome {
    let mut reason = format!("{what}: {e}");
    if let PveError::TaskFailed { log, .. } = &e {
        if let Some(last) = log.iter().rev().find(|l| !l.starts_with("TASK ERROR")) {
            reason.push_str(&format!(" (task log: {last})"));
        }
    }
    failed(reason)
}

/// An upgrade or a reconfigure of an existing install.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintainRequest {
    /// The install.
    pub install_id: i64,
    /// Reconfigure: the new values of reconfigurable inputs (an empty secret keeps the old one).
    #[serde(default)]
    pub inputs: serde_json::Map<String, Value>,
    /// Reconfigure: restart the container after the script.
    #[serde(default)]
    pub restart: bool,
    /// Upgrade: go on without a snapshot when the storage cannot take one (no rollback then).
    #[serde(default)]
    pub allow_no_snapshot: bool,
    /// Upgrade: keep the snapshot after a successful upgrade.
    #[serde(default)]
    pub keep_snapshot: bool,
}

impl MaintainRequest {
    /// The request as stored: secret inputs masked.
    pub fn redacted_json(&self, manifest: &Manifest) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        for (k, val) in self.inputs.iter() {
            let secret = manifest
                .input(k)
                .is_some_and(|i| i.kind == appstore_core::manifest::InputType::Secret);
            if secret && !val.is_null() && val != "" {
                v["inputs"][k] = json!("***");
            }
        }
        v
    }
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
    pub(super) ctid: Option<u32>,
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
    ctid: Option<u32>,
    ip: Option<String>,
    created: bool,
    /// The GPU plan (install).
    gpu: Option<GpuPlan>,
    /// Set when the service restarted in this state: the first step run is a resumed one.
    resumed_in: Option<JobState>,
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
        self.resumed_in = Some(state);
        Ok(())
    }

    /// Makes this an upgrade or reconfigure of `install`.
    pub(super) fn maintain(
        &mut self,
        kind: JobKind,
        install: InstallRecord,
        request: MaintainRequest,
    ) {
        self.kind = kind;
        self.ctid = install.ctid.and_then(|c| u32::try_from(c).ok());
        self.created = true;
        self.existing = Some((install, request));
    }

    fn redactor(&self, inputs: &ResolvedInputs) -> Redactor {
        let m = self.manifest();
        let mut keys: Vec<String> = m.provision().redact_keys.clone();
        keys.extend(
            m.inputs()
                .iter()
                .filter(|i| i.kind == appstore_core::manifest::InputType::Secret)
                .map(|i| i.key.clone()),
        );
        Redactor::new(inputs.secret_values(), keys)
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
        };
        serde_json::to_value(ctx).unwrap_or(Value::Null)
    }

    fn manifest(&self) -> &Manifest {
        &self.app.manifest
    }

    fn node(&self) -> &str {
        &self.engine.config.node
    }

    async fn step_impl(&mut self, state: JobState) -> StepOutcome {
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
            _ => {}
        }
        match state {
            JobState::Queued => StepOutcome::Done,
            JobState::ValidateRequest => self.validate_request().await,
            JobState::ValidateManifest => self.validate_manifest(),
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

    async fn validate_request(&mut self) -> StepOutcome {
        let app = Arc::clone(&self.app);
        let m = &app.manifest;
        let inputs = match resolve(m, &self.request.inputs, &mut random_secret) {
            Ok(i) => i,
            Err(errors) => {
                return failed(
                    errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            }
        };
        self.log.set_redactor(self.redactor(&inputs));
        self.inputs = Some(inputs);
        let lxc = m.lxc();
        let req = ResourceRequest {
            cores: self.request.cores.unwrap_or(lxc.cores),
            memory_mb: self.request.memory_mb.unwrap_or(lxc.memory_mb),
            disk_gb: self.request.disk_gb.unwrap_or(lxc.disk_gb),
            features: lxc.features.clone(),
            unprivileged: lxc.unprivileged,
        };
        if let Decision::Deny(reasons) = self.engine.config.policy.decide(&req) {
            return failed(
                reasons
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        let problems = appstore_core::network::check(&self.request.network_fields());
        if !problems.is_empty() {
            return failed(
                problems
                    .iter()
                    .map(|p| format!("{}: {}", p.field, p.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        self.log
            .info(&format!(
                "installing {} {} from commit {}",
                m.id(),
                m.version(),
                self.snapshot.source().commit.as_deref().unwrap_or("-")
            ))
            .await;
        StepOutcome::Done
    }

    fn validate_manifest(&self) -> StepOutcome {
        // The snapshot is pinned: the manifest validated at load time is the one installed.
        match self.snapshot.app(self.manifest().id().as_str()) {
            Some(a) if a.manifest_sha256 == self.app.manifest_sha256 => StepOutcome::Done,
            _ => failed(
                "the app changed in the catalog since the install was requested; request it again",
            ),
        }
    }

    fn storage(&self) -> String {
        self.request
            .storage
            .clone()
            .or_else(|| self.manifest().lxc().storage.clone())
            .unwrap_or_else(|| self.engine.config.storage.clone())
    }

    fn bridge(&self) -> String {
        self.request
            .bridge
            .clone()
            .or_else(|| self.manifest().lxc().bridge.clone())
            .unwrap_or_else(|| self.engine.config.bridge.clone())
    }

    async fn validate_placement(&mut self) -> StepOutcome {
        let pve = &self.engine.pve;
        let node = self.node().to_string();
        if let Err(e) = pve.pool(&self.engine.config.pool).await {
            return pve_failed(&format!("pool `{}`", self.engine.config.pool), e);
        }
        let storage = self.storage();
        match pve.storages(&node, Some("rootdir")).await {
            Ok(list) if list.iter().any(|s| s.storage == storage) => {}
            Ok(list) => {
                let names: Vec<&str> = list.iter().map(|s| s.storage.as_str()).collect();
                return failed(format!("storage `{storage}` cannot hold containers or the token may not use it; usable: {}", names.join(", ")));
            }
            Err(e) => return pve_failed("listing storages", e),
        }
        let bridge = self.bridge();
        match pve.bridges(&node).await {
            Ok(list) if list.iter().any(|b| b.iface == bridge) => {}
            Ok(list) => {
                let names: Vec<&str> = list.iter().map(|b| b.iface.as_str()).collect();
                return failed(format!("bridge `{bridge}` does not exist or the token may not use it (SDN.Use); usable: {}", names.join(", ")));
            }
            Err(e) => return pve_failed("listing bridges", e),
        }
        // The newest template of the family, e.g. debian-12 -> local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst.
        let family = self.manifest().lxc().ostemplate.to_string();
        let tstorage = self.engine.config.template_storage.clone();
        match super::newest_template(&self.engine, &family).await {
            Ok(Some(t)) => {
                self.log.info(&format!("template: {t}")).await;
                self.template = Some(t);
                return StepOutcome::Done;
            }
            Ok(None) => {}
            Err(e) => return failed(e),
        }
        if !self.engine.config.download_templates {
            return failed(format!("no `{family}` template on storage `{tstorage}`; download one in the PVE UI (CT Templates) or allow downloads in the store's config"));
        }
        let appliance = match pve.appliances(&node).await {
            Ok(list) => list
                .into_iter()
                .filter(|a| a.os == family)
                .max_by(|a, b| a.version.cmp(&b.version)),
            Err(e) => return pve_failed("listing appliance templates", e),
        };
        let Some(appliance) = appliance else {
            return failed(format!("PVE offers no `{family}` template to download"));
        };
        self.log
            .info(&format!(
                "template {} is missing; downloading it to `{tstorage}`",
                appliance.template
            ))
            .await;
        match pve
            .download_template(&node, &tstorage, &appliance.template)
            .await
        {
            Ok(upid) => {
                if let Err(e) =
                    wait_task(pve.as_ref(), &upid, self.engine.config.task_deadline).await
                {
                    return pve_failed("downloading the template", e);
                }
            }
            Err(e) => return pve_failed("downloading the template", e),
        }
        let volid = format!("{tstorage}:vztmpl/{}", appliance.template);
        self.log
            .info(&format!("template: {volid} (downloaded)"))
            .await;
        self.template = Some(volid);
        StepOutcome::Done
    }

    async fn allocate_ctid(&mut self) -> StepOutcome {
        // Ids come from PVE; two installs racing for the same id are serialized by the registry, and a
        // taken id is checked again right before the create.
        match self
            .engine
            .reserved_ctids
            .allocate(self.engine.pve.as_ref())
            .await
        {
            Ok(id) => {
                self.ctid = Some(id);
                let store = self.engine.store.clone();
                let job = self.job_id;
                if let Err(e) = blocking(move || store.set_job_ctid(job, i64::from(id))).await {
                    return failed(format!("recording the container id: {e}"));
                }
                self.log.info(&format!("container id {id}")).await;
                StepOutcome::Done
            }
            Err(e) => pve_failed("allocating a container id", e),
        }
    }

    async fn wait(&self, what: &str, upid: Result<Upid, PveError>) -> Result<(), StepOutcome> {
        let upid = upid.map_err(|e| pve_failed(what, e))?;
        wait_task(
            self.engine.pve.as_ref(),
            &upid,
            self.engine.config.task_deadline,
        )
        .await
        .map(|_| ())
        .map_err(|e| pve_failed(what, e))
    }

    /// After a restart: did this job's create already happen (or is it still running)?
    async fn find_created(&mut self, ctid: u32) -> Option<StepOutcome> {
        let pve = &self.engine.pve;
        match pve.is_id_free(ctid).await {
            Ok(true) => return None,
            Ok(false) => {}
            Err(e) => return Some(pve_failed("checking the container id", e)),
        }
        let cfg = match pve.lxc_config(self.node(), ctid).await {
            Ok(c) => c,
            Err(e) => {
                return Some(failed(format!(
                    "container id {ctid} is taken and its config cannot be read ({e}); it was not created by this job"
                )))
            }
        };
        if cfg.options.get("lock").map(String::as_str) == Some("create") {
            return Some(StepOutcome::NotYet {
                reason: format!("the create task of container {ctid} is still running"),
            });
        }
        let mine = format!("(job {})", self.job_id);
        let ours = cfg
            .options
            .get("description")
            .is_some_and(|d| d.contains(&mine));
        if !ours {
            return Some(failed(format!(
                "container id {ctid} was taken by another container while the service was down; install again"
            )));
        }
        self.created = true;
        self.engine.reserved_ctids.release(ctid).await;
        self.log
            .info(&format!(
                "container {ctid} was already created by this job; not creating it again"
            ))
            .await;
        Some(StepOutcome::Done)
    }

    async fn create(&mut self) -> StepOutcome {
        let Some(ctid) = self.ctid else {
            return failed("no container id");
        };
        if self.created {
            return StepOutcome::Done;
        }
        if let Some(found) = self.find_created(ctid).await {
            return found;
        }
        let Some(template) = self.template.clone() else {
            return failed("no template");
        };
        let m = self.manifest();
        let lxc = m.lxc();
        let n = &self.request.network;
        let storage = self.storage();
        // A volume kept by an earlier uninstall is taken back after the create, not made anew.
        let kept = self.kept_volumes().await;
        let mut volumes = Vec::new();
        for (i, v) in m.volumes().iter().enumerate() {
            if let VolumeSource::Managed { size_gb } = v.source {
                if kept.iter().any(|k| k.name == v.name) {
                    continue;
                }
                volumes.push((i as u8, storage.clone(), size_gb, v.mount_path.clone()));
            }
        }
        let spec = CreateLxc {
            vmid: ctid,
            ostemplate: template,
            hostname: self
                .request
                .hostname
                .clone()
                .unwrap_or_else(|| m.id().to_string()),
            pool: self.engine.config.pool.clone(),
            storage,
            disk_gb: self.request.disk_gb.unwrap_or(lxc.disk_gb),
            cores: self.request.cores.unwrap_or(lxc.cores),
            memory_mb: self.request.memory_mb.unwrap_or(lxc.memory_mb),
            swap_mb: 512,
            unprivileged: lxc.unprivileged,
            onboot: lxc.onboot,
            nesting: lxc
                .features
                .contains(&appstore_core::manifest::Feature::Nesting),
            net: NetConfig {
                bridge: self.bridge(),
                ip: n.ip.clone().unwrap_or_else(|| "dhcp".into()),
                gw: n.gw.clone(),
                ip6: n.ip6.clone(),
                gw6: n.gw6.clone(),
                tag: n.vlan,
                firewall: true,
            },
            description: Some(format!(
                "Installed by PVE App Store: {} {} (job {})",
                m.id(),
                m.version(),
                self.job_id
            )),
            volumes,
        };
        if let Err(o) = self
            .wait(
                "creating the container",
                self.engine.pve.lxc_create(self.node(), &spec).await,
            )
            .await
        {
            return o;
        }
        self.created = true;
        self.engine.reserved_ctids.release(ctid).await;
        StepOutcome::Done
    }

    /// Kept volumes of this app that this install takes back (none when the user said no).
    async fn kept_volumes(&self) -> Vec<crate::store::KeptVolume> {
        if self.request.reuse_volumes == Some(false) || self.kind != JobKind::Install {
            return Vec::new();
        }
        let store = self.engine.store.clone();
        let app = self.manifest().id().to_string();
        let mut kept = blocking(move || store.kept_volumes(Some(&app)))
            .await
            .unwrap_or_default();
        // One per name: the oldest.
        let mut seen = std::collections::BTreeSet::new();
        kept.retain(|k| seen.insert(k.name.clone()));
        kept
    }

    /// Kept volumes back in, host directories bind-mounted (through the helper: bind mounts are
    /// root's), each only when its `mpN` is not there yet.
    async fn attach_volumes(&mut self, ctid: u32) -> StepOutcome {
        let kept = self.kept_volumes().await;
        let volumes = self.manifest().volumes().to_vec();
        for (i, v) in volumes.iter().enumerate() {
            let key = format!("mp{i}");
            let cfg = match self.engine.pve.lxc_config(self.node(), ctid).await {
                Ok(c) => c,
                Err(e) => return pve_failed("reading the container config", e),
            };
            if cfg.options.contains_key(&key) {
                continue;
            }
            match &v.source {
                VolumeSource::Managed { .. } => {
                    if let Some(k) = kept.iter().find(|k| k.name == v.name) {
                        if let Err(e) = super::volumes::reattach(
                            &self.engine,
                            k,
                            ctid,
                            &key,
                            &v.mount_path,
                            &self.log,
                        )
                        .await
                        {
                            return failed(e);
                        }
                    }
                }
                VolumeSource::HostPath { path } => {
                    if !v.required && self.request.skip_volumes.contains(&v.name) {
                        self.log
                            .info(&format!("volume `{}` ({path}) skipped, as asked", v.name))
                            .await;
                        continue;
                    }
                    let req = Request::BindMount {
                        ctid,
                        index: i as u8,
                        host_path: path.clone(),
                        mount_path: v.mount_path.clone(),
                        read_only: false,
                    };
                    if let Err(o) = self.helper(req).await {
                        if v.required {
                            return o;
                        }
                        // An optional host directory that cannot be mounted (most often: it does
                        // not exist on this host) does not stop the install.
                        let why = match o {
                            StepOutcome::Failed { reason } => reason,
                            _ => "not mounted".into(),
                        };
                        self.log
                            .line(
                                "engine",
                                &format!("optional volume `{}` skipped: {why}", v.name),
                            )
                            .await;
                        continue;
                    }
                    self.log
                        .info(&format!(
                            "host directory {path} is mounted at {} (volume `{}`)",
                            v.mount_path, v.name
                        ))
                        .await;
                }
            }
        }
        StepOutcome::Done
    }

    async fn configure(&mut self) -> StepOutcome {
        let Some(ctid) = self.ctid else {
            return failed("no container id");
        };
        let pve = &self.engine.pve;
        // Tags after the create task: a pool-scoped token may not send them in the create call.
        let cfg = match pve.lxc_config(self.node(), ctid).await {
            Ok(c) => c,
            Err(e) => return pve_failed("reading the container config", e),
        };
        let mut tags = cfg.tags();
        for t in [MANAGED_TAG.to_string(), app_tag(self.manifest().id())] {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let value = join_tags(tags.iter().map(String::as_str));
        match pve
            .lxc_update_config(
                self.node(),
                ctid,
                &[("tags".into(), value)],
                &[],
                Some(&cfg.digest),
            )
            .await
        {
            // Tags first: the helper acts only on containers that carry the managed tag.
            Ok(()) => self.attach_volumes(ctid).await,
            Err(e) => pve_failed("tagging the container", e),
        }
    }

    async fn validate_gpu(&mut self) -> StepOutcome {
        if self.kind != JobKind::Install {
            return StepOutcome::Done;
        }
        let attachments = if self.request.gpu != appstore_core::gpu::GpuRequest::None
            || self.manifest().gpu().required
        {
            let store = self.engine.store.clone();
            match blocking(move || store.gpu_attachments()).await {
                Ok(a) => a,
                Err(e) => return failed(format!("reading GPU attachments: {e}")),
            }
        } else {
            Vec::new()
        };
        let m = self.manifest();
        let privileged = !m.lxc().unprivileged;
        match super::gpu::choose(
            &self.engine,
            self.job_id,
            &attachments,
            m.gpu(),
            &self.request.gpu,
            privileged,
        ) {
            Ok(None) => {
                if !m.gpu().supported.is_empty() {
                    self.log.info("no GPU: the app runs without one").await;
                }
                StepOutcome::Done
            }
            Ok(Some(plan)) => {
                // Before PVE 8.1 there are no `devN` entries: a node bind-mounted by raw lines keeps
                // the host's owner, which an unprivileged container sees as nobody.
                match self.engine.pve.version().await {
                    Ok(v)
                        if !v.has_dev_passthrough() && plan.profile != GpuProfile::NvidiaBasic =>
                    {
                        self.engine.gpu_claims.release(self.job_id);
                        return failed(format!(
                            "this node runs PVE {}, which cannot give a passed-through {} node the container's group (`devN` entries arrived in PVE 8.1) (fix: upgrade the node to PVE 8.1 or later)",
                            v.version,
                            plan.vendor_name()
                        ));
                    }
                    Ok(v) if !v.has_dev_passthrough() => {
                        self.log
                            .info(&format!("this node runs PVE {}: the devices are passed with raw lxc lines (the helper needs `legacy_devices: true`)", v.version))
                            .await;
                    }
                    Ok(_) => {}
                    Err(e) => return pve_failed("reading the PVE version", e),
                }
                self.log
                    .info(&format!("GPU: {}", super::gpu::describe(&plan)))
                    .await;
                if let Some(v) = &plan.driver_version {
                    self.log
                        .info(&format!(
                            "host NVIDIA driver {v}: the app installs the matching userland"
                        ))
                        .await;
                }
                self.gpu = Some(plan);
                StepOutcome::Done
            }
            Err(e) => failed(e),
        }
    }

    /// Reads the container's `render` and `video` group ids (it runs for the moment), stops it,
    /// and passes the plan's nodes through with those groups, through the root helper.
    async fn attach_gpu(&mut self) -> StepOutcome {
        let Some(mut plan) = self.gpu.clone() else {
            return StepOutcome::Done;
        };
        let Some(ctid) = self.ctid else {
            return failed("no container id");
        };
        if let Err(o) = self
            .ensure_running(ctid, "starting the container to read its groups")
            .await
        {
            return o;
        }
        let lines = match self.helper_lines(Request::ContainerGroups { ctid }).await {
            Ok(l) => l,
            Err(o) => return o,
        };
        let groups = appstore_core::gpu::GroupIds::parse_getent(&lines.join("\n"));
        self.log
            .info(&format!(
                "the container's groups: render {}, video {}",
                groups
                    .render
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "none".into()),
                groups
                    .video
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "none".into())
            ))
            .await;
        if let Err(o) = self
            .wait(
                "stopping the container to attach the GPU",
                self.engine.pve.lxc_stop(self.node(), ctid).await,
            )
            .await
        {
            return o;
        }
        let list = match appstore_core::gpu::plan(plan.profile, &plan.nodes, &plan.shared, &groups)
        {
            Ok(l) => l,
            Err(e) => return failed(e.to_string()),
        };
        let devices = list
            .iter()
            .map(|p| appstore_helper::DeviceRequest {
                path: p.path.clone(),
                gid: p.gid,
                uid: None,
                mode: Some(p.mode.clone()),
            })
            .collect();
        if let Err(o) = self.helper(Request::AttachDevices { ctid, devices }).await {
            return o;
        }
        for p in &list {
            // A shared node (nvidiactl, kfd) belongs to no one GPU.
            let pci = plan.owners.get(&p.path).cloned();
            let record = crate::store::GpuAttachment {
                ctid: i64::from(ctid),
                device_path: p.path.clone(),
                pci_address: pci,
                profile: appstore_core::gpu::profile_name(plan.profile).into(),
                job_id: Some(self.job_id),
                attached_at: 0,
            };
            let store = self.engine.store.clone();
            if let Err(e) = blocking(move || store.record_gpu_attachment(&record)).await {
                return failed(format!("recording the GPU attachment: {e}"));
            }
            self.log
                .info(&format!(
                    "passed {} ({}:{}) through{}",
                    p.path,
                    p.major,
                    p.minor,
                    p.gid.map(|g| format!(" to group {g}")).unwrap_or_default()
                ))
                .await;
        }
        plan.attached = list;
        self.gpu = Some(plan);
        // Recorded now: the store counts these users from here on.
        self.engine.gpu_claims.release(self.job_id);
        StepOutcome::Done
    }

    /// After the start: the attached nodes are there inside, with the right numbers and group.
    async fn check_gpu_inside(&mut self, ctid: u32) -> StepOutcome {
        let Some(plan) = self.gpu.clone().filter(|p| !p.attached.is_empty()) else {
            return StepOutcome::Done;
        };
        let paths = plan.attached.iter().map(|p| p.path.clone()).collect();
        let lines = match self
            .helper_lines(Request::InspectDevices { ctid, paths })
            .await
        {
            Ok(l) => l,
            Err(o) => return o,
        };
        match super::gpu::verify_inside(&plan.attached, &lines) {
            Ok(()) => {
                self.log
                    .info(&format!(
                        "GPU check inside the container: {} present with the right group",
                        plan.attached
                            .iter()
                            .map(|p| p.path.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .await;
                StepOutcome::Done
            }
            Err(e) => failed(format!("GPU check inside the container: {e}")),
        }
    }

    /// The manifest's GPU smoke test, when a GPU is attached; its output and result go to the log
    /// (a failure is reported, not fatal: the app's own health check decides).
    async fn gpu_smoke_test(&mut self) {
        let (Some(tool), Some(ctid)) = (self.manifest().gpu().smoke_test, self.ctid) else {
            return;
        };
        if self.gpu.as_ref().is_none_or(|p| p.attached.is_empty()) {
            return;
        }
        self.log
            .info(&format!("GPU smoke test: {}", tool.argv().join(" ")))
            .await;
        match self.helper(Request::SmokeTest { ctid, tool }).await {
            Ok(Reply::Done {
                exit_code: Some(0), ..
            }) => self.log.info("GPU smoke test passed").await,
            Ok(Reply::Done { exit_code, .. }) => {
                self.log
                    .line(
                        "engine",
                        &format!(
                            "warning: the GPU smoke test exited with {}; the app may fall back to the CPU",
                            exit_code.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
                        ),
                    )
                    .await
            }
            Ok(_) => {}
            Err(_) => {
                self.log
                    .line("engine", "warning: the GPU smoke test could not run")
                    .await
            }
        }
    }

    /// Runs a helper request and returns its stdout lines (every line also goes to the job log).
    async fn helper_lines(&self, req: Request) -> Result<Vec<String>, StepOutcome> {
        self.helper_with_output(req).await.map(|(_, lines)| lines)
    }

    async fn start(&mut self) -> StepOutcome {
        let Some(ctid) = self.ctid else {
            return failed("no container id");
        };
        match self.ensure_running(ctid, "starting the container").await {
            Ok(()) => self.check_gpu_inside(ctid).await,
            Err(o) => o,
        }
    }

    /// Starts the container unless it already runs (a resumed step may find it running). Before a
    /// start the helper checks every bind-mounted host directory again.
    async fn ensure_running(&self, ctid: u32, what: &str) -> Result<(), StepOutcome> {
        match self.engine.pve.lxc_status(self.node(), ctid).await {
            Ok(s) if s.status == "running" => Ok(()),
            Ok(_) => {
                self.helper(Request::CheckMounts { ctid }).await?;
                self.wait(what, self.engine.pve.lxc_start(self.node(), ctid).await)
                    .await
            }
            Err(e) => Err(pve_failed("reading the container status", e)),
        }
    }

    async fn wait_for_network(&mut self) -> StepOutcome {
        let Some(ctid) = self.ctid else {
            return failed("no container id");
        };
        match self.engine.pve.lxc_interfaces(self.node(), ctid).await {
            Ok(Some(ifs)) => match ifs
                .iter()
                .find(|i| i.name != "lo")
                .and_then(|i| i.inet.clone())
            {
                Some(inet) => {
                    let ip = inet.split('/').next().unwrap_or(&inet).to_string();
                    self.log.info(&format!("container address {ip}")).await;
                    self.ip = Some(ip);
                    StepOutcome::Done
                }
                None => StepOutcome::NotYet {
                    reason: "the container has no IPv4 address yet".into(),
                },
            },
            Ok(None) => StepOutcome::NotYet {
                reason: "the container is not running yet".into(),
            },
            Err(e) => pve_failed("reading the container's addresses", e),
        }
    }

    async fn helper(&self, req: Request) -> Result<Reply, StepOutcome> {
        self.helper_with_output(req).await.map(|(reply, _)| reply)
    }

    /// Runs a helper request: its output lines go to the job log, and its stdout lines come back
    /// with the final reply; a refusal or failure ends the step with the helper's message.
    async fn helper_with_output(&self, req: Request) -> Result<(Reply, Vec<String>), StepOutcome> {
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

    fn job_dir(&self) -> std::path::PathBuf {
        self.engine.config.jobs_dir.join(self.job_id.to_string())
    }

    async fn push_assets(&mut self) -> StepOutcome {
        let Some(ctid) = self.ctid else {
            return failed("no container id");
        };
        if self.inputs.is_none() {
            return failed("inputs were not resolved");
        }
        let dir = self.job_dir();
        let app_dir = dir.join("app");
        let (cache, snapshot, app, target) = (
            self.cache.clone(),
            Arc::clone(&self.snapshot),
            Arc::clone(&self.app),
            app_dir.clone(),
        );
        let exported =
            tokio::task::spawn_blocking(move || cache.export_app(&snapshot, &app, &target)).await;
        match exported {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return failed(format!("exporting the app from the catalog: {e}")),
            Err(e) => return failed(e.to_string()),
        }
        // One archive of the app's files, delivered by the helper with one process in the
        // container. The inputs are not in it: they go to each script run on its standard input.
        let archive = dir.join("files.tar");
        let (files, target, app_dir) = (self.app.files.clone(), archive.clone(), app_dir.clone());
        let packed =
            tokio::task::spawn_blocking(move || pack_files(&app_dir, &files, &target)).await;
        match packed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return failed(format!("packing the app's files: {e}")),
            Err(e) => return failed(e.to_string()),
        }
        let req = Request::Deliver {
            ctid,
            archive: archive.to_string_lossy().into_owned(),
        };
        let delivered = self.helper(req).await;
        let _ = std::fs::remove_file(&archive);
        if let Err(o) = delivered {
            return o;
        }
        self.log
            .info(&format!(
                "delivered {} file(s) into the container",
                self.app.files.len()
            ))
            .await;
        StepOutcome::Done
    }

    fn context(&self) -> Value {
        let m = self.manifest();
        json!({
            "ctid": self.ctid, "hostname": self.request.hostname.clone().unwrap_or_else(|| m.id().to_string()),
            "ip": self.ip.clone().unwrap_or_default(), "node": self.node(), "pool": self.engine.config.pool,
            "app": {"id": m.id(), "name": m.name(), "version": m.version().to_string()},
            "inputs": self.inputs.as_ref().map(|i| i.to_json()).unwrap_or(json!({})),
            "gpu": {
                "vendor": self.gpu.as_ref().map(|g| g.vendor_name()).unwrap_or(""),
                "driver_version": self.gpu.as_ref().and_then(|g| g.driver_version.clone()).unwrap_or_default(),
            },
        })
    }

    /// The script's environment: the manifest's `provision.env`, every non-secret input as
    /// `INPUT_<KEY>`, and the store's own `APPSTORE_*` values.
    fn env(&self) -> Result<BTreeMap<String, String>, String> {
        let ctx = self.context();
        let mut env = BTreeMap::new();
        if let Some(inputs) = &self.inputs {
            for (k, v) in inputs.iter().filter(|(_, v)| !v.secret) {
                env.insert(
                    format!("INPUT_{}", k.to_ascii_uppercase()),
                    v.value.to_string(),
                );
            }
        }
        env.insert(
            "APPSTORE_CTID".into(),
            self.ctid.map(|c| c.to_string()).unwrap_or_default(),
        );
        env.insert("APPSTORE_APP_ID".into(), self.manifest().id().to_string());
        env.insert(
            "APPSTORE_APP_VERSION".into(),
            self.manifest().version().to_string(),
        );
        if let Some(g) = &self.gpu {
            env.insert("APPSTORE_GPU_VENDOR".into(), g.vendor_name().into());
            if let Some(v) = &g.driver_version {
                // The userland the app installs must match the host's kernel module exactly.
                env.insert("APPSTORE_NVIDIA_DRIVER_VERSION".into(), v.clone());
            }
        }
        env.insert("DEBIAN_FRONTEND".into(), "noninteractive".into());
        for (k, tpl) in &self.manifest().provision().env {
            let value =
                template::render(tpl, &ctx).map_err(|e| format!("provision.env.{k}: {e}"))?;
            env.insert(k.clone(), value);
        }
        Ok(env)
    }

    /// Runs one of the app's scripts; `with_inputs` hands it the inputs (`$APPSTORE_INPUTS`, a
    /// private file inside the container that lives only as long as the script).
    async fn run_script(
        &self,
        script: &str,
        timeout_sec: u32,
        with_inputs: bool,
    ) -> Result<i32, StepOutcome> {
        let Some(ctid) = self.ctid else {
            return Err(failed("no container id"));
        };
        let env = self.env().map_err(failed)?;
        let inputs = if with_inputs {
            self.inputs.as_ref().map(|i| i.to_json())
        } else {
            None
        };
        match self
            .helper(Request::RunScript {
                ctid,
                script: script.into(),
                env,
                inputs,
                timeout_sec,
            })
            .await?
        {
            Reply::Done {
                exit_code: Some(code),
                ..
            } => Ok(code),
            other => Err(failed(format!(
                "unexpected answer from the helper: {other:?}"
            ))),
        }
    }

    /// Runs one of the app's scripts once, with the inputs.
    async fn run_once(&self, script: &str, timeout_sec: u32) -> StepOutcome {
        self.log.info(&format!("running {script}")).await;
        match self.run_script(script, timeout_sec, true).await {
            Ok(0) => StepOutcome::Done,
            Ok(code) => failed(format!(
                "{script} exited with code {code}; see the log above for the script's own error"
            )),
            Err(o) => o,
        }
    }

    async fn provision(&mut self) -> StepOutcome {
        let p = self.manifest().provision().clone();
        // A script marked retry_safe gets a second run after a failure (a mirror hiccup, say).
        let attempts = if p.retry_safe { 2 } else { 1 };
        let mut attempt = 1;
        loop {
            let outcome = self.run_once(p.script.as_str(), p.timeout_sec).await;
            if outcome == StepOutcome::Done || attempt >= attempts {
                return outcome;
            }
            attempt += 1;
            self.log
                .info(&format!(
                    "{} failed; it is marked retry_safe, so it runs once more",
                    p.script
                ))
                .await;
        }
    }

    async fn healthcheck(&mut self) -> StepOutcome {
        self.gpu_smoke_test().await;
        let Some(hc) = self.manifest().provision().healthcheck.clone() else {
            return StepOutcome::Done;
        };
        for attempt in 1..=hc.retries {
            match self
                .run_script(hc.script.as_str(), hc.timeout_sec, false)
                .await
            {
                Ok(0) => {
                    self.log
                        .info(&format!("healthy after {attempt} check(s)"))
                        .await;
                    return StepOutcome::Done;
                }
                Ok(code) => {
                    self.log
                        .info(&format!(
                            "health check {attempt}/{} exited with {code}",
                            hc.retries
                        ))
                        .await
                }
                Err(o) => return o,
            }
            tokio::time::sleep(std::time::Duration::from_secs(u64::from(hc.interval_sec))).await;
        }
        failed(format!(
            "the app did not become healthy after {} checks",
            hc.retries
        ))
    }

    async fn collect_outputs(&mut self) -> StepOutcome {
        let ctx = self.context();
        let mut outputs = Vec::new();
        for o in self.manifest().outputs() {
            match template::render(&o.value, &ctx) {
                // A secret output (a password) is kept only sealed.
                Ok(v) => {
                    let stored = if o.secret {
                        self.engine.secrets.seal(&v)
                    } else {
                        v
                    };
                    outputs.push(json!({"key": o.key, "label": o.label, "value": stored, "secret": o.secret}))
                }
                Err(e) => return failed(format!("outputs.{}: {e}", o.key)),
            }
        }
        if let Some(ctid) = self.ctid {
            if !self.manifest().provision().keep_provision_dir {
                let _ = self
                    .helper(Request::RemovePath {
                        ctid,
                        path: "/opt/appstore/provision".into(),
                    })
                    .await;
            }
        }
        let shown: Vec<String> = outputs
            .iter()
            .map(|o| {
                format!(
                    "{}: {}",
                    o["label"].as_str().unwrap_or(""),
                    if o["secret"] == true {
                        "(secret)"
                    } else {
                        o["value"].as_str().unwrap_or("")
                    }
                )
            })
            .collect();
        self.log
            .info(&format!("outputs: {}", shown.join("; ")))
            .await;
        let store = self.engine.store.clone();
        let (job, app, ctid, node, pool) = (
            self.job_id,
            self.app.clone(),
            self.ctid,
            self.node().to_string(),
            self.engine.config.pool.clone(),
        );
        let inputs = self
            .inputs
            .as_ref()
            .map(|i| i.redacted_json())
            .unwrap_or(json!({}));
        let commit = self.snapshot.source().commit.clone();
        let outputs_json = Value::Array(outputs);
        let saved = blocking(move || {
            store.record_install(&crate::store::NewInstall {
                job_id: job,
                app_id: app.manifest.id().to_string(),
                ctid: ctid.map(i64::from),
                node,
                pool,
                version: app.manifest.version().to_string(),
                manifest_sha256: app.manifest_sha256.clone(),
                commit_id: commit,
                inputs: inputs.to_string(),
                outputs: outputs_json.to_string(),
            })
        })
        .await;
        let install_id = match saved {
            Ok(id) => id,
            Err(e) => return failed(format!("recording the install: {e}")),
        };
        // Every input, secrets included, kept sealed for later reconfigures and upgrades.
        let sealed = self.engine.secrets.seal(
            &self
                .inputs
                .as_ref()
                .map(|i| i.to_json())
                .unwrap_or(json!({}))
                .to_string(),
        );
        let store = self.engine.store.clone();
        match blocking(move || store.set_install_inputs(install_id, &sealed)).await {
            Ok(()) => StepOutcome::Done,
            Err(e) => failed(format!("recording the install's inputs: {e}")),
        }
    }

    /// After a failure or cancel: the container (if this job made one) is stopped and tagged failed.
    async fn after_failure_impl(&mut self) {
        let _ = std::fs::remove_file(self.job_dir().join("files.tar"));
        if self.kind != JobKind::Install {
            // An installed app stays as the rollback (or the failed step) left it, running.
            return;
        }
        if let (Some(ctid), false) = (self.ctid, self.created) {
            // The create may have gone through although the job never saw it end (a task that
            // outlived its deadline): the container says so in its description.
            let mine = super::job_marker(self.job_id);
            if let Ok(cfg) = self.engine.pve.lxc_config(self.node(), ctid).await {
                if cfg
                    .options
                    .get("description")
                    .is_some_and(|d| d.contains(&mine))
                {
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

/// Upgrade and reconfigure.
impl InstallWork {
    /// The install's inputs as kept at its last install, upgrade or reconfigure.
    async fn saved_inputs(
        &self,
        install_id: i64,
    ) -> Result<serde_json::Map<String, Value>, StepOutcome> {
        let store = self.engine.store.clone();
        let sealed = blocking(move || store.install_inputs(install_id))
            .await
            .map_err(|e| failed(format!("reading the install's inputs: {e}")))?;
        let Some(sealed) = sealed else {
            return Err(failed(
                "this install's inputs were not kept, so it cannot be changed in place; uninstall (keeping volumes) and install again",
            ));
        };
        let text = self
            .engine
            .secrets
            .open_value(&sealed)
            .map_err(|e| failed(format!("the install's inputs cannot be opened: {e}")))?;
        serde_json::from_str(&text)
            .map_err(|e| failed(format!("the install's inputs are not valid: {e}")))
    }

    /// Resolves `values` against this manifest and takes them as the job's inputs.
    fn take_inputs(&mut self, values: &serde_json::Map<String, Value>) -> StepOutcome {
        match resolve(self.manifest(), values, &mut random_secret) {
            Ok(inputs) => {
                self.log.set_redactor(self.redactor(&inputs));
                self.inputs = Some(inputs);
                StepOutcome::Done
            }
            Err(errors) => failed(
                errors
                    .iter()
                    .map(|e| format!("inputs.{e}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }

    /// Starts the container if it is stopped and waits for its address (outputs need it).
    async fn running_with_address(&mut self) -> StepOutcome {
        let started = self.start().await;
        if started != StepOutcome::Done {
            return started;
        }
        let policy = self.engine.config.network_wait.clone();
        let mut attempt = 0;
        loop {
            match self.wait_for_network().await {
                StepOutcome::NotYet { reason } => {
                    attempt += 1;
                    if attempt >= policy.max_attempts {
                        return failed(format!("{reason} (gave up after {attempt} attempts)"));
                    }
                    tokio::time::sleep(policy.backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn validate_upgrade(&mut self) -> StepOutcome {
        let Some((install, _)) = self.existing.clone() else {
            return failed("no install to upgrade");
        };
        let id = self.manifest().id().to_string();
        match check(&install.version, self.manifest()) {
            UpgradeCheck::Available { from, to } => {
                self.log
                    .info(&format!(
                        "upgrading {id} from {from} to {to} (catalog commit {})",
                        self.snapshot.source().commit.as_deref().unwrap_or("-")
                    ))
                    .await
            }
            UpgradeCheck::UpToDate { version } => {
                return failed(format!(
                    "{id} {version} is already the newest version in the catalog"
                ))
            }
            UpgradeCheck::Blocked { reason, .. } => return failed(reason),
        }
        // The install's inputs under the new manifest: keys it no longer has are dropped, new keys
        // take their defaults.
        let saved = match self.saved_inputs(install.id).await {
            Ok(m) => m,
            Err(o) => return o,
        };
        let kept: serde_json::Map<String, Value> = saved
            .into_iter()
            .filter(|(k, _)| self.manifest().input(k).is_some())
            .collect();
        self.take_inputs(&kept)
    }

    async fn validate_reconfigure(&mut self) -> StepOutcome {
        let Some((install, request)) = self.existing.clone() else {
            return failed("no install to reconfigure");
        };
        if let Err(reason) = reconfigure_keys(self.manifest(), &request.inputs) {
            return failed(reason.to_string());
        }
        let mut values: serde_json::Map<String, Value> = match self.saved_inputs(install.id).await {
            Ok(m) => m
                .into_iter()
                .filter(|(k, _)| self.manifest().input(k).is_some())
                .collect(),
            Err(o) => return o,
        };
        let mut changed = Vec::new();
        for (k, v) in &request.inputs {
            // An empty secret keeps the old value (the form never shows it).
            let blank = v.is_null() || v == "";
            let secret = self
                .manifest()
                .input(k)
                .is_some_and(|i| i.kind == appstore_core::manifest::InputType::Secret);
            if secret && blank {
                continue;
            }
            if values.get(k) != Some(v) {
                changed.push(k.clone());
            }
            values.insert(k.clone(), v.clone());
        }
        let taken = self.take_inputs(&values);
        if taken != StepOutcome::Done {
            return taken;
        }
        self.log
            .info(&format!(
                "reconfiguring {}: {}",
                self.manifest().id(),
                if changed.is_empty() {
                    "no value changed; running the script again".to_string()
                } else {
                    format!("changing {}", changed.join(", "))
                }
            ))
            .await;
        self.running_with_address().await
    }

    fn snapshot_name(&self) -> String {
        // pve-configid: letters, digits and `_`.
        format!("appstore_job_{}", self.job_id)
    }

    async fn take_snapshot(&mut self) -> StepOutcome {
        let Some(ctid) = self.ctid else {
            return failed("no container id");
        };
        let name = self.snapshot_name();
        let pve = Arc::clone(&self.engine.pve);
        // Resumed after the snapshot task: it is there already.
        if let Ok(list) = pve.snapshots(self.node(), ctid).await {
            if list.iter().any(|s| s.name == name) {
                self.pve_snapshot = Some(name);
                return StepOutcome::Done;
            }
        }
        let (from, to) = match &self.existing {
            Some((i, _)) => (i.version.clone(), self.manifest().version().to_string()),
            None => return failed("no install to upgrade"),
        };
        let description = format!(
            "Before the upgrade of {} from {from} to {to} (PVE App Store job {})",
            self.manifest().id(),
            self.job_id
        );
        let created = match pve
            .snapshot_create(self.node(), ctid, &name, &description)
            .await
        {
            Ok(upid) => wait_task(pve.as_ref(), &upid, self.engine.config.task_deadline)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        match created {
            Ok(()) => {
                self.log.info(&format!("snapshot `{name}` taken")).await;
                self.pve_snapshot = Some(name);
                StepOutcome::Done
            }
            Err(e) if e.to_string().contains("snapshot feature is not available") => {
                let allowed = self
                    .existing
                    .as_ref()
                    .is_some_and(|(_, r)| r.allow_no_snapshot);
                if allowed {
                    self.log.info("the container's storage cannot take snapshots; going on without one, as you allowed: a failed upgrade cannot be rolled back").await;
                    StepOutcome::Done
                } else {
                    failed("the container's storage cannot take snapshots, so a failed upgrade could not be rolled back; upgrade again allowing it to go on without a snapshot (`allow_no_snapshot`), or move the container to a storage that snapshots (LVM-thin, ZFS, Ceph)")
                }
            }
            Err(e) => pve_failed("taking a snapshot before the upgrade", e),
        }
    }

    async fn run_upgrade(&mut self) -> StepOutcome {
        let p = self.manifest().provision().clone();
        let Some(script) = p.upgrade else {
            return failed("this version has no upgrade script");
        };
        self.run_once(script.as_str(), p.timeout_sec).await
    }

    async fn rollback(&mut self) -> StepOutcome {
        let Some(ctid) = self.ctid else {
            return failed("no container id");
        };
        let Some(name) = self.pve_snapshot.clone() else {
            return failed("there is no snapshot to roll back to (the upgrade went on without one); the container is as the failed upgrade left it");
        };
        self.log
            .info(&format!("rolling back to snapshot `{name}`"))
            .await;
        let pve = Arc::clone(&self.engine.pve);
        if let Err(o) = self
            .wait(
                "rolling back to the snapshot",
                pve.snapshot_rollback(self.node(), ctid, &name).await,
            )
            .await
        {
            return o;
        }
        // The rollback stops the container; the previous version runs again.
        let started = self.start().await;
        if started != StepOutcome::Done {
            return started;
        }
        if let Err(o) = self
            .wait(
                "removing the snapshot after the rollback",
                pve.snapshot_delete(self.node(), ctid, &name).await,
            )
            .await
        {
            self.log.info(&format!("{o:?}")).await;
        }
        self.log
            .info("rolled back: the previous version runs again")
            .await;
        StepOutcome::Done
    }

    async fn remove_snapshot(&mut self) -> StepOutcome {
        let (Some(ctid), Some(name)) = (self.ctid, self.pve_snapshot.clone()) else {
            return StepOutcome::Done;
        };
        if self.existing.as_ref().is_some_and(|(_, r)| r.keep_snapshot) {
            self.log
                .info(&format!(
                    "keeping snapshot `{name}` as asked; remove it in the PVE UI when it is no longer needed"
                ))
                .await;
            return StepOutcome::Done;
        }
        let pve = Arc::clone(&self.engine.pve);
        match self
            .wait(
                "removing the snapshot",
                pve.snapshot_delete(self.node(), ctid, &name).await,
            )
            .await
        {
            Ok(()) => self.log.info(&format!("snapshot `{name}` removed")).await,
            // The upgrade itself succeeded: a snapshot that stays is only a note.
            Err(StepOutcome::Failed { reason }) => {
                self.log
                    .info(&format!("{reason}; remove snapshot `{name}` in the PVE UI"))
                    .await
            }
            Err(_) => {}
        }
        StepOutcome::Done
    }

    async fn run_reconfigure(&mut self) -> StepOutcome {
        let p = self.manifest().provision().clone();
        let Some(script) = p.reconfigure else {
            return failed("this app has no reconfigure script");
        };
        let ran = self.run_once(script.as_str(), p.timeout_sec).await;
        if ran != StepOutcome::Done {
            return ran;
        }
        if !self.existing.as_ref().is_some_and(|(_, r)| r.restart) {
            return StepOutcome::Done;
        }
        let Some(ctid) = self.ctid else {
            return failed("no container id");
        };
        self.log.info("restarting the container, as asked").await;
        let pve = Arc::clone(&self.engine.pve);
        if let Err(o) = self
            .wait(
                "stopping the container",
                pve.lxc_shutdown(self.node(), ctid, 60).await,
            )
            .await
        {
            return o;
        }
        self.ip = None;
        self.running_with_address().await
    }
}

/// Only the manifest's reconfigurable inputs may change after install; every other key is refused
/// by name.
pub fn reconfigure_keys(
    manifest: &Manifest,
    inputs: &serde_json::Map<String, Value>,
) -> Result<(), super::EngineError> {
    if manifest.provision().reconfigure.is_none() {
        return Err(super::EngineError::Rejected(format!(
            "{} has no reconfigure script: nothing can be changed after install",
            manifest.id()
        )));
    }
    let mut fields = std::collections::BTreeMap::new();
    for k in inputs.keys() {
        match manifest.input(k) {
            None => {
                fields.insert(
                    format!("inputs.{k}"),
                    format!("this app has no input named `{k}`"),
                );
            }
            Some(i) if !i.reconfigurable => {
                fields.insert(format!("inputs.{k}"), "cannot be changed after install (not `reconfigurable`); uninstall (keeping volumes) and install again to change it".to_string());
            }
            Some(_) => {}
        }
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(super::EngineError::Invalid { fields })
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

/// Writes the app's files (exported to `app_dir`) into the tar archive `target`, each below
/// `provision/`, scripts executable.
fn pack_files(
    app_dir: &std::path::Path,
    files: &[appstore_catalog::AppFile],
    target: &std::path::Path,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(target)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(out));
    for f in files {
        let mut header = tar::Header::new_gnu();
        let data = std::fs::read(app_dir.join(&f.path))?;
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(if f.path.ends_with(".sh") {
            0o755
        } else {
            0o644
        });
        header.set_mtime(0);
        builder.append_data(
            &mut header,
            format!("provision/{}", f.path),
            data.as_slice(),
        )?;
    }
    builder
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
}
