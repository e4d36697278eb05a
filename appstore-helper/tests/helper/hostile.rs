//! The adversarial suite: the helper against a hostile service account (any request, any file in its
//! own directories), a hostile catalog (any string the engine passes on) and a hostile container root
//! (its config's contents, its bind-mounted directories).

use super::{archive, ct, world, World, HELPER};
use appstore_helper::{Reply, Request};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Hostile requests, each with the refusal code it must get and a piece of the message. `{jobs}` is
/// the job root, `{dir}` the test's directory.
const CORPUS: &[(&str, &str, &str)] = &[
    // The loader, the shell and interpreters, through a script's variables.
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"LD_PRELOAD":"/tmp/x.so"},"timeout_sec":5}"#,
        "bad_request",
        "`LD_PRELOAD` would change how the dynamic loader",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"LD_LIBRARY_PATH":"/tmp"},"timeout_sec":5}"#,
        "bad_request",
        "LD_LIBRARY_PATH",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"BASH_ENV":"/tmp/x"},"timeout_sec":5}"#,
        "bad_request",
        "`BASH_ENV` would change",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"ENV":"/tmp/x"},"timeout_sec":5}"#,
        "bad_request",
        "`ENV` would change",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"PATH":"/tmp"},"timeout_sec":5}"#,
        "bad_request",
        "`PATH` would change",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"IFS":"/"},"timeout_sec":5}"#,
        "bad_request",
        "`IFS` would change",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"PERL5OPT":"-Mx"},"timeout_sec":5}"#,
        "bad_request",
        "PERL5OPT",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"PYTHONSTARTUP":"/tmp/x"},"timeout_sec":5}"#,
        "bad_request",
        "PYTHONSTARTUP",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"GCONV_PATH":"/tmp"},"timeout_sec":5}"#,
        "bad_request",
        "GCONV_PATH",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"GLIBC_TUNABLES":"x"},"timeout_sec":5}"#,
        "bad_request",
        "GLIBC_TUNABLES",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"LXC_CONFIG_FILE":"/tmp/x"},"timeout_sec":5}"#,
        "bad_request",
        "LXC_CONFIG_FILE",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"BASH_FUNC_ls%%":"() { id; }"},"timeout_sec":5}"#,
        "bad_request",
        "not a variable name",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"lower":"x"},"timeout_sec":5}"#,
        "bad_request",
        "not a variable name",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"A=B":"x"},"timeout_sec":5}"#,
        "bad_request",
        "not a variable name",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","env":{"OK":"a\u0000b"},"timeout_sec":5}"#,
        "bad_request",
        "NUL byte",
    ),
    // Time limits.
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","timeout_sec":0}"#,
        "bad_request",
        "timeout_sec must be 1..=3600",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","timeout_sec":3601}"#,
        "bad_request",
        "timeout_sec must be 1..=3600",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"install.sh","timeout_sec":99999999999}"#,
        "bad_request",
        "invalid value",
    ),
    // Scripts outside the app's directory.
    (
        r#"{"action":"run_script","ctid":100,"script":"../../../etc/shadow","timeout_sec":5}"#,
        "bad_request",
        "leaves the app directory",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"/etc/shadow","timeout_sec":5}"#,
        "bad_request",
        "script:",
    ),
    // Archives from anywhere but the job root.
    (
        r#"{"action":"deliver","ctid":100,"archive":"/etc/shadow"}"#,
        "not_allowed",
        "is outside",
    ),
    (
        r#"{"action":"deliver","ctid":100,"archive":"{jobs}/../secret.tar"}"#,
        "bad_request",
        "`..`",
    ),
    (
        r#"{"action":"deliver","ctid":100,"archive":"{jobs}"}"#,
        "not_allowed",
        "is outside",
    ),
    (
        r#"{"action":"deliver","ctid":100,"archive":"files.tar"}"#,
        "bad_request",
        "archive:",
    ),
    (
        r#"{"action":"deliver","ctid":100,"archive":"{jobs}/7/missing.tar"}"#,
        "not_allowed",
        "cannot be opened",
    ),
    // Paths inside the container outside /opt/appstore.
    (
        r#"{"action":"remove_path","ctid":100,"path":"/"}"#,
        "not_allowed",
        "outside /opt/appstore/",
    ),
    (
        r#"{"action":"remove_path","ctid":100,"path":"/opt/appstore/../../etc"}"#,
        "bad_request",
        "`..`",
    ),
    (
        r#"{"action":"remove_path","ctid":100,"path":"/opt/appstoreX"}"#,
        "not_allowed",
        "outside /opt/appstore/",
    ),
    // Host paths for bind mounts and devices.
    (
        r#"{"action":"bind_mount","ctid":100,"index":2,"host_path":"/etc","mount_path":"/mnt/etc"}"#,
        "not_allowed",
        "not below an allowed bind path",
    ),
    (
        r#"{"action":"bind_mount","ctid":100,"index":2,"host_path":"/","mount_path":"/mnt/root"}"#,
        "not_allowed",
        "not below an allowed bind path",
    ),
    (
        r#"{"action":"bind_mount","ctid":100,"index":2,"host_path":"{dir}/media/movies","mount_path":"/proc/x"}"#,
        "not_allowed",
        "system directory",
    ),
    (
        r#"{"action":"bind_mount","ctid":100,"index":300,"host_path":"{dir}/media/movies","mount_path":"/m"}"#,
        "bad_request",
        "invalid value",
    ),
    (
        r#"{"action":"bind_mount","ctid":100,"index":2,"host_path":"{dir}/media/movies","mount_path":"/data\nlxc.apparmor.profile: unconfined"}"#,
        "bad_request",
        "a blank or a control character",
    ),
    (
        r#"{"action":"bind_mount","ctid":100,"index":2,"host_path":"{dir}/media/movies,ro=0","mount_path":"/m"}"#,
        "bad_request",
        "must not contain",
    ),
    (
        r#"{"action":"attach_devices","ctid":100,"devices":[{"path":"/dev/sda"}]}"#,
        "not_allowed",
        "not below an allowed prefix",
    ),
    (
        r#"{"action":"attach_devices","ctid":100,"devices":[{"path":"{dir}/dev/dri/../../sda"}]}"#,
        "bad_request",
        "`..`",
    ),
    (
        r#"{"action":"attach_devices","ctid":100,"devices":[{"path":"{dir}/dev/dri/x,mp=/"}]}"#,
        "bad_request",
        "must not contain",
    ),
    (
        r#"{"action":"inspect_devices","ctid":100,"paths":["/etc/shadow"]}"#,
        "not_allowed",
        "not below an allowed prefix",
    ),
    (
        r#"{"action":"set_features","ctid":100,"features":{"keyctl":true}}"#,
        "not_allowed",
        "feature `keyctl` is not allowed",
    ),
    (
        r#"{"action":"set_features","ctid":100,"features":{"apparmor":true}}"#,
        "bad_request",
        "not a container feature",
    ),
    // Containers outside the boundary, and ones the helper does not act on.
    (
        r#"{"action":"status","ctid":101}"#,
        "boundary",
        "[pool-boundary]",
    ),
    (
        r#"{"action":"status","ctid":102}"#,
        "boundary",
        "[managed-tag]",
    ),
    (
        r#"{"action":"status","ctid":103}"#,
        "boundary",
        "is in no pool",
    ),
    (
        r#"{"action":"status","ctid":104}"#,
        "boundary",
        "[unprivileged] container 104 is privileged",
    ),
    (
        r#"{"action":"status","ctid":105}"#,
        "boundary",
        "[raw-lxc] container 105 carries `lxc.apparmor.profile: unconfined`",
    ),
    (
        r#"{"action":"status","ctid":1}"#,
        "bad_request",
        "outside 100..=999999999",
    ),
    (
        r#"{"action":"status","ctid":-1}"#,
        "bad_request",
        "container id -1 is outside 100..=999999999",
    ),
    (
        r#"{"action":"status","ctid":"100"}"#,
        "bad_request",
        "invalid type",
    ),
    // No free-form command, no extra fields.
    (
        r#"{"action":"exec","ctid":100,"argv":["bash","-c","id"]}"#,
        "bad_request",
        "unknown variant `exec`",
    ),
    (
        r#"{"action":"run_script","ctid":100,"script":"x.sh","timeout_sec":5,"shell":"id"}"#,
        "bad_request",
        "unknown field `shell`",
    ),
    (
        r#"{"action":"push","ctid":100,"source":"/etc/shadow","dest":"/opt/appstore/x","perms":"0644"}"#,
        "bad_request",
        "unknown variant `push`",
    ),
];

fn reply_of(out: &str) -> (String, String) {
    let last = out.lines().last().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(last).unwrap_or_default();
    (
        v["error"]["code"].as_str().unwrap_or("").to_string(),
        v["error"]["message"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn refuses_every_request_of_the_hostile_corpus() {
    let w = world(false);
    let jobs = w.dir.path().join("jobs");
    let mut wrong = Vec::new();
    for (request, code, fragment) in CORPUS {
        let text = request
            .replace("{jobs}", &jobs.to_string_lossy())
            .replace("{dir}", &w.dir.path().to_string_lossy());
        let out = w.raw(&format!("{text}\n"));
        let (got_code, message) = reply_of(&out);
        if got_code != *code || !message.contains(fragment) {
            wrong.push(format!(
                "{request}\n  expected {code}: …{fragment}…\n  got      {got_code}: {message}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Every refusal is audited, unreadable requests included, as one line each however hostile
    // the strings were.
    let audit = std::fs::read_to_string(w.dir.path().join("helper/audit.log")).unwrap();
    let outcomes: Vec<String> = audit
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["outcome"].as_str().unwrap().to_string()
        })
        .collect();
    let refused = outcomes.iter().filter(|o| *o == "refused").count();
    assert_eq!(refused, CORPUS.len(), "{audit}");
    assert!(
        outcomes.iter().all(|o| o == "refused" || o == "started"),
        "{audit}"
    );
}

/// A shared object that creates `marker` when anything loads it.
fn marker_library(dir: &Path, marker: &Path) -> Option<std::path::PathBuf> {
    let src = dir.join("marker.c");
    let so = dir.join("marker.so");
    std::fs::write(
        &src,
        format!(
            "#include <fcntl.h>\n#include <unistd.h>\n__attribute__((constructor)) static void loaded(void) {{ int fd = open(\"{}\", O_CREAT | O_WRONLY, 0644); if (fd >= 0) close(fd); }}\n",
            marker.display()
        ),
    )
    .ok()?;
    let ok = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then_some(so)
}

/// The loader variables of a request never reach a host process: the request is refused by name,
/// and `pct` (here a recording wrapper around the simulator's) only ever sees the fixed environment
/// and `--keep-env 0`, whatever the script's variables are.
#[test]
fn script_environment_never_reaches_a_host_process() {
    let w = world(false);
    let marker = w.dir.path().join("LOADED");
    let so = marker_library(w.dir.path(), &marker);
    if !pve_sim::harness::prerequisite(
        so.is_some(),
        "APPSTORE_REQUIRE_LXC",
        "no C compiler to build the marker library (scripts/bootstrap.sh installs build-essential)",
    ) {
        return;
    }
    let Some(so) = so else { return };
    // A pct that records its environment and arguments, then runs the simulator's.
    let record = w.dir.path().join("pct-calls");
    let real = w.sim.root.join("usr/sbin/pct");
    let fake = w.dir.path().join("pct");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/bash\n{{ printf 'ARGS'; printf ' %q' \"$@\"; echo; env | sort | sed 's/^/ENV /'; }} >> {}\nexec {} \"$@\"\n",
            record.display(),
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(&w.config).unwrap().replace(
        &format!("pct: {}", real.display()),
        &format!("pct: {}", fake.display()),
    );
    std::fs::write(&w.config, text).unwrap();

    let so_path = so.to_string_lossy().into_owned();
    let hook = w.dir.path().join("hook.sh");
    std::fs::write(&hook, format!("touch {}\n", marker.display())).unwrap();
    let hook_path = hook.to_string_lossy().into_owned();
    for (name, value) in [
        ("LD_PRELOAD", so_path.as_str()),
        ("LD_AUDIT", so_path.as_str()),
        ("BASH_ENV", hook_path.as_str()),
        ("ENV", hook_path.as_str()),
        ("PERL5OPT", "-e system('touch LOADED')"),
    ] {
        let (code, msg) = w.refused(&Request::RunScript {
            ctid: ct(100),
            script: "install.sh".into(),
            env: BTreeMap::from([(name.to_string(), value.to_string())]),
            inputs: None,
            timeout_sec: 5,
        });
        assert_eq!(code, "bad_request", "{name}: {msg}");
    }
    // Allowed names with hostile values go to the container's wrapper on stdin, not to pct.
    let tar = w.dir.path().join("jobs/7/files.tar");
    std::fs::write(&tar, archive(&[("provision/install.sh", b"true\n", 0o755)])).unwrap();
    w.ok(&Request::Deliver {
        ctid: ct(100),
        archive: tar.to_string_lossy().into_owned(),
    });
    w.ok(&Request::RunScript {
        ctid: ct(100),
        script: "install.sh".into(),
        env: BTreeMap::from([
            ("APP_LIB".to_string(), so_path.clone()),
            ("APP_SECRET".to_string(), "hunter2-secret".to_string()),
        ]),
        inputs: Some(serde_json::json!({"password": "hunter2-secret"})),
        timeout_sec: 5,
    });
    assert!(
        !marker.exists(),
        "a host process loaded the caller's library or ran its shell hook"
    );
    let calls = std::fs::read_to_string(&record).unwrap();
    assert!(!calls.contains("hunter2-secret"), "{calls}");
    assert!(!calls.contains(&so_path), "{calls}");
    for line in calls.lines().filter(|l| l.starts_with("ENV ")) {
        let name = line[4..].split('=').next().unwrap_or("");
        assert!(
            ["PATH", "LANG", "PWD", "SHLVL", "_"].contains(&name),
            "pct got `{line}`"
        );
    }
    for line in calls.lines().filter(|l| l.starts_with("ARGS exec")) {
        assert!(line.contains(" --keep-env 0 -- "), "{line}");
    }
    assert!(calls.contains("ARGS exec 100 --keep-env 0 -- /bin/bash /opt/appstore/bin/run-script /opt/appstore/provision/install.sh 5"), "{calls}");
}

/// A thread swaps the archive between a regular file and a symlink to a root-only file outside
/// the job root while deliveries run: what the link names never reaches the container.
#[test]
fn swapped_archive_never_delivers_what_a_symlink_names() {
    let w = world(false);
    let secret_dir = w.dir.path().join("root-only");
    std::fs::create_dir_all(&secret_dir).unwrap();
    let secret = secret_dir.join("secret.tar");
    std::fs::write(
        &secret,
        archive(&[("provision/stolen", b"ROOT-ONLY-CONTENT", 0o644)]),
    )
    .unwrap();
    let jobs = w.dir.path().join("jobs/7");
    let good = archive(&[("provision/install.sh", b"true\n", 0o755)]);
    let target = jobs.join("files.tar");
    std::fs::write(&target, &good).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = std::thread::spawn({
        let (stop, jobs, secret) = (Arc::clone(&stop), jobs.clone(), secret.clone());
        move || {
            let mut flips = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let tmp = jobs.join("next");
                let _ = std::fs::remove_file(&tmp);
                if flips.is_multiple_of(2) {
                    std::os::unix::fs::symlink(&secret, &tmp).unwrap();
                } else {
                    std::fs::write(&tmp, &good).unwrap();
                }
                std::fs::rename(&tmp, jobs.join("files.tar")).unwrap();
                flips += 1;
            }
            flips
        }
    });
    let stolen = w
        .sim
        .root
        .join("sim/ct/100/fs/opt/appstore/provision/stolen");
    let (mut delivered, mut refused) = (0, 0);
    for _ in 0..100 {
        match w
            .call(&Request::Deliver {
                ctid: ct(100),
                archive: target.to_string_lossy().into_owned(),
            })
            .0
        {
            Reply::Done { .. } => delivered += 1,
            Reply::Failed { error, .. } => {
                assert!(
                    error.message.contains("symlink") || error.message.contains("cannot be opened"),
                    "{}",
                    error.message
                );
                refused += 1
            }
            other => panic!("{other:?}"),
        }
        assert!(!stolen.exists(), "a root-only file reached the container");
    }
    stop.store(true, Ordering::SeqCst);
    let flips = swapper.join().unwrap();
    assert!(flips > 100, "the swapper ran ({flips} flips)");
    assert_eq!(delivered + refused, 100);
    eprintln!("{delivered} delivered, {refused} refused while swapping");
}

fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("the helper hung")
}

/// A FIFO, a hard link to someone else's file, or another user's file is refused at once.
#[test]
fn refuses_fifos_links_and_foreign_archives_without_hanging() {
    let w = world(false);
    let jobs = w.dir.path().join("jobs/7");
    let fifo = jobs.join("fifo.tar");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let config = w.config.clone();
    let req = Request::Deliver {
        ctid: ct(100),
        archive: fifo.to_string_lossy().into_owned(),
    };
    let reply = within(20, move || call_with(&config, &req));
    match reply {
        Reply::Failed { error, .. } => {
            assert!(
                error.message.contains("not a regular file"),
                "{}",
                error.message
            )
        }
        r => panic!("{r:?}"),
    }
    let foreign = jobs.join("foreign.tar");
    std::fs::write(&foreign, archive(&[("provision/a", b"a", 0o644)])).unwrap();
    if std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).is_ok() {
        let (code, msg) = w.refused(&Request::Deliver {
            ctid: ct(100),
            archive: foreign.to_string_lossy().into_owned(),
        });
        assert_eq!(code, "not_allowed");
        assert!(
            msg.contains("belongs to uid 65534, not to the caller"),
            "{msg}"
        );
    }
    // A second name for a file: the caller's own file, so that only the link count refuses it.
    let own = jobs.join("own.tar");
    std::fs::write(&own, archive(&[("provision/a", b"a", 0o644)])).unwrap();
    let linked = jobs.join("linked.tar");
    std::fs::hard_link(&own, &linked).unwrap();
    let (_, msg) = w.refused(&Request::Deliver {
        ctid: ct(100),
        archive: linked.to_string_lossy().into_owned(),
    });
    assert!(msg.contains("hard link"), "{msg}");
}

fn call_with(config: &Path, req: &Request) -> Reply {
    appstore_helper::client::call_command(
        Path::new(HELPER),
        &["--config", config.to_str().unwrap()],
        req,
        &mut |_, _| {},
    )
    .unwrap()
}

/// The audit log cannot be turned into a write anywhere: a symlink in its place is not followed,
/// and a directory someone else can write is refused.
#[test]
fn audit_log_is_not_a_way_to_write_as_root() {
    let w = world(false);
    let victim = w.dir.path().join("victim");
    std::fs::write(&victim, "untouched\n").unwrap();
    let helper_dir = w.dir.path().join("helper");
    std::fs::create_dir_all(&helper_dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&victim, helper_dir.join("audit.log")).unwrap();
    w.ok(&Request::Status { ctid: ct(100) });
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    std::fs::remove_file(helper_dir.join("audit.log")).unwrap();
    // A directory the service could write: nothing is written into it.
    std::fs::set_permissions(&helper_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    w.ok(&Request::Status { ctid: ct(100) });
    assert!(!helper_dir.join("audit.log").exists());
    std::fs::set_permissions(&helper_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Hostile strings stay inside their JSON line.
    let _ = w.raw(
        "{\"action\":\"run_script\",\"ctid\":100,\"script\":\"x\\n{\\\"forged\\\":1}\",\"timeout_sec\":5}\n",
    );
    let audit = std::fs::read_to_string(helper_dir.join("audit.log")).unwrap();
    assert_eq!(audit.lines().count(), 1, "{audit}");
    assert!(audit.contains("control character"), "{audit}");
    for line in audit.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
}

/// A bind-mount source whose directories someone else controls (the container's root, uid 100000,
/// or a world-writable directory) is refused at attach and again before a start.
#[test]
fn bind_mounts_need_root_controlled_directories() {
    let w = world(false);
    let media = w.dir.path().join("media");
    let owned = media.join("ct-owned/data");
    std::fs::create_dir_all(&owned).unwrap();
    let owned_by_ct =
        std::os::unix::fs::chown(media.join("ct-owned"), Some(100_000), Some(100_000)).is_ok();
    if !pve_sim::harness::prerequisite(owned_by_ct, "APPSTORE_REQUIRE_LXC", "chown needs root") {
        return;
    }
    let bind = |host: &Path, index: u8| Request::BindMount {
        ctid: ct(100),
        index,
        host_path: host.to_string_lossy().into_owned(),
        mount_path: "/data".into(),
        read_only: false,
    };
    pve_stop(&w, 100);
    let (code, msg) = w.refused(&bind(&owned, 3));
    assert_eq!(code, "not_allowed");
    assert!(
        msg.contains("which someone other than root can change"),
        "{msg}"
    );
    let open = media.join("open/data");
    std::fs::create_dir_all(&open).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(media.join("open"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (_, msg) = w.refused(&bind(&open, 3));
    assert!(msg.contains("mode 777"), "{msg}");
    // Attached while safe, then made writable: the check before the start refuses it.
    let fine = media.join("fine/data");
    std::fs::create_dir_all(&fine).unwrap();
    w.ok(&bind(&fine, 4));
    assert!(w.conf(100).contains("mp4: "));
    w.ok(&Request::CheckMounts { ctid: ct(100) });
    std::fs::set_permissions(media.join("fine"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, msg) = w.refused(&Request::CheckMounts { ctid: ct(100) });
    assert_eq!(code, "not_allowed");
    assert!(msg.contains("container 100 mp4"), "{msg}");
    // A sticky, world-writable directory right above the source does not count as root's.
    let shared = media.join("shared");
    std::fs::create_dir_all(shared.join("data")).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let (_, msg) = w.refused(&bind(&shared.join("data"), 3));
    assert!(msg.contains("mode 1777"), "{msg}");
    // The `volume=` form and the pending section are checked too.
    std::fs::set_permissions(media.join("fine"), std::fs::Permissions::from_mode(0o755)).unwrap();
    w.ok(&Request::CheckMounts { ctid: ct(100) });
    let conf_path = w.sim.root.join("etc/pve/lxc/100.conf");
    let original = std::fs::read_to_string(&conf_path).unwrap();
    std::fs::write(&conf_path, format!("{original}mp7: mp=/x,volume=/etc\n")).unwrap();
    let (_, msg) = w.refused(&Request::CheckMounts { ctid: ct(100) });
    assert!(msg.contains("container 100 mp7"), "{msg}");
    std::fs::write(
        &conf_path,
        format!("{original}\n[pve:pending]\nmp7: /etc,mp=/x\n"),
    )
    .unwrap();
    let (_, msg) = w.refused(&Request::CheckMounts { ctid: ct(100) });
    assert!(msg.contains("container 100 mp7"), "{msg}");
    std::fs::write(&conf_path, &original).unwrap();
    // read_only is honoured.
    std::fs::set_permissions(media.join("fine"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ro = media.join("fine/ro");
    std::fs::create_dir_all(&ro).unwrap();
    w.ok(&Request::BindMount {
        ctid: ct(100),
        index: 5,
        host_path: ro.to_string_lossy().into_owned(),
        mount_path: "/ro".into(),
        read_only: true,
    });
    assert!(w
        .conf(100)
        .contains(&format!("mp5: {},mp=/ro,ro=1\n", ro.display())));
}

fn pve_stop(w: &World, id: u32) {
    let out = Command::new(w.sim.root.join("usr/sbin/pct"))
        .args(["stop", &id.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Config edits wait for PVE's config lock and refuse a lock file that is a symlink.
#[test]
fn config_edits_take_the_lock_without_following_links() {
    let w = world(false);
    pve_stop(&w, 100);
    let lock_dir = w.sim.root.join("run/lock/lxc");
    std::fs::create_dir_all(&lock_dir).unwrap();
    let victim = w.dir.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let lock = lock_dir.join("pve-config-100.lock");
    let _ = std::fs::remove_file(&lock);
    std::os::unix::fs::symlink(&victim, &lock).unwrap();
    let (code, msg) = match w
        .call(&Request::SetFeatures {
            ctid: ct(100),
            features: BTreeMap::from([("nesting".to_string(), true)]),
        })
        .0
    {
        Reply::Failed { error, .. } => (error.code, error.message),
        r => panic!("{r:?}"),
    };
    assert_eq!(code, "failed", "{msg}");
    assert!(msg.contains("config lock"), "{msg}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    std::fs::remove_file(&lock).unwrap();
    // Another task holds the lock while it changes the config: the helper waits for it and edits
    // the config as that task left it (without the lock it would write over the change).
    let conf_path = w.sim.root.join("etc/pve/lxc/100.conf");
    let holder = std::thread::spawn({
        let (lock, conf_path) = (lock.clone(), conf_path.clone());
        move || {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock)
                .unwrap();
            f.lock().unwrap();
            let before = std::fs::read_to_string(&conf_path).unwrap();
            std::thread::sleep(Duration::from_millis(700));
            std::fs::write(&conf_path, format!("{before}cores: 3\n")).unwrap();
            drop(f);
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    w.ok(&Request::SetFeatures {
        ctid: ct(100),
        features: BTreeMap::from([("nesting".to_string(), true)]),
    });
    holder.join().unwrap();
    let conf = w.conf(100);
    assert!(conf.contains("features: nesting=1\n"), "{conf}");
    assert!(
        conf.contains("cores: 3\n"),
        "the other task's change was kept: {conf}"
    );
    // A running container's config is not edited behind PVE's back.
    let out = Command::new(w.sim.root.join("usr/sbin/pct"))
        .args(["start", "100"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (_, msg) = match w
        .call(&Request::SetFeatures {
            ctid: ct(100),
            features: BTreeMap::from([("nesting".to_string(), false)]),
        })
        .0
    {
        Reply::Failed { error, .. } => (error.code, error.message),
        r => panic!("{r:?}"),
    };
    assert!(msg.contains("must be stopped"), "{msg}");
}

/// A raw cgroup rule that opens a device the helper did not pass through (`/dev/mem` is 1:1) makes
/// the container one the helper does not act on.
#[test]
fn foreign_device_rules_are_refused() {
    let w = world(false);
    let conf_path = w.sim.root.join("etc/pve/lxc/100.conf");
    let original = std::fs::read_to_string(&conf_path).unwrap();
    std::fs::write(
        &conf_path,
        format!("{original}lxc.cgroup2.devices.allow: c 1:1 rwm\n"),
    )
    .unwrap();
    let (code, msg) = w.refused(&Request::Status { ctid: ct(100) });
    assert_eq!(code, "boundary");
    assert!(
        msg.contains("[raw-lxc] container 100 carries `lxc.cgroup2.devices.allow: c 1:1 rwm`"),
        "{msg}"
    );
}
