//! Device events for the GPU inventory: a udev monitor filtered to the subsystems GPUs live in,
//! reading from udevd when it runs and straight from the kernel's uevents when it does not (a PVE
//! host always runs udevd; containers and CI machines often do not). Events come through the
//! [`UeventSource`] trait, so tests and the demo can inject their own.

use std::os::fd::AsFd;
use std::time::Duration;

/// The subsystems whose events can change the GPU inventory: DRM nodes come and go with `drm`,
/// NVIDIA cards (no DRM node on the proprietary driver) with `pci`.
pub const GPU_SUBSYSTEMS: [&str; 2] = ["drm", "pci"];

/// One device event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `add`, `remove`, `change`, `bind`, `unbind`, ...
    pub action: String,
    /// `drm`, `pci`, `net`, ...
    pub subsystem: String,
    /// The device's kernel name (`renderD128`, `0000:01:00.0`, `veth0`).
    pub sysname: String,
}

/// A stream of device events. (A udev monitor belongs to the thread that opened it: open sources
/// on the thread that reads them.)
pub trait UeventSource {
    /// The next event, waiting at most `timeout`; `Ok(None)` when none came.
    fn next_event(&mut self, timeout: Duration) -> std::io::Result<Option<Uevent>>;
    /// Where the events come from, for logs (`udev`, `kernel`, `injected`).
    fn name(&self) -> &'static str;
}

/// Which netlink group a monitor listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Events after udevd processed them (device nodes exist, permissions set).
    Udev,
    /// The kernel's own uevents (no udevd needed).
    Kernel,
}

/// A udev monitor socket.
pub struct UdevMonitor {
    socket: udev::MonitorSocket,
    source: Source,
}

impl std::fmt::Debug for UdevMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdevMonitor")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Is udevd running (its control socket exists)?
pub fn udevd_running() -> bool {
    std::path::Path::new("/run/udev/control").exists()
}

impl UdevMonitor {
    /// A monitor of `subsystems` on `source`.
    pub fn open_source(source: Source, subsystems: &[&str]) -> std::io::Result<UdevMonitor> {
        let mut builder = match source {
            Source::Udev => udev::MonitorBuilder::new()?,
            Source::Kernel => udev::MonitorBuilder::new_kernel()?,
        };
        for s in subsystems {
            builder = builder.match_subsystem(s)?;
        }
        Ok(UdevMonitor {
            socket: builder.listen()?,
            source,
        })
    }

    /// A monitor of `subsystems`: udevd's events when it runs, else the kernel's.
    pub fn open(subsystems: &[&str]) -> std::io::Result<UdevMonitor> {
        let source = if udevd_running() {
            Source::Udev
        } else {
            Source::Kernel
        };
        Self::open_source(source, subsystems)
    }

    /// Where its events come from.
    pub fn source(&self) -> Source {
        self.source
    }
}

impl UeventSource for UdevMonitor {
    fn next_event(&mut self, timeout: Duration) -> std::io::Result<Option<Uevent>> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let fd = self.socket.as_fd();
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let wait = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        match poll(&mut fds, Some(&wait)) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        // Events that do not pass the subsystem filter are dropped by libudev: none then.
        Ok(self.socket.iter().next().map(|event| {
            let action = event
                .action()
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default();
            Uevent {
                action,
                subsystem: event
                    .subsystem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sysname: event.sysname().to_string_lossy().into_owned(),
            }
        }))
    }

    fn name(&self) -> &'static str {
        match self.source {
            Source::Udev => "udev",
            Source::Kernel => "kernel",
        }
    }
}

/// Events sent from elsewhere in the process (tests, the demo's simulated hot-plug).
#[derive(Debug)]
pub struct ChannelSource(pub std::sync::mpsc::Receiver<Uevent>);

impl UeventSource for ChannelSource {
    fn next_event(&mut self, timeout: Duration) -> std::io::Result<Option<Uevent>> {
        match self.0.recv_timeout(timeout) {
            Ok(e) => Ok(Some(e)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the event sender is gone",
            )),
        }
    }

    fn name(&self) -> &'static str {
        "injected"
    }
}
