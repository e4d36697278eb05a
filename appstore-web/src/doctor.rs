//! `pve-appstore doctor`: everything the service needs, checked the way the service would use it, each
//! problem with its fix. The config; the token (valid, and what it may really do against what the
//! store needs, from `GET /access/permissions`); the node's release; the pool, storages, bridge and
//! templates; the root helper's socket; the GPUs as the service sees them; the catalog.

use appstore_core::access::{self, Placement};
use appstore_core::config::Config;
use appstore_core::Ctid;
use appstore_pve::{PveApi, PveError};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One problem and what to do about it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub message: String,
    /// How to fix it (a command where there is one).
    pub fix: String,
}

/// One area checked.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `config`, `api`, `release`, `permissions`, `pool`, `storage`, `bridge`, `templates`,
    /// `helper`, `gpus`, `catalog`.
    pub name: &'static str,
    /// What was found, when it is fine.
    pub detail: String,
    /// Empty when it is fine.
    pub problems: Vec<Problem>,
}

/// Every check, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// True when no check found a problem.
    pub ok: bool,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// The report for people: one line per check, its problems and fixes below it.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            if c.problems.is_empty() {
                out.push_str(&format!("ok    {:<12} {}\n", c.name, c.detail));
            } else {
                out.push_str(&format!("FAIL  {}\n", c.name));
                for p in &c.problems {
                    out.push_str(&format!("      - {}\n        fix: {}\n", p.message, p.fix));
                }
            }
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| !c.problems.is_empty())
            .count();
        out.push_str(&if failed == 0 {
            "everything the store needs is in place\n".to_string()
        } else {
            format!("{failed} of {} checks found problems\n", self.checks.len())
        });
        out
    }
}

fn check(name: &'static str, result: Result<String, Vec<Problem>>) -> Check {
    match result {
        Ok(detail) => Check {
            name,
            detail,
            problems: Vec::new(),
        },
        Err(problems) => Check {
            name,
            detail: String::new(),
            problems,
        },
    }
}

fn problem(message: impl Into<String>, fix: impl Into<String>) -> Vec<Problem> {
    vec![Problem {
        message: message.into(),
        fix: fix.into(),
    }]
}

/// What to do about a failed API call.
fn api_fix(e: &PveError, config: &Config) -> String {
    match e {
        PveError::Unauthorized => format!(
            "create the token again and write its secret to {}: `pveum user token add {} --privsep 1`",
            config.token_secret_file,
            config.token_id.replace('!', " ")
        ),
        PveError::Forbidden { .. } => "grant the token what `doctor` lists under permissions".into(),
        PveError::Transport { .. } => format!(
            "check proxmox.api_url ({}) and proxmox.tls: is pveproxy running, and does the certificate match the CA file or fingerprint (`pvenode cert info` shows the fingerprint)?",
            config.api_url
        ),
        _ => "see the message; `journalctl -u pveproxy` has the node's side".into(),
    }
}

/// Runs every check of the service configured in `config_path`; `gpu_root` is where the GPUs are
/// read (`/` on a node).
pub async fn run(config_path: &Path, gpu_root: appstore_gpu::HostRoot) -> Report {
    let mut checks = Vec::new();
    let config = match std::fs::read_to_string(config_path) {
        Err(e) => Err(problem(
            format!("cannot read {}: {e}", config_path.display()),
            "run the installer again, or pass --config with the service's config file",
        )),
        Ok(text) => appstore_core::config::parse_config(&text).map_err(|d| {
            d.iter()
                .map(|d| Problem {
                    message: format!("{}: {}", d.path, d.message),
                    fix: d
                        .hint
                        .clone()
                        .unwrap_or_else(|| format!("edit {}", config_path.display())),
                })
                .collect()
        }),
    };
    let config = match config {
        Ok(c) => {
            checks.push(check("config", Ok(config_path.display().to_string())));
            c
        }
        Err(p) => {
            checks.push(check("config", Err(p)));
            return finish(checks);
        }
    };
    checks.extend(node_checks(&config).await);
    // The socket call and the sysfs walk block: off the async thread.
    let c = config.clone();
    let local = tokio::task::spawn_blocking(move || (helper(&c), gpus(&c, gpu_root))).await;
    match local {
        Ok((h, g)) => {
            checks.push(check("helper", h));
            checks.push(check("gpus", g));
        }
        Err(e) => checks.push(check(
            "helper",
            Err(problem(e.to_string(), "run doctor again")),
        )),
    }
    checks.push(check("catalog", catalog(&config).await));
    finish(checks)
}

fn finish(checks: Vec<Check>) -> Report {
    Report {
        ok: checks.iter().all(|c| c.problems.is_empty()),
        checks,
    }
}

/// The checks that need the node's API.
async fn node_checks(config: &Config) -> Vec<Check> {
    let pve = match crate::connect::pve_client(config) {
        Ok(p) => p,
        Err(e) => {
            return vec![check(
                "api",
                Err(problem(
                    format!("{e:#}"),
                    format!(
                        "write the token secret to {} (root:appstore, 0640)",
                        config.token_secret_file
                    ),
                )),
            )]
        }
    };
    let version = match pve.version().await {
        Ok(v) => v,
        Err(e) => {
            return vec![check(
                "api",
                Err(problem(
                    format!("{} answers: {e}", config.api_url),
                    api_fix(&e, config),
                )),
            )]
        }
    };
    let mut out = vec![check(
        "api",
        Ok(format!("{} as {}", config.api_url, config.token_id)),
    )];
    out.push(check(
        "release",
        access::supported_release(&version.version)
            .map(|()| format!("Proxmox VE {}", version.version))
            .map_err(|m| problem(m, "see https://pve.proxmox.com/wiki/Upgrade_from_8_to_9")),
    ));
    let template_storage = appstore_actors::engine::template_storage(
        &pve,
        &config.node,
        config.template_storage.as_deref(),
    )
    .await;
    out.push(check(
        "permissions",
        permissions(&pve, config, template_storage.as_ref().ok()).await,
    ));
    out.push(check(
        "pool",
        match pve.pool(config.pool.as_str()).await {
            Ok(p) => Ok(format!(
                "{} ({} containers)",
                config.pool.as_str(),
                p.members.iter().filter(|m| m.vmid.is_some()).count()
            )),
            Err(e) => Err(problem(
                format!("pool `{}`: {e}", config.pool.as_str()),
                format!(
                    "create it and let the token read it: `pveum pool add {}`",
                    config.pool.as_str()
                ),
            )),
        },
    ));
    out.push(check(
        "storage",
        match pve.storages(&config.node, Some("rootdir")).await {
            Ok(list) if list.iter().any(|s| s.storage == config.storage) => {
                Ok(format!("{} holds containers", config.storage))
            }
            Ok(list) => Err(problem(
                format!(
                    "storage `{}` cannot hold containers or the token may not use it; usable: {}",
                    config.storage,
                    list.iter()
                        .map(|s| s.storage.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "set defaults.storage to one of them, or grant the token PVEDatastoreUser on it",
            )),
            Err(e) => Err(problem(format!("storages: {e}"), api_fix(&e, config))),
        },
    ));
    out.push(check(
        "bridge",
        match pve.bridges(&config.node).await {
            Ok(list) if list.iter().any(|b| b.iface == config.bridge) => {
                Ok(format!("{} usable", config.bridge))
            }
            Ok(_) => Err(problem(
                format!("the token may not use bridge `{}`", config.bridge),
                format!(
                    "`pveum acl modify /sdn/zones/localnetwork/{} --users {} --tokens '{}' --roles PVESDNUser`",
                    config.bridge,
                    config.token_id.split('!').next().unwrap_or_default(),
                    config.token_id
                ),
            )),
            Err(e) => Err(problem(format!("bridges: {e}"), api_fix(&e, config))),
        },
    ));
    out.push(check(
        "templates",
        templates(&pve, config, template_storage).await,
    ));
    out
}

/// The grants the store needs against what the token may do.
async fn permissions(
    pve: &dyn PveApi,
    config: &Config,
    template_storage: Option<&String>,
) -> Result<String, Vec<Problem>> {
    let placement = Placement {
        pool: config.pool.as_str().to_string(),
        storages: vec![config.storage.clone()],
        template_storage: template_storage.cloned(),
        bridges: vec![config.bridge.clone()],
        download_templates: config.download_templates,
        backup_storage: config.backup_storage.clone(),
    };
    let grants = access::grants(&placement);
    let mut have = std::collections::BTreeMap::new();
    for g in &grants {
        match pve.permissions(&g.path).await {
            Ok(p) => {
                have.insert(g.path.clone(), p);
            }
            Err(e) => {
                return Err(problem(
                    format!("reading the token's permissions: {e}"),
                    api_fix(&e, config),
                ))
            }
        }
    }
    let missing = access::missing(&grants, &|path| have.get(path).cloned().unwrap_or_default());
    if missing.is_empty() {
        return Ok(format!(
            "the token holds every privilege the store uses on {} paths",
            grants.len()
        ));
    }
    Err(missing
        .iter()
        .map(|m| {
            let role = grants
                .iter()
                .find(|g| g.path == m.path && g.privileges.contains(&m.privilege))
                .map_or(access::ROLE, |g| g.role);
            Problem {
                message: format!(
                    "the token lacks {} on {} (to {})",
                    m.privilege, m.path, m.why
                ),
                fix: format!(
                    "`pveum acl modify {} --users {} --tokens '{}' --roles {role}` (a privilege-separated token has what both it and its user are granted)",
                    m.path,
                    config.token_id.split('!').next().unwrap_or_default(),
                    config.token_id
                ),
            }
        })
        .collect())
}

async fn templates(
    pve: &dyn PveApi,
    config: &Config,
    storage: Result<String, String>,
) -> Result<String, Vec<Problem>> {
    let storage = storage.map_err(|e| {
        problem(
            e,
            "set defaults.template_storage, or grant the token Datastore.Audit on a storage with templates",
        )
    })?;
    let vols = pve.templates(&config.node, &storage).await.map_err(|e| {
        problem(
            format!("templates on `{storage}`: {e}"),
            api_fix(&e, config),
        )
    })?;
    let found: Vec<&str> = ["debian-13", "debian-12"]
        .into_iter()
        .filter_map(|f| appstore_core::ostemplate::newest(f, vols.iter().map(|v| v.volid.as_str())))
        .collect();
    match (found.is_empty(), config.download_templates) {
        (false, _) => Ok(format!("on `{storage}`: {}", found.join(", "))),
        (true, true) => Ok(format!(
            "none on `{storage}` yet; the first install downloads one"
        )),
        (true, false) => Err(problem(
            format!("no Debian standard template on `{storage}`, and downloads are off"),
            format!("`pveam update && pveam download {storage} <debian-13-standard_...>` (see `pveam available --section system`), or set jobs.download_templates: true"),
        )),
    }
}

/// The helper answers a request for a container that cannot exist: it must refuse it for not
/// existing, which proves the socket, the peer check and its config.
fn helper(config: &Config) -> Result<String, Vec<Problem>> {
    let socket = PathBuf::from(&config.helper_socket);
    let req = appstore_helper::Request::Status {
        ctid: Ctid::new(Ctid::MAX).unwrap_or_else(|_| unreachable!("MAX is a ctid")),
    };
    match appstore_helper::client::call_socket(&socket, &req, &mut |_, _| {}) {
        Err(e) => Err(problem(
            format!("the root helper's socket {} does not answer: {e}", socket.display()),
            "`systemctl enable --now pve-appstore-helper.socket`",
        )),
        Ok(appstore_helper::Reply::Failed { error, .. })
            if error.code == "boundary" && error.message.contains("does not exist") =>
        {
            Ok(format!("answers on {}", socket.display()))
        }
        Ok(appstore_helper::Reply::Failed { error, .. }) if error.code == "not_allowed" => Err(problem(
            format!("the root helper refuses this account: {}", error.message),
            "set allowed_gid in /etc/pve-appstore/helper.yml to the appstore group's id (`getent group appstore`)",
        )),
        Ok(other) => Err(problem(
            format!("the root helper answered unexpectedly: {other:?}"),
            "`journalctl -u 'pve-appstore-helper@*'` has its side",
        )),
    }
}

fn gpus(config: &Config, root: appstore_gpu::HostRoot) -> Result<String, Vec<Problem>> {
    use appstore_gpu::GpuProbe;
    let inv = appstore_gpu::SysfsProbe::new(root).probe().map_err(|e| {
        problem(
            format!("GPU discovery failed: {e}"),
            "the service needs to read /sys and /dev (its unit keeps PrivateDevices=no)",
        )
    })?;
    let missing: Vec<&String> = config
        .gpu_allowlist
        .iter()
        .filter(|a| !inv.gpus.iter().any(|g| &g.pci_address == *a))
        .collect();
    if !missing.is_empty() {
        return Err(missing
            .iter()
            .map(|a| Problem {
                message: format!("gpu.allowlist names {a}, which this host does not have"),
                fix: "correct gpu.allowlist (`pve-appstore gpus` lists the GPUs)".into(),
            })
            .collect());
    }
    let with_nodes = inv.gpus.iter().filter(|g| !g.nodes.is_empty()).count();
    Ok(match inv.gpus.len() {
        0 => "no GPUs".to_string(),
        n => format!(
            "{n} GPU(s), {with_nodes} with device nodes{}",
            inv.nvidia_driver_version
                .as_deref()
                .map(|v| format!(", NVIDIA driver {v}"))
                .unwrap_or_default()
        ),
    })
}

async fn catalog(config: &Config) -> Result<String, Vec<Problem>> {
    let Some(url) = config.catalog_url.clone() else {
        return Ok("the reference catalog built into the store".into());
    };
    let (branch, path) = (config.catalog_branch.clone(), config.catalog_path.clone());
    let fetched = tokio::task::spawn_blocking(move || crate::lint::load(&url, &branch, &path))
        .await
        .map_err(|e| problem(e.to_string(), "run doctor again"))?;
    match fetched {
        Ok(s) => Ok(format!(
            "{} ({} apps, {} broken)",
            s.source().url,
            s.apps().len(),
            s.broken().len()
        )),
        Err(e) => Err(problem(
            format!("the catalog cannot be fetched: {e:#}"),
            "check catalog.url, catalog.branch and catalog.path, and that this node reaches the catalog's server",
        )),
    }
}
