//! Web benchmark: `pve-appstore serve` (a real process) on a synthetic 1,000-app catalog in a real
//! git repository — start-up to healthy, idle RSS, `GET /api/apps` latency at 64 concurrent
//! connections — and, on the demo, how long a job's log line takes from being stored to reaching an
//! SSE client. `cargo bench -p appstore-web --bench web`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on any setup failure

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pve-appstore");

fn catalog(dir: &Path, n: usize) -> String {
    for i in 0..n {
        let d = dir.join(format!("apps/app-{i:04}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("app.yml"),
            format!(
                "id: app-{i:04}\nname: App {i}\ndescription: Synthetic app number {i} for the web benchmark\nversion: 1.{}.0\ncategories: [{}]\ntags: [bench, t{}]\nlxc: {{ ostemplate: debian-12 }}\nprovision: {{ script: install.sh }}\n",
                i % 7,
                ["media", "productivity", "networking", "security"][i % 4],
                i % 13
            ),
        )
        .unwrap();
        std::fs::write(d.join("install.sh"), "echo ok\n").unwrap();
    }
    let repo = git2::Repository::init(dir).unwrap();
    repo.set_head("refs/heads/main").unwrap();
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("b", "b@example.org").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "apps", &tree, &[])
        .unwrap();
    format!("file://{}", dir.display())
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn serve_bench() {
    let dir = tempfile::tempdir().unwrap();
    let url = catalog(&dir.path().join("catalog"), 1000);
    std::fs::write(
        dir.path().join("token"),
        "00000000-0000-0000-0000-000000000000",
    )
    .unwrap();
    let port = free_port();
    let config = serde_json::json!({
        "node": "pve1", "pool": "appstore",
        "proxmox": {"api_url": "https://127.0.0.1:1", "token_id": "appstore@pve!store",
                    "token_secret_file": dir.path().join("token"), "tls": {"insecure": true}},
        "web": {"bind": "127.0.0.1", "port": port, "auth": {"mode": "none"}},
        "catalog": {"url": url, "branch": "main"},
        "paths": {"state_dir": dir.path().join("state"), "log_dir": dir.path().join("log"),
                  "helper_socket": dir.path().join("helper.sock")},
    });
    std::fs::write(dir.path().join("config.yml"), config.to_string()).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    let start = Instant::now();
    let mut child: Child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.path().join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let healthy = loop {
        if client
            .get(format!("{base}/api/health"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            break start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let loaded = loop {
        if client
            .get(format!("{base}/api/apps"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            break start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_mib(child.id());
    println!("serve, 1,000-app catalog:");
    println!(
        "  start-up to healthy:            {:.0} ms (target < 500 ms)",
        healthy.as_secs_f64() * 1e3
    );
    println!(
        "  start-up to catalog loaded:     {:.0} ms (cold clone + validate + index)",
        loaded.as_secs_f64() * 1e3
    );
    println!("  idle RSS:                       {idle:.1} MiB (target < 40 MB)");

    // 64 connections, each a client of its own with keep-alive, asking in a loop.
    let per = 100;
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                let c = reqwest::blocking::Client::new();
                let queries = [
                    "",
                    "?q=app",
                    "?category=media",
                    "?tag=t3",
                    "?sort=name",
                    "?q=number+42",
                ];
                let mut times = Vec::with_capacity(per);
                for k in 0..per {
                    let q = queries[(i + k) % queries.len()];
                    let t = Instant::now();
                    let mut r = c.get(format!("{base}/api/apps{q}")).send().unwrap();
                    let mut sink = Vec::new();
                    r.read_to_end(&mut sink).unwrap();
                    assert!(r.status().is_success());
                    times.push(t.elapsed());
                }
                times
            })
        })
        .collect();
    let wall = Instant::now();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let wall = wall.elapsed();
    all.sort();
    println!(
        "  GET /api/apps, 64 connections:  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} requests ({:.0} req/s) (target p99 < 10 ms)",
        pct(&all, 0.5),
        pct(&all, 0.99),
        pct(&all, 1.0),
        all.len(),
        all.len() as f64 / wall.as_secs_f64()
    );
    println!(
        "  RSS after the load:             {:.1} MiB",
        rss_mib(child.id())
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// A job's log lines on the demo: time from being stored (`at_ms`) to arriving on an SSE stream.
fn sse_bench() {
    let state = tempfile::tempdir().unwrap();
    let mut demo = Command::new(BIN)
        .args(["demo", "--port", "0", "--state-dir"])
        .arg(state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(demo.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("PVE App Store listening on ")
        .unwrap()
        .to_string();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    while !client
        .get(format!("{base}/api/apps"))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut delays = Vec::new();
    for _ in 0..5 {
        let r: serde_json::Value = client
            .post(format!("{base}/api/install"))
            .json(&serde_json::json!({"app_id": "radicale"}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let id = r["job_id"].as_i64().unwrap();
        let resp = client
            .get(format!("{base}/api/jobs/{id}/stream"))
            .send()
            .unwrap();
        // Only lines stored after the stream opened count (the backlog is old by design).
        let opened = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        for l in BufReader::new(resp).lines() {
            let l = l.unwrap();
            let Some(data) = l.strip_prefix("data:") else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
            if let Some(at) = v["at_ms"].as_i64().filter(|at| *at > opened) {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64;
                delays.push(Duration::from_millis((now - at).max(0) as u64));
            }
        }
    }
    let _ = demo.kill();
    let _ = demo.wait();
    delays.sort();
    if delays.is_empty() {
        println!("demo: no live log lines were measured");
        return;
    }
    println!("demo (in-process simulator, 300 ms task latency):");
    println!(
        "  log line stored -> SSE client:   p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} live lines (target < 250 ms)",
        pct(&delays, 0.5),
        pct(&delays, 0.99),
        pct(&delays, 1.0),
        delays.len()
    );
}

fn main() {
    println!(
        "web benchmark, {} cores",
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    );
    serve_bench();
    sse_bench();
}
