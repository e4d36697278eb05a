//! The demo: the product on its embedded defaults. The reference catalog is built into the binary and
//! written to a real Git repository at start, so the demo runs the same catalog code as production.

use anyhow::Context as _;
use appstore_gpu::fixture::DEMO_CARDS;
use git2::{Repository, Signature};
use rust_embed::RustEmbed;
use std::path::Path;

#[derive(RustEmbed)]
#[folder = "../catalog/"]
struct ReferenceCatalog;

/// Writes the embedded reference catalog into a Git repository at `dir` (created or updated) and
/// commits it on `main` when anything changed. Returns the repository's `file://` URL.
pub fn write_reference_catalog(dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let repo = match Repository::open(dir) {
        Ok(r) => r,
        Err(_) => {
            let r = Repository::init(dir)
                .with_context(|| format!("cannot create a git repository in {}", dir.display()))?;
            r.set_head("refs/heads/main")?;
            r
        }
    };
    for name in ReferenceCatalog::iter() {
        let file = ReferenceCatalog::get(&name).context("embedded file vanished")?;
        let path = dir.join(name.as_ref());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, file.data.as_ref())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree_id = index.write_tree()?;
    let head = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    if head.as_ref().is_some_and(|c| c.tree_id() == tree_id) {
        return Ok(file_url(dir));
    }
    let tree = repo.find_tree(tree_id)?;
    let sig = Signature::now("PVE App Store demo", "demo@localhost")?;
    let parents: Vec<&git2::Commit> = head.iter().collect();
    repo.commit(
        Some("HEAD"),
        &sig,
        &sig,
        "Reference catalog",
        &tree,
        &parents,
    )?;
    Ok(file_url(dir))
}

fn file_url(dir: &Path) -> String {
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    format!("file://{}", abs.display())
}

/// The demo's GPU host: a fixture tree with an Intel iGPU and an NVIDIA card whose cards can be
/// unplugged and plugged back, so the live GPU view can be tried without hardware.
#[derive(Debug)]
pub struct DemoGpus {
    host: appstore_gpu::fixture::FixtureHost,
    present: std::sync::Mutex<std::collections::BTreeMap<String, bool>>,
    /// The simulated kernel's device events (what a real plug makes the kernel send).
    events: std::sync::Mutex<std::sync::mpsc::Sender<appstore_gpu::hotplug::Uevent>>,
    receiver: std::sync::Mutex<Option<std::sync::mpsc::Receiver<appstore_gpu::hotplug::Uevent>>>,
}

impl DemoGpus {
    /// Builds the demo's GPU host below `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<DemoGpus> {
        let _ = std::fs::remove_dir_all(dir);
        let host = appstore_gpu::fixture::FixtureHost::scenario(
            dir,
            appstore_gpu::fixture::Scenario::Demo,
        )
        .with_context(|| format!("cannot build the demo's GPU host in {}", dir.display()))?;
        if !host.real_nodes {
            tracing::warn!("the demo's GPUs have no device nodes (making them needs root): they are listed, but cannot be passed through");
        }
        let (tx, rx) = std::sync::mpsc::channel();
        Ok(DemoGpus {
            host,
            present: std::sync::Mutex::new(
                DEMO_CARDS
                    .iter()
                    .map(|(a, _)| (a.to_string(), true))
                    .collect(),
            ),
            events: std::sync::Mutex::new(tx),
            receiver: std::sync::Mutex::new(Some(rx)),
        })
    }

    /// The fixture tree's root (the probe's, the simulator's and the helper's device root).
    pub fn root(&self) -> &Path {
        self.host.root()
    }

    /// The device events of the simulated host, for the GPU manager (once).
    pub fn take_events(&self) -> Option<appstore_gpu::hotplug::ChannelSource> {
        self.receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(appstore_gpu::hotplug::ChannelSource)
    }

    /// Each card with whether it is plugged in.
    pub fn list(&self) -> Vec<serde_json::Value> {
        let present = self.present.lock().unwrap_or_else(|e| e.into_inner());
        DEMO_CARDS
            .iter()
            .map(|(addr, name)| {
                serde_json::json!({"pci_address": addr, "name": name, "present": present.get(*addr).copied().unwrap_or(false)})
            })
            .collect()
    }

    /// Plugs the card at `pci` in or out, then has the GPU manager look again.
    pub fn set(&self, pci: &str, plugged: bool) -> Result<(), String> {
        if !DEMO_CARDS.iter().any(|(a, _)| *a == pci) {
            return Err(format!(
                "no simulated GPU `{pci}`; the demo has {}",
                DEMO_CARDS
                    .iter()
                    .map(|(a, _)| *a)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
        }
        let mut present = self.present.lock().unwrap_or_else(|e| e.into_inner());
        let result = if plugged {
            self.host.plug_demo_card(pci)
        } else {
            self.host.unplug(pci)
        };
        result.map_err(|e| format!("changing the simulated GPU {pci}: {e}"))?;
        present.insert(pci.to_string(), plugged);
        // What the kernel would send: the PCI device's event (the manager debounces and rescans).
        let event = appstore_gpu::hotplug::Uevent {
            action: if plugged { "add" } else { "remove" }.into(),
            subsystem: "pci".into(),
            sysname: pci.into(),
        };
        let _ = self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(event);
        Ok(())
    }
}
