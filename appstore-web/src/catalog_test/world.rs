//! The simulated node, the engine and the catalog repository of a `catalog test` run, and the eight
//! steps of one app's lifecycle on them.

use super::report::{fail, no_install, Outcome, Runner, StepError, StepReport};
use super::url::UrlTarget;
use super::{commit_all, TestOptions};
use anyhow::Context as _;
use appstore_actors::engine::{
    CancelFlag, Engine, EngineConfig, InProcessHelper, InstallRequest, MaintainRequest,
};
use appstore_actors::store::{InstallRecord, Store};
use appstore_catalog::{CatalogApp, CatalogSnapshot, GitCache, GitCatalog, GitSource};
use appstore_core::job::{JobKind, JobState};
use appstore_core::manifest::{InputType, InputValue, Manifest, VolumeSource};
use appstore_core::Ctid;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The simulated node, the engine and the catalog repository of a run.
pub(super) struct World {
    sim: pve_sim::harness::RunningSim,
    engine: Engine,
    source: GitSource,
    source_dir: PathBuf,
    catalog_cache: PathBuf,
    snapshot: std::sync::Mutex<Arc<CatalogSnapshot>>,
}

impl World {
    pub(super) fn start(
        opts: &TestOptions,
        state: &Path,
        source: GitSource,
        snapshot: Arc<CatalogSnapshot>,
    ) -> anyhow::Result<World> {
        if !pve_sim::harness::lxc_available() {
            anyhow::bail!(
                "catalog test needs real containers: run it as root on a machine with LXC and debootstrap (`apt-get install lxc debootstrap`)"
            );
        }
        let sim = pve_sim::harness::start(pve_sim::harness::HarnessOptions {
            version: opts.pve,
            backend: "lxc".into(),
            task_latency: Duration::ZERO,
            pct_host: Some(opts.pct_host.clone()),
            package_cache: opts
                .package_cache
                .clone()
                .or_else(|| Some(state.join("package-cache"))),
            ..Default::default()
        })
        .context("starting the simulated PVE node")?;
        let jobs = state.join("jobs");
        std::fs::create_dir_all(&jobs)?;
        let helper_config = appstore_helper::HelperConfig::parse(&format!(
            "pool: appstore\npve_etc: {r}/etc/pve\npct: {r}/usr/sbin/pct\nlock_dir: {r}/run/lock/lxc\njob_root: {j}\naudit_log: {s}/helper/audit.log\nstaging_dir: {s}/helper/staging\n",
            r = sim.root.display(),
            j = jobs.display(),
            s = state.display()
        ))
        .map_err(anyhow::Error::msg)?;
        let (token_id, secret) = sim
            .creds
            .store_token
            .rsplit_once('=')
            .context("simulator token")?;
        let pve = appstore_pve::HttpPve::new(&appstore_pve::PveEndpoint {
            url: sim.url.clone(),
            token_id: token_id.into(),
            token_secret: secret.into(),
            tls: appstore_pve::TlsMode::Insecure,
        })?;
        let catalog_cache = state.join("catalog-cache");
        let engine = Engine {
            config: EngineConfig {
                node: "pve1".into(),
                pool: "appstore".into(),
                storage: "local-lvm".into(),
                bridge: "vmbr0".into(),
                template_storage: None,
                download_templates: true,
                jobs_dir: jobs,
                catalog_cache: catalog_cache.clone(),
                policy: appstore_core::policy::InstallPolicy {
                    caps: appstore_core::policy::ResourceCaps {
                        max_cores: 8,
                        max_memory_mb: 16384,
                        max_disk_gb: 256,
                    },
                    allowed_features: [appstore_core::manifest::Feature::Nesting].into(),
                    unprivileged_only: true,
                },
                network_wait: appstore_core::job::RetryPolicy::default(),
                task_deadline: Duration::from_secs(1800),
                gpu_policy: Default::default(),
                fault_hold_after: None,
            },
            pve: Arc::new(pve),
            helper: Arc::new(InProcessHelper::new(appstore_helper::Helper::in_process(
                helper_config,
                "catalog-test",
            ))),
            store: Store::open(&state.join("state.db"))?,
            events: tokio::sync::broadcast::channel(1024).0,
            secrets: appstore_actors::secrets::SecretBox::open(&state.join("secret.key"))?,
            reserved_ctids: Default::default(),
            gpus: Default::default(),
            gpu_claims: Default::default(),
        };
        Ok(World {
            sim,
            engine,
            source_dir: state.join("catalog"),
            source,
            catalog_cache,
            snapshot: std::sync::Mutex::new(snapshot),
        })
    }

    fn snapshot(&self) -> Arc<CatalogSnapshot> {
        Arc::clone(&self.snapshot.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Raises the app's patch version in the catalog repository, commits it and loads the commit.
    fn bump_version(&self, app: &Manifest) -> Result<String, String> {
        let rel = Path::new("apps").join(app.id().as_str()).join("app.yml");
        let path = self.source_dir.join(&rel);
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let mut next = app.version().clone();
        next.patch += 1;
        next.pre = semver::Prerelease::EMPTY;
        let mut done = false;
        let new: Vec<String> = text
            .lines()
            .map(|l| {
                if !done && l.starts_with("version:") {
                    done = true;
                    format!("version: {next}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        if !done {
            return Err("app.yml has no top-level `version:` line to raise".into());
        }
        std::fs::write(&path, new.join("\n") + "\n").map_err(|e| e.to_string())?;
        commit_all(&self.source_dir, &format!("{} {next}", app.id())).map_err(|e| e.to_string())?;
        let snap = GitCatalog::new(GitCache::new(&self.catalog_cache), self.source.clone())
            .refresh()
            .map_err(|e| e.to_string())?
            .snapshot;
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = snap;
        Ok(next.to_string())
    }

    pub(super) async fn lifecycle(
        &self,
        app: &Arc<CatalogApp>,
        progress: &mut dyn FnMut(&str, &StepReport),
    ) -> Vec<StepReport> {
        let id = app.manifest.id().to_string();
        let mut steps = Vec::new();
        let mut run = Runner {
            steps: &mut steps,
            progress,
            app: &id,
            failed: false,
        };
        let mut install: Option<InstallRecord> = None;
        let markers: Vec<(String, String)> = app
            .manifest
            .volumes()
            .iter()
            .filter(|v| matches!(v.source, VolumeSource::Managed { .. }))
            .map(|v| {
                (
                    format!(
                        "{}/.appstore-catalog-test",
                        v.mount_path.trim_end_matches('/')
                    ),
                    format!("kept by catalog test {}", random_word()),
                )
            })
            .collect();

        run.step("install", async {
            let (rec, detail) = self.install(&id).await?;
            install = Some(rec);
            Ok(detail.into())
        })
        .await;
        run.step("url", async {
            self.check_url(install.as_ref()).await.map(Outcome::Passed)
        })
        .await;
        run.step("app-log", async {
            let rec = install.clone().ok_or_else(no_install)?;
            let Some(unit) = app.manifest.service() else {
                return Ok(Outcome::Skipped("the manifest names no `service`".into()));
            };
            let ctid = rec
                .ctid
                .ok_or_else(|| fail("the install has no container"))?;
            let entries = self.journal(ctid, unit).await?;
            if entries == 0 {
                return Err(fail(format!(
                    "the journal of `{unit}` is empty: is `service` the unit that runs the app?"
                )));
            }
            Ok(format!("{entries} journal entries of {unit}").into())
        })
        .await;
        run.step("upgrade", async {
            let rec = install.clone().ok_or_else(no_install)?;
            let next = self.bump_version(&app.manifest).map_err(fail)?;
            self.maintain(
                JobKind::Upgrade,
                &rec,
                MaintainRequest {
                    install_id: rec.id,
                    ..Default::default()
                },
            )
            .await?;
            let after = self.reload(&rec)?;
            if after.version != next {
                return Err(fail(format!(
                    "the install is at {} after the upgrade to {next}",
                    after.version
                )));
            }
            let detail = format!("{} -> {next}", rec.version);
            install = Some(after);
            Ok(detail.into())
        })
        .await;
        run.step("reconfigure", async {
            let rec = install.clone().ok_or_else(no_install)?;
            let snapshot = self.snapshot();
            let manifest = &snapshot
                .app(&id)
                .ok_or_else(|| fail("the app vanished"))?
                .manifest;
            let changes = reconfigure_values(manifest, &rec);
            if changes.is_empty() {
                return Ok(Outcome::Skipped("no reconfigurable inputs".into()));
            }
            let names: Vec<String> = changes.keys().cloned().collect();
            self.maintain(
                JobKind::Reconfigure,
                &rec,
                MaintainRequest {
                    install_id: rec.id,
                    inputs: changes,
                    ..Default::default()
                },
            )
            .await?;
            let after = self.reload(&rec)?;
            let url = self.check_url(Some(&after)).await?;
            install = Some(after);
            Ok(format!("set {}; {url}", names.join(", ")).into())
        })
        .await;
        run.step("uninstall-keep-data", async {
            let rec = install.clone().ok_or_else(no_install)?;
            let ctid = rec
                .ctid
                .ok_or_else(|| fail("the install has no container"))?;
            for (path, text) in &markers {
                self.write_marker(ctid, path, text)?;
            }
            self.uninstall(&rec, true).await?;
            install = None;
            Ok(format!("{} volume(s) kept with a marker file", markers.len()).into())
        })
        .await;
        run.step("reinstall", async {
            let (rec, detail) = self.install(&id).await?;
            install = Some(rec);
            Ok(detail.into())
        })
        .await;
        run.step("data-kept", async {
            let rec = install.clone().ok_or_else(no_install)?;
            let ctid = rec
                .ctid
                .ok_or_else(|| fail("the install has no container"))?;
            if markers.is_empty() {
                return Ok(Outcome::Skipped("the app has no volumes".into()));
            }
            for (path, text) in &markers {
                let found = self.read_file(ctid, path)?;
                if found.trim() != text {
                    return Err(fail(format!("{path} holds {found:?}, not the marker")));
                }
            }
            let url = self.check_url(Some(&rec)).await?;
            Ok(format!("{} marker(s) found; {url}", markers.len()).into())
        })
        .await;
        run.step("uninstall", async {
            let rec = install.clone().ok_or_else(no_install)?;
            self.uninstall(&rec, false).await?;
            install = None;
            Ok(Outcome::Passed("container and volumes removed".into()))
        })
        .await;
        // Whatever a failed step left: the app's containers go (the node goes at the end anyway).
        if let Some(rec) = install {
            let _ = self.uninstall(&rec, false).await;
        }
        steps
    }

    async fn install(&self, id: &str) -> Result<(InstallRecord, String), StepError> {
        let snapshot = self.snapshot();
        let request = InstallRequest {
            app_id: id.to_string(),
            ..Default::default()
        };
        let job = self
            .engine
            .create_install_job(&snapshot, &request)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let end = self
            .engine
            .run_install(job, snapshot, request, CancelFlag::default())
            .await
            .map_err(|e| fail(e.to_string()))?;
        self.job_ended(job, end)?;
        let record = self
            .engine
            .store
            .job(job)
            .map_err(fail)?
            .ok_or_else(no_install)?;
        let install_id = record.install_id.ok_or_else(no_install)?;
        let install = self
            .engine
            .store
            .install(install_id)
            .map_err(fail)?
            .ok_or_else(no_install)?;
        let ctid = install.ctid.map(|c| c.to_string()).unwrap_or_default();
        let health = self
            .engine
            .store
            .logs(job, 0, 100_000)
            .map_err(fail)?
            .into_iter()
            .rev()
            .find(|l| l.line.contains("healthy after"))
            .map(|l| l.line)
            .unwrap_or_else(|| "no health check".into());
        Ok((install, format!("CT {ctid}, job {job} ({health})")))
    }

    fn job_ended(&self, job: i64, end: JobState) -> Result<(), StepError> {
        if end == JobState::Completed {
            return Ok(());
        }
        let error = self
            .engine
            .store
            .job(job)
            .ok()
            .flatten()
            .and_then(|j| j.error)
            .unwrap_or_default();
        let tail = self
            .engine
            .store
            .logs(job, 0, 100_000)
            .map(|lines| {
                let n = lines.len().saturating_sub(40);
                lines[n..]
                    .iter()
                    .map(|l| format!("[{}] {}", l.stream, l.line))
                    .collect()
            })
            .unwrap_or_default();
        Err(StepError {
            message: format!("job {job} ended {end:?}: {error}"),
            log_tail: tail,
        })
    }

    async fn maintain(
        &self,
        kind: JobKind,
        install: &InstallRecord,
        request: MaintainRequest,
    ) -> Result<(), StepError> {
        let snapshot = self.snapshot();
        let job = self
            .engine
            .create_maintain_job(kind, &snapshot, install, &request)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let end = self
            .engine
            .run_maintain(
                kind,
                job,
                snapshot,
                install.clone(),
                request,
                CancelFlag::default(),
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        self.job_ended(job, end)
    }

    async fn uninstall(&self, install: &InstallRecord, keep: bool) -> Result<(), StepError> {
        let job = self
            .engine
            .create_uninstall_job(install, keep)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let end = self
            .engine
            .run_uninstall(
                job,
                install.clone(),
                Some(self.snapshot()),
                CancelFlag::default(),
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        self.job_ended(job, end)?;
        // The app's uninstall hook must have run and succeeded (an uninstall goes on without it,
        // so only its log says).
        let hook = self
            .snapshot()
            .app(&install.app_id)
            .and_then(|a| a.manifest.provision().uninstall.clone());
        if let Some(script) = hook {
            let lines = self.engine.store.logs(job, 0, 100_000).map_err(fail)?;
            let done = format!("{script} finished");
            if !lines.iter().any(|l| l.line == done) {
                let n = lines.len().saturating_sub(40);
                return Err(StepError {
                    message: format!("the uninstall hook {script} did not finish cleanly"),
                    log_tail: lines[n..]
                        .iter()
                        .map(|l| format!("[{}] {}", l.stream, l.line))
                        .collect(),
                });
            }
        }
        if let Some(ctid) = install.ctid {
            if self
                .sim
                .root
                .join(format!("etc/pve/lxc/{ctid}.conf"))
                .exists()
            {
                return Err(fail(format!("CT {ctid} still exists after the uninstall")));
            }
        }
        Ok(())
    }

    fn reload(&self, install: &InstallRecord) -> Result<InstallRecord, StepError> {
        self.engine
            .store
            .install(install.id)
            .map_err(fail)?
            .ok_or_else(no_install)
    }

    /// The `url` output answers from the host: an HTTP status below 400 (or 401) for http URLs, an
    /// accepted TCP connection for other schemes.
    async fn check_url(&self, install: Option<&InstallRecord>) -> Result<String, StepError> {
        let install = install.ok_or_else(no_install)?;
        let url = output(install, "url").ok_or_else(|| {
            fail("the app has no `url` output (every app of a catalog should have one)")
        })?;
        let target = UrlTarget::parse(&url).map_err(fail)?;
        let mut last = String::new();
        // The health check passed inside; from the host the first answer may take a moment longer.
        for _ in 0..20 {
            match target.probe().await {
                Ok(seen) => return Ok(format!("{url} {seen}")),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(fail(format!("{url}: {last}")))
    }

    /// How many journal entries the app's unit has, read as the installed app's page reads them
    /// (through the helper's fixed `journalctl` command).
    async fn journal(&self, ctid: Ctid, unit: &str) -> Result<usize, StepError> {
        let (entries, _) = appstore_actors::engine::host::read_journal(
            self.engine.helper.as_ref(),
            ctid,
            unit,
            200,
            None,
            &appstore_core::redact::Redactor::default(),
        )
        .await
        .map_err(fail)?;
        Ok(entries.len())
    }

    fn pct(&self) -> std::process::Command {
        std::process::Command::new(self.sim.root.join("usr/sbin/pct"))
    }

    fn write_marker(&self, ctid: Ctid, path: &str, text: &str) -> Result<(), StepError> {
        let file = tempfile::NamedTempFile::new().map_err(fail)?;
        std::fs::write(file.path(), format!("{text}\n")).map_err(fail)?;
        let out = self
            .pct()
            .args(["push", &ctid.to_string()])
            .arg(file.path())
            .arg(path)
            .output()
            .map_err(fail)?;
        // `pct push` exits 0 on some failures: read the file back.
        let back = self.read_file(ctid, path)?;
        if !out.status.success() || back.trim() != text {
            return Err(fail(format!(
                "cannot write the marker {path}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    fn read_file(&self, ctid: Ctid, path: &str) -> Result<String, StepError> {
        let out = self
            .pct()
            .args(["exec", &ctid.to_string(), "--", "cat", "--", path])
            .output()
            .map_err(fail)?;
        if !out.status.success() {
            return Err(fail(format!(
                "cannot read {path} in CT {ctid}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Values for every reconfigurable input: a new password for secrets, the other choice for booleans
/// and selects; numbers and text keep their values (the reconfigure script runs with them all the
/// same).
fn reconfigure_values(
    m: &Manifest,
    install: &InstallRecord,
) -> serde_json::Map<String, serde_json::Value> {
    let current: serde_json::Value =
        serde_json::from_str(&install.inputs).unwrap_or(serde_json::Value::Null);
    let mut out = serde_json::Map::new();
    for input in m.inputs().iter().filter(|i| i.reconfigurable) {
        let now = current.get(&input.key);
        let value = match input.kind {
            InputType::Secret => serde_json::Value::String(random_word()),
            InputType::Boolean => {
                serde_json::Value::Bool(!now.and_then(|v| v.as_bool()).unwrap_or(false))
            }
            InputType::Select => {
                let choices = &input.validation.one_of;
                let at = choices
                    .iter()
                    .position(|c| Some(&input_json(c)) == now)
                    .map_or(0, |p| (p + 1) % choices.len().max(1));
                match choices.get(at) {
                    Some(c) => input_json(c),
                    None => continue,
                }
            }
            // Text and numbers keep their values: the script still runs with them.
            _ => match now {
                Some(v) if !v.is_null() => v.clone(),
                _ => continue,
            },
        };
        out.insert(input.key.clone(), value);
    }
    out
}

fn input_json(v: &InputValue) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn random_word() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

fn output(install: &InstallRecord, key: &str) -> Option<String> {
    let outputs: serde_json::Value = serde_json::from_str(&install.outputs).ok()?;
    outputs
        .as_array()?
        .iter()
        .find(|o| o["key"] == key)?
        .get("value")?
        .as_str()
        .map(str::to_string)
}
