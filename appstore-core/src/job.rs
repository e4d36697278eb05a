//! The job state machine as a pure function: the states of each job kind in order, what happens after
//! a step succeeds, fails, asks for a retry or is canceled, and where a job resumes after the service
//! restarted. The job engine persists every transition; this module only decides.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Create a container and provision an app in it.
    Install,
    /// Remove an installed app's container.
    Uninstall,
    /// Move an installed app to a newer catalog version, with a snapshot to roll back to.
    Upgrade,
    /// Change an installed app's reconfigurable inputs.
    Reconfigure,
    /// Power, resources or start-at-boot of an installed app's container.
    Control,
    /// A PVE backup (`vzdump`) of an installed app's container, then the retention.
    Backup,
    /// An installed app's container made again from one of its backups: into a new container, or
    /// over the existing one.
    Restore,
    /// An app's GPU set up again: attached anew from the host's inventory, the app's `gpu_sync`
    /// script, the GPU check and the health check (after a driver change, or a card came back).
    GpuSync,
}

impl JobKind {
    /// The kind's name as stored and shown (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Install => "install",
            JobKind::Uninstall => "uninstall",
            JobKind::Upgrade => "upgrade",
            JobKind::Reconfigure => "reconfigure",
            JobKind::Control => "control",
            JobKind::Backup => "backup",
            JobKind::Restore => "restore",
            JobKind::GpuSync => "gpu_sync",
        }
    }

    /// The kind called `s`.
    pub fn parse(s: &str) -> Option<JobKind> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every state a job can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a slot.
    Queued,
    /// The request's fields.
    ValidateRequest,
    /// The manifest at the pinned commit.
    ValidateManifest,
    /// Pool, storage, bridge, template.
    ValidatePlacement,
    /// GPU policy and devices.
    ValidateGpu,
    /// A free container id.
    AllocateCtid,
    /// The PVE create task.
    CreateContainer,
    /// Tags and features after the create.
    ConfigureContainer,
    /// Devices through the helper.
    AttachGpu,
    /// The PVE start task.
    StartContainer,
    /// Until the container has an address.
    WaitForNetwork,
    /// Scripts and assets into the container.
    PushAssets,
    /// The install script.
    Provision,
    /// The health check.
    Healthcheck,
    /// Outputs rendered with the real address.
    CollectOutputs,
    /// Uninstall: boundary check.
    CheckBoundary,
    /// Uninstall and upgrade: the app's uninstall hook or a stop.
    StopContainer,
    /// Uninstall: the PVE destroy task.
    DestroyContainer,
    /// Uninstall: records and kept volumes.
    Cleanup,
    /// Upgrade: a snapshot before anything changes.
    Snapshot,
    /// Upgrade: the upgrade script.
    RunUpgrade,
    /// Upgrade: back to the snapshot after a failure.
    Rollback,
    /// Upgrade: the snapshot is no longer needed.
    RemoveSnapshot,
    /// Reconfigure: the reconfigure script.
    RunReconfigure,
    /// Control: the power, resource or start-at-boot change (a PVE task or config write).
    ApplyControl,
    /// Backup: the `vzdump` task.
    Backup,
    /// Backup: older backups beyond the retention removed.
    PruneBackups,
    /// Restore: PVE's restore task (a create with `restore=1`).
    RestoreContainer,
    /// GPU sync: the app's `gpu_sync` script.
    RunGpuSync,
    /// Done.
    Completed,
    /// Ended with an error.
    Failed,
    /// Stopped by the user.
    Canceled,
}

impl JobState {
    /// No more steps follow.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Canceled
        )
    }

    /// The state's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        // The serde names, spelled out for a `&'static str`; a test checks they agree.
        match self {
            JobState::Queued => "queued",
            JobState::ValidateRequest => "validate_request",
            JobState::ValidateManifest => "validate_manifest",
            JobState::ValidatePlacement => "validate_placement",
            JobState::ValidateGpu => "validate_gpu",
            JobState::AllocateCtid => "allocate_ctid",
            JobState::CreateContainer => "create_container",
            JobState::ConfigureContainer => "configure_container",
            JobState::AttachGpu => "attach_gpu",
            JobState::StartContainer => "start_container",
            JobState::WaitForNetwork => "wait_for_network",
            JobState::PushAssets => "push_assets",
            JobState::Provision => "provision",
            JobState::Healthcheck => "healthcheck",
            JobState::CollectOutputs => "collect_outputs",
            JobState::CheckBoundary => "check_boundary",
            JobState::StopContainer => "stop_container",
            JobState::DestroyContainer => "destroy_container",
            JobState::Cleanup => "cleanup",
            JobState::Snapshot => "snapshot",
            JobState::RunUpgrade => "run_upgrade",
            JobState::Rollback => "rollback",
            JobState::RemoveSnapshot => "remove_snapshot",
            JobState::RunReconfigure => "run_reconfigure",
            JobState::ApplyControl => "apply_control",
            JobState::Backup => "backup",
            JobState::PruneBackups => "prune_backups",
            JobState::RestoreContainer => "restore_container",
            JobState::RunGpuSync => "run_gpu_sync",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<JobState> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

use JobState as S;

/// The working states of a job kind, in order (the terminal states are not listed).
pub fn steps(kind: JobKind) -> &'static [JobState] {
    match kind {
        JobKind::Install => &[
            S::Queued,
            S::ValidateRequest,
            S::ValidateManifest,
            S::ValidatePlacement,
            S::ValidateGpu,
            S::AllocateCtid,
            S::CreateContainer,
            S::ConfigureContainer,
            S::AttachGpu,
            S::StartContainer,
            S::WaitForNetwork,
            S::PushAssets,
            S::Provision,
            S::Healthcheck,
            S::CollectOutputs,
        ],
        JobKind::Uninstall => &[
            S::Queued,
            S::CheckBoundary,
            S::StopContainer,
            S::DestroyContainer,
            S::Cleanup,
        ],
        JobKind::Upgrade => &[
            S::Queued,
            S::CheckBoundary,
            S::ValidateManifest,
            S::Snapshot,
            S::StartContainer,
            S::WaitForNetwork,
            S::PushAssets,
            S::RunUpgrade,
            S::Healthcheck,
            S::CollectOutputs,
            S::RemoveSnapshot,
        ],
        JobKind::Reconfigure => &[
            S::Queued,
            S::CheckBoundary,
            S::ValidateRequest,
            S::PushAssets,
            S::RunReconfigure,
            S::Healthcheck,
            S::CollectOutputs,
        ],
        JobKind::Control => &[S::Queued, S::CheckBoundary, S::ApplyControl],
        JobKind::Backup => &[S::Queued, S::CheckBoundary, S::Backup, S::PruneBackups],
        // A restore into a new container skips the boundary check and the stop; one over the
        // existing container skips the allocation.
        JobKind::Restore => &[
            S::Queued,
            S::ValidateRequest,
            S::CheckBoundary,
            S::AllocateCtid,
            S::StopContainer,
            S::RestoreContainer,
            S::StartContainer,
            S::WaitForNetwork,
            S::PushAssets,
            S::Healthcheck,
            S::CollectOutputs,
        ],
        JobKind::GpuSync => &[
            S::Queued,
            S::CheckBoundary,
            S::ValidateRequest,
            S::AttachGpu,
            S::StartContainer,
            S::PushAssets,
            S::RunGpuSync,
            S::Healthcheck,
        ],
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// It did its work.
    Done,
    /// It could not yet (no address yet, a task still running): try again after a while.
    NotYet {
        /// Why.
        reason: String,
    },
    /// It failed.
    Failed {
        /// Why, in words for the user (PVE's or the script's own).
        reason: String,
    },
    /// The user canceled the job.
    Canceled,
}

/// Limits for retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts of a step that answers `NotYet` before the job fails.
    pub max_attempts: u32,
    /// First wait.
    pub initial_backoff: Duration,
    /// Longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 30,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt` (1-based), doubling up to the maximum.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// What the engine does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Enter `to` and run its step.
    Advance {
        /// The next state.
        to: JobState,
    },
    /// Stay, and run the step again after `after`.
    Retry {
        /// Wait.
        after: Duration,
        /// The attempt about to be made (1-based).
        attempt: u32,
    },
    /// The job ends in `to` (completed, failed, canceled), or, for an upgrade that failed after its
    /// snapshot, goes to `rollback` first.
    End {
        /// The end state, or `Rollback`.
        to: JobState,
        /// Why, for failures.
        reason: Option<String>,
    },
}

/// Decides the next transition of a `kind` job in `state` after `outcome`; `attempts` counts the tries
/// of this step so far. Pure: the engine persists and carries it out.
pub fn next(
    kind: JobKind,
    state: JobState,
    outcome: &StepOutcome,
    attempts: u32,
    policy: &RetryPolicy,
) -> Transition {
    match outcome {
        StepOutcome::Canceled => Transition::End {
            to: S::Canceled,
            reason: Some("canceled by the user".into()),
        },
        StepOutcome::Failed { reason } => {
            // An upgrade that fails after its snapshot goes back to it.
            let after_snapshot = kind == JobKind::Upgrade
                && steps(kind).iter().position(|s| *s == state)
                    > steps(kind).iter().position(|s| *s == S::Snapshot)
                && state != S::RemoveSnapshot;
            if after_snapshot {
                Transition::End {
                    to: S::Rollback,
                    reason: Some(reason.clone()),
                }
            } else {
                Transition::End {
                    to: S::Failed,
                    reason: Some(reason.clone()),
                }
            }
        }
        StepOutcome::NotYet { reason } => {
            if attempts >= policy.max_attempts {
                Transition::End {
                    to: S::Failed,
                    reason: Some(format!("{reason} (gave up after {attempts} attempts)")),
                }
            } else {
                Transition::Retry {
                    after: policy.backoff(attempts + 1),
                    attempt: attempts + 1,
                }
            }
        }
        StepOutcome::Done => {
            if state == S::Rollback {
                return Transition::End {
                    to: S::Failed,
                    reason: Some("the upgrade failed and was rolled back to the snapshot".into()),
                };
            }
            let list = steps(kind);
            match list.iter().position(|s| *s == state) {
                Some(i) if i + 1 < list.len() => Transition::Advance { to: list[i + 1] },
                Some(_) => Transition::End {
                    to: S::Completed,
                    reason: None,
                },
                None => Transition::End {
                    to: S::Failed,
                    reason: Some(format!("`{state}` is not a step of a {kind:?} job")),
                },
            }
        }
    }
}

/// What to do with a job found in `state` when the service starts again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Run the step of this state again (steps are idempotent: a container this job created is found,
    /// a start of a running container is a no-op).
    Rerun(JobState),
    /// The interrupted step cannot be repeated safely: fail with this reason.
    Fail(String),
    /// Nothing to do.
    Settled,
}

/// Where a job resumes after a restart. A provision (or upgrade, or reconfigure) script interrupted
/// midway runs again only when the manifest says `retry_safe`.
pub fn resume(state: JobState, retry_safe: bool) -> Resume {
    match state {
        s if s.is_terminal() => Resume::Settled,
        S::Provision | S::RunUpgrade | S::RunReconfigure if !retry_safe => Resume::Fail(format!(
            "the service restarted while `{state}` was running, and the app's scripts are not marked retry_safe; \
             the container was left as it was: destroy the failed install and install again"
        )),
        s => Resume::Rerun(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(kind: JobKind) -> Vec<JobState> {
        let mut state = S::Queued;
        let mut seen = vec![state];
        loop {
            match next(kind, state, &StepOutcome::Done, 0, &RetryPolicy::default()) {
                Transition::Advance { to } => {
                    state = to;
                    seen.push(to);
                }
                Transition::End { to, .. } => {
                    seen.push(to);
                    return seen;
                }
                Transition::Retry { .. } => panic!("Done never retries"),
            }
        }
    }

    #[test]
    fn install_runs_the_spec_states_in_order() {
        let names: Vec<&str> = walk(JobKind::Install).iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "queued",
                "validate_request",
                "validate_manifest",
                "validate_placement",
                "validate_gpu",
                "allocate_ctid",
                "create_container",
                "configure_container",
                "attach_gpu",
                "start_container",
                "wait_for_network",
                "push_assets",
                "provision",
                "healthcheck",
                "collect_outputs",
                "completed"
            ]
        );
    }

    #[test]
    fn every_kind_ends_completed_when_all_steps_succeed() {
        for kind in [
            JobKind::Install,
            JobKind::Uninstall,
            JobKind::Upgrade,
            JobKind::Reconfigure,
            JobKind::Control,
            JobKind::Backup,
            JobKind::Restore,
            JobKind::GpuSync,
        ] {
            assert_eq!(walk(kind).last(), Some(&S::Completed), "{kind:?}");
        }
    }

    #[test]
    fn not_yet_backs_off_then_gives_up() {
        let p = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
        };
        let wait = StepOutcome::NotYet {
            reason: "no address yet".into(),
        };
        assert_eq!(
            next(JobKind::Install, S::WaitForNetwork, &wait, 0, &p),
            Transition::Retry {
                after: Duration::from_millis(100),
                attempt: 1
            }
        );
        assert_eq!(
            next(JobKind::Install, S::WaitForNetwork, &wait, 1, &p),
            Transition::Retry {
                after: Duration::from_millis(200),
                attempt: 2
            }
        );
        assert_eq!(
            next(JobKind::Install, S::WaitForNetwork, &wait, 2, &p),
            Transition::Retry {
                after: Duration::from_millis(300),
                attempt: 3
            }
        );
        assert_eq!(
            next(JobKind::Install, S::WaitForNetwork, &wait, 3, &p),
            Transition::End {
                to: S::Failed,
                reason: Some("no address yet (gave up after 3 attempts)".into())
            }
        );
    }

    #[test]
    fn failures_end_the_job_and_upgrades_roll_back_after_the_snapshot() {
        let fail = StepOutcome::Failed {
            reason: "exit code 3".into(),
        };
        let p = RetryPolicy::default();
        assert_eq!(
            next(JobKind::Install, S::Provision, &fail, 0, &p),
            Transition::End {
                to: S::Failed,
                reason: Some("exit code 3".into())
            }
        );
        assert_eq!(
            next(JobKind::Upgrade, S::ValidateManifest, &fail, 0, &p),
            Transition::End {
                to: S::Failed,
                reason: Some("exit code 3".into())
            }
        );
        assert_eq!(
            next(JobKind::Upgrade, S::RunUpgrade, &fail, 0, &p),
            Transition::End {
                to: S::Rollback,
                reason: Some("exit code 3".into())
            }
        );
        assert_eq!(
            next(JobKind::Upgrade, S::Healthcheck, &fail, 0, &p),
            Transition::End {
                to: S::Rollback,
                reason: Some("exit code 3".into())
            }
        );
        assert!(matches!(
            next(JobKind::Upgrade, S::Rollback, &StepOutcome::Done, 0, &p),
            Transition::End { to: S::Failed, .. }
        ));
        assert_eq!(
            next(
                JobKind::Install,
                S::Provision,
                &StepOutcome::Canceled,
                0,
                &p
            ),
            Transition::End {
                to: S::Canceled,
                reason: Some("canceled by the user".into())
            }
        );
    }

    #[test]
    fn a_restart_reruns_idempotent_steps_and_fails_unsafe_scripts() {
        assert_eq!(
            resume(S::CreateContainer, false),
            Resume::Rerun(S::CreateContainer)
        );
        assert_eq!(resume(S::Provision, true), Resume::Rerun(S::Provision));
        assert!(matches!(resume(S::Provision, false), Resume::Fail(r) if r.contains("retry_safe")));
        assert_eq!(resume(S::Completed, false), Resume::Settled);
    }

    #[test]
    fn state_names_round_trip() {
        for kind in [
            JobKind::Install,
            JobKind::Uninstall,
            JobKind::Upgrade,
            JobKind::Reconfigure,
            JobKind::Control,
            JobKind::Backup,
            JobKind::Restore,
            JobKind::GpuSync,
        ] {
            for s in steps(kind)
                .iter()
                .chain(&[S::Completed, S::Failed, S::Canceled, S::Rollback])
            {
                assert_eq!(JobState::parse(s.as_str()), Some(*s));
                assert_eq!(
                    serde_json::to_value(s).ok(),
                    Some(serde_json::Value::from(s.as_str()))
                );
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod kind_names {
    use super::*;

    #[test]
    fn kind_names_are_the_serde_names() {
        for k in [
            JobKind::Install,
            JobKind::Uninstall,
            JobKind::Upgrade,
            JobKind::Reconfigure,
            JobKind::Control,
            JobKind::Backup,
            JobKind::Restore,
            JobKind::GpuSync,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(JobKind::parse("destroy"), None);
    }
}
