//! `pve-appstore catalog test` for real: the reference catalog's apps that install from Debian's
//! archive, PyPI or npm go through their whole lifecycle (install, URL from the host, upgrade by a
//! catalog commit, reconfigure, uninstall keeping data, reinstall finding it, uninstall) in real
//! containers, two shards at a time, each with its own shared package cache. A scaffolded app passes
//! and a broken one fails with its own error. Needs root, LXC, debootstrap and the registries;
//! skipped otherwise, unless `APPSTORE_REQUIRE_LXC=1` (CI) makes that a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

use pve_sim::harness::lxc_available;
use serde_json::Value;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pve-appstore"))
}

fn report(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn steps(app: &Value) -> Vec<(String, String)> {
    app["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// One line per app and step, with seconds: the CI log shows the time each app takes.
fn summary(report: &Value) -> String {
    let mut s = String::new();
    for app in report["apps"].as_array().unwrap() {
        s.push_str(&format!(
            "{:<20} {:<9} {:>6.0} s  {}\n",
            app["app"].as_str().unwrap(),
            app["mode"].as_str().unwrap(),
            app["seconds"].as_f64().unwrap(),
            app["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|st| format!(
                    "{} {} {:.0}s",
                    st["step"].as_str().unwrap(),
                    st["result"].as_str().unwrap(),
                    st["seconds"].as_f64().unwrap()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s
}

/// The worked example of the catalog's CONTRIBUTING.md, as files: every fenced block that follows a
/// line naming `apps/memcached/...`.
fn worked_example(catalog: &Path) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog/CONTRIBUTING.md"),
    )
    .unwrap();
    let mut file: Option<String> = None;
    let mut body: Option<String> = None;
    let mut written = 0;
    for line in text.lines() {
        match (&mut body, line.starts_with("```")) {
            (Some(b), true) => {
                let rel = file.take().unwrap();
                let path = catalog.join(&rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, b.as_bytes()).unwrap();
                body = None;
                written += 1;
            }
            (Some(b), false) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, true) if file.is_some() => body = Some(String::new()),
            (None, _) => {
                if let Some(rest) = line.strip_prefix("`apps/memcached/") {
                    let rel = rest.split('`').next().unwrap();
                    file = Some(format!("apps/memcached/{rel}"));
                }
            }
        }
    }
    assert_eq!(written, 6, "manifest and five scripts");
}

/// The worked example of CONTRIBUTING.md is a real app: it lints clean, passes shellcheck and its
/// whole lifecycle.
#[test]
fn the_contributing_guides_worked_example_passes_its_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    worked_example(dir.path());
    let out = bin()
        .args(["catalog", "lint"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let scripts: Vec<_> = std::fs::read_dir(dir.path().join("apps/memcached/provision"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let shellcheck = Command::new("shellcheck")
        .arg("-x")
        .args(&scripts)
        .current_dir(dir.path().join("apps/memcached/provision"))
        .output();
    match shellcheck {
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(_) => assert!(
            std::env::var_os("APPSTORE_REQUIRE_LXC").is_none(),
            "shellcheck is not installed"
        ),
    }
    if !lxc_available() {
        return;
    }
    let out = bin()
        .args(["catalog", "test"])
        .arg(dir.path())
        .args(["memcached", "--format", "json"])
        .output()
        .unwrap();
    let r = report(&out);
    assert!(out.status.success(), "{r:#}");
    let st = steps(&r["apps"][0]);
    assert!(
        st.iter()
            .all(|(s, r)| r == "passed" || (s == "data-kept" && r == "skipped")),
        "{r:#}"
    );
}

#[test]
fn the_reference_catalogs_registry_apps_pass_their_whole_lifecycle() {
    if !lxc_available() {
        return;
    }
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
    let caches = tempfile::tempdir().unwrap();
    let shards = 2;
    let children: Vec<_> = (1..=shards)
        .map(|k| {
            bin()
                .args(["catalog", "test"])
                .arg(&catalog)
                .args(["--format", "json", "--shard", &format!("{k}/{shards}")])
                .arg("--package-cache")
                .arg(caches.path().join(format!("shard-{k}")))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut apps = Vec::new();
    let mut failures = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let r = report(&out);
        // Straight to stderr (not captured): the CI log shows every app's time.
        let _ = writeln!(std::io::stderr().lock(), "{}", summary(&r));
        if !out.status.success() {
            failures.push(format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                serde_json::to_string_pretty(&r).unwrap()
            ));
        }
        apps.extend(r["apps"].as_array().unwrap().iter().cloned());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let lifecycle: Vec<&Value> = apps.iter().filter(|a| a["mode"] == "lifecycle").collect();
    let planned: Vec<&Value> = apps.iter().filter(|a| a["mode"] == "plan").collect();
    // Each app once, in one shard.
    let mut ids: Vec<&str> = apps.iter().map(|a| a["app"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "an app ran in two shards: {ids:?}");
    assert!(lifecycle.len() >= 16, "{} registry apps", lifecycle.len());
    for app in &lifecycle {
        let sources: Vec<&str> = app["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(
            sources
                .iter()
                .all(|s| ["debian", "pypi", "npm"].contains(s)),
            "{sources:?}"
        );
        let names: Vec<String> = steps(app).into_iter().map(|(s, _)| s).collect();
        assert_eq!(
            names,
            [
                "install",
                "url",
                "app-log",
                "upgrade",
                "reconfigure",
                "uninstall-keep-data",
                "reinstall",
                "data-kept",
                "uninstall"
            ],
            "{app:#}"
        );
        for (step, result) in steps(app) {
            // An app without volumes or reconfigurable inputs may skip those two steps only.
            let ok = result == "passed"
                || (result == "skipped" && ["reconfigure", "data-kept"].contains(&step.as_str()));
            assert!(ok, "{} {step}: {result}\n{app:#}", app["app"]);
        }
    }
    for app in &planned {
        assert_eq!(steps(app), [("plan".to_string(), "passed".to_string())]);
    }
}

/// A scaffolded app passes every step; an app whose install script fails is reported with its own
/// error and the job's log, the later steps skipped, and the run exits 1.
#[test]
fn catalog_test_passes_a_scaffolded_app_and_reports_a_broken_one() {
    if !lxc_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["catalog", "new", "hello-page", "--catalog"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let broken = dir.path().join("apps/broken-app");
    std::fs::create_dir_all(broken.join("provision")).unwrap();
    std::fs::write(
        broken.join("app.yml"),
        "id: broken-app\nname: Broken app\ndescription: Its install script fails\nversion: 1.0.0\nsources: [debian]\nlxc: { ostemplate: debian-13 }\nprovision: { script: provision/install.sh }\noutputs: [{ key: url, label: URL, value: 'http://{ip}/' }]\n",
    )
    .unwrap();
    std::fs::write(
        broken.join("provision/install.sh"),
        "echo 'preparing'\necho 'ERROR: the disk is on fire' >&2\nexit 3\n",
    )
    .unwrap();
    let out = bin()
        .args(["catalog", "test"])
        .arg(dir.path())
        .args(["hello-page", "broken-app", "--format", "json"])
        .output()
        .unwrap();
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    let apps = r["apps"].as_array().unwrap();
    let broken = apps.iter().find(|a| a["app"] == "broken-app").unwrap();
    let hello = apps.iter().find(|a| a["app"] == "hello-page").unwrap();
    assert_eq!(hello["passed"], true, "{hello:#}");
    for (step, result) in steps(hello) {
        assert_eq!(result, "passed", "{step}: {hello:#}");
    }
    assert_eq!(broken["passed"], false);
    let st = steps(broken);
    assert_eq!(st[0], ("install".to_string(), "failed".to_string()));
    assert!(st[1..].iter().all(|(_, r)| r == "skipped"), "{st:?}");
    let install = &broken["steps"][0];
    assert!(
        install["detail"]
            .as_str()
            .unwrap()
            .contains("exited with code 3"),
        "{install:#}"
    );
    assert!(
        install["log_tail"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("ERROR: the disk is on fire")),
        "{install:#}"
    );
    // The text report for people names the failure too.
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress.contains("broken-app: install failed"),
        "{progress}"
    );
}
