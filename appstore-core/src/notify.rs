//! Notifications: webhook targets (ntfy, Gotify, or a generic JSON POST) told about updates
//! (available, done, failed, rolled back), failed backups and GPU drift. This module holds the
//! targets, the events and the HTTP request each target gets; sending is the service's.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What kind of service a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    /// ntfy: `url` is the topic's URL (`https://ntfy.sh/my-topic`); an access token is optional.
    Ntfy,
    /// Gotify: `url` is the server (`https://gotify.example.org`); the token is an app token.
    Gotify,
    /// Any URL that takes a JSON POST.
    Webhook,
}

/// What a notification is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// The catalog offers an install a newer version.
    UpdateAvailable,
    /// An upgrade completed.
    UpdateDone,
    /// An upgrade failed (before its snapshot, or its rollback failed too).
    UpdateFailed,
    /// An upgrade failed and was rolled back to its snapshot.
    UpdateRolledBack,
    /// A backup failed.
    BackupFailed,
    /// An app's GPU no longer matches the host (driver changed, card gone).
    GpuDrift,
    /// The test button.
    Test,
}

impl NotifyEvent {
    /// Every event a target can choose (the test always goes out).
    pub const ALL: [NotifyEvent; 6] = [
        NotifyEvent::UpdateAvailable,
        NotifyEvent::UpdateDone,
        NotifyEvent::UpdateFailed,
        NotifyEvent::UpdateRolledBack,
        NotifyEvent::BackupFailed,
        NotifyEvent::GpuDrift,
    ];

    /// The event's name (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::UpdateAvailable => "update_available",
            NotifyEvent::UpdateDone => "update_done",
            NotifyEvent::UpdateFailed => "update_failed",
            NotifyEvent::UpdateRolledBack => "update_rolled_back",
            NotifyEvent::BackupFailed => "backup_failed",
            NotifyEvent::GpuDrift => "gpu_drift",
            NotifyEvent::Test => "test",
        }
    }

    fn is_problem(self) -> bool {
        matches!(
            self,
            NotifyEvent::UpdateFailed
                | NotifyEvent::UpdateRolledBack
                | NotifyEvent::BackupFailed
                | NotifyEvent::GpuDrift
        )
    }
}

/// One target as `config.yml` or the UI gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// A name to tell targets apart.
    pub name: String,
    /// ntfy, gotify or webhook.
    pub kind: NotifyKind,
    /// ntfy: the topic's URL; Gotify: the server's URL; webhook: the URL to POST to.
    pub url: String,
    /// The events it gets; all of them when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<NotifyEvent>>,
    /// A file holding the target's token (ntfy access token, Gotify app token, or a bearer token
    /// for a webhook); in `config.yml` only: the UI keeps its targets' tokens sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
}

impl NotifyTarget {
    /// Does it get `event`?
    pub fn wants(&self, event: NotifyEvent) -> bool {
        event == NotifyEvent::Test
            || self
                .events
                .as_ref()
                .is_none_or(|list| list.contains(&event))
    }

    /// Every problem with the target, by field.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.name.trim().is_empty() {
            out.push(("name".into(), "give the target a name".into()));
        }
        let url = self.url.trim();
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or("");
        if !scheme_ok || host.is_empty() || url.contains(char::is_whitespace) {
            out.push((
                "url".into(),
                format!("`{url}` is not an http(s) URL, such as https://ntfy.sh/my-topic"),
            ));
        }
        if self
            .token_file
            .as_ref()
            .is_some_and(|f| !f.starts_with('/'))
        {
            out.push((
                "token_file".into(),
                "give the absolute path of the file that holds the token".into(),
            ));
        }
        if self.events.as_ref().is_some_and(Vec::is_empty) {
            out.push((
                "events".into(),
                "choose at least one event, or leave the list out for all".into(),
            ));
        }
        out
    }
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// What it is about.
    pub event: NotifyEvent,
    /// One line.
    pub title: String,
    /// More.
    pub message: String,
    /// The install, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_id: Option<i64>,
    /// Its app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The job, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
}

/// The HTTP request a target gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPost {
    /// Where.
    pub url: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// The request `target` gets for `n`; `token` is its secret, if it has one.
pub fn request(target: &NotifyTarget, token: Option<&str>, n: &Notification) -> HttpPost {
    let url = target.url.trim().trim_end_matches('/').to_string();
    match target.kind {
        NotifyKind::Ntfy => {
            let mut headers = vec![
                ("Title".to_string(), n.title.clone()),
                (
                    "Tags".to_string(),
                    if n.event.is_problem() {
                        "warning"
                    } else {
                        "package"
                    }
                    .to_string(),
                ),
                (
                    "Priority".to_string(),
                    if n.event.is_problem() { "4" } else { "3" }.to_string(),
                ),
            ];
            if let Some(t) = token {
                headers.push(("Authorization".to_string(), format!("Bearer {t}")));
            }
            HttpPost {
                url,
                headers,
                body: n.message.clone(),
            }
        }
        NotifyKind::Gotify => {
            let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
            if let Some(t) = token {
                headers.push(("X-Gotify-Key".to_string(), t.to_string()));
            }
            HttpPost {
                url: format!("{url}/message"),
                headers,
                body: serde_json::json!({
                    "title": n.title,
                    "message": n.message,
                    "priority": if n.event.is_problem() { 8 } else { 4 },
                })
                .to_string(),
            }
        }
        NotifyKind::Webhook => {
            let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
            if let Some(t) = token {
                headers.push(("Authorization".to_string(), format!("Bearer {t}")));
            }
            HttpPost {
                url,
                headers,
                body: serde_json::to_string(n).unwrap_or_default(),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn n(event: NotifyEvent) -> Notification {
        Notification {
            event,
            title: "radicale 1.9.0 is available".into(),
            message: "Faster logins".into(),
            install_id: Some(1),
            app_id: Some("radicale".into()),
            job_id: None,
        }
    }

    fn target(kind: NotifyKind, url: &str) -> NotifyTarget {
        NotifyTarget {
            name: "t".into(),
            kind,
            url: url.into(),
            events: None,
            token_file: None,
        }
    }

    #[test]
    fn each_kind_gets_its_own_request() {
        let r = request(
            &target(NotifyKind::Ntfy, "https://ntfy.sh/lab/"),
            Some("tk"),
            &n(NotifyEvent::BackupFailed),
        );
        assert_eq!(r.url, "https://ntfy.sh/lab");
        assert!(r.headers.contains(&("Priority".into(), "4".into())));
        assert!(r
            .headers
            .contains(&("Authorization".into(), "Bearer tk".into())));
        assert_eq!(r.body, "Faster logins");
        let r = request(
            &target(NotifyKind::Gotify, "https://g.example.org"),
            Some("app"),
            &n(NotifyEvent::UpdateAvailable),
        );
        assert_eq!(r.url, "https://g.example.org/message");
        assert!(r.headers.contains(&("X-Gotify-Key".into(), "app".into())));
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["priority"], 4);
        let r = request(
            &target(NotifyKind::Webhook, "http://10.0.0.2:9000/hook"),
            None,
            &n(NotifyEvent::UpdateDone),
        );
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["event"], "update_done");
        assert_eq!(body["app_id"], "radicale");
    }

    #[test]
    fn targets_are_checked_by_field_and_filter_events() {
        let mut t = target(NotifyKind::Webhook, "ftp://x");
        t.name = " ".into();
        t.events = Some(vec![]);
        let fields: Vec<String> = t.check().into_iter().map(|(k, _)| k).collect();
        assert_eq!(fields, ["name", "url", "events"]);
        let mut t = target(NotifyKind::Ntfy, "https://ntfy.sh/x");
        assert!(t.check().is_empty());
        t.events = Some(vec![NotifyEvent::BackupFailed]);
        assert!(t.wants(NotifyEvent::BackupFailed) && t.wants(NotifyEvent::Test));
        assert!(!t.wants(NotifyEvent::UpdateAvailable));
    }
}
