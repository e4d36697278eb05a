//! Job engine benchmark against the inert simulator with zero task latency: the time of one install
//! through every state (what the controller adds: SQLite, HTTP to the node, helper checks, `pct`
//! processes), then 100 installs submitted at once through the JobRegistry with a limit of 8, and the
//! memory afterwards. `cargo bench -p appstore-actors --bench engine` (INSTALLS=N to change the count).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on any setup failure

#[path = "../tests/common/mod.rs"]
mod common;

use actix::Actor;
use appstore_actors::engine::{CancelFlag, InstallRequest};
use appstore_actors::{CatalogActor, CatalogHandle, JobRegistry, SubmitInstall};
use appstore_catalog::{GitCache, GitCatalog};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    let engine = world.engine.clone();
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
    system.block_on(async move {
        let mut single = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let job = engine.create_install_job(&snapshot, &request()).await.unwrap();
            let end = engine.run_install(job, Arc::clone(&snapshot), request(), CancelFlag::default()).await.unwrap();
            single.push(start.elapsed());
            if end != appstore_core::job::JobState::Completed {
                let logs: Vec<String> = engine.store.logs(job, 0, 100).unwrap().into_iter().map(|l| l.line).collect();
                panic!("install failed: {:?}\n{}", engine.store.job(job).unwrap().unwrap().error, logs.join("\n"));
            }
        }
        single.sort();
        println!("one install, every state:          median {:.1} ms (min {:.1} ms, target < 50 ms)", single[2].as_secs_f64() * 1e3, single[0].as_secs_f64() * 1e3);

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
                let states: Vec<String> = ids.iter().map(|id| engine.store.job(*id).unwrap().unwrap().state).collect();
                panic!("not finished after 120 s: {states:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let total = start.elapsed();
        let records: Vec<_> = ids.iter().map(|id| engine.store.job(*id).unwrap().unwrap()).collect();
        let completed = records.iter().filter(|r| r.state == "completed").count();
        let mut ctids: Vec<i64> = records.iter().filter_map(|r| r.ctid).collect();
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
