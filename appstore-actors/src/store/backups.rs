//! The backups the store made and each install's backup settings.

use super::{now_ms, Result, Store};
use r2d2_sqlite::rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// A backup the store made: what app and version the archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupRecord {
    /// The archive's volume id.
    pub volid: String,
    /// The install it is of.
    pub install_id: i64,
    /// App.
    pub app_id: String,
    /// The app's version in the archive.
    pub version: String,
    /// Its manifest's digest (which manifest a restore runs the health check and outputs of).
    pub manifest_sha256: String,
    /// The catalog commit that manifest is at.
    pub commit_id: Option<String>,
    /// The container it was made of.
    pub ctid: i64,
    /// Backup storage.
    pub storage: String,
    /// The job that made it.
    pub job_id: Option<i64>,
    /// When, ms since the epoch.
    pub created_at: i64,
}

/// An install's backup settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupPolicy {
    /// The install.
    pub install_id: i64,
    /// Backup storage.
    pub storage: String,
    /// `snapshot`, `suspend` or `stop`.
    pub mode: String,
    /// Backups kept (older ones are removed after each backup).
    pub keep_last: u32,
    /// `off`, `daily HH:MM`, `weekly <day> HH:MM` (UTC).
    pub schedule: String,
}

impl Store {
    /// Records a backup job `job_id` made.
    pub fn record_backup(&self, b: &BackupRecord) -> Result<()> {
        self.pool.get()?.execute(
            "INSERT INTO backups (volid, install_id, app_id, version, manifest_sha256, commit_id, ctid, storage, job_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(volid) DO NOTHING",
            params![b.volid, b.install_id, b.app_id, b.version, b.manifest_sha256, b.commit_id, b.ctid, b.storage, b.job_id, b.created_at],
        )?;
        Ok(())
    }

    /// The store's record of backup `volid`.
    pub fn backup(&self, volid: &str) -> Result<Option<BackupRecord>> {
        Ok(self
            .pool
            .get()?
            .query_row(
                "SELECT volid, install_id, app_id, version, manifest_sha256, commit_id, ctid, storage, job_id, created_at FROM backups WHERE volid = ?1",
                [volid],
                backup_row,
            )
            .optional()?)
    }

    /// The recorded backups of `install_id`, newest first.
    pub fn backups_of(&self, install_id: i64) -> Result<Vec<BackupRecord>> {
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare(
            "SELECT volid, install_id, app_id, version, manifest_sha256, commit_id, ctid, storage, job_id, created_at FROM backups WHERE install_id = ?1 ORDER BY created_at DESC",
        )?;
        let rows = stmt.query_map([install_id], backup_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Forgets backup `volid` (it was removed from its storage).
    pub fn forget_backup(&self, volid: &str) -> Result<()> {
        self.pool
            .get()?
            .execute("DELETE FROM backups WHERE volid = ?1", [volid])?;
        Ok(())
    }

    /// When the newest backup of `install_id` was made, ms since the epoch.
    pub fn last_backup_at(&self, install_id: i64) -> Result<Option<i64>> {
        Ok(self.pool.get()?.query_row(
            "SELECT MAX(created_at) FROM backups WHERE install_id = ?1",
            [install_id],
            |r| r.get(0),
        )?)
    }

    /// The backup settings of `install_id`.
    pub fn backup_policy(&self, install_id: i64) -> Result<Option<BackupPolicy>> {
        Ok(self
            .pool
            .get()?
            .query_row(
                "SELECT install_id, storage, mode, keep_last, schedule FROM backup_policies WHERE install_id = ?1",
                [install_id],
                |r| {
                    Ok(BackupPolicy {
                        install_id: r.get(0)?,
                        storage: r.get(1)?,
                        mode: r.get(2)?,
                        keep_last: r.get(3)?,
                        schedule: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Every install's backup settings.
    pub fn backup_policies(&self) -> Result<Vec<BackupPolicy>> {
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare(
            "SELECT install_id, storage, mode, keep_last, schedule FROM backup_policies ORDER BY install_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(BackupPolicy {
                install_id: r.get(0)?,
                storage: r.get(1)?,
                mode: r.get(2)?,
                keep_last: r.get(3)?,
                schedule: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Sets the backup settings of an install.
    pub fn set_backup_policy(&self, p: &BackupPolicy) -> Result<()> {
        self.pool.get()?.execute(
            "INSERT INTO backup_policies (install_id, storage, mode, keep_last, schedule, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(install_id) DO UPDATE SET storage = excluded.storage, mode = excluded.mode,
                 keep_last = excluded.keep_last, schedule = excluded.schedule, updated_at = excluded.updated_at",
            params![p.install_id, p.storage, p.mode, p.keep_last, p.schedule, now_ms()],
        )?;
        Ok(())
    }
}

fn backup_row(r: &r2d2_sqlite::rusqlite::Row<'_>) -> r2d2_sqlite::rusqlite::Result<BackupRecord> {
    Ok(BackupRecord {
        volid: r.get(0)?,
        install_id: r.get(1)?,
        app_id: r.get(2)?,
        version: r.get(3)?,
        manifest_sha256: r.get(4)?,
        commit_id: r.get(5)?,
        ctid: r.get(6)?,
        storage: r.get(7)?,
        job_id: r.get(8)?,
        created_at: r.get(9)?,
    })
}
