//! The audit log: one JSON line per action (who, what, which container, the outcome), appended to a
//! root-only file. Environment values never go in, only their names.

use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// Appends one line; a failure to audit is reported on stderr and does not hide the action's result.
pub fn record(log: &Path, peer: &str, action: &str, ctid: u32, outcome: &str, detail: Value) {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let line = json!({"time": time, "peer": peer, "action": action, "ctid": ctid, "outcome": outcome, "detail": detail});
    let result = (|| -> std::io::Result<()> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(log)?;
        writeln!(f, "{line}")
    })();
    if let Err(e) = result {
        eprintln!(
            "pve-appstore-helper: cannot write the audit log {}: {e}",
            log.display()
        );
    }
}
