//! GpuManagerActor: the host's GPU inventory, probed at start and rescanned on a schedule (the safety
//! net under the hot-plug monitor of the GPU work), published through a [`GpuHandle`] that readers
//! clone; a change is announced on the event channel.

use actix::prelude::*;
use appstore_gpu::{GpuInventory, GpuProbe};
use serde::Serialize;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What readers see.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GpuStatus {
    /// The last inventory.
    pub inventory: GpuInventory,
    /// The last probe's error.
    pub last_error: Option<String>,
    /// Probes so far.
    pub scans: u64,
}

/// A cheap, clonable read handle on the inventory.
#[derive(Debug, Clone, Default)]
pub struct GpuHandle(Arc<RwLock<GpuStatus>>);

impl GpuHandle {
    /// Serves `inventory` as the current one (for programs that embed the engine with an inventory
    /// of their own, and tests); the scan count goes up as after a probe.
    pub fn publish(&self, inventory: GpuInventory) {
        let mut status = self.status();
        status.inventory = inventory;
        status.scans += 1;
        status.last_error = None;
        match self.0.write() {
            Ok(mut s) => *s = status,
            Err(p) => *p.into_inner() = status,
        }
    }

    /// The current status.
    pub fn status(&self) -> GpuStatus {
        match self.0.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// Probe now.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Rescan;

/// Owns the probe.
pub struct GpuManagerActor {
    probe: Box<dyn GpuProbe + Send>,
    handle: GpuHandle,
    every: Duration,
    changed: tokio::sync::broadcast::Sender<GpuInventory>,
}

impl std::fmt::Debug for GpuManagerActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuManagerActor")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl GpuManagerActor {
    /// Probes with `probe` now and every `every`; changes go to `changed`.
    pub fn new(
        probe: Box<dyn GpuProbe + Send>,
        handle: GpuHandle,
        every: Duration,
        changed: tokio::sync::broadcast::Sender<GpuInventory>,
    ) -> Self {
        GpuManagerActor {
            probe,
            handle,
            every,
            changed,
        }
    }
}

impl Actor for GpuManagerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.notify(Rescan);
        ctx.run_interval(self.every, |_, ctx| ctx.notify(Rescan));
    }
}

impl actix::Supervised for GpuManagerActor {}

impl Handler<Rescan> for GpuManagerActor {
    type Result = ();

    fn handle(&mut self, _: Rescan, _: &mut Self::Context) {
        // sysfs reads are quick and local; no thread hop needed.
        let result = self.probe.probe();
        let mut status = self.handle.status();
        status.scans += 1;
        match result {
            Ok(inv) => {
                let changed = inv != status.inventory;
                status.inventory = inv.clone();
                status.last_error = None;
                if changed && status.scans > 1 {
                    tracing::info!(gpus = inv.gpus.len(), "GPU inventory changed");
                    let _ = self.changed.send(inv);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "GPU probe failed");
                status.last_error = Some(e.to_string());
            }
        }
        match self.handle.0.write() {
            Ok(mut s) => *s = status,
            Err(p) => *p.into_inner() = status,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Mutex;

    struct Scripted(Arc<Mutex<Vec<GpuInventory>>>);

    impl GpuProbe for Scripted {
        fn probe(&self) -> Result<GpuInventory, appstore_gpu::Error> {
            let mut list = self.0.lock().unwrap();
            Ok(if list.len() > 1 {
                list.remove(0)
            } else {
                list[0].clone()
            })
        }
    }

    #[actix::test]
    async fn rescans_publish_the_inventory_and_announce_changes() {
        let first = GpuInventory::default();
        let second = GpuInventory {
            nvidia_driver_version: Some("550.54.14".into()),
            ..Default::default()
        };
        let probe = Scripted(Arc::new(Mutex::new(vec![first, second.clone()])));
        let handle = GpuHandle::default();
        let (tx, mut rx) = tokio::sync::broadcast::channel(4);
        let addr = GpuManagerActor::new(
            Box::new(probe),
            handle.clone(),
            Duration::from_secs(3600),
            tx,
        )
        .start();
        addr.send(Rescan).await.unwrap();
        let status = handle.status();
        assert!(status.scans >= 2);
        assert_eq!(status.inventory, second);
        assert_eq!(rx.recv().await.unwrap(), second);
    }
}
