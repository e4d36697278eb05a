//! The demo: the product on its embedded defaults, with the reference catalog that `serve` also uses
//! when the config names no catalog (see [`crate::reference`]).

use anyhow::Context as _;
use appstore_gpu::fixture::DEMO_CARDS;
use std::path::Path;

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

    /// Installs NVIDIA driver `version` on the simulated host (what a host update does), then has
    /// the GPU manager look again.
    pub fn set_nvidia_driver(&self, version: &str) -> Result<(), String> {
        if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(format!(
                "`{version}` is not a driver version such as 560.35.03"
            ));
        }
        self.host
            .nvidia_driver(version)
            .map_err(|e| format!("changing the simulated NVIDIA driver: {e}"))?;
        let nvidia = DEMO_CARDS
            .iter()
            .find(|(_, name)| name.contains("NVIDIA"))
            .map_or("0000:01:00.0", |(a, _)| *a);
        let _ = self.events.lock().unwrap_or_else(|e| e.into_inner()).send(
            appstore_gpu::hotplug::Uevent {
                action: "change".into(),
                subsystem: "pci".into(),
                sysname: nvidia.into(),
            },
        );
        Ok(())
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
