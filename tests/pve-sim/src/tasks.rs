//! Asynchronous tasks as PVE runs them: a UPID for each, `running` then `stopped` with an exit status
//! (`OK` or the error text), and a numbered log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// One task.
#[derive(Debug, Clone)]
pub struct Task {
    /// Its UPID.
    pub upid: String,
    /// Type (`vzcreate`, `vzstart`, ...).
    pub kind: String,
    /// Object id (the vmid, or the template name).
    pub id: String,
    /// Who started it.
    pub user: String,
    /// Start time, seconds.
    pub starttime: u64,
    /// PID field of the UPID.
    pub pid: u32,
    /// `None` while running; then `OK` or the error.
    pub exitstatus: Option<String>,
    /// Log lines.
    pub log: Vec<String>,
}

/// The node's task list.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    inner: Arc<Mutex<HashMap<String, Task>>>,
    counter: Arc<Mutex<u32>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Tasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Task>> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Registers a running task and returns its UPID:
    /// `UPID:node:PID:PSTART:STARTTIME:type:id:user:` (hex fields of 8 digits).
    pub fn start(&self, node: &str, kind: &str, id: &str, user: &str) -> String {
        let n = {
            let mut c = match self.counter.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            *c += 1;
            *c
        };
        let pid = std::process::id().wrapping_mul(16).wrapping_add(n) & 0x3fffff;
        let starttime = now();
        let pstart = (starttime as u32).wrapping_sub(1_000_000) / 10 + n;
        let upid =
            format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{user}:");
        self.lock().insert(
            upid.clone(),
            Task {
                upid: upid.clone(),
                kind: kind.into(),
                id: id.into(),
                user: user.into(),
                starttime,
                pid,
                exitstatus: None,
                log: Vec::new(),
            },
        );
        upid
    }

    /// Appends a log line.
    pub fn log(&self, upid: &str, line: impl Into<String>) {
        if let Some(t) = self.lock().get_mut(upid) {
            t.log.push(line.into());
        }
    }

    /// Ends a task: `Ok` -> `OK`; an error adds `TASK ERROR: ...` to the log and becomes the exit status.
    pub fn finish(&self, upid: &str, result: Result<(), String>) {
        if let Some(t) = self.lock().get_mut(upid) {
            match result {
                Ok(()) => {
                    t.log.push("TASK OK".into());
                    t.exitstatus = Some("OK".into());
                }
                Err(e) => {
                    t.log.push(format!("TASK ERROR: {e}"));
                    t.exitstatus = Some(e);
                }
            }
        }
    }

    /// A copy of the task.
    pub fn get(&self, upid: &str) -> Option<Task> {
        self.lock().get(upid).cloned()
    }
}
