//! Notification targets added in the UI.

use super::{now_ms, Result, Store};
use r2d2_sqlite::rusqlite::params;

/// A target as stored: the target as JSON, its token sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTarget {
    /// Id.
    pub id: i64,
    /// `appstore_core::notify::NotifyTarget` as JSON.
    pub target: String,
    /// The token, sealed.
    pub token_sealed: Option<String>,
}

impl Store {
    /// Adds a target; its id.
    pub fn add_notify_target(&self, target: &str, token_sealed: Option<&str>) -> Result<i64> {
        let conn = self.pool.get()?;
        conn.execute(
            "INSERT INTO notify_targets (target, token_sealed, created_at) VALUES (?1, ?2, ?3)",
            params![target, token_sealed, now_ms()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Every target added in the UI, oldest first.
    pub fn notify_targets(&self) -> Result<Vec<StoredTarget>> {
        let conn = self.pool.get()?;
        let mut stmt =
            conn.prepare("SELECT id, target, token_sealed FROM notify_targets ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredTarget {
                id: r.get(0)?,
                target: r.get(1)?,
                token_sealed: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Removes a target; false when there was none.
    pub fn remove_notify_target(&self, id: i64) -> Result<bool> {
        Ok(self
            .pool
            .get()?
            .execute("DELETE FROM notify_targets WHERE id = ?1", [id])?
            > 0)
    }
}
