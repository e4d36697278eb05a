//! The store's config file (`/etc/pve-appstore/config.yml`): raw shape, checks that report every
//! problem at once, and the validated [`Config`].

use crate::diag::{field, index, Diagnostics};
pub use crate::gpu::GpuPolicyMode;
use crate::manifest::{is_bridge_name, is_storage_id, normalize_abs, Feature};
use crate::policy::{InstallPolicy, PoolBoundary, PoolId, ResourceCaps};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

/// The config file as read.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// PVE node this store runs on (the short host name, for example `pve1`).
    pub node: String,
    /// PVE pool that holds every container the store creates; the store touches nothing outside it.
    pub pool: String,
    /// How to reach the PVE API.
    pub proxmox: RawProxmox,
    /// Defaults for new containers.
    #[serde(default)]
    pub defaults: RawDefaults,
    /// Upper limits for one install.
    #[serde(default)]
    pub caps: RawCaps,
    /// Security rules.
    #[serde(default)]
    pub security: RawSecurity,
    /// Web UI and API.
    #[serde(default)]
    pub web: RawWeb,
    /// The app catalog.
    #[serde(default)]
    pub catalog: RawCatalog,
    /// GPU policy.
    #[serde(default)]
    pub gpu: RawGpuPolicy,
    /// Job engine.
    #[serde(default)]
    pub jobs: RawJobs,
    /// Where state and logs go.
    #[serde(default)]
    pub paths: RawPaths,
    /// Webhook targets (ntfy, Gotify, JSON) told about updates, failed backups and GPU drift.
    #[serde(default)]
    pub notifications: Vec<crate::notify::NotifyTarget>,
}

/// PVE API access.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProxmox {
    /// API base URL (default `https://127.0.0.1:8006`).
    #[serde(default)]
    pub api_url: Option<String>,
    /// API token id, `user@realm!tokenid`.
    pub token_id: String,
    /// File holding the token secret (a UUID), readable only by the service user.
    pub token_secret_file: String,
    /// How the API's TLS certificate is checked.
    #[serde(default)]
    pub tls: RawTls,
}

/// TLS verification: by CA file (default `/etc/pve/pve-root-ca.pem`), by SHA-256 fingerprint, or
/// explicitly insecure.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// CA certificate file.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// SHA-256 fingerprint of the API's certificate (`AB:CD:...`, 32 bytes).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Skip verification (logged as a warning at every start).
    #[serde(default)]
    pub insecure: bool,
}

/// Defaults for new containers.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Storage for root disks and volumes (default `local-lvm`).
    #[serde(default)]
    pub storage: Option<String>,
    /// Network bridge (default `vmbr0`).
    #[serde(default)]
    pub bridge: Option<String>,
    /// Storage holding container templates (default: found on the node, the storages with
    /// `vztmpl` content the token sees, `local` first).
    #[serde(default)]
    pub template_storage: Option<String>,
    /// Storage for the apps' backups (content `backup`; default: none chosen, the UI asks).
    #[serde(default)]
    pub backup_storage: Option<String>,
    /// Cores when the app names none (default 1).
    #[serde(default)]
    pub cores: Option<u32>,
    /// Memory in MiB when the app names none (default 512).
    #[serde(default)]
    pub memory_mb: Option<u32>,
    /// Root disk in GiB when the app names none (default 4).
    #[serde(default)]
    pub disk_gb: Option<u32>,
}

/// Resource caps.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCaps {
    /// Most cores (default 8).
    #[serde(default)]
    pub max_cores: Option<u32>,
    /// Most memory in MiB (default 16384).
    #[serde(default)]
    pub max_memory_mb: Option<u32>,
    /// Largest disk in GiB (default 256).
    #[serde(default)]
    pub max_disk_gb: Option<u32>,
}

/// Security rules.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSecurity {
    /// Refuse apps that ask for privileged containers (default true).
    #[serde(default)]
    pub unprivileged_only: Option<bool>,
    /// Features apps may get (default `[nesting]`).
    #[serde(default)]
    pub allowed_features: Option<Vec<Feature>>,
    /// Host directories under which volumes may be bind-mounted (default none).
    #[serde(default)]
    pub allowed_bind_paths: Vec<String>,
}

/// Web server settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    /// Address to listen on (default `0.0.0.0`).
    #[serde(default)]
    pub bind: Option<String>,
    /// Port (default 8088).
    #[serde(default)]
    pub port: Option<u16>,
    /// Authentication.
    #[serde(default)]
    pub auth: RawAuth,
    /// HTTPS: certificate and key files (PEM). Plain HTTP when omitted.
    #[serde(default)]
    pub tls: Option<RawWebTls>,
    /// Host names the UI is reached by besides IP addresses, `localhost` and the node's own names
    /// (from its host name and `/etc/hosts`), for example a reverse proxy's name. Requests naming
    /// any other host are refused (DNS rebinding).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// Authentication mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No login (only sensible on a trusted network or behind a proxy that authenticates).
    None,
    /// A password set with `pve-appstore passwd`.
    #[default]
    Password,
}

/// Authentication settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// `none` or `password` (default).
    #[serde(default)]
    pub mode: AuthMode,
}

/// HTTPS files.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWebTls {
    /// Certificate chain (PEM).
    pub cert_file: String,
    /// Private key (PEM).
    pub key_file: String,
}

/// Catalog source.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    /// Git URL (https:// or file://) of the catalog (default: the reference catalog built into
    /// the store, which works offline).
    #[serde(default)]
    pub url: Option<String>,
    /// Branch (default `main`).
    #[serde(default)]
    pub branch: Option<String>,
    /// The repository's directory that holds `apps/` (default: its top), such as `catalog`.
    #[serde(default)]
    pub path: Option<String>,
    /// How often to fetch: a duration such as `30m`, `6h`, `1d`, or `never` (default `6h`).
    #[serde(default)]
    pub refresh: Option<String>,
    /// Accept `http://` and `git://` catalog URLs, which anyone on the path can read and change
    /// (default false: https, file and local paths only).
    #[serde(default)]
    pub allow_insecure_transport: bool,
}

/// GPU policy.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGpuPolicy {
    /// `none`, `opt-in` (default) or `allowlist`.
    #[serde(default)]
    pub policy: GpuPolicyMode,
    /// PCI addresses (`0000:01:00.0`) allowed under `allowlist`.
    #[serde(default)]
    pub allowlist: Vec<String>,
    /// Allow GPUs in privileged containers (default false).
    #[serde(default)]
    pub allow_privileged: bool,
}

/// Job engine settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJobs {
    /// Installs that run at once; the rest wait in order (default 2).
    #[serde(default)]
    pub max_concurrent_installs: Option<u32>,
    /// Download a missing OS template through `aplinfo` (default true).
    #[serde(default)]
    pub download_templates: Option<bool>,
    /// The time zone backup schedules and update windows are read in: an IANA name
    /// (`Europe/Berlin`) or `UTC`. Default: the node's own (`/etc/localtime`).
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// Directories.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPaths {
    /// State: SQLite database, catalog cache (default `/var/lib/pve-appstore`).
    #[serde(default)]
    pub state_dir: Option<String>,
    /// Logs (default `/var/log/pve-appstore`).
    #[serde(default)]
    pub log_dir: Option<String>,
    /// The root helper's socket (default `/run/pve-appstore/helper.sock`, made by
    /// `pve-appstore-helper.socket`).
    #[serde(default)]
    pub helper_socket: Option<String>,
}

/// How the API's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsVerify {
    /// Against this CA file.
    CaFile(String),
    /// By the SHA-256 fingerprint of the leaf certificate (32 bytes).
    Fingerprint([u8; 32]),
    /// Not at all.
    Insecure,
}

/// The validated config.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Config {
    /// Node name.
    pub node: String,
    /// The store's pool.
    pub pool: PoolId,
    /// API base URL.
    pub api_url: String,
    /// Token id `user@realm!tokenid`.
    pub token_id: String,
    /// File with the token secret.
    pub token_secret_file: String,
    /// TLS verification.
    pub tls: TlsVerify,
    /// Default storage.
    pub storage: String,
    /// Default bridge.
    pub bridge: String,
    /// Template storage; `None`: found on the node.
    pub template_storage: Option<String>,
    /// Backup storage the installer granted; `None`: none chosen.
    pub backup_storage: Option<String>,
    /// Default cores.
    pub cores: u32,
    /// Default memory.
    pub memory_mb: u32,
    /// Default disk.
    pub disk_gb: u32,
    /// Caps.
    pub caps: ResourceCaps,
    /// Unprivileged only.
    pub unprivileged_only: bool,
    /// Allowed features.
    pub allowed_features: BTreeSet<Feature>,
    /// Allowed bind-mount roots.
    pub allowed_bind_paths: Vec<String>,
    /// Listen address.
    pub bind: IpAddr,
    /// Listen port.
    pub port: u16,
    /// Auth mode.
    pub auth: AuthMode,
    /// Extra host names the web UI answers to.
    pub allowed_hosts: Vec<String>,
    /// Notification targets from the config (the UI adds its own).
    pub notifications: Vec<crate::notify::NotifyTarget>,
    /// HTTPS files.
    pub web_tls: Option<RawWebTls>,
    /// Catalog URL; `None`: the reference catalog built into the store.
    pub catalog_url: Option<String>,
    /// Catalog branch.
    pub catalog_branch: String,
    /// The catalog repository's directory that holds `apps/` (empty: its top).
    pub catalog_path: String,
    /// Refresh period; `None` = never.
    pub catalog_refresh: Option<Duration>,
    /// GPU policy.
    pub gpu_policy: GpuPolicyMode,
    /// GPU allowlist.
    pub gpu_allowlist: Vec<String>,
    /// GPUs in privileged containers.
    pub gpu_allow_privileged: bool,
    /// Concurrent installs.
    pub max_concurrent_installs: u32,
    /// Template downloads.
    pub download_templates: bool,
    /// The time zone of schedules and windows; `None`: the node's own.
    pub time_zone: Option<String>,
    /// State directory.
    pub state_dir: String,
    /// Log directory.
    pub log_dir: String,
    /// The root helper's socket.
    pub helper_socket: String,
}

impl Config {
    /// The container boundary.
    pub fn boundary(&self) -> PoolBoundary {
        PoolBoundary::new(self.pool.clone())
    }

    /// The GPU rules.
    pub fn gpu_rules(&self) -> crate::gpu::GpuPolicy {
        crate::gpu::GpuPolicy {
            mode: self.gpu_policy,
            allowlist: self.gpu_allowlist.clone(),
            allow_privileged: self.gpu_allow_privileged,
        }
    }

    /// The install rules.
    pub fn install_policy(&self) -> InstallPolicy {
        InstallPolicy {
            caps: self.caps,
            allowed_features: self.allowed_features.clone(),
            unprivileged_only: self.unprivileged_only,
        }
    }
}

/// The JSON Schema of the config file.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(RawConfig).to_value()
}

/// Parses and validates config text, reporting every problem at once.
pub fn parse_config(text: &str) -> Result<Config, Diagnostics> {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    let mut d = Diagnostics::new();
    let mut value = match crate::yaml::parse_value(text) {
        Ok(v) if v.is_object() => v,
        Ok(_) => {
            d.push("", "the config must be a mapping of keys to values");
            return Err(d);
        }
        Err(e) => {
            d.push("", format!("not valid YAML: {e}"));
            return Err(d);
        }
    };
    let filled = crate::schema_check::check(SCHEMA.get_or_init(json_schema), &mut value, &mut d);
    let raw: RawConfig = match crate::manifest::deserialize(value) {
        Ok(raw) => raw,
        Err((path, msg)) => {
            if d.is_empty() {
                d.push(path, msg);
            }
            d.sort();
            return Err(d);
        }
    };
    let mut semantic = Diagnostics::new();
    let config = validate(raw, &mut semantic);
    for s in semantic
        .iter()
        .filter(|s| !crate::schema_check::is_placeholder(&filled, &s.path))
    {
        d.push_hint(s.path.clone(), s.message.clone(), s.hint.clone());
    }
    d.into_result(()).and(config.ok_or_else(Diagnostics::new))
}

fn validate(raw: RawConfig, d: &mut Diagnostics) -> Option<Config> {
    if raw.node.is_empty()
        || !raw
            .node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        || raw.node.starts_with('-')
    {
        d.push_hint(
            "node",
            format!("`{}` is not a PVE node name", raw.node),
            Some("use the node's short host name, as shown by `hostname`".into()),
        );
    }
    let pool = PoolId::parse(&raw.pool).map_err(|e| d.push("pool", e)).ok();

    let api_url = raw
        .proxmox
        .api_url
        .clone()
        .unwrap_or_else(|| "https://127.0.0.1:8006".into());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        d.push(
            "proxmox.api_url",
            format!("`{api_url}` is not an http(s) URL"),
        );
    }
    let token_ok = raw
        .proxmox
        .token_id
        .split_once('@')
        .and_then(|(user, rest)| rest.split_once('!').map(|(realm, tok)| (user, realm, tok)))
        .is_some_and(|(u, r, t)| {
            !u.is_empty() && !r.is_empty() && !t.is_empty() && !u.contains(':')
        });
    if !token_ok {
        d.push_hint(
            "proxmox.token_id",
            format!("`{}` is not a token id", raw.proxmox.token_id),
            Some("write it as user@realm!tokenid, for example appstore@pve!store".into()),
        );
    }
    if let Err(e) = normalize_abs(&raw.proxmox.token_secret_file) {
        d.push("proxmox.token_secret_file", e);
    }
    let t = &raw.proxmox.tls;
    let chosen = [t.ca_file.is_some(), t.fingerprint.is_some(), t.insecure]
        .iter()
        .filter(|b| **b)
        .count();
    if chosen > 1 {
        d.push_hint(
            "proxmox.tls",
            "choose one of `ca_file`, `fingerprint` or `insecure`",
            Some("a fingerprint pin is the simplest for a single node".into()),
        );
    }
    let tls = if let Some(fp) = &t.fingerprint {
        match parse_fingerprint(fp) {
            Ok(bytes) => TlsVerify::Fingerprint(bytes),
            Err(e) => {
                d.push_hint("proxmox.tls.fingerprint", e, Some("copy it from `pvenode cert info` (SHA-256, 32 bytes as hex pairs separated by `:`)".into()));
                TlsVerify::Insecure
            }
        }
    } else if t.insecure {
        TlsVerify::Insecure
    } else {
        TlsVerify::CaFile(
            t.ca_file
                .clone()
                .unwrap_or_else(|| "/etc/pve/pve-root-ca.pem".into()),
        )
    };

    let storage = raw
        .defaults
        .storage
        .clone()
        .unwrap_or_else(|| "local-lvm".into());
    if !is_storage_id(&storage) {
        d.push(
            "defaults.storage",
            format!("`{storage}` is not a PVE storage id"),
        );
    }
    let bridge = raw
        .defaults
        .bridge
        .clone()
        .unwrap_or_else(|| "vmbr0".into());
    if !is_bridge_name(&bridge) {
        d.push(
            "defaults.bridge",
            format!("`{bridge}` is not a bridge name"),
        );
    }
    let template_storage = raw.defaults.template_storage.clone();
    if let Some(t) = template_storage.as_ref().filter(|t| !is_storage_id(t)) {
        d.push(
            "defaults.template_storage",
            format!(
                "`{t}` is not a PVE storage id; leave it out to use the node's template storage"
            ),
        );
    }
    let backup_storage = raw
        .defaults
        .backup_storage
        .clone()
        .filter(|b| !b.is_empty());
    if let Some(b) = backup_storage.as_ref().filter(|b| !is_storage_id(b)) {
        d.push(
            "defaults.backup_storage",
            format!("`{b}` is not a PVE storage id; name a storage with content `backup`, such as `local`"),
        );
    }
    for (i, t) in raw.notifications.iter().enumerate() {
        for (field, problem) in t.check() {
            d.push(format!("notifications[{i}].{field}"), problem);
        }
    }
    let caps = ResourceCaps {
        max_cores: raw.caps.max_cores.unwrap_or(8),
        max_memory_mb: raw.caps.max_memory_mb.unwrap_or(16384),
        max_disk_gb: raw.caps.max_disk_gb.unwrap_or(256),
    };
    for (name, v) in [
        ("max_cores", caps.max_cores),
        ("max_memory_mb", caps.max_memory_mb),
        ("max_disk_gb", caps.max_disk_gb),
    ] {
        if v == 0 {
            d.push(field("caps", name), "must be at least 1");
        }
    }
    let cores = raw.defaults.cores.unwrap_or(1);
    let memory_mb = raw.defaults.memory_mb.unwrap_or(512);
    let disk_gb = raw.defaults.disk_gb.unwrap_or(4);
    for (name, v, cap, cap_name) in [
        ("cores", cores, caps.max_cores, "max_cores"),
        ("memory_mb", memory_mb, caps.max_memory_mb, "max_memory_mb"),
        ("disk_gb", disk_gb, caps.max_disk_gb, "max_disk_gb"),
    ] {
        if v == 0 {
            d.push(field("defaults", name), "must be at least 1");
        } else if v > cap {
            d.push_hint(
                field("defaults", name),
                format!("{v} is above `caps.{cap_name}` ({cap})"),
                Some(format!("lower it or raise caps.{cap_name}")),
            );
        }
    }
    let mut allowed_bind_paths = Vec::new();
    for (i, p) in raw.security.allowed_bind_paths.iter().enumerate() {
        match normalize_abs(p) {
            Ok(p) if p == "/" => d.push(
                index("security.allowed_bind_paths", i),
                "allowing `/` would expose the whole host",
            ),
            Ok(p) => allowed_bind_paths.push(p),
            Err(e) => d.push(index("security.allowed_bind_paths", i), e),
        }
    }
    let bind_text = raw.web.bind.clone().unwrap_or_else(|| "0.0.0.0".into());
    let bind = bind_text
        .parse::<IpAddr>()
        .map_err(|_| d.push("web.bind", format!("`{bind_text}` is not an IP address")))
        .ok();
    if raw.web.auth.mode == AuthMode::None && bind.is_some_and(|b| !b.is_loopback()) {
        d.push(
            "web.auth.mode",
            format!("`none` lets anyone who reaches {bind_text} install and remove containers; it is allowed only when web.bind is a loopback address (127.0.0.1 or ::1, for a reverse proxy that logs users in) (fix: use `password`, or bind to 127.0.0.1)"),
        );
    }
    for (i, h) in raw.web.allowed_hosts.iter().enumerate() {
        let ok = !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !ok {
            d.push(
                index("web.allowed_hosts", i),
                format!("`{h}` is not a host name (letters, digits, `-` and dots; no port)"),
            );
        }
    }
    let port = raw.web.port.unwrap_or(8088);
    if port == 0 {
        d.push("web.port", "must be 1..=65535");
    }
    if let Some(tls) = &raw.web.tls {
        for (name, p) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
            if let Err(e) = normalize_abs(p) {
                d.push(field("web.tls", name), e);
            }
        }
    }
    let catalog_url = raw.catalog.url.clone().unwrap_or_default();
    let insecure = ["http://", "git://"]
        .iter()
        .any(|p| catalog_url.starts_with(p));
    if insecure && !raw.catalog.allow_insecure_transport {
        d.push_hint(
            "catalog.url",
            format!("`{catalog_url}` is fetched without TLS: anyone on the way could change the apps this node installs"),
            Some("use an https:// URL (or file:// for a local repository), or set catalog.allow_insecure_transport: true if the network is trusted".into()),
        );
    } else if raw.catalog.url.is_some()
        && !insecure
        && !["https://", "file://", "/"]
            .iter()
            .any(|p| catalog_url.starts_with(p))
    {
        d.push_hint(
            "catalog.url",
            format!("`{catalog_url}` is not a supported catalog URL"),
            Some("use https://..., file:///path or an absolute path to a git repository".into()),
        );
    }
    let catalog_branch = raw.catalog.branch.clone().unwrap_or_else(|| "main".into());
    if catalog_branch.is_empty()
        || catalog_branch.contains("..")
        || catalog_branch.starts_with('-')
        || catalog_branch.contains(' ')
    {
        d.push(
            "catalog.branch",
            format!("`{catalog_branch}` is not a branch name"),
        );
    }
    let catalog_path = raw.catalog.path.clone().unwrap_or_default();
    let trimmed = catalog_path.trim_matches('/');
    if catalog_path.starts_with('/')
        || trimmed
            .split('/')
            .any(|part| part.is_empty() && !trimmed.is_empty() || part == ".." || part == ".")
    {
        d.push_hint(
            "catalog.path",
            format!("`{catalog_path}` is not a directory inside the repository"),
            Some("write a relative path such as `catalog`, or leave it out when `apps/` is at the top".into()),
        );
    }
    let catalog_path = trimmed.to_string();
    let catalog_refresh = match parse_refresh(raw.catalog.refresh.as_deref().unwrap_or("6h")) {
        Ok(r) => r,
        Err(e) => {
            d.push_hint(
                "catalog.refresh",
                e,
                Some("write a duration like `30m`, `6h`, `1d`, or `never`".into()),
            );
            None
        }
    };
    if raw.gpu.policy == GpuPolicyMode::Allowlist && raw.gpu.allowlist.is_empty() {
        d.push_hint(
            "gpu.allowlist",
            "the `allowlist` policy needs at least one PCI address",
            Some("list devices like `0000:00:02.0`, or use `policy: opt-in`".into()),
        );
    }
    for (i, a) in raw.gpu.allowlist.iter().enumerate() {
        if !is_pci_address(a) {
            d.push_hint(
                index("gpu.allowlist", i),
                format!("`{a}` is not a PCI address"),
                Some("write it as domain:bus:device.function, for example `0000:01:00.0`".into()),
            );
        }
    }
    let max_concurrent_installs = raw.jobs.max_concurrent_installs.unwrap_or(2);
    if max_concurrent_installs == 0 {
        d.push("jobs.max_concurrent_installs", "must be at least 1");
    }
    if let Some(name) = &raw.jobs.time_zone {
        if let Err(e) = crate::schedule::named_zone(name) {
            d.push("jobs.time_zone", e);
        }
    }
    let state_dir = raw
        .paths
        .state_dir
        .clone()
        .unwrap_or_else(|| "/var/lib/pve-appstore".into());
    let log_dir = raw
        .paths
        .log_dir
        .clone()
        .unwrap_or_else(|| "/var/log/pve-appstore".into());
    let helper_socket = raw
        .paths
        .helper_socket
        .clone()
        .unwrap_or_else(|| "/run/pve-appstore/helper.sock".into());
    for (name, p) in [
        ("state_dir", &state_dir),
        ("log_dir", &log_dir),
        ("helper_socket", &helper_socket),
    ] {
        if let Err(e) = normalize_abs(p) {
            d.push(field("paths", name), e);
        }
    }
    if !d.is_empty() {
        return None;
    }
    Some(Config {
        node: raw.node,
        pool: pool?,
        api_url: api_url.trim_end_matches('/').to_string(),
        token_id: raw.proxmox.token_id,
        token_secret_file: raw.proxmox.token_secret_file,
        tls,
        storage,
        bridge,
        template_storage,
        backup_storage,
        cores,
        memory_mb,
        disk_gb,
        caps,
        unprivileged_only: raw.security.unprivileged_only.unwrap_or(true),
        allowed_features: raw
            .security
            .allowed_features
            .map(|f| f.into_iter().collect())
            .unwrap_or_else(|| [Feature::Nesting].into()),
        allowed_bind_paths,
        bind: bind?,
        port,
        auth: raw.web.auth.mode,
        allowed_hosts: raw.web.allowed_hosts.clone(),
        notifications: raw.notifications.clone(),
        web_tls: raw.web.tls,
        catalog_url: raw.catalog.url.clone(),
        catalog_branch,
        catalog_path,
        catalog_refresh,
        gpu_policy: raw.gpu.policy,
        gpu_allowlist: raw.gpu.allowlist,
        gpu_allow_privileged: raw.gpu.allow_privileged,
        max_concurrent_installs,
        download_templates: raw.jobs.download_templates.unwrap_or(true),
        time_zone: raw.jobs.time_zone.clone(),
        state_dir,
        log_dir,
        helper_socket,
    })
}

/// Parses `AB:CD:...` (or plain hex) into 32 bytes.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    let hexed: String = s.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&hexed).map_err(|_| format!("`{s}` is not hexadecimal"))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "a SHA-256 fingerprint has 32 bytes, this one has {}",
            b.len()
        )
    })
}

/// Parses `30m`, `6h`, `1d`, `45s` or `never`.
pub fn parse_refresh(s: &str) -> Result<Option<Duration>, String> {
    if s == "never" {
        return Ok(None);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("`{s}` has no unit (s, m, h or d)")),
    };
    if secs < 60 {
        return Err(format!("`{s}` is shorter than one minute"));
    }
    Ok(Some(Duration::from_secs(secs)))
}

/// `0000:01:00.0`.
pub fn is_pci_address(s: &str) -> bool {
    static R: OnceLock<regex::Regex> = OnceLock::new();
    R.get_or_init(|| {
        regex::Regex::new(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
            .unwrap_or_else(|e| panic!("built-in pattern: {e}"))
    })
    .is_match(s)
}
