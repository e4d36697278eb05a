//! Data volumes that outlive an uninstall. PVE deletes every volume a container owns when it is
//! destroyed, so a kept volume is handed (PVE's own `move_volume` to another container) to a holder:
//! a never-started container of the app in the store's pool, tagged `appstore-volumes`. A later
//! install of the same app takes the volume back under the same name; the holder goes when it holds
//! nothing more.

use super::{blocking, Engine, JobLog};
use crate::store::KeptVolume;
use appstore_core::policy::{join_tags, MANAGED_TAG};
use appstore_core::Ctid;
use appstore_pve::types::{CreateLxc, NetConfig};
use appstore_pve::wait_task;

/// The tag of volume holders.
pub const HOLDER_TAG: &str = "appstore-volumes";

/// A storage volume mounted at `mpN` (not a bind or device mount): (key, volid, mount path).
pub(super) fn storage_volumes(
    options: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, String, String)> {
    options
        .iter()
        .filter(|(k, _)| {
            k.strip_prefix("mp")
                .is_some_and(|n| n.parse::<u8>().is_ok())
        })
        .filter_map(|(k, v)| {
            let mut parts = v.split(',');
            let volid = parts.next()?.trim_start_matches("volume=").to_string();
            if volid.starts_with('/') || !volid.contains(':') {
                return None;
            }
            let mount = parts.find_map(|p| p.strip_prefix("mp="))?.to_string();
            Some((k.clone(), volid, mount))
        })
        .collect()
}

async fn wait(
    engine: &Engine,
    what: &str,
    upid: Result<appstore_pve::Upid, appstore_pve::PveError>,
) -> Result<(), String> {
    let upid = upid.map_err(|e| format!("{what}: {e}"))?;
    wait_task(engine.pve.as_ref(), &upid, engine.config.task_deadline)
        .await
        .map(|_| ())
        .map_err(|e| format!("{what}: {e}"))
}

/// The container holding `app_id`'s kept volumes: the one already recorded, or a new one.
async fn holder(engine: &Engine, app_id: &str, log: &JobLog) -> Result<Ctid, String> {
    let store = engine.store.clone();
    let app = app_id.to_string();
    let kept = blocking(move || store.kept_volumes(Some(&app)))
        .await
        .map_err(|e| e.to_string())?;
    for k in &kept {
        let id = k.holder_ctid;
        if !engine.pve.is_id_free(id).await.map_err(|e| e.to_string())? {
            return Ok(id);
        }
    }
    let storage = super::template_storage(
        engine.pve.as_ref(),
        &engine.config.node,
        engine.config.template_storage.as_deref(),
    )
    .await?;
    let template = super::newest_template(engine, &storage, "debian-12")
        .await?
        .ok_or("no debian-12 template to create the container that keeps the volumes")?;
    let ctid = engine
        .reserved_ctids
        .allocate(engine.pve.as_ref())
        .await
        .map_err(|e| format!("allocating a container id: {e}"))?;
    let mut hostname = format!("keep-{app_id}");
    hostname.truncate(63);
    let spec = CreateLxc {
        vmid: ctid,
        ostemplate: template,
        hostname,
        pool: engine.config.pool.clone(),
        storage: engine.config.storage.clone(),
        disk_gb: 1,
        cores: 1,
        memory_mb: 64,
        swap_mb: 0,
        unprivileged: true,
        onboot: false,
        nesting: false,
        net: NetConfig {
            bridge: engine.config.bridge.clone(),
            ip: "dhcp".into(),
            gw: None,
            ip6: None,
            gw6: None,
            tag: None,
            firewall: true,
        },
        description: Some(format!(
            "Holds the data volumes kept when {app_id} was uninstalled (PVE App Store). Never started; the next install of {app_id} takes them back. Destroying this container deletes that data."
        )),
        volumes: Vec::new(),
    };
    let created = wait(
        engine,
        "creating the container that keeps the volumes",
        engine.pve.lxc_create(&engine.config.node, &spec).await,
    )
    .await;
    engine.reserved_ctids.release(ctid).await;
    created?;
    let cfg = engine
        .pve
        .lxc_config(&engine.config.node, ctid)
        .await
        .map_err(|e| e.to_string())?;
    engine
        .pve
        .lxc_update_config(
            &engine.config.node,
            ctid,
            &[("tags".into(), join_tags([MANAGED_TAG, HOLDER_TAG]))],
            &[],
            Some(&cfg.digest),
        )
        .await
        .map_err(|e| format!("tagging the volume holder: {e}"))?;
    log.info(&format!(
        "container {ctid} (keep-{app_id}, never started) now holds the kept volumes of {app_id}"
    ))
    .await;
    Ok(ctid)
}

/// Hands every storage volume of the stopped container `ctid` to the app's holder and records it;
/// `name_of(mount_path)` gives the manifest's volume name.
pub(super) async fn keep(
    engine: &Engine,
    app_id: &str,
    ctid: Ctid,
    name_of: &(dyn Fn(&str) -> String + Sync),
    log: &JobLog,
) -> Result<(), String> {
    let node = engine.config.node.clone();
    let cfg = engine
        .pve
        .lxc_config(&node, ctid)
        .await
        .map_err(|e| format!("reading container {ctid}: {e}"))?;
    let volumes = storage_volumes(&cfg.options);
    if volumes.is_empty() {
        log.info("the container has no data volumes to keep").await;
        return Ok(());
    }
    let holder_id = holder(engine, app_id, log).await?;
    for (key, volid, mount) in volumes {
        let held = engine
            .pve
            .lxc_config(&node, holder_id)
            .await
            .map_err(|e| e.to_string())?;
        let free = (0..=255u16)
            .map(|i| format!("mp{i}"))
            .find(|k| !held.options.contains_key(k))
            .ok_or("the volume holder has no free mount point")?;
        wait(
            engine,
            &format!("handing {key} to the volume holder"),
            engine
                .pve
                .lxc_move_volume(&node, ctid, &key, holder_id, &free)
                .await,
        )
        .await?;
        let after = engine
            .pve
            .lxc_config(&node, holder_id)
            .await
            .map_err(|e| e.to_string())?;
        let new_volid = after
            .options
            .get(&free)
            .and_then(|v| v.split(',').next())
            .unwrap_or(&volid)
            .to_string();
        let kept = KeptVolume {
            id: 0,
            app_id: app_id.to_string(),
            name: name_of(&mount),
            mount_path: mount.clone(),
            volid: new_volid.clone(),
            holder_ctid: holder_id,
            holder_key: free,
            from_ctid: Some(ctid),
            kept_at: 0,
        };
        let store = engine.store.clone();
        blocking(move || store.keep_volume(&kept))
            .await
            .map_err(|e| e.to_string())?;
        log.info(&format!(
            "kept volume `{}` ({mount}) as {new_volid} in container {holder_id}; a later install of {app_id} takes it back",
            name_of(&mount)
        ))
        .await;
    }
    Ok(())
}

/// Moves a kept volume into the stopped container `ctid` at `key`, mounted at `mount_path`; the
/// holder is destroyed once it holds nothing.
pub(super) async fn reattach(
    engine: &Engine,
    kept: &KeptVolume,
    ctid: Ctid,
    key: &str,
    mount_path: &str,
    log: &JobLog,
) -> Result<(), String> {
    let node = engine.config.node.clone();
    let holder_id = kept.holder_ctid;
    let target = engine
        .pve
        .lxc_config(&node, ctid)
        .await
        .map_err(|e| e.to_string())?;
    // Resumed after the move: it is there already.
    let already = target.options.get(key).is_some_and(|v| {
        v.contains(&format!("mp={}", kept.mount_path)) || v.contains(&format!("mp={mount_path}"))
    });
    if !already {
        wait(
            engine,
            &format!("taking back kept volume `{}`", kept.name),
            engine
                .pve
                .lxc_move_volume(&node, holder_id, &kept.holder_key, ctid, key)
                .await,
        )
        .await?;
    }
    if kept.mount_path != mount_path {
        // The new version mounts it elsewhere.
        let cfg = engine
            .pve
            .lxc_config(&node, ctid)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(line) = cfg.options.get(key) {
            let value = line.replace(
                &format!("mp={}", kept.mount_path),
                &format!("mp={mount_path}"),
            );
            engine
                .pve
                .lxc_update_config(
                    &node,
                    ctid,
                    &[(key.to_string(), value)],
                    &[],
                    Some(&cfg.digest),
                )
                .await
                .map_err(|e| format!("mounting the kept volume at {mount_path}: {e}"))?;
        }
    }
    let store = engine.store.clone();
    let id = kept.id;
    blocking(move || store.remove_kept_volume(id))
        .await
        .map_err(|e| e.to_string())?;
    log.info(&format!(
        "attached kept volume `{}` ({}) from an earlier install at {mount_path}",
        kept.name, kept.volid
    ))
    .await;
    // An empty holder goes.
    let held = engine
        .pve
        .lxc_config(&node, holder_id)
        .await
        .map_err(|e| e.to_string())?;
    if storage_volumes(&held.options).is_empty() {
        wait(
            engine,
            "removing the empty volume holder",
            engine.pve.lxc_destroy(&node, holder_id, true).await,
        )
        .await?;
        log.info(&format!(
            "container {holder_id} held nothing more and was removed"
        ))
        .await;
    }
    Ok(())
}
