//! What the store's API token must be allowed to do, path by path: the one plan the installer grants
//! and `doctor` checks. Every privilege here is one a call of the product needs (the PVE schema's
//! permission of that call); nothing more.

use std::collections::BTreeSet;

/// The role the installer creates for the store's token on its pool.
pub const ROLE: &str = "PVEAppStore";
/// The role it creates for the template storage: no built-in role holds just
/// `Datastore.Audit` (and `Datastore.AllocateTemplate` when downloads are allowed).
pub const TEMPLATE_ROLE: &str = "PVEAppStoreTemplates";

/// The role's privileges, held on `/pool/<pool>` and so on every container in it: read the pool;
/// create, read, configure, start, stop and destroy containers; snapshots for safe upgrades;
/// backups and restores. The same on 8.4 and 9.x: none of them is one that 9.x removed
/// (`VM.Monitor`).
pub const POOL_PRIVILEGES: &[&str] = &[
    "Pool.Audit",
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Config.CPU",
    "VM.Config.Disk",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.PowerMgmt",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
];

/// Where the store places containers: what the grants are computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The store's pool.
    pub pool: String,
    /// Storages for root disks and volumes.
    pub storages: Vec<String>,
    /// Where templates are (when known).
    pub template_storage: Option<String>,
    /// Bridges containers may join.
    pub bridges: Vec<String>,
    /// Missing templates may be downloaded.
    pub download_templates: bool,
    /// Where the apps' backups go (content `backup`).
    pub backup_storage: Option<String>,
}

/// Privileges needed on one ACL path, and what for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `/pool/appstore`, `/storage/local-lvm`, `/sdn/zones/localnetwork/vmbr0`.
    pub path: String,
    /// Sorted privilege names.
    pub privileges: Vec<&'static str>,
    /// The role that holds them: a built-in one, or [`ROLE`] or [`TEMPLATE_ROLE`].
    pub role: &'static str,
    /// What the store does with them.
    pub why: &'static str,
}

/// Every grant the store's token needs for `placement`.
pub fn grants(placement: &Placement) -> Vec<Grant> {
    let mut out = vec![Grant {
        path: format!("/pool/{}", placement.pool),
        privileges: POOL_PRIVILEGES.to_vec(),
        role: ROLE,
        why: "create, configure, start, stop, snapshot and destroy the store's containers",
    }];
    let storages: BTreeSet<&str> = placement.storages.iter().map(String::as_str).collect();
    for s in &storages {
        out.push(Grant {
            path: format!("/storage/{s}"),
            privileges: vec!["Datastore.AllocateSpace", "Datastore.Audit"],
            role: "PVEDatastoreUser",
            why: "allocate container disks and volumes",
        });
    }
    if let Some(b) = placement
        .backup_storage
        .as_ref()
        .filter(|b| !storages.contains(b.as_str()))
    {
        out.push(Grant {
            path: format!("/storage/{b}"),
            privileges: vec!["Datastore.AllocateSpace", "Datastore.Audit"],
            role: "PVEDatastoreUser",
            why: "write the apps' backups, list them, and remove those beyond the retention",
        });
    }
    if let Some(t) = &placement.template_storage {
        let (privileges, why) = if placement.download_templates {
            (
                vec!["Datastore.AllocateTemplate", "Datastore.Audit"],
                "read container templates and download missing ones",
            )
        } else {
            (vec!["Datastore.Audit"], "read the container templates")
        };
        out.push(Grant {
            path: format!("/storage/{t}"),
            privileges,
            role: TEMPLATE_ROLE,
            why,
        });
    }
    let bridges: BTreeSet<&str> = placement.bridges.iter().map(String::as_str).collect();
    for b in bridges {
        out.push(Grant {
            path: format!("/sdn/zones/localnetwork/{b}"),
            privileges: vec!["SDN.Audit", "SDN.Use"],
            role: "PVESDNUser",
            why: "connect containers to the bridge",
        });
    }
    out
}

/// One privilege the token lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The ACL path.
    pub path: String,
    /// The privilege.
    pub privilege: &'static str,
    /// What the store needs it for.
    pub why: &'static str,
}

/// What `have(path)` (the token's effective privileges on a path, as `GET /access/permissions`
/// reports them) lacks of `grants`.
pub fn missing(grants: &[Grant], have: &dyn Fn(&str) -> BTreeSet<String>) -> Vec<Missing> {
    let mut out = Vec::new();
    for g in grants {
        let privs = have(&g.path);
        for p in &g.privileges {
            if !privs.contains(*p) {
                out.push(Missing {
                    path: g.path.clone(),
                    privilege: p,
                    why: g.why,
                });
            }
        }
    }
    out
}

/// Which releases the store supports: 9.x first, 8.4 still. `Err` says why not, and what to do.
pub fn supported_release(version: &str) -> Result<(), String> {
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(9), _) => Ok(()),
        (Some(8), Some(minor)) if minor >= 4 => Ok(()),
        (Some(8), _) => Err(format!(
            "Proxmox VE {version} is older than 8.4; upgrade the node to 8.4 (or better 9.x)"
        )),
        (Some(major), _) if major > 9 => Err(format!(
            "Proxmox VE {version} is newer than this store knows (9.x); update the store"
        )),
        _ => Err(format!(
            "Proxmox VE {version} is not supported; the store needs 9.x or 8.4"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(download: bool) -> Placement {
        Placement {
            backup_storage: Some("backups".into()),
            pool: "appstore".into(),
            storages: vec!["local-lvm".into()],
            template_storage: Some("local".into()),
            bridges: vec!["vmbr0".into()],
            download_templates: download,
        }
    }

    #[test]
    fn grants_cover_each_path_the_store_touches() {
        let g = grants(&placement(false));
        let paths: Vec<&str> = g.iter().map(|g| g.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/pool/appstore",
                "/storage/local-lvm",
                "/storage/backups",
                "/storage/local",
                "/sdn/zones/localnetwork/vmbr0"
            ]
        );
        assert_eq!(
            g[2].privileges,
            ["Datastore.AllocateSpace", "Datastore.Audit"]
        );
        assert!(g[0].privileges.contains(&"VM.Backup"));
        assert_eq!(g[3].privileges, ["Datastore.Audit"]);
        let g = grants(&placement(true));
        assert_eq!(
            g[3].privileges,
            ["Datastore.AllocateTemplate", "Datastore.Audit"]
        );
        assert!(POOL_PRIVILEGES.windows(2).all(|w| w[0] < w[1]));
        assert!(!POOL_PRIVILEGES.contains(&"VM.Monitor"));
    }

    #[test]
    fn missing_names_the_path_the_privilege_and_why() {
        let g = grants(&placement(false));
        let have = |path: &str| -> BTreeSet<String> {
            match path {
                "/pool/appstore" => POOL_PRIVILEGES
                    .iter()
                    .filter(|p| **p != "VM.Snapshot")
                    .map(|p| p.to_string())
                    .collect(),
                "/sdn/zones/localnetwork/vmbr0" => ["SDN.Use".to_string()].into(),
                _ => ["Datastore.Audit", "Datastore.AllocateSpace"]
                    .map(String::from)
                    .into(),
            }
        };
        let m = missing(&g, &have);
        let got: Vec<(&str, &str)> = m.iter().map(|m| (m.path.as_str(), m.privilege)).collect();
        assert_eq!(
            got,
            [
                ("/pool/appstore", "VM.Snapshot"),
                ("/sdn/zones/localnetwork/vmbr0", "SDN.Audit")
            ]
        );
    }

    #[test]
    fn releases_9_and_8_4_are_supported() {
        assert!(supported_release("9.1.2").is_ok());
        assert!(supported_release("9.0.0").is_ok());
        assert!(supported_release("8.4.1").is_ok());
        assert!(supported_release("8.2.8")
            .unwrap_err()
            .contains("older than 8.4"));
        assert!(supported_release("7.4-3").is_err());
        assert!(supported_release("10.0")
            .unwrap_err()
            .contains("update the store"));
    }
}
