//! A job's log: every line redacted, stored (within its caps) and published on the event channel.

use super::*;

/// Writes log lines of one job: redacted first, then stored, then published.
#[derive(Debug, Clone)]
pub struct JobLog {
    job_id: i64,
    store: Store,
    events: broadcast::Sender<JobEvent>,
    redactor: Arc<std::sync::RwLock<Redactor>>,
    /// What the job's log holds so far (read from the store on the first line, so a resumed job
    /// goes on counting); `None` until then.
    kept: Arc<std::sync::Mutex<Option<LogBudget>>>,
    /// (lines, bytes) a job keeps: [`MAX_LOG_LINES`], [`MAX_LOG_BYTES`].
    caps: (u64, u64),
}

/// Caps of one job's log: script output past them is dropped after one visible marker line (the
/// engine's own lines are always kept), and each line is cut at [`MAX_LOG_LINE`] bytes.
pub const MAX_LOG_LINES: u64 = 100_000;
/// Bytes of log text a job keeps.
pub const MAX_LOG_BYTES: u64 = 64 << 20;
/// The longest stored line.
pub const MAX_LOG_LINE: usize = 8 << 10;

#[derive(Debug, Clone, Copy)]
struct LogBudget {
    lines: u64,
    bytes: u64,
    truncated: bool,
}

impl JobLog {
    pub(super) fn new(engine: &Engine, job_id: i64) -> Self {
        JobLog {
            job_id,
            store: engine.store.clone(),
            events: engine.events.clone(),
            redactor: Arc::new(std::sync::RwLock::new(Redactor::default())),
            kept: Arc::new(std::sync::Mutex::new(None)),
            caps: (MAX_LOG_LINES, MAX_LOG_BYTES),
        }
    }

    /// Whether `text` on `stream` may be stored; the marker line to store first, if the caps were
    /// just reached.
    pub(super) fn admit(&self, stream: &str, text: &str) -> (bool, Option<String>) {
        let Ok(mut kept) = self.kept.lock() else {
            return (true, None);
        };
        let budget = kept.get_or_insert_with(|| {
            let (lines, bytes) = self.store.log_size(self.job_id).unwrap_or((0, 0));
            LogBudget {
                lines,
                bytes,
                truncated: false,
            }
        });
        if stream == "engine" {
            budget.lines += 1;
            budget.bytes += text.len() as u64;
            return (true, None);
        }
        if budget.truncated {
            return (false, None);
        }
        let (max_lines, max_bytes) = self.caps;
        if budget.lines + 1 > max_lines || budget.bytes + text.len() as u64 > max_bytes {
            budget.truncated = true;
            return (
                false,
                Some(format!(
                    "[log truncated: this job's log reached its cap ({max_lines} lines or {} KiB); later output of the scripts is not kept]",
                    max_bytes >> 10
                )),
            );
        }
        budget.lines += 1;
        budget.bytes += text.len() as u64;
        (true, None)
    }

    /// From now on, these secrets and keys are masked.
    pub fn set_redactor(&self, r: Redactor) {
        if let Ok(mut g) = self.redactor.write() {
            *g = r;
        }
    }

    pub(super) fn redact(&self, line: &str) -> String {
        match self.redactor.read() {
            Ok(r) => r.redact(line),
            Err(_) => "*** (redaction unavailable)".into(),
        }
    }

    /// Stores and publishes one line (blocking; used from output callbacks on helper threads).
    pub fn line_blocking(&self, stream: &str, line: &str) {
        let mut text = self.redact(line);
        if text.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str(" … [line cut at 8 KiB]");
        }
        let (keep, marker) = self.admit(stream, &text);
        if let Some(m) = marker {
            self.store_line("engine", &m);
        }
        if keep {
            self.store_line(stream, &text);
        }
    }

    pub(super) fn store_line(&self, stream: &str, text: &str) {
        match self.store.append_log(self.job_id, stream, text) {
            Ok(record) => {
                let _ = self.events.send(JobEvent::Log {
                    job_id: self.job_id,
                    seq: record.seq,
                    at_ms: record.at_ms,
                    stream: record.stream,
                    line: record.line,
                });
            }
            Err(e) => tracing::error!(job = self.job_id, error = %e, "cannot store a log line"),
        }
    }

    /// Stores and publishes one line.
    pub async fn line(&self, stream: &str, line: &str) {
        let me = self.clone();
        let stream = stream.to_string();
        let line = line.to_string();
        let _ = tokio::task::spawn_blocking(move || me.line_blocking(&stream, &line)).await;
    }

    /// An engine message.
    pub async fn info(&self, line: &str) {
        self.line("engine", line).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    pub(super) fn a_job_log_is_capped_with_a_visible_marker_and_cut_lines() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let job = store
            .create_job(&crate::store::NewJob {
                kind: appstore_core::job::JobKind::Install,
                app_id: "x".into(),
                install_id: None,
                ctid: None,
                node: "pve1".into(),
                pool: "appstore".into(),
                user_action: "{}".into(),
                manifest_version: "1.0.0".into(),
                manifest_sha256: String::new(),
                commit_id: None,
                request: "{}".into(),
            })
            .unwrap()
            .id;
        let log = JobLog {
            job_id: job,
            store: store.clone(),
            events: broadcast::channel(16).0,
            redactor: Default::default(),
            kept: Default::default(),
            caps: (10, 1 << 20),
        };
        log.line_blocking("stdout", &"x".repeat(MAX_LOG_LINE + 100));
        for i in 0..20 {
            log.line_blocking("stdout", &format!("line {i}"));
        }
        log.line_blocking("engine", "the engine's own line");
        let lines: Vec<String> = store
            .logs(job, 0, 100)
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect();
        assert!(lines[0].ends_with("… [line cut at 8 KiB]") && lines[0].len() < MAX_LOG_LINE + 40);
        assert_eq!(lines.len(), 12, "{lines:?}");
        assert!(lines[10].starts_with("[log truncated"), "{lines:?}");
        assert_eq!(lines[11], "the engine's own line");
        // A resumed job goes on counting from what is stored.
        let again = JobLog {
            kept: Default::default(),
            ..log.clone()
        };
        again.line_blocking("stdout", "after a restart");
        assert_eq!(
            store.logs(job, 0, 100).unwrap().len(),
            13,
            "one more marker, no line"
        );
    }
}
