//! The report of a `catalog test` run, and the runner that times each step and skips the rest of an
//! app's steps after a failure.

use serde::Serialize;
use std::time::Instant;

/// One step of one app.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// `install`, `url`, `app-log`, `upgrade`, `reconfigure`, `uninstall-keep-data`, `reinstall`, `data-kept`,
    /// `uninstall`, or `plan` for apps that are not run.
    pub step: String,
    /// `passed`, `failed` or `skipped`.
    pub result: String,
    /// Seconds it took.
    pub seconds: f64,
    /// What was seen (the URL's answer, the versions, why it was skipped, the error).
    pub detail: String,
    /// The job's last log lines, when it failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
}

/// One app's run.
#[derive(Debug, Clone, Serialize)]
pub struct AppReport {
    /// The app.
    pub app: String,
    /// Its catalog version.
    pub version: String,
    /// Its `sources`.
    pub sources: Vec<String>,
    /// `lifecycle` (run in containers) or `plan` (rendered only).
    pub mode: String,
    /// Every step, in order.
    pub steps: Vec<StepReport>,
    /// Seconds for the whole app.
    pub seconds: f64,
    /// True when no step failed.
    pub passed: bool,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// Per app.
    pub apps: Vec<AppReport>,
    /// Seconds for everything, the node's start included.
    pub seconds: f64,
    /// True when every app passed.
    pub passed: bool,
}

impl TestReport {
    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for app in &self.apps {
            out.push_str(&format!(
                "{} {} ({}; sources: {}) {} in {:.0} s\n",
                app.app,
                app.version,
                app.mode,
                if app.sources.is_empty() {
                    "not declared".to_string()
                } else {
                    app.sources.join(", ")
                },
                if app.passed { "PASSED" } else { "FAILED" },
                app.seconds
            ));
            for s in &app.steps {
                out.push_str(&format!(
                    "  {:<20} {:<7} {:>7.1} s  {}\n",
                    s.step, s.result, s.seconds, s.detail
                ));
                for l in &s.log_tail {
                    out.push_str(&format!("      | {l}\n"));
                }
            }
        }
        let failed = self.apps.iter().filter(|a| !a.passed).count();
        out.push_str(&format!(
            "{} apps, {} passed, {} failed, {:.0} s\n",
            self.apps.len(),
            self.apps.len() - failed,
            failed,
            self.seconds
        ));
        out
    }
}

/// Why a step failed.
pub(super) struct StepError {
    pub(super) message: String,
    pub(super) log_tail: Vec<String>,
}

pub(super) fn fail(e: impl std::fmt::Display) -> StepError {
    StepError {
        message: e.to_string(),
        log_tail: Vec::new(),
    }
}

pub(super) fn no_install() -> StepError {
    fail("no install to work on (an earlier step failed)")
}

/// How a step that did not fail ended: what was seen, or why it had nothing to do.
pub(super) enum Outcome {
    /// It ran and passed.
    Passed(String),
    /// Nothing to do for this app (no volumes, no reconfigurable inputs).
    Skipped(String),
}

impl From<String> for Outcome {
    fn from(detail: String) -> Outcome {
        Outcome::Passed(detail)
    }
}

pub(super) struct Runner<'a> {
    pub(super) steps: &'a mut Vec<StepReport>,
    pub(super) progress: &'a mut dyn FnMut(&str, &StepReport),
    pub(super) app: &'a str,
    pub(super) failed: bool,
}

impl Runner<'_> {
    pub(super) async fn step(
        &mut self,
        name: &str,
        work: impl std::future::Future<Output = Result<Outcome, StepError>>,
    ) {
        let t = Instant::now();
        let report = if self.failed {
            StepReport {
                step: name.into(),
                result: "skipped".into(),
                seconds: 0.0,
                detail: "an earlier step failed".into(),
                log_tail: Vec::new(),
            }
        } else {
            match work.await {
                Ok(outcome) => {
                    let (result, detail) = match outcome {
                        Outcome::Passed(d) => ("passed", d),
                        Outcome::Skipped(why) => ("skipped", why),
                    };
                    StepReport {
                        step: name.into(),
                        result: result.into(),
                        seconds: t.elapsed().as_secs_f64(),
                        detail,
                        log_tail: Vec::new(),
                    }
                }
                Err(e) => {
                    self.failed = true;
                    StepReport {
                        step: name.into(),
                        result: "failed".into(),
                        seconds: t.elapsed().as_secs_f64(),
                        detail: e.message,
                        log_tail: e.log_tail,
                    }
                }
            }
        };
        (self.progress)(self.app, &report);
        self.steps.push(report);
    }
}
