//! A node for the service's tests: the simulated PVE node, the root helper serving its socket from
//! this process, a Git catalog, and the `config.yml` that names them.
#![allow(dead_code)] // each test binary uses its part

use appstore_helper::{Helper, HelperConfig, Reply, Request};
use pve_sim::harness::{start, HarnessOptions, RunningSim};
use pve_sim::PveVersion;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Two apps: `steady` may run its install script twice, `once` may not.
pub fn catalog_repo(dir: &Path) -> String {
    let app = |id: &str, retry_safe: bool| {
        format!(
            "id: {id}\nname: {id}\ndescription: A test app\nversion: 1.0.0\nlxc: {{ ostemplate: debian-12 }}\n\
             inputs:\n  - {{ key: password, label: Password, type: secret, generate: true }}\n\
             provision: {{ script: install.sh, retry_safe: {retry_safe} }}\n\
             outputs:\n  - {{ key: url, label: URL, value: \"http://{{ip}}:80\" }}\n"
        )
    };
    for (id, safe) in [("steady", true), ("once", false)] {
        let d = dir.join("apps").join(id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("app.yml"), app(id, safe)).unwrap();
        std::fs::write(d.join("install.sh"), "echo installing\n").unwrap();
    }
    let repo = git2::Repository::init(dir).unwrap();
    repo.set_head("refs/heads/main").unwrap();
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.org").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "apps", &tree, &[])
        .unwrap();
    format!("file://{}", dir.display())
}

/// The root helper's socket, served by this test process with the helper's own code (as systemd's
/// socket unit does with the helper binary).
pub fn serve_helper(socket: PathBuf, config: HelperConfig) {
    let listener = UnixListener::bind(&socket).unwrap();
    let helper = std::sync::Arc::new(Helper::in_process(config, "restart-test"));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let helper = std::sync::Arc::clone(&helper);
            std::thread::spawn(move || {
                let mut line = String::new();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let mut out = conn;
                let req: Request = match serde_json::from_str(line.trim()) {
                    Ok(r) => r,
                    Err(_) => return,
                };
                helper.handle(&req, &mut |reply: &Reply| {
                    let _ = writeln!(out, "{}", serde_json::to_string(reply).unwrap());
                });
            });
        }
    });
}

/// A running test node and the service's config for it.
pub struct Node {
    /// The simulated node.
    pub sim: RunningSim,
    /// `config.yml`, `token`, `helper.sock`, `state/`, `catalog/`.
    pub dir: tempfile::TempDir,
    /// The port the config gives the web server.
    pub port: u16,
}

impl Node {
    /// A simulated node of `version` (over HTTPS), the root helper on a socket, a catalog of two
    /// apps, and a service config that names them all (`config.yml` in `dir`).
    pub fn start(version: PveVersion) -> Node {
        let sim = start(HarnessOptions {
            tls: true,
            version,
            task_latency: Duration::from_millis(5),
            pct_host: Some(env!("CARGO_BIN_EXE_pve-appstore").into()),
            ..Default::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let url = catalog_repo(&d.join("catalog"));
        let (token_id, secret) = sim.creds.store_token.rsplit_once('=').unwrap();
        std::fs::write(d.join("token"), secret).unwrap();
        let state = d.join("state");
        std::fs::create_dir_all(state.join("jobs")).unwrap();
        let helper = HelperConfig::parse(&format!(
            "pool: appstore\npve_etc: {r}/etc/pve\npct: {r}/usr/sbin/pct\nlock_dir: {r}/run/lock/lxc\njob_root: {s}/jobs\naudit_log: {s}/helper/audit.log\nstaging_dir: {s}/helper/staging\n",
            r = sim.root.display(),
            s = state.display()
        ))
        .unwrap();
        serve_helper(d.join("helper.sock"), helper);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = json!({
            "node": "pve1",
            "pool": "appstore",
            "proxmox": {
                "api_url": sim.url,
                "token_id": token_id,
                "token_secret_file": d.join("token"),
                "tls": {"ca_file": sim.creds.ca_file},
            },
            "defaults": {"storage": "local-lvm", "bridge": "vmbr0"},
            "web": {"bind": "127.0.0.1", "port": port, "auth": {"mode": "none"}},
            "catalog": {"url": url, "branch": "main"},
            "jobs": {"max_concurrent_installs": 2, "download_templates": true},
            "paths": {"state_dir": state, "log_dir": d.join("log"), "helper_socket": d.join("helper.sock")},
        });
        // JSON is YAML.
        std::fs::write(d.join("config.yml"), config.to_string()).unwrap();
        Node { sim, dir, port }
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    /// The config, to change.
    pub fn config(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.config_path()).unwrap()).unwrap()
    }

    /// Writes `config` (JSON is YAML).
    pub fn write_config(&self, config: &serde_json::Value) {
        std::fs::write(self.config_path(), config.to_string()).unwrap();
    }
}
