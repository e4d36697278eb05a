//! GpuManagerActor: the host's GPU inventory, probed at start, again shortly after device events
//! (a udev monitor on the GPU subsystems; bursts are debounced into one rescan) and on a schedule as
//! the safety net, published through a [`GpuHandle`] that readers clone. Each change is announced
//! on the event channel with what was added, removed or changed.

use actix::prelude::*;
use appstore_gpu::hotplug::{Uevent, UeventSource};
use appstore_gpu::{Gpu, GpuInventory, GpuProbe};
use serde::Serialize;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long the manager waits after a device event for more before it rescans.
pub const DEBOUNCE: Duration = Duration::from_millis(250);
/// The longest a burst of events can put a rescan off (the `pci` subsystem is busy on some hosts).
pub const DEBOUNCE_MAX: Duration = Duration::from_secs(2);

/// One GPU that came, went or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GpuDelta {
    /// A GPU appeared.
    Added {
        /// It.
        gpu: Gpu,
    },
    /// A GPU went away.
    Removed {
        /// What it was.
        gpu: Gpu,
    },
    /// A GPU's nodes, driver or problems changed.
    Changed {
        /// Before.
        before: Gpu,
        /// Now.
        after: Gpu,
    },
}

/// A change of the inventory: what changed, and the inventory now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuChange {
    /// Per GPU, by PCI address.
    pub deltas: Vec<GpuDelta>,
    /// The whole inventory after the change.
    pub inventory: GpuInventory,
}

/// The deltas from `old` to `new`, by PCI address.
pub fn deltas(old: &GpuInventory, new: &GpuInventory) -> Vec<GpuDelta> {
    let mut out = Vec::new();
    for g in &new.gpus {
        match old.gpus.iter().find(|o| o.pci_address == g.pci_address) {
            None => out.push(GpuDelta::Added { gpu: g.clone() }),
            Some(o) if o != g => out.push(GpuDelta::Changed {
                before: o.clone(),
                after: g.clone(),
            }),
            Some(_) => {}
        }
    }
    for o in &old.gpus {
        if !new.gpus.iter().any(|g| g.pci_address == o.pci_address) {
            out.push(GpuDelta::Removed { gpu: o.clone() });
        }
    }
    out
}

/// Opens the device-event source on the reader thread (udev monitors stay on the thread that made
/// them).
pub type EventSourceFactory =
    Box<dyn FnOnce() -> std::io::Result<Box<dyn UeventSource>> + Send + 'static>;

/// A device event, from the reader thread.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct DeviceEvent(Uevent);

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
    probe: Arc<dyn GpuProbe + Send + Sync>,
    /// A probe is running (on a blocking thread); `again`: another was asked for meanwhile.
    scanning: bool,
    again: bool,
    /// When the first event of the current burst came (the rescan waits at most [`DEBOUNCE_MAX`]).
    burst_since: Option<std::time::Instant>,
    handle: GpuHandle,
    every: Duration,
    changed: tokio::sync::broadcast::Sender<GpuChange>,
    events: Option<EventSourceFactory>,
    pending: Option<SpawnHandle>,
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
        probe: Box<dyn GpuProbe + Send + Sync>,
        handle: GpuHandle,
        every: Duration,
        changed: tokio::sync::broadcast::Sender<GpuChange>,
    ) -> Self {
        GpuManagerActor {
            probe: Arc::from(probe),
            scanning: false,
            again: false,
            burst_since: None,
            handle,
            every,
            changed,
            events: None,
            pending: None,
        }
    }

    /// Also rescans after device events from the source `open` makes.
    pub fn with_events(mut self, open: EventSourceFactory) -> Self {
        self.events = Some(open);
        self
    }
}

impl Actor for GpuManagerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.notify(Rescan);
        ctx.run_interval(self.every, |_, ctx| ctx.notify(Rescan));
        // Opened once: after a supervised restart the same reader keeps feeding the same mailbox.
        if let Some(open) = self.events.take() {
            let addr = ctx.address();
            let spawned = std::thread::Builder::new()
                .name("gpu-uevents".into())
                .spawn(move || read_events(open, addr));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start the device-event reader; GPUs are rescanned on the schedule only");
            }
        }
    }
}

/// The reader thread: opens the source, forwards each event to the manager until the manager's
/// mailbox closes (the system stopped).
fn read_events(open: EventSourceFactory, addr: Addr<GpuManagerActor>) {
    let mut source = match open() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch device events; GPUs are rescanned on the schedule only");
            return;
        }
    };
    tracing::info!(source = source.name(), "watching GPU device events");
    while addr.connected() {
        match source.next_event(Duration::from_millis(500)) {
            Ok(Some(e)) => addr.do_send(DeviceEvent(e)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "device events stopped; GPUs are rescanned on the schedule only");
                return;
            }
        }
    }
}

impl Handler<DeviceEvent> for GpuManagerActor {
    type Result = ();

    fn handle(&mut self, e: DeviceEvent, ctx: &mut Self::Context) {
        tracing::debug!(action = %e.0.action, subsystem = %e.0.subsystem, device = %e.0.sysname, "device event");
        // A burst (a card brings several nodes) becomes one rescan after the last event, but
        // a stream of unrelated events never puts it off by more than DEBOUNCE_MAX.
        let since = *self.burst_since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() >= DEBOUNCE_MAX && self.pending.is_some() {
            return;
        }
        if let Some(h) = self.pending.take() {
            ctx.cancel_future(h);
        }
        self.pending = Some(ctx.run_later(DEBOUNCE, |act, ctx| {
            act.pending = None;
            act.burst_since = None;
            ctx.notify(Rescan);
        }));
    }
}

impl actix::Supervised for GpuManagerActor {}

impl Handler<Rescan> for GpuManagerActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Rescan, _: &mut Self::Context) -> Self::Result {
        // One probe at a time, off the actors' thread (nvidia-smi can take seconds); a rescan asked
        // for meanwhile runs right after.
        if self.scanning {
            self.again = true;
            return Box::pin(actix::fut::ready(()));
        }
        self.scanning = true;
        let probe = Arc::clone(&self.probe);
        let work = tokio::task::spawn_blocking(move || probe.probe());
        Box::pin(work.into_actor(self).map(|joined, act, ctx| {
            act.scanning = false;
            if std::mem::take(&mut act.again) {
                ctx.notify(Rescan);
            }
            let result = match joined {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "the GPU probe stopped");
                    return;
                }
            };
            act.apply(result);
        }))
    }
}

impl GpuManagerActor {
    fn apply(&mut self, result: Result<GpuInventory, appstore_gpu::Error>) {
        let mut status = self.handle.status();
        status.scans += 1;
        match result {
            Ok(inv) => {
                let found = deltas(&status.inventory, &inv);
                let changed = inv != status.inventory;
                status.inventory = inv.clone();
                status.last_error = None;
                if changed && status.scans > 1 {
                    for d in &found {
                        match d {
                            GpuDelta::Added { gpu } => {
                                tracing::info!(pci = %gpu.pci_address, "GPU added")
                            }
                            GpuDelta::Removed { gpu } => {
                                tracing::info!(pci = %gpu.pci_address, "GPU removed")
                            }
                            GpuDelta::Changed { after, .. } => {
                                tracing::info!(pci = %after.pci_address, "GPU changed")
                            }
                        }
                    }
                    let _ = self.changed.send(GpuChange {
                        deltas: found,
                        inventory: inv,
                    });
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
    use std::sync::atomic::Ordering;
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
        // The start's scan and this one (queued behind it when it was still running): the second
        // finds a new driver and announces it.
        let change = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a change within 5 s")
            .unwrap();
        assert_eq!(change.inventory, second);
        assert!(change.deltas.is_empty(), "no GPU came or went");
        let status = handle.status();
        assert!(status.scans >= 2);
        assert_eq!(status.inventory, second);
    }

    /// Counts probes, reading a fixture host.
    struct Counting(
        appstore_gpu::SysfsProbe,
        Arc<std::sync::atomic::AtomicUsize>,
    );

    impl GpuProbe for Counting {
        fn probe(&self) -> Result<GpuInventory, appstore_gpu::Error> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.probe()
        }
    }

    #[actix::test]
    async fn device_events_are_debounced_into_one_rescan_that_announces_the_removed_gpu() {
        use appstore_gpu::fixture::{FixtureHost, Scenario};
        let dir = tempfile::tempdir().unwrap();
        let host = FixtureHost::scenario(dir.path(), Scenario::Mixed).unwrap();
        let probes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let probe = Counting(
            appstore_gpu::SysfsProbe::new(appstore_gpu::HostRoot::at(dir.path())),
            Arc::clone(&probes),
        );
        let (events_tx, events_rx) = std::sync::mpsc::channel();
        let handle = GpuHandle::default();
        let (tx, mut rx) = tokio::sync::broadcast::channel(4);
        let _addr = GpuManagerActor::new(
            Box::new(probe),
            handle.clone(),
            Duration::from_secs(3600),
            tx,
        )
        .with_events(Box::new(move || {
            Ok(Box::new(appstore_gpu::hotplug::ChannelSource(events_rx)) as Box<dyn UeventSource>)
        }))
        .start();
        // The start's scan is published, not announced.
        while handle.status().scans == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(handle.status().inventory.gpus.len(), 3);
        let before = probes.load(Ordering::SeqCst);
        // The AMD card goes: the kernel sends a burst of events for it.
        host.unplug("0000:03:00.0").unwrap();
        for (sub, name) in [
            ("drm", "renderD129"),
            ("drm", "card1"),
            ("pci", "0000:03:00.0"),
        ] {
            events_tx
                .send(Uevent {
                    action: "remove".into(),
                    subsystem: sub.into(),
                    sysname: name.into(),
                })
                .unwrap();
        }
        let change = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a change within 5 s")
            .unwrap();
        assert_eq!(change.inventory.gpus.len(), 2);
        assert!(
            matches!(&change.deltas[..], [GpuDelta::Removed { gpu }] if gpu.pci_address == "0000:03:00.0"),
            "{:?}",
            change.deltas
        );
        tokio::time::sleep(DEBOUNCE * 2).await;
        assert_eq!(
            probes.load(Ordering::SeqCst) - before,
            1,
            "three events, one rescan"
        );
        // Plugged back: added.
        host.amd("0000:03:00.0", 0x744c, 1, false).unwrap();
        events_tx
            .send(Uevent {
                action: "add".into(),
                subsystem: "pci".into(),
                sysname: "0000:03:00.0".into(),
            })
            .unwrap();
        let change = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(&change.deltas[..], [GpuDelta::Added { gpu }] if gpu.pci_address == "0000:03:00.0")
        );
    }
}
