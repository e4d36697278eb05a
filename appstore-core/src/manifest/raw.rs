//! What serde reads from `app.yml`: the raw manifest, open fields, no checks beyond shape.
//!
//! The doc comments here become the descriptions in the JSON Schema that `pve-appstore catalog schema`
//! prints, so they are written for catalog maintainers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An app manifest (`apps/<id>/app.yml`), schema version 1.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "PVE App Store app manifest (app.yml), schema version 1")]
pub struct RawManifest {
    /// Manifest schema version. Only `1` exists; omit it or write `1`.
    #[serde(default)]
    pub schema_version: Option<u32>,
    /// App id: kebab-case (`[a-z0-9]` words joined by `-`), at most 48 characters, equal to the name of
    /// the app's directory.
    pub id: String,
    /// Display name.
    pub name: String,
    /// One-line description shown on the app card (at most 160 characters).
    pub description: String,
    /// Version of this catalog entry, semver (`1.2.0`). Raise it when the app or its scripts change, so
    /// installed copies are offered an upgrade.
    pub version: String,
    /// Categories, kebab-case (for example `media`, `productivity`).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Free-form search tags, kebab-case.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Project homepage (http or https URL).
    #[serde(default)]
    pub homepage: Option<String>,
    /// SPDX license of the app (`MIT`, `Apache-2.0`, `GPL-3.0-only`, ...).
    #[serde(default)]
    pub license: Option<String>,
    /// Who maintains this catalog entry (`Name <email>` or a handle).
    #[serde(default)]
    pub maintainers: Vec<String>,
    /// Icon file inside the app directory (SVG or PNG), for example `icon.svg`.
    #[serde(default)]
    pub icon: Option<String>,
    /// README (Markdown) inside the app directory. Defaults to `README.md` when that file exists.
    #[serde(default)]
    pub readme: Option<String>,
    /// Shown first under the "featured" sort.
    #[serde(default)]
    pub featured: bool,
    /// Where the scripts install the software from, so admins see whom they trust and tests know
    /// what they can reach: `debian` (Debian's archive), `pypi`, `npm`, or the https URL of any other
    /// source (a vendor's apt repository, a release download). Extension beyond the original spec.
    #[serde(default)]
    pub sources: Vec<String>,
    /// The systemd unit that runs the app inside its container (`radicale` or
    /// `radicale.service`): its journal is the app's log on the installed app's page.
    #[serde(default)]
    pub service: Option<String>,
    /// Minimum versions this app needs. Extension beyond the original spec.
    #[serde(default)]
    pub requires: Option<RawRequires>,
    /// The container the app runs in.
    pub lxc: RawLxc,
    /// Form fields the user fills in at install time.
    #[serde(default)]
    pub inputs: Vec<RawInput>,
    /// How the app is installed and maintained inside the container.
    pub provision: RawProvision,
    /// Values shown after the install (URL, credentials), rendered from templates.
    #[serde(default)]
    pub outputs: Vec<RawOutput>,
    /// GPU support.
    #[serde(default)]
    pub gpu: Option<RawGpu>,
    /// App data that outlives the container's root disk, so upgrades, reinstalls and uninstalls can keep
    /// it.
    #[serde(default)]
    pub volumes: Vec<RawVolume>,
    /// What changed in each version of this catalog entry, newest first; shown before an upgrade.
    /// Extension beyond the original spec.
    #[serde(default)]
    pub changelog: Vec<RawChangelogEntry>,
}

/// One version's changes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawChangelogEntry {
    /// The catalog version (semver), at most the manifest's `version`.
    pub version: String,
    /// Release date, `YYYY-MM-DD`.
    #[serde(default)]
    pub date: Option<String>,
    /// What changed, one line each, for the admin deciding whether to upgrade.
    pub changes: Vec<String>,
}

/// Minimum versions (semver requirements such as `>=8.1`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRequires {
    /// PVE App Store version requirement, for example `>=0.2`.
    #[serde(default)]
    pub store: Option<String>,
    /// Proxmox VE version requirement, for example `>=8.1`.
    #[serde(default)]
    pub pve: Option<String>,
}

/// Container settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLxc {
    /// OS template family and release, `<distribution>-<release>` (for example `debian-12`,
    /// `ubuntu-24.04`, `alpine-3.20`); the newest matching template on the node is used.
    pub ostemplate: String,
    /// Defaults for the install form; the user may change them within the store's caps.
    #[serde(default)]
    pub defaults: RawLxcDefaults,
}

/// Default container resources and options.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLxcDefaults {
    /// Unprivileged container (default true). Privileged apps are refused when the store is
    /// unprivileged-only.
    #[serde(default)]
    pub unprivileged: Option<bool>,
    /// CPU cores (default 1).
    #[serde(default)]
    pub cores: Option<u32>,
    /// Memory in MiB (default 512).
    #[serde(default)]
    pub memory_mb: Option<u32>,
    /// Root disk size in GiB (default 4).
    #[serde(default)]
    pub disk_gb: Option<u32>,
    /// Network bridge; when omitted the store's default bridge is used.
    #[serde(default)]
    pub bridge: Option<String>,
    /// Storage for the root disk; when omitted the store's default storage is used.
    #[serde(default)]
    pub storage: Option<String>,
    /// Container features the app needs.
    #[serde(default)]
    pub features: Vec<RawFeature>,
    /// Start the container when the node boots (default true).
    #[serde(default)]
    pub onboot: Option<bool>,
}

/// A container feature flag.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RawFeature {
    /// Nested containers (needed by systemd in newer distributions, and by Docker).
    Nesting,
    /// keyctl syscalls (Docker in unprivileged containers). Root-only on PVE.
    Keyctl,
    /// FUSE mounts. Root-only on PVE.
    Fuse,
}

/// One install form field.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    /// Key, snake_case (`[a-z][a-z0-9_]*`); templates use it as `{inputs.<key>}`.
    pub key: String,
    /// Label shown on the form.
    pub label: String,
    /// Field type.
    #[serde(rename = "type")]
    pub kind: RawInputType,
    /// Default value, of the field's type; it must pass the field's own validation.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// The user must provide a value (a default counts).
    #[serde(default)]
    pub required: bool,
    /// Value constraints.
    #[serde(default)]
    pub validation: Option<RawValidation>,
    /// Help text under the field.
    #[serde(default)]
    pub help: Option<String>,
    /// Placeholder shown in an empty field. Extension.
    #[serde(default)]
    pub placeholder: Option<String>,
    /// Form section the field is shown in ("Account", "Advanced"). Extension.
    #[serde(default)]
    pub group: Option<String>,
    /// Show (and require) the field only when another, earlier input has a given value. Extension.
    #[serde(default)]
    pub show_when: Option<RawShowWhen>,
    /// May be changed after install through "reconfigure" (needs `provision.reconfigure`). Extension.
    #[serde(default)]
    pub reconfigurable: bool,
    /// For `secret` fields: generate a random 24-character password when the user leaves it empty.
    /// Extension.
    #[serde(default)]
    pub generate: bool,
}

/// Form field types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawInputType {
    /// Text.
    String,
    /// A number (integer or decimal).
    Number,
    /// A checkbox.
    Boolean,
    /// Text that is masked in the form and redacted from every log.
    Secret,
    /// One of `validation.enum`.
    Select,
}

/// Constraints on an input's value.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawValidation {
    /// Regular expression the whole value must match (string and secret fields).
    #[serde(default)]
    pub regex: Option<String>,
    /// Minimum: the value for numbers, the length in characters for text.
    #[serde(default)]
    pub min: Option<f64>,
    /// Maximum: the value for numbers, the length in characters for text.
    #[serde(default)]
    pub max: Option<f64>,
    /// Allowed values; required for `select` fields.
    #[serde(default, rename = "enum")]
    pub one_of: Option<Vec<serde_json::Value>>,
}

/// Condition on an earlier input.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawShowWhen {
    /// Key of an earlier input.
    pub input: String,
    /// The field is shown when that input equals this value.
    #[serde(default)]
    pub equals: Option<serde_json::Value>,
    /// The field is shown when that input equals one of these values.
    #[serde(default, rename = "in")]
    pub one_of: Option<Vec<serde_json::Value>>,
}

/// How the app is provisioned.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProvision {
    /// Install script, relative to the app directory, run with `/bin/bash` inside the container.
    pub script: String,
    /// Environment for the scripts: variable name -> template (`{inputs.admin_user}`, `{ip}`, ...).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Extra files or directories pushed next to the scripts (`/opt/appstore/provision/`).
    #[serde(default)]
    pub assets: Vec<String>,
    /// Time limit for the install script in seconds (default 1800).
    #[serde(default)]
    pub timeout_sec: Option<u32>,
    /// User the scripts run as inside the container (default root).
    #[serde(default)]
    pub user: Option<String>,
    /// Environment variables or input keys whose values are redacted from logs (secret inputs always
    /// are).
    #[serde(default)]
    pub redact_keys: Vec<String>,
    /// The install script may safely run again after a failure or interruption.
    #[serde(default)]
    pub retry_safe: bool,
    /// Upgrade script, run when a newer catalog version is installed over this one.
    #[serde(default)]
    pub upgrade: Option<String>,
    /// Installed versions the upgrade script can start from, as a semver requirement (`>=1.2.0`,
    /// `^2`); older installs are told to reinstall. Default: any older version. Extension.
    #[serde(default)]
    pub upgrade_from: Option<String>,
    /// Script run before the container is destroyed.
    #[serde(default)]
    pub uninstall: Option<String>,
    /// Health check run after install and upgrade.
    #[serde(default)]
    pub healthcheck: Option<RawHealthcheck>,
    /// Script run when reconfigurable inputs change.
    #[serde(default)]
    pub reconfigure: Option<String>,
    /// Script that sets the app's GPU up again after the host's GPU driver changed or a card came
    /// back (the NVIDIA userland to match the host's driver, the app's GPU settings); run by the
    /// "GPU sync" job with `APPSTORE_GPU_VENDOR` and the host's driver version. It must be safe to
    /// run again (a job interrupted by a restart runs it again). Extension.
    #[serde(default)]
    pub gpu_sync: Option<String>,
    /// Keep `/opt/appstore/provision/` in the container after the install (default false).
    #[serde(default)]
    pub keep_provision_dir: bool,
}

/// A health check: a script that exits 0 once the app is healthy.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealthcheck {
    /// Script relative to the app directory.
    pub script: String,
    /// Attempts before the install fails (default 10).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Seconds between attempts (default 3).
    #[serde(default)]
    pub interval_sec: Option<u32>,
    /// Time limit of one attempt in seconds (default 30).
    #[serde(default)]
    pub timeout_sec: Option<u32>,
}

/// A value shown after install.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// Key, snake_case.
    pub key: String,
    /// Label shown to the user.
    pub label: String,
    /// Template, for example `http://{ip}:5984/_utils`.
    pub value: String,
    /// Mask the value in the UI (credentials). Outputs that use a secret input are always masked.
    #[serde(default)]
    pub secret: bool,
}

/// GPU vendors.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RawGpuVendor {
    /// Intel (iGPU or Arc), through `/dev/dri`.
    Intel,
    /// AMD, through `/dev/dri` (and `/dev/kfd` for ROCm).
    Amd,
    /// NVIDIA, through `/dev/nvidia*`.
    Nvidia,
}

impl RawGpuVendor {
    /// The name as manifests write it (`intel`, `amd`, `nvidia`).
    pub fn as_str(self) -> &'static str {
        match self {
            RawGpuVendor::Intel => "intel",
            RawGpuVendor::Amd => "amd",
            RawGpuVendor::Nvidia => "nvidia",
        }
    }
}

/// GPU attach profiles.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RawGpuProfile {
    /// The chosen `/dev/dri/renderD*` node(s) only (Intel, AMD).
    DriRender,
    /// The chosen `/dev/nvidiaN` plus the control and uvm nodes.
    NvidiaBasic,
    /// `/dev/kfd` plus the render node (AMD ROCm).
    Rocm,
}

/// GPU support of the app.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGpu {
    /// Vendors the app can use.
    #[serde(default)]
    pub supported: Vec<RawGpuVendor>,
    /// The app cannot work without a GPU: the install is blocked unless a compatible GPU is allowed.
    #[serde(default)]
    pub required: bool,
    /// Attach profiles the app works with; default: `dri-render` for Intel/AMD, `nvidia-basic` for
    /// NVIDIA.
    #[serde(default)]
    pub profiles: Vec<RawGpuProfile>,
    /// Notes shown in the GPU step of the install form.
    #[serde(default)]
    pub notes: Option<String>,
    /// A check run inside the container after provisioning, when a GPU is attached; its output
    /// goes to the job log.
    #[serde(default)]
    pub smoke_test: Option<RawGpuSmokeTest>,
}

/// GPU smoke tests: each one fixed command, run inside the container.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RawGpuSmokeTest {
    /// `vainfo` (video acceleration through the render node; Intel and AMD).
    Vainfo,
    /// `nvidia-smi -L` (NVIDIA).
    NvidiaSmi,
    /// `rocminfo` (AMD ROCm).
    Rocminfo,
    /// `clinfo -l` (OpenCL).
    Clinfo,
}

impl RawGpuSmokeTest {
    /// The command run inside the container.
    pub fn argv(self) -> &'static [&'static str] {
        match self {
            RawGpuSmokeTest::Vainfo => &["vainfo"],
            RawGpuSmokeTest::NvidiaSmi => &["nvidia-smi", "-L"],
            RawGpuSmokeTest::Rocminfo => &["rocminfo"],
            RawGpuSmokeTest::Clinfo => &["clinfo", "-l"],
        }
    }
}

/// App data kept outside the container's root disk.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVolume {
    /// Name, kebab-case, unique in the app.
    pub name: String,
    /// Absolute mount path inside the container.
    pub mount_path: String,
    /// Size in GiB of a PVE-managed volume. Give this or `host_path`.
    #[serde(default)]
    pub size_gb: Option<u32>,
    /// Host directory bind-mounted instead (must be allowed by the store's config). Give this or
    /// `size_gb`.
    #[serde(default)]
    pub host_path: Option<String>,
    /// The install fails without this volume (default true).
    #[serde(default)]
    pub required: Option<bool>,
    /// Label shown to the user.
    #[serde(default)]
    pub label: Option<String>,
    /// What the volume holds.
    #[serde(default)]
    pub description: Option<String>,
}
