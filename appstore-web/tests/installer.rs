//! The installer end to end. `dist/install.sh` runs inside a real LXC container booted with
//! systemd, where a simulated PVE node stands in for the real one: `pve-sim --root / --fresh` as a
//! systemd service (the API on 127.0.0.1:8006 over TLS), with `pct`, `pveum`, `pvesh` and
//! `pveversion` at their real paths acting on `/etc/pve`. The build's binaries and `dist/` are
//! bind-mounted read-only. 9.1 runs on a Debian 13 container without questions; 8.4 on a Debian 12
//! one through the whiptail questions, driven with tmux.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

use pve_sim::harness::{lxc_available, HarnessOptions, RunningSim};
use pve_sim::state::SimRoot;
use pve_sim::PveVersion;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PASSWORD: &str = "Correct-Horse-9-Battery";

/// Where cargo put the binaries (`target/debug`).
fn build_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_pve-appstore"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A container booted with systemd on a host node, with the build and `dist/` mounted.
struct Bed {
    sim: RunningSim,
    id: u32,
    release: PveVersion,
}

impl Bed {
    fn new(release: PveVersion, id: u32) -> Bed {
        for bin in [
            "pve-appstore",
            "pve-appstore-helper",
            "pve-sim",
            "pve-sim-pct",
            "pve-sim-admin",
        ] {
            assert!(
                build_dir().join(bin).is_file(),
                "{bin} is not built; run `cargo build --workspace --all-features --bins` (scripts/test.sh does)"
            );
        }
        // The host node runs the same release, so its templates are that release's.
        let sim = pve_sim::harness::start(HarnessOptions {
            backend: "lxc".into(),
            version: release,
            ..Default::default()
        })
        .unwrap();
        let template = if release.is_9() {
            "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst"
        } else {
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
        };
        let root = SimRoot::open(&sim.root).unwrap();
        let (code, _, err) = pct(
            &sim,
            &[
                "create",
                &id.to_string(),
                template,
                "--hostname",
                "pve1",
                "--unprivileged",
                "0",
                "--net0",
                "name=eth0,bridge=vmbr0,ip=dhcp",
            ],
        );
        assert_eq!(code, 0, "{err}");
        {
            let _lock = root.lock_config(id).unwrap();
            let (mut conf, _) = root.read_conf(id).unwrap();
            let cur = conf.current_mut();
            let debian = build_dir().join("../debian");
            std::fs::create_dir_all(&debian).unwrap();
            for (host, inside) in [
                (build_dir(), "mnt/build"),
                (repo().join("dist"), "mnt/dist"),
                (debian, "mnt/debian"),
            ] {
                cur.push_raw_lxc(
                    "lxc.mount.entry",
                    &format!("{} {inside} none bind,ro,create=dir 0 0", host.display()),
                );
            }
            root.write_conf(id, &conf).unwrap();
        }
        assert_eq!(pct(&sim, &["start", &id.to_string()]).0, 0);
        let bed = Bed { sim, id, release };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (_, state, _) = bed.sh("systemctl is-system-running --wait");
            if matches!(state.trim(), "running" | "degraded") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "systemd did not come up: {state}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        bed.node();
        bed
    }

    /// Runs `script` with bash inside the container: (exit code, stdout, stderr).
    fn sh(&self, script: &str) -> (i32, String, String) {
        pct(
            &self.sim,
            &[
                "exec",
                &self.id.to_string(),
                "--keep-env",
                "0",
                "--",
                "bash",
                "-c",
                script,
            ],
        )
    }

    /// `sh`, which must succeed; its stdout.
    fn ok(&self, script: &str) -> String {
        let (code, out, err) = self.sh(script);
        assert_eq!(code, 0, "{script}\n--- stdout\n{out}\n--- stderr\n{err}");
        out
    }

    /// What a node has before the installer: the packages a PVE node brings (whiptail, openssl,
    /// curl, sudo; tmux for the test's terminal), and the simulated node as a service.
    fn node(&self) {
        self.ok("export DEBIAN_FRONTEND=noninteractive; \
             apt-get update -qq && apt-get install -y -qq --no-install-recommends \
             whiptail openssl curl sudo tmux ca-certificates >/dev/null");
        self.ok(&format!(
            "cat > /etc/systemd/system/pve-sim.service <<'EOF'\n\
             [Unit]\nDescription=Simulated Proxmox VE {release} (pveproxy and pmxcfs stand-in)\n\
             [Service]\nExecStart=/mnt/build/pve-sim --root / --fresh --version {release} --backend inert --node pve1 --task-latency-ms 5 --auth-delay-ms 200\n\
             [Install]\nWantedBy=multi-user.target\nEOF\n\
             systemctl daemon-reload && systemctl enable --now pve-sim.service >/dev/null\n\
             for i in $(seq 100); do curl -sk -o /dev/null https://127.0.0.1:8006/api2/json/version && exit 0; sleep 0.1; done; exit 1",
            release = self.release.release()
        ));
    }

    /// The file's `owner:group mode`.
    fn stat(&self, path: &str) -> String {
        self.ok(&format!("stat -c '%U:%G %a' {path}"))
            .trim()
            .to_string()
    }

    /// Logs in to the installed store and submits an install of `app`; the job's final state.
    fn install_app(&self, app: &str) -> String {
        let script = format!(
            r#"set -e
base=https://127.0.0.1:8088
csrf=$(curl -fsk -c /tmp/jar -H 'content-type: application/json' -d '{{"password":"{PASSWORD}"}}' $base/api/login | grep -o '"csrf":"[^"]*"' | cut -d'"' -f4)
for i in $(seq 100); do curl -fsk -b /tmp/jar $base/api/catalog | grep -q '"commit"' && break; sleep 0.2; done
answer=$(curl -sk -b /tmp/jar -H "x-csrf-token: $csrf" -H 'content-type: application/json' \
  -d '{{"app_id":"{app}","inputs":{{"username":"alice","password":"Secret-Pass-123"}}}}' $base/api/install)
job=$(echo "$answer" | grep -o '"job_id":[0-9]*' | cut -d: -f2)
[ -n "$job" ] || {{ echo "refused: $answer $(curl -sk -b /tmp/jar $base/api/catalog)"; journalctl -u pve-appstore --no-pager | tail -5; exit 0; }}
for i in $(seq 300); do
  state=$(curl -fsk -b /tmp/jar $base/api/jobs/$job | grep -o '"state":"[a-z_]*"' | head -n1 | cut -d'"' -f4)
  case $state in completed|failed|canceled) echo "$state"; exit 0;; esac
  sleep 0.2
done
echo "still $state: $(curl -sk -b /tmp/jar $base/api/jobs/$job/logs | tail -c 600)""#
        );
        self.ok(&script).trim().to_string()
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

/// What the installer must have set up, checked inside the container.
fn assert_installed(bed: &Bed) {
    // Files, owners and modes.
    for (path, want) in [
        ("/usr/bin/pve-appstore", "root:root 755"),
        ("/usr/lib/pve-appstore/pve-appstore-helper", "root:root 755"),
        ("/etc/pve-appstore", "root:appstore 750"),
        ("/etc/pve-appstore/config.yml", "root:appstore 640"),
        ("/etc/pve-appstore/helper.yml", "root:root 600"),
        ("/etc/pve-appstore/token", "root:appstore 640"),
        ("/etc/pve-appstore/web.key", "root:appstore 640"),
        ("/etc/sudoers.d/pve-appstore", "root:root 440"),
        ("/var/lib/pve-appstore", "appstore:appstore 700"),
    ] {
        assert_eq!(bed.stat(path), want, "{path}");
    }
    bed.ok("visudo -cf /etc/sudoers.d/pve-appstore");
    // The units where the package or the installer put them.
    bed.ok(
        "systemd-analyze verify \"$(systemctl show -P FragmentPath pve-appstore.service)\" \
         \"$(systemctl show -P FragmentPath pve-appstore-helper.socket)\" \
         \"$(dirname \"$(systemctl show -P FragmentPath pve-appstore-helper.socket)\")/pve-appstore-helper@.service\"",
    );
    assert_eq!(
        bed.ok("systemctl is-active pve-appstore.service pve-appstore-helper.socket"),
        "active\nactive\n"
    );
    // The token's secret is in its file and nowhere in the config.
    let secret = bed.ok("cat /etc/pve-appstore/token").trim().to_string();
    let config = bed.ok("cat /etc/pve-appstore/config.yml");
    assert!(!config.contains(&secret));
    assert!(config.contains("backup_storage: \"local\""), "{config}");
    // The privileges granted are exactly the plan: two roles, and ACLs for the user and its token
    // (the backup storage, `local` by default, among them).
    let users = bed.ok("cat /etc/pve/user.cfg");
    assert!(
        users.contains(&format!(
            "role:PVEAppStore:{}:",
            appstore_core::access::POOL_PRIVILEGES.join(",")
        )),
        "{users}"
    );
    assert!(
        users.contains("role:PVEAppStoreTemplates:Datastore.AllocateTemplate,Datastore.Audit:"),
        "{users}"
    );
    let acls: Vec<&str> = users.lines().filter(|l| l.starts_with("acl:")).collect();
    assert_eq!(
        acls,
        [
            "acl:1:/pool/appstore:appstore@pve,appstore@pve!store:PVEAppStore:",
            "acl:1:/sdn/zones/localnetwork/vmbr0:appstore@pve,appstore@pve!store:PVESDNUser:",
            // `local` holds the templates and the backups.
            "acl:1:/storage/local:appstore@pve,appstore@pve!store:PVEAppStoreTemplates,PVEDatastoreUser:",
            "acl:1:/storage/local-lvm:appstore@pve,appstore@pve!store:PVEDatastoreUser:",
        ],
        "{users}"
    );
    assert!(
        users.contains("token:appstore@pve!store:0:1:"),
        "privilege-separated: {users}"
    );
    // The service finds everything in place.
    bed.ok("runuser -u appstore -- pve-appstore doctor --config /etc/pve-appstore/config.yml");
}

/// Checksums of what a re-run must leave alone.
fn fingerprint(bed: &Bed) -> String {
    bed.ok(
        "sha256sum /etc/pve-appstore/config.yml /etc/pve-appstore/helper.yml /etc/pve-appstore/token \
         /etc/pve/user.cfg /etc/pve/priv/token.cfg",
    )
}

#[test]
fn installs_without_questions_on_a_9_1_node_reruns_cleanly_and_uninstalls_keeping_containers() {
    if !lxc_available() {
        return;
    }
    let debs: Vec<PathBuf> = std::fs::read_dir(build_dir().join("../debian"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    let deb = debs
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .unwrap_or_else(|| panic!("no .deb in target/debian; run `PROFILE=dev FEATURES=--all-features scripts/package.sh` (scripts/test.sh does)"))
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let bed = Bed::new(PveVersion::V9_1, 301);
    // As automation would: the package, then the installer it ships, without questions.
    let out = bed.ok(&format!(
        "bash /mnt/dist/install.sh --non-interactive --package /mnt/debian/{deb} --password '{PASSWORD}'"
    ));
    assert!(out.contains("Proxmox VE 9.1 on node pve1"), "{out}");
    assert!(
        out.contains("==> PVE App Store is running: https://"),
        "{out}"
    );
    assert_installed(&bed);

    // The token the installer made is the one the service now installs an app with.
    assert_eq!(bed.install_app("radicale"), "completed");
    let containers = bed.ok("ls /etc/pve/lxc");
    assert_eq!(containers.lines().count(), 1, "{containers}");

    // A re-run upgrades in place and changes nothing else.
    let before = fingerprint(&bed);
    let out = bed.ok(&format!(
        "bash /usr/share/pve-appstore/install.sh --non-interactive --package /mnt/debian/{deb}"
    ));
    assert!(out.contains("upgrading in place"), "{out}");
    assert_eq!(fingerprint(&bed), before);
    assert_eq!(
        bed.ok("systemctl is-active pve-appstore.service"),
        "active\n"
    );

    // An apt-style upgrade to a newer package restarts the service on the new version and keeps
    // the config (the same build, repacked as version 0.1.0-2).
    let pid = bed.ok("systemctl show -P MainPID pve-appstore.service");
    bed.ok(&format!(
        "set -e; rm -rf /tmp/pkg; dpkg-deb -R /mnt/debian/{deb} /tmp/pkg; \
         sed -i 's/^Version: .*/Version: 0.1.0-2/' /tmp/pkg/DEBIAN/control; \
         dpkg-deb -Zgzip -z1 -b /tmp/pkg /tmp/pve-appstore_0.1.0-2_amd64.deb >/dev/null; \
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/pve-appstore_0.1.0-2_amd64.deb >/dev/null"
    ));
    assert_eq!(
        bed.ok("dpkg-query -W -f '${Version}' pve-appstore"),
        "0.1.0-2"
    );
    assert_ne!(
        bed.ok("systemctl show -P MainPID pve-appstore.service"),
        pid,
        "restarted"
    );
    assert_eq!(fingerprint(&bed), before);
    bed.ok("for i in $(seq 100); do curl -fsk -o /dev/null https://127.0.0.1:8088/api/health && exit 0; sleep 0.1; done; exit 1");

    // Uninstall: the service, its files, the PVE user, token and roles go; the app stays.
    bed.ok("bash /usr/share/pve-appstore/install.sh --uninstall");
    assert_eq!(bed.ok("ls /etc/pve/lxc"), containers);
    let users = bed.ok("cat /etc/pve/user.cfg");
    assert!(!users.contains("appstore@pve"), "{users}");
    assert!(!users.contains("PVEAppStore"), "{users}");
    assert_eq!(
        bed.sh("test -e /etc/pve-appstore || test -e /usr/bin/pve-appstore")
            .0,
        1
    );
    assert_ne!(
        bed.sh("systemctl is-active pve-appstore.service").1,
        "active\n"
    );
}

/// How the installer asks, and how the test answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ui {
    Whiptail,
    Dialog,
    Plain,
}

impl Ui {
    /// What a screen asks: `Some(true)` a password, `Some(false)` a question, `None` nothing yet.
    fn asks(self, screen: &str) -> Option<bool> {
        let password = screen.contains("password") || screen.contains("again");
        match self {
            Ui::Whiptail => screen.contains("<Ok>").then_some(password),
            Ui::Dialog => screen
                .lines()
                .any(|l| l.contains("<  OK  >") || l.contains("< OK >"))
                .then_some(password),
            Ui::Plain => {
                let last = screen
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())?
                    .trim_end();
                if last.ends_with("characters):") || last.ends_with("again:") {
                    Some(true)
                } else {
                    last.ends_with("]:").then_some(false)
                }
            }
        }
    }
}

/// Runs the installer with its questions in `ui` (the script on stdin, as with `curl | bash`),
/// accepting every default and giving the password twice; checks what it set up.
fn guided_install(bed: &Bed, ui: Ui) {
    let packages = match ui {
        Ui::Whiptail => "apt-get install -y -qq whiptail >/dev/null",
        Ui::Dialog => {
            "apt-get install -y -qq dialog >/dev/null && apt-get remove -y -qq whiptail >/dev/null"
        }
        Ui::Plain => "apt-get remove -y -qq whiptail dialog >/dev/null",
    };
    bed.ok(&format!(
        "export DEBIAN_FRONTEND=noninteractive; {packages}; rm -f /tmp/install.exit"
    ));
    bed.ok(
        "tmux new-session -d -s install -x 120 -y 40 \
         'bash -s -- --binaries /mnt/build --dist /mnt/dist < /mnt/dist/install.sh; echo \"EXIT=$?\" > /tmp/install.exit; sleep 3600'",
    );
    let deadline = Instant::now() + Duration::from_secs(240);
    let (mut questions, mut last, mut passwords) = (0, String::new(), 0);
    loop {
        assert!(
            Instant::now() < deadline,
            "{ui:?}: the installer did not finish:\n{last}"
        );
        if bed.sh("test -e /tmp/install.exit").0 == 0 {
            break;
        }
        // A password box echoes `*` per key: that is the same question, already answered.
        let screen = bed.ok("tmux capture-pane -p -t install").replace('*', "");
        if screen == last {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        last = screen.clone();
        // The password comes last: after both, the boxes left on the screen ask nothing.
        if passwords == 2 {
            continue;
        }
        match ui.asks(&screen) {
            Some(true) => {
                bed.ok(&format!(
                    "tmux send-keys -t install -l '{PASSWORD}' && tmux send-keys -t install Enter"
                ));
                passwords += 1;
            }
            Some(false) => {
                bed.ok("tmux send-keys -t install Enter");
                questions += 1;
            }
            None => {}
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let exit = bed.ok("cat /tmp/install.exit");
    let screen = bed.ok("tmux capture-pane -p -S -300 -t install");
    bed.ok("tmux kill-server");
    assert_eq!(exit.trim(), "EXIT=0", "{ui:?}:\n{screen}");
    assert_eq!(passwords, 2, "{ui:?}: the password and its confirmation");
    assert!(
        questions >= 14,
        "{ui:?}: every question was asked ({questions})"
    );
    // dialog paints over the lines printed before its first box.
    assert!(
        ui == Ui::Dialog || screen.contains("Proxmox VE 8.4 on node pve1"),
        "{screen}"
    );
    assert!(
        screen.contains("log in with the admin password you chose"),
        "{screen}"
    );
    assert_installed(bed);
}

#[test]
fn the_guided_install_asks_through_whiptail_dialog_or_the_terminal_on_an_8_4_node() {
    if !lxc_available() {
        return;
    }
    let bed = Bed::new(PveVersion::V8_4, 302);
    for ui in [Ui::Whiptail, Ui::Dialog, Ui::Plain] {
        guided_install(&bed, ui);
        // Uninstalled between the runs, so that each one asks everything again.
        bed.ok("bash /mnt/dist/install.sh --uninstall");
    }
}
