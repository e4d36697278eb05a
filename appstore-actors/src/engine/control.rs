//! The steps of a `control` job: the pool boundary checked against PVE's own view, then one power,
//! resource or start-at-boot change. Each change checks the container's state first, so a job
//! resumed after a restart does not start a running container or grow a disk twice.

use super::install::{failed, pve_failed};
use super::{Engine, JobLog, Steps};
use crate::store::InstallRecord;
use appstore_core::control::Control;
use appstore_core::job::{JobState, StepOutcome};
use appstore_core::Ctid;
use appstore_pve::{PveError, Upid};
use serde::{Deserialize, Serialize};

/// What a control job records as its request (and reads back when it resumes).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ControlRequest {
    /// The install.
    pub install_id: i64,
    /// The change.
    pub control: Control,
}

impl ControlRequest {
    /// The request stored with job `job`.
    pub fn of(job: &crate::store::JobRecord) -> Option<ControlRequest> {
        serde_json::from_str(&job.request).ok()
    }
}

/// Seconds a shutdown waits for the container before PVE gives up.
const SHUTDOWN_TIMEOUT: u32 = 60;

pub(super) struct ControlWork {
    engine: Engine,
    install: InstallRecord,
    control: Control,
    log: JobLog,
}

impl ControlWork {
    pub(super) fn new(
        engine: Engine,
        install: InstallRecord,
        control: Control,
        log: JobLog,
    ) -> Self {
        ControlWork {
            engine,
            install,
            control,
            log,
        }
    }

    fn ctid(&self) -> Result<Ctid, StepOutcome> {
        self.install
            .ctid
            .ok_or_else(|| failed("the install has no container"))
    }

    async fn wait(&self, what: &str, upid: Result<Upid, PveError>) -> Result<(), StepOutcome> {
        super::install::wait_for(&self.engine, what, upid).await
    }

    async fn running(&self, ctid: Ctid) -> Result<bool, StepOutcome> {
        self.engine
            .pve
            .lxc_status(&self.engine.config.node, ctid)
            .await
            .map(|s| s.status == "running")
            .map_err(|e| pve_failed(&format!("reading container {ctid}"), e))
    }

    async fn apply(&self) -> Result<(), StepOutcome> {
        let ctid = self.ctid()?;
        let pve = self.engine.pve.as_ref();
        let node = self.engine.config.node.as_str();
        match &self.control {
            Control::Start {} => {
                if self.running(ctid).await? {
                    self.log
                        .info(&format!("container {ctid} is running already"))
                        .await;
                    return Ok(());
                }
                self.log.info(&format!("starting container {ctid}")).await;
                self.wait("starting the container", pve.lxc_start(node, ctid).await)
                    .await
            }
            Control::Stop {} | Control::Shutdown {} => {
                if !self.running(ctid).await? {
                    self.log
                        .info(&format!("container {ctid} is stopped already"))
                        .await;
                    return Ok(());
                }
                if matches!(self.control, Control::Stop {}) {
                    self.log
                        .info(&format!("stopping container {ctid} at once"))
                        .await;
                    self.wait("stopping the container", pve.lxc_stop(node, ctid).await)
                        .await
                } else {
                    self.log
                        .info(&format!(
                            "shutting container {ctid} down (PVE waits up to {SHUTDOWN_TIMEOUT} s)"
                        ))
                        .await;
                    self.wait(
                        "shutting the container down",
                        pve.lxc_shutdown(node, ctid, SHUTDOWN_TIMEOUT).await,
                    )
                    .await
                }
            }
            Control::Reboot {} => {
                if !self.running(ctid).await? {
                    self.log
                        .info(&format!(
                            "container {ctid} is stopped; starting it instead of a reboot"
                        ))
                        .await;
                    return self
                        .wait("starting the container", pve.lxc_start(node, ctid).await)
                        .await;
                }
                self.log.info(&format!("rebooting container {ctid}")).await;
                self.wait("rebooting the container", pve.lxc_reboot(node, ctid).await)
                    .await
            }
            Control::Onboot { enabled } => {
                self.log
                    .info(&format!(
                        "start at boot {} for container {ctid}",
                        if *enabled { "on" } else { "off" }
                    ))
                    .await;
                pve.lxc_update_config(
                    node,
                    ctid,
                    &[("onboot".into(), u8::from(*enabled).to_string())],
                    &[],
                    None,
                )
                .await
                .map_err(|e| pve_failed("setting start at boot", e))
            }
            Control::Resize {
                cores,
                memory_mb,
                disk_gb,
            } => self.resize(ctid, *cores, *memory_mb, *disk_gb).await,
        }
    }

    async fn resize(
        &self,
        ctid: Ctid,
        cores: Option<u32>,
        memory_mb: Option<u32>,
        disk_gb: Option<u32>,
    ) -> Result<(), StepOutcome> {
        let pve = self.engine.pve.as_ref();
        let node = self.engine.config.node.as_str();
        let config = pve
            .lxc_config(node, ctid)
            .await
            .map_err(|e| pve_failed(&format!("reading container {ctid}"), e))?;
        // The caps are checked again here: the config may have changed since the request.
        let now = current(&config.options);
        let check = Control::Resize {
            cores,
            memory_mb,
            disk_gb: None,
        };
        if let Err(errors) = check.check(&self.engine.config.policy.caps, now) {
            let text: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            return Err(failed(text.join("; ")));
        }
        let mut set = Vec::new();
        if let Some(c) = cores {
            set.push(("cores".to_string(), c.to_string()));
        }
        if let Some(m) = memory_mb {
            set.push(("memory".to_string(), m.to_string()));
        }
        if !set.is_empty() {
            let what: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
            self.log
                .info(&format!("setting {} on container {ctid}", what.join(", ")))
                .await;
            pve.lxc_update_config(node, ctid, &set, &[], Some(&config.digest))
                .await
                .map_err(|e| pve_failed("changing cores and memory", e))?;
        }
        if let Some(gb) = disk_gb {
            let have = now.map_or(0, |n| n.disk_gb);
            if have >= gb {
                // A resumed job finds the disk grown already.
                self.log
                    .info(&format!("the root disk is {have} GiB already"))
                    .await;
            } else {
                self.log
                    .info(&format!(
                        "growing the root disk of container {ctid} from {have} to {gb} GiB"
                    ))
                    .await;
                self.wait(
                    "growing the root disk",
                    pve.lxc_resize(node, ctid, "rootfs", &format!("{gb}G"))
                        .await,
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// Cores, memory and root disk from a container's config.
pub(crate) fn current(
    options: &std::collections::BTreeMap<String, String>,
) -> Option<appstore_core::control::Current> {
    let disk_bytes = options.get("rootfs").and_then(|line| {
        line.split(',')
            .find_map(|p| p.strip_prefix("size="))
            .and_then(size_bytes)
    })?;
    Some(appstore_core::control::Current {
        cores: options
            .get("cores")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
        memory_mb: options
            .get("memory")
            .and_then(|m| m.parse().ok())
            .unwrap_or(512),
        disk_gb: u32::try_from(disk_bytes >> 30).unwrap_or(u32::MAX),
    })
}

/// A PVE size (`8G`, `512M`, `1T`, bytes without a unit) in bytes.
fn size_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, shift) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 10),
        'M' => (&t[..t.len() - 1], 20),
        'G' => (&t[..t.len() - 1], 30),
        'T' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let v: f64 = num.parse().ok()?;
    Some((v * (1u64 << shift) as f64) as u64)
}

impl Steps for ControlWork {
    async fn step(&mut self, state: JobState) -> StepOutcome {
        match state {
            JobState::Queued => StepOutcome::Done,
            JobState::CheckBoundary => match self.ctid() {
                Ok(ctid) => super::check_boundary(&self.engine, ctid).await,
                Err(o) => o,
            },
            JobState::ApplyControl => match self.apply().await {
                Ok(()) => StepOutcome::Done,
                Err(o) => o,
            },
            other => failed(format!("`{other}` is not a step of a control job")),
        }
    }

    async fn after_failure(&mut self) {}
}

impl Engine {
    /// Creates the job record of control `control` of `install`; a request outside the caps (or a
    /// disk that would shrink) is refused on its field before a job exists.
    pub async fn create_control_job(
        &self,
        install: &InstallRecord,
        control: &Control,
    ) -> Result<i64, super::EngineError> {
        let ctid = install
            .ctid
            .ok_or_else(|| super::EngineError::Conflict("the install has no container".into()))?;
        let now = match self.pve.lxc_config(&self.config.node, ctid).await {
            Ok(c) => current(&c.options),
            Err(_) => None,
        };
        control
            .check(&self.config.policy.caps, now)
            .map_err(|fields| super::EngineError::Invalid { fields })?;
        let new = crate::store::NewJob {
            kind: appstore_core::job::JobKind::Control,
            app_id: install.app_id.clone(),
            install_id: Some(install.id),
            ctid: install.ctid,
            node: install.node.clone(),
            pool: install.pool.clone(),
            user_action: format!(
                "{} {} (container {ctid})",
                control.describe(),
                install.app_id
            ),
            manifest_version: install.version.clone(),
            manifest_sha256: install.manifest_sha256.clone(),
            commit_id: install.commit_id.clone(),
            request: serde_json::json!(ControlRequest {
                install_id: install.id,
                control: control.clone(),
            })
            .to_string(),
        };
        Ok(self.queue_job(new, serde_json::Value::Null).await?.id)
    }

    /// Runs a control job to its end, from `Queued` or, resumed, from `resume_from`.
    pub async fn run_control(
        &self,
        job_id: i64,
        install: InstallRecord,
        control: Control,
        cancel: super::CancelFlag,
        resume_from: Option<JobState>,
    ) -> Result<JobState, super::EngineError> {
        let log = JobLog::new(self, job_id);
        let mut work = ControlWork::new(self.clone(), install, control, log.clone());
        self.drive(
            appstore_core::job::JobKind::Control,
            job_id,
            &mut work,
            &log,
            &cancel,
            resume_from,
        )
        .await
    }

    /// Resumes an interrupted control job: its change checks the container's state first.
    pub(super) async fn resume_control(
        &self,
        job: crate::store::JobRecord,
        cancel: super::CancelFlag,
    ) -> Result<JobState, super::EngineError> {
        let Some(request) = ControlRequest::of(&job) else {
            return self.give_up(&job, "its request cannot be read").await;
        };
        let store = self.store.clone();
        let install = super::blocking(move || store.install(request.install_id)).await?;
        let Some(install) = install else {
            return self.give_up(&job, "its install record is gone").await;
        };
        self.run_control(job.id, install, request.control, cancel, Some(job.state))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_resources_come_from_the_config() {
        let options: std::collections::BTreeMap<String, String> = [
            ("cores", "2"),
            ("memory", "1024"),
            ("rootfs", "local-lvm:vm-101-disk-0,size=8G"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let now = current(&options).unwrap();
        assert_eq!((now.cores, now.memory_mb, now.disk_gb), (2, 1024, 8));
        assert_eq!(size_bytes("512M"), Some(512 << 20));
        assert_eq!(size_bytes("1T"), Some(1 << 40));
    }
}
