//! Each install's update policy, and the versions offered to it.

use super::{now_ms, Result, Store};
use r2d2_sqlite::rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// An install's update policy as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredUpdatePolicy {
    /// The install.
    pub install_id: i64,
    /// `off`, `notify`, `automatic`.
    pub mode: String,
    /// Maintenance window (`daily 03:00-05:00`, on the node's clock).
    pub window: String,
    /// Days a version must be old before it is taken automatically.
    pub hold_off_days: u32,
}

/// A version offered to an install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferRecord {
    /// The install.
    pub install_id: i64,
    /// The version.
    pub version: String,
    /// When the store first saw it offered, ms since the epoch.
    pub first_seen_at: i64,
    /// The automatic upgrade job made for it, if one was.
    pub attempted_job: Option<i64>,
}

impl Store {
    /// The update policy of `install_id`, if it has its own.
    pub fn update_policy(&self, install_id: i64) -> Result<Option<StoredUpdatePolicy>> {
        Ok(self
            .pool
            .get()?
            .query_row(
                "SELECT install_id, mode, maint_window, hold_off_days FROM update_policies WHERE install_id = ?1",
                [install_id],
                policy_row,
            )
            .optional()?)
    }

    /// Every install's own update policy.
    pub fn update_policies(&self) -> Result<Vec<StoredUpdatePolicy>> {
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare(
            "SELECT install_id, mode, maint_window, hold_off_days FROM update_policies ORDER BY install_id",
        )?;
        let rows = stmt.query_map([], policy_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Sets the update policy of an install.
    pub fn set_update_policy(&self, p: &StoredUpdatePolicy) -> Result<()> {
        self.pool.get()?.execute(
            "INSERT INTO update_policies (install_id, mode, maint_window, hold_off_days, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(install_id) DO UPDATE SET mode = excluded.mode, maint_window = excluded.maint_window,
                 hold_off_days = excluded.hold_off_days, updated_at = excluded.updated_at",
            params![p.install_id, p.mode, p.window, p.hold_off_days, now_ms()],
        )?;
        Ok(())
    }

    /// The offer of `version` to `install_id`, recorded now when it is new.
    pub fn see_offer(&self, install_id: i64, version: &str) -> Result<OfferRecord> {
        let conn = self.pool.get()?;
        conn.execute(
            "INSERT INTO update_offers (install_id, version, first_seen_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(install_id, version) DO NOTHING",
            params![install_id, version, now_ms()],
        )?;
        Ok(conn.query_row(
            "SELECT install_id, version, first_seen_at, attempted_job FROM update_offers WHERE install_id = ?1 AND version = ?2",
            params![install_id, version],
            |r| {
                Ok(OfferRecord {
                    install_id: r.get(0)?,
                    version: r.get(1)?,
                    first_seen_at: r.get(2)?,
                    attempted_job: r.get(3)?,
                })
            },
        )?)
    }

    /// Notes the automatic upgrade job made for an offer.
    pub fn offer_attempted(&self, install_id: i64, version: &str, job: i64) -> Result<()> {
        self.pool.get()?.execute(
            "UPDATE update_offers SET attempted_job = ?3 WHERE install_id = ?1 AND version = ?2",
            params![install_id, version, job],
        )?;
        Ok(())
    }
}

fn policy_row(
    r: &r2d2_sqlite::rusqlite::Row<'_>,
) -> r2d2_sqlite::rusqlite::Result<StoredUpdatePolicy> {
    Ok(StoredUpdatePolicy {
        install_id: r.get(0)?,
        mode: r.get(1)?,
        window: r.get(2)?,
        hold_off_days: r.get(3)?,
    })
}
