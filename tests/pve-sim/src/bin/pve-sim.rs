//! `pve-sim`: runs a simulated Proxmox VE node's API on loopback.
//!
//! `pve-sim --root DIR [--listen 127.0.0.1:8006] [--http] [--fresh] [--version 9.1] [--backend inert|lxc]
//! [--task-latency-ms N] [--auth-delay-ms N] [--node pve1] [--record FILE]`
//!
//! The first start sets up DIR (users, tokens, pool, ACLs, certificates; `DIR/sim/credentials.json`);
//! with `--fresh` only root, as on a node just installed. DIR may be `/`: the node's files are then
//! at their real paths (`/etc/pve`, `/usr/sbin/pct`, `/usr/sbin/pveum`, ...).
//! Prints `pve-sim listening on URL` once ready.

use pve_sim::api::Node;
use pve_sim::server::{serve, Server};
use pve_sim::setup::{init, tls_config, SetupOptions};
use pve_sim::state::SimRoot;
use pve_sim::PveVersion;
use std::sync::Arc;
use std::time::Duration;

fn usage(msg: &str) -> ! {
    eprintln!("pve-sim: {msg}\nusage: pve-sim --root DIR [--listen ADDR] [--http] [--fresh] [--version 8.0|8.2|8.4|9.0|9.1] [--backend inert|lxc] [--task-latency-ms N] [--auth-delay-ms N] [--node NAME] [--record FILE]");
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut root = None;
    let mut listen = "127.0.0.1:8006".to_string();
    let mut http = false;
    let mut opts = SetupOptions::default();
    let mut latency = Duration::from_millis(50);
    let mut auth_delay = Duration::from_secs(3);
    let mut record = None;
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--root" => root = Some(std::path::PathBuf::from(val())),
            "--listen" => listen = val(),
            "--http" => http = true,
            "--fresh" => opts.fresh = true,
            "--version" => {
                opts.version = PveVersion::parse(&val())
                    .unwrap_or_else(|| usage("version must be 8.0, 8.2, 8.4, 9.0 or 9.1"))
            }
            "--backend" => opts.backend = val(),
            "--node" => opts.node = val(),
            "--task-latency-ms" => {
                latency =
                    Duration::from_millis(val().parse().unwrap_or_else(|_| usage("bad latency")))
            }
            "--auth-delay-ms" => {
                auth_delay =
                    Duration::from_millis(val().parse().unwrap_or_else(|_| usage("bad delay")))
            }
            "--record" => record = Some(std::path::PathBuf::from(val())),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let root_dir = root.unwrap_or_else(|| usage("--root is required"));
    let creds = match init(&root_dir, &opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pve-sim: cannot set up {}: {e}", root_dir.display());
            std::process::exit(1);
        }
    };
    let sim_root = match SimRoot::open(&root_dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pve-sim: {e}");
            std::process::exit(1);
        }
    };
    let version = PveVersion::parse(&creds.release).unwrap_or(opts.version);
    let backend: Arc<dyn pve_sim::backend::Backend> = match pve_sim::backend::backend_for(&sim_root)
    {
        Ok(b) => Arc::from(b),
        Err(e) => {
            eprintln!("pve-sim: {e}");
            std::process::exit(1);
        }
    };
    if backend.name() == "inert" {
        eprintln!("pve-sim: inert back end: containers run no processes; exec and push only touch files under sim/ct/");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pve-sim: {e}");
            std::process::exit(1);
        }
    };
    let node_backend = Arc::clone(&backend);
    runtime.block_on(async move {
        let tls = if http {
            None
        } else {
            Some(tls_config(&sim_root).unwrap_or_else(|e| usage(&format!("TLS: {e}"))))
        };
        let node = Arc::new(Node {
            root: sim_root,
            version,
            task_latency: latency,
            tasks: Default::default(),
            backend: node_backend,
            fingerprint: tls.as_ref().map(|(_, f)| f.clone()),
            rrd: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .unwrap_or_else(|e| usage(&format!("cannot listen on {listen}: {e}")));
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or(listen);
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("pve-sim listening on {scheme}://{addr}");
        let server = Arc::new(Server::new(node, auth_delay, record));
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = serve(server, listener, tls.map(|(c, _)| c)) => {},
            _ = tokio::signal::ctrl_c() => {},
            _ = terminate => {},
        }
    });
    // Stop the containers and remove the bridge of the `lxc` back end; the root's files stay.
    runtime.shutdown_timeout(Duration::from_secs(5));
    backend.cleanup();
}
