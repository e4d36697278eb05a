//! Running a simulated node inside a test process: set up a root in a temporary directory, serve the
//! API on a free loopback port (HTTP or HTTPS) on its own runtime, and record every request.

use crate::api::Node;
use crate::backend::Backend;
use crate::server::{serve, Server};
use crate::setup::{init, tls_config, Credentials, SetupOptions};
use crate::state::SimRoot;
use crate::PveVersion;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Options of a test node.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// Release to emulate (default: 9.1, the current release).
    pub version: PveVersion,
    /// Serve HTTPS with the node's certificate.
    pub tls: bool,
    /// Delay before each task works.
    pub task_latency: Duration,
    /// Delay of a 401.
    pub auth_failure_delay: Duration,
    /// Container back end: `inert` (default) or `lxc` (real containers; needs root, LXC and
    /// debootstrap).
    pub backend: String,
    /// A binary that runs pct as `<binary> __pct ...` (the `pve-appstore` binary does); by default the
    /// `pve-sim-pct` binary next to the running one.
    pub pct_host: Option<std::path::PathBuf>,
    /// Where `devN` paths are found (a fixture tree with `dev/`); `None`: the host's `/`.
    pub device_root: Option<std::path::PathBuf>,
    /// LXC back end: a directory of download caches (apt, pip, npm) every container shares, so that
    /// a run downloads each package once. `None`: each container downloads its own.
    pub package_cache: Option<std::path::PathBuf>,
    /// How often the node samples its containers for the RRD data (a real node: every 10 s).
    pub rrd_sample_every: Duration,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        HarnessOptions {
            // The current release; tests of 8.4 say so.
            version: PveVersion::V9_1,
            tls: false,
            task_latency: Duration::from_millis(10),
            auth_failure_delay: Duration::from_millis(20),
            backend: "inert".into(),
            pct_host: None,
            device_root: None,
            package_cache: None,
            rrd_sample_every: Duration::from_secs(10),
        }
    }
}

/// A running test node; stops when dropped.
#[derive(Debug)]
pub struct RunningSim {
    /// Base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// Tokens and TLS facts.
    pub creds: Credentials,
    /// The node's root directory.
    pub root: PathBuf,
    /// Where requests are recorded (JSON lines).
    pub record: PathBuf,
    version: PveVersion,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    backend: Arc<dyn Backend>,
    _dir: tempfile::TempDir,
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Containers, bridge: what the back end made on the host goes before the root does.
        self.backend.cleanup();
    }
}

/// Starts a node.
pub fn start(opts: HarnessOptions) -> std::io::Result<RunningSim> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().to_path_buf();
    let creds = init(
        &root,
        &SetupOptions {
            version: opts.version,
            backend: opts.backend.clone(),
            pct_host: opts.pct_host.clone(),
            ..SetupOptions::default()
        },
    )?;
    let sim_root = SimRoot::open(&root)?;
    if let Some(d) = &opts.device_root {
        std::fs::write(root.join("sim/device-root"), d.display().to_string())?;
    }
    if let Some(cache) = &opts.package_cache {
        let cache = std::path::absolute(cache)?;
        std::fs::create_dir_all(&cache)?;
        std::fs::write(
            root.join(crate::lxc::PACKAGE_CACHE_FILE),
            cache.display().to_string(),
        )?;
    }
    let backend: Arc<dyn Backend> =
        Arc::from(crate::backend::backend_for(&sim_root).map_err(std::io::Error::other)?);
    let tls = if opts.tls {
        Some(tls_config(&sim_root)?)
    } else {
        None
    };
    let node = Arc::new(Node {
        root: sim_root,
        version: opts.version,
        task_latency: opts.task_latency,
        tasks: Default::default(),
        backend: Arc::clone(&backend),
        fingerprint: tls.as_ref().map(|(_, f)| f.clone()),
        rrd: crate::metrics::Rrd::new(opts.rrd_sample_every),
    });
    let record = root.join("sim/requests.jsonl");
    let server = Arc::new(Server::new(
        node,
        opts.auth_failure_delay,
        Some(record.clone()),
    ));
    // The node runs on its own thread and runtime, so async tests can use it too.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = addr_tx.send(Err(e));
                return;
            }
        };
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l,
                Err(e) => {
                    let _ = addr_tx.send(Err(e));
                    return;
                }
            };
            let _ = addr_tx.send(listener.local_addr());
            let serving = tokio::spawn(serve(server, listener, tls.map(|(c, _)| c)));
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
            serving.abort();
        });
    });
    let addr = addr_rx.recv().map_err(std::io::Error::other)??;
    let scheme = if opts.tls { "https" } else { "http" };
    Ok(RunningSim {
        url: format!("{scheme}://{addr}"),
        creds,
        root,
        record,
        version: opts.version,
        stop: Some(stop_tx),
        thread: Some(thread),
        backend,
        _dir: dir,
    })
}

impl RunningSim {
    /// The release this node runs.
    pub fn version(&self) -> PveVersion {
        self.version
    }

    /// Every recorded request: (method, path, template, params, status).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Makes the next task of `kind` (`vzcreate`, `vzstart`, ...) fail with `message`.
    pub fn fail_next_task(&self, kind: &str, message: &str) -> std::io::Result<()> {
        crate::state::write_atomic(&self.root.join("sim/fail").join(kind), message.as_bytes())
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .any(|d| d.join(program).is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

/// A prerequisite a test needs besides the LXC back end (the real PVE schema in `../shared`, a C
/// compiler, root, `visudo`): `switch` (`APPSTORE_REQUIRE_SHARED`, `APPSTORE_REQUIRE_LXC`) set to `1`,
/// as in CI, makes its absence a failure; otherwise the test says "skipped" and why. Returns
/// whether it is there.
pub fn prerequisite(available: bool, switch: &str, what: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var(switch).as_deref() == Ok("1") {
        panic!("{switch}=1 but this test cannot run: {what}");
    }
    eprintln!("skipped: {what}");
    false
}

/// For tests of the `lxc` back end: true when this machine can run real containers (root, LXC,
/// debootstrap, iproute2, nft), after building the root file system cache if it is missing (so no
/// test deadline pays for it); otherwise prints why and returns false, or panics when
/// `APPSTORE_REQUIRE_LXC=1` (CI) makes a missing prerequisite a failure.
pub fn lxc_available() -> bool {
    let missing = if !is_root() {
        Some("not running as root".to_string())
    } else {
        [
            "lxc-start",
            "lxc-attach",
            "debootstrap",
            "ip",
            "nsenter",
            "nft",
        ]
        .into_iter()
        .find(|p| !on_path(p))
        .map(|p| format!("{p} is not installed (scripts/bootstrap.sh installs it)"))
        .or_else(|| {
            crate::lxc::prepare_rootfs(&[
                crate::lxc::DebianRelease::Bookworm,
                crate::lxc::DebianRelease::Trixie,
            ])
            .err()
            .map(|e| format!("a Debian root file system cannot be built: {e}"))
        })
    };
    match missing {
        None => true,
        Some(reason) if std::env::var("APPSTORE_REQUIRE_LXC").as_deref() == Ok("1") => {
            panic!("APPSTORE_REQUIRE_LXC=1 but the LXC tests cannot run: {reason}")
        }
        Some(reason) => {
            eprintln!("skipped: {reason}");
            false
        }
    }
}
