//! The GPU steps of an install: the choice, the attach through the helper, the check inside and
//! the smoke test.

use super::*;
use appstore_core::Ctid;

impl InstallWork {
    pub(super) async fn validate_gpu(&mut self) -> StepOutcome {
        if self.kind != JobKind::Install {
            return StepOutcome::Done;
        }
        let attachments = if self.request.gpu != appstore_core::gpu::GpuRequest::None
            || self.manifest().gpu().required
        {
            let store = self.engine.store.clone();
            match blocking(move || store.gpu_attachments()).await {
                Ok(a) => a,
                Err(e) => return failed(format!("reading GPU attachments: {e}")),
            }
        } else {
            Vec::new()
        };
        let m = self.manifest();
        let privileged = !m.lxc().unprivileged;
        match crate::engine::gpu::choose(
            &self.engine,
            self.job_id,
            &attachments,
            m.gpu(),
            &self.request.gpu,
            privileged,
        ) {
            Ok(None) => {
                if !m.gpu().supported.is_empty() {
                    self.log.info("no GPU: the app runs without one").await;
                }
                StepOutcome::Done
            }
            Ok(Some(plan)) => {
                // Before PVE 8.1 there are no `devN` entries: a node bind-mounted by raw lines keeps
                // the host's owner, which an unprivileged container sees as nobody.
                match self.engine.pve.version().await {
                    Ok(v)
                        if !v.has_dev_passthrough() && plan.profile != GpuProfile::NvidiaBasic =>
                    {
                        self.engine.gpu_claims.release(self.job_id);
                        return failed(format!(
                            "this node runs PVE {}, which cannot give a passed-through {} node the container's group (`devN` entries arrived in PVE 8.1) (fix: upgrade the node to PVE 8.1 or later)",
                            v.version,
                            plan.vendor_name()
                        ));
                    }
                    Ok(v) if !v.has_dev_passthrough() => {
                        self.log
                            .info(&format!("this node runs PVE {}: the devices are passed with raw lxc lines (the helper needs `legacy_devices: true`)", v.version))
                            .await;
                    }
                    Ok(_) => {}
                    Err(e) => return pve_failed("reading the PVE version", e),
                }
                self.log
                    .info(&format!("GPU: {}", crate::engine::gpu::describe(&plan)))
                    .await;
                if let Some(v) = &plan.driver_version {
                    self.log
                        .info(&format!(
                            "host NVIDIA driver {v}: the app installs the matching userland"
                        ))
                        .await;
                }
                self.gpu = Some(plan);
                StepOutcome::Done
            }
            Err(e) => failed(e),
        }
    }

    /// Reads the container's `render` and `video` group ids (it runs for the moment), stops it,
    /// and passes the plan's nodes through with those groups, through the root helper.
    pub(super) async fn attach_gpu(&mut self) -> StepOutcome {
        let Some(mut plan) = self.gpu.clone() else {
            return StepOutcome::Done;
        };
        let Some(ctid) = self.ctid else {
            return failed("no container id");
        };
        if let Err(o) = self
            .ensure_running(ctid, "starting the container to read its groups")
            .await
        {
            return o;
        }
        let lines = match self.helper_lines(Request::ContainerGroups { ctid }).await {
            Ok(l) => l,
            Err(o) => return o,
        };
        let groups = appstore_core::gpu::GroupIds::parse_getent(&lines.join("\n"));
        self.log
            .info(&format!(
                "the container's groups: render {}, video {}",
                groups
                    .render
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "none".into()),
                groups
                    .video
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "none".into())
            ))
            .await;
        if let Err(o) = self
            .wait(
                "stopping the container to attach the GPU",
                self.engine.pve.lxc_stop(self.node(), ctid).await,
            )
            .await
        {
            return o;
        }
        let list = match appstore_core::gpu::plan(plan.profile, &plan.nodes, &plan.shared, &groups)
        {
            Ok(l) => l,
            Err(e) => return failed(e.to_string()),
        };
        let devices = list
            .iter()
            .map(|p| appstore_helper::DeviceRequest {
                path: p.path.clone(),
                gid: p.gid,
                uid: None,
                mode: Some(p.mode.clone()),
            })
            .collect();
        if let Err(o) = self.helper(Request::AttachDevices { ctid, devices }).await {
            return o;
        }
        for p in &list {
            // A shared node (nvidiactl, kfd) belongs to no one GPU.
            let pci = plan.owners.get(&p.path).cloned();
            let record = crate::store::GpuAttachment {
                ctid,
                device_path: p.path.clone(),
                pci_address: pci,
                profile: appstore_core::gpu::profile_name(plan.profile).into(),
                job_id: Some(self.job_id),
                attached_at: 0,
            };
            let store = self.engine.store.clone();
            if let Err(e) = blocking(move || store.record_gpu_attachment(&record)).await {
                return failed(format!("recording the GPU attachment: {e}"));
            }
            self.log
                .info(&format!(
                    "passed {} ({}:{}) through{}",
                    p.path,
                    p.major,
                    p.minor,
                    p.gid.map(|g| format!(" to group {g}")).unwrap_or_default()
                ))
                .await;
        }
        plan.attached = list;
        self.gpu = Some(plan);
        // Recorded now: the store counts these users from here on.
        self.engine.gpu_claims.release(self.job_id);
        if self.kind == JobKind::Install {
            // The install script sets the userland up for the host's driver of now.
            return self.record_userland().await;
        }
        StepOutcome::Done
    }

    /// After the start: the attached nodes are there inside, with the right numbers and group.
    pub(super) async fn check_gpu_inside(&mut self, ctid: Ctid) -> StepOutcome {
        let Some(plan) = self.gpu.clone().filter(|p| !p.attached.is_empty()) else {
            return StepOutcome::Done;
        };
        let paths = plan.attached.iter().map(|p| p.path.clone()).collect();
        let lines = match self
            .helper_lines(Request::InspectDevices { ctid, paths })
            .await
        {
            Ok(l) => l,
            Err(o) => return o,
        };
        match crate::engine::gpu::verify_inside(&plan.attached, &lines) {
            Ok(()) => {
                self.log
                    .info(&format!(
                        "GPU check inside the container: {} present with the right group",
                        plan.attached
                            .iter()
                            .map(|p| p.path.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .await;
                StepOutcome::Done
            }
            Err(e) => failed(format!("GPU check inside the container: {e}")),
        }
    }

    /// The manifest's GPU smoke test, when a GPU is attached; its output and result go to the log
    /// (a failure is reported, not fatal: the app's own health check decides).
    pub(super) async fn gpu_smoke_test(&mut self) {
        let (Some(tool), Some(ctid)) = (self.manifest().gpu().smoke_test, self.ctid) else {
            return;
        };
        if self.gpu.as_ref().is_none_or(|p| p.attached.is_empty()) {
            return;
        }
        self.log
            .info(&format!("GPU smoke test: {}", tool.argv().join(" ")))
            .await;
        match self.helper(Request::SmokeTest { ctid, tool }).await {
            Ok(Reply::Done {
                exit_code: Some(0), ..
            }) => self.log.info("GPU smoke test passed").await,
            Ok(Reply::Done { exit_code, .. }) => {
                self.log
                    .line(
                        "engine",
                        &format!(
                            "warning: the GPU smoke test exited with {}; the app may fall back to the CPU",
                            exit_code.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
                        ),
                    )
                    .await
            }
            Ok(_) => {}
            Err(_) => {
                self.log
                    .line("engine", "warning: the GPU smoke test could not run")
                    .await
            }
        }
    }
}
