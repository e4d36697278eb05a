//! Job engine benchmark against the inert simulator with zero task latency: the time of one install
//! through every state (what the controller adds: SQLite, HTTP to the node, helper checks, `pct`
//! processes), then 100 installs submitted at once through the JobRegistry with a limit of 8, and the
//! memory afterwards. `cargo bench -p appstore-actors --bench engine` (INSTALLS=N to change the count).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on any setup failure

#[path = "../tests/common/mod.rs"]
mod common;

use actix::Actor;
use appstore_actors::engine::HostHelper;
use appstore_actors::engine::{CancelFlag, InstallRequest};
use appstore_actors::{CatalogActor, CatalogHandle, JobRegistry, SubmitInstall};
use appstore_catalog::{GitCache, GitCatalog};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The helper, timed: how long its actions (the `pct` processes) take.
#[derive(Debug)]
struct TimedHelper {
    inner: Arc<dyn HostHelper>,
    nanos: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl HostHelper for TimedHelper {
    async fn call(
        &self,
        req: appstore_helper::Request,
        on_output: appstore_actors::engine::host::OutputSink,
    ) -> Result<appstore_helper::Reply, String> {
        let start = Instant::now();
        let r = self.inner.call(req, on_output).await;
        self.nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    pve_sim::pct::main_if_invoked();
    let n: usize = std::env::var("INSTALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let world = common::world_with(pve_sim::harness::HarnessOptions {
        task_latency: Duration::ZERO,
        pct_host: Some(std::env::current_exe().unwrap()),
        ..Default::default()
    });
    let helper_nanos = Arc::new(AtomicU64::new(0));
    let mut engine = world.engine.clone();
    engine.helper = Arc::new(TimedHelper {
        inner: Arc::clone(&engine.helper),
        nanos: Arc::clone(&helper_nanos),
    });
    let pve_nanos = Arc::clone(&world.pve_waiting);
    let snapshot = Arc::clone(&world.snapshot);
    let cache = engine.config.catalog_cache.clone();
    let source = world.catalog.clone();
    let request = || {
        let mut r = InstallRequest {
            app_id: "radicale".into(),
            ..Default::default()
        };
        r.inputs
            .insert("password".into(), serde_json::json!("bench-password"));
        r
    };
    println!(
        "engine benchmark: inert simulator, zero task latency, {} cores",
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    );
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    let pct_calls =
        pve_sim::pct::calls_file(&pve_sim::state::SimRoot::open(&world.sim.root).unwrap());
    let count_pct = move || {
        std::fs::read_to_string(&pct_calls)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    system.block_on(async move {
        let mut single = Vec::new();
        let mut pct_per_install = Vec::new();
        for _ in 0..7 {
            let pct0 = count_pct();
            let (pve0, helper0) = (pve_nanos.load(Ordering::Relaxed), helper_nanos.load(Ordering::Relaxed));
            let start = Instant::now();
            let job = engine.create_install_job(&snapshot, &request()).await.unwrap();
            let end = engine.run_install(job, Arc::clone(&snapshot), request(), CancelFlag::default()).await.unwrap();
            let wall = start.elapsed().as_nanos() as u64;
            let pve = pve_nanos.load(Ordering::Relaxed) - pve0;
            let helper = helper_nanos.load(Ordering::Relaxed) - helper0;
            single.push((wall, pve, helper));
            pct_per_install.push(count_pct() - pct0);
            if end != appstore_core::job::JobState::Completed {
                let logs: Vec<String> = engine.store.logs(job, 0, 100).unwrap().into_iter().map(|l| l.line).collect();
                panic!("install failed: {:?}\n{}", engine.store.job(job).unwrap().unwrap().error, logs.join("\n"));
            }
        }
        // One install runs its steps one after another, so its wall time splits into waiting for the
        // node's API, the helper's actions (pct processes of the simulator), and the controller itself.
        single.sort_by_key(|(wall, pve, helper)| wall - pve - helper);
        let (wall, pve, helper) = single[3];
        let own: Vec<f64> = single.iter().map(|(w, p, h)| ms(w - p - h)).collect();
        println!("one install, every state:          median wall {:.1} ms = node API {:.1} ms + helper/pct {:.1} ms + controller {:.1} ms", ms(wall), ms(pve), ms(helper), ms(wall - pve - helper));
        println!("controller overhead per install:    median {:.1} ms (min {:.1}, max {:.1}; target < 50 ms)", own[3], own[0], own[6]);
        pct_per_install.sort_unstable();
        println!("pct processes per install:          {} (min {}, max {}; target at most 6)", pct_per_install[3], pct_per_install[0], pct_per_install[6]);

        let handle = CatalogHandle::default();
        let _catalog = CatalogActor::new(GitCatalog::new(GitCache::new(&cache), source), handle.clone(), None).start();
        for _ in 0..500 {
            if handle.snapshot().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(handle.snapshot().is_some(), "catalog did not load: {:?}", handle.status().last_error);
        let registry = JobRegistry::new(engine.clone(), handle, 8).start();
        let start = Instant::now();
        let mut ids = Vec::new();
        for _ in 0..n {
            ids.push(registry.send(SubmitInstall(request())).await.unwrap().unwrap());
        }
        eprintln!("submitted {} jobs", ids.len());
        let submitted = start.elapsed();
        loop {
            let done = ids.iter().filter(|id| engine.store.job(**id).unwrap().unwrap().finished_at.is_some()).count();
            if done == n {
                break;
            }
            if start.elapsed() > Duration::from_secs(120) {
                let states: Vec<appstore_core::job::JobState> = ids.iter().map(|id| engine.store.job(*id).unwrap().unwrap().state).collect();
                panic!("not finished after 120 s: {states:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let total = start.elapsed();
        let records: Vec<_> = ids.iter().map(|id| engine.store.job(*id).unwrap().unwrap()).collect();
        let completed = records.iter().filter(|r| r.state == appstore_core::job::JobState::Completed).count();
        let mut ctids: Vec<appstore_core::Ctid> = records.iter().filter_map(|r| r.ctid).collect();
        ctids.sort_unstable();
        ctids.dedup();
        println!(
            "{n} installs at once, limit 8:       {:.2} s ({:.1} ms submitting), {completed} completed, {} distinct CTIDs, {} errors",
            total.as_secs_f64(),
            submitted.as_secs_f64() * 1e3,
            ctids.len(),
            n - completed
        );
        let mut errors: Vec<String> = records.iter().filter_map(|r| r.error.clone()).collect();
        errors.sort();
        errors.dedup();
        for e in &errors {
            println!("  error: {e}");
        }
        println!("memory (RSS) after the run:         {:.1} MiB (benchmark process, simulator included)", rss_mib());
        assert_eq!(completed, n);
        assert_eq!(ctids.len(), n);
    });
    drop(world);
}
