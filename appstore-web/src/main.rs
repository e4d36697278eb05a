//! `pve-appstore`: the PVE App Store controller and its tools.

use anyhow::Context as _;
#[cfg(feature = "demo")]
use appstore_actors::engine::InProcessHelper;
use appstore_actors::engine::{EngineConfig, SocketHelper};
use appstore_catalog::GitSource;
use appstore_web::{lint, server, tls};
use clap::{Parser, Subcommand};
#[cfg(feature = "demo")]
use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "pve-appstore", version, about = "An app store for Proxmox VE")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the product on its embedded defaults: the reference catalog, on http://127.0.0.1:8088.
    #[cfg(feature = "demo")]
    Demo {
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 8088)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
        /// Keep the demo's state here instead of a temporary directory.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Containers of the simulated node: `inert` (no processes) or `lxc` (real LXC; needs root).
        #[arg(long, default_value = "inert")]
        containers: String,
        /// Require a login with this password (by default the demo has no login).
        #[arg(long)]
        password: Option<String>,
        /// Serve this Git catalog (a URL, or a local repository's path) on branch `main` instead
        /// of the embedded reference catalog: how a catalog maintainer tries a catalog end to end.
        #[arg(long)]
        catalog: Option<String>,
        /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<String>,
        /// The private key (PEM) of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<String>,
    },
    /// Set the admin password of `web.auth.mode: password` (read from the terminal, or a line on
    /// standard input); existing sessions end.
    Passwd {
        /// The config file (its `paths.state_dir` holds the password hash).
        #[arg(long, default_value = "/etc/pve-appstore/config.yml")]
        config: PathBuf,
    },
    /// Run the service with a config file.
    Serve {
        /// The config file.
        #[arg(long, default_value = "/etc/pve-appstore/config.yml")]
        config: PathBuf,
    },
    /// Check everything the service needs (config, token and its permissions, node, helper, GPUs,
    /// catalog); each problem with its fix. Exits 1 when anything is wrong.
    Doctor {
        /// The config file.
        #[arg(long, default_value = "/etc/pve-appstore/config.yml")]
        config: PathBuf,
        /// Read the GPUs from DIR/sys, DIR/dev and DIR/proc instead of the host's.
        #[arg(long)]
        host_root: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = lint::Format::Text)]
        format: lint::Format,
    },
    /// Print the PVE roles and ACLs the store's token needs (what the installer grants): `role NAME
    /// PRIVS` and `acl PATH ROLE` lines.
    PveGrants {
        /// The store's pool.
        #[arg(long)]
        pool: String,
        /// Storages for container disks (repeat for several).
        #[arg(long = "storage", required = true)]
        storages: Vec<String>,
        /// The storage that holds container templates.
        #[arg(long)]
        template_storage: Option<String>,
        /// Bridges containers may join (repeat for several).
        #[arg(long = "bridge", required = true)]
        bridges: Vec<String>,
        /// Missing templates may be downloaded.
        #[arg(long)]
        download_templates: bool,
        /// The storage the apps' backups go to.
        #[arg(long)]
        backup_storage: Option<String>,
    },
    /// Print the GPUs of this host (or of a fixture tree).
    Gpus {
        /// Read DIR/sys, DIR/dev and DIR/proc instead of the host's.
        #[arg(long)]
        host_root: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = lint::Format::Text)]
        format: lint::Format,
    },
    /// Catalog maintainer tools.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Validate every app of a catalog directory or Git repository; exits 1 when any app is broken.
    Lint {
        /// A catalog directory (read as it is on disk) or a Git URL.
        source: String,
        /// Branch, for a Git URL.
        #[arg(long, default_value = "main")]
        branch: String,
        /// The directory of the repository (or of the checkout) that holds `apps/`.
        #[arg(long, default_value = "")]
        path: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = lint::Format::Text)]
        format: lint::Format,
    },
    /// Start a new app in a catalog: apps/<id>/ with a manifest, README, icon and every script,
    /// which lints clean and installs as it is.
    New {
        /// The app's id (kebab-case, such as `my-app`).
        id: String,
        /// The catalog directory (the one that holds `apps/`).
        #[arg(long, default_value = ".")]
        catalog: PathBuf,
        /// The app's display name (default: from the id).
        #[arg(long)]
        name: Option<String>,
    },
    /// Print an app's install plan without a node: the container, the scripts and their
    /// environment, the GPU devices per vendor, the outputs.
    Plan {
        /// The catalog directory (the one that holds `apps/`).
        catalog: PathBuf,
        /// The app.
        app: String,
        /// Render as if this vendor's GPU were attached: intel, amd or nvidia.
        #[arg(long)]
        gpu: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = lint::Format::Text)]
        format: lint::Format,
    },
    /// Run apps' whole lifecycle (install, URL, upgrade, reconfigure, uninstall keeping data,
    /// reinstall, uninstall) in real containers on a simulated Proxmox VE node; needs root, LXC and
    /// debootstrap. Apps that install from elsewhere than Debian, PyPI or npm get their plan rendered.
    #[cfg(feature = "demo")]
    Test {
        /// The catalog directory (the one that holds `apps/`).
        catalog: PathBuf,
        /// Apps to test, whatever they install from (default: every app; those that download from
        /// elsewhere than Debian, PyPI or npm then get their plan rendered instead).
        apps: Vec<String>,
        /// With no apps named, run the apps that download from elsewhere too.
        #[arg(long)]
        all_sources: bool,
        /// Keep the containers' apt, pip and npm downloads here, for later runs.
        #[arg(long)]
        package_cache: Option<PathBuf>,
        /// Run only the K-th of N equal shares of the apps (`--shard 1/2`), for parallel CI jobs.
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(usize, usize)>,
        /// Proxmox VE release of the simulated node: 9.1, 9.0 or 8.4.
        #[arg(long, default_value = "9.1")]
        pve: String,
        /// Output format (the JSON report goes to stdout at the end; progress to stderr).
        #[arg(long, value_enum, default_value_t = lint::Format::Text)]
        format: lint::Format,
    },
    /// Print the manifest reference (Markdown), generated from the JSON Schema of app.yml.
    Reference,
    /// Print the JSON Schema of app.yml (for editors), or of config.yml with --config.
    Schema {
        /// The config file's schema instead.
        #[arg(long)]
        config: bool,
    },
}

/// Logs for people (the demo) or JSON lines (the service: journald reads stderr, and a copy goes to
/// the log directory); job lines carry `job_id` from the engine's span.
fn init_tracing(json_log_dir: Option<&std::path::Path>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    macro_rules! json {
        () => {
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
        };
    }
    // Every mode keeps its last lines in memory for the debug bundle.
    let ring = json!().with_writer(|| appstore_web::debug::RingWriter);
    let registry = tracing_subscriber::registry().with(filter).with(ring);
    match json_log_dir {
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_writer(std::io::stderr),
            )
            .init(),
        Some(dir) => {
            let file = std::fs::create_dir_all(dir).and_then(|()| {
                appstore_web::logfile::RotatingFile::open(
                    &dir.join("pve-appstore.log"),
                    appstore_web::logfile::ROTATE_BYTES,
                )
            });
            let registry = registry.with(json!().with_writer(std::io::stderr));
            match file {
                Ok(f) => registry
                    .with(json!().with_writer(std::sync::Mutex::new(f)))
                    .init(),
                Err(e) => {
                    registry.init();
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot write the log file; logging to stderr only");
                }
            }
        }
    }
}

fn run_system(settings: server::ServerSettings) -> anyhow::Result<()> {
    appstore_actors::block_on(server::run(settings))
}

fn engine_config(
    node: &str,
    pool: &str,
    storage: &str,
    bridge: &str,
    state: &std::path::Path,
    policy: appstore_core::policy::InstallPolicy,
    download: bool,
) -> EngineConfig {
    EngineConfig {
        node: node.into(),
        pool: pool.into(),
        storage: storage.into(),
        bridge: bridge.into(),
        template_storage: None,
        download_templates: download,
        jobs_dir: state.join("jobs"),
        catalog_cache: state.join("catalog-cache"),
        policy,
        network_wait: appstore_core::job::RetryPolicy::default(),
        task_deadline: Duration::from_secs(1800),
        gpu_policy: appstore_core::gpu::GpuPolicy::default(),
        fault_hold_after: appstore_actors::engine::fault_hold_from_env(),
    }
}

#[cfg(feature = "demo")]
fn demo(
    port: u16,
    bind: IpAddr,
    state_dir: Option<PathBuf>,
    containers: &str,
    password: Option<String>,
    catalog: Option<String>,
    tls: Option<tls::WebTls>,
) -> anyhow::Result<()> {
    if password.is_none() && !bind.is_loopback() {
        anyhow::bail!(
            "--bind {bind} without --password would let anyone who reaches this address use the demo without a login; add --password, or bind to 127.0.0.1"
        );
    }
    let temp;
    let state = match state_dir {
        Some(dir) => dir,
        None => {
            temp = tempfile::Builder::new()
                .prefix("pve-appstore-demo-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let url = match catalog {
        Some(c) if std::path::Path::new(&c).is_dir() => {
            let abs = std::fs::canonicalize(&c).with_context(|| format!("cannot read {c}"))?;
            format!("file://{}", abs.display())
        }
        Some(url) => url,
        None => appstore_web::reference::write_reference_catalog(&state.join("reference-catalog"))?,
    };
    tracing::info!(state = %state.display(), "demo state");
    // GPUs: a fixture host with an Intel iGPU and an NVIDIA card that can be unplugged.
    let demo_gpus = Arc::new(appstore_web::demo::DemoGpus::create(
        &state.join("gpu-host"),
    )?);
    // The simulated PVE node, in this process, over HTTPS with its own CA.
    let sim = pve_sim::harness::start(pve_sim::harness::HarnessOptions {
        tls: true,
        backend: containers.to_string(),
        task_latency: Duration::from_millis(300),
        pct_host: Some(std::env::current_exe().context("locating this binary")?),
        device_root: Some(demo_gpus.root().to_path_buf()),
        // A real node samples every 10 s; the demo's charts fill faster.
        rrd_sample_every: Duration::from_secs(2),
        ..Default::default()
    })
    .context("starting the PVE simulator")?;
    tracing::info!(url = %sim.url, containers, "PVE simulator started");
    let (token_id, secret) = sim
        .creds
        .store_token
        .rsplit_once('=')
        .context("simulator token")?;
    let pve = appstore_pve::HttpPve::new(&appstore_pve::PveEndpoint {
        url: sim.url.clone(),
        token_id: token_id.into(),
        token_secret: secret.into(),
        tls: appstore_pve::TlsMode::CaFile(sim.creds.ca_file.clone()),
    })?;
    std::fs::create_dir_all(state.join("jobs"))?;
    let helper_config = appstore_helper::HelperConfig::parse(&format!(
        "pool: appstore\npve_etc: {r}/etc/pve\npct: {r}/usr/sbin/pct\nlock_dir: {r}/run/lock/lxc\njob_root: {s}/jobs\naudit_log: {s}/helper/audit.log\nstaging_dir: {s}/helper/staging\ndevice_root: {d}\n",
        r = sim.root.display(),
        s = state.display(),
        d = demo_gpus.root().display()
    ))
    .map_err(anyhow::Error::msg)?;
    let policy = appstore_core::policy::InstallPolicy {
        caps: appstore_core::policy::ResourceCaps {
            max_cores: 8,
            max_memory_mb: 16384,
            max_disk_gb: 256,
        },
        allowed_features: [appstore_core::manifest::Feature::Nesting].into(),
        unprivileged_only: true,
    };
    let engine = server::EngineSetup {
        config: engine_config(
            "pve1",
            "appstore",
            "local-lvm",
            "vmbr0",
            &state,
            policy,
            true,
        ),
        pve: Arc::new(pve),
        helper: Arc::new(InProcessHelper::new(appstore_helper::Helper::in_process(
            helper_config,
            "demo",
        ))),
        database: state.join("state.db"),
        secret_key: state.join("secret.key"),
        max_concurrent: 2,
    };
    let password_file = match password {
        Some(pw) => {
            let file = state.join(appstore_web::auth::PASSWORD_FILE);
            appstore_web::auth::write_password_file(&file, &pw, None)
                .map_err(anyhow::Error::msg)?;
            Some(file)
        }
        None => None,
    };
    let result = run_system(server::ServerSettings {
        config_summary: serde_json::json!({
            "mode": "demo",
            "catalog": {"url": url.clone(), "branch": "main"},
            "auth": if password_file.is_some() { "password" } else { "none" },
            "node": "pve1",
            "pool": "appstore",
            "storage": "local-lvm",
            "bridge": "vmbr0",
            "containers": containers,
            "https": tls.is_some(),
        }),
        password_file,
        addr: SocketAddr::new(bind, port),
        catalog: GitSource {
            url,
            branch: "main".into(),
            path: String::new(),
        },
        cache_dir: state.join("catalog-cache"),
        refresh_every: Some(Duration::from_secs(60)),
        engine: Some(engine),
        gpu_root: appstore_gpu::HostRoot::at(demo_gpus.root()),
        gpu_policy: appstore_core::gpu::GpuPolicy::default(),
        demo_gpus: Some(Arc::clone(&demo_gpus)),
        allowed_hosts: Vec::new(),
        notifications: Vec::new(),
        // The demo reads its schedules on this machine's clock.
        time_zone: time_zone(None)?,
        tls,
    });
    drop(sim);
    result
}

/// The time zone schedules and windows are read in: `configured` (`jobs.time_zone`), else the
/// machine's own (`TZ`, else `/etc/localtime`; UTC when neither names one).
fn time_zone(configured: Option<&str>) -> anyhow::Result<jiff::tz::TimeZone> {
    match configured {
        Some(name) => appstore_core::schedule::named_zone(name)
            .map_err(|e| anyhow::anyhow!("jobs.time_zone: {e}")),
        None => Ok(jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC)),
    }
}

fn serve(path: &PathBuf) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let config = appstore_core::config::parse_config(&text)
        .map_err(|d| anyhow::anyhow!("{} has problems:\n{d}", path.display()))?;
    let pve = appstore_web::connect::pve_client(&config)?;
    let state = PathBuf::from(&config.state_dir);
    // The state directory and the job directories are the service's alone (0700), whatever the
    // umask: job directories hold the apps' files before they are delivered.
    for dir in [state.clone(), state.join("jobs")] {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private (0700)", dir.display()))?;
    }
    let mut engine_settings = engine_config(
        &config.node,
        config.pool.as_str(),
        &config.storage,
        &config.bridge,
        &state,
        config.install_policy(),
        config.download_templates,
    );
    engine_settings.gpu_policy = config.gpu_rules();
    engine_settings.template_storage = config.template_storage.clone();
    let engine = server::EngineSetup {
        config: engine_settings,
        pve: Arc::new(pve),
        helper: Arc::new(SocketHelper {
            socket: PathBuf::from(&config.helper_socket),
        }),
        database: state.join("state.db"),
        secret_key: state.join("secret.key"),
        max_concurrent: config.max_concurrent_installs as usize,
    };
    let password_file = (config.auth == appstore_core::config::AuthMode::Password)
        .then(|| state.join(appstore_web::auth::PASSWORD_FILE));
    if let Some(f) = &password_file {
        if !f.exists() {
            tracing::warn!(file = %f.display(), "no admin password is set: every login fails until `pve-appstore passwd` sets one");
        }
    }
    // No catalog in the config: the reference catalog built into this binary, kept as a Git
    // repository in the state directory (a fresh node has apps without any network).
    let catalog = match &config.catalog_url {
        Some(url) => GitSource {
            url: url.clone(),
            branch: config.catalog_branch.clone(),
            path: config.catalog_path.clone(),
        },
        None => GitSource {
            url: appstore_web::reference::write_reference_catalog(&state.join("reference-catalog"))
                .context("writing the built-in reference catalog")?,
            branch: "main".into(),
            path: String::new(),
        },
    };
    run_system(server::ServerSettings {
        password_file,
        addr: SocketAddr::new(config.bind, config.port),
        catalog,
        cache_dir: state.join("catalog-cache"),
        refresh_every: config.catalog_refresh,
        engine: Some(engine),
        gpu_root: appstore_gpu::HostRoot::system(),
        gpu_policy: config.gpu_rules(),
        demo_gpus: None,
        allowed_hosts: config.allowed_hosts.clone(),
        notifications: config.notifications.clone(),
        time_zone: time_zone(config.time_zone.as_deref())?,
        tls: config.web_tls.as_ref().map(|t| tls::WebTls {
            cert_file: t.cert_file.clone(),
            key_file: t.key_file.clone(),
            fields: ("web.tls.cert_file", "web.tls.key_file"),
        }),
        config_summary: appstore_core::yaml::parse_value(&text).unwrap_or_default(),
    })
}

/// True when this process runs as root (`/proc/self` belongs to the process's effective user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn passwd(path: &PathBuf) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let config = appstore_core::config::parse_config(&text)
        .map_err(|d| anyhow::anyhow!("{} has problems:\n{d}", path.display()))?;
    let file = PathBuf::from(&config.state_dir).join(appstore_web::auth::PASSWORD_FILE);
    let password = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let first = rpassword::prompt_password("New password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            anyhow::bail!("the two passwords differ; nothing was changed");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    // Run as root (the usual way on a node), the files are handed to the owner of the state
    // directory, the service's user: a root-owned 0600 hash would lock the service out.
    let state_dir = PathBuf::from(&config.state_dir);
    let owner = running_as_root()
        .then(|| std::fs::metadata(&state_dir).ok())
        .flatten()
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.uid(), m.gid())
        })
        .filter(|(uid, _)| *uid != 0);
    appstore_web::auth::write_password_file(&file, &password, owner).map_err(anyhow::Error::msg)?;
    // Sessions made with the old password end.
    let db = state_dir.join("state.db");
    if db.exists() {
        appstore_actors::store::Store::open(&db)?.delete_all_sessions()?;
        if let Some((uid, gid)) = owner {
            // Opening the database may have made its journal files as root.
            for name in ["state.db", "state.db-wal", "state.db-shm"] {
                let p = state_dir.join(name);
                if p.exists() {
                    std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).with_context(|| {
                        format!("cannot hand {} back to uid {uid}", p.display())
                    })?;
                }
            }
        }
    }
    if config.auth != appstore_core::config::AuthMode::Password {
        eprintln!(
            "note: web.auth.mode is not `password` in {}, so the password is not asked for",
            path.display()
        );
    }
    println!("password set ({})", file.display());
    Ok(ExitCode::SUCCESS)
}

/// The installer's plan: the two roles with their privileges, then one line per ACL.
fn pve_grants(placement: &appstore_core::access::Placement) -> String {
    use appstore_core::access;
    let grants = access::grants(placement);
    let mut out = format!(
        "role {} {}\n",
        access::ROLE,
        access::POOL_PRIVILEGES.join(",")
    );
    if let Some(t) = grants.iter().find(|g| g.role == access::TEMPLATE_ROLE) {
        out.push_str(&format!(
            "role {} {}\n",
            access::TEMPLATE_ROLE,
            t.privileges.join(",")
        ));
    }
    for g in &grants {
        out.push_str(&format!("acl {} {}\n", g.path, g.role));
    }
    out
}

fn doctor(
    config: &std::path::Path,
    host_root: Option<PathBuf>,
    format: lint::Format,
) -> anyhow::Result<ExitCode> {
    let root = host_root
        .map(appstore_gpu::HostRoot::at)
        .unwrap_or_else(appstore_gpu::HostRoot::system);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(appstore_web::doctor::run(config, root));
    match format {
        lint::Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        lint::Format::Text => print!("{}", report.text()),
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn gpus(host_root: Option<PathBuf>, format: lint::Format) -> anyhow::Result<ExitCode> {
    use appstore_gpu::{GpuProbe, HostRoot, SysfsProbe};
    let root = host_root.map(HostRoot::at).unwrap_or_else(HostRoot::system);
    let inv = SysfsProbe::new(root).probe()?;
    match format {
        lint::Format::Json => println!("{}", serde_json::to_string_pretty(&inv)?),
        lint::Format::Text => {
            if inv.gpus.is_empty() {
                println!("no GPUs found");
            }
            for g in &inv.gpus {
                let vendor = g.vendor.map_or("other", |v| v.as_str());
                let driver = g.driver.as_deref().unwrap_or("no driver");
                let boot = if g.boot_vga { ", boot display" } else { "" };
                let name = g
                    .name
                    .as_deref()
                    .map(|n| format!(" {n}"))
                    .unwrap_or_default();
                println!(
                    "{} {vendor}{name} [{:04x}:{:04x}] ({driver}{boot})",
                    g.pci_address, g.vendor_id, g.device_id
                );
                if let Some(u) = &g.uuid {
                    println!("    uuid {u}");
                }
                for n in &g.nodes {
                    println!("    {} {}:{}", n.path, n.major, n.minor);
                }
                for p in &g.problems {
                    println!("    problem: {p}");
                }
            }
            for n in &inv.shared_nodes {
                println!("shared {} {}:{}", n.path, n.major, n.minor);
            }
            if let Some(v) = &inv.nvidia_driver_version {
                println!("NVIDIA driver {v}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn catalog_plan(
    catalog: &std::path::Path,
    app: &str,
    gpu: Option<&str>,
    format: lint::Format,
) -> anyhow::Result<ExitCode> {
    let snap = lint::load(&catalog.display().to_string(), "main", "")?;
    let Some(found) = snap.app(app) else {
        anyhow::bail!(
            "no app `{app}` that lints clean in {} (run `pve-appstore catalog lint {}`)",
            catalog.display(),
            catalog.display()
        );
    };
    let vendor = match gpu {
        None => None,
        Some("intel") => Some(appstore_core::manifest::GpuVendor::Intel),
        Some("amd") => Some(appstore_core::manifest::GpuVendor::Amd),
        Some("nvidia") => Some(appstore_core::manifest::GpuVendor::Nvidia),
        Some(other) => anyhow::bail!("--gpu `{other}`: write intel, amd or nvidia"),
    };
    if let Some(v) = vendor {
        anyhow::ensure!(
            found.manifest.gpu().supported.contains(&v),
            "--gpu {}: `{app}` does not support that vendor (gpu.supported)",
            v.as_str()
        );
    }
    let plan = appstore_web::plan::render(
        &found.manifest,
        &appstore_web::plan::PlanOptions {
            gpu: vendor,
            ..Default::default()
        },
    )
    .map_err(anyhow::Error::msg)?;
    match format {
        lint::Format::Text => print!("{}", plan.text()),
        lint::Format::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "demo")]
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{s}` is not K/N (such as 1/2)");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n) = (
        k.parse::<usize>().map_err(|_| bad())?,
        n.parse::<usize>().map_err(|_| bad())?,
    );
    if n == 0 || k == 0 || k > n {
        return Err(format!("`{s}`: K must be from 1 to N"));
    }
    Ok((k, n))
}

#[cfg(feature = "demo")]
fn catalog_test(
    mut opts: appstore_web::catalog_test::TestOptions,
    pve: &str,
    format: lint::Format,
) -> anyhow::Result<ExitCode> {
    opts.pve = match pve {
        "9.1" => pve_sim::PveVersion::V9_1,
        "9.0" => pve_sim::PveVersion::V9_0,
        "8.4" => pve_sim::PveVersion::V8_4,
        other => anyhow::bail!("--pve `{other}`: write 9.1, 9.0 or 8.4"),
    };
    opts.pct_host = std::env::current_exe().context("locating this binary")?;
    let report = appstore_web::catalog_test::run(&opts, &mut |app, step| {
        eprintln!(
            "{app}: {} {} ({:.1} s) {}",
            step.step, step.result, step.seconds, step.detail
        );
        for l in &step.log_tail {
            eprintln!("    | {l}");
        }
    })?;
    match format {
        lint::Format::Text => print!("{}", report.text()),
        lint::Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn main() -> ExitCode {
    // The demo's simulated node runs its `pct` through this binary (`pve-appstore __pct ...`).
    #[cfg(feature = "demo")]
    pve_sim::pct::main_if_invoked();
    let cli = Cli::parse();
    let result = match cli.command {
        #[cfg(feature = "demo")]
        Command::Demo {
            port,
            bind,
            state_dir,
            containers,
            password,
            catalog,
            tls_cert,
            tls_key,
        } => {
            init_tracing(None);
            let tls = tls_cert
                .zip(tls_key)
                .map(|(cert_file, key_file)| tls::WebTls {
                    cert_file,
                    key_file,
                    fields: ("--tls-cert", "--tls-key"),
                });
            demo(port, bind, state_dir, &containers, password, catalog, tls)
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Passwd { config } => passwd(&config),
        Command::Serve { config } => {
            // The log directory comes from the config; a config that cannot be read is reported by serve.
            let log_dir = std::fs::read_to_string(&config)
                .ok()
                .and_then(|t| appstore_core::config::parse_config(&t).ok())
                .map(|c| PathBuf::from(c.log_dir));
            // (Without a readable config serve only reports the config's problems: plain stderr then.)
            init_tracing(log_dir.as_deref());
            serve(&config).map(|()| ExitCode::SUCCESS)
        }
        Command::Gpus { host_root, format } => gpus(host_root, format),
        Command::PveGrants {
            pool,
            storages,
            template_storage,
            bridges,
            download_templates,
            backup_storage,
        } => {
            print!(
                "{}",
                pve_grants(&appstore_core::access::Placement {
                    pool,
                    storages,
                    template_storage,
                    bridges,
                    download_templates,
                    backup_storage,
                })
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor {
            config,
            host_root,
            format,
        } => doctor(&config, host_root, format),
        Command::Catalog {
            command: CatalogCommand::New { id, catalog, name },
        } => appstore_web::scaffold::new_app(&catalog, &id, name.as_deref()).map(|dir| {
            println!("created {}", dir.display());
            println!(
                "next: edit its app.yml and scripts, then `pve-appstore catalog lint {}`",
                catalog.display()
            );
            ExitCode::SUCCESS
        }),
        Command::Catalog {
            command:
                CatalogCommand::Lint {
                    source,
                    branch,
                    path,
                    format,
                },
        } => lint::load(&source, &branch, &path).map(|snap| {
            let (text, clean) = lint::report(&snap, format);
            print!("{text}");
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }),
        Command::Catalog {
            command:
                CatalogCommand::Plan {
                    catalog,
                    app,
                    gpu,
                    format,
                },
        } => catalog_plan(&catalog, &app, gpu.as_deref(), format),
        #[cfg(feature = "demo")]
        Command::Catalog {
            command:
                CatalogCommand::Test {
                    catalog,
                    apps,
                    all_sources,
                    package_cache,
                    shard,
                    pve,
                    format,
                },
        } => catalog_test(
            appstore_web::catalog_test::TestOptions {
                catalog,
                apps,
                all_sources,
                shard,
                package_cache,
                pve: pve_sim::PveVersion::V9_1,
                pct_host: PathBuf::new(),
            },
            &pve,
            format,
        ),
        Command::Catalog {
            command: CatalogCommand::Reference,
        } => {
            print!("{}", appstore_web::manifest_doc::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog {
            command: CatalogCommand::Schema { config },
        } => {
            let schema = if config {
                appstore_core::config::json_schema()
            } else {
                appstore_core::manifest::json_schema()
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
