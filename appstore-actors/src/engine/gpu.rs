//! The GPU steps of an install: choose (policy, the app's gating, the ranking, a preflight on the
//! host), attach (the container's own group ids, read inside it, then `devN` through the root
//! helper, recorded in `gpu_attachments`), check inside the running container, and smoke-test.

use super::Engine;
use appstore_core::gpu::{self, Candidate, GpuRequest, GroupIds, HostNode, NodeKind, Passthrough};
use appstore_core::manifest::{GpuProfile, GpuSpec, GpuVendor};
use appstore_core::Ctid;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What an install gets: chosen in `validate_gpu`, attached in `attach_gpu`; kept in the job's
/// context so a resumed job attaches the same devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuPlan {
    /// The chosen GPUs' PCI addresses.
    pub pci_addresses: Vec<String>,
    /// Their vendor.
    pub vendor: GpuVendor,
    /// The profile.
    pub profile: GpuProfile,
    /// The chosen GPUs' own nodes.
    pub nodes: Vec<HostNode>,
    /// Which chosen GPU each of those nodes belongs to (path -> PCI address).
    #[serde(default)]
    pub owners: BTreeMap<String, String>,
    /// The host's shared nodes (`nvidiactl`, `nvidia-uvm`, `/dev/kfd`, ...).
    pub shared: Vec<HostNode>,
    /// The host's NVIDIA driver version, for the userland the app installs.
    pub driver_version: Option<String>,
    /// What was passed through (after `attach_gpu`).
    #[serde(default)]
    pub attached: Vec<Passthrough>,
}

impl GpuPlan {
    /// The vendor as templates and environments spell it.
    pub fn vendor_name(&self) -> &'static str {
        self.vendor.as_str()
    }
}

/// GPUs chosen by installs that have not attached them yet: counted as users, so that installs
/// choosing at the same moment spread over the cards. Dropped once attached (then the store counts
/// them) or when the job ends.
#[derive(Debug, Clone, Default)]
pub struct GpuClaims(std::sync::Arc<std::sync::Mutex<BTreeMap<i64, Vec<String>>>>);

impl GpuClaims {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, Vec<String>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets job `job`'s claim.
    pub fn release(&self, job: i64) {
        self.lock().remove(&job);
    }
}

/// The host's GPUs as the choice sees them.
#[derive(Debug, Clone, Default)]
pub struct HostGpus {
    /// Each GPU, with how many containers use it now.
    pub candidates: Vec<Candidate>,
    /// The host's shared nodes.
    pub shared: Vec<HostNode>,
    /// The NVIDIA driver version.
    pub driver_version: Option<String>,
}

/// The inventory as candidates, with how many containers use each GPU now (from `attachments`,
/// as the store holds them); the host's shared nodes; the NVIDIA driver version.
pub fn candidates(
    gpus: &crate::GpuHandle,
    attachments: &[crate::store::GpuAttachment],
) -> HostGpus {
    let status = gpus.status();
    let mut users: BTreeMap<String, BTreeSet<Ctid>> = BTreeMap::new();
    for a in attachments {
        if let Some(pci) = &a.pci_address {
            users.entry(pci.clone()).or_default().insert(a.ctid);
        }
    }
    let inv = status.inventory;
    let list = inv
        .gpus
        .iter()
        .map(|g| Candidate {
            pci_address: g.pci_address.clone(),
            vendor: g.vendor,
            nodes: g.nodes.clone(),
            boot_vga: g.boot_vga,
            users: users.get(&g.pci_address).map(BTreeSet::len).unwrap_or(0),
        })
        .collect();
    HostGpus {
        candidates: list,
        shared: inv.shared_nodes,
        driver_version: inv.nvidia_driver_version,
    }
}

/// Chooses the install's GPU(s), or none, and claims them for job `job` until they are attached.
/// `attachments` are the store's (read by the caller, off the async path). Errors name the rule and
/// the fix.
pub fn choose(
    engine: &Engine,
    job: i64,
    attachments: &[crate::store::GpuAttachment],
    spec: &GpuSpec,
    request: &GpuRequest,
    privileged: bool,
) -> Result<Option<GpuPlan>, String> {
    if *request == GpuRequest::None && !spec.required {
        return Ok(None);
    }
    // Choosing and claiming happen under one lock: two installs never see the same free card.
    let mut claims = engine.gpu_claims.lock();
    claims.remove(&job);
    let HostGpus {
        candidates: mut list,
        shared,
        driver_version,
    } = candidates(&engine.gpus, attachments);
    for c in &mut list {
        c.users += claims
            .values()
            .filter(|p| p.contains(&c.pci_address))
            .count();
    }
    let choices = gpu::decide(
        spec,
        &engine.config.gpu_policy,
        request,
        &list,
        &shared,
        privileged,
    )
    .map_err(|e| e.to_string())?;
    let Some(first) = choices.first() else {
        return Ok(None);
    };
    if let Some(other) = choices.iter().find(|c| c.profile != first.profile) {
        return Err(format!(
            "GPUs {} and {} need different profiles ({} and {}); choose GPUs of one kind",
            first.pci_address,
            other.pci_address,
            gpu::profile_name(first.profile),
            gpu::profile_name(other.profile)
        ));
    }
    let chosen: Vec<&Candidate> = choices
        .iter()
        .filter_map(|c| list.iter().find(|g| g.pci_address == c.pci_address))
        .collect();
    let vendor = chosen
        .first()
        .and_then(|g| g.vendor)
        .ok_or("the chosen GPU has no supported vendor")?;
    let nodes: Vec<HostNode> = chosen.iter().flat_map(|g| g.nodes.clone()).collect();
    let owners = chosen
        .iter()
        .flat_map(|g| {
            g.nodes
                .iter()
                .map(|n| (n.path.clone(), g.pci_address.clone()))
        })
        .collect();
    // Preflight on the host: the profile fits the nodes there, and NVIDIA's driver is loaded.
    gpu::plan(
        first.profile,
        &nodes,
        &shared,
        &GroupIds {
            render: Some(0),
            video: Some(0),
        },
    )
    .map_err(|e| e.to_string())?;
    if first.profile == GpuProfile::NvidiaBasic && driver_version.is_none() {
        return Err("the NVIDIA kernel driver is not loaded on the host (no /proc/driver/nvidia/version) (fix: install and load the host driver, then try again)".into());
    }
    let pci_addresses: Vec<String> = choices.iter().map(|c| c.pci_address.clone()).collect();
    claims.insert(job, pci_addresses.clone());
    Ok(Some(GpuPlan {
        pci_addresses,
        vendor,
        profile: first.profile,
        nodes,
        owners,
        shared,
        driver_version: if vendor == GpuVendor::Nvidia {
            driver_version
        } else {
            None
        },
        attached: Vec::new(),
    }))
}

/// One GPU as the install form offers it.
#[derive(Debug, Clone, Serialize)]
pub struct GpuOption {
    /// PCI address.
    pub pci_address: String,
    /// Vendor.
    pub vendor: Option<GpuVendor>,
    /// Containers using it now.
    pub users: usize,
    /// The profile the app would use on it, when it can.
    pub profile: Option<&'static str>,
    /// Why it cannot be chosen, when it cannot.
    pub reason: Option<String>,
}

/// What the install form offers for an app: every GPU with whether and how the app can use it,
/// and the one "auto-select" would pick.
pub fn options(
    gpus: &crate::GpuHandle,
    attachments: &[crate::store::GpuAttachment],
    policy: &gpu::GpuPolicy,
    spec: &GpuSpec,
) -> (Vec<GpuOption>, Option<String>) {
    let HostGpus {
        candidates: list,
        shared,
        ..
    } = candidates(gpus, attachments);
    let ranked = gpu::rank(spec, policy, &list, &shared);
    let opts = list
        .iter()
        .map(|g| {
            let choice = ranked.iter().find(|c| c.pci_address == g.pci_address);
            let reason = if choice.is_some() {
                None
            } else if !policy.allows(&g.pci_address) {
                Some("not allowed by the store's GPU policy".to_string())
            } else if g.vendor.is_none_or(|v| !spec.supported.contains(&v)) {
                Some("the app does not support this vendor".to_string())
            } else {
                Some("its device nodes are missing on the host".to_string())
            };
            GpuOption {
                pci_address: g.pci_address.clone(),
                vendor: g.vendor,
                users: g.users,
                profile: choice.map(|c| gpu::profile_name(c.profile)),
                reason,
            }
        })
        .collect();
    (opts, ranked.first().map(|c| c.pci_address.clone()))
}

/// Checks `stat` lines (`path gid major_hex minor_hex mode`) from inside the container against what
/// was attached; the error names each node that is missing or wrong.
pub fn verify_inside(attached: &[Passthrough], stat_lines: &[String]) -> Result<(), String> {
    let mut problems = Vec::new();
    for p in attached {
        let found = stat_lines.iter().find_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            (parts.len() >= 4 && parts[0] == p.path).then(|| {
                (
                    parts[1].parse::<u32>().ok(),
                    u32::from_str_radix(parts[2], 16).ok(),
                    u32::from_str_radix(parts[3], 16).ok(),
                )
            })
        });
        match found {
            None => problems.push(format!("{} is missing inside the container", p.path)),
            Some((gid, major, minor)) => {
                if (major, minor) != (Some(p.major), Some(p.minor)) {
                    problems.push(format!(
                        "{} inside the container is not device {}:{}",
                        p.path, p.major, p.minor
                    ));
                }
                if let Some(want) = p.gid {
                    if gid != Some(want) {
                        problems.push(format!(
                            "{} inside the container belongs to group {} instead of {want}",
                            p.path,
                            gid.map(|g| g.to_string()).unwrap_or_else(|| "?".into())
                        ));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The plan in words, for the job log: cards, vendor, profile and the GPUs' own main nodes.
pub fn describe(plan: &GpuPlan) -> String {
    let nodes: Vec<&str> = plan
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Render | NodeKind::NvidiaGpu))
        .map(|n| n.path.as_str())
        .collect();
    format!(
        "{} ({}) with profile {} ({})",
        plan.pci_addresses.join(", "),
        plan.vendor_name(),
        gpu::profile_name(plan.profile),
        nodes.join(", ")
    )
}

impl Engine {
    /// The GPU container `ctid` has (from the store's attachments), as a plan for the environment of
    /// its later scripts: vendor from the host's inventory (else from an NVIDIA or ROCm profile),
    /// the host's NVIDIA driver version of now. `None` without an attachment or a known vendor.
    pub(crate) async fn attached_gpu(&self, ctid: Ctid) -> Option<GpuPlan> {
        let store = self.store.clone();
        let mine: Vec<crate::store::GpuAttachment> =
            super::blocking(move || store.gpu_attachments())
                .await
                .ok()?
                .into_iter()
                .filter(|a| a.ctid == ctid)
                .collect();
        let first = mine.first()?;
        let profile: GpuProfile =
            serde_json::from_value(serde_json::Value::String(first.profile.clone())).ok()?;
        let host = candidates(&self.gpus, &[]);
        let pci: Vec<String> = mine
            .iter()
            .filter_map(|a| a.pci_address.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let vendor = host
            .candidates
            .iter()
            .find(|c| pci.contains(&c.pci_address))
            .and_then(|c| c.vendor)
            .or(match profile {
                GpuProfile::NvidiaBasic => Some(GpuVendor::Nvidia),
                GpuProfile::Rocm => Some(GpuVendor::Amd),
                GpuProfile::DriRender => None,
            })?;
        Some(GpuPlan {
            pci_addresses: pci,
            vendor,
            profile,
            nodes: Vec::new(),
            owners: BTreeMap::new(),
            shared: Vec::new(),
            driver_version: host.driver_version.filter(|_| vendor == GpuVendor::Nvidia),
            attached: Vec::new(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn inside_check_names_missing_and_wrong_nodes() {
        let p = |path: &str, minor, gid| Passthrough {
            path: path.into(),
            major: 226,
            minor,
            gid,
            mode: "0660".into(),
        };
        let attached = [
            p("/dev/dri/renderD128", 128, Some(993)),
            p("/dev/dri/renderD129", 129, Some(993)),
        ];
        let ok = [
            "/dev/dri/renderD128 993 e2 80 660".to_string(),
            "/dev/dri/renderD129 993 e2 81 660".to_string(),
        ];
        assert_eq!(verify_inside(&attached, &ok), Ok(()));
        let bad = ["/dev/dri/renderD128 0 e2 80 660".to_string()];
        let err = verify_inside(&attached, &bad).unwrap_err();
        assert!(err.contains("belongs to group 0 instead of 993"), "{err}");
        assert!(err.contains("/dev/dri/renderD129 is missing"), "{err}");
    }
}
