//! The privileged helper as the engine sees it: a trait, so tests and the demo can run the helper's
//! code in-process while the service talks to the real root helper over its socket.

use appstore_helper::{Helper, Reply, Request};
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where a script's output lines go: `(stream, line)`.
pub type OutputSink = Box<dyn FnMut(&str, &str) + Send + 'static>;

/// Sends one request to the helper; output lines of a script go to `on_output(stream, line)`.
#[async_trait]
pub trait HostHelper: Send + Sync + std::fmt::Debug {
    /// Runs one request.
    async fn call(&self, req: Request, on_output: OutputSink) -> Result<Reply, String>;
}

/// The helper's code run in this process (for the simulator: the demo and tests). It still checks
/// everything the root helper checks.
#[derive(Debug, Clone)]
pub struct InProcessHelper {
    helper: Arc<Helper>,
}

impl InProcessHelper {
    /// Wraps a helper.
    pub fn new(helper: Helper) -> Self {
        InProcessHelper {
            helper: Arc::new(helper),
        }
    }
}

#[async_trait]
impl HostHelper for InProcessHelper {
    async fn call(&self, req: Request, mut on_output: OutputSink) -> Result<Reply, String> {
        let helper = Arc::clone(&self.helper);
        tokio::task::spawn_blocking(move || {
            let last = Mutex::new(None);
            helper.handle(&req, &mut |reply| match reply {
                Reply::Output { stream, line } => on_output(stream, line),
                done => {
                    if let Ok(mut l) = last.lock() {
                        *l = Some(done.clone());
                    }
                }
            });
            last.into_inner()
                .ok()
                .flatten()
                .ok_or_else(|| "the helper gave no answer".to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// The root helper over its Unix socket (systemd socket activation).
#[derive(Debug, Clone)]
pub struct SocketHelper {
    /// `/run/pve-appstore/helper.sock`.
    pub socket: PathBuf,
}

#[async_trait]
impl HostHelper for SocketHelper {
    async fn call(&self, req: Request, mut on_output: OutputSink) -> Result<Reply, String> {
        let socket = self.socket.clone();
        tokio::task::spawn_blocking(move || {
            appstore_helper::client::call_socket(&socket, &req, &mut |s, l| on_output(s, l))
                .map_err(|e| {
                    let mut text = e.to_string();
                    if let Some(src) = std::error::Error::source(&e) {
                        text.push_str(&format!(": {src}"));
                    }
                    text
                })
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// The service log of `unit` in container `ctid`, read by the helper's fixed `journalctl` command:
/// the last `lines` entries (or those after `after`), each with `redactor`'s secrets masked, and
/// the cursor to go on from.
pub async fn read_journal(
    helper: &dyn HostHelper,
    ctid: appstore_core::Ctid,
    unit: &str,
    lines: u32,
    after: Option<String>,
    redactor: &appstore_core::redact::Redactor,
) -> Result<(Vec<String>, Option<String>), String> {
    let collected = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&collected);
    let reply = helper
        .call(
            Request::Journal {
                ctid,
                unit: unit.to_string(),
                lines,
                after_cursor: after,
            },
            Box::new(move |stream, line| {
                if stream == "stdout" {
                    if let Ok(mut v) = sink.lock() {
                        v.push(line.to_string());
                    }
                }
            }),
        )
        .await?;
    if let Reply::Failed { error, .. } = reply {
        return Err(error.message);
    }
    let lines = collected.lock().map(|v| v.clone()).unwrap_or_default();
    let (entries, cursor) = appstore_core::journal::split_cursor(lines);
    Ok((entries.iter().map(|l| redactor.redact(l)).collect(), cursor))
}
