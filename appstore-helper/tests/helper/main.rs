//! The privileged helper against a simulated node (its real files and its `pct`): refusals at the
//! boundary and for every bad argument, the actions it performs, the audit log, and the sudoers file.
//! `hostile.rs` holds the adversarial suite: a corpus of hostile requests, races, and a library that
//! must never be loaded.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

mod hostile;

use appstore_core::Ctid;
use appstore_helper::client::call_command;
use appstore_helper::{DeviceRequest, Reply, Request};
use pve_sim::harness::{start, HarnessOptions, RunningSim};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const HELPER: &str = env!("CARGO_BIN_EXE_pve-appstore-helper");
const DEBIAN: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

struct World {
    sim: RunningSim,
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// A tar archive of `(path, content, mode)` entries, as the store packs a job's files.
fn archive(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn pct(sim: &RunningSim, args: &[&str]) {
    let out = Command::new(sim.root.join("usr/sbin/pct"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pct {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Adds `vmid` to `pool` in the node's user.cfg, as the API's create does.
fn put_in_pool(sim: &RunningSim, vmid: u32, pool: &str) {
    let path = sim.root.join("etc/pve/user.cfg");
    let mut users =
        pve_sim::user_cfg::UserCfg::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    users.add_vm_to_pool(pool, vmid).unwrap();
    std::fs::write(&path, users.to_text()).unwrap();
}

fn world(legacy_devices: bool) -> World {
    let sim = start(HarnessOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (id, pool, tags, description) in [
        (
            100,
            Some("appstore"),
            Some("appstore-managed;appstore-app-radicale"),
            "",
        ),
        (101, Some("other"), Some("appstore-managed"), ""),
        (102, Some("appstore"), None, "tags: appstore-managed"),
        (103, None, Some("appstore-managed"), ""),
        // Privileged: in the pool and tagged, yet its root is the host's root.
        (104, Some("appstore"), Some("appstore-managed"), ""),
        // Carries a raw lxc line the helper did not write.
        (105, Some("appstore"), Some("appstore-managed"), ""),
    ] {
        let id_s = id.to_string();
        let unprivileged = if id == 104 { "0" } else { "1" };
        let mut args = vec![
            "create",
            id_s.as_str(),
            DEBIAN,
            "--hostname",
            "ct",
            "--unprivileged",
            unprivileged,
        ];
        if let Some(t) = tags {
            args.extend(["--tags", t]);
        }
        if !description.is_empty() {
            args.extend(["--description", description]);
        }
        pct(&sim, &args);
        if let Some(p) = pool {
            put_in_pool(&sim, id, p);
        }
        pct(&sim, &["start", &id_s]);
    }
    let conf105 = sim.root.join("etc/pve/lxc/105.conf");
    let mut text = std::fs::read_to_string(&conf105).unwrap();
    text.push_str("lxc.apparmor.profile: unconfined\n");
    std::fs::write(&conf105, text).unwrap();
    std::fs::create_dir_all(dir.path().join("jobs/7/provision")).unwrap();
    std::fs::create_dir_all(dir.path().join("media/movies")).unwrap();
    std::fs::create_dir_all(dir.path().join("dev/dri")).unwrap();
    let config = dir.path().join("helper.yml");
    let text = format!(
        "pool: appstore\npve_etc: {root}/etc/pve\npct: {root}/usr/sbin/pct\nlock_dir: {root}/run/lock/lxc\njob_root: {d}/jobs\naudit_log: {d}/helper/audit.log\nstaging_dir: {d}/helper/staging\nallowed_bind_paths: [{d}/media]\nallowed_features: [nesting]\nallowed_device_prefixes: [{d}/dev/dri/]\nlegacy_devices: {legacy_devices}\n",
        root = sim.root.display(),
        d = dir.path().display()
    );
    std::fs::write(&config, text).unwrap();
    World { sim, dir, config }
}

impl World {
    fn call(&self, req: &Request) -> (Reply, Vec<String>) {
        let mut lines = Vec::new();
        let reply = call_command(
            Path::new(HELPER),
            &["--config", self.config.to_str().unwrap()],
            req,
            &mut |s, l| lines.push(format!("{s}: {l}")),
        )
        .unwrap();
        (reply, lines)
    }

    fn refused(&self, req: &Request) -> (String, String) {
        match self.call(req).0 {
            Reply::Failed { error, .. } => (error.code, error.message),
            other => panic!("{req:?} was not refused: {other:?}"),
        }
    }

    fn ok(&self, req: &Request) -> Reply {
        let reply = self.call(req).0;
        assert!(matches!(reply, Reply::Done { .. }), "{req:?}: {reply:?}");
        reply
    }

    fn conf(&self, id: u32) -> String {
        std::fs::read_to_string(self.sim.root.join(format!("etc/pve/lxc/{id}.conf"))).unwrap()
    }

    fn raw(&self, text: &str) -> String {
        let mut child = Command::new(HELPER)
            .args(["--config", self.config.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    }
}

#[test]
fn refuses_containers_outside_the_boundary() {
    let w = world(false);
    let (code, msg) = w.refused(&Request::Status { ctid: ct(101) });
    assert_eq!(code, "boundary");
    assert!(
        msg.contains(
            "[pool-boundary] container 101 is in pool `other`, not in the store's pool `appstore`"
        ),
        "{msg}"
    );
    let (_, msg) = w.refused(&Request::Status { ctid: ct(102) });
    assert!(
        msg.starts_with("[managed-tag] container 102 lacks the tag `appstore-managed`"),
        "a tag look-alike in the description does not count: {msg}"
    );
    let (_, msg) = w.refused(&Request::Status { ctid: ct(103) });
    assert!(msg.contains("container 103 is in no pool"), "{msg}");
    let (code, msg) = w.refused(&Request::Status { ctid: ct(999) });
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("boundary", "container 999 does not exist on this node")
    );
    match w.ok(&Request::Status { ctid: ct(100) }) {
        Reply::Done { status, .. } => assert_eq!(status.as_deref(), Some("running")),
        r => panic!("{r:?}"),
    }
}

#[test]
fn refuses_malformed_requests() {
    let w = world(false);
    let out = w.raw(r#"{"action":"status","ctid":"100"}"#);
    assert!(
        out.contains(r#""code":"bad_request""#) && out.contains("invalid type: string"),
        "{out}"
    );
    let out = w.raw(
        r#"{"action":"run_script","ctid":100,"script":"x.sh","timeout_sec":5,"shell":"rm -rf /"}"#,
    );
    assert!(out.contains("unknown field `shell`"), "{out}");
    let out = w.raw(r#"{"action":"exec","ctid":100,"argv":["bash","-c","id"]}"#);
    assert!(
        out.contains("unknown variant `exec`"),
        "there is no free-form exec: {out}"
    );
}

#[test]
fn refuses_archives_that_escape_or_carry_links() {
    let w = world(false);
    let jobs = w.dir.path().join("jobs/7");
    let deliver = |archive: String| Request::Deliver {
        ctid: ct(100),
        archive,
    };
    let put = |name: &str, bytes: &[u8]| {
        let p = jobs.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_string_lossy().into_owned()
    };
    // Entries outside provision/, or with `..`, or links and devices inside the archive.
    let (code, msg) = w.refused(&deliver(put(
        "a.tar",
        &archive(&[("etc/cron.d/evil", b"* * * * * root id\n", 0o644)]),
    )));
    assert_eq!(code, "not_allowed", "{msg}");
    assert!(msg.contains("is outside provision/"), "{msg}");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "provision/shadow", "/etc/shadow")
        .unwrap();
    let (_, msg) = w.refused(&deliver(put("b.tar", &b.into_inner().unwrap())));
    assert!(msg.contains("only regular files and directories"), "{msg}");
    let mut raw = archive(&[("provision/xx", b"x", 0o644)]);
    raw[..11].copy_from_slice(b"../../etc/x");
    raw[148..156].copy_from_slice(b"        ");
    let sum: u32 = raw[..512].iter().map(|b| u32::from(*b)).sum();
    raw[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let (_, msg) = w.refused(&deliver(put("c.tar", &raw)));
    assert!(msg.contains("`..`"), "{msg}");
    // The archive's own path: outside the job root, through a symlink, not normalised.
    let (_, msg) = w.refused(&deliver("/etc/passwd".into()));
    assert!(msg.contains("is outside"), "{msg}");
    std::os::unix::fs::symlink("/etc/passwd", jobs.join("link.tar")).unwrap();
    let (code, msg) = w.refused(&deliver(jobs.join("link.tar").to_string_lossy().into()));
    assert_eq!(code, "not_allowed");
    assert!(msg.contains("without following a symlink"), "{msg}");
    let (_, msg) = w.refused(&deliver(format!("{}/../../../etc/passwd", jobs.display())));
    assert!(msg.contains("must not contain `..`"), "{msg}");
    // Script paths that leave the app's directory.
    let (_, msg) = w.refused(&Request::RunScript {
        ctid: ct(100),
        script: "../../etc/shadow".into(),
        env: BTreeMap::new(),
        inputs: None,
        timeout_sec: 5,
    });
    assert!(msg.contains("leaves the app directory"), "{msg}");
}

#[test]
fn provisions_a_container_and_audits_without_secrets() {
    let w = world(false);
    let jobs = w.dir.path().join("jobs/7");
    let tar = jobs.join("files.tar");
    std::fs::write(
        &tar,
        archive(&[
            ("provision/install.sh", b"echo hi\n", 0o755),
            ("provision/conf/app.ini", b"[app]\n", 0o644),
        ]),
    )
    .unwrap();
    match w.ok(&Request::Deliver {
        ctid: ct(100),
        archive: tar.to_string_lossy().into_owned(),
    }) {
        Reply::Done { exit_code, .. } => assert_eq!(exit_code, Some(2), "two files"),
        r => panic!("{r:?}"),
    }
    let fs = w.sim.root.join("sim/ct/100/fs/opt/appstore");
    assert_eq!(
        std::fs::read_to_string(fs.join("provision/install.sh")).unwrap(),
        "echo hi\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fs.join("provision/install.sh")), 0o755);
    assert_eq!(mode(&fs.join("provision/conf/app.ini")), 0o644);
    assert_eq!(
        std::fs::read_to_string(fs.join("bin/run-script")).unwrap(),
        appstore_helper::deliver::WRAPPER,
        "the helper's own wrapper comes with every delivery"
    );
    let secret = "s3cr3t-Pa55word";
    let inputs = serde_json::json!({"admin_password": secret});
    let (reply, lines) = w.call(&Request::RunScript {
        ctid: ct(100),
        script: "install.sh".into(),
        env: BTreeMap::from([
            ("ADMIN_PASSWORD".to_string(), secret.to_string()),
            ("PORT".to_string(), "5232".to_string()),
        ]),
        inputs: Some(inputs.clone()),
        timeout_sec: 30,
    });
    assert_eq!(
        reply,
        Reply::Done {
            ok: true,
            exit_code: Some(0),
            status: None
        }
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "stdout: [inert] /bin/bash /opt/appstore/provision/install.sh"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| *l
            == format!(
                "stdout: [inert] env: ADMIN_PASSWORD PORT; inputs: {} bytes",
                inputs.to_string().len()
            )),
        "the wrapper got the variables and the inputs on its standard input: {lines:?}"
    );
    w.ok(&Request::RemovePath {
        ctid: ct(100),
        path: "/opt/appstore/provision".into(),
    });
    assert!(!fs.join("provision").exists());
    let audit = std::fs::read_to_string(w.dir.path().join("helper/audit.log")).unwrap();
    assert!(!audit.contains(secret), "no secret in the audit log");
    assert!(
        audit.contains(r#""env_names":["ADMIN_PASSWORD","PORT"]"#),
        "{audit}"
    );
    assert_eq!(
        audit.lines().count(),
        6,
        "each action is on record before it starts and when it ends: {audit}"
    );
    assert_eq!(mode(&w.dir.path().join("helper/audit.log")), 0o600);
    assert_eq!(mode(&w.dir.path().join("helper")), 0o700);
}

fn mknod(path: &Path, major: u32, minor: u32) -> bool {
    Command::new("mknod")
        .arg(path)
        .args(["c", &major.to_string(), &minor.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn attaches_devices_features_and_bind_mounts_as_root() {
    let w = world(false);
    // Config edits happen while the container is stopped, as `pct set` would for these keys.
    pct(&w.sim, &["stop", "100"]);
    let node = w.dir.path().join("dev/dri/renderD128");
    if !mknod(&node, 226, 128) {
        assert!(
            std::env::var("APPSTORE_REQUIRE_LXC").as_deref() != Ok("1"),
            "mknod needs root, which CI has"
        );
        eprintln!("skipped: mknod needs root");
        return;
    }
    let dev = DeviceRequest {
        path: node.to_string_lossy().into_owned(),
        gid: Some(104),
        uid: None,
        mode: Some("0660".into()),
    };
    w.ok(&Request::AttachDevices {
        ctid: ct(100),
        devices: vec![dev.clone()],
    });
    w.ok(&Request::AttachDevices {
        ctid: ct(100),
        devices: vec![dev.clone()],
    });
    let conf = w.conf(100);
    assert!(
        conf.contains(&format!("dev0: {},gid=104,mode=0660\n", node.display())),
        "{conf}"
    );
    assert!(
        !conf.contains("dev1:"),
        "attaching twice is idempotent: {conf}"
    );
    let (code, _) = w.refused(&Request::AttachDevices {
        ctid: ct(100),
        devices: vec![DeviceRequest {
            path: "/dev/sda".into(),
            gid: None,
            uid: None,
            mode: None,
        }],
    });
    assert_eq!(code, "not_allowed");
    let plain = w.dir.path().join("dev/dri/not-a-device");
    std::fs::write(&plain, "").unwrap();
    let (_, msg) = w.refused(&Request::AttachDevices {
        ctid: ct(100),
        devices: vec![DeviceRequest {
            path: plain.to_string_lossy().into_owned(),
            gid: None,
            uid: None,
            mode: None,
        }],
    });
    assert!(msg.contains("is not a character device"), "{msg}");
    w.ok(&Request::DetachDevices {
        ctid: ct(100),
        paths: vec![node.to_string_lossy().into_owned()],
    });
    assert!(!w.conf(100).contains("dev0:"));

    let (_, msg) = w.refused(&Request::SetFeatures {
        ctid: ct(100),
        features: BTreeMap::from([("keyctl".to_string(), true)]),
    });
    assert!(msg.contains("feature `keyctl` is not allowed"), "{msg}");
    w.ok(&Request::SetFeatures {
        ctid: ct(100),
        features: BTreeMap::from([("nesting".to_string(), true)]),
    });
    assert!(w.conf(100).contains("features: nesting=1\n"));

    let media = w.dir.path().join("media/movies");
    w.ok(&Request::BindMount {
        ctid: ct(100),
        index: 1,
        host_path: media.to_string_lossy().into_owned(),
        mount_path: "/media".into(),
        read_only: true,
    });
    assert!(w
        .conf(100)
        .contains(&format!("mp1: {},mp=/media,ro=1\n", media.display())));
    let (_, msg) = w.refused(&Request::BindMount {
        ctid: ct(100),
        index: 2,
        host_path: "/etc".into(),
        mount_path: "/mnt/etc".into(),
        read_only: false,
    });
    assert!(msg.contains("is not below an allowed bind path"), "{msg}");
    std::os::unix::fs::symlink("/etc", w.dir.path().join("media/etc-link")).unwrap();
    let (_, msg) = w.refused(&Request::BindMount {
        ctid: ct(100),
        index: 2,
        host_path: w
            .dir
            .path()
            .join("media/etc-link")
            .to_string_lossy()
            .into_owned(),
        mount_path: "/mnt/x".into(),
        read_only: false,
    });
    assert!(msg.contains("symlink"), "{msg}");
    let (_, msg) = w.refused(&Request::BindMount {
        ctid: ct(100),
        index: 2,
        host_path: media.to_string_lossy().into_owned(),
        mount_path: "/proc/x".into(),
        read_only: false,
    });
    assert!(msg.contains("system directory"), "{msg}");
}

#[test]
fn legacy_devices_use_raw_lxc_lines_under_the_config_lock() {
    let w = world(true);
    pct(&w.sim, &["stop", "100"]);
    let node = w.dir.path().join("dev/dri/renderD129");
    if !mknod(&node, 226, 129) {
        assert!(
            std::env::var("APPSTORE_REQUIRE_LXC").as_deref() != Ok("1"),
            "mknod needs root, which CI has"
        );
        return;
    }
    let dev = DeviceRequest {
        path: node.to_string_lossy().into_owned(),
        gid: None,
        uid: None,
        mode: None,
    };
    w.ok(&Request::AttachDevices {
        ctid: ct(100),
        devices: vec![dev.clone()],
    });
    w.ok(&Request::AttachDevices {
        ctid: ct(100),
        devices: vec![dev.clone()],
    });
    // A group needs devN (PVE 8.1+): refused with the fix on an older node.
    let (code, msg) = w.refused(&Request::AttachDevices {
        ctid: ct(100),
        devices: vec![DeviceRequest {
            gid: Some(993),
            ..dev
        }],
    });
    assert_eq!(code, "not_allowed");
    assert!(msg.contains("PVE 8.1 and later"), "{msg}");
    let conf = w.conf(100);
    assert_eq!(
        conf.matches("lxc.cgroup2.devices.allow: c 226:129 rwm\n")
            .count(),
        1,
        "{conf}"
    );
    let entry = format!(
        "lxc.mount.entry: {p} {r} none bind,optional,create=file\n",
        p = node.display(),
        r = node.display().to_string().trim_start_matches('/')
    );
    assert_eq!(conf.matches(&entry).count(), 1, "{conf}");
    w.ok(&Request::DetachDevices {
        ctid: ct(100),
        paths: vec![node.to_string_lossy().into_owned()],
    });
    assert!(!w.conf(100).contains("lxc."), "{}", w.conf(100));
}

#[test]
fn config_override_is_refused_through_sudo() {
    let w = world(false);
    let out = Command::new(HELPER)
        .args(["--config", w.config.to_str().unwrap()])
        .env("SUDO_UID", "1000")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--config is only honoured when root starts the helper directly"),
        "{text}"
    );
    assert!(!out.status.success());
}

#[test]
fn the_example_config_is_valid_and_strict_by_default() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/helper.yml.example"),
    )
    .unwrap();
    let config = appstore_helper::HelperConfig::parse(&text).unwrap();
    assert_eq!(config.pool, "appstore");
    assert!(!config.allow_privileged);
    assert!(config.allowed_bind_paths.is_empty());
    assert_eq!(
        config.audit_log,
        Path::new("/var/log/pve-appstore-helper/audit.log")
    );
}

#[test]
fn sudoers_file_is_valid() {
    let sudoers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/sudoers");
    let out = Command::new("visudo").arg("-cf").arg(&sudoers).output();
    if !pve_sim::harness::prerequisite(
        out.is_ok(),
        "APPSTORE_REQUIRE_LXC",
        "visudo is not installed (scripts/bootstrap.sh installs sudo)",
    ) {
        return;
    }
    let Ok(out) = out else { return };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run by `socket_peers_are_checked_with_peercred` as another user: connects to the socket named in
/// `HELPER_SOCKET`, sends a status request and prints the reply. A no-op in a normal run.
#[test]
fn socket_client_stub() {
    let Ok(path) = std::env::var("HELPER_SOCKET") else {
        return;
    };
    let reply = appstore_helper::client::call_socket(
        Path::new(&path),
        &Request::Status { ctid: ct(100) },
        &mut |_, _| {},
    );
    println!("REPLY {}", serde_json::to_string(&reply.unwrap()).unwrap());
}

#[test]
fn socket_peers_are_checked_with_peercred() {
    use std::os::unix::process::CommandExt;
    let w = world(false);
    let sock = w.dir.path().join("helper.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(w.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
    // As systemd does with Accept=yes: one helper per connection, the socket as stdin and stdout.
    let serve_one = |listener: &std::os::unix::net::UnixListener| {
        let (stream, _) = listener.accept().unwrap();
        let input = stream.try_clone().unwrap();
        Command::new(HELPER)
            .args(["--config", w.config.to_str().unwrap()])
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(input)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(stream)))
            .spawn()
            .unwrap()
    };

    // A root peer is served.
    let client = std::thread::spawn({
        let sock = sock.clone();
        move || {
            appstore_helper::client::call_socket(
                &sock,
                &Request::Status { ctid: ct(100) },
                &mut |_, _| {},
            )
            .unwrap()
        }
    });
    let mut helper = serve_one(&listener);
    let reply = client.join().unwrap();
    helper.wait().unwrap();
    assert_eq!(
        reply,
        Reply::Done {
            ok: true,
            exit_code: None,
            status: Some("running".into())
        }
    );

    // An unprivileged peer (uid 65534) never gets an answer beyond the refusal.
    let me = std::env::current_exe().unwrap();
    let child = Command::new(me)
        .args([
            "--exact",
            "socket_client_stub",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HELPER_SOCKET", &sock)
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(child) = child else {
        assert!(
            std::env::var("APPSTORE_REQUIRE_LXC").as_deref() != Ok("1"),
            "switching user needs root, which CI has"
        );
        return;
    };
    let mut helper = serve_one(&listener);
    let out = child.wait_with_output().unwrap();
    helper.wait().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("socket peer uid 65534 (gid 65534) is not allowed to use the helper"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// In a real container: the script gets its variables exactly (quotes, `$(...)` and blanks are
/// data), reads the inputs from a private file that is gone afterwards, and a script past its limit
/// is stopped inside the container, not only the host's `pct`.
#[test]
fn real_container_scripts_get_stdin_variables_and_stop_at_their_limit_lxc() {
    if !pve_sim::harness::lxc_available() {
        return;
    }
    let sim = start(HarnessOptions {
        backend: "lxc".into(),
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    pct(
        &sim,
        &[
            "create",
            "100",
            DEBIAN,
            "--hostname",
            "ct",
            "--unprivileged",
            "1",
            "--tags",
            "appstore-managed",
        ],
    );
    put_in_pool(&sim, 100, "appstore");
    pct(&sim, &["start", "100"]);
    std::fs::create_dir_all(dir.path().join("jobs/1")).unwrap();
    let config = dir.path().join("helper.yml");
    std::fs::write(
        &config,
        format!(
            "pool: appstore\npve_etc: {root}/etc/pve\npct: {root}/usr/sbin/pct\nlock_dir: {root}/run/lock/lxc\njob_root: {d}/jobs\naudit_log: {d}/helper/audit.log\nstaging_dir: {d}/helper/staging\n",
            root = sim.root.display(),
            d = dir.path().display()
        ),
    )
    .unwrap();
    let call = |req: &Request| {
        let mut lines = Vec::new();
        let reply = call_command(
            Path::new(HELPER),
            &["--config", config.to_str().unwrap()],
            req,
            &mut |s, l| lines.push(format!("{s}: {l}")),
        )
        .unwrap();
        (reply, lines)
    };
    let tar = dir.path().join("jobs/1/files.tar");
    std::fs::write(
        &tar,
        archive(&[
            (
                "provision/show.sh",
                b"printf 'value=[%s]\\n' \"$APP_VALUE\"\nprintf 'inputs=%s\\n' \"$(cat \"$APPSTORE_INPUTS\")\"\nstat -c 'mode=%a' \"$APPSTORE_INPUTS\"\nprintf '%s' \"$APPSTORE_INPUTS\" > /opt/appstore/inputs-path\necho \"cwd=$PWD\"\n",
                0o755,
            ),
            (
                "provision/sleep.sh",
                b"echo $$ > /opt/appstore/sleep.pid\nsleep 600\n",
                0o755,
            ),
        ]),
    )
    .unwrap();
    let (reply, _) = call(&Request::Deliver {
        ctid: ct(100),
        archive: tar.to_string_lossy().into_owned(),
    });
    assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
    let value = "a b 'c' \"d\" $(id) `id` ; e";
    let (reply, lines) = call(&Request::RunScript {
        ctid: ct(100),
        script: "show.sh".into(),
        env: BTreeMap::from([("APP_VALUE".to_string(), value.to_string())]),
        inputs: Some(serde_json::json!({"password": "pw with blanks"})),
        timeout_sec: 60,
    });
    assert!(
        matches!(
            reply,
            Reply::Done {
                exit_code: Some(0),
                ..
            }
        ),
        "{reply:?} {lines:?}"
    );
    assert!(
        lines.contains(&format!("stdout: value=[{value}]")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&r#"stdout: inputs={"password":"pw with blanks"}"#.to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"stdout: mode=600".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"stdout: cwd=/opt/appstore/provision".to_string()),
        "{lines:?}"
    );
    let exec = |argv: &[&str]| {
        Command::new(sim.root.join("usr/sbin/pct"))
            .args(["exec", "100", "--keep-env", "0", "--"])
            .args(argv)
            .output()
            .unwrap()
    };
    let path = String::from_utf8(exec(&["cat", "/opt/appstore/inputs-path"]).stdout).unwrap();
    assert!(path.starts_with("/run/appstore/inputs."), "{path}");
    assert_eq!(
        exec(&["test", "-e", &path]).status.code(),
        Some(1),
        "the inputs outlived the script"
    );

    let (reply, _) = call(&Request::RunScript {
        ctid: ct(100),
        script: "sleep.sh".into(),
        env: BTreeMap::new(),
        inputs: None,
        timeout_sec: 2,
    });
    match reply {
        Reply::Failed { error, .. } => {
            assert_eq!(error.code, "timeout", "{}", error.message)
        }
        r => panic!("{r:?}"),
    }
    let pid = String::from_utf8(exec(&["cat", "/opt/appstore/sleep.pid"]).stdout).unwrap();
    let pid = pid.trim();
    assert!(!pid.is_empty());
    assert_eq!(
        exec(&["test", "-d", &format!("/proc/{pid}")]).status.code(),
        Some(1),
        "the script still runs inside the container"
    );
}

/// A container id of the tests.
fn ct(id: u32) -> Ctid {
    Ctid::new(id).unwrap()
}

#[test]
fn journal_reads_are_one_fixed_command_with_checked_unit_and_cursor() {
    let w = world(false);
    let journal = |ctid: u32, unit: &str, after: Option<&str>| Request::Journal {
        ctid: Ctid::new(ctid).unwrap(),
        unit: unit.into(),
        lines: 50,
        after_cursor: after.map(str::to_string),
    };
    // The store's container: the unit's entries and a cursor to go on from.
    let (reply, lines) = w.call(&journal(100, "radicale.service", None));
    assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
    assert!(
        lines.iter().any(|l| l.contains("Started radicale.service")),
        "{lines:?}"
    );
    let cursor = lines
        .iter()
        .find_map(|l| l.strip_prefix("stdout: -- cursor: "))
        .expect("a cursor")
        .to_string();
    let (_, after) = w.call(&journal(100, "radicale.service", Some(&cursor)));
    assert!(!after.iter().any(|l| l.contains("Started")), "{after:?}");
    // Anything that could change the command is refused before it runs.
    for (unit, cursor) in [
        ("radicale; reboot", None),
        ("--output=json", None),
        ("radicale", Some("s=1 --file=/etc/shadow")),
    ] {
        let (code, message) = w.refused(&journal(100, unit, cursor));
        assert_eq!(code, "bad_request", "{message}");
    }
    // Outside the boundary: another pool, no managed tag.
    for id in [101, 102, 103] {
        let (code, _) = w.refused(&journal(id, "radicale", None));
        assert_eq!(code, "boundary", "container {id}");
    }
}
