//! Update notices: when the catalog offers an installed app a newer version it can upgrade to, an
//! `update` event goes out on `/api/events` once per install and version (the installs API carries
//! the same offer, with its changelog, in `upgrade`).

use appstore_actors::store::InstallRecord;
use appstore_catalog::CatalogSnapshot;
use appstore_core::manifest::ChangelogEntry;
use appstore_core::upgrade::{check, UpgradeCheck};
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// A newer version the catalog offers an install.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpdateNotice {
    /// The install.
    pub install_id: i64,
    /// Its app.
    pub app_id: String,
    /// Installed version.
    pub from: String,
    /// Offered version.
    pub to: String,
    /// What changed on the way, newest first.
    pub changes: Vec<ChangelogEntry>,
}

/// Every upgrade `snapshot` offers `installs` (installed ones only).
pub fn offers(installs: &[InstallRecord], snapshot: &CatalogSnapshot) -> Vec<UpdateNotice> {
    installs
        .iter()
        .filter(|i| i.status == "installed")
        .filter_map(|i| {
            let app = snapshot.app(&i.app_id)?;
            match check(&i.version, &app.manifest) {
                UpgradeCheck::Available { from, to, changes } => Some(UpdateNotice {
                    install_id: i.id,
                    app_id: i.app_id.clone(),
                    from,
                    to,
                    changes,
                }),
                _ => None,
            }
        })
        .collect()
}

/// Remembers which offers were announced, so each goes out once.
#[derive(Debug, Default)]
pub struct Announced(BTreeSet<(i64, String)>);

impl Announced {
    /// The offers not announced before (and forgets those no longer offered, so a version that
    /// comes back is announced again).
    pub fn news(&mut self, offers: Vec<UpdateNotice>) -> Vec<UpdateNotice> {
        let now: BTreeSet<(i64, String)> = offers
            .iter()
            .map(|o| (o.install_id, o.to.clone()))
            .collect();
        let new = offers
            .into_iter()
            .filter(|o| !self.0.contains(&(o.install_id, o.to.clone())))
            .collect();
        self.0 = now;
        new
    }
}

/// Watches the catalog (every `every`, a new snapshot only) and the installs, and sends each new
/// offer on `out`. Offers present at start are announced too: a client that connects later still
/// sees them in the installs API.
pub fn watch(
    catalog: appstore_actors::CatalogService,
    store: appstore_actors::store::Store,
    out: broadcast::Sender<UpdateNotice>,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut announced = Announced::default();
        let mut seen: Option<(Arc<CatalogSnapshot>, Vec<i64>)> = None;
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let Some(snapshot) = catalog.snapshot() else {
                continue;
            };
            let store2 = store.clone();
            let Ok(Ok((installs, policies))) = tokio::task::spawn_blocking(move || {
                Ok::<_, appstore_actors::store::StoreError>((
                    store2.installs()?,
                    store2.update_policies()?,
                ))
            })
            .await
            else {
                continue;
            };
            // An install whose update policy is `off` gets no notices.
            let installs: Vec<InstallRecord> = installs
                .into_iter()
                .filter(|i| {
                    crate::schedules::policy_of(policies.iter().find(|p| p.install_id == i.id))
                        .notifies()
                })
                .collect();
            // Nothing to do unless the catalog or the set of notified installs changed.
            let key = (
                Arc::clone(&snapshot),
                installs.iter().map(|i| i.id).collect::<Vec<_>>(),
            );
            if seen
                .as_ref()
                .is_some_and(|(s, n)| Arc::ptr_eq(s, &key.0) && *n == key.1)
            {
                continue;
            }
            seen = Some(key);
            for notice in announced.news(offers(&installs, &snapshot)) {
                tracing::info!(install = notice.install_id, app = %notice.app_id, from = %notice.from, to = %notice.to, "update available");
                let _ = out.send(notice);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(id: i64, to: &str) -> UpdateNotice {
        UpdateNotice {
            install_id: id,
            app_id: "a".into(),
            from: "1.0.0".into(),
            to: to.into(),
            changes: Vec::new(),
        }
    }

    #[test]
    fn each_offer_is_announced_once_and_again_after_it_went_away() {
        let mut a = Announced::default();
        assert_eq!(a.news(vec![notice(1, "1.1.0")]).len(), 1);
        assert!(a.news(vec![notice(1, "1.1.0")]).is_empty());
        // A newer release is news; the install upgraded (no offer), then offered again: news.
        assert_eq!(a.news(vec![notice(1, "1.2.0")]), vec![notice(1, "1.2.0")]);
        assert!(a.news(vec![]).is_empty());
        assert_eq!(a.news(vec![notice(1, "1.2.0")]).len(), 1);
    }
}
