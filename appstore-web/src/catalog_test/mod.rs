//! `pve-appstore catalog test`: a catalog maintainer's lifecycle run. Each app is installed, checked,
//! upgraded, reconfigured, uninstalled keeping its data, reinstalled and uninstalled again, in real
//! LXC containers of a simulated Proxmox VE node, through the product's own engine and root helper
//! (in process). Apps whose `sources` are not all Debian's archive, PyPI or npm are not run: their
//! install plan is rendered instead (see [`crate::plan`]).
//!
//! Every step is timed and reported; a failed step ends that app's run with the job's last log lines,
//! and the next app starts. The simulated node and every container it made go when the run ends.

mod report;
mod url;
mod world;

pub use report::{AppReport, StepReport, TestReport};

use crate::plan;
use anyhow::Context as _;
use appstore_catalog::{CatalogApp, GitCache, GitCatalog, GitSource};
use appstore_core::manifest::Manifest;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use world::World;

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
pub(super) fn commit_all(dir: &Path, message: &str) -> anyhow::Result<String> {
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
