//! `pve-appstore catalog test`: a catalog maintainer's lifecycle run. Each app is installed, checked,
//! upgraded, reconfigured, uninstalled keeping its data, reinstalled and uninstalled again, in real
//! LXC containers of a simulated Proxmox VE node, through the product's own engine and root helper
//! (in process). Apps whose `sources` are not all Debian's archive, PyPI or npm are not run: their
//! install plan is rendered instead (see [`crate::plan`]).
//!
//! Every step is timed and reported; a failed step ends that app's run with the job's last log lines,
//! and the next app starts. The simulated node and every container it made go when the run ends.

use crate::plan;
use anyhow::Context as _;
use appstore_actors::engine::{
    CancelFlag, Engine, EngineConfig, InProcessHelper, InstallRequest, MaintainRequest,
};
use appstore_actors::store::{InstallRecord, Store};
use appstore_catalog::{CatalogApp, CatalogSnapshot, GitCache, GitCatalog, GitSource};
use appstore_core::job::{JobKind, JobState};
use appstore_core::manifest::{InputType, InputValue, Manifest, VolumeSource};
use appstore_core::Ctid;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// The catalog directory (the one that holds `apps/`).
    pub catalog: PathBuf,
    /// Apps to test, each run whatever its sources; empty: every app, where apps that download from
    /// elsewhere than Debian, PyPI or npm get their plan rendered instead.
    pub apps: Vec<String>,
    /// With no apps named: run the apps that download from elsewhere too (their downloads must be
    /// reachable).
    pub all_sources: bool,
    /// Run only every n-th app (`(k, n)`: the k-th of n shards, from 1), so that several machines or
    /// processes can share a catalog's apps. Plans are rendered in the first shard.
    pub shard: Option<(usize, usize)>,
    /// Shared download caches (apt, pip, npm) for the containers; kept after the run.
    pub package_cache: Option<PathBuf>,
    /// The Proxmox VE release the simulated node runs.
    pub pve: pve_sim::PveVersion,
    /// The `pve-appstore` binary, which runs the simulated node's `pct`.
    pub pct_host: PathBuf,
}

/// One step of one app.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// `install`, `url`, `upgrade`, `reconfigure`, `uninstall-keep-data`, `reinstall`, `data-kept`,
    /// `uninstall`, or `plan` for apps that are not run.
    pub step: String,
    /// `passed`, `failed` or `skipped`.
    pub result: String,
    /// Seconds it took.
    pub seconds: f64,
    /// What was seen (the URL's answer, the versions, why it was skipped, the error).
    pub detail: String,
    /// The job's last log lines, when it failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
}

/// One app's run.
#[derive(Debug, Clone, Serialize)]
pub struct AppReport {
    /// The app.
    pub app: String,
    /// Its catalog version.
    pub version: String,
    /// Its `sources`.
    pub sources: Vec<String>,
    /// `lifecycle` (run in containers) or `plan` (rendered only).
    pub mode: String,
    /// Every step, in order.
    pub steps: Vec<StepReport>,
    /// Seconds for the whole app.
    pub seconds: f64,
    /// True when no step failed.
    pub passed: bool,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// Per app.
    pub apps: Vec<AppReport>,
    /// Seconds for everything, the node's start included.
    pub seconds: f64,
    /// True when every app passed.
    pub passed: bool,
}

impl TestReport {
    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for app in &self.apps {
            out.push_str(&format!(
                "{} {} ({}; sources: {}) {} in {:.0} s\n",
                app.app,
                app.version,
                app.mode,
                if app.sources.is_empty() {
                    "not declared".to_string()
                } else {
                    app.sources.join(", ")
                },
                if app.passed { "PASSED" } else { "FAILED" },
                app.seconds
            ));
            for s in &app.steps {
                out.push_str(&format!(
                    "  {:<20} {:<7} {:>7.1} s  {}\n",
                    s.step, s.result, s.seconds, s.detail
                ));
                for l in &s.log_tail {
                    out.push_str(&format!("      | {l}\n"));
                }
            }
        }
        let failed = self.apps.iter().filter(|a| !a.passed).count();
        out.push_str(&format!(
            "{} apps, {} passed, {} failed, {:.0} s\n",
            self.apps.len(),
            self.apps.len() - failed,
            failed,
            self.seconds
        ));
        out
    }
}

/// Runs the lifecycle of the chosen apps; `progress` gets each finished step as it happens.
pub fn run(
    opts: &TestOptions,
    progress: &mut dyn FnMut(&str, &StepReport),
) -> anyhow::Result<TestReport> {
    let started = Instant::now();
    let catalog = std::fs::canonicalize(&opts.catalog).with_context(|| {
        format!(
            "cannot read the catalog directory {}",
            opts.catalog.display()
        )
    })?;
    anyhow::ensure!(
        catalog.join("apps").is_dir(),
        "{} has no apps/ directory; give the catalog directory (the one that holds apps/)",
        catalog.display()
    );
    let state = tempfile::Builder::new()
        .prefix("pve-appstore-catalog-test-")
        .tempdir()?;
    let source_dir = state.path().join("catalog");
    copy_tree(&catalog, &source_dir)?;
    let url = commit_all(&source_dir, "catalog under test")?;
    let source = GitSource {
        url,
        branch: "main".into(),
        path: String::new(),
    };
    let cache = state.path().join("catalog-cache");
    let snapshot = GitCatalog::new(GitCache::new(&cache), source.clone())
        .refresh()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .snapshot;
    let problems: Vec<String> = snapshot
        .broken()
        .iter()
        .map(|b| format!("apps/{} has {} problem(s)", b.dir, b.diagnostics.len()))
        .collect();
    let chosen: Vec<Arc<CatalogApp>> = if opts.apps.is_empty() {
        snapshot.apps().values().cloned().collect()
    } else {
        let mut v = Vec::new();
        for id in &opts.apps {
            match snapshot.app(id) {
                Some(app) => v.push(Arc::clone(app)),
                None => anyhow::bail!(
                    "no app `{id}` in {} that lints clean{}",
                    catalog.display(),
                    if problems.is_empty() {
                        String::new()
                    } else {
                        format!(" (lint: {})", problems.join("; "))
                    }
                ),
            }
        }
        v
    };
    anyhow::ensure!(!chosen.is_empty(), "{} has no apps", catalog.display());
    let (mut run_apps, mut plan_apps): (Vec<_>, Vec<_>) = chosen.into_iter().partition(|a| {
        opts.all_sources || !opts.apps.is_empty() || a.manifest.installs_from_public_registries()
    });

    if let Some((k, n)) = opts.shard {
        anyhow::ensure!(
            n >= 1 && (1..=n).contains(&k),
            "--shard {k}/{n}: write K/N with 1 <= K <= N"
        );
        run_apps = shard_of(run_apps, k, n);
        if k != 1 {
            plan_apps.clear();
        }
    }
    let mut reports = Vec::new();
    for app in &plan_apps {
        let t = Instant::now();
        let (result, detail) = match plan::render(&app.manifest, &plan::PlanOptions::default()) {
            Ok(p) => (
                "passed",
                format!(
                    "not run: installs from {}; plan: {} lines (`pve-appstore catalog plan`)",
                    reach_text(&app.manifest),
                    p.text().lines().count()
                ),
            ),
            Err(e) => ("failed", e),
        };
        let step = StepReport {
            step: "plan".into(),
            result: result.into(),
            seconds: t.elapsed().as_secs_f64(),
            detail,
            log_tail: Vec::new(),
        };
        progress(app.manifest.id().as_str(), &step);
        reports.push(app_report(&app.manifest, "plan", vec![step], t));
    }
    if !run_apps.is_empty() {
        let world = World::start(opts, state.path(), source, snapshot)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        for app in &run_apps {
            let t = Instant::now();
            let steps = rt.block_on(world.lifecycle(app, progress));
            reports.push(app_report(&app.manifest, "lifecycle", steps, t));
        }
    }
    reports.sort_by(|a, b| a.app.cmp(&b.app));
    let passed = reports.iter().all(|r| r.passed);
    Ok(TestReport {
        apps: reports,
        seconds: started.elapsed().as_secs_f64(),
        passed,
    })
}

/// How long an app's lifecycle takes, roughly, from where it installs from: npm installs are the
/// slowest (many small packages, sometimes a native build), PyPI next, Debian's archive fastest.
fn cost(m: &Manifest) -> u32 {
    use appstore_core::manifest::Source;
    let s = m.sources();
    2 + 4 * u32::from(s.contains(&Source::Npm)) + u32::from(s.contains(&Source::Pypi))
}

/// The `k`-th of `n` shares of `apps` (from 1), balanced by [`cost`]: the costliest app first, each
/// to the share with the least so far; ties by id, so every shard computes the same split.
fn shard_of(mut apps: Vec<Arc<CatalogApp>>, k: usize, n: usize) -> Vec<Arc<CatalogApp>> {
    apps.sort_by(|a, b| {
        cost(&b.manifest)
            .cmp(&cost(&a.manifest))
            .then_with(|| a.manifest.id().as_str().cmp(b.manifest.id().as_str()))
    });
    let mut load = vec![0u32; n];
    let mut mine = Vec::new();
    for app in apps {
        let (least, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .unwrap_or((0, &0));
        load[least] += cost(&app.manifest);
        if least == k - 1 {
            mine.push(app);
        }
    }
    mine
}

fn reach_text(m: &Manifest) -> String {
    if m.sources().is_empty() {
        "undeclared sources (no `sources` in app.yml)".into()
    } else {
        m.sources()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn app_report(m: &Manifest, mode: &str, steps: Vec<StepReport>, t: Instant) -> AppReport {
    AppReport {
        app: m.id().to_string(),
        version: m.version().to_string(),
        sources: m.sources().iter().map(|s| s.to_string()).collect(),
        mode: mode.into(),
        passed: steps.iter().all(|s| s.result != "failed"),
        steps,
        seconds: t.elapsed().as_secs_f64(),
    }
}

/// The simulated node, the engine and the catalog repository of a run.
struct World {
    sim: pve_sim::harness::RunningSim,
    engine: Engine,
    source: GitSource,
    source_dir: PathBuf,
    catalog_cache: PathBuf,
    snapshot: std::sync::Mutex<Arc<CatalogSnapshot>>,
}

impl World {
    fn start(
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

    async fn lifecycle(
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
            Ok(detail)
        })
        .await;
        run.step("url", async { self.check_url(install.as_ref()).await })
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
            Ok(detail)
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
                return Ok(Skip::because("no reconfigurable inputs").into());
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
            Ok(format!("set {}; {url}", names.join(", ")))
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
            Ok(format!(
                "{} volume(s) kept with a marker file",
                markers.len()
            ))
        })
        .await;
        run.step("reinstall", async {
            let (rec, detail) = self.install(&id).await?;
            install = Some(rec);
            Ok(detail)
        })
        .await;
        run.step("data-kept", async {
            let rec = install.clone().ok_or_else(no_install)?;
            let ctid = rec
                .ctid
                .ok_or_else(|| fail("the install has no container"))?;
            if markers.is_empty() {
                return Ok(Skip::because("the app has no volumes").into());
            }
            for (path, text) in &markers {
                let found = self.read_file(ctid, path)?;
                if found.trim() != text {
                    return Err(fail(format!("{path} holds {found:?}, not the marker")));
                }
            }
            let url = self.check_url(Some(&rec)).await?;
            Ok(format!("{} marker(s) found; {url}", markers.len()))
        })
        .await;
        run.step("uninstall", async {
            let rec = install.clone().ok_or_else(no_install)?;
            self.uninstall(&rec, false).await?;
            install = None;
            Ok("container and volumes removed".to_string())
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

/// Where a `url` output points.
#[derive(Debug, PartialEq)]
struct UrlTarget {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

impl UrlTarget {
    fn parse(url: &str) -> Result<UrlTarget, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("`{url}` is not a URL (scheme://host...)"))?;
        let scheme = scheme.to_ascii_lowercase();
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let hostport = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("`{url}` has a bad port `{p}`"))?,
            ),
            None => (
                hostport.to_string(),
                default_port(&scheme).ok_or_else(|| {
                    format!("`{url}` names no port and `{scheme}` has no default one")
                })?,
            ),
        };
        if host.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        Ok(UrlTarget {
            scheme,
            host,
            port,
            path,
        })
    }

    async fn probe(&self) -> Result<String, String> {
        let addr = format!("{}:{}", self.host, self.port);
        let connect = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(&addr),
        )
        .await
        .map_err(|_| format!("no answer from {addr} within 5 s"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        if self.scheme != "http" {
            drop(connect);
            return Ok(format!("accepts TCP connections on port {}", self.port));
        }
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = connect;
        let request = format!(
            "GET {} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: pve-appstore-catalog-test\r\n\r\n",
            self.path
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut head))
            .await
            .map_err(|_| format!("{addr} sent no HTTP answer within 10 s"))?
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&head[..n]);
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("{addr} did not answer HTTP: {:?}", text.lines().next()))?;
        if status < 400 || status == 401 {
            Ok(format!("answered HTTP {status}"))
        } else {
            Err(format!("answered HTTP {status}"))
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "mqtt" => 1883,
        "mqtts" => 8883,
        "postgres" | "postgresql" => 5432,
        "mysql" | "mariadb" => 3306,
        "redis" | "valkey" => 6379,
        "smb" => 445,
        "dns" => 53,
        "ssh" => 22,
        "ftp" => 21,
        "sip" => 5060,
        _ => return None,
    })
}

/// Why a step failed.
struct StepError {
    message: String,
    log_tail: Vec<String>,
}

fn fail(e: impl std::fmt::Display) -> StepError {
    StepError {
        message: e.to_string(),
        log_tail: Vec::new(),
    }
}

fn no_install() -> StepError {
    fail("no install to work on (an earlier step failed)")
}

/// A step's success text, or the reason it had nothing to do.
struct Skip(String);

impl Skip {
    fn because(why: &str) -> Skip {
        Skip(why.to_string())
    }
}

impl From<Skip> for String {
    fn from(s: Skip) -> String {
        format!("{SKIPPED}{}", s.0)
    }
}

const SKIPPED: &str = "\u{0}skipped:";

struct Runner<'a> {
    steps: &'a mut Vec<StepReport>,
    progress: &'a mut dyn FnMut(&str, &StepReport),
    app: &'a str,
    failed: bool,
}

impl Runner<'_> {
    async fn step(
        &mut self,
        name: &str,
        work: impl std::future::Future<Output = Result<String, StepError>>,
    ) {
        let t = Instant::now();
        let report = if self.failed {
            StepReport {
                step: name.into(),
                result: "skipped".into(),
                seconds: 0.0,
                detail: "an earlier step failed".into(),
                log_tail: Vec::new(),
            }
        } else {
            match work.await {
                Ok(detail) => match detail.strip_prefix(SKIPPED) {
                    Some(why) => StepReport {
                        step: name.into(),
                        result: "skipped".into(),
                        seconds: t.elapsed().as_secs_f64(),
                        detail: why.into(),
                        log_tail: Vec::new(),
                    },
                    None => StepReport {
                        step: name.into(),
                        result: "passed".into(),
                        seconds: t.elapsed().as_secs_f64(),
                        detail,
                        log_tail: Vec::new(),
                    },
                },
                Err(e) => {
                    self.failed = true;
                    StepReport {
                        step: name.into(),
                        result: "failed".into(),
                        seconds: t.elapsed().as_secs_f64(),
                        detail: e.message,
                        log_tail: e.log_tail,
                    }
                }
            }
        };
        (self.progress)(self.app, &report);
        self.steps.push(report);
    }
}

/// Copies a catalog directory (without `.git`) into `dest`.
fn copy_tree(src: &Path, dest: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let kind = entry.file_type()?;
        let to = dest.join(&name);
        if kind.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &to)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
        // Symlinks are left out: the catalog refuses them anyway.
    }
    Ok(())
}

/// Commits everything in `dir` (a repository is made on the first call); its `file://` URL.
fn commit_all(dir: &Path, message: &str) -> anyhow::Result<String> {
    let repo = match git2::Repository::open(dir) {
        Ok(r) => r,
        Err(_) => {
            let r = git2::Repository::init(dir)?;
            r.set_head("refs/heads/main")?;
            r
        }
    };
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = git2::Signature::now("catalog test", "catalog-test@localhost")?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?;
    Ok(format!("file://{}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_targets_name_host_and_port() {
        let t = UrlTarget::parse("http://10.1.2.3:8080/login").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("10.1.2.3", 8080, "/login")
        );
        let t = UrlTarget::parse("postgresql://app@10.1.2.3/appdb").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("10.1.2.3", 5432));
        let t = UrlTarget::parse("smb://10.1.2.3/share").unwrap();
        assert_eq!(t.port, 445);
        assert!(UrlTarget::parse("gopher://10.1.2.3/")
            .unwrap_err()
            .contains("no default"));
        assert!(UrlTarget::parse("10.1.2.3:80").is_err());
    }
}
