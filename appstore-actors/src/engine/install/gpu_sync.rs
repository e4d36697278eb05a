//! GPU sync of an installed app: its GPU attached anew from the host's inventory (the same cards
//! by PCI address, their device nodes as they are now; stale ones removed), the container started,
//! the app's `gpu_sync` script run with the host's driver version, then the GPU check and the
//! health check. Run after the host's NVIDIA driver changed, and by itself when a card that had
//! vanished comes back.

use super::*;

impl InstallWork {
    /// The inputs as kept (the scripts' environment needs them).
    pub(super) async fn validate_gpu_sync(&mut self) -> StepOutcome {
        let Some((install, _)) = self.existing.clone() else {
            return failed("no install for a GPU sync");
        };
        match self.saved_inputs(install.id).await {
            Ok(saved) => self.take_inputs(&saved),
            Err(o) => o,
        }
    }

    /// Plans the GPU from the store's attachments and today's inventory, removes what is stale,
    /// and attaches again (the same attach an install does).
    pub(super) async fn reattach_gpu(&mut self) -> StepOutcome {
        let Some(ctid) = self.ctid else {
            return failed("no container id");
        };
        let store = self.engine.store.clone();
        let mine: Vec<crate::store::GpuAttachment> =
            match blocking(move || store.gpu_attachments()).await {
                Ok(all) => all.into_iter().filter(|a| a.ctid == ctid).collect(),
                Err(e) => return failed(format!("reading the GPU attachments: {e}")),
            };
        let Some(first) = mine.first() else {
            return failed(format!("container {ctid} has no GPU attached"));
        };
        let profile: GpuProfile =
            match serde_json::from_value(serde_json::Value::String(first.profile.clone())) {
                Ok(p) => p,
                Err(_) => return failed(format!("unknown GPU profile `{}`", first.profile)),
            };
        let pcis: std::collections::BTreeSet<String> =
            mine.iter().filter_map(|a| a.pci_address.clone()).collect();
        let host = crate::engine::gpu::candidates(&self.engine.gpus, &[]);
        let mut nodes = Vec::new();
        let mut owners = std::collections::BTreeMap::new();
        let mut vendor = None;
        for pci in &pcis {
            let Some(card) = host.candidates.iter().find(|c| &c.pci_address == pci) else {
                return failed(format!(
                    "the GPU {pci} is not on the host (unplugged, or its driver not loaded); plug it in or load the driver, then run the GPU sync again"
                ));
            };
            vendor = vendor.or(card.vendor);
            for n in &card.nodes {
                owners.insert(n.path.clone(), pci.clone());
            }
            nodes.extend(card.nodes.iter().cloned());
        }
        let Some(vendor) = vendor else {
            return failed("the attached GPU's vendor is not known to the store");
        };
        // What was attached before and is not among today's nodes goes first.
        let wanted: std::collections::BTreeSet<&str> = nodes
            .iter()
            .map(|n| n.path.as_str())
            .chain(host.shared.iter().map(|n| n.path.as_str()))
            .collect();
        let stale: Vec<String> = mine
            .iter()
            .map(|a| a.device_path.clone())
            .filter(|p| !wanted.contains(p.as_str()))
            .collect();
        if !stale.is_empty() {
            self.log
                .info(&format!(
                    "removing stale device nodes: {}",
                    stale.join(", ")
                ))
                .await;
            if let Err(o) = self
                .helper(Request::DetachDevices { ctid, paths: stale })
                .await
            {
                return o;
            }
        }
        let store = self.engine.store.clone();
        if let Err(e) = blocking(move || store.remove_gpu_attachments(ctid)).await {
            return failed(format!("clearing the GPU attachments: {e}"));
        }
        self.gpu = Some(crate::engine::gpu::GpuPlan {
            pci_addresses: pcis.into_iter().collect(),
            vendor,
            profile,
            nodes,
            owners,
            shared: host.shared,
            driver_version: host
                .driver_version
                .filter(|_| vendor == appstore_core::manifest::GpuVendor::Nvidia),
            attached: Vec::new(),
        });
        self.attach_gpu().await
    }

    /// The app's `gpu_sync` script, when it has one; then the userland is recorded as matching the
    /// host's driver.
    pub(super) async fn run_gpu_sync(&mut self) -> StepOutcome {
        let script = self.manifest().provision().gpu_sync.clone();
        match script {
            Some(s) => {
                let outcome = self
                    .run_once(s.as_str(), self.manifest().provision().timeout_sec)
                    .await;
                if outcome != StepOutcome::Done {
                    return outcome;
                }
            }
            None => {
                self.log
                    .info("the app has no `provision.gpu_sync` script; its GPU check and health check decide")
                    .await
            }
        }
        self.gpu_smoke_test().await;
        self.record_userland().await
    }

    /// Records the NVIDIA driver the container's userland now matches.
    pub(super) async fn record_userland(&self) -> StepOutcome {
        let (Some(ctid), Some(plan)) = (self.ctid, self.gpu.as_ref()) else {
            return StepOutcome::Done;
        };
        let Some(version) = plan.driver_version.clone() else {
            return StepOutcome::Done;
        };
        let store = self.engine.store.clone();
        match blocking(move || store.set_gpu_userland(ctid, &version)).await {
            Ok(()) => StepOutcome::Done,
            Err(e) => failed(format!("recording the GPU userland: {e}")),
        }
    }
}
