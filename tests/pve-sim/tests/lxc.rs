//! The simulator's real LXC back end, through the API and `pct` as a caller sees them: create from the
//! cached Debian 12 root file system, start, push and exec with real exit codes, signals, a push that
//! fails but exits 0, a device attached with `devN`, raw `lxc.*` lines, the host reaching the container,
//! and nothing left on the host afterwards. Needs root, LXC and debootstrap: without them these tests
//! say "skipped" unless `APPSTORE_REQUIRE_LXC=1`, which makes a missing prerequisite a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

use pve_sim::backend::Backend;
use pve_sim::harness::{lxc_available, HarnessOptions, RunningSim};
use pve_sim::lxc::LxcBackend;
use pve_sim::state::SimRoot;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

fn start_lxc_node() -> RunningSim {
    pve_sim::harness::start(HarnessOptions {
        backend: "lxc".into(),
        ..Default::default()
    })
    .unwrap()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn call(sim: &RunningSim, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut req = client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}/api2/json{path}", sim.url),
        )
        .header(
            "Authorization",
            format!("PVEAPIToken={}", sim.creds.root_token),
        );
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(b.to_string());
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = serde_json::from_str(&resp.text().unwrap()).unwrap_or_default();
    assert_eq!(status, 200, "{method} {path}: {body}");
    body
}

/// Runs a task-starting call and waits for the task; returns its exit status.
fn task(sim: &RunningSim, method: &str, path: &str, body: Option<&str>, limit: Duration) -> String {
    let upid = call(sim, method, path, body)["data"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + limit;
    loop {
        let st = call(
            sim,
            "GET",
            &format!("/nodes/pve1/tasks/{}/status", enc(&upid)),
            None,
        );
        if st["data"]["status"] == "stopped" {
            return st["data"]["exitstatus"].as_str().unwrap_or("").to_string();
        }
        assert!(Instant::now() < deadline, "task {upid} still running");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pct(sim: &RunningSim, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(sim.root.join("usr/sbin/pct"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A character device node made for the test, removed on drop. Its major is one of the numbers
/// reserved for local use that no driver has taken, so opening it can reach no hardware.
struct TestNode {
    path: PathBuf,
    major: u32,
}

impl TestNode {
    fn make(path: PathBuf, minor: u32) -> TestNode {
        let taken: Vec<u32> = std::fs::read_to_string("/proc/devices")
            .unwrap()
            .lines()
            .take_while(|l| !l.starts_with("Block"))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        let major = (60..=63)
            .chain(120..=127)
            .find(|m| !taken.contains(m))
            .expect("a free local-use character major");
        let ok = std::process::Command::new("mknod")
            .args(["-m", "0600"])
            .arg(&path)
            .args(["c", &major.to_string(), &minor.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mknod {}", path.display());
        TestNode { path, major }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn links() -> String {
    String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned()
}

#[test]
fn real_lxc_runs_pushes_execs_and_passes_devices() {
    if !lxc_available() {
        return;
    }
    let sim = start_lxc_node();
    let backend = LxcBackend::new(SimRoot::open(&sim.root).unwrap());
    let (bridge, veth, name) = (
        backend.bridge_name(),
        backend.veth_name(200, 0),
        backend.container_name(200),
    );
    let timer = Instant::now();

    // Create through the API; the first create on a machine builds the root file system cache.
    let create = format!(
        "vmid=200&ostemplate={}&rootfs=local-lvm:4&hostname=sim-ct&unprivileged=0&net0={}",
        enc(TEMPLATE),
        enc("name=eth0,bridge=vmbr0,ip=dhcp")
    );
    let status = task(
        &sim,
        "POST",
        "/nodes/pve1/lxc",
        Some(&create),
        Duration::from_secs(900),
    );
    assert_eq!(status, "OK");
    eprintln!("create: {:?}", timer.elapsed());

    // A render-node-like device, attached as root would, and a raw bind mount and cgroup rule.
    let render = TestNode::make(
        PathBuf::from(format!("/dev/pve-sim-test-render-{}", std::process::id())),
        128,
    );
    let dev0 = format!("{},gid=104,mode=0660", render.path.display());
    assert_eq!(pct(&sim, &["set", "200", "--dev0", &dev0]).0, 0);
    let share = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("note.txt"), "from the host\n").unwrap();
    {
        let root = SimRoot::open(&sim.root).unwrap();
        let _lock = root.lock_config(200).unwrap();
        let (mut conf, _) = root.read_conf(200).unwrap();
        let cur = conf.current_mut();
        cur.push_raw_lxc(
            "lxc.mount.entry",
            &format!(
                "{} mnt/share none bind,create=dir 0 0",
                share.path().display()
            ),
        );
        cur.push_raw_lxc(
            "lxc.cgroup2.devices.allow",
            &format!("c {}:129 rwm", render.major),
        );
        root.write_conf(200, &conf).unwrap();
    }

    let status = task(
        &sim,
        "POST",
        "/nodes/pve1/lxc/200/status/start",
        None,
        Duration::from_secs(60),
    );
    assert_eq!(status, "OK");
    assert_eq!(pct(&sim, &["status", "200"]).1, "status: running\n");
    eprintln!("start: {:?}", timer.elapsed());

    // systemd is init and comes up (start returns before it is ready, as on PVE: callers wait).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let wait = [
            "exec",
            "200",
            "--",
            "systemctl",
            "is-system-running",
            "--wait",
        ];
        let (_, state, err) = pct(&sim, &wait);
        if matches!(state.trim(), "running" | "degraded") {
            break;
        }
        assert!(Instant::now() < deadline, "systemd: {state} {err}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(pct(&sim, &["exec", "200", "--", "hostname"]).1, "sim-ct\n");

    // push + exec with the command's own exit codes.
    let script = sim.root.join("probe.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"probe on $(hostname)\"\nexit \"${1:-0}\"\n",
    )
    .unwrap();
    let script = script.to_str().unwrap();
    assert_eq!(
        pct(
            &sim,
            &["push", "200", script, "/root/probe.sh", "--perms", "0755"]
        )
        .0,
        0
    );
    let (code, out, _) = pct(&sim, &["exec", "200", "--", "/root/probe.sh"]);
    assert_eq!((code, out.as_str()), (0, "probe on sim-ct\n"));
    assert_eq!(
        pct(&sim, &["exec", "200", "--", "/root/probe.sh", "3"]).0,
        3
    );
    assert_eq!(
        pct(
            &sim,
            &["exec", "200", "--", "stat", "-c", "%a", "/root/probe.sh"]
        )
        .1,
        "755\n"
    );
    assert_eq!(
        pct(&sim, &["exec", "200", "--", "sh", "-c", "kill -9 $$"]).0,
        137
    );
    assert_eq!(pct(&sim, &["exec", "200", "--", "/nonexistent"]).0, 127);

    // The environment is exactly what pct passes (plus lxc-attach's `container=lxc`).
    let (_, env, _) = pct(&sim, &["exec", "200", "--keep-env", "0", "--", "env"]);
    let mut vars: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    vars.sort_unstable();
    assert_eq!(vars, ["PATH", "container"], "{env}");

    // A push to a missing directory fails, yet exits 0 as the real pct does.
    let (code, _, err) = pct(&sim, &["push", "200", script, "/nonexistent/dir/probe.sh"]);
    assert_eq!(code, 0);
    assert!(err.contains("No such file or directory"), "{err}");
    assert_eq!(
        pct(
            &sim,
            &[
                "exec",
                "200",
                "--",
                "test",
                "-f",
                "/nonexistent/dir/probe.sh"
            ]
        )
        .0,
        1
    );

    // pull
    let pulled = sim.root.join("hostname.pulled");
    assert_eq!(
        pct(
            &sim,
            &["pull", "200", "/etc/hostname", pulled.to_str().unwrap()]
        )
        .0,
        0
    );
    assert_eq!(std::fs::read_to_string(&pulled).unwrap(), "sim-ct\n");
    assert_eq!(
        pct(
            &sim,
            &["pull", "200", "/nonexistent", pulled.to_str().unwrap()]
        )
        .0,
        255
    );

    // devN: the node is there with the requested owner and mode, and usable per the cgroup allow
    // (no driver has the major, so the open fails with ENXIO, not with the cgroup's EPERM).
    let render_path = render.path.to_str().unwrap();
    let (_, owner, _) = pct(
        &sim,
        &[
            "exec",
            "200",
            "--",
            "stat",
            "-c",
            "%u:%g %a %t:%T",
            render_path,
        ],
    );
    assert_eq!(owner.trim(), format!("0:104 660 {:x}:80", render.major));
    let probe = |node: &str| {
        let (_, _, err) = pct(
            &sim,
            &["exec", "200", "--", "sh", "-c", &format!("exec 3< {node}")],
        );
        err
    };
    assert!(
        probe(render_path).contains("No such device or address"),
        "{}",
        probe(render_path)
    );
    // A node the config does not allow is refused by the device cgroup; the raw
    // `lxc.cgroup2.devices.allow` line allows minor 129.
    let major = render.major;
    let mk = format!("mknod /dev/psim-130 c {major} 130 && mknod /dev/psim-129 c {major} 129");
    assert_eq!(pct(&sim, &["exec", "200", "--", "sh", "-c", &mk]).0, 0);
    assert!(
        probe("/dev/psim-130").contains("Operation not permitted"),
        "{}",
        probe("/dev/psim-130")
    );
    assert!(
        probe("/dev/psim-129").contains("No such device or address"),
        "{}",
        probe("/dev/psim-129")
    );
    // The raw `lxc.mount.entry` line.
    assert_eq!(
        pct(&sim, &["exec", "200", "--", "cat", "/mnt/share/note.txt"]).1,
        "from the host\n"
    );

    // The host reaches the container's address: a socket-activated echo service inside answers.
    let ifaces = call(&sim, "GET", "/nodes/pve1/lxc/200/interfaces", None);
    let eth0 = ifaces["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth0")
        .unwrap()
        .clone();
    let inet = eth0["inet"].as_str().unwrap().to_string();
    assert!(inet.starts_with("10.") && inet.ends_with("/24"), "{inet}");
    let ip: std::net::Ipv4Addr = inet.split('/').next().unwrap().parse().unwrap();
    assert_eq!(ip.octets()[3], 202, "vmid-derived address: 2 + 200 % 252");
    let listen = [
        "systemd-run",
        "--unit",
        "psim-echo",
        "/usr/bin/systemd-socket-activate",
        "--listen=0.0.0.0:7777",
        "--accept",
        "--inetd",
        "/bin/echo",
        "hello from the container",
    ];
    let mut args = vec!["exec", "200", "--"];
    args.extend(listen);
    assert_eq!(pct(&sim, &args).0, 0);
    let addr = std::net::SocketAddr::from((ip, 7777));
    let deadline = Instant::now() + Duration::from_secs(15);
    let answer = loop {
        let got = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).and_then(
            |mut s| {
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut text = String::new();
                s.read_to_string(&mut text)?;
                Ok(text)
            },
        );
        match got {
            Ok(text) if !text.is_empty() => break text,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("host cannot reach {addr}: {other:?}"),
        }
    };
    assert_eq!(answer, "hello from the container\n");
    assert!(
        links().contains(&format!(" {veth}@")),
        "veth {veth} on the host"
    );

    // Stop and destroy remove the container.
    let status = task(
        &sim,
        "POST",
        "/nodes/pve1/lxc/200/status/stop",
        None,
        Duration::from_secs(60),
    );
    assert_eq!(status, "OK");
    assert_eq!(pct(&sim, &["status", "200"]).1, "status: stopped\n");
    assert!(
        !links().contains(&format!(" {veth}@")),
        "veth gone with the container"
    );
    let err = backend.exec(200, &["true".to_string()], &[]).unwrap_err();
    assert_eq!(err, "CT 200 not running");
    let status = task(
        &sim,
        "DELETE",
        "/nodes/pve1/lxc/200?purge=1",
        None,
        Duration::from_secs(60),
    );
    assert_eq!(status, "OK");
    assert!(!backend.lxcpath().join(&name).exists());
    assert!(!sim.root.join("sim/ct/200").exists());
    assert_eq!(pct(&sim, &["status", "200"]).0, 255);
    eprintln!("done: {:?}", timer.elapsed());

    // Dropping the node removes the bridge; no mount of its root remains.
    let root = sim.root.clone();
    assert!(
        links().contains(&format!(" {bridge}:")),
        "bridge {bridge} while the node runs"
    );
    drop(sim);
    drop(render);
    assert!(!links().contains(&bridge), "bridge {bridge} left behind");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(root.to_str().unwrap()),
        "mounts left below {}",
        root.display()
    );
}

#[test]
fn dropping_the_node_stops_running_containers_and_removes_the_bridge() {
    if !lxc_available() {
        return;
    }
    let sim = start_lxc_node();
    let backend = LxcBackend::new(SimRoot::open(&sim.root).unwrap());
    let create = format!(
        "vmid=300&ostemplate={}&rootfs=local-lvm:4&start=1",
        enc(TEMPLATE)
    );
    let status = task(
        &sim,
        "POST",
        "/nodes/pve1/lxc",
        Some(&create),
        Duration::from_secs(900),
    );
    assert_eq!(status, "OK");
    assert!(backend.is_running(300));
    let veth = backend.veth_name(300, 0);
    // No net0: the container has loopback only, and no veth.
    assert!(!links().contains(&veth));
    let bridge = backend.bridge_name();
    drop(sim);
    assert!(!backend.is_running(300));
    assert!(!links().contains(&bridge), "bridge {bridge} left behind");
}

#[test]
fn other_templates_are_refused_with_a_clear_error() {
    if !lxc_available() {
        return;
    }
    let sim = start_lxc_node();
    let ubuntu = "ubuntu-24.04-standard_24.04-2_amd64.tar.zst";
    std::fs::write(
        sim.root.join("var/lib/vz/template/cache").join(ubuntu),
        "placeholder\n",
    )
    .unwrap();
    let (code, _, err) = pct(&sim, &["create", "400", &format!("local:vztmpl/{ubuntu}")]);
    assert_eq!(code, 255);
    assert!(
        err.contains("only debian-12-* and debian-13-* templates are"),
        "{err}"
    );
    assert!(!Path::new(&sim.root).join("etc/pve/lxc/400.conf").exists());
}

/// A 9.1 node's `debian-13-*` template gives a Debian 13 container (trixie, from the second cache),
/// while its `debian-12-*` one still gives Debian 12; and a cgroup v1 line stops the start on 9.x.
#[test]
fn debian_13_templates_boot_debian_13_on_a_9_1_node() {
    if !lxc_available() {
        return;
    }
    let sim = pve_sim::harness::start(HarnessOptions {
        backend: "lxc".into(),
        version: pve_sim::PveVersion::V9_1,
        ..Default::default()
    })
    .unwrap();
    let create = |vmid: u32, template: &str| {
        format!(
            "vmid={vmid}&ostemplate={}&rootfs=local-lvm:4&hostname=ct{vmid}&unprivileged=0&net0={}",
            enc(template),
            enc("name=eth0,bridge=vmbr0,ip=dhcp")
        )
    };
    let trixie = "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst";
    for (vmid, template, version) in [(210, trixie, "13"), (211, TEMPLATE, "12")] {
        let body = create(vmid, template);
        let status = task(
            &sim,
            "POST",
            "/nodes/pve1/lxc",
            Some(&body),
            Duration::from_secs(900),
        );
        assert_eq!(status, "OK");
        let path = format!("/nodes/pve1/lxc/{vmid}/status/start");
        assert_eq!(
            task(&sim, "POST", &path, None, Duration::from_secs(120)),
            "OK"
        );
        let (code, out, err) = pct(
            &sim,
            &[
                "exec",
                &vmid.to_string(),
                "--keep-env",
                "0",
                "--",
                "cat",
                "/etc/debian_version",
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with(version), "CT {vmid}: Debian {out}");
        let path = format!("/nodes/pve1/lxc/{vmid}/status/stop");
        assert_eq!(
            task(&sim, "POST", &path, None, Duration::from_secs(120)),
            "OK"
        );
    }
    {
        let root = SimRoot::open(&sim.root).unwrap();
        let _lock = root.lock_config(211).unwrap();
        let (mut conf, _) = root.read_conf(211).unwrap();
        conf.current_mut()
            .push_raw_lxc("lxc.cgroup.devices.allow", "c 226:128 rwm");
        root.write_conf(211, &conf).unwrap();
    }
    let status = task(
        &sim,
        "POST",
        "/nodes/pve1/lxc/211/status/start",
        None,
        Duration::from_secs(120),
    );
    assert_eq!(status, "startup for container '211' failed");
}
