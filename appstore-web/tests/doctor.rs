//! `pve-appstore doctor` against simulated 8.4 and 9.1 nodes: a node set up as the installer does
//! passes every check; each broken part is reported with its fix, and the exit code says so.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

mod common;

use pve_sim::PveVersion;
use serde_json::{json, Value};
use std::process::Command;

/// Runs doctor on `node`'s config: (exit code, the JSON report).
fn doctor(node: &common::Node) -> (i32, Value) {
    let gpu_host = node.dir.path().join("no-gpus");
    std::fs::create_dir_all(gpu_host.join("sys/bus/pci/devices")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pve-appstore"))
        .args(["doctor", "--format", "json", "--config"])
        .arg(node.config_path())
        .arg("--host-root")
        .arg(&gpu_host)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

/// The problems of the check `name`.
fn problems<'a>(report: &'a Value, name: &str) -> &'a Vec<Value> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report}"))["problems"]
        .as_array()
        .unwrap()
}

fn healthy(version: PveVersion) {
    let node = common::Node::start(version);
    let mut config = node.config();
    config["jobs"]["download_templates"] = json!(false);
    node.write_config(&config);
    let (code, report) = doctor(&node);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "config",
            "api",
            "release",
            "permissions",
            "pool",
            "storage",
            "bridge",
            "templates",
            "helper",
            "gpus",
            "catalog"
        ]
    );
    let release = &report["checks"][2]["detail"];
    assert_eq!(
        release,
        &json!(format!("Proxmox VE {}", version.full())),
        "{report:#}"
    );
}

#[test]
fn a_node_set_up_as_the_installer_does_passes_on_8_4() {
    healthy(PveVersion::V8_4);
}

#[test]
fn a_node_set_up_as_the_installer_does_passes_on_9_1() {
    healthy(PveVersion::V9_1);
}

/// Each broken part is named with its fix: a missing privilege (downloads need one more), an
/// unsupported release, a helper that does not answer, a catalog that cannot be fetched, a token
/// that is not valid.
#[test]
fn each_problem_comes_with_its_fix() {
    let node = common::Node::start(PveVersion::V8_2);
    let mut config = node.config();
    config["paths"]["helper_socket"] = json!(node.dir.path().join("nobody-listens.sock"));
    config["catalog"]["url"] = json!(format!(
        "file://{}",
        node.dir.path().join("no-such-repo").display()
    ));
    node.write_config(&config);
    let (code, report) = doctor(&node);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["ok"], false);
    let perms = problems(&report, "permissions");
    assert_eq!(perms.len(), 1, "{perms:#?}");
    assert_eq!(
        perms[0]["message"],
        "the token lacks Datastore.AllocateTemplate on /storage/local (to read container templates and download missing ones)"
    );
    assert_eq!(
        perms[0]["fix"],
        "`pveum acl modify /storage/local --users appstore@pve --tokens 'appstore@pve!store' --roles PVEAppStoreTemplates` (a privilege-separated token has what both it and its user are granted)"
    );
    assert!(problems(&report, "release")[0]["message"]
        .as_str()
        .unwrap()
        .contains("older than 8.4"));
    assert!(problems(&report, "helper")[0]["fix"]
        .as_str()
        .unwrap()
        .contains("pve-appstore-helper.socket"));
    assert_eq!(problems(&report, "catalog").len(), 1);
    assert!(problems(&report, "pool").is_empty());

    // A token PVE does not know: the API check says how to make one, and nothing after it runs.
    std::fs::write(
        node.dir.path().join("token"),
        "00000000-0000-0000-0000-000000000000",
    )
    .unwrap();
    let (code, report) = doctor(&node);
    assert_eq!(code, 1);
    let api = problems(&report, "api");
    assert!(
        api[0]["fix"]
            .as_str()
            .unwrap()
            .contains("pveum user token add appstore@pve store --privsep 1"),
        "{api:#?}"
    );
    assert!(report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["name"] != "permissions"));
}

/// The text report: one line per check, the problems and fixes under the failed ones.
#[test]
fn the_text_report_reads_as_a_checklist() {
    let node = common::Node::start(PveVersion::V9_1);
    let gpu_host = node.dir.path().join("no-gpus");
    std::fs::create_dir_all(gpu_host.join("sys/bus/pci/devices")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pve-appstore"))
        .args(["doctor", "--config"])
        .arg(node.config_path())
        .arg("--host-root")
        .arg(&gpu_host)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok    release      Proxmox VE 9.1.2\n"),
        "{text}"
    );
    assert!(text.contains("FAIL  permissions\n"), "{text}");
    assert!(
        text.contains("        fix: `pveum acl modify /storage/local"),
        "{text}"
    );
    assert!(text.ends_with("1 of 11 checks found problems\n"), "{text}");
    assert_eq!(out.status.code(), Some(1));
}
