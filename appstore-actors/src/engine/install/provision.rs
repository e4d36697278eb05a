//! Provisioning: the app's files delivered as one archive, the scripts' environment, the install
//! script, the health check and the outputs.

use super::*;

impl InstallWork {
    pub(super) async fn push_assets(&mut self) -> StepOutcome {
        let Some(ctid) = self.ctid else {
            return failed("no container id");
        };
        if self.inputs.is_none() {
            return failed("inputs were not resolved");
        }
        let dir = self.job_dir();
        let app_dir = dir.join("app");
        let (cache, snapshot, app, target) = (
            self.cache.clone(),
            Arc::clone(&self.snapshot),
            Arc::clone(&self.app),
            app_dir.clone(),
        );
        let exported =
            tokio::task::spawn_blocking(move || cache.export_app(&snapshot, &app, &target)).await;
        match exported {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return failed(format!("exporting the app from the catalog: {e}")),
            Err(e) => return failed(e.to_string()),
        }
        // One archive of the app's files, delivered by the helper with one process in the
        // container. The inputs are not in it: they go to each script run on its standard input.
        let archive = dir.join("files.tar");
        let (files, target, app_dir) = (self.app.files.clone(), archive.clone(), app_dir.clone());
        let packed =
            tokio::task::spawn_blocking(move || pack_files(&app_dir, &files, &target)).await;
        match packed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return failed(format!("packing the app's files: {e}")),
            Err(e) => return failed(e.to_string()),
        }
        let req = Request::Deliver {
            ctid,
            archive: archive.to_string_lossy().into_owned(),
        };
        let delivered = self.helper(req).await;
        let _ = std::fs::remove_file(&archive);
        if let Err(o) = delivered {
            return o;
        }
        self.log
            .info(&format!(
                "delivered {} file(s) into the container",
                self.app.files.len()
            ))
            .await;
        StepOutcome::Done
    }

    /// Where the scripts run, for their templates and environment.
    fn site(&self) -> appstore_core::script_env::ScriptSite {
        appstore_core::script_env::ScriptSite {
            ctid: self.ctid,
            hostname: self
                .request
                .hostname
                .clone()
                .unwrap_or_else(|| self.manifest().id().to_string()),
            ip: self.ip.clone().unwrap_or_default(),
            node: self.node().to_string(),
            pool: self.engine.config.pool.clone(),
            gpu: self
                .gpu
                .as_ref()
                .map(|g| (g.vendor, g.driver_version.clone())),
        }
    }

    pub(super) fn context(&self) -> Value {
        appstore_core::script_env::template_context(
            self.manifest(),
            self.inputs.as_ref(),
            &self.site(),
        )
    }

    /// The script's environment: the manifest's `provision.env`, every non-secret input as
    /// `INPUT_<KEY>`, and the store's own `APPSTORE_*` values.
    pub(super) fn env(&self) -> Result<BTreeMap<String, String>, String> {
        appstore_core::script_env::environment(self.manifest(), self.inputs.as_ref(), &self.site())
    }

    /// Runs one of the app's scripts; `with_inputs` hands it the inputs (`$APPSTORE_INPUTS`, a
    /// private file inside the container that lives only as long as the script).
    pub(super) async fn run_script(
        &self,
        script: &str,
        timeout_sec: u32,
        with_inputs: bool,
    ) -> Result<i32, StepOutcome> {
        let Some(ctid) = self.ctid else {
            return Err(failed("no container id"));
        };
        let env = self.env().map_err(failed)?;
        let inputs = if with_inputs {
            self.inputs.as_ref().map(|i| i.to_json())
        } else {
            None
        };
        match self
            .helper(Request::RunScript {
                ctid,
                script: script.into(),
                env,
                inputs,
                timeout_sec,
            })
            .await?
        {
            Reply::Done {
                exit_code: Some(code),
                ..
            } => Ok(code),
            other => Err(failed(format!(
                "unexpected answer from the helper: {other:?}"
            ))),
        }
    }

    /// Runs one of the app's scripts once, with the inputs.
    pub(super) async fn run_once(&self, script: &str, timeout_sec: u32) -> StepOutcome {
        self.log.info(&format!("running {script}")).await;
        match self.run_script(script, timeout_sec, true).await {
            Ok(0) => StepOutcome::Done,
            Ok(code) => failed(format!(
                "{script} exited with code {code}; see the log above for the script's own error"
            )),
            Err(o) => o,
        }
    }

    pub(super) async fn provision(&mut self) -> StepOutcome {
        let p = self.manifest().provision().clone();
        // A script marked retry_safe gets a second run after a failure (a mirror hiccup, say).
        let attempts = if p.retry_safe { 2 } else { 1 };
        let mut attempt = 1;
        loop {
            let outcome = self.run_once(p.script.as_str(), p.timeout_sec).await;
            if outcome == StepOutcome::Done || attempt >= attempts {
                return outcome;
            }
            attempt += 1;
            self.log
                .info(&format!(
                    "{} failed; it is marked retry_safe, so it runs once more",
                    p.script
                ))
                .await;
        }
    }

    pub(super) async fn healthcheck(&mut self) -> StepOutcome {
        self.gpu_smoke_test().await;
        let Some(hc) = self.manifest().provision().healthcheck.clone() else {
            return StepOutcome::Done;
        };
        for attempt in 1..=hc.retries {
            match self
                .run_script(hc.script.as_str(), hc.timeout_sec, false)
                .await
            {
                Ok(0) => {
                    self.log
                        .info(&format!("healthy after {attempt} check(s)"))
                        .await;
                    return StepOutcome::Done;
                }
                Ok(code) => {
                    self.log
                        .info(&format!(
                            "health check {attempt}/{} exited with {code}",
                            hc.retries
                        ))
                        .await
                }
                Err(o) => return o,
            }
            tokio::time::sleep(std::time::Duration::from_secs(u64::from(hc.interval_sec))).await;
        }
        failed(format!(
            "the app did not become healthy after {} checks",
            hc.retries
        ))
    }

    pub(super) async fn collect_outputs(&mut self) -> StepOutcome {
        let ctx = self.context();
        let mut outputs = Vec::new();
        for o in self.manifest().outputs() {
            match template::render(&o.value, &ctx) {
                // A secret output (a password) is kept only sealed.
                Ok(v) => {
                    let stored = if o.secret {
                        self.engine.secrets.seal(&v)
                    } else {
                        v
                    };
                    outputs.push(json!({"key": o.key, "label": o.label, "value": stored, "secret": o.secret}))
                }
                Err(e) => return failed(format!("outputs.{}: {e}", o.key)),
            }
        }
        if let Some(ctid) = self.ctid {
            if !self.manifest().provision().keep_provision_dir {
                let _ = self
                    .helper(Request::RemovePath {
                        ctid,
                        path: "/opt/appstore/provision".into(),
                    })
                    .await;
            }
        }
        let shown: Vec<String> = outputs
            .iter()
            .map(|o| {
                format!(
                    "{}: {}",
                    o["label"].as_str().unwrap_or(""),
                    if o["secret"] == true {
                        "(secret)"
                    } else {
                        o["value"].as_str().unwrap_or("")
                    }
                )
            })
            .collect();
        self.log
            .info(&format!("outputs: {}", shown.join("; ")))
            .await;
        let store = self.engine.store.clone();
        let (job, app, ctid, node, pool) = (
            self.job_id,
            self.app.clone(),
            self.ctid,
            self.node().to_string(),
            self.engine.config.pool.clone(),
        );
        let inputs = self
            .inputs
            .as_ref()
            .map(|i| i.redacted_json())
            .unwrap_or(json!({}));
        let commit = self.snapshot.source().commit.clone();
        let outputs_json = Value::Array(outputs);
        let saved = blocking(move || {
            store.record_install(&crate::store::NewInstall {
                job_id: job,
                app_id: app.manifest.id().to_string(),
                ctid,
                node,
                pool,
                version: app.manifest.version().to_string(),
                manifest_sha256: app.manifest_sha256.clone(),
                commit_id: commit,
                inputs: inputs.to_string(),
                outputs: outputs_json.to_string(),
            })
        })
        .await;
        let install_id = match saved {
            Ok(id) => id,
            Err(e) => return failed(format!("recording the install: {e}")),
        };
        // Every input, secrets included, kept sealed for later reconfigures and upgrades.
        let sealed = self.engine.secrets.seal(
            &self
                .inputs
                .as_ref()
                .map(|i| i.to_json())
                .unwrap_or(json!({}))
                .to_string(),
        );
        let store = self.engine.store.clone();
        match blocking(move || store.set_install_inputs(install_id, &sealed)).await {
            Ok(()) => StepOutcome::Done,
            Err(e) => failed(format!("recording the install's inputs: {e}")),
        }
    }
}

/// Writes the app's files (exported to `app_dir`) into the tar archive `target`, each below
/// `provision/`, scripts executable.
fn pack_files(
    app_dir: &std::path::Path,
    files: &[appstore_catalog::AppFile],
    target: &std::path::Path,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(target)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(out));
    for f in files {
        let mut header = tar::Header::new_gnu();
        let data = std::fs::read(app_dir.join(&f.path))?;
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(data.len() as u64);
        header.set_mode(if f.path.ends_with(".sh") {
            0o755
        } else {
            0o644
        });
        header.set_mtime(0);
        builder.append_data(
            &mut header,
            format!("provision/{}", f.path),
            data.as_slice(),
        )?;
    }
    builder
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
}
