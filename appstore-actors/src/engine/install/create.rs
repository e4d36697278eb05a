//! From the request to a running container: validation, placement, the container id, the create,
//! tags and volumes, the start and the address.

use super::*;
use appstore_core::Ctid;

impl InstallWork {
    pub(super) async fn validate_request(&mut self) -> StepOutcome {
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

    pub(super) async fn validate_manifest(&self) -> StepOutcome {
        // The snapshot is pinned: the manifest validated at load time is the one installed.
        match self.snapshot.app(self.manifest().id().as_str()) {
            Some(a) if a.manifest_sha256 == self.app.manifest_sha256 => {}
            _ => return failed(
                "the app changed in the catalog since the install was requested; request it again",
            ),
        }
        match self.requirements_met().await {
            Ok(()) => StepOutcome::Done,
            Err(o) => o,
        }
    }

    /// The manifest's `requires`: this store's version and the node's PVE release.
    pub(super) async fn requirements_met(&self) -> Result<(), StepOutcome> {
        let requires = self.manifest().requires();
        let pve = match &requires.pve {
            Some(_) => match self.engine.pve.version().await {
                Ok(v) => Some(v.version),
                Err(e) => return Err(pve_failed("reading the PVE release", e)),
            },
            None => None,
        };
        let unmet = requires.unmet(appstore_core::STORE_VERSION, pve.as_deref());
        if unmet.is_empty() {
            Ok(())
        } else {
            Err(failed(format!(
                "{} {} {}",
                self.manifest().id(),
                self.manifest().version(),
                unmet.join("; ")
            )))
        }
    }

    pub(super) fn storage(&self) -> String {
        self.request
            .storage
            .clone()
            .or_else(|| self.manifest().lxc().storage.clone())
            .unwrap_or_else(|| self.engine.config.storage.clone())
    }

    pub(super) fn bridge(&self) -> String {
        self.request
            .bridge
            .clone()
            .or_else(|| self.manifest().lxc().bridge.clone())
            .unwrap_or_else(|| self.engine.config.bridge.clone())
    }

    pub(super) async fn validate_placement(&mut self) -> StepOutcome {
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
        let tstorage = match crate::engine::template_storage(
            pve.as_ref(),
            &node,
            self.engine.config.template_storage.as_deref(),
        )
        .await
        {
            Ok(t) => t,
            Err(e) => return failed(e),
        };
        match crate::engine::newest_template(&self.engine, &tstorage, &family).await {
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
            Ok(list) => {
                let newest = appstore_core::ostemplate::newest(
                    &family,
                    list.iter().map(|a| a.template.as_str()),
                )
                .map(str::to_string);
                list.into_iter()
                    .find(|a| Some(&a.template) == newest.as_ref())
            }
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

    pub(super) async fn allocate_ctid(&mut self) -> StepOutcome {
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
                if let Err(e) = blocking(move || store.set_job_ctid(job, id)).await {
                    return failed(format!("recording the container id: {e}"));
                }
                self.log.info(&format!("container id {id}")).await;
                StepOutcome::Done
            }
            Err(e) => pve_failed("allocating a container id", e),
        }
    }

    /// After a restart: did this job's create already happen (or is it still running)?
    pub(super) async fn find_created(&mut self, ctid: Ctid) -> Option<StepOutcome> {
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
        if !crate::engine::created_by_job(cfg.options.get("description"), self.job_id) {
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

    pub(super) async fn create(&mut self) -> StepOutcome {
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
            description: Some(crate::engine::container_description(
                m.id().as_str(),
                &m.version().to_string(),
                self.job_id,
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
    pub(super) async fn kept_volumes(&self) -> Vec<crate::store::KeptVolume> {
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
    pub(super) async fn attach_volumes(&mut self, ctid: Ctid) -> StepOutcome {
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
                        if let Err(e) = crate::engine::volumes::reattach(
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

    pub(super) async fn configure(&mut self) -> StepOutcome {
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

    pub(super) async fn start(&mut self) -> StepOutcome {
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
    pub(super) async fn ensure_running(&self, ctid: Ctid, what: &str) -> Result<(), StepOutcome> {
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

    pub(super) async fn wait_for_network(&mut self) -> StepOutcome {
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
}
