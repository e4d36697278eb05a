//! The debug bundle: what a user attaches to a bug report. Job metadata (requests are stored with
//! secrets already masked), the config with credentials removed, the last service log lines and
//! the last lines of one job's log. Nothing sealed is ever read for it.

use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// Service log lines the bundle carries.
pub const LOG_LINES: usize = 200;

/// The last [`LOG_LINES`] lines the service logged, kept in memory for the bundle.
#[derive(Debug, Default)]
pub struct LogRing {
    lines: Mutex<VecDeque<String>>,
}

/// The process's ring (the tracing subscriber writes to it; the bundle reads it).
pub fn service_log() -> &'static LogRing {
    static RING: OnceLock<LogRing> = OnceLock::new();
    RING.get_or_init(LogRing::default)
}

impl LogRing {
    /// Adds one formatted log record (it may end with a newline).
    pub fn push(&self, text: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if lines.len() == LOG_LINES {
                lines.pop_front();
            }
            lines.push_back(scrub_urls(line));
        }
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect()
    }
}

/// A `tracing_subscriber` writer into the service ring.
#[derive(Debug, Clone, Copy, Default)]
pub struct RingWriter;

impl Write for RingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        service_log().push(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `scheme://user:password@host` becomes `scheme://***@host` (a catalog URL may carry a token).
pub fn scrub_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str(appstore_core::redact::MASK);
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// The config as a JSON tree with credentials removed: URL user information, and the value of
/// any key that names a password, secret or token (paths to such files, `*_file`, are kept: they
/// say where a secret lives, not what it is; `token_id` names the token, it is not one).
pub fn redact_config(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = k.to_ascii_lowercase();
                let sensitive = ["password", "secret", "token", "key"]
                    .iter()
                    .any(|w| key.contains(w))
                    && !key.ends_with("_file")
                    && key != "token_id";
                let v = if sensitive && !v.is_null() {
                    json!(appstore_core::redact::MASK)
                } else {
                    redact_config(v)
                };
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(redact_config).collect()),
        Value::String(s) => Value::String(scrub_urls(s)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn url_credentials_are_masked_and_the_rest_kept() {
        assert_eq!(
            scrub_urls("cloning https://bot:ghp_abc@git.example.org/c.git and http://plain/x"),
            "cloning https://***@git.example.org/c.git and http://plain/x"
        );
        assert_eq!(scrub_urls("no url here"), "no url here");
    }

    #[test]
    fn config_secrets_are_masked_but_file_paths_and_token_id_stay() {
        let raw = json!({
            "proxmox": {"token_id": "appstore@pve!store", "token_secret_file": "/etc/pve-appstore/token", "api_key": "k"},
            "catalog": {"url": "https://u:p@example.org/cat.git"},
            "web": {"auth": {"mode": "password"}, "tls": {"cert_file": "/c.pem", "key_file": "/k.pem"}},
            "extra": [{"password": "hunter2"}]
        });
        let red = redact_config(&raw);
        assert_eq!(red["proxmox"]["token_id"], "appstore@pve!store");
        assert_eq!(
            red["proxmox"]["token_secret_file"],
            "/etc/pve-appstore/token"
        );
        assert_eq!(red["proxmox"]["api_key"], "***");
        assert_eq!(red["catalog"]["url"], "https://***@example.org/cat.git");
        assert_eq!(red["web"]["tls"]["key_file"], "/k.pem");
        assert_eq!(red["extra"][0]["password"], "***");
        assert!(!red.to_string().contains("hunter2"));
    }

    #[test]
    fn the_ring_keeps_the_last_lines() {
        let ring = LogRing::default();
        for i in 0..(LOG_LINES + 5) {
            ring.push(&format!("line {i}\n"));
        }
        let lines = ring.lines();
        assert_eq!(lines.len(), LOG_LINES);
        assert_eq!(lines[0], "line 5");
    }
}
