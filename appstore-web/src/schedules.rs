//! Scheduled work. Backups: every install whose backup settings name a schedule gets a `backup`
//! job when its slot comes (a slot missed while the service was down is made up within a day);
//! each slot is tried once, and a failed backup waits for the next slot. Automatic updates: an
//! install whose update policy is `automatic` gets the safe upgrade job (snapshot, script, health
//! check, rollback) to an offered version once that version is past the hold-off and the
//! maintenance window is open; each version is tried once.

use appstore_actors::engine::BackupRequest;
use appstore_actors::store::BackupPolicy;
use appstore_core::schedule::Schedule;
use jiff::tz::TimeZone;
use std::collections::BTreeMap;
use std::time::Duration;

/// The backups due at `now` (seconds): for each policy with a schedule whose install is installed,
/// unless that slot was tried already (`tried`: install -> slot) or a backup was made since.
pub fn due(
    policies: &[BackupPolicy],
    installed: &dyn Fn(i64) -> bool,
    last_backup: &dyn Fn(i64) -> Option<u64>,
    tried: &BTreeMap<i64, u64>,
    now: u64,
    tz: &TimeZone,
) -> Vec<(BackupRequest, u64)> {
    policies
        .iter()
        .filter(|p| installed(p.install_id))
        .filter_map(|p| {
            let schedule = Schedule::parse(&p.schedule).ok()?;
            let slot = schedule.last_slot(now, tz)?;
            let fresh = tried.get(&p.install_id) != Some(&slot);
            (fresh && schedule.due(last_backup(p.install_id), now, tz)).then(|| {
                (
                    BackupRequest {
                        install_id: p.install_id,
                        storage: p.storage.clone(),
                        mode: appstore_pve::types::BackupMode::parse(&p.mode),
                        keep_last: p.keep_last,
                    },
                    slot,
                )
            })
        })
        .collect()
}

/// Checks the schedules (read on the wall clock of `tz`) every `every` and queues the backups
/// that are due.
pub fn watch(jobs: appstore_actors::JobsService, every: Duration, tz: TimeZone) {
    tokio::spawn(async move {
        let mut tried: BTreeMap<i64, u64> = BTreeMap::new();
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let store = jobs.store.clone();
            let read = tokio::task::spawn_blocking(move || {
                let policies = store.backup_policies()?;
                let installs = store.installs()?;
                let mut last = BTreeMap::new();
                for p in &policies {
                    if let Some(t) = store.last_backup_at(p.install_id)? {
                        last.insert(p.install_id, (t / 1000) as u64);
                    }
                }
                Ok::<_, appstore_actors::store::StoreError>((policies, installs, last))
            })
            .await;
            let Ok(Ok((policies, installs, last))) = read else {
                continue;
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let installed = |id: i64| {
                installs
                    .iter()
                    .any(|i| i.id == id && i.status == "installed")
            };
            let last_backup = |id: i64| last.get(&id).copied();
            for (request, slot) in due(&policies, &installed, &last_backup, &tried, now, &tz) {
                let id = request.install_id;
                tried.insert(id, slot);
                match jobs.backup(request).await {
                    Ok(job) => tracing::info!(install = id, job, "scheduled backup queued"),
                    Err(e) => tracing::warn!(install = id, error = %e, "scheduled backup refused"),
                }
            }
        }
    });
}

/// An install's update policy: its own, or the default (notify).
pub fn policy_of(
    stored: Option<&appstore_actors::store::StoredUpdatePolicy>,
) -> appstore_core::update_policy::UpdatePolicy {
    use appstore_core::update_policy::{UpdateMode, UpdatePolicy};
    let Some(p) = stored else {
        return UpdatePolicy::default();
    };
    let default = UpdatePolicy::default();
    UpdatePolicy {
        mode: match p.mode.as_str() {
            "off" => UpdateMode::Off,
            "automatic" => UpdateMode::Automatic,
            _ => UpdateMode::Notify,
        },
        window: appstore_core::schedule::Window::parse(&p.window).unwrap_or(default.window),
        hold_off_days: p.hold_off_days,
    }
}

/// Checks the offers every `every` and queues the automatic upgrades that are due (windows read on
/// the wall clock of `tz`).
pub fn watch_updates(
    catalog: appstore_actors::CatalogService,
    jobs: appstore_actors::JobsService,
    every: Duration,
    tz: TimeZone,
) {
    use appstore_core::update_policy::{date_epoch, AutoUpgrade};
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let Some(snapshot) = catalog.snapshot() else {
                continue;
            };
            let store = jobs.store.clone();
            let snap = std::sync::Arc::clone(&snapshot);
            let read = tokio::task::spawn_blocking(move || {
                let installs = store.installs()?;
                let policies = store.update_policies()?;
                let mut due = Vec::new();
                for offer in crate::updates::offers(&installs, &snap) {
                    let seen = store.see_offer(offer.install_id, &offer.to)?;
                    let policy =
                        policy_of(policies.iter().find(|p| p.install_id == offer.install_id));
                    if seen.attempted_job.is_some() {
                        continue;
                    }
                    // The version's age: its changelog date, else when the store first saw it.
                    let released = offer
                        .changes
                        .iter()
                        .find(|c| c.version.to_string() == offer.to)
                        .and_then(|c| c.date.as_deref().and_then(date_epoch))
                        .unwrap_or((seen.first_seen_at / 1000) as u64);
                    due.push((offer, policy, released));
                }
                Ok::<_, appstore_actors::store::StoreError>(due)
            })
            .await;
            let Ok(Ok(due)) = read else {
                continue;
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            for (offer, policy, released) in due {
                match policy.decide(&offer.to, released, now, &tz) {
                    AutoUpgrade::Now => {
                        let request = appstore_actors::engine::MaintainRequest {
                            install_id: offer.install_id,
                            ..Default::default()
                        };
                        match jobs
                            .maintain(appstore_core::job::JobKind::Upgrade, request)
                            .await
                        {
                            Ok(job) => {
                                tracing::info!(install = offer.install_id, to = %offer.to, job, "automatic upgrade queued");
                                let (store, v) = (jobs.store.clone(), offer.to.clone());
                                let _ = tokio::task::spawn_blocking(move || {
                                    store.offer_attempted(offer.install_id, &v, job)
                                })
                                .await;
                            }
                            Err(e) => {
                                tracing::warn!(install = offer.install_id, error = %e, "automatic upgrade refused")
                            }
                        }
                    }
                    AutoUpgrade::Wait(why) => {
                        tracing::debug!(install = offer.install_id, to = %offer.to, %why, "automatic upgrade waits")
                    }
                    AutoUpgrade::Never => {}
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(id: i64, schedule: &str) -> BackupPolicy {
        BackupPolicy {
            install_id: id,
            storage: "local".into(),
            mode: "stop".into(),
            keep_last: 2,
            schedule: schedule.into(),
        }
    }

    // 2026-12-06 12:00 UTC.
    const NOON: u64 = 1_796_558_400;

    #[test]
    fn each_slot_is_tried_once_and_only_for_installed_apps() {
        let policies = [
            policy(1, "daily 11:30"),
            policy(2, "off"),
            policy(3, "daily 11:30"),
        ];
        let installed = |id: i64| id != 3;
        let never = |_: i64| None;
        let tried = BTreeMap::new();
        let due_now = due(&policies, &installed, &never, &tried, NOON, &TimeZone::UTC);
        assert_eq!(due_now.len(), 1);
        let (req, slot) = &due_now[0];
        assert_eq!((req.install_id, req.keep_last), (1, 2));
        assert_eq!(req.mode, appstore_pve::types::BackupMode::Stop);
        // Tried: not again in this slot; a backup made after the slot: not due either.
        let tried = BTreeMap::from([(1, *slot)]);
        assert!(due(
            &policies,
            &installed,
            &never,
            &tried,
            NOON + 60,
            &TimeZone::UTC
        )
        .is_empty());
        let after = |_: i64| Some(NOON - 60);
        assert!(due(
            &policies,
            &installed,
            &after,
            &BTreeMap::new(),
            NOON,
            &TimeZone::UTC
        )
        .is_empty());
        // The next day's slot is new.
        assert_eq!(
            due(
                &policies,
                &installed,
                &never,
                &tried,
                NOON + 86_400,
                &TimeZone::UTC
            )
            .len(),
            1
        );
    }
}
