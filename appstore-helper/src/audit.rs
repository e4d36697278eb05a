//! The audit log: one JSON line per action (who, what, which container, the outcome), appended to a
//! file in a directory only the helper's user may write (`/var/log/pve-appstore-helper/`, root 0700).
//! The file is opened without following links and checked on its descriptor before anything is
//! written; every caller string is JSON-escaped and cut to a bounded length, so a caller can neither
//! redirect root's writes nor forge lines, and every line stays under 8 KiB. Environment values never
//! go in, only their names. Past 16 MiB the file is rotated (five generations are kept).

use appstore_core::Ctid;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// Size at which the log is rotated.
pub const ROTATE_BYTES: u64 = 16 << 20;
/// Rotated generations kept (`audit.log.1` .. `audit.log.5`).
pub const GENERATIONS: u32 = 5;

/// Longest caller string kept in a line.
const MAX_STRING: usize = 512;
/// Most entries of a caller's list kept in a line.
const MAX_ITEMS: usize = 32;
/// Longest line.
const MAX_LINE: usize = 8 << 10;

/// Cuts every string in `value` to [`MAX_STRING`] characters.
fn bounded(value: Value) -> Value {
    match value {
        Value::String(s) if s.chars().count() > MAX_STRING => Value::String(format!(
            "{}…",
            s.chars().take(MAX_STRING).collect::<String>()
        )),
        Value::Array(a) => {
            let more = a.len().saturating_sub(MAX_ITEMS);
            let mut kept: Vec<Value> = a.into_iter().take(MAX_ITEMS).map(bounded).collect();
            if more > 0 {
                kept.push(Value::String(format!("… {more} more")));
            }
            Value::Array(kept)
        }
        Value::Object(o) => Value::Object(
            o.into_iter()
                .take(MAX_ITEMS)
                .map(|(k, v)| (k, bounded(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Appends one line; a failure to audit is reported on stderr (the journal) and does not hide the
/// action's result.
pub fn record(
    log: &Path,
    peer: &str,
    action: &str,
    ctid: Option<Ctid>,
    outcome: &str,
    detail: Value,
) {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let line = bounded(
        json!({"time": time, "peer": peer, "action": action, "ctid": ctid, "outcome": outcome, "detail": detail}),
    );
    let mut text = line.to_string();
    if text.len() > MAX_LINE {
        // Still one JSON line: the detail gives way.
        text = json!({"time": time, "peer": bounded(json!(peer)), "action": action, "ctid": ctid, "outcome": outcome, "detail": "(cut: the line was over 8 KiB)"}).to_string();
    }
    if let Err(e) = append(log, &text) {
        eprintln!(
            "pve-appstore-helper: cannot write the audit log {}: {e}",
            log.display()
        );
    }
}

fn append(log: &Path, line: &str) -> Result<(), Box<dyn std::error::Error>> {
    let me = rustix::process::geteuid().as_raw();
    let (Some(dir), Some(name)) = (log.parent(), log.file_name().and_then(|n| n.to_str())) else {
        return Err("the audit log needs a directory and a file name".into());
    };
    let dir_fd = crate::safe_fs::private_dir(dir, me, "the audit log's directory")?;
    let (mut file, size) = crate::safe_fs::append_file(&dir_fd, name, me, "the audit log")?;
    if size >= ROTATE_BYTES {
        drop(file);
        for g in (1..GENERATIONS).rev() {
            let _ = rustix::fs::renameat(
                &dir_fd,
                format!("{name}.{g}").as_str(),
                &dir_fd,
                format!("{name}.{}", g + 1).as_str(),
            );
        }
        rustix::fs::renameat(&dir_fd, name, &dir_fd, format!("{name}.1").as_str())?;
        file = crate::safe_fs::append_file(&dir_fd, name, me, "the audit log")?.0;
    }
    // One write of the whole line: appends from concurrent helpers do not interleave.
    file.write_all(format!("{line}\n").as_bytes())?;
    Ok(())
}
