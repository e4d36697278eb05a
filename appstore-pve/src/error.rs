//! Errors of PVE calls, each saying what PVE said and what to do about it.

use std::collections::BTreeMap;

/// A failed PVE call.
#[derive(Debug, thiserror::Error)]
pub enum PveError {
    /// 401: the token id or secret is wrong, or the token expired.
    #[error("PVE refused the API token (401); check proxmox.token_id and the token secret file")]
    Unauthorized,
    /// 403: a privilege is missing.
    #[error("{}", forbidden_text(.path, .privilege, .message))]
    Forbidden {
        /// PVE's message.
        message: String,
        /// ACL path, when PVE named one.
        path: Option<String>,
        /// Privilege, when PVE named one.
        privilege: Option<String>,
    },
    /// 400: parameters PVE rejected, each with PVE's message.
    #[error("PVE rejected the request (400): {}", params_text(.message, .params))]
    BadRequest {
        /// The summary line.
        message: String,
        /// Parameter -> PVE's message.
        params: BTreeMap<String, String>,
    },
    /// 501: the node has no such method on that path.
    #[error("PVE does not implement {method} {path} (501): wrong method or path — is this PVE version supported?")]
    NotImplemented {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
    },
    /// Any other failure status, with PVE's message.
    #[error("PVE failed ({status}): {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// PVE's message.
        message: String,
    },
    /// A task ended with an error.
    #[error("PVE task failed: {exitstatus}")]
    TaskFailed {
        /// The task.
        upid: String,
        /// PVE's exit status (the error text).
        exitstatus: String,
        /// The last lines of its log.
        log: Vec<String>,
    },
    /// A task did not finish in time.
    #[error("PVE task {upid} did not finish within {secs} s")]
    TaskTimeout {
        /// The task.
        upid: String,
        /// The deadline.
        secs: u64,
    },
    /// The node runs a release without the feature.
    #[error("{feature} needs PVE {needed} or newer; this node runs {found}")]
    Unsupported {
        /// What is missing.
        feature: &'static str,
        /// Release that has it.
        needed: &'static str,
        /// Release found.
        found: String,
    },
    /// The node could not be reached, or TLS failed.
    #[error("cannot reach the PVE API at {url}")]
    Transport {
        /// Base URL.
        url: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from PVE for {path}")]
    Decode {
        /// API path.
        path: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// The client could not be set up (TLS files, fingerprint).
    #[error("cannot set up the PVE client: {0}")]
    Setup(String),
}

impl PveError {
    /// A failure that passes by itself: the node could not be reached, or pveproxy answered that
    /// it cannot serve now (502, 503, 504, and its own 595/596 for a backend it could not reach).
    pub fn is_transient(&self) -> bool {
        match self {
            PveError::Transport { .. } => true,
            PveError::Server { status, .. } => matches!(status, 502 | 503 | 504 | 595 | 596),
            _ => false,
        }
    }
}

fn forbidden_text(path: &Option<String>, privilege: &Option<String>, message: &str) -> String {
    match (path, privilege) {
        (Some(p), Some(v)) => format!(
            "the API token lacks privilege {v} on {p} (403); grant it to the token, for example with `pveum acl modify {p} --tokens <token> --roles <role>`"
        ),
        _ => format!("PVE refused the request (403): {message}"),
    }
}

fn params_text(message: &str, params: &BTreeMap<String, String>) -> String {
    if params.is_empty() {
        return message.to_string();
    }
    params
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.trim_end()))
        .collect::<Vec<_>>()
        .join("; ")
}

impl PveError {
    /// Builds the error for a non-2xx answer.
    pub(crate) fn from_status(
        status: u16,
        method: &str,
        path: &str,
        message: String,
        params: BTreeMap<String, String>,
    ) -> Self {
        match status {
            401 => PveError::Unauthorized,
            403 => {
                // "Permission check failed (/vms/101, VM.Allocate)"
                let inner = message
                    .trim()
                    .strip_prefix("Permission check failed (")
                    .and_then(|r| r.strip_suffix(')'))
                    .map(str::to_string);
                let (path, privilege) = match inner.as_deref().and_then(|i| i.split_once(", ")) {
                    Some((p, v)) if p.starts_with('/') => {
                        (Some(p.to_string()), Some(v.to_string()))
                    }
                    _ => (None, None),
                };
                PveError::Forbidden {
                    message: message.trim().to_string(),
                    path,
                    privilege,
                }
            }
            400 => PveError::BadRequest {
                message: message.trim().to_string(),
                params,
            },
            501 => PveError::NotImplemented {
                method: method.to_string(),
                path: path.to_string(),
            },
            _ => PveError::Server {
                status,
                message: message.trim().to_string(),
            },
        }
    }
}
