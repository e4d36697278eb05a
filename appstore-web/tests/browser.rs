//! The UI in a real browser: `tests/browser/*.test.mjs` (playwright-core driving the system's
//! Chromium) against the demo with a login. Skipped when Chromium, Node 20+ or playwright-core is
//! missing, unless `APPSTORE_REQUIRE_BROWSER=1` (CI) makes that a failure. `scripts/test.sh` installs
//! them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first failure

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser")
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn node_major() -> Option<u32> {
    let out = Command::new("node").arg("--version").output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout);
    v.trim()
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Why the browser tests cannot run here, if they cannot.
fn missing() -> Option<String> {
    if chromium().is_none() {
        return Some("Chromium is not installed (apt-get install chromium)".into());
    }
    match node_major() {
        None => return Some("Node.js is not installed".into()),
        Some(v) if v < 20 => {
            return Some(format!(
                "Node.js {v} is too old (playwright-core needs 20+)"
            ))
        }
        Some(_) => {}
    }
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        return Some("playwright-core is not installed (npm ci --prefix tests/browser)".into());
    }
    None
}

#[test]
fn the_ui_in_chromium() {
    if let Some(reason) = missing() {
        if std::env::var("APPSTORE_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("APPSTORE_REQUIRE_BROWSER=1 but the browser tests cannot run: {reason}");
        }
        eprintln!("skipped: {reason}");
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let password = "Browser-Pass-321";
    let mut demo = Command::new(env!("CARGO_BIN_EXE_pve-appstore"))
        .args(["demo", "--port", "0", "--password", password, "--state-dir"])
        // Schedules and windows are read on the node's clock, which the UI names.
        .env("TZ", "Europe/Berlin")
        .arg(state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(demo.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("PVE App Store listening on ")
        .expect(&line)
        .to_string();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec"])
        .current_dir(browser_dir())
        .env("APPSTORE_URL", &base)
        .env("APPSTORE_PASSWORD", password)
        .env("CHROMIUM", chromium().unwrap())
        .env("SCREENSHOT_DIR", &shots)
        .output()
        .unwrap();
    let _ = demo.kill();
    let _ = demo.wait();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "browser tests failed:\n{text}");
    // As root (CI) nothing is skipped; the GPU step needs the demo's device nodes, made as root.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    assert!(
        text.contains("pass 14") || (!root && text.contains("pass 12")),
        "{text}"
    );
    assert!(text.contains("fail 0"), "{text}");
}
