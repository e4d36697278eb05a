//! Web benchmark: `pve-appstore serve` (a real process) on a synthetic 1,000-app catalog in a real
//! git repository — start-up to healthy, idle RSS, `GET /api/apps` latency at 64 concurrent
//! connections — and, on the demo, how long a job's log line takes to reach an SSE client: from being
//! stored (inert node), and from being printed inside a real LXC container (needs root). `cargo bench -p appstore-web --bench web`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark aborts on any setup failure

use std::io::{BufRead, BufReader};
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

/// True when `GET path` on `addr` answers 200.
fn raw_get_ok(addr: &str, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
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
    let client = json_client();
    let start = Instant::now();
    let mut child: Child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.path().join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A raw HTTP/1.0 request per try: no client library's connection handling in the figure.
    let addr = format!("127.0.0.1:{port}");
    let healthy = loop {
        if raw_get_ok(&addr, "/api/health") {
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

    // 64 connections, each a client of its own with keep-alive, asking in a loop. The load comes
    // from one thread (an async runtime), so the server keeps most of the 2 cores.
    let queries = [
        "",
        "?q=app",
        "?category=media",
        "?tag=t3",
        "?sort=name",
        "?q=number+42",
        "?sort=popular&offset=48",
        "?sort=updated&limit=24",
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let per = 200;
    let (mut all, wall) = rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let base = base.clone();
                tokio::spawn(async move {
                    let c = reqwest::Client::new();
                    let mut times = Vec::with_capacity(per);
                    for k in 0..per {
                        let q = queries[(i + k) % queries.len()];
                        let t = Instant::now();
                        let r = c.get(format!("{base}/api/apps{q}")).send().await.unwrap();
                        assert!(r.status().is_success());
                        r.bytes().await.unwrap();
                        times.push(t.elapsed());
                    }
                    times
                })
            })
            .collect();
        let wall = Instant::now();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        (all, wall.elapsed())
    });
    all.sort();
    println!(
        "  GET /api/apps (pages of 48), 64 connections: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} requests ({:.0} req/s) (target p99 < 10 ms)",
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

/// Starts `pve-appstore demo` with `args` and returns it with its base URL once the catalog loaded.
fn start_demo(args: &[&str]) -> (Child, String) {
    let mut demo = Command::new(BIN)
        .args(["demo", "--port", "0"])
        .args(args)
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
    let client = json_client();
    while !client
        .get(format!("{base}/api/apps"))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    (demo, base)
}

/// Stops a demo gracefully (SIGTERM), so that its simulator removes what it made.
fn stop_demo(mut demo: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status();
    let _ = demo.wait();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Installs `app` on the demo at `base` and, for each line the SSE stream delivers that `stamp`
/// dates (in Unix milliseconds), the delay from that time to its arrival. Returns once the job ends.
fn stream_delays(
    base: &str,
    app: &str,
    stamp: impl Fn(&serde_json::Value, i64) -> Option<i64>,
) -> Vec<Duration> {
    let client = json_client_builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let r: serde_json::Value = client
        .post(format!("{base}/api/install"))
        .json(&serde_json::json!({ "app_id": app }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = r["job_id"].as_i64().unwrap();
    let resp = client
        .get(format!("{base}/api/jobs/{id}/stream"))
        .send()
        .unwrap();
    let opened = now_ms();
    let mut delays = Vec::new();
    for l in BufReader::new(resp).lines() {
        let l = l.unwrap();
        let Some(data) = l.strip_prefix("data:") else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
        if let Some(at) = stamp(&v, opened) {
            delays.push(Duration::from_millis((now_ms() - at).max(0) as u64));
        }
    }
    delays
}

fn report(what: &str, mut delays: Vec<Duration>) {
    delays.sort();
    if delays.is_empty() {
        println!("  {what}: no live log lines were measured");
        return;
    }
    println!(
        "  {what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} lines (target < 250 ms)",
        pct(&delays, 0.5),
        pct(&delays, 0.99),
        pct(&delays, 1.0),
        delays.len()
    );
}

/// A job's log lines on the demo's inert node: from being stored (`at_ms`) to an SSE client.
fn sse_bench() {
    let state = tempfile::tempdir().unwrap();
    let (demo, base) = start_demo(&["--state-dir", state.path().to_str().unwrap()]);
    let mut delays = Vec::new();
    for _ in 0..5 {
        // Only lines stored after the stream opened count (the backlog is old by design).
        delays.extend(stream_delays(&base, "radicale", |v, opened| {
            v["at_ms"].as_i64().filter(|at| *at > opened)
        }));
    }
    stop_demo(demo);
    println!("demo, inert node (300 ms task latency):");
    report("log line stored -> SSE client", delays);
}

/// A catalog of one app whose install script prints the time, every 50 ms, in a real container.
fn ticker_catalog(dir: &Path) {
    let app = dir.join("apps/ticker");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("app.yml"),
        "schema_version: 1\nid: ticker\nname: Ticker\ndescription: Prints the time every 50 ms for the web benchmark.\nversion: 1.0.0\ncategories: [tools]\nlxc: { ostemplate: debian-12 }\nprovision: { script: install.sh }\n",
    )
    .unwrap();
    std::fs::write(
        app.join("install.sh"),
        "#!/bin/sh\nfor i in $(seq 1 60); do echo \"tick $(date +%s%3N)\"; sleep 0.05; done\n",
    )
    .unwrap();
    let repo = git2::Repository::init(dir).unwrap();
    repo.set_head("refs/heads/main").unwrap();
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("b", "b@example.org").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "ticker", &tree, &[])
        .unwrap();
}

/// The measure: from the moment a line is printed inside a real LXC container to its
/// arrival on an SSE client (the container shares the host's clock).
fn lxc_sse_bench() {
    if !pve_sim::harness::lxc_available() {
        println!(
            "demo, LXC node: skipped (needs root, LXC and debootstrap; see scripts/bootstrap.sh)"
        );
        return;
    }
    let (state, cat) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    ticker_catalog(cat.path());
    let (demo, base) = start_demo(&[
        "--containers",
        "lxc",
        "--state-dir",
        state.path().to_str().unwrap(),
        "--catalog",
        cat.path().to_str().unwrap(),
    ]);
    let delays = stream_delays(&base, "ticker", |v, _| {
        v["line"]
            .as_str()?
            .strip_prefix("tick ")?
            .trim()
            .parse()
            .ok()
    });
    stop_demo(demo);
    println!("demo, LXC node (real container):");
    report("line printed in the container -> SSE client", delays);
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
    lxc_sse_bench();
}

/// A client that sends `Content-Type: application/json` with every request, as the UI does: the
/// API refuses a change without it.
fn json_client_builder() -> reqwest::blocking::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    reqwest::blocking::Client::builder().default_headers(headers)
}

fn json_client() -> reqwest::blocking::Client {
    json_client_builder().build().unwrap()
}
