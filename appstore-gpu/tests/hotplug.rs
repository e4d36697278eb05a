//! The udev plumbing on this machine: a kernel-source monitor receives real uevents (a veth pair
//! made and removed here; no GPU needed), and the subsystem filter is the only thing that decides
//! what a monitor sees. Needs root for `ip link`; CI has it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use appstore_gpu::hotplug::{Source, UdevMonitor, Uevent, UeventSource};
use std::process::Command;
use std::time::{Duration, Instant};

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Removes the veth pair however the test ends.
struct Veth(String);

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Events until `want` matches one, for at most `limit`.
fn wait_for(m: &mut UdevMonitor, limit: Duration, want: impl Fn(&Uevent) -> bool) -> Vec<Uevent> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < limit {
        if let Some(e) = m.next_event(Duration::from_millis(100)).unwrap() {
            let done = want(&e);
            seen.push(e);
            if done {
                break;
            }
        }
    }
    seen
}

#[test]
fn a_kernel_source_monitor_receives_real_uevents_through_its_subsystem_filter() {
    let mut net = UdevMonitor::open_source(Source::Kernel, &["net"]).unwrap();
    let mut gpu =
        UdevMonitor::open_source(Source::Kernel, &appstore_gpu::hotplug::GPU_SUBSYSTEMS).unwrap();
    assert_eq!(net.name(), "kernel");
    let name = format!("agpu{}", std::process::id() % 100_000);
    let peer = format!("{name}p");
    if !ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer]) {
        assert!(
            std::env::var("APPSTORE_REQUIRE_LXC").as_deref() != Ok("1"),
            "creating a veth pair needs root, which CI has"
        );
        eprintln!("skipped: creating a veth pair needs root");
        return;
    }
    let guard = Veth(name.clone());
    let seen = wait_for(&mut net, Duration::from_secs(5), |e| {
        e.sysname == name && e.action == "add"
    });
    let add = seen
        .iter()
        .find(|e| e.sysname == name)
        .expect("the veth's add event");
    assert_eq!(
        (add.action.as_str(), add.subsystem.as_str()),
        ("add", "net")
    );
    // The same plumbing with the GPU subsystems' filter lets none of it through.
    let other = wait_for(&mut gpu, Duration::from_millis(300), |_| false);
    assert!(other.iter().all(|e| e.subsystem != "net"), "{other:?}");
    drop(guard);
    let seen = wait_for(&mut net, Duration::from_secs(5), |e| {
        e.sysname == name && e.action == "remove"
    });
    assert!(
        seen.iter()
            .any(|e| e.sysname == name && e.action == "remove"),
        "{seen:?}"
    );
}

#[test]
fn the_monitor_picks_udevd_when_it_runs_and_the_kernel_otherwise() {
    let m = UdevMonitor::open(&appstore_gpu::hotplug::GPU_SUBSYSTEMS).unwrap();
    let want = if appstore_gpu::hotplug::udevd_running() {
        Source::Udev
    } else {
        Source::Kernel
    };
    assert_eq!(m.source(), want);
}
