//! The `pve-appstore` binary as users run it: `catalog lint` and `catalog schema` on real directories
//! and Git repositories, and the demo server answering the catalog API and serving the UI.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first failure

mod conformance;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pve-appstore"))
}

fn reference_catalog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog")
}

fn reference_app_count() -> usize {
    std::fs::read_dir(reference_catalog().join("apps"))
        .unwrap()
        .count()
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run pve-appstore");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn broken_catalog() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "apps/good/app.yml", "id: good\nname: Good\ndescription: Fine\nversion: 1.0.0\nlxc: { ostemplate: debian-12 }\nprovision: { script: install.sh }\n");
    write(dir.path(), "apps/good/install.sh", "echo ok\n");
    write(dir.path(), "apps/bad/app.yml", "id: bad\nname: Bad\ndescription: Broken\nversion: 1.0.0\nlxc: { ostemplate: debian-12 }\nprovision: { script: install.sh }\ninputs:\n  - { key: port, label: Port, type: number, default: 5, validation: { min: 10, max: 1 } }\n");
    dir
}

#[test]
fn lint_passes_on_the_reference_catalog() {
    let (code, out, err) = run(bin().args(["catalog", "lint"]).arg(reference_catalog()));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok      obsidian-livesync"), "{out}");
    assert!(
        out.ends_with(&format!("{} valid, 0 broken\n", reference_app_count())),
        "{out}"
    );
}

/// Every `.sh` file below `app/provision` passes shellcheck (run from that directory, so that the
/// scripts' `source=common.sh` directives resolve). shellcheck is a prerequisite of the test bed.
fn shellcheck_scripts(app: &Path) {
    let shellcheck = Command::new("shellcheck").arg("--version").output().is_ok();
    if !pve_sim::harness::prerequisite(
        shellcheck,
        "APPSTORE_REQUIRE_LXC",
        "shellcheck is not installed (scripts/bootstrap.sh installs it for the tests)",
    ) {
        return;
    }
    let dir = app.join("provision");
    let scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    assert!(!scripts.is_empty(), "{} has no scripts", dir.display());
    let out = Command::new("shellcheck")
        .arg("-x")
        .args(&scripts)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        app.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The reference catalog's scripts pass shellcheck.
#[test]
fn the_reference_catalogs_scripts_pass_shellcheck() {
    for app in std::fs::read_dir(reference_catalog().join("apps")).unwrap() {
        shellcheck_scripts(&app.unwrap().path());
    }
}

/// The reference catalog has at least 24 apps; each says where it installs from, and the install
/// plan of each renders: without a GPU, and with each GPU vendor it supports (the vendor's profile
/// and device nodes, and its variables in the scripts' environment).
#[test]
fn every_reference_app_declares_its_sources_and_renders_its_install_plan() {
    let snap =
        appstore_web::lint::load(&reference_catalog().display().to_string(), "main", "").unwrap();
    assert!(snap.broken().is_empty(), "{:?}", snap.broken());
    assert!(snap.apps().len() >= 24, "{} apps", snap.apps().len());
    let mut elsewhere = 0;
    for (id, app) in snap.apps() {
        let m = &app.manifest;
        assert!(!m.sources().is_empty(), "{id} declares no sources");
        if !m.installs_from_public_registries() {
            elsewhere += 1;
        }
        assert!(
            m.outputs().first().is_some_and(|o| o.key == "url"),
            "{id}: the first output is the URL"
        );
        let (code, out, err) = run(bin()
            .args(["catalog", "plan"])
            .arg(reference_catalog())
            .arg(id.as_str()));
        assert_eq!(code, 0, "{id}: {err}");
        assert!(
            out.contains(&format!(
                "ostemplate: <template storage>:vztmpl/<newest {}",
                m.lxc().ostemplate
            )),
            "{out}"
        );
        assert!(out.contains("install: provision/"), "{out}");
        for vendor in &m.gpu().supported {
            let (code, out, err) = run(bin()
                .args(["catalog", "plan"])
                .arg(reference_catalog())
                .arg(id.as_str())
                .args(["--gpu", vendor.as_str()]));
            assert_eq!(code, 0, "{id} --gpu {}: {err}", vendor.as_str());
            assert!(
                out.contains(&format!("APPSTORE_GPU_VENDOR={}", vendor.as_str())),
                "{out}"
            );
            let nodes = match vendor.as_str() {
                "nvidia" => "/dev/nvidiactl",
                _ => "/dev/dri/renderD*",
            };
            assert!(out.contains(nodes), "{id} {}: {out}", vendor.as_str());
        }
    }
    assert!(elsewhere >= 4, "{elsewhere} apps from elsewhere");
    // A vendor the app does not support is refused by name.
    let (code, _, err) = run(bin()
        .args(["catalog", "plan"])
        .arg(reference_catalog())
        .args(["radicale", "--gpu", "nvidia"]));
    assert_eq!(code, 2);
    assert!(err.contains("does not support that vendor"), "{err}");
}

/// The manifest reference in the catalog's CONTRIBUTING.md is what `catalog reference` generates
/// from the JSON Schema (`UPDATE_EXPECT=1` rewrites it).
#[test]
fn contributing_carries_the_generated_manifest_reference() {
    let path = reference_catalog().join("CONTRIBUTING.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (code, generated, err) = run(bin().args(["catalog", "reference"]));
    assert_eq!(code, 0, "{err}");
    let begin = "<!-- BEGIN GENERATED: pve-appstore catalog reference -->\n";
    let end = "<!-- END GENERATED -->";
    let start = text.find(begin).expect("the BEGIN marker") + begin.len();
    let stop = text.find(end).expect("the END marker");
    let want = format!("\n{generated}");
    if text[start..stop] != want {
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&path, format!("{}{want}{}", &text[..start], &text[stop..])).unwrap();
        } else {
            panic!(
                "CONTRIBUTING.md's manifest reference is stale: run the tests with UPDATE_EXPECT=1"
            );
        }
    }
    assert!(generated.contains("| `sources` |"), "{generated}");
    assert!(generated.contains("### `GpuVendor`"), "{generated}");
}

/// The CI workflow a catalog repository copies is valid YAML with the lint, shellcheck, plan and
/// lifecycle jobs, and every `pve-appstore` command it runs exists with the flags it passes.
#[test]
fn the_catalog_ci_workflow_runs_commands_that_exist() {
    let text = std::fs::read_to_string(reference_catalog().join("ci/catalog-ci.yml")).unwrap();
    let doc: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    let jobs = doc["jobs"].as_object().unwrap();
    for job in ["tools", "lint", "lifecycle"] {
        assert!(jobs.contains_key(job), "job {job}");
    }
    let mut commands = 0;
    for job in jobs.values() {
        for step in job["steps"].as_array().unwrap() {
            let Some(script) = step["run"].as_str() else {
                continue;
            };
            for line in script.lines().map(str::trim) {
                let Some(rest) = line.strip_prefix("pve-appstore ") else {
                    continue;
                };
                let words: Vec<&str> = rest.split_whitespace().collect();
                let sub: Vec<&str> = words
                    .iter()
                    .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase()))
                    .copied()
                    .collect();
                let (code, help, err) = run(bin().args(&sub).arg("--help"));
                assert_eq!(code, 0, "{line}: {err}");
                for flag in words.iter().filter(|w| w.starts_with("--")) {
                    assert!(
                        help.contains(flag),
                        "{line}: {flag} is not an option:\n{help}"
                    );
                }
                commands += 1;
            }
        }
    }
    assert!(commands >= 3, "{commands} pve-appstore commands");
    assert!(text.contains("shellcheck -x"));
}

/// `catalog new` starts an app that lints clean and whose scripts pass shellcheck; it never
/// overwrites an app, and a bad id says what an id looks like.
#[test]
fn catalog_new_scaffolds_an_app_that_lints_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(bin()
        .args(["catalog", "new", "my-app", "--catalog"])
        .arg(dir.path()));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("apps/my-app"), "{out}");
    let (code, out, err) = run(bin().args(["catalog", "lint"]).arg(dir.path()));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok      my-app 1.0.0"), "{out}");
    let app = dir.path().join("apps/my-app");
    assert!(std::fs::read_to_string(app.join("app.yml"))
        .unwrap()
        .contains("name: My App"));
    shellcheck_scripts(&app);
    let (code, _, err) = run(bin()
        .args(["catalog", "new", "my-app", "--catalog"])
        .arg(dir.path()));
    assert_eq!(code, 2, "an error, as for every command");
    assert!(err.contains("exists already"), "{err}");
    let (code, _, err) = run(bin()
        .args(["catalog", "new", "My_App", "--catalog"])
        .arg(dir.path()));
    assert_eq!(code, 2);
    assert!(err.contains("app id: `My_App` is not kebab-case"), "{err}");
}

#[test]
fn lint_fails_with_every_problem_and_its_path() {
    let dir = broken_catalog();
    let (code, out, _) = run(bin().args(["catalog", "lint"]).arg(dir.path()));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("  ok      good 1.0.0\n"), "{out}");
    assert!(out.contains("  FAILED  bad\n"), "{out}");
    assert!(
        out.contains(
            "inputs[0].default: the default fails its own validation: must be at least 10"
        ),
        "{out}"
    );
    assert!(
        out.contains("inputs[0].validation: min (10) is greater than max (1)"),
        "{out}"
    );
}

#[test]
fn lint_json_is_machine_readable() {
    let dir = broken_catalog();
    let (code, out, _) = run(bin()
        .args(["catalog", "lint", "--format", "json"])
        .arg(dir.path()));
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["apps"][0]["id"], "good");
    assert_eq!(doc["broken"][0]["dir"], "bad");
    let paths: Vec<&str> = doc["broken"][0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "inputs[0].default",
            "inputs[0].validation",
            "provision.script"
        ]
    );
}

#[test]
fn lint_reads_a_git_url() {
    let dir = broken_catalog();
    let repo = git2::Repository::init(dir.path()).unwrap();
    repo.set_head("refs/heads/main").unwrap();
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.org").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "init", &tree, &[])
        .unwrap();
    let url = format!("file://{}", dir.path().display());
    let (code, out, _) = run(bin().args(["catalog", "lint", &url]));
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with(&format!("catalog {url} at ")), "{out}");
    let (code, _, err) = run(bin().args(["catalog", "lint", &url, "--branch", "nope"]));
    assert_eq!(code, 2);
    assert!(err.contains("branch `nope` does not exist"), "{err}");
}

#[test]
fn lint_of_a_missing_catalog_is_a_clear_error() {
    let (code, _, err) = run(bin().args(["catalog", "lint", "/nonexistent/catalog"]));
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: cannot fetch branch `main` of /nonexistent/catalog"),
        "{err}"
    );
}

#[test]
fn schema_prints_json_schema_for_editors() {
    let (code, out, _) = run(bin().args(["catalog", "schema"]));
    assert_eq!(code, 0);
    let schema: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(schema["properties"]["inputs"].is_object());
    let (_, out, _) = run(bin().args(["catalog", "schema", "--config"]));
    let schema: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(schema["properties"]["pool"]["description"]
        .as_str()
        .unwrap()
        .contains("pool"));
}

#[test]
fn serve_reports_every_config_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, "node: pve1\npool: 'bad pool'\nproxmox: { token_id: x, token_secret_file: /t }\nweb: { prot: 1 }\n").unwrap();
    let (code, _, err) = run(bin().arg("serve").arg("--config").arg(&path));
    assert_eq!(code, 2);
    assert!(
        err.contains("pool: `bad pool` is not a PVE pool id"),
        "{err}"
    );
    assert!(
        err.contains("proxmox.token_id: `x` is not a token id"),
        "{err}"
    );
    assert!(
        err.contains("web.prot: unknown key (did you mean `port`?)"),
        "{err}"
    );
}

/// The demo on a free port; killed when dropped.
struct Demo {
    child: Child,
    base: String,
    _state: tempfile::TempDir,
}

impl Demo {
    fn start() -> Demo {
        Demo::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Demo {
        Demo::start_in_zone(extra, "UTC")
    }

    /// A demo whose clock is in time zone `tz` (a `TZ` value).
    fn start_in_zone(extra: &[&str], tz: &str) -> Demo {
        let state = tempfile::tempdir().unwrap();
        let mut child = bin()
            .args(["demo", "--port", "0", "--state-dir"])
            .arg(state.path())
            .args(extra)
            .env("TZ", tz)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("PVE App Store listening on ")
            .expect(&line)
            .to_string();
        Demo {
            child,
            base,
            _state: state,
        }
    }

    fn get(&self, path: &str) -> reqwest::blocking::Response {
        reqwest::blocking::get(format!("{}{path}", self.base)).unwrap()
    }

    /// Waits (bounded, 30 s) until job `id` ends; its `GET /api/jobs/{id}` answer.
    fn wait_for_job(&self, id: i64) -> serde_json::Value {
        let mut job = serde_json::Value::Null;
        for _ in 0..300 {
            job = self.get(&format!("/api/jobs/{id}")).json().unwrap();
            if ["completed", "failed", "canceled"].contains(&job["job"]["state"].as_str().unwrap())
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        job
    }

    /// Installs radicale for `alice` with `password` and waits for it; the install's id.
    fn install_radicale(&self, password: &str) -> i64 {
        self.wait_for_catalog();
        let r = json_client()
            .post(format!("{}/api/install", self.base))
            .json(&serde_json::json!({"app_id": "radicale", "inputs": {"username": "alice", "password": password}}))
            .send()
            .unwrap();
        let id = r.json::<serde_json::Value>().unwrap()["job_id"]
            .as_i64()
            .unwrap();
        assert_eq!(self.wait_for_job(id)["job"]["state"], "completed");
        let installs: serde_json::Value = self.get("/api/installs").json().unwrap();
        installs["installs"][0]["id"].as_i64().unwrap()
    }

    /// Waits (bounded) until the first catalog load has finished.
    fn wait_for_catalog(&self) {
        for _ in 0..200 {
            let status: serde_json::Value = self.get("/api/catalog").json().unwrap();
            if status["source"].is_object() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the catalog never loaded");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn demo_serves_the_reference_catalog_and_the_ui() {
    let demo = Demo::start();
    demo.wait_for_catalog();
    let health: serde_json::Value = demo.get("/api/health").json().unwrap();
    assert_eq!(health["status"], "ok");

    let list: serde_json::Value = demo.get("/api/apps").json().unwrap();
    let ids: Vec<&str> = list["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(list["total"], reference_app_count());
    assert!(
        ids.contains(&"jellyfin")
            && ids.contains(&"radicale")
            && ids.contains(&"obsidian-livesync")
            && ids.contains(&"apt-cacher-ng")
    );

    let found: serde_json::Value = demo.get("/api/apps?q=caldav").json().unwrap();
    assert_eq!(found["apps"][0]["id"], "radicale");
    let media: serde_json::Value = demo.get("/api/apps?category=media").json().unwrap();
    let jellyfin = media["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "jellyfin")
        .expect("jellyfin is a media app");
    assert_eq!(
        jellyfin["gpu"]["supported"].as_array().unwrap().len(),
        3,
        "{jellyfin}"
    );

    let detail: serde_json::Value = demo.get("/api/apps/obsidian-livesync").json().unwrap();
    assert_eq!(detail["manifest"]["id"], "obsidian-livesync");
    assert!(detail["readme"].as_str().unwrap().len() > 100);
    assert_eq!(detail["manifest_sha256"].as_str().unwrap().len(), 64);

    let icon = demo.get("/api/apps/radicale/icon");
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert!(icon.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));

    let missing = demo.get("/api/apps/nope");
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["message"], "no app `nope` in the catalog");

    let bad = demo.get("/api/apps?sort=popularity");
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().unwrap();
    assert!(body["error"]["fields"]["sort"]
        .as_str()
        .unwrap()
        .contains("is not one of: featured, name, updated, popular"));
    let bad = demo.get("/api/apps?limit=0&offset=-1&page=2");
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().unwrap();
    let fields = &body["error"]["fields"];
    assert_eq!(fields["limit"], "`0` is not a whole number from 1 to 200");
    assert_eq!(
        fields["offset"],
        "`-1` is not a whole number from 0 to 1000000"
    );
    assert!(fields["page"]
        .as_str()
        .unwrap()
        .starts_with("unknown parameter"));

    // Pages: `total` counts every match, `offset` and `limit` pick the slice.
    let count = reference_app_count() as u64;
    let names: serde_json::Value = demo.get("/api/apps?sort=name&limit=3").json().unwrap();
    assert_eq!(
        (names["total"].as_u64(), names["limit"].as_u64()),
        (Some(count), Some(3))
    );
    let rest: serde_json::Value = demo
        .get(&format!(
            "/api/apps?sort=name&limit=200&offset={}",
            count - 1
        ))
        .json()
        .unwrap();
    let page_ids = |v: &serde_json::Value| -> Vec<String> {
        v["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    // By display name: Actual Budget, AdGuard Home, Apt-Cacher NG first; Valkey last.
    assert_eq!(
        page_ids(&names),
        ["actual-budget", "adguard-home", "apt-cacher-ng"]
    );
    assert_eq!(page_ids(&rest), ["valkey"]);

    let page = demo.get("/");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'self'"));
    assert!(page.text().unwrap().contains("PVE App Store"));
}

#[test]
fn demo_refresh_is_accepted_and_keeps_the_catalog() {
    let demo = Demo::start();
    demo.wait_for_catalog();
    let client = json_client();
    let r = client
        .post(format!("{}/api/catalog/refresh", demo.base))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    for _ in 0..200 {
        let s: serde_json::Value = demo.get("/api/catalog").json().unwrap();
        if s["refreshing"] == false {
            assert_eq!(s["apps"], reference_app_count());
            assert!(s["last_error"].is_null());
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("refresh never finished");
}

#[test]
fn demo_installs_an_app_through_the_api() {
    let demo = Demo::start();
    demo.wait_for_catalog();
    let client = json_client();
    let r = client
        .post(format!("{}/api/install", demo.base))
        .json(&serde_json::json!({"app_id": "radicale", "inputs": {"username": "alice", "password": "Demo-Secret-99"}}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().unwrap()["job_id"]
        .as_i64()
        .unwrap();
    let mut job = demo.wait_for_job(id);
    assert_eq!(job["job"]["state"], "completed", "{job}");
    assert_eq!(job["transitions"].as_array().unwrap().len(), 16);
    let logs: serde_json::Value = demo
        .get(&format!("/api/jobs/{id}/logs?after=0"))
        .json()
        .unwrap();
    let text = logs.to_string();
    assert!(
        text.contains("running provision/install.sh") && !text.contains("Demo-Secret-99"),
        "{text}"
    );
    let later: serde_json::Value = demo
        .get(&format!("/api/jobs/{id}/logs?after={}", logs["next"]))
        .json()
        .unwrap();
    assert!(
        later["lines"].as_array().unwrap().is_empty(),
        "the cursor moves on"
    );
    let installs: serde_json::Value = demo.get("/api/installs").json().unwrap();
    assert_eq!(installs["installs"][0]["container_status"], "running");
    assert_eq!(installs["installs"][0]["reconfigurable"], true);
    let outputs = &installs["installs"][0]["outputs"];
    assert_eq!(outputs[1]["value"], "alice");
    assert!(
        outputs[2]["value"].is_null(),
        "secret outputs are not listed"
    );
    assert!(!installs.to_string().contains("Demo-Secret-99"));

    // The install counts toward "popular" (re-counted when the completed event arrives).
    let mut popular = serde_json::Value::Null;
    for _ in 0..40 {
        popular = demo.get("/api/apps?sort=popular").json().unwrap();
        if popular["apps"][0]["installs"] == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(popular["apps"][0]["id"], "radicale", "{popular}");
    assert_eq!(popular["apps"][1]["installs"], 0);

    // The installed app's page: live state from PVE, config, volumes, job history.
    let install_id = installs["installs"][0]["id"].as_i64().unwrap();
    let detail: serde_json::Value = demo
        .get(&format!("/api/installs/{install_id}"))
        .json()
        .unwrap();
    let ct = &detail["container"];
    assert_eq!(ct["status"]["status"], "running", "{detail}");
    assert!(ct["status"]["maxmem"].as_u64().unwrap() > 0);
    assert!(ct["status"]["uptime"].is_u64());
    assert_eq!(ct["config"]["hostname"], "radicale", "{detail}");
    assert_eq!(ct["volumes"][0]["key"], "rootfs");
    assert_eq!(ct["volumes"][0]["mount"], "/");
    assert_eq!(detail["jobs"][0]["id"], id);
    assert_eq!(detail["jobs"][0]["kind"], "install");
    assert!(!detail.to_string().contains("Demo-Secret-99"));
    assert_eq!(demo.get("/api/installs/4242").status(), 404);

    // The debug bundle: job metadata, the job's last lines and the service log, no secret.
    let r = demo.get("/api/debug/bundle");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let text = r.text().unwrap();
    assert!(!text.contains("Demo-Secret-99"), "{text}");
    let bundle: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(bundle["config"]["mode"], "demo");
    assert_eq!(bundle["jobs"][0]["job"]["id"], id);
    assert_eq!(bundle["job_log"]["job_id"], id);
    let lines = bundle["job_log"]["lines"].as_array().unwrap();
    assert!(!lines.is_empty() && lines.len() <= 200);
    assert!(
        bundle["service_log"].as_array().unwrap().len() > 3,
        "{bundle}"
    );
    assert_eq!(demo.get("/api/debug/bundle?job_id=999").status(), 404);
    let bad = demo.get("/api/debug/bundle?job_id=abc");
    assert_eq!(bad.status(), 400);
    assert!(
        bad.json::<serde_json::Value>().unwrap()["error"]["fields"]["job_id"]
            .as_str()
            .unwrap()
            .contains("use a job id from GET /api/jobs")
    );

    let bad = client
        .post(format!("{}/api/install", demo.base))
        .json(&serde_json::json!({"app_id": "nope"}))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.json::<serde_json::Value>().unwrap()["error"]["fields"]["app_id"],
        "no app `nope` in the catalog"
    );
    assert_eq!(demo.get("/api/jobs/999").status(), 404);
    let cancel = client
        .post(format!("{}/api/jobs/{id}/cancel", demo.base))
        .send()
        .unwrap();
    assert_eq!(cancel.status(), 409, "a finished job cannot be canceled");

    // Uninstall it again.
    let r = client
        .post(format!("{}/api/uninstall", demo.base))
        .json(&serde_json::json!({"install_id": install_id}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let uid = r.json::<serde_json::Value>().unwrap()["job_id"]
        .as_i64()
        .unwrap();
    job = demo.wait_for_job(uid);
    assert_eq!(job["job"]["state"], "completed", "{job}");
    let installs: serde_json::Value = demo.get("/api/installs").json().unwrap();
    assert_eq!(installs["installs"][0]["status"], "removed");
    let detail: serde_json::Value = demo
        .get(&format!("/api/installs/{install_id}"))
        .json()
        .unwrap();
    assert!(detail["container"].is_null(), "{detail}");
    let kinds: Vec<&str> = detail["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["uninstall", "install"]);
    let again = client
        .post(format!("{}/api/uninstall", demo.base))
        .json(&serde_json::json!({"install_id": install_id}))
        .send()
        .unwrap();
    assert_eq!(
        again.status(),
        409,
        "a removed install cannot be uninstalled twice"
    );
    let missing = client
        .post(format!("{}/api/uninstall", demo.base))
        .json(&serde_json::json!({"install_id": 77}))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// Server-sent events of a stream that ends: (event, id, data) in order.
fn read_sse(resp: reqwest::blocking::Response) -> Vec<(String, Option<String>, serde_json::Value)> {
    let mut text = String::new();
    let mut resp = resp;
    std::io::Read::read_to_string(&mut resp, &mut text).unwrap();
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut id = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str(v.trim()).ok();
                }
            }
            Some((event?, id, data?))
        })
        .collect()
}

#[test]
fn demo_streams_a_job_live_and_resumes_from_the_last_event() {
    let demo = Demo::start();
    demo.wait_for_catalog();
    let client = json_client_builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .unwrap();
    let r = client
        .post(format!("{}/api/install", demo.base))
        .json(
            &serde_json::json!({"app_id": "radicale", "inputs": {"password": "Stream-Secret-77"}}),
        )
        .send()
        .unwrap();
    let id = r.json::<serde_json::Value>().unwrap()["job_id"]
        .as_i64()
        .unwrap();
    // Opened while the job runs; it ends by itself after the final state.
    let resp = client
        .get(format!("{}/api/jobs/{id}/stream", demo.base))
        .send()
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let events = read_sse(resp);
    let logs: Vec<&(String, Option<String>, serde_json::Value)> =
        events.iter().filter(|e| e.0 == "log").collect();
    for (i, (_, id, data)) in logs.iter().enumerate() {
        assert_eq!(
            data["seq"],
            serde_json::json!(i + 1),
            "no line lost or repeated"
        );
        assert_eq!(id.as_deref(), Some((i + 1).to_string().as_str()));
    }
    let states: Vec<&str> = events
        .iter()
        .filter(|e| e.0 == "state")
        .map(|e| e.2["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.last(), Some(&"completed"), "{states:?}");
    assert!(states.len() > 2, "states arrive live: {states:?}");
    let all = serde_json::to_string(&logs.iter().map(|e| &e.2).collect::<Vec<_>>()).unwrap();
    assert!(all.contains("running provision/install.sh"), "{all}");
    assert!(!all.contains("Stream-Secret-77"));
    // The same lines through the polling API.
    let polled: serde_json::Value = demo
        .get(&format!("/api/jobs/{id}/logs?after=0"))
        .json()
        .unwrap();
    assert_eq!(polled["lines"].as_array().unwrap().len(), logs.len());

    // A reconnecting client gets only what it missed.
    let n = logs.len();
    let resp = client
        .get(format!("{}/api/jobs/{id}/stream", demo.base))
        .header("Last-Event-ID", (n - 2).to_string())
        .send()
        .unwrap();
    let again = read_sse(resp);
    let seqs: Vec<i64> = again
        .iter()
        .filter(|e| e.0 == "log")
        .map(|e| e.2["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [n as i64 - 1, n as i64]);
    assert_eq!(again.last().unwrap().2["state"], "completed");
}

#[test]
fn demo_discovers_what_the_node_offers() {
    let demo = Demo::start();
    let d: serde_json::Value = demo.get("/api/system/discovery").json().unwrap();
    let pve = &d["pve"];
    assert_eq!(pve["node"], "pve1");
    assert_eq!(pve["pool_ok"], true, "{d}");
    // The demo's node runs the current release.
    assert!(pve["version"].as_str().unwrap().starts_with("9."), "{d}");
    let storages: Vec<&str> = pve["storages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["storage"].as_str().unwrap())
        .collect();
    assert_eq!(
        storages,
        ["local-lvm"],
        "only storages that hold containers"
    );
    let bridges: Vec<&str> = pve["bridges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["iface"].as_str().unwrap())
        .collect();
    assert!(bridges.contains(&"vmbr0"), "{d}");
    assert_eq!(pve["default_bridge"], "vmbr0");
    assert!(pve["errors"].as_array().unwrap().is_empty(), "{d}");
    assert!(d["host"]["cores"].as_u64().unwrap() >= 1, "{d}");
    // The GPU inventory is there (this host may have none).
    assert!(d["gpus"]["inventory"]["gpus"].is_array(), "{d}");
    let g: serde_json::Value = demo.get("/api/gpus").json().unwrap();
    assert!(g["scans"].as_u64().unwrap() >= 1, "{g}");
}

#[test]
fn password_mode_needs_a_login_a_csrf_token_and_limits_failures() {
    let demo = Demo::start_with(&["--password", "Admin-Pass-123"]);
    let url = |p: &str| format!("{}{p}", demo.base);
    let plain = json_client();
    // Open: health and the session probe. Closed: everything else.
    assert_eq!(plain.get(url("/api/health")).send().unwrap().status(), 200);
    let s: serde_json::Value = plain
        .get(url("/api/session"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(s["auth"], "password");
    assert_eq!(s["logged_in"], false);
    let r = plain.get(url("/api/apps")).send().unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "login_required");
    // The UI's files are served without a login (the login page is one of them).
    assert_eq!(plain.get(url("/")).send().unwrap().status(), 200);

    // A wrong password names the field.
    let r = plain
        .post(url("/api/login"))
        .json(&serde_json::json!({"password": "nope-nope"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["error"]["fields"]["password"],
        "wrong password"
    );

    // The right one: an HttpOnly, SameSite=Strict cookie and the CSRF token.
    let r = plain
        .post(url("/api/login"))
        .json(&serde_json::json!({"password": "Admin-Pass-123"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let csrf = r.json::<serde_json::Value>().unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let session = cookie.split(';').next().unwrap().to_string();
    let get = |p: &str| plain.get(url(p)).header("cookie", &session).send().unwrap();
    // Logged in, the catalog answers once its first load is done (bounded wait).
    let mut status = 0;
    for _ in 0..200 {
        status = get("/api/apps").status().as_u16();
        if status != 503 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(status, 200);
    let s: serde_json::Value = get("/api/session").json().unwrap();
    assert_eq!(s["logged_in"], true);
    assert_eq!(s["csrf"], csrf.as_str());

    // A change without the CSRF token is refused; with it, accepted.
    let install = serde_json::json!({"app_id": "radicale", "inputs": {"password": "Whatever-123"}});
    let r = plain
        .post(url("/api/install"))
        .header("cookie", &session)
        .json(&install)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["error"]["code"],
        "csrf"
    );
    let r = plain
        .post(url("/api/install"))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .json(&install)
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);

    // Logout ends the session.
    let r = plain
        .post(url("/api/logout"))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(get("/api/apps").status(), 401);

    // Failed logins are limited per address.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            plain
                .post(url("/api/login"))
                .json(&serde_json::json!({"password": "guess-guess"}))
                .send()
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let r = plain
        .post(url("/api/login"))
        .json(&serde_json::json!({"password": "Admin-Pass-123"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429, "even the right password waits");
}

#[test]
fn passwd_sets_the_hash_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "node: pve1\npool: appstore\nproxmox: {{ token_id: 'a@pve!b', token_secret_file: /nonexistent }}\npaths: {{ state_dir: {} }}\n",
            state.display()
        ),
    )
    .unwrap();
    // `pve-appstore passwd` with `line` on its standard input.
    let passwd = |line: &[u8]| {
        let mut child = bin()
            .args(["passwd", "--config"])
            .arg(&config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(line).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = passwd(b"Fresh-Pass-456\n");
    assert!(out.status.success(), "{out:?}");
    let hash = std::fs::read_to_string(state.join("admin-password")).unwrap();
    assert!(appstore_web::auth::verify_password(&hash, "Fresh-Pass-456"));
    assert!(!hash.contains("Fresh-Pass-456"));
    // Too short: refused, nothing changed.
    let out = passwd(b"short\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8 characters"));
    assert_eq!(
        std::fs::read_to_string(state.join("admin-password")).unwrap(),
        hash
    );
    // Root sets it for the service: the file belongs to the state directory's owner, 0600.
    use std::os::unix::fs::MetadataExt;
    if pve_sim::harness::prerequisite(
        std::fs::metadata("/proc/self").unwrap().uid() == 0,
        "APPSTORE_REQUIRE_LXC",
        "handing the hash to another user needs root",
    ) {
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
        assert!(passwd(b"Service-Pass-789\n").status.success());
        let meta = std::fs::metadata(state.join("admin-password")).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (65534, 0o600));
    }
}

#[test]
fn bad_install_options_are_refused_on_their_fields_before_a_job_exists() {
    let demo = Demo::start();
    demo.wait_for_catalog();
    let r = json_client()
        .post(format!("{}/api/install", demo.base))
        .json(&serde_json::json!({"app_id": "radicale", "inputs": {"username": "Not A User", "port": 80, "colour": "red"}}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().unwrap();
    let fields = &body["error"]["fields"];
    assert!(fields["inputs.username"].is_string(), "{body}");
    assert!(fields["inputs.port"].is_string(), "{body}");
    assert!(
        fields["inputs.colour"]
            .as_str()
            .unwrap()
            .contains("no input named"),
        "{body}"
    );
    let jobs: serde_json::Value = demo.get("/api/jobs").json().unwrap();
    assert!(jobs["jobs"].as_array().unwrap().is_empty());
}

/// A self-signed certificate for localhost and 127.0.0.1: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn https_serves_the_api_and_marks_the_session_cookie_secure() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    let demo = Demo::start_with(&[
        "--password",
        "Admin-Pass-123",
        "--tls-cert",
        cert_file.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ]);
    assert!(demo.base.starts_with("https://127.0.0.1:"), "{}", demo.base);
    let client = json_client_builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap();
    let health = client
        .get(format!("{}/api/health", demo.base))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
    let r = client
        .post(format!("{}/api/login", demo.base))
        .json(&serde_json::json!({"password": "Admin-Pass-123"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // Repeated wrong passwords are still limited per address behind TLS.
    let mut last = 0;
    for _ in 0..6 {
        last = client
            .post(format!("{}/api/login", demo.base))
            .json(&serde_json::json!({"password": "wrong-wrong"}))
            .send()
            .unwrap()
            .status()
            .as_u16();
    }
    assert_eq!(last, 429);
    // Plain HTTP on the TLS port gets no answer.
    let plain = demo.base.replace("https://", "http://");
    assert!(reqwest::blocking::get(format!("{plain}/api/health"))
        .map(|r| !r.status().is_success())
        .unwrap_or(true));
}

#[test]
fn a_bad_certificate_file_stops_the_start_with_the_flag_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = self_signed();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate\n").unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    let state = tempfile::tempdir().unwrap();
    let (code, _, err) = run(bin()
        .args(["demo", "--port", "0", "--state-dir"])
        .arg(state.path())
        .arg("--tls-cert")
        .arg(dir.path().join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.path().join("key.pem")));
    assert_ne!(code, 0);
    assert!(
        err.contains("--tls-cert:") && err.contains("holds no PEM certificate"),
        "{err}"
    );
}

#[test]
fn demo_gpus_are_offered_attached_and_hot_plugged() {
    let demo = Demo::start();
    demo.wait_for_catalog();
    let inv: serde_json::Value = demo.get("/api/gpus").json().unwrap();
    let addrs: Vec<&str> = inv["inventory"]["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["pci_address"].as_str().unwrap())
        .collect();
    assert_eq!(addrs, ["0000:00:02.0", "0000:01:00.0"], "{inv}");
    if !inv["inventory"]["gpus"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["path"] == "/dev/dri/renderD128")
    {
        panic!("the demo's iGPU has no render node: {inv}");
    }
    let opts: serde_json::Value = demo.get("/api/apps/jellyfin/gpu-options").json().unwrap();
    let real_nodes = opts["gpus"][1]["usable"] == true;
    if !real_nodes {
        assert!(
            std::env::var("APPSTORE_REQUIRE_LXC").as_deref() != Ok("1"),
            "the demo's device nodes need root, which CI has: {opts}"
        );
        eprintln!("skipped: the demo's device nodes need root");
        return;
    }
    assert_eq!(opts["best"], "0000:01:00.0", "{opts}");
    assert_eq!(opts["gpus"][0]["profile"], "dri-render");
    assert_eq!(opts["gpus"][1]["profile"], "nvidia-basic");
    let plain: serde_json::Value = demo.get("/api/apps/radicale/gpu-options").json().unwrap();
    assert_eq!(
        plain["gpus"][0]["reason"],
        "the app does not support this vendor"
    );

    // A GPU for an app without GPU support is refused on the field before a job exists.
    let client = json_client();
    let r = client
        .post(format!("{}/api/install", demo.base))
        .json(&serde_json::json!({"app_id": "radicale", "gpu": {"mode": "auto"}}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().unwrap();
    assert!(
        body["error"]["fields"]["gpu"]
            .as_str()
            .unwrap()
            .contains("does not use a GPU"),
        "{body}"
    );

    // The iGPU, picked by address, is passed through and shows as used.
    let r = client
        .post(format!("{}/api/install", demo.base))
        .json(&serde_json::json!({"app_id": "jellyfin", "gpu": {"mode": "devices", "pci_addresses": ["0000:00:02.0"]}, "skip_volumes": ["media"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().unwrap()["job_id"]
        .as_i64()
        .unwrap();
    let job = demo.wait_for_job(id);
    assert_eq!(job["job"]["state"], "completed", "{job}");
    let inv: serde_json::Value = demo.get("/api/gpus").json().unwrap();
    let att = inv["attachments"].as_array().unwrap();
    assert_eq!(att.len(), 1, "{inv}");
    assert_eq!(att[0]["device_path"], "/dev/dri/renderD128");
    assert_eq!(att[0]["pci_address"], "0000:00:02.0");

    // Unplug the NVIDIA card: the inventory follows, and the event stream says so.
    let events = json_client_builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
        .get(format!("{}/api/events", demo.base))
        .send()
        .unwrap();
    let r = client
        .post(format!("{}/api/demo/gpus", demo.base))
        .json(&serde_json::json!({"pci_address": "0000:01:00.0", "present": false}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut saw = false;
    for line in BufReader::new(events).lines() {
        let line = line.unwrap();
        if line == "event:gpus" {
            saw = true;
            break;
        }
    }
    assert!(saw, "a gpus event on /api/events");
    let inv: serde_json::Value = demo.get("/api/gpus").json().unwrap();
    assert_eq!(
        inv["inventory"]["gpus"].as_array().unwrap().len(),
        1,
        "{inv}"
    );
    let list: serde_json::Value = demo.get("/api/demo/gpus").json().unwrap();
    assert_eq!(list["gpus"][1]["present"], false);
    let bad = client
        .post(format!("{}/api/demo/gpus", demo.base))
        .json(&serde_json::json!({"pci_address": "0000:09:00.0", "present": true}))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// A client that sends `Content-Type: application/json` with every request, as the UI does: the
/// API refuses a change without it.
fn json_client_builder() -> reqwest::blocking::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    reqwest::blocking::Client::builder().default_headers(headers)
}

fn json_client() -> reqwest::blocking::Client {
    json_client_builder().build().unwrap()
}

/// Many requests for jobs on one install at the same moment: exactly one is accepted, the others
/// are told the container is busy, and only one job exists.
#[test]
fn concurrent_jobs_on_one_container_are_refused_but_one() {
    let demo = Demo::start();
    let client = json_client();
    let install_id = demo.install_radicale("Demo-Secret-99");
    let start = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (base, start, client) = (demo.base.clone(), start.clone(), client.clone());
            std::thread::spawn(move || {
                let (path, body) = if i % 2 == 0 {
                    (
                        "/api/uninstall",
                        serde_json::json!({"install_id": install_id}),
                    )
                } else {
                    (
                        "/api/reconfigure",
                        serde_json::json!({"install_id": install_id, "inputs": {}}),
                    )
                };
                start.wait();
                let r = client
                    .post(format!("{base}{path}"))
                    .json(&body)
                    .send()
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.text().unwrap())
            })
        })
        .collect();
    let results: Vec<(u16, String)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let accepted = results.iter().filter(|(s, _)| *s == 202).count();
    assert_eq!(accepted, 1, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != 202) {
        assert_eq!(*status, 409, "{body}");
        assert!(body.contains("already running on container"), "{body}");
    }
    let jobs: serde_json::Value = demo.get("/api/jobs").json().unwrap();
    let on_install = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] != "install")
        .count();
    assert_eq!(on_install, 1, "{jobs}");
}

/// A finished job with more lines than one read of the store holds: its replay sends every line in
/// order, then the final state.
#[test]
fn replay_of_a_long_finished_job_sends_every_line() {
    let demo = Demo::start();
    demo.wait_for_catalog();
    let client = json_client_builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .unwrap();
    let r = client
        .post(format!("{}/api/install", demo.base))
        .json(&serde_json::json!({"app_id": "radicale", "inputs": {"password": "Replay-Secret-1"}}))
        .send()
        .unwrap();
    let id = r.json::<serde_json::Value>().unwrap()["job_id"]
        .as_i64()
        .unwrap();
    assert_eq!(demo.wait_for_job(id)["job"]["state"], "completed");
    // More lines for the finished job, written to its database as the engine would.
    let store = appstore_actors::store::Store::open(&demo._state.path().join("state.db")).unwrap();
    let before = store.logs(id, 0, 1_000_000).unwrap().len();
    for i in 0..12_000 {
        store
            .append_log(id, "stdout", &format!("line {i}"))
            .unwrap();
    }
    let resp = client
        .get(format!("{}/api/jobs/{id}/stream", demo.base))
        .send()
        .unwrap();
    let events = read_sse(resp);
    let logs: Vec<i64> = events
        .iter()
        .filter(|(e, _, _)| e == "log")
        .map(|(_, id, _)| id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(logs.len(), before + 12_000);
    assert!(
        logs.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, no gap"
    );
    assert_eq!(events.last().unwrap().0, "state");
    assert_eq!(events.last().unwrap().2["state"], "completed");
}

/// Network settings are parsed strictly before a job exists: a value that would add options of
/// its own to `net0` is refused on its field.
#[test]
fn bad_network_settings_are_refused_on_their_fields() {
    let demo = Demo::start();
    demo.wait_for_catalog();
    let r = json_client()
        .post(format!("{}/api/install", demo.base))
        .json(&serde_json::json!({
            "app_id": "radicale",
            "hostname": "ok-name",
            "network": {"ip": "10.0.0.5/24,gw=10.0.0.9", "vlan": 5000}
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().unwrap();
    let fields = &body["error"]["fields"];
    assert!(
        fields["network.ip"]
            .as_str()
            .unwrap()
            .contains("is neither `dhcp`"),
        "{body}"
    );
    assert!(
        fields["network.vlan"].as_str().unwrap().contains("VLAN"),
        "{body}"
    );
    let jobs: serde_json::Value = demo.get("/api/jobs").json().unwrap();
    assert!(
        jobs["jobs"].as_array().unwrap().is_empty(),
        "no job was made"
    );
}

/// A secret output is never listed, and comes out in clear only through its reveal (here without
/// login, so without the password).
#[test]
fn secret_outputs_are_revealed_only_on_request() {
    let demo = Demo::start();
    let client = json_client();
    let install_id = demo.install_radicale("Reveal-Me-321");
    let installs = demo.get("/api/installs").text().unwrap();
    assert!(!installs.contains("Reveal-Me-321"), "{installs}");
    let reveal = |key: &str| {
        client
            .post(format!(
                "{}/api/installs/{install_id}/outputs/{key}/reveal",
                demo.base
            ))
            .json(&serde_json::json!({}))
            .send()
            .unwrap()
    };
    let r = reveal("password");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["value"],
        "Reveal-Me-321"
    );
    assert_eq!(reveal("username").status(), 400, "not a secret");
    assert_eq!(reveal("nope").status(), 404);
}

/// A failing store is a 500 that names the cause, never a 4xx guessed from its text.
#[test]
fn a_store_failure_is_a_500_with_its_cause() {
    let demo = Demo::start();
    demo.wait_for_catalog();
    // The store loses a table under the running service.
    let db = r2d2_sqlite::rusqlite::Connection::open(demo._state.path().join("state.db")).unwrap();
    db.execute_batch("PRAGMA foreign_keys = OFF; DROP TABLE installs;")
        .unwrap();
    drop(db);
    let r = json_client()
        .post(format!("{}/api/uninstall", demo.base))
        .json(&serde_json::json!({"install_id": 1}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 500);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "store", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no such table: installs"),
        "{body}"
    );
}

/// A catalog release newer than an install is announced once on `/api/events` as an `update`
/// event with its changelog, the installs API offers it with the same changes, and "update all"
/// upgrades every install that has an offer.
#[test]
fn a_newer_release_is_announced_with_its_changelog_and_update_all_takes_it() {
    let catalog = tempfile::tempdir().unwrap();
    let src = reference_catalog().join("apps/radicale");
    let dest = catalog.path().join("apps/radicale");
    for f in walk(&src) {
        let to = dest.join(f.strip_prefix(&src).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&f, &to).unwrap();
    }
    let commit = |message: &str| {
        let repo = git2::Repository::open(catalog.path())
            .or_else(|_| {
                let r = git2::Repository::init(catalog.path())?;
                r.set_head("refs/heads/main")?;
                Ok::<_, git2::Error>(r)
            })
            .unwrap();
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.org").unwrap();
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .unwrap();
    };
    commit("radicale");
    let demo = Demo::start_in_zone(&["--catalog", catalog.path().to_str().unwrap()], "<-03>3");
    let install_id = demo.install_radicale("Update-Secret-1");
    let version = demo
        .get("/api/installs")
        .json::<serde_json::Value>()
        .unwrap()["installs"][0]["version"]
        .as_str()
        .unwrap()
        .to_string();
    // The event stream, read on a thread until the update arrives.
    let events_url = format!("{}/api/events", demo.base);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let resp = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .unwrap()
            .get(events_url)
            .send()
            .unwrap();
        let mut event = String::new();
        for line in BufReader::new(resp).lines() {
            let Ok(line) = line else { return };
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                if event == "update" {
                    let _ = tx.send(serde_json::from_str::<serde_json::Value>(d.trim()).unwrap());
                }
            }
        }
    });
    // Release 1.9.0 with a changelog entry, and refresh.
    let manifest = dest.join("app.yml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text
        .replacen(&format!("\nversion: {version}"), "\nversion: 1.9.0", 1)
        .replace(
            "changelog:\n",
            "changelog:\n  - version: 1.9.0\n    date: 2026-12-06\n    changes: [Faster logins]\n",
        );
    std::fs::write(&manifest, text).unwrap();
    commit("radicale 1.9.0");
    json_client()
        .post(format!("{}/api/catalog/refresh", demo.base))
        .send()
        .unwrap();
    let notice = rx
        .recv_timeout(std::time::Duration::from_secs(40))
        .expect("an update event");
    assert_eq!(notice["install_id"], install_id, "{notice}");
    assert_eq!(notice["app_id"], "radicale");
    assert_eq!(notice["from"], version.as_str());
    assert_eq!(notice["to"], "1.9.0");
    assert_eq!(
        notice["changes"][0]["changes"][0], "Faster logins",
        "{notice}"
    );
    let installs: serde_json::Value = demo.get("/api/installs").json().unwrap();
    let offer = &installs["installs"][0]["upgrade"];
    assert_eq!(offer["status"], "available", "{offer}");
    assert_eq!(offer["changes"][0]["version"], "1.9.0", "{offer}");
    // Announced once: nothing more arrives for the same release.
    assert!(rx.recv_timeout(std::time::Duration::from_secs(7)).is_err());
    // "Update all": one upgrade job per offer; afterwards nothing is left to upgrade.
    let all: serde_json::Value = json_client()
        .post(format!("{}/api/upgrade-all", demo.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(all["refused"], serde_json::json!([]), "{all}");
    let queued = all["queued"].as_array().unwrap();
    assert_eq!(queued.len(), 1, "{all}");
    assert_eq!(queued[0]["install_id"], install_id);
    assert_eq!(queued[0]["to"], "1.9.0");
    let job = queued[0]["job_id"].as_i64().unwrap();
    assert_eq!(demo.wait_for_job(job)["job"]["state"], "completed");
    let installs: serde_json::Value = demo.get("/api/installs").json().unwrap();
    assert_eq!(installs["installs"][0]["version"], "1.9.0");
    assert_eq!(installs["installs"][0]["upgrade"]["status"], "up_to_date");
    assert_eq!(installs["installs"][0]["update_policy"]["mode"], "notify");

    // Automatic updates: a window that is not one is refused on its field; with a window open now
    // and no hold-off, the next release is taken by itself (the same safe upgrade).
    let policy_url = format!("{}/api/installs/{install_id}/update-policy", demo.base);
    let r = json_client()
        .post(&policy_url)
        .json(&serde_json::json!({"mode": "automatic", "window": "nightly"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let err: serde_json::Value = r.json().unwrap();
    assert!(
        err["error"]["fields"]["window"]
            .as_str()
            .unwrap()
            .contains("HH:MM-HH:MM"),
        "{err}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // This minute on the demo's clock, three hours behind UTC.
    let start = ((now + 86_400 - 3 * 3600) % 86_400) / 60;
    let hm = |m: u64| format!("{:02}:{:02}", (m / 60) % 24, m % 60);
    let window = format!("daily {}-{}", hm(start), hm(start + 90));
    let r = json_client()
        .post(&policy_url)
        .json(&serde_json::json!({"mode": "automatic", "window": window, "hold_off_days": 0}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap());
    let saved: serde_json::Value = r.json().unwrap();
    assert_eq!(saved["update_policy"]["time_zone"], "UTC-03", "{saved}");
    let text = std::fs::read_to_string(&manifest).unwrap().replacen(
        "\nversion: 1.9.0",
        "\nversion: 1.10.0",
        1,
    );
    std::fs::write(&manifest, text).unwrap();
    commit("radicale 1.10.0");
    json_client()
        .post(format!("{}/api/catalog/refresh", demo.base))
        .send()
        .unwrap();
    let mut upgraded = false;
    for _ in 0..160 {
        let installs: serde_json::Value = demo.get("/api/installs").json().unwrap();
        if installs["installs"][0]["version"] == "1.10.0" {
            upgraded = true;
            assert_eq!(
                installs["installs"][0]["update_policy"]["mode"],
                "automatic"
            );
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(
        upgraded,
        "the automatic upgrade to 1.10.0 did not happen within 40 s"
    );
    let jobs: serde_json::Value = demo.get("/api/jobs").json().unwrap();
    let auto = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "upgrade" && j["manifest_version"] == "1.10.0")
        .unwrap();
    let done = demo.wait_for_job(auto["id"].as_i64().unwrap());
    assert_eq!(done["job"]["state"], "completed", "{done}");
    let again: serde_json::Value = json_client()
        .post(format!("{}/api/upgrade-all", demo.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(again, serde_json::json!({"queued": [], "refused": []}));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Waits (bounded) for a job of `kind` on install `install`; its id.
fn wait_for_job_of(demo: &Demo, kind: &str, install: i64, secs: u64) -> i64 {
    for _ in 0..secs * 4 {
        let jobs: serde_json::Value = demo.get("/api/jobs").json().unwrap();
        if let Some(j) = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["kind"] == kind && j["install_id"] == install)
        {
            return j["id"].as_i64().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("no {kind} job for install {install} within {secs} s");
}

#[test]
fn backups_run_on_schedule_and_on_demand_and_restore_into_a_new_install() {
    let demo = Demo::start_in_zone(&[], "<+0530>-5:30");
    let id = demo.install_radicale("Backup-Secret-1");
    let client = json_client();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{}{path}", demo.base))
            .json(&body)
            .send()
            .unwrap()
    };
    let listed: serde_json::Value = demo
        .get(&format!("/api/installs/{id}/backups"))
        .json()
        .unwrap();
    assert_eq!(listed["backups"], serde_json::json!([]));
    assert_eq!(listed["policy"]["schedule"], "off");
    assert_eq!(listed["host_directories"], serde_json::json!([]));

    // A schedule that is not one: refused on its field, nothing stored.
    let r = post(
        &format!("/api/installs/{id}/backup-policy"),
        serde_json::json!({"storage": "local", "keep_last": 2, "schedule": "hourly"}),
    );
    assert_eq!(r.status().as_u16(), 400);
    let err: serde_json::Value = r.json().unwrap();
    assert!(
        err["error"]["fields"]["schedule"]
            .as_str()
            .unwrap()
            .contains("daily HH:MM"),
        "{err}"
    );

    // The current minute on the demo's clock (UTC+05:30): the scheduler queues the backup at its
    // next check.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 5 * 3600
        + 1800;
    let schedule = format!("daily {:02}:{:02}", now % 86_400 / 3600, now % 3600 / 60);
    let r = post(
        &format!("/api/installs/{id}/backup-policy"),
        serde_json::json!({"storage": "local", "mode": "snapshot", "keep_last": 2, "schedule": schedule}),
    );
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap());
    let job = wait_for_job_of(&demo, "backup", id, 40);
    let done = demo.wait_for_job(job);
    assert_eq!(done["job"]["state"], "completed", "{done}");
    let listed: serde_json::Value = demo
        .get(&format!("/api/installs/{id}/backups"))
        .json()
        .unwrap();
    let backups = listed["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 1, "{listed}");
    assert_eq!(backups[0]["version"], "1.1.0");
    assert_eq!(backups[0]["restorable"], true);
    assert_eq!(listed["schedule"], schedule.as_str());
    assert_eq!(listed["time_zone"], "UTC+05:30");

    // On demand, then a restore of it into a new container: a second install of the app.
    let r: serde_json::Value = post(&format!("/api/installs/{id}/backup"), serde_json::json!({}))
        .json()
        .unwrap();
    let done = demo.wait_for_job(r["job_id"].as_i64().unwrap());
    assert_eq!(done["job"]["state"], "completed", "{done}");
    let volid = backups[0]["volid"].as_str().unwrap().to_string();
    let r: serde_json::Value = post("/api/restore", serde_json::json!({"volid": volid}))
        .json()
        .unwrap();
    let done = demo.wait_for_job(r["job_id"].as_i64().unwrap());
    assert_eq!(done["job"]["state"], "completed", "{done}");
    let installs: serde_json::Value = demo.get("/api/installs").json().unwrap();
    let radicales = installs["installs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["app_id"] == "radicale" && i["status"] == "installed")
        .count();
    assert_eq!(radicales, 2, "{installs}");
    let all: serde_json::Value = demo.get("/api/backups").json().unwrap();
    assert_eq!(all["backups"].as_array().unwrap().len(), 2, "{all}");
    // An unknown backup: refused on its field.
    let r = post(
        "/api/restore",
        serde_json::json!({"volid": "local:backup/nothing.tar.zst"}),
    );
    assert_eq!(r.status().as_u16(), 400);
    let err: serde_json::Value = r.json().unwrap();
    assert!(err["error"]["fields"]["volid"].is_string(), "{err}");
}

/// One request a capture server got: path, headers (names lower-cased), body.
type Captured = (String, Vec<(String, String)>, String);

/// A local HTTP endpoint that records every request.
fn capture_server() -> (String, std::sync::mpsc::Receiver<Captured>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = stream.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(i) = text.find("\r\n\r\n") {
                    let head = text[..i].to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < i + 4 + len {
                        let n = stream.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body = String::from_utf8_lossy(&buf[i + 4..]).to_string();
                    break (head, body);
                }
            };
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let mut lines = head.lines();
            let path = lines
                .next()
                .unwrap_or("")
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let _ = tx.send((path, headers, body));
        }
    });
    (base, rx)
}

#[test]
fn notification_targets_are_tested_and_told_about_failed_backups() {
    let (hooks, received) = capture_server();
    let demo = Demo::start();
    let id = demo.install_radicale("Notify-Secret-1");
    let client = json_client();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{}{path}", demo.base))
            .json(&body)
            .send()
            .unwrap()
    };
    // Bad targets are refused on their fields.
    let r = post(
        "/api/notifications",
        serde_json::json!({"name": " ", "kind": "gotify", "url": "ftp://x"}),
    );
    assert_eq!(r.status().as_u16(), 400);
    let err: serde_json::Value = r.json().unwrap();
    assert!(
        err["error"]["fields"]["name"].is_string() && err["error"]["fields"]["url"].is_string(),
        "{err}"
    );
    // A JSON webhook with a token, and ntfy for failed backups only.
    let r = post(
        "/api/notifications",
        serde_json::json!({"name": "hook", "kind": "webhook", "url": format!("{hooks}/hook"), "token": "Hook-Token-9"}),
    );
    assert_eq!(r.status().as_u16(), 201);
    let hook_id = r.json::<serde_json::Value>().unwrap()["id"]
        .as_i64()
        .unwrap();
    let r = post(
        "/api/notifications",
        serde_json::json!({"name": "phone", "kind": "ntfy", "url": format!("{hooks}/lab"), "events": ["backup_failed"]}),
    );
    assert_eq!(r.status().as_u16(), 201);
    let listed: serde_json::Value = demo.get("/api/notifications").json().unwrap();
    assert_eq!(listed["targets"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed["targets"][0]["has_token"], true);
    assert!(!listed.to_string().contains("Hook-Token-9"), "{listed}");

    // The test button reaches both.
    let r: serde_json::Value = post("/api/notifications/test", serde_json::json!({}))
        .json()
        .unwrap();
    assert!(
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["ok"] == true),
        "{r}"
    );
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(
            received
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap(),
        );
    }
    let hook = got
        .iter()
        .find(|(p, _, _)| p == "/hook")
        .expect("the webhook");
    let body: serde_json::Value = serde_json::from_str(&hook.2).unwrap();
    assert_eq!(body["event"], "test");
    assert!(
        hook.1
            .contains(&("authorization".into(), "Bearer Hook-Token-9".into())),
        "{:?}",
        hook.1
    );
    let ntfy = got.iter().find(|(p, _, _)| p == "/lab").expect("ntfy");
    assert!(
        ntfy.1
            .iter()
            .any(|(k, v)| k == "title" && v.contains("test notification")),
        "{:?}",
        ntfy.1
    );

    // A backup to a storage that cannot hold backups fails: both targets hear of it.
    let r: serde_json::Value = post(
        &format!("/api/installs/{id}/backup"),
        serde_json::json!({"storage": "local-lvm"}),
    )
    .json()
    .unwrap();
    let done = demo.wait_for_job(r["job_id"].as_i64().unwrap());
    assert_eq!(done["job"]["state"], "failed", "{done}");
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(
            received
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap(),
        );
    }
    let hook = got
        .iter()
        .find(|(p, _, _)| p == "/hook")
        .expect("the webhook");
    let body: serde_json::Value = serde_json::from_str(&hook.2).unwrap();
    assert_eq!(body["event"], "backup_failed", "{body}");
    assert_eq!(body["install_id"], id);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("does not support backups"),
        "{body}"
    );
    let ntfy = got.iter().find(|(p, _, _)| p == "/lab").expect("ntfy");
    assert!(
        ntfy.1.contains(&("priority".into(), "4".into())),
        "{:?}",
        ntfy.1
    );

    // Targets added in the UI can be removed there.
    assert_eq!(
        post(
            &format!("/api/notifications/{hook_id}/delete"),
            serde_json::json!({})
        )
        .status()
        .as_u16(),
        200
    );
    assert_eq!(
        post(
            &format!("/api/notifications/{hook_id}/delete"),
            serde_json::json!({})
        )
        .status()
        .as_u16(),
        404
    );
}

#[test]
fn gpu_drift_is_flagged_live_and_a_returning_card_is_attached_again() {
    let demo = Demo::start();
    demo.wait_for_catalog();
    let opts: serde_json::Value = demo.get("/api/apps/jellyfin/gpu-options").json().unwrap();
    if opts["gpus"][1]["usable"] != true {
        assert!(
            std::env::var("APPSTORE_REQUIRE_LXC").as_deref() != Ok("1"),
            "the demo's device nodes need root, which CI has: {opts}"
        );
        eprintln!("skipped: the demo's device nodes need root");
        return;
    }
    let client = json_client();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{}{path}", demo.base))
            .json(&body)
            .send()
            .unwrap()
    };
    let r: serde_json::Value = post("/api/install", serde_json::json!({"app_id": "jellyfin", "gpu": {"mode": "devices", "pci_addresses": ["0000:01:00.0"]}, "skip_volumes": ["media"]})).json().unwrap();
    let done = demo.wait_for_job(r["job_id"].as_i64().unwrap());
    assert_eq!(done["job"]["state"], "completed", "{done}");
    let installs: serde_json::Value = demo.get("/api/installs").json().unwrap();
    let id = installs["installs"][0]["id"].as_i64().unwrap();
    assert_eq!(installs["installs"][0]["gpu_drift"], serde_json::json!([]));
    // The drift events, read on a thread.
    let events_url = format!("{}/api/events", demo.base);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let resp = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(90))
            .build()
            .unwrap()
            .get(events_url)
            .send()
            .unwrap();
        let mut event = String::new();
        for line in BufReader::new(resp).lines() {
            let Ok(line) = line else { return };
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                if event == "gpu_drift" {
                    let _ = tx.send(serde_json::from_str::<serde_json::Value>(d.trim()).unwrap());
                }
            }
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let drift_of = || -> serde_json::Value {
        demo.get(&format!("/api/installs/{id}"))
            .json::<serde_json::Value>()
            .unwrap()["gpu_drift"]
            .clone()
    };

    // The host's NVIDIA driver changes: flagged with both versions, and announced.
    let before: serde_json::Value = demo.get("/api/gpus").json().unwrap();
    let old = before["inventory"]["nvidia_driver_version"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post(
        "/api/demo/gpus",
        serde_json::json!({"nvidia_driver_version": "999.10.01"}),
    );
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().unwrap());
    let event = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("a gpu_drift event");
    assert_eq!(event["install_id"], id, "{event}");
    let msg = event["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("container {old}, host 999.10.01")),
        "{msg}"
    );
    assert_eq!(drift_of()[0]["kind"], "driver_mismatch");
    // One click: the GPU sync sets it up for the new driver; the flag goes.
    let r: serde_json::Value = post(
        &format!("/api/installs/{id}/gpu-sync"),
        serde_json::json!({}),
    )
    .json()
    .unwrap();
    let done = demo.wait_for_job(r["job_id"].as_i64().unwrap());
    assert_eq!(done["job"]["state"], "completed", "{done}");
    assert_eq!(drift_of(), serde_json::json!([]));

    // The card is unplugged: flagged live; plugged back: attached again by a GPU sync job.
    post(
        "/api/demo/gpus",
        serde_json::json!({"pci_address": "0000:01:00.0", "present": false}),
    );
    let event = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("a gpu_drift event");
    assert!(
        event["message"]
            .as_str()
            .unwrap()
            .contains("0000:01:00.0 is gone"),
        "{event}"
    );
    assert_eq!(drift_of()[0]["kind"], "vanished");
    post(
        "/api/demo/gpus",
        serde_json::json!({"pci_address": "0000:01:00.0", "present": true}),
    );
    let job = wait_for_job_of(&demo, "gpu_sync", id, 30);
    // The first GPU sync was the manual one; wait for the second.
    let mut sync = job;
    for _ in 0..120 {
        let jobs: serde_json::Value = demo.get("/api/jobs").json().unwrap();
        let syncs: Vec<i64> = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["kind"] == "gpu_sync")
            .map(|j| j["id"].as_i64().unwrap())
            .collect();
        if syncs.len() >= 2 {
            sync = *syncs.iter().max().unwrap();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_ne!(sync, job, "no GPU sync after the card came back");
    let done = demo.wait_for_job(sync);
    assert_eq!(done["job"]["state"], "completed", "{done}");
    assert_eq!(drift_of(), serde_json::json!([]));
}
