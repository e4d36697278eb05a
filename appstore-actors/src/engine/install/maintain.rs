//! Upgrade (snapshot, script, health check, rollback) and reconfigure of an installed app.

use super::*;

/// What the upgrade's context keeps instead of a snapshot's name when it took a backup.
const BACKUP_PREFIX: &str = "backup:";

/// Upgrade and reconfigure.
impl InstallWork {
    /// Where the storage cannot snapshot: a PVE backup of the container (to the install's backup
    /// storage), recorded among its backups; its volume id.
    async fn backup_instead(&mut self, ctid: Ctid) -> Result<String, String> {
        let Some((install, _)) = self.existing.clone() else {
            return Err("no install to upgrade".into());
        };
        let store = self.engine.store.clone();
        let id = install.id;
        let storage = blocking(move || store.backup_policy(id))
            .await
            .ok()
            .flatten()
            .map_or_else(|| "local".to_string(), |p| p.storage);
        self.log
            .info(&format!(
                "the container's storage cannot take snapshots; backing it up to `{storage}` instead"
            ))
            .await;
        let pve = Arc::clone(&self.engine.pve);
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs().saturating_sub(1))
            .unwrap_or(0);
        let spec = appstore_pve::types::Vzdump {
            vmid: ctid,
            storage: storage.clone(),
            mode: appstore_pve::types::BackupMode::Snapshot,
            notes: Some(format!(
                "{} {} before the upgrade to {} (PVE App Store job {})",
                install.app_id,
                install.version,
                self.manifest().version(),
                self.job_id
            )),
        };
        let upid = pve
            .vzdump(self.node(), &spec)
            .await
            .map_err(|e| e.to_string())?;
        wait_task(
            pve.as_ref(),
            &upid,
            self.engine
                .config
                .task_deadline
                .max(std::time::Duration::from_secs(4 * 3600)),
        )
        .await
        .map_err(|e| e.to_string())?;
        let list = pve
            .backups(self.node(), &storage, ctid)
            .await
            .map_err(|e| e.to_string())?;
        let made = crate::engine::backup::newest_since(list, since)
            .ok_or("the backup task ended but no new backup is on the storage")?;
        let record =
            crate::engine::backup::backup_record(&install, &made, ctid, &storage, self.job_id);
        let store = self.engine.store.clone();
        blocking(move || store.record_backup(&record))
            .await
            .map_err(|e| e.to_string())?;
        self.log
            .info(&format!("backup {} taken before the upgrade", made.volid))
            .await;
        Ok(made.volid)
    }

    /// The rollback where the upgrade took a backup: the container restored over from it, then
    /// started.
    async fn restore_backup_taken(&mut self, ctid: Ctid, volid: &str) -> StepOutcome {
        let pve = Arc::clone(&self.engine.pve);
        self.log
            .info(&format!(
                "restoring the backup {volid} taken before the upgrade"
            ))
            .await;
        if let Ok(s) = pve.lxc_status(self.node(), ctid).await {
            if s.status == "running" {
                if let Err(o) = self
                    .wait(
                        "stopping the container for the restore",
                        pve.lxc_stop(self.node(), ctid).await,
                    )
                    .await
                {
                    return o;
                }
            }
        }
        // The root disk goes back to the storage it is on.
        let storage = match pve.lxc_config(self.node(), ctid).await {
            Ok(c) => c
                .options
                .get("rootfs")
                .and_then(|r| r.split(':').next().map(str::to_string))
                .unwrap_or_else(|| self.engine.config.storage.clone()),
            Err(e) => return pve_failed("reading the container config", e),
        };
        let spec = appstore_pve::types::RestoreLxc {
            vmid: ctid,
            archive: volid.to_string(),
            storage,
            pool: None,
            force: true,
            unique: false,
            options: Vec::new(),
        };
        if let Err(o) = self
            .wait(
                "restoring the backup",
                pve.lxc_restore(self.node(), &spec).await,
            )
            .await
        {
            return o;
        }
        let started = self.start().await;
        if started != StepOutcome::Done {
            return started;
        }
        self.log
            .info("rolled back: the previous version runs again, restored from the backup")
            .await;
        StepOutcome::Done
    }

    /// The install's inputs as kept at its last install, upgrade or reconfigure.
    pub(super) async fn saved_inputs(
        &self,
        install_id: i64,
    ) -> Result<serde_json::Map<String, Value>, StepOutcome> {
        let (store, secrets) = (self.engine.store.clone(), self.engine.secrets.clone());
        let opened =
            tokio::task::spawn_blocking(move || open_saved_inputs(&store, &secrets, install_id))
                .await
                .map_err(|e| failed(format!("reading the install's inputs: {e}")))?;
        opened.map_err(failed)?.ok_or_else(|| {
            failed(
                "this install's inputs were not kept, so it cannot be changed in place; uninstall (keeping volumes) and install again",
            )
        })
    }

    /// Runs the app's uninstall hook in `install`'s running container as the other scripts run:
    /// the app's files delivered again, the environment rendered from the kept inputs. Returns the
    /// script's exit code, or why it could not run.
    pub(crate) async fn uninstall_hook(
        &mut self,
        install: &InstallRecord,
        script: &str,
    ) -> Result<i32, String> {
        let reason = |o: StepOutcome| match o {
            StepOutcome::Failed { reason } => reason,
            other => format!("{other:?}"),
        };
        self.ctid = install.ctid;
        self.created = true;
        let values = self.saved_inputs(install.id).await.map_err(reason)?;
        let taken = self.take_inputs(&values);
        if taken != StepOutcome::Done {
            return Err(reason(taken));
        }
        let pushed = self.push_assets().await;
        if pushed != StepOutcome::Done {
            return Err(reason(pushed));
        }
        self.run_script(script, 300, false).await.map_err(reason)
    }

    /// Resolves `values` against this manifest and takes them as the job's inputs.
    pub(super) fn take_inputs(&mut self, values: &serde_json::Map<String, Value>) -> StepOutcome {
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
    pub(super) async fn running_with_address(&mut self) -> StepOutcome {
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

    pub(super) async fn validate_upgrade(&mut self) -> StepOutcome {
        let Some((install, _)) = self.existing.clone() else {
            return failed("no install to upgrade");
        };
        let id = self.manifest().id().to_string();
        match check(&install.version, self.manifest()) {
            UpgradeCheck::Available { from, to, .. } => {
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
        if let Err(o) = self.requirements_met().await {
            return o;
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

    pub(super) async fn validate_reconfigure(&mut self) -> StepOutcome {
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

    pub(super) fn snapshot_name(&self) -> String {
        // pve-configid: letters, digits and `_`.
        format!("appstore_job_{}", self.job_id)
    }

    pub(super) async fn take_snapshot(&mut self) -> StepOutcome {
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
                // A backup instead: a failed upgrade is restored from it.
                let why = match self.backup_instead(ctid).await {
                    Ok(volid) => {
                        self.pve_snapshot = Some(format!("{BACKUP_PREFIX}{volid}"));
                        return StepOutcome::Done;
                    }
                    Err(why) => why,
                };
                let allowed = self
                    .existing
                    .as_ref()
                    .is_some_and(|(_, r)| r.allow_no_snapshot);
                if allowed {
                    self.log.info(&format!("the container's storage cannot take snapshots and the backup instead failed ({why}); going on without either, as you allowed: a failed upgrade cannot be rolled back")).await;
                    StepOutcome::Done
                } else {
                    failed(format!("the container's storage cannot take snapshots, and the backup instead failed ({why}), so a failed upgrade could not be rolled back; fix the backup storage, upgrade again allowing it to go on without either (`allow_no_snapshot`), or move the container to a storage that snapshots (LVM-thin, ZFS, Ceph)"))
                }
            }
            Err(e) => pve_failed("taking a snapshot before the upgrade", e),
        }
    }

    pub(super) async fn run_upgrade(&mut self) -> StepOutcome {
        let p = self.manifest().provision().clone();
        let Some(script) = p.upgrade else {
            return failed("this version has no upgrade script");
        };
        self.run_once(script.as_str(), p.timeout_sec).await
    }

    pub(super) async fn rollback(&mut self) -> StepOutcome {
        let Some(ctid) = self.ctid else {
            return failed("no container id");
        };
        let Some(name) = self.pve_snapshot.clone() else {
            return failed("there is no snapshot to roll back to (the upgrade went on without one); the container is as the failed upgrade left it");
        };
        if let Some(volid) = name.strip_prefix(BACKUP_PREFIX) {
            return self.restore_backup_taken(ctid, volid).await;
        }
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

    pub(super) async fn remove_snapshot(&mut self) -> StepOutcome {
        let (Some(ctid), Some(name)) = (self.ctid, self.pve_snapshot.clone()) else {
            return StepOutcome::Done;
        };
        if let Some(volid) = name.strip_prefix(BACKUP_PREFIX) {
            self.log
                .info(&format!(
                    "the backup {volid} taken before the upgrade stays among the app's backups (the retention removes it in time)"
                ))
                .await;
            return StepOutcome::Done;
        }
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

    pub(super) async fn run_reconfigure(&mut self) -> StepOutcome {
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
) -> Result<(), crate::engine::EngineError> {
    if manifest.provision().reconfigure.is_none() {
        return Err(crate::engine::EngineError::Rejected(format!(
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
        Err(crate::engine::EngineError::Invalid { fields })
    }
}
