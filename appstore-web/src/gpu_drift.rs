//! GPU drift, live: after every change of the GPU inventory (hot-plug events, rescans) each app
//! with a GPU is compared with the host. New drift (a changed NVIDIA driver, a vanished card) goes
//! out once on `/api/events` and to the notification targets; an app whose vanished card is back
//! gets a GPU sync job, which attaches it again.

use appstore_actors::store::{GpuAttachment, InstallRecord};
use appstore_actors::GpuStatus;
use appstore_core::gpu_drift::{drift, Drift};
use appstore_core::notify::{Notification, NotifyEvent};
use std::collections::{BTreeMap, BTreeSet};

/// Each installed app's drift: install id -> what no longer matches.
pub fn compute(
    installs: &[InstallRecord],
    attachments: &[GpuAttachment],
    userland: &BTreeMap<u32, String>,
    status: &GpuStatus,
) -> BTreeMap<i64, Vec<Drift>> {
    // Before the first scan nothing is known about the host.
    if status.scans == 0 {
        return BTreeMap::new();
    }
    let present: BTreeSet<String> = status
        .inventory
        .gpus
        .iter()
        .map(|g| g.pci_address.clone())
        .collect();
    let host = status.inventory.nvidia_driver_version.as_deref();
    installs
        .iter()
        .filter(|i| i.status == "installed")
        .filter_map(|i| {
            let ctid = i.ctid?;
            let attached: BTreeSet<String> = attachments
                .iter()
                .filter(|a| a.ctid == ctid)
                .filter_map(|a| a.pci_address.clone())
                .collect();
            if attached.is_empty() {
                return None;
            }
            let d = drift(
                &attached,
                userland.get(&ctid.get()).map(String::as_str),
                &present,
                host,
            );
            (!d.is_empty()).then_some((i.id, d))
        })
        .collect()
}

/// Follows the GPU inventory (`changes`) and acts on drift as it appears and goes.
pub fn watch(state: crate::api::ApiState) {
    let Some(jobs) = state.jobs.clone() else {
        return;
    };
    let mut changes = state.gpu_changes.subscribe();
    tokio::spawn(async move {
        let mut before: Option<BTreeMap<i64, Vec<Drift>>> = None;
        loop {
            let store = jobs.store.clone();
            let read = tokio::task::spawn_blocking(move || {
                Ok::<_, appstore_actors::store::StoreError>((
                    store.installs()?,
                    store.gpu_attachments()?,
                    store.gpu_userland()?,
                ))
            })
            .await;
            if let Ok(Ok((installs, attachments, userland))) = read {
                let now = compute(&installs, &attachments, &userland, &state.gpus.status());
                if let Some(prev) = &before {
                    for (id, list) in &now {
                        let app = installs
                            .iter()
                            .find(|i| i.id == *id)
                            .map(|i| i.app_id.clone())
                            .unwrap_or_default();
                        for d in list {
                            if prev.get(id).is_some_and(|p| p.contains(d)) {
                                continue;
                            }
                            tracing::warn!(install = id, app = %app, drift = %d.message(), "GPU drift");
                            let _ = state.drift.send(Notification {
                                event: NotifyEvent::GpuDrift,
                                title: format!("{app}: GPU drift"),
                                message: d.message(),
                                install_id: Some(*id),
                                app_id: Some(app.clone()),
                                job_id: None,
                            });
                        }
                    }
                    // A card that had vanished is back: attach it again.
                    for (id, list) in prev {
                        let came_back = list.iter().any(|d| {
                            matches!(d, Drift::Vanished { pci_address }
                                if !now.get(id).is_some_and(|n| n.iter().any(|x| matches!(x, Drift::Vanished { pci_address: p } if p == pci_address))))
                        });
                        if came_back {
                            let request = appstore_actors::engine::MaintainRequest {
                                install_id: *id,
                                ..Default::default()
                            };
                            match jobs
                                .maintain(appstore_core::job::JobKind::GpuSync, request)
                                .await
                            {
                                Ok(job) => tracing::info!(
                                    install = id,
                                    job,
                                    "the GPU is back; attaching it again"
                                ),
                                Err(e) => {
                                    tracing::warn!(install = id, error = %e, "the GPU is back, but the GPU sync was refused")
                                }
                            }
                        }
                    }
                }
                before = Some(now);
            }
            match changes.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}
