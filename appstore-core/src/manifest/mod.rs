//! App manifests (`app.yml`): the validated [`Manifest`] and [`parse_manifest`], which reports every
//! problem at once with its field path.

mod changelog;
pub mod raw;
mod rules;
mod validate;

pub use rules::{check_value, coerce, InputValidation, InputValue, Pattern};

pub(crate) use validate::deserialize;
pub use validate::{check_manifest, json_schema, parse_manifest, ManifestCheck, BUILTIN_VARIABLES};
use validate::{known_variables, Validator};

use crate::diag::{did_you_mean, field, index, Diagnostics};
use crate::template;
use raw::*;
use regex::Regex;
use schemars::JsonSchema;
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

pub use raw::{
    RawFeature as Feature, RawGpuProfile as GpuProfile, RawGpuSmokeTest as GpuSmokeTest,
    RawGpuVendor as GpuVendor, RawInputType as InputType,
};

/// The only manifest schema version.
pub const SCHEMA_VERSION: u32 = 1;
/// Default time limit of the install script, in seconds.
pub const DEFAULT_TIMEOUT_SEC: u32 = 1800;

/// Distributions with PVE container templates (`ostype` values).
pub const DISTRIBUTIONS: &[&str] = &[
    "alpine",
    "archlinux",
    "centos",
    "debian",
    "devuan",
    "fedora",
    "gentoo",
    "nixos",
    "opensuse",
    "rockylinux",
    "almalinux",
    "ubuntu",
];

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|e| panic!("built-in pattern: {e}")))
}

pub(crate) fn is_kebab(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, AppId::PATTERN).is_match(s)
}

pub(crate) fn is_snake(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"^[a-z][a-z0-9_]*$").is_match(s)
}

fn is_env_name(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"^[A-Za-z_][A-Za-z0-9_]*$").is_match(s)
}

/// PVE's storage id format (`pve-storage-id`).
pub fn is_storage_id(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"^[a-z][a-z0-9\-_.]*[a-z0-9]$").is_match(s)
}

/// A Linux bridge name as PVE accepts it (`pve-bridge-id`, at most 15 characters).
pub fn is_bridge_name(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"^[-_.\w\d]+$").is_match(s) && s.len() <= 15 && s.is_ascii()
}

/// An app id: kebab-case, at most 48 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AppId(String);

impl AppId {
    /// What an id looks like: kebab-case.
    pub const PATTERN: &'static str = r"^[a-z0-9]+(-[a-z0-9]+)*$";
    /// The longest id.
    pub const MAX_LEN: usize = 48;

    /// Checks `s` and wraps it.
    pub fn parse(s: &str) -> Result<AppId, String> {
        if s.len() > AppId::MAX_LEN {
            Err(format!("`{s}` is longer than 48 characters"))
        } else if !is_kebab(s) {
            Err(format!(
                "`{s}` is not kebab-case (lowercase letters and digits joined by `-`)"
            ))
        } else {
            Ok(AppId(s.to_string()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A path relative to the app directory that cannot leave it (no `..`, not absolute), normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RelPath(String);

impl RelPath {
    /// Checks `s` and normalises it (`./a//b` -> `a/b`).
    pub fn parse(s: &str) -> Result<RelPath, String> {
        if s.starts_with('/') {
            return Err(format!(
                "`{s}` is absolute; give a path relative to the app directory"
            ));
        }
        if s.contains('\\') || s.contains('\0') {
            return Err(format!(
                "`{s}` contains a backslash or NUL; use `/` between names"
            ));
        }
        let parts: Vec<&str> = s
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.contains(&"..") {
            return Err(format!("`{s}` leaves the app directory (`..`)"));
        }
        if parts.is_empty() {
            return Err("the path is empty".to_string());
        }
        Ok(RelPath(parts.join("/")))
    }

    /// The normalised path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an app's scripts install its software from (`sources`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Debian's archive.
    Debian,
    /// The Python Package Index.
    Pypi,
    /// The npm registry.
    Npm,
    /// Anything else: the https URL scripts download from.
    Url(String),
}

impl Source {
    /// `debian`, `pypi`, `npm` or an https URL; `None` for anything else.
    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "debian" => Some(Source::Debian),
            "pypi" => Some(Source::Pypi),
            "npm" => Some(Source::Npm),
            url if url.starts_with("https://")
                && url.len() > "https://".len()
                && !url.chars().any(char::is_whitespace) =>
            {
                Some(Source::Url(url.to_string()))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Debian => "debian",
            Source::Pypi => "pypi",
            Source::Npm => "npm",
            Source::Url(u) => u,
        })
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A validated app manifest. Only [`parse_manifest`] and [`Manifest::from_raw`] make one.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    id: AppId,
    name: String,
    description: String,
    #[serde(serialize_with = "ser_display")]
    version: semver::Version,
    categories: Vec<String>,
    tags: Vec<String>,
    homepage: Option<String>,
    service: Option<String>,
    sources: Vec<Source>,
    license: Option<String>,
    maintainers: Vec<String>,
    icon: Option<RelPath>,
    readme: Option<RelPath>,
    featured: bool,
    requires: Requires,
    lxc: LxcSpec,
    inputs: Vec<InputSpec>,
    provision: ProvisionSpec,
    outputs: Vec<OutputSpec>,
    gpu: GpuSpec,
    volumes: Vec<VolumeSpec>,
    changelog: Vec<ChangelogEntry>,
    #[serde(skip)]
    files: Vec<(String, RelPath)>,
}

/// One version's changes (`changelog`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangelogEntry {
    /// The version.
    #[serde(serialize_with = "ser_display")]
    pub version: semver::Version,
    /// Release date, `YYYY-MM-DD`.
    pub date: Option<String>,
    /// What changed.
    pub changes: Vec<String>,
}

fn ser_display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn ser_opt_display<T: fmt::Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// Minimum versions an app needs.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Requires {
    /// Store version requirement.
    #[serde(serialize_with = "ser_opt_display")]
    pub store: Option<semver::VersionReq>,
    /// PVE version requirement.
    #[serde(serialize_with = "ser_opt_display")]
    pub pve: Option<semver::VersionReq>,
}

impl Requires {
    /// What this store (`store`, its version) and this node (`pve`, the release PVE reports, such
    /// as `9.1.2`) lack of the requirement, one sentence each; empty when both meet it. A PVE release
    /// that cannot be read meets nothing it is asked for.
    pub fn unmet(&self, store: &str, pve: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(req) = &self.store {
            match lenient_version(store) {
                Some(v) if req.matches(&v) => {}
                _ => out.push(format!(
                    "needs PVE App Store {req}; this store is {store} (update the store)"
                )),
            }
        }
        if let Some(req) = &self.pve {
            match pve.and_then(lenient_version) {
                Some(v) if req.matches(&v) => {}
                Some(_) => out.push(format!(
                    "needs Proxmox VE {req}; this node runs {}",
                    pve.unwrap_or_default()
                )),
                None => out.push(format!(
                    "needs Proxmox VE {req}; the node's release could not be read"
                )),
            }
        }
        out
    }
}

/// `9.1`, `8.4.1`, `9.0.0-beta` as a semantic version (missing parts are 0).
fn lenient_version(s: &str) -> Option<semver::Version> {
    let core = s.trim().split(['-', '+', '~']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>());
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some(semver::Version::new(major, minor, patch))
}

/// A template family such as `debian-12`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct OsTemplate {
    /// Distribution (`debian`).
    pub distribution: String,
    /// Release (`12`).
    pub release: String,
}

impl OsTemplate {
    /// Parses `<distribution>-<release>`.
    pub fn parse(s: &str) -> Result<OsTemplate, String> {
        let (dist, release) = s.split_once('-').ok_or_else(|| {
            format!("`{s}` is not `<distribution>-<release>` (for example `debian-12`)")
        })?;
        if !DISTRIBUTIONS.contains(&dist) {
            return Err(format!(
                "unknown distribution `{dist}`; known: {}",
                DISTRIBUTIONS.join(", ")
            ));
        }
        let release_ok = !release.is_empty()
            && release
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.');
        if !release_ok {
            return Err(format!(
                "release `{release}` must be lowercase letters, digits and dots"
            ));
        }
        Ok(OsTemplate {
            distribution: dist.to_string(),
            release: release.to_string(),
        })
    }
}

impl fmt::Display for OsTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.distribution, self.release)
    }
}

/// The container an app runs in, with the manifest's defaults filled in.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct LxcSpec {
    /// Template family.
    #[serde(serialize_with = "ser_display")]
    pub ostemplate: OsTemplate,
    /// Unprivileged container.
    pub unprivileged: bool,
    /// CPU cores.
    pub cores: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// Root disk in GiB.
    pub disk_gb: u32,
    /// Bridge, when the app names one.
    pub bridge: Option<String>,
    /// Storage, when the app names one.
    pub storage: Option<String>,
    /// Features.
    pub features: BTreeSet<Feature>,
    /// Start on boot.
    pub onboot: bool,
}

/// Condition that shows an input.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ShowWhen {
    /// Key of an earlier input.
    pub input: String,
    /// Values of that input that show this one.
    pub values: Vec<InputValue>,
}

/// One install form field.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct InputSpec {
    /// Key.
    pub key: String,
    /// Label.
    pub label: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: InputType,
    /// Default, already checked against the validation.
    pub default: Option<InputValue>,
    /// A value is required.
    pub required: bool,
    /// Constraints.
    pub validation: InputValidation,
    /// Help text.
    pub help: Option<String>,
    /// Placeholder.
    pub placeholder: Option<String>,
    /// Form group.
    pub group: Option<String>,
    /// Condition.
    pub show_when: Option<ShowWhen>,
    /// Changeable after install.
    pub reconfigurable: bool,
    /// Generate a random value when empty (secrets).
    pub generate: bool,
}

/// A health check.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Healthcheck {
    /// Script.
    pub script: RelPath,
    /// Attempts.
    pub retries: u32,
    /// Seconds between attempts.
    pub interval_sec: u32,
    /// Time limit of one attempt.
    pub timeout_sec: u32,
}

/// How an app is provisioned.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ProvisionSpec {
    /// Install script.
    pub script: RelPath,
    /// Environment templates.
    pub env: BTreeMap<String, String>,
    /// Extra files.
    pub assets: Vec<RelPath>,
    /// Install time limit.
    pub timeout_sec: u32,
    /// User inside the container.
    pub user: String,
    /// Env vars or input keys whose values are redacted.
    pub redact_keys: Vec<String>,
    /// Safe to run the install script again.
    pub retry_safe: bool,
    /// Upgrade script.
    pub upgrade: Option<RelPath>,
    /// Installed versions the upgrade script can start from (`None`: any older one).
    #[serde(serialize_with = "ser_opt_display")]
    pub upgrade_from: Option<semver::VersionReq>,
    /// Uninstall script.
    pub uninstall: Option<RelPath>,
    /// Health check.
    pub healthcheck: Option<Healthcheck>,
    /// Reconfigure script.
    pub reconfigure: Option<RelPath>,
    /// GPU setup run again after the host's driver changed or a card came back.
    pub gpu_sync: Option<RelPath>,
    /// Keep the provision directory.
    pub keep_provision_dir: bool,
}

/// A value shown after install.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct OutputSpec {
    /// Key.
    pub key: String,
    /// Label.
    pub label: String,
    /// Template.
    pub value: String,
    /// Masked in the UI: set in the manifest or because the template uses a secret input.
    pub secret: bool,
}

/// GPU support.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct GpuSpec {
    /// Vendors the app can use (empty: no GPU support).
    pub supported: BTreeSet<GpuVendor>,
    /// The app needs a GPU.
    pub required: bool,
    /// Usable profiles (defaults filled in).
    pub profiles: BTreeSet<GpuProfile>,
    /// Notes for the user.
    pub notes: Option<String>,
    /// The check run inside the container after provisioning, when a GPU is attached.
    pub smoke_test: Option<GpuSmokeTest>,
}

/// Where a volume's data lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeSource {
    /// A PVE-managed volume of this size in GiB.
    Managed {
        /// Size in GiB.
        size_gb: u32,
    },
    /// A bind mount of a host directory.
    HostPath {
        /// Absolute host path.
        path: String,
    },
}

/// App data kept outside the root disk.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct VolumeSpec {
    /// Name.
    pub name: String,
    /// Mount path inside the container.
    pub mount_path: String,
    /// Where the data lives.
    pub source: VolumeSource,
    /// The install fails without it.
    pub required: bool,
    /// Label.
    pub label: Option<String>,
    /// Description.
    pub description: Option<String>,
}

impl Manifest {
    /// App id.
    pub fn id(&self) -> &AppId {
        &self.id
    }
    /// Display name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// One-line description.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// Catalog entry version.
    pub fn version(&self) -> &semver::Version {
        &self.version
    }
    /// Categories.
    pub fn categories(&self) -> &[String] {
        &self.categories
    }
    /// Search tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    /// Homepage URL.
    pub fn homepage(&self) -> Option<&str> {
        self.homepage.as_deref()
    }
    /// Every version's changes, newest first.
    pub fn changelog(&self) -> &[ChangelogEntry] {
        &self.changelog
    }

    /// The changes an install at `from` gets by upgrading to this version, newest first.
    pub fn changes_since(&self, from: &semver::Version) -> Vec<&ChangelogEntry> {
        self.changelog
            .iter()
            .filter(|e| &e.version > from && e.version <= self.version)
            .collect()
    }

    /// The systemd unit that runs the app (its journal is the app's log).
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// Where the scripts install from (empty when the manifest does not say).
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// True when every source is Debian's archive, PyPI or npm (what test machines reach), and the
    /// manifest names at least one.
    pub fn installs_from_public_registries(&self) -> bool {
        !self.sources.is_empty() && self.sources.iter().all(|s| !matches!(s, Source::Url(_)))
    }

    /// License.
    pub fn license(&self) -> Option<&str> {
        self.license.as_deref()
    }
    /// Maintainers.
    pub fn maintainers(&self) -> &[String] {
        &self.maintainers
    }
    /// Icon file.
    pub fn icon(&self) -> Option<&RelPath> {
        self.icon.as_ref()
    }
    /// README file named in the manifest (the catalog falls back to `README.md`).
    pub fn readme(&self) -> Option<&RelPath> {
        self.readme.as_ref()
    }
    /// Featured in the catalog.
    pub fn featured(&self) -> bool {
        self.featured
    }
    /// Version requirements.
    pub fn requires(&self) -> &Requires {
        &self.requires
    }
    /// Container spec.
    pub fn lxc(&self) -> &LxcSpec {
        &self.lxc
    }
    /// Form fields.
    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }
    /// The input with `key`.
    pub fn input(&self, key: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|i| i.key == key)
    }
    /// Provisioning.
    pub fn provision(&self) -> &ProvisionSpec {
        &self.provision
    }
    /// Outputs.
    pub fn outputs(&self) -> &[OutputSpec] {
        &self.outputs
    }
    /// GPU support.
    pub fn gpu(&self) -> &GpuSpec {
        &self.gpu
    }
    /// Volumes.
    pub fn volumes(&self) -> &[VolumeSpec] {
        &self.volumes
    }

    /// Every file the manifest refers to, with the field that names it; the catalog checks that each
    /// exists as a regular file (or directory, for assets) inside the app directory.
    pub fn referenced_files(&self) -> &[(String, RelPath)] {
        &self.files
    }

    /// Every template variable that `provision.env` and `outputs` may use.
    pub fn template_variables(&self) -> BTreeSet<String> {
        known_variables(&self.inputs, !self.gpu.supported.is_empty())
    }

    /// Validates a raw manifest. `dir_name` is the name of the app's directory, when known.
    pub fn from_raw(raw: RawManifest, dir_name: Option<&str>) -> Result<Manifest, Diagnostics> {
        Validator::default().manifest(raw, dir_name)
    }
}

/// Normalises an absolute path (`/a//b/` -> `/a/b`), refusing `..`.
pub fn normalize_abs(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("`{s}` must be an absolute path"));
    }
    let parts: Vec<&str> = s
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(format!("`{s}` must not contain `..`"));
    }
    if s.contains('\0') || s.contains(',') || s.contains('=') {
        return Err(format!(
            "`{s}` must not contain NUL, `,` or `=` (PVE mount options)"
        ));
    }
    Ok(format!("/{}", parts.join("/")))
}
