//! Each install's update policy: `off` (no notices), `notify` (notices, the admin upgrades) or
//! `automatic` (upgrades run by themselves inside a maintenance window, only to versions at least
//! `hold_off_days` old). Every automatic upgrade is the same safe upgrade as a manual one: snapshot,
//! script, health check, rollback on failure. Pure: the caller gives the time.

use crate::schedule::Window;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// What happens when the catalog offers an install a newer version.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum UpdateMode {
    /// Nothing: no notice, no upgrade (a manual upgrade stays possible).
    Off,
    /// A notice (badge, event, notification); the admin upgrades.
    #[default]
    Notify,
    /// Notices, and the upgrade runs by itself in the maintenance window.
    Automatic,
}

/// An install's update policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatePolicy {
    /// Mode.
    pub mode: UpdateMode,
    /// When automatic upgrades may run.
    pub window: Window,
    /// A version must be this many days old before it is taken automatically.
    pub hold_off_days: u32,
}

/// The window of a policy that names none: every night, 03:00-05:00 on the node's clock.
pub const DEFAULT_WINDOW: &str = "daily 03:00-05:00";

impl Default for UpdatePolicy {
    fn default() -> Self {
        UpdatePolicy {
            mode: UpdateMode::Notify,
            window: Window::parse(DEFAULT_WINDOW).unwrap_or(Window {
                weekday: None,
                start: 180,
                minutes: 120,
            }),
            hold_off_days: 3,
        }
    }
}

/// Whether an automatic upgrade runs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoUpgrade {
    /// Run it.
    Now,
    /// Not yet, and why.
    Wait(String),
    /// The policy does not upgrade by itself.
    Never,
}

impl UpdatePolicy {
    /// Does an offer go out as a notice?
    pub fn notifies(&self) -> bool {
        self.mode != UpdateMode::Off
    }

    /// Decides an automatic upgrade to `version`, released at `released` (seconds since the
    /// epoch), at `now`, with the window read on the wall clock of `tz`.
    pub fn decide(&self, version: &str, released: u64, now: u64, tz: &TimeZone) -> AutoUpgrade {
        if self.mode != UpdateMode::Automatic {
            return AutoUpgrade::Never;
        }
        let age_days = now.saturating_sub(released) / 86_400;
        if age_days < u64::from(self.hold_off_days) {
            return AutoUpgrade::Wait(format!(
                "version {version} is {age_days} day(s) old; the hold-off is {} day(s)",
                self.hold_off_days
            ));
        }
        if !self.window.contains(now, tz) {
            return AutoUpgrade::Wait(format!(
                "outside the maintenance window ({} {})",
                self.window,
                crate::schedule::zone_name(tz, now)
            ));
        }
        AutoUpgrade::Now
    }
}

/// `YYYY-MM-DD` (a changelog date) as seconds since the epoch, at midnight UTC.
pub fn date_epoch(date: &str) -> Option<u64> {
    let mut parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from((era * 146_097 + doe - 719_468) * 86_400).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-06 12:00 UTC, a Sunday.
    const NOON: u64 = 1_796_558_400;

    #[test]
    fn automatic_upgrades_wait_for_the_hold_off_and_the_window() {
        let policy = UpdatePolicy {
            mode: UpdateMode::Automatic,
            window: Window::parse("daily 11:00-13:00").unwrap(),
            hold_off_days: 3,
        };
        let four_days_ago = NOON - 4 * 86_400;
        assert_eq!(
            policy.decide("1.2.0", four_days_ago, NOON, &TimeZone::UTC),
            AutoUpgrade::Now
        );
        match policy.decide("1.2.0", NOON - 86_400, NOON, &TimeZone::UTC) {
            AutoUpgrade::Wait(why) => {
                assert!(why.contains("1 day(s) old; the hold-off is 3"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        match policy.decide("1.2.0", four_days_ago, NOON + 3 * 3600, &TimeZone::UTC) {
            AutoUpgrade::Wait(why) => assert!(
                why.contains("maintenance window (daily 11:00-13:00 UTC)"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        let notify = UpdatePolicy::default();
        assert_eq!(
            notify.decide("1.2.0", 0, NOON, &TimeZone::UTC),
            AutoUpgrade::Never
        );
        assert!(notify.notifies());
        let off = UpdatePolicy {
            mode: UpdateMode::Off,
            ..Default::default()
        };
        assert!(!off.notifies());
    }

    #[test]
    fn changelog_dates_are_days_since_the_epoch() {
        assert_eq!(date_epoch("1970-01-01"), Some(0));
        assert_eq!(date_epoch("2026-12-06"), Some(NOON - 12 * 3600));
        assert_eq!(date_epoch("2026-13-01"), None);
        assert_eq!(date_epoch("yesterday"), None);
    }
}
