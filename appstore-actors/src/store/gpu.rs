//! GPU records: which device nodes are attached to which container (and for which GPU and
//! profile), and the NVIDIA driver each container's userland was set up for.

use super::{ctid_required, now_ms, Result, Store};
use appstore_core::Ctid;
use r2d2_sqlite::rusqlite::{self, params};
use serde::Serialize;

/// A GPU device node attached to a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuAttachment {
    /// Container.
    pub ctid: Ctid,
    /// Host device node, `/dev/dri/renderD128`.
    pub device_path: String,
    /// The GPU's PCI address, when the node belongs to one GPU.
    pub pci_address: Option<String>,
    /// Attach profile (`dri-render`, `nvidia-basic`, `rocm`).
    pub profile: String,
    /// The job that attached it.
    pub job_id: Option<i64>,
    /// When, ms since the epoch.
    pub attached_at: i64,
}

impl Store {
    /// Records a GPU node attached to a container (again: replaced).
    pub fn record_gpu_attachment(&self, a: &GpuAttachment) -> Result<()> {
        self.pool.get()?.execute(
            "INSERT OR REPLACE INTO gpu_attachments (ctid, device_path, pci_address, profile, job_id, attached_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![i64::from(a.ctid), a.device_path, a.pci_address, a.profile, a.job_id, now_ms()],
        )?;
        Ok(())
    }

    /// Forgets a container's GPU attachments (it was destroyed).
    pub fn remove_gpu_attachments(&self, ctid: Ctid) -> Result<usize> {
        Ok(self.pool.get()?.execute(
            "DELETE FROM gpu_attachments WHERE ctid = ?1",
            [i64::from(ctid)],
        )?)
    }

    /// After a restore of a backup of container `from` into container `to` (the same container,
    /// or a new one): `to` now has the `devN` nodes `paths`, as the backup's config had them. Its
    /// attachment records become `from`'s records of those nodes (any others are forgotten), and
    /// a new container also takes `from`'s recorded GPU userland. Returns how many are recorded.
    pub fn carry_gpu_records(
        &self,
        from: Ctid,
        to: Ctid,
        paths: &[String],
        job_id: i64,
    ) -> Result<usize> {
        let mut conn = self.pool.get()?;
        let tx = conn.transaction()?;
        let kept: Vec<(String, Option<String>, String)> = {
            let mut stmt = tx.prepare(
                "SELECT device_path, pci_address, profile FROM gpu_attachments WHERE ctid = ?1",
            )?;
            let rows =
                stmt.query_map([i64::from(from)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .filter(|(path, _, _)| paths.contains(path))
                .collect()
        };
        tx.execute(
            "DELETE FROM gpu_attachments WHERE ctid = ?1",
            [i64::from(to)],
        )?;
        for (path, pci, profile) in &kept {
            tx.execute(
                "INSERT INTO gpu_attachments (ctid, device_path, pci_address, profile, job_id, attached_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![i64::from(to), path, pci, profile, job_id, now_ms()],
            )?;
        }
        if from != to && !kept.is_empty() {
            tx.execute(
                "INSERT OR REPLACE INTO gpu_userland (ctid, driver_version, synced_at)
                 SELECT ?2, driver_version, ?3 FROM gpu_userland WHERE ctid = ?1",
                params![i64::from(from), i64::from(to), now_ms()],
            )?;
        }
        tx.commit()?;
        Ok(kept.len())
    }

    /// Every GPU attachment, by container.
    pub fn gpu_attachments(&self) -> Result<Vec<GpuAttachment>> {
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare("SELECT ctid, device_path, pci_address, profile, job_id, attached_at FROM gpu_attachments ORDER BY ctid, device_path")?;
        let rows = stmt.query_map([], |r| {
            Ok(GpuAttachment {
                ctid: ctid_required(r, 0)?,
                device_path: r.get(1)?,
                pci_address: r.get(2)?,
                profile: r.get(3)?,
                job_id: r.get(4)?,
                attached_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records the NVIDIA driver container `ctid`'s GPU userland was set up for.
    pub fn set_gpu_userland(&self, ctid: appstore_core::Ctid, driver_version: &str) -> Result<()> {
        self.pool.get()?.execute(
            "INSERT INTO gpu_userland (ctid, driver_version, synced_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(ctid) DO UPDATE SET driver_version = excluded.driver_version, synced_at = excluded.synced_at",
            params![i64::from(ctid.get()), driver_version, now_ms()],
        )?;
        Ok(())
    }

    /// The NVIDIA driver each container's GPU userland was set up for: ctid -> version.
    pub fn gpu_userland(&self) -> Result<std::collections::BTreeMap<u32, String>> {
        let conn = self.pool.get()?;
        let mut stmt = conn.prepare("SELECT ctid, driver_version FROM gpu_userland")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}
