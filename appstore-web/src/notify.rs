//! Notifications sent: every target (from `config.yml`, and those added in the UI with their
//! tokens sealed) hears about the events it chose. Events come from the job engine (an upgrade
//! done, failed or rolled back; a failed backup), from the update notices and from GPU drift. A
//! target that does not answer is logged, never retried in a loop, and never holds up a job.

use appstore_actors::engine::JobEvent;
use appstore_actors::secrets::SecretBox;
use appstore_actors::store::Store;
use appstore_core::job::{JobKind, JobState};
use appstore_core::notify::{request, Notification, NotifyEvent, NotifyTarget};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// A target as the notifier uses it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its id, for targets added in the UI.
    pub id: Option<i64>,
    /// `config` or `ui`.
    pub source: &'static str,
    /// The target.
    pub target: NotifyTarget,
    token: Option<String>,
}

impl Target {
    /// Does it have a token?
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }
}

/// Sends notifications.
#[derive(Debug)]
pub struct Notifier {
    config_targets: Vec<NotifyTarget>,
    store: Store,
    secrets: SecretBox,
    client: reqwest::Client,
}

impl Notifier {
    /// A notifier for the config's targets and those in `store`.
    pub fn new(config_targets: Vec<NotifyTarget>, store: Store, secrets: SecretBox) -> Notifier {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("pve-appstore/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Notifier {
            config_targets,
            store,
            secrets,
            client,
        }
    }

    /// Every target: the config's first, then the UI's.
    pub async fn targets(&self) -> Vec<Target> {
        // The token files and the database are read off the async threads.
        let (config, store) = (self.config_targets.clone(), self.store.clone());
        let (mut out, stored) = tokio::task::spawn_blocking(move || {
            let from_config: Vec<Target> = config
                .into_iter()
                .map(|t| Target {
                    id: None,
                    source: "config",
                    token: t.token_file.as_ref().and_then(|f| {
                        std::fs::read_to_string(f)
                            .map(|s| s.trim().to_string())
                            .map_err(|e| tracing::warn!(target = %t.name, file = %f, error = %e, "notification token file unreadable"))
                            .ok()
                    }),
                    target: t,
                })
                .collect();
            (from_config, store.notify_targets().unwrap_or_default())
        })
        .await
        .unwrap_or_default();
        for s in stored {
            let Ok(target) = serde_json::from_str::<NotifyTarget>(&s.target) else {
                continue;
            };
            let token = s
                .token_sealed
                .as_deref()
                .and_then(|t| self.secrets.open_value(t).ok());
            out.push(Target {
                id: Some(s.id),
                source: "ui",
                target,
                token,
            });
        }
        out
    }

    /// Seals `token` for a target added in the UI.
    pub fn seal(&self, token: &str) -> String {
        self.secrets.seal(token)
    }

    /// Sends `n` to `t`.
    pub async fn send_to(&self, t: &Target, n: &Notification) -> Result<(), String> {
        let post = request(&t.target, t.token.as_deref(), n);
        let mut req = self.client.post(&post.url).body(post.body);
        for (k, v) in &post.headers {
            req = req.header(k, v);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{}: {}", t.target.name, without_url_secrets(&e.to_string())))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "{}: the target answered HTTP {}",
                t.target.name,
                resp.status().as_u16()
            ))
        }
    }

    /// Sends `n` to every target that wants it.
    pub async fn notify(&self, n: &Notification) {
        for t in self.targets().await {
            if !t.target.wants(n.event) {
                continue;
            }
            match self.send_to(&t, n).await {
                Ok(()) => {
                    tracing::info!(target = %t.target.name, event = n.event.as_str(), "notification sent")
                }
                Err(e) => {
                    tracing::warn!(event = n.event.as_str(), error = %e, "notification not delivered")
                }
            }
        }
    }

    /// Listens for events until the senders go away.
    pub fn run(
        self: Arc<Self>,
        mut jobs: broadcast::Receiver<JobEvent>,
        mut updates: broadcast::Receiver<crate::updates::UpdateNotice>,
        mut drift: broadcast::Receiver<Notification>,
    ) {
        let me = Arc::clone(&self);
        tokio::spawn(async move {
            loop {
                match jobs.recv().await {
                    Ok(JobEvent::State {
                        job_id,
                        state,
                        reason,
                    }) if state.is_terminal() => {
                        if let Some(n) = me.of_job(job_id, state, reason).await {
                            me.notify(&n).await;
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let me = Arc::clone(&self);
        tokio::spawn(async move {
            loop {
                match updates.recv().await {
                    Ok(u) => {
                        let changes: Vec<String> = u
                            .changes
                            .iter()
                            .flat_map(|c| c.changes.iter().map(|x| format!("- {x}")))
                            .collect();
                        let n = Notification {
                            event: NotifyEvent::UpdateAvailable,
                            title: format!("{} {} is available", u.app_id, u.to),
                            message: format!(
                                "{} {} can be upgraded to {}.{}",
                                u.app_id,
                                u.from,
                                u.to,
                                if changes.is_empty() {
                                    String::new()
                                } else {
                                    format!("\n{}", changes.join("\n"))
                                }
                            ),
                            install_id: Some(u.install_id),
                            app_id: Some(u.app_id.clone()),
                            job_id: None,
                        };
                        me.notify(&n).await;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        tokio::spawn(async move {
            loop {
                match drift.recv().await {
                    Ok(n) => self.notify(&n).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// The notification a finished job makes, if any: upgrades (done, failed, rolled back) and
    /// failed backups.
    async fn of_job(
        &self,
        job_id: i64,
        state: JobState,
        reason: Option<String>,
    ) -> Option<Notification> {
        let store = self.store.clone();
        let job = tokio::task::spawn_blocking(move || store.job(job_id))
            .await
            .ok()?
            .ok()??;
        let why = reason.unwrap_or_default();
        let (event, title) = match (job.kind, state) {
            (JobKind::Upgrade, JobState::Completed) => (
                NotifyEvent::UpdateDone,
                format!("{} upgraded to {}", job.app_id, job.manifest_version),
            ),
            (JobKind::Upgrade, JobState::Failed) if why.contains("rolled back to the snapshot") => {
                (
                    NotifyEvent::UpdateRolledBack,
                    format!(
                        "{} {}: the upgrade failed and was rolled back",
                        job.app_id, job.manifest_version
                    ),
                )
            }
            (JobKind::Upgrade, JobState::Failed) => (
                NotifyEvent::UpdateFailed,
                format!(
                    "{} {}: the upgrade failed",
                    job.app_id, job.manifest_version
                ),
            ),
            (JobKind::Backup, JobState::Failed) => (
                NotifyEvent::BackupFailed,
                format!("The backup of {} failed", job.app_id),
            ),
            _ => return None,
        };
        Some(Notification {
            event,
            title,
            message: if why.is_empty() {
                job.user_action.clone()
            } else {
                format!("{}: {why}", job.user_action)
            },
            install_id: job.install_id,
            app_id: Some(job.app_id),
            job_id: Some(job_id),
        })
    }
}

/// An error text without the query string of a URL in it (a token may be there).
fn without_url_secrets(text: &str) -> String {
    text.split_whitespace()
        .map(|w| match w.find('?') {
            Some(i) if w.contains("://") => format!("{}?…", &w[..i]),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_lose_the_query_of_urls() {
        assert_eq!(
            super::without_url_secrets(
                "error sending request for url (https://g.example.org/message?token=abc)"
            ),
            "error sending request for url (https://g.example.org/message?…"
        );
    }
}
