//! The SQLite store: installs, jobs with every state transition and its time (the audit trail), job
//! logs, GPU attachments. One file, WAL, migrations by `user_version`. Blocking: the store actor owns
//! it on a SyncArbiter, so no async thread ever waits on SQLite.

use appstore_core::job::{JobKind, JobState};
use appstore_core::Ctid;
use r2d2_sqlite::rusqlite::{self, params, OptionalExtension};
use r2d2_sqlite::SqliteConnectionManager;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open the database at {path}")]
    Open {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] rusqlite::Error),
    /// No connection was free.
    #[error("no database connection available")]
    Pool(#[from] r2d2::Error),
    /// A transition did not start from the state the caller expected (another writer moved the job).
    #[error("job {job} is in state `{actual}`, not `{expected}`")]
    StaleState {
        /// Job id.
        job: i64,
        /// Expected state.
        expected: String,
        /// State found.
        actual: String,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

/// Schema changes in order; the database's `user_version` says how many ran.
mod backups;
mod gpu;
mod notify;
mod updates;
pub use backups::{BackupPolicy, BackupRecord};
pub use gpu::GpuAttachment;
pub use notify::StoredTarget;
pub use updates::{OfferRecord, StoredUpdatePolicy};

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE apps (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        commit_id TEXT,
        seen_at INTEGER NOT NULL
    );
    CREATE TABLE installs (
        id INTEGER PRIMARY KEY,
        app_id TEXT NOT NULL,
        ctid INTEGER UNIQUE,
        node TEXT NOT NULL,
        pool TEXT NOT NULL,
        version TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        commit_id TEXT,
        inputs TEXT NOT NULL DEFAULT '{}',
        outputs TEXT NOT NULL DEFAULT '[]',
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        app_id TEXT NOT NULL,
        install_id INTEGER REFERENCES installs(id),
        ctid INTEGER,
        node TEXT NOT NULL,
        pool TEXT NOT NULL,
        user_action TEXT NOT NULL,
        manifest_version TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        commit_id TEXT,
        request TEXT NOT NULL DEFAULT '{}',
        gpu_devices TEXT NOT NULL DEFAULT '[]',
        error TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        finished_at INTEGER
    );
    CREATE INDEX jobs_state ON jobs(state);
    CREATE INDEX jobs_ctid ON jobs(ctid);
    CREATE TABLE job_transitions (
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        seq INTEGER NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        reason TEXT,
        PRIMARY KEY (job_id, seq)
    );
    CREATE TABLE job_logs (
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        seq INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        stream TEXT NOT NULL,
        line TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    );
    CREATE TABLE gpu_attachments (
        ctid INTEGER NOT NULL,
        device_path TEXT NOT NULL,
        pci_address TEXT,
        profile TEXT NOT NULL,
        job_id INTEGER REFERENCES jobs(id),
        attached_at INTEGER NOT NULL,
        PRIMARY KEY (ctid, device_path)
    );",
    // 2: what a job needs to resume after a restart, sealed (it holds the request's secrets); the
    // inputs an install was made with, sealed, for reconfigure and upgrade.
    "ALTER TABLE jobs ADD COLUMN context TEXT;
    ALTER TABLE installs ADD COLUMN sealed_inputs TEXT;",
    // 3: data volumes kept by an uninstall, held by a never-started container until a later install
    // of the same app takes them.
    "CREATE TABLE kept_volumes (
        id INTEGER PRIMARY KEY,
        app_id TEXT NOT NULL,
        name TEXT NOT NULL,
        mount_path TEXT NOT NULL,
        volid TEXT NOT NULL,
        holder_ctid INTEGER NOT NULL,
        holder_key TEXT NOT NULL,
        from_ctid INTEGER,
        kept_at INTEGER NOT NULL,
        UNIQUE (holder_ctid, holder_key)
    );
    CREATE INDEX kept_volumes_app ON kept_volumes(app_id, name);",
    // 4: login sessions, by the SHA-256 of their token (the database never holds a usable token).
    "CREATE TABLE sessions (
        token_sha256 TEXT PRIMARY KEY,
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );",
    // 5: backups the store made (what app and version each archive holds, for a restore after the
    // install is gone) and each install's backup settings (storage, mode, retention, schedule).
    "CREATE TABLE backups (
        volid TEXT PRIMARY KEY,
        install_id INTEGER NOT NULL,
        app_id TEXT NOT NULL,
        version TEXT NOT NULL,
        manifest_sha256 TEXT NOT NULL,
        commit_id TEXT,
        ctid INTEGER NOT NULL,
        storage TEXT NOT NULL,
        job_id INTEGER,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX backups_install ON backups(install_id);
    CREATE TABLE backup_policies (
        install_id INTEGER PRIMARY KEY,
        storage TEXT NOT NULL,
        mode TEXT NOT NULL,
        keep_last INTEGER NOT NULL,
        schedule TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );",
    // 6: each install's update policy, and when the store first saw each version offered to an
    // install (the hold-off of automatic updates counts from it when the changelog has no date)
    // and whether an automatic upgrade to it was tried.
    "CREATE TABLE update_policies (
        install_id INTEGER PRIMARY KEY,
        mode TEXT NOT NULL,
        maint_window TEXT NOT NULL,
        hold_off_days INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE update_offers (
        install_id INTEGER NOT NULL,
        version TEXT NOT NULL,
        first_seen_at INTEGER NOT NULL,
        attempted_job INTEGER,
        PRIMARY KEY (install_id, version)
    );",
    // 7: notification targets added in the UI (the target as JSON; its token sealed).
    "CREATE TABLE notify_targets (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        token_sealed TEXT,
        created_at INTEGER NOT NULL
    );",
    // 8: the NVIDIA driver a container's GPU userland was last set up for (GPU drift).
    "CREATE TABLE gpu_userland (
        ctid INTEGER PRIMARY KEY,
        driver_version TEXT NOT NULL,
        synced_at INTEGER NOT NULL
    );",
];

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRecord {
    /// Id.
    pub id: i64,
    /// Install, uninstall, upgrade or reconfigure.
    pub kind: JobKind,
    /// Current state.
    pub state: JobState,
    /// App.
    pub app_id: String,
    /// Install it belongs to.
    pub install_id: Option<i64>,
    /// Container, once allocated.
    pub ctid: Option<Ctid>,
    /// Node.
    pub node: String,
    /// Pool.
    pub pool: String,
    /// What the user asked for, in words.
    pub user_action: String,
    /// Manifest version.
    pub manifest_version: String,
    /// Manifest content hash.
    pub manifest_sha256: String,
    /// Catalog commit.
    pub commit_id: Option<String>,
    /// The request with secrets redacted (JSON).
    pub request: String,
    /// GPU devices attached (JSON list).
    pub gpu_devices: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Created, ms.
    pub created_at: i64,
    /// Last change, ms.
    pub updated_at: i64,
    /// Ended, ms.
    pub finished_at: Option<i64>,
}

/// What a new job records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// Kind.
    pub kind: JobKind,
    /// App.
    pub app_id: String,
    /// Install, for jobs on an existing one.
    pub install_id: Option<i64>,
    /// Container, when known.
    pub ctid: Option<Ctid>,
    /// Node.
    pub node: String,
    /// Pool.
    pub pool: String,
    /// What the user asked for.
    pub user_action: String,
    /// Manifest version.
    pub manifest_version: String,
    /// Manifest hash.
    pub manifest_sha256: String,
    /// Catalog commit.
    pub commit_id: Option<String>,
    /// The request, secrets redacted.
    pub request: String,
}

/// One transition of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransitionRecord {
    /// Order within the job.
    pub seq: i64,
    /// From.
    pub from_state: Option<String>,
    /// To.
    pub to_state: String,
    /// When, ms.
    pub at_ms: i64,
    /// Why (failures).
    pub reason: Option<String>,
}

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogRecord {
    /// Order within the job (the cursor).
    pub seq: i64,
    /// When, ms.
    pub at_ms: i64,
    /// `stdout`, `stderr` or `engine`.
    pub stream: String,
    /// The line, already redacted.
    pub line: String,
}

/// What a completed install records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstall {
    /// The job that made it.
    pub job_id: i64,
    /// App.
    pub app_id: String,
    /// Container.
    pub ctid: Option<Ctid>,
    /// Node.
    pub node: String,
    /// Pool.
    pub pool: String,
    /// Installed version.
    pub version: String,
    /// Manifest hash.
    pub manifest_sha256: String,
    /// Catalog commit.
    pub commit_id: Option<String>,
    /// Inputs, secrets masked (JSON).
    pub inputs: String,
    /// Outputs (JSON list).
    pub outputs: String,
}

/// An installed app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallRecord {
    /// Id.
    pub id: i64,
    /// App.
    pub app_id: String,
    /// Container.
    pub ctid: Option<Ctid>,
    /// Node.
    pub node: String,
    /// Pool.
    pub pool: String,
    /// Version.
    pub version: String,
    /// Manifest hash.
    pub manifest_sha256: String,
    /// Commit.
    pub commit_id: Option<String>,
    /// Inputs, secrets masked (JSON).
    pub inputs: String,
    /// Outputs (JSON list).
    pub outputs: String,
    /// `installed`, ...
    pub status: String,
    /// Created, ms.
    pub created_at: i64,
}

/// A data volume kept by an uninstall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptVolume {
    /// Id.
    pub id: i64,
    /// The app it belongs to.
    pub app_id: String,
    /// The manifest's volume name.
    pub name: String,
    /// Where it was mounted.
    pub mount_path: String,
    /// The PVE volume (`local-lvm:vm-120-disk-1`).
    pub volid: String,
    /// The container holding it.
    pub holder_ctid: Ctid,
    /// Its key there (`mp0`).
    pub holder_key: String,
    /// The container it came from.
    pub from_ctid: Option<Ctid>,
    /// When, ms.
    pub kept_at: i64,
}

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
}

/// A text column read as a typed name (a job's kind or state); an unknown name is a conversion error
/// that names the column and the value.
fn named<T>(
    r: &rusqlite::Row<'_>,
    column: &str,
    parse: fn(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = r.get(column)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("`{text}` is not a job {column}").into(),
        )
    })
}

/// A container id column; a number outside PVE's range is a conversion error that names it.
fn ctid_column<I: rusqlite::RowIndex + Copy + std::fmt::Debug>(
    r: &rusqlite::Row<'_>,
    column: I,
) -> rusqlite::Result<Option<Ctid>> {
    let Some(n) = r.get::<_, Option<i64>>(column)? else {
        return Ok(None);
    };
    Ctid::try_from(n).map(Some).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            format!("column {column:?}: {e}").into(),
        )
    })
}

/// A container id column that is never empty.
fn ctid_required<I: rusqlite::RowIndex + Copy + std::fmt::Debug>(
    r: &rusqlite::Row<'_>,
    column: I,
) -> rusqlite::Result<Ctid> {
    ctid_column(r, column)?.ok_or(rusqlite::Error::InvalidColumnType(
        0,
        format!("{column:?}"),
        rusqlite::types::Type::Null,
    ))
}

fn row_to_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: r.get("id")?,
        kind: named(r, "kind", JobKind::parse)?,
        state: named(r, "state", JobState::parse)?,
        app_id: r.get("app_id")?,
        install_id: r.get("install_id")?,
        ctid: ctid_column(r, "ctid")?,
        node: r.get("node")?,
        pool: r.get("pool")?,
        user_action: r.get("user_action")?,
        manifest_version: r.get("manifest_version")?,
        manifest_sha256: r.get("manifest_sha256")?,
        commit_id: r.get("commit_id")?,
        request: r.get("request")?,
        gpu_devices: r.get("gpu_devices")?,
        error: r.get("error")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        finished_at: r.get("finished_at")?,
    })
}

impl Store {
    /// Opens (creating and migrating) the database file.
    pub fn open(path: &Path) -> Result<Store> {
        let err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.display().to_string(),
            source: e,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(Box::new(e)))?;
        }
        // The database holds sealed secrets and sessions: the service's alone (0600), whatever the
        // umask; SQLite gives its -wal and -shm files the database's mode.
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(Box::new(e)))?;
            let mode = f
                .metadata()
                .map_err(|e| err(Box::new(e)))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                f.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| err(Box::new(e)))?;
            }
        }
        // WAL is a property of the file: switch it once, alone, before the pool opens its
        // connections at the same time (racing to switch it fails with "database is locked" and
        // r2d2 retries after a pause of about 400 ms).
        rusqlite::Connection::open(path)
            .and_then(|c| c.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL;"))
            .map_err(|e| err(Box::new(e)))?;
        let manager = SqliteConnectionManager::file(path).with_init(|c| {
            c.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
        });
        let pool = r2d2::Pool::builder()
            .max_size(4)
            .build(manager)
            .map_err(|e| err(Box::new(e)))?;
        let store = Store { pool };
        store.migrate().map_err(|e| err(Box::new(e)))?;
        Ok(store)
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.get()?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Records a new job in `queued`, with its first transition.
    pub fn create_job(&self, new: &NewJob) -> Result<JobRecord> {
        let mut conn = self.pool.get()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = now_ms();
        tx.execute(
            "INSERT INTO jobs (kind, state, app_id, install_id, ctid, node, pool, user_action, manifest_version, manifest_sha256, commit_id, request, created_at, updated_at)
             VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
            params![new.kind.as_str(), new.app_id, new.install_id, new.ctid.map(i64::from), new.node, new.pool, new.user_action, new.manifest_version, new.manifest_sha256, new.commit_id, new.request, now],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute("INSERT INTO job_transitions (job_id, seq, from_state, to_state, at_ms) VALUES (?1, 1, NULL, 'queued', ?2)", params![id, now])?;
        let job = tx.query_row("SELECT * FROM jobs WHERE id = ?1", [id], row_to_job)?;
        tx.commit()?;
        Ok(job)
    }

    /// Moves a job from `from` to `to` (checked, so two writers cannot both move it), recording the
    /// transition and, for failures, the reason.
    pub fn transition(
        &self,
        job: i64,
        from: JobState,
        to: JobState,
        reason: Option<&str>,
    ) -> Result<()> {
        let (from, to_state) = (from.as_str(), to);
        let to = to_state.as_str();
        let mut conn = self.pool.get()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let actual: String =
            tx.query_row("SELECT state FROM jobs WHERE id = ?1", [job], |r| r.get(0))?;
        if actual != from {
            return Err(StoreError::StaleState {
                job,
                expected: from.into(),
                actual,
            });
        }
        let now = now_ms();
        let finished = to_state.is_terminal().then_some(now);
        let error = if matches!(to_state, JobState::Failed | JobState::Canceled) {
            reason
        } else {
            None
        };
        tx.execute(
            "UPDATE jobs SET state = ?2, updated_at = ?3, finished_at = COALESCE(?4, finished_at), error = COALESCE(?5, error) WHERE id = ?1",
            params![job, to, now, finished, error],
        )?;
        let seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM job_transitions WHERE job_id = ?1",
            [job],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO job_transitions (job_id, seq, from_state, to_state, at_ms, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![job, seq, from, to, now, reason],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Sets the job's container id (once allocated).
    pub fn set_job_ctid(&self, job: i64, ctid: Ctid) -> Result<()> {
        self.pool.get()?.execute(
            "UPDATE jobs SET ctid = ?2, updated_at = ?3 WHERE id = ?1",
            params![job, i64::from(ctid), now_ms()],
        )?;
        Ok(())
    }

    /// Stores a session (by its token's hash) until `expires_at` (ms).
    pub fn create_session(&self, token_sha256: &str, csrf: &str, expires_at: i64) -> Result<()> {
        let conn = self.pool.get()?;
        conn.execute("DELETE FROM sessions WHERE expires_at < ?1", [now_ms()])?;
        conn.execute(
            "INSERT INTO sessions (token_sha256, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![token_sha256, csrf, now_ms(), expires_at],
        )?;
        Ok(())
    }

    /// The CSRF token of a live session.
    pub fn session(&self, token_sha256: &str) -> Result<Option<String>> {
        Ok(self
            .pool
            .get()?
            .query_row(
                "SELECT csrf FROM sessions WHERE token_sha256 = ?1 AND expires_at >= ?2",
                params![token_sha256, now_ms()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Ends a session.
    pub fn delete_session(&self, token_sha256: &str) -> Result<()> {
        self.pool.get()?.execute(
            "DELETE FROM sessions WHERE token_sha256 = ?1",
            [token_sha256],
        )?;
        Ok(())
    }

    /// Ends every session (after a password change).
    pub fn delete_all_sessions(&self) -> Result<()> {
        self.pool.get()?.execute("DELETE FROM sessions", [])?;
        Ok(())
    }

    /// Records an app the store has a job for, as the catalog had it then.
    pub fn record_app(
        &self,
        id: &str,
        name: &str,
        version: &str,
        manifest_sha256: &str,
        commit_id: Option<&str>,
    ) -> Result<()> {
        self.pool.get()?.execute(
            "INSERT INTO apps (id, name, version, manifest_sha256, commit_id, seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, version = excluded.version,
                 manifest_sha256 = excluded.manifest_sha256, commit_id = excluded.commit_id, seen_at = excluded.seen_at",
            params![id, name, version, manifest_sha256, commit_id, now_ms()],
        )?;
        Ok(())
    }

    /// The version of an app in the `apps` table (the last job's).
    pub fn app_version(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .pool
            .get()?
            .query_row("SELECT version FROM apps WHERE id = ?1", [id], |r| r.get(0))
            .optional()?)
    }

    /// Stores the job's sealed resume context.
    pub fn set_job_context(&self, job: i64, sealed: &str) -> Result<()> {
        self.pool.get()?.execute(
            "UPDATE jobs SET context = ?2, updated_at = ?3 WHERE id = ?1",
            params![job, sealed, now_ms()],
        )?;
        Ok(())
    }

    /// The job's sealed resume context, if it has one.
    pub fn job_context(&self, job: i64) -> Result<Option<String>> {
        Ok(self
            .pool
            .get()?
            .query_row("SELECT context FROM jobs WHERE id = ?1", [job], |r| {
                r.get(0)
            })
            .optional()?
            .flatten())
    }

    /// Stores an install's sealed inputs (all of them, secrets included).
    pub fn set_install_inputs(&self, id: i64, sealed: &str) -> Result<()> {
        self.pool.get()?.execute(
            "UPDATE installs SET sealed_inputs = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, sealed, now_ms()],
        )?;
        Ok(())
    }

    /// An install's sealed inputs.
    pub fn install_inputs(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .pool
            .get()?
            .query_row(
                "SELECT sealed_inputs FROM installs WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Records a kept volume (again: the same holder key is updated).
    pub fn keep_volume(&self, v: &KeptVolume) -> Result<i64> {
        let conn = self.pool.get()?;
        conn.execute(
            "INSERT INTO kept_volumes (app_id, name, mount_path, volid, holder_ctid, holder_key, from_ctid, kept_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(holder_ctid, holder_key) DO UPDATE SET app_id = excluded.app_id, name = excluded.name,
                 mount_path = excluded.mount_path, volid = excluded.volid, from_ctid = excluded.from_ctid",
            params![v.app_id, v.name, v.mount_path, v.volid, i64::from(v.holder_ctid), v.holder_key, v.from_ctid.map(i64::from), now_ms()],
        )?;
        Ok(conn.query_row(
            "SELECT id FROM kept_volumes WHERE holder_ctid = ?1 AND holder_key = ?2",
            params![i64::from(v.holder_ctid), v.holder_key],
            |r| r.get(0),
        )?)
    }

    /// Kept volumes, of one app or all, oldest first.
    pub fn kept_volumes(&self, app_id: Option<&str>) -> Result<Vec<KeptVolume>> {
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare(
            "SELECT id, app_id, name, mount_path, volid, holder_ctid, holder_key, from_ctid, kept_at
             FROM kept_volumes WHERE ?1 IS NULL OR app_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([app_id], |r| {
            Ok(KeptVolume {
                id: r.get(0)?,
                app_id: r.get(1)?,
                name: r.get(2)?,
                mount_path: r.get(3)?,
                volid: r.get(4)?,
                holder_ctid: ctid_required(r, 5)?,
                holder_key: r.get(6)?,
                from_ctid: ctid_column(r, 7)?,
                kept_at: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets a kept volume (attached again, or deleted).
    pub fn remove_kept_volume(&self, id: i64) -> Result<()> {
        self.pool
            .get()?
            .execute("DELETE FROM kept_volumes WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Appends a (redacted) log line; returns its sequence number.
    pub fn append_log(&self, job: i64, stream: &str, line: &str) -> Result<LogRecord> {
        let mut conn = self.pool.get()?;
        let at_ms = now_ms();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM job_logs WHERE job_id = ?1",
            [job],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO job_logs (job_id, seq, at_ms, stream, line) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![job, seq, at_ms, stream, line],
        )?;
        tx.commit()?;
        Ok(LogRecord {
            seq,
            at_ms,
            stream: stream.to_string(),
            line: line.to_string(),
        })
    }

    /// How much a job's log holds: (lines, bytes of text).
    pub fn log_size(&self, job: i64) -> Result<(u64, u64)> {
        let (lines, bytes): (i64, i64) = self.pool.get()?.query_row(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(line AS BLOB))), 0) FROM job_logs WHERE job_id = ?1",
            [job],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((lines.max(0) as u64, bytes.max(0) as u64))
    }

    /// The last `n` log lines of a job, oldest first.
    pub fn tail_logs(&self, job: i64, n: i64) -> Result<Vec<LogRecord>> {
        let last: i64 = self.pool.get()?.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM job_logs WHERE job_id = ?1",
            [job],
            |r| r.get(0),
        )?;
        self.logs(job, (last - n).max(0), n)
    }

    /// Log lines after `after` (a cursor), at most `limit`.
    pub fn logs(&self, job: i64, after: i64, limit: i64) -> Result<Vec<LogRecord>> {
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare("SELECT seq, at_ms, stream, line FROM job_logs WHERE job_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")?;
        let rows = stmt.query_map(params![job, after, limit], |r| {
            Ok(LogRecord {
                seq: r.get(0)?,
                at_ms: r.get(1)?,
                stream: r.get(2)?,
                line: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The job `id`.
    pub fn job(&self, id: i64) -> Result<Option<JobRecord>> {
        Ok(self
            .pool
            .get()?
            .query_row("SELECT * FROM jobs WHERE id = ?1", [id], row_to_job)
            .optional()?)
    }

    /// The most recent jobs first.
    pub fn jobs(&self, limit: i64) -> Result<Vec<JobRecord>> {
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare("SELECT * FROM jobs ORDER BY id DESC LIMIT ?1")?;
        let rows = stmt.query_map([limit], row_to_job)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Completed installs per app, all time: what the catalog's "popular" sort counts.
    pub fn install_counts(&self) -> Result<HashMap<String, u64>> {
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare(
            "SELECT app_id, COUNT(*) FROM jobs WHERE kind = 'install' AND state = 'completed' GROUP BY app_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut counts = HashMap::new();
        for row in rows {
            let (app, n) = row?;
            counts.insert(app, n.max(0) as u64);
        }
        Ok(counts)
    }

    /// The jobs of one install, newest first: those linked to it, and those on its container for
    /// its app (an install job is linked only once it completes).
    pub fn install_jobs(&self, install: &InstallRecord) -> Result<Vec<JobRecord>> {
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare(
            "SELECT * FROM jobs WHERE install_id = ?1 OR (ctid = ?2 AND app_id = ?3) ORDER BY id DESC LIMIT 100",
        )?;
        let rows = stmt.query_map(
            params![install.id, install.ctid.map(i64::from), install.app_id],
            row_to_job,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Jobs that have not ended (to resume after a restart), oldest first.
    pub fn unfinished_jobs(&self) -> Result<Vec<JobRecord>> {
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare(
            "SELECT * FROM jobs WHERE state NOT IN ('completed', 'failed', 'canceled') ORDER BY id",
        )?;
        let rows = stmt.query_map([], row_to_job)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a finished install and links the job to it.
    pub fn record_install(&self, new: &NewInstall) -> Result<i64> {
        let mut conn = self.pool.get()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = now_ms();
        tx.execute(
            "INSERT INTO installs (app_id, ctid, node, pool, version, manifest_sha256, commit_id, inputs, outputs, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'installed', ?10, ?10)
             ON CONFLICT(ctid) DO UPDATE SET app_id = excluded.app_id, version = excluded.version, manifest_sha256 = excluded.manifest_sha256,
                 commit_id = excluded.commit_id, inputs = excluded.inputs, outputs = excluded.outputs, status = 'installed', updated_at = excluded.updated_at",
            params![new.app_id, new.ctid.map(i64::from), new.node, new.pool, new.version, new.manifest_sha256, new.commit_id, new.inputs, new.outputs, now],
        )?;
        let id: i64 = tx.query_row(
            "SELECT id FROM installs WHERE ctid IS ?1 ORDER BY id DESC LIMIT 1",
            [new.ctid.map(i64::from)],
            |r| r.get(0),
        )?;
        tx.execute(
            "UPDATE jobs SET install_id = ?2 WHERE id = ?1",
            params![new.job_id, id],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// The install `id`.
    pub fn install(&self, id: i64) -> Result<Option<InstallRecord>> {
        Ok(self.installs()?.into_iter().find(|i| i.id == id))
    }

    /// Marks an install (`removed` after an uninstall).
    pub fn set_install_status(&self, id: i64, status: &str) -> Result<()> {
        self.pool.get()?.execute(
            "UPDATE installs SET status = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, status, now_ms()],
        )?;
        Ok(())
    }

    /// Installed apps, newest first.
    pub fn installs(&self) -> Result<Vec<InstallRecord>> {
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare("SELECT id, app_id, ctid, node, pool, version, manifest_sha256, commit_id, inputs, outputs, status, created_at FROM installs ORDER BY id DESC")?;
        let rows = stmt.query_map([], |r| {
            Ok(InstallRecord {
                id: r.get(0)?,
                app_id: r.get(1)?,
                ctid: ctid_column(r, 2)?,
                node: r.get(3)?,
                pool: r.get(4)?,
                version: r.get(5)?,
                manifest_sha256: r.get(6)?,
                commit_id: r.get(7)?,
                inputs: r.get(8)?,
                outputs: r.get(9)?,
                status: r.get(10)?,
                created_at: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The job's transitions in order.
    pub fn transitions(&self, job: i64) -> Result<Vec<TransitionRecord>> {
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare("SELECT seq, from_state, to_state, at_ms, reason FROM job_transitions WHERE job_id = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([job], |r| {
            Ok(TransitionRecord {
                seq: r.get(0)?,
                from_state: r.get(1)?,
                to_state: r.get(2)?,
                at_ms: r.get(3)?,
                reason: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = Store::open(&path).unwrap();
        store.create_job(&new_job()).unwrap();
        for name in ["state.db", "state.db-wal"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    fn new_job() -> NewJob {
        NewJob {
            kind: JobKind::Install,
            app_id: "radicale".into(),
            install_id: None,
            ctid: None,
            node: "pve1".into(),
            pool: "appstore".into(),
            user_action: "install radicale 1.0.0".into(),
            manifest_version: "1.0.0".into(),
            manifest_sha256: "ab".repeat(32),
            commit_id: Some("c0ffee".into()),
            request: "{}".into(),
        }
    }

    #[test]
    fn jobs_keep_every_transition_with_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        let job = store.create_job(&new_job()).unwrap();
        assert_eq!(job.state, JobState::Queued);
        store
            .transition(job.id, JobState::Queued, JobState::ValidateRequest, None)
            .unwrap();
        let err = store
            .transition(job.id, JobState::Queued, JobState::ValidateManifest, None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "job {} is in state `validate_request`, not `queued`",
                job.id
            )
        );
        store
            .transition(
                job.id,
                JobState::ValidateRequest,
                JobState::Failed,
                Some("no such app"),
            )
            .unwrap();
        let t = store.transitions(job.id).unwrap();
        assert_eq!(
            t.iter().map(|t| t.to_state.as_str()).collect::<Vec<_>>(),
            ["queued", "validate_request", "failed"]
        );
        let job = store.job(job.id).unwrap().unwrap();
        assert_eq!(job.error.as_deref(), Some("no such app"));
        assert!(job.finished_at.is_some());
        assert!(store.unfinished_jobs().unwrap().is_empty());
    }

    #[test]
    fn logs_are_read_with_a_cursor_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let id = {
            let store = Store::open(&path).unwrap();
            let job = store.create_job(&new_job()).unwrap();
            for i in 0..5 {
                store
                    .append_log(job.id, "stdout", &format!("line {i}"))
                    .unwrap();
            }
            job.id
        };
        let store = Store::open(&path).unwrap();
        let first = store.logs(id, 0, 2).unwrap();
        assert_eq!(
            first.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
            ["line 0", "line 1"]
        );
        let rest = store.logs(id, first[1].seq, 100).unwrap();
        assert_eq!(rest.len(), 3);
        assert_eq!(store.unfinished_jobs().unwrap().len(), 1);
    }
}
