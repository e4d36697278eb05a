//! GPUs, purely: the device nodes a host offers, which of them an attach profile passes into a
//! container and with which group and mode, how they are written into the container's config
//! (`devN` entries on PVE 8.1 and later, raw `lxc.cgroup2.devices.allow` + `lxc.mount.entry` lines
//! before), the store's GPU policy, an app's gating, and the "auto-select best GPU" ranking.
//!
//! Callers supply what they read: the nodes as discovered on the host (major and minor from the
//! nodes themselves), the container's `render` and `video` group ids as read inside it, the config.
//!
//! ```
//! use appstore_core::gpu::*;
//! use appstore_core::manifest::GpuProfile;
//! use appstore_core::pve_config::PveConfig;
//! let render = HostNode { path: "/dev/dri/renderD128".into(), kind: NodeKind::Render, major: 226, minor: 128 };
//! let groups = GroupIds { render: Some(993), video: Some(44) };
//! let plan = plan(GpuProfile::DriRender, &[render], &[], &groups).unwrap();
//! let mut conf = PveConfig::parse("arch: amd64\n").unwrap();
//! merge(conf.current_mut(), &plan, DeviceSyntax::DevEntries).unwrap();
//! assert_eq!(conf.current().get("dev0"), Some("/dev/dri/renderD128,gid=993,mode=0660"));
//! ```

use crate::manifest::{GpuProfile, GpuSpec, GpuVendor};
use crate::pve_config::ConfigSection;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a device node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    /// `/dev/dri/cardN` (display and legacy access).
    Card,
    /// `/dev/dri/renderDN` (compute and video, what containers need).
    Render,
    /// `/dev/nvidiaN`.
    NvidiaGpu,
    /// `/dev/nvidiactl`.
    NvidiaCtl,
    /// `/dev/nvidia-uvm`.
    NvidiaUvm,
    /// `/dev/nvidia-uvm-tools`.
    NvidiaUvmTools,
    /// `/dev/nvidia-modeset`.
    NvidiaModeset,
    /// `/dev/nvidia-caps/*`.
    NvidiaCap,
    /// `/dev/kfd` (AMD ROCm).
    Kfd,
}

/// A character device node on the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostNode {
    /// Path, the same on the host and in the container (`/dev/dri/renderD128`).
    pub path: String,
    /// Kind.
    pub kind: NodeKind,
    /// Major device number.
    pub major: u32,
    /// Minor device number.
    pub minor: u32,
}

/// The container's own group ids, read inside it (`getent group render video`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupIds {
    /// `render`.
    pub render: Option<u32>,
    /// `video`.
    pub video: Option<u32>,
}

impl GroupIds {
    /// Parses `getent group` lines (`render:x:993:` ...).
    pub fn parse_getent(text: &str) -> GroupIds {
        let mut ids = GroupIds::default();
        for line in text.lines() {
            let mut parts = line.split(':');
            let (Some(name), _, Some(gid)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let gid = gid.trim().parse().ok();
            match name.trim() {
                "render" => ids.render = gid,
                "video" => ids.video = gid,
                _ => {}
            }
        }
        ids
    }
}

/// One node to pass through: where, which numbers, owned by which group, with which mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passthrough {
    /// Path on the host and in the container.
    pub path: String,
    /// Major device number.
    pub major: u32,
    /// Minor device number.
    pub minor: u32,
    /// Group inside the container (`None`: root's).
    pub gid: Option<u32>,
    /// Octal mode, `0660`.
    pub mode: String,
}

/// Why a profile cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileError {
    /// The chosen GPU lacks a node the profile needs.
    MissingNode {
        /// Profile.
        profile: GpuProfile,
        /// What is missing, in words.
        what: &'static str,
    },
    /// The container has neither a `render` nor a `video` group for the node's owner.
    NoGroup {
        /// The node.
        path: String,
    },
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileError::MissingNode { profile, what } => write!(
                f,
                "profile `{}` needs {what}, and the chosen GPU has none (fix: choose another GPU, or load its driver so the node exists)",
                profile_name(*profile)
            ),
            ProfileError::NoGroup { path } => write!(
                f,
                "the container has no `render` or `video` group to own {path} (fix: use a template that has them, such as Debian 12)"
            ),
        }
    }
}

impl std::error::Error for ProfileError {}

/// The profile's name as manifests write it.
pub fn profile_name(p: GpuProfile) -> &'static str {
    match p {
        GpuProfile::DriRender => "dri-render",
        GpuProfile::NvidiaBasic => "nvidia-basic",
        GpuProfile::Rocm => "rocm",
    }
}

fn pass(node: &HostNode, gid: Option<u32>, mode: &str) -> Passthrough {
    Passthrough {
        path: node.path.clone(),
        major: node.major,
        minor: node.minor,
        gid,
        mode: mode.to_string(),
    }
}

/// The nodes `profile` passes for the chosen GPU(s) (`gpu_nodes`: their own nodes) and the host's
/// shared nodes (`nvidiactl`, `nvidia-uvm`, `/dev/kfd`, ...), in a stable order.
///
/// * `dri-render`: only the render nodes, owned by the container's `render` group (else `video`),
///   mode 0660.
/// * `nvidia-basic`: each `/dev/nvidiaN` chosen plus `nvidiactl`, `nvidia-uvm`, `nvidia-uvm-tools`
///   and `nvidia-modeset` where present; mode 0666 as on the host (the NVIDIA driver's own default).
/// * `rocm`: `/dev/kfd` (0666) plus the render nodes as for `dri-render`.
pub fn plan(
    profile: GpuProfile,
    gpu_nodes: &[HostNode],
    shared: &[HostNode],
    groups: &GroupIds,
) -> Result<Vec<Passthrough>, ProfileError> {
    let render_gid = |path: &str| {
        groups
            .render
            .or(groups.video)
            .ok_or_else(|| ProfileError::NoGroup {
                path: path.to_string(),
            })
    };
    let of = |kind: NodeKind, list: &[HostNode]| -> Vec<HostNode> {
        let mut v: Vec<HostNode> = list.iter().filter(|n| n.kind == kind).cloned().collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v.dedup();
        v
    };
    let mut out = Vec::new();
    match profile {
        GpuProfile::DriRender | GpuProfile::Rocm => {
            let renders = of(NodeKind::Render, gpu_nodes);
            if renders.is_empty() {
                return Err(ProfileError::MissingNode {
                    profile,
                    what: "a render node (/dev/dri/renderD*)",
                });
            }
            if profile == GpuProfile::Rocm {
                let kfd = of(NodeKind::Kfd, shared);
                let Some(k) = kfd.first() else {
                    return Err(ProfileError::MissingNode {
                        profile,
                        what: "/dev/kfd (the amdgpu driver's compute node)",
                    });
                };
                out.push(pass(k, render_gid(&k.path).ok(), "0666"));
            }
            for r in &renders {
                out.push(pass(r, Some(render_gid(&r.path)?), "0660"));
            }
        }
        GpuProfile::NvidiaBasic => {
            let gpus = of(NodeKind::NvidiaGpu, gpu_nodes);
            if gpus.is_empty() {
                return Err(ProfileError::MissingNode {
                    profile,
                    what: "a /dev/nvidiaN node",
                });
            }
            if of(NodeKind::NvidiaCtl, shared).is_empty() {
                return Err(ProfileError::MissingNode {
                    profile,
                    what: "/dev/nvidiactl",
                });
            }
            for n in &gpus {
                out.push(pass(n, None, "0666"));
            }
            for kind in [
                NodeKind::NvidiaCtl,
                NodeKind::NvidiaUvm,
                NodeKind::NvidiaUvmTools,
                NodeKind::NvidiaModeset,
            ] {
                for n in of(kind, shared) {
                    out.push(pass(&n, None, "0666"));
                }
            }
        }
    }
    Ok(out)
}

/// How device passthrough is written into a container's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceSyntax {
    /// `devN: /dev/...,gid=N,mode=0660` (PVE 8.1 and later).
    DevEntries,
    /// `lxc.cgroup2.devices.allow: c M:m rwm` + `lxc.mount.entry: /dev/x dev/x none bind,optional,create=file`.
    RawLxc,
}

impl DeviceSyntax {
    /// The syntax a PVE release understands (`devN` arrived in 8.1).
    pub fn for_release(major: u32, minor: u32) -> DeviceSyntax {
        if (major, minor) >= (8, 1) {
            DeviceSyntax::DevEntries
        } else {
            DeviceSyntax::RawLxc
        }
    }
}

/// The value of a `devN` entry.
pub fn dev_value(p: &Passthrough) -> String {
    let mut v = p.path.clone();
    if let Some(g) = p.gid {
        v.push_str(&format!(",gid={g}"));
    }
    v.push_str(&format!(",mode={}", p.mode));
    v
}

/// The path of a `devN` value (`[path=]/dev/...[,opts]`).
pub fn dev_entry_path(value: &str) -> &str {
    let first = value.split(',').next().unwrap_or("");
    first.strip_prefix("path=").unwrap_or(first)
}

fn allow_line(p: &Passthrough) -> String {
    format!("c {}:{} rwm", p.major, p.minor)
}

fn mount_line(path: &str) -> String {
    format!(
        "{path} {} none bind,optional,create=file",
        path.trim_start_matches('/')
    )
}

/// True when the raw `lxc.*` line `key: value` is one that [`merge`] writes for a device path that
/// starts with one of `allowed_prefixes`: a `c M:m rwm` cgroup rule or the node's bind entry. The
/// helper refuses containers carrying any other raw line, which it did not write.
pub fn is_passthrough_line(key: &str, value: &str, allowed_prefixes: &[String]) -> bool {
    match key {
        "lxc.cgroup2.devices.allow" => value
            .strip_prefix("c ")
            .and_then(|v| v.strip_suffix(" rwm"))
            .and_then(|v| v.split_once(':'))
            .is_some_and(|(major, minor)| {
                [major, minor].iter().all(|n| {
                    !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit())
                })
            }),
        "lxc.mount.entry" => value.split_once(' ').is_some_and(|(path, _)| {
            path.starts_with('/')
                && !path.split('/').any(|c| c == ".." || c == ".")
                && allowed_prefixes
                    .iter()
                    .any(|p| path.starts_with(p.as_str()))
                && value == mount_line(path)
        }),
        _ => false,
    }
}

/// A config entry to write: (`devN`, value) or a raw line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Edit {
    /// Set `devN` to this value (an existing entry for the path keeps its slot).
    Dev {
        /// Slot.
        index: u32,
        /// Value.
        value: String,
    },
    /// Append a raw `lxc.*` line.
    Raw {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
}

/// The edits that make `section` pass `list` through, skipping what is already there: applying
/// them twice changes nothing the second time. A `devN` for a path keeps its slot (its value is
/// updated when the group or mode differ); new paths take the lowest free slots.
pub fn edits(section: &ConfigSection, list: &[Passthrough], syntax: DeviceSyntax) -> Vec<Edit> {
    let mut out = Vec::new();
    match syntax {
        DeviceSyntax::DevEntries => {
            let mut taken: Vec<u32> = Vec::new();
            for p in list {
                let value = dev_value(p);
                let existing = section.keys().find_map(|(k, v)| {
                    let i = k.strip_prefix("dev")?.parse::<u32>().ok()?;
                    (dev_entry_path(v) == p.path).then_some((i, v.to_string()))
                });
                match existing {
                    Some((_, v)) if v == value => {}
                    Some((index, _)) => out.push(Edit::Dev { index, value }),
                    None => {
                        let index = (0..)
                            .find(|i| {
                                section.get(&format!("dev{i}")).is_none() && !taken.contains(i)
                            })
                            .unwrap_or(0);
                        taken.push(index);
                        out.push(Edit::Dev { index, value });
                    }
                }
            }
        }
        DeviceSyntax::RawLxc => {
            let have = |k: &str, v: &str| section.raw_lxc().any(|(a, b)| a == k && b == v);
            for p in list {
                let (allow, mount) = (allow_line(p), mount_line(&p.path));
                for (k, v) in [
                    ("lxc.cgroup2.devices.allow", allow),
                    ("lxc.mount.entry", mount),
                ] {
                    let edit = Edit::Raw {
                        key: k.to_string(),
                        value: v.clone(),
                    };
                    if !have(k, &v) && !out.contains(&edit) {
                        out.push(edit);
                    }
                }
            }
        }
    }
    out
}

/// Applies [`edits`] to `section`.
pub fn merge(
    section: &mut ConfigSection,
    list: &[Passthrough],
    syntax: DeviceSyntax,
) -> Result<Vec<Edit>, crate::pve_config::InvalidEntry> {
    let todo = edits(section, list, syntax);
    for e in &todo {
        match e {
            Edit::Dev { index, value } => section.try_set(&format!("dev{index}"), value)?,
            Edit::Raw { key, value } => section.try_push_raw_lxc(key, value)?,
        }
    }
    Ok(todo)
}

/// Removes the passthrough of `paths` (both syntaxes: whatever is there). `numbers` gives each
/// path's major and minor for the raw `devices.allow` lines. Returns the removed keys or lines.
pub fn detach(section: &mut ConfigSection, paths: &[&str], numbers: &[(u32, u32)]) -> Vec<String> {
    let mut removed = Vec::new();
    let keys: Vec<String> = section
        .keys()
        .filter(|(k, v)| {
            k.strip_prefix("dev")
                .is_some_and(|i| i.parse::<u32>().is_ok())
                && paths.contains(&dev_entry_path(v))
        })
        .map(|(k, _)| k.to_string())
        .collect();
    for k in keys {
        section.remove(&k);
        removed.push(k);
    }
    for path in paths {
        let line = mount_line(path);
        if section.remove_raw_lxc("lxc.mount.entry", &line) {
            removed.push(format!("lxc.mount.entry: {line}"));
        }
    }
    for (major, minor) in numbers {
        let line = format!("c {major}:{minor} rwm");
        if section.remove_raw_lxc("lxc.cgroup2.devices.allow", &line) {
            removed.push(format!("lxc.cgroup2.devices.allow: {line}"));
        }
    }
    removed
}

/// GPU policy mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GpuPolicyMode {
    /// No GPU is ever attached.
    None,
    /// The user may attach any GPU to apps that support one (default).
    #[default]
    OptIn,
    /// Only the listed devices may be attached.
    Allowlist,
}

/// The store's GPU policy (the config's `gpu` section).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuPolicy {
    /// `none`, `opt-in` or `allowlist`.
    pub mode: GpuPolicyMode,
    /// PCI addresses allowed under `allowlist`.
    pub allowlist: Vec<String>,
    /// GPUs may go into privileged containers.
    pub allow_privileged: bool,
}

impl GpuPolicy {
    /// May this GPU be attached at all?
    pub fn allows(&self, pci_address: &str) -> bool {
        match self.mode {
            GpuPolicyMode::None => false,
            GpuPolicyMode::OptIn => true,
            GpuPolicyMode::Allowlist => self
                .allowlist
                .iter()
                .any(|a| a.eq_ignore_ascii_case(pci_address)),
        }
    }
}

/// A GPU as the ranking sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// PCI address.
    pub pci_address: String,
    /// Vendor, when supported by the store.
    pub vendor: Option<GpuVendor>,
    /// Its own nodes.
    pub nodes: Vec<HostNode>,
    /// The firmware's boot display (usually the host's console).
    pub boot_vga: bool,
    /// Containers it is attached to now.
    pub users: usize,
}

/// The profile this app would use on `gpu`, if any: the first of the app's profiles that fits
/// the GPU's vendor and whose nodes exist (`shared`: the host's shared nodes).
pub fn profile_for(spec: &GpuSpec, gpu: &Candidate, shared: &[HostNode]) -> Option<GpuProfile> {
    let vendor = gpu.vendor?;
    if !spec.supported.contains(&vendor) {
        return None;
    }
    let has = |k: NodeKind| gpu.nodes.iter().any(|n| n.kind == k);
    let shared_has = |k: NodeKind| shared.iter().any(|n| n.kind == k);
    // Most capable first: ROCm over plain DRI for AMD when the app offers both.
    let order = [
        GpuProfile::NvidiaBasic,
        GpuProfile::Rocm,
        GpuProfile::DriRender,
    ];
    order.into_iter().find(|p| {
        spec.profiles.contains(p)
            && match p {
                GpuProfile::NvidiaBasic => {
                    vendor == GpuVendor::Nvidia
                        && has(NodeKind::NvidiaGpu)
                        && shared_has(NodeKind::NvidiaCtl)
                }
                GpuProfile::Rocm => {
                    vendor == GpuVendor::Amd && has(NodeKind::Render) && shared_has(NodeKind::Kfd)
                }
                GpuProfile::DriRender => {
                    matches!(vendor, GpuVendor::Intel | GpuVendor::Amd) && has(NodeKind::Render)
                }
            }
    })
}

/// One GPU the app could get, with the profile it would use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// PCI address.
    pub pci_address: String,
    /// Profile.
    pub profile: GpuProfile,
    /// Containers already using it.
    pub users: usize,
}

/// The GPUs this app may get under `policy`, best first: the fewest containers already using it,
/// then a GPU that is not the host's boot display, then NVIDIA over AMD over Intel (the discrete
/// cards first), then by PCI address.
pub fn rank(
    spec: &GpuSpec,
    policy: &GpuPolicy,
    gpus: &[Candidate],
    shared: &[HostNode],
) -> Vec<Choice> {
    let mut usable: Vec<(&Candidate, GpuProfile)> = gpus
        .iter()
        .filter(|g| policy.allows(&g.pci_address))
        .filter_map(|g| profile_for(spec, g, shared).map(|p| (g, p)))
        .collect();
    let vendor_rank = |v: Option<GpuVendor>| match v {
        Some(GpuVendor::Nvidia) => 0,
        Some(GpuVendor::Amd) => 1,
        _ => 2,
    };
    usable.sort_by(|(a, _), (b, _)| {
        a.users
            .cmp(&b.users)
            .then(a.boot_vga.cmp(&b.boot_vga))
            .then(vendor_rank(a.vendor).cmp(&vendor_rank(b.vendor)))
            .then(a.pci_address.cmp(&b.pci_address))
    });
    usable
        .into_iter()
        .map(|(g, profile)| Choice {
            pci_address: g.pci_address.clone(),
            profile,
            users: g.users,
        })
        .collect()
}

/// Why an app cannot get the GPU it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateError {
    /// The store's policy is `none`.
    PolicyNone,
    /// The app needs a GPU and none fits.
    RequiredMissing {
        /// Vendors the app supports.
        supported: Vec<GpuVendor>,
    },
    /// The user asked for the best GPU, and none on this host fits the app (or is allowed).
    NoneFits {
        /// Vendors the app supports.
        supported: Vec<GpuVendor>,
    },
    /// The user asked for a GPU for an app without GPU support.
    NotSupported,
    /// The chosen GPU is unknown, not allowed, or does not fit the app.
    NotUsable {
        /// PCI address.
        pci_address: String,
        /// Why.
        reason: String,
    },
    /// GPUs in privileged containers are off.
    Privileged,
}

/// Vendors as a message lists them: `intel, nvidia`.
fn vendor_list<'a>(vendors: impl IntoIterator<Item = &'a GpuVendor>) -> String {
    vendors
        .into_iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for GateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateError::PolicyNone => write!(f, "the store's GPU policy is `none` (fix: set gpu.policy to opt-in or allowlist in the config)"),
            GateError::RequiredMissing { supported } => write!(
                f,
                "this app requires a GPU ({}) and this host has none that fits and is allowed (fix: add a supported GPU with its driver loaded, or allow it in gpu.allowlist)",
                vendor_list(supported)
            ),
            GateError::NoneFits { supported } => write!(
                f,
                "no GPU on this host fits this app ({}) and is allowed (fix: install it without a GPU, or add one the app supports)",
                vendor_list(supported)
            ),
            GateError::NotSupported => write!(f, "this app does not use a GPU (fix: install it without one)"),
            GateError::NotUsable { pci_address, reason } => write!(f, "GPU {pci_address} cannot be used: {reason}"),
            GateError::Privileged => write!(f, "GPUs are not attached to privileged containers (fix: keep the container unprivileged, or set gpu.allow_privileged)"),
        }
    }
}

impl std::error::Error for GateError {}

/// What the user asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum GpuRequest {
    /// No GPU (the default; an app that requires one then picks the best).
    #[default]
    None,
    /// The best GPU by [`rank`].
    Auto,
    /// These GPUs, by PCI address.
    Devices {
        /// PCI addresses.
        pci_addresses: Vec<String>,
    },
}

/// Decides which GPUs an install gets: `Ok(vec![])` for none, else the choices in order.
/// A required GPU with `None` asked for is treated as `Auto`.
pub fn decide(
    spec: &GpuSpec,
    policy: &GpuPolicy,
    request: &GpuRequest,
    gpus: &[Candidate],
    shared: &[HostNode],
    privileged: bool,
) -> Result<Vec<Choice>, GateError> {
    let request = match request {
        GpuRequest::None if spec.required => &GpuRequest::Auto,
        GpuRequest::None => return Ok(Vec::new()),
        r => r,
    };
    if spec.supported.is_empty() {
        return Err(GateError::NotSupported);
    }
    if policy.mode == GpuPolicyMode::None {
        return Err(GateError::PolicyNone);
    }
    if privileged && !policy.allow_privileged {
        return Err(GateError::Privileged);
    }
    let ranked = rank(spec, policy, gpus, shared);
    match request {
        GpuRequest::Auto => match ranked.into_iter().next() {
            Some(best) => Ok(vec![best]),
            None if spec.required => Err(GateError::RequiredMissing {
                supported: spec.supported.iter().copied().collect(),
            }),
            None => Err(GateError::NoneFits {
                supported: spec.supported.iter().copied().collect(),
            }),
        },
        GpuRequest::Devices { pci_addresses } => {
            let mut out = Vec::new();
            for pci in pci_addresses {
                let reason = match gpus
                    .iter()
                    .find(|g| g.pci_address.eq_ignore_ascii_case(pci))
                {
                    None => Some("no such GPU on this host".to_string()),
                    Some(_) if !policy.allows(pci) => {
                        Some("the store's GPU policy does not allow it (gpu.allowlist)".into())
                    }
                    Some(g) if g.vendor.is_none_or(|v| !spec.supported.contains(&v)) => Some(format!(
                        "the app supports {}, and this GPU is {}",
                        vendor_list(&spec.supported),
                        g.vendor.map_or("of an unsupported vendor", GpuVendor::as_str)
                    )),
                    Some(g) => match ranked.iter().find(|c| c.pci_address == g.pci_address) {
                        Some(c) => {
                            if !out.contains(c) {
                                out.push(c.clone());
                            }
                            None
                        }
                        None => Some(
                            "none of the app's profiles fits this GPU's device nodes (is its driver loaded?)".into(),
                        ),
                    },
                };
                if let Some(reason) = reason {
                    return Err(GateError::NotUsable {
                        pci_address: pci.clone(),
                        reason,
                    });
                }
            }
            if out.is_empty() && spec.required {
                return Err(GateError::RequiredMissing {
                    supported: spec.supported.iter().copied().collect(),
                });
            }
            Ok(out)
        }
        GpuRequest::None => Ok(Vec::new()),
    }
}
