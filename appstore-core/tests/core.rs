//! Behaviour of appstore-core through its public API: manifest and config fixtures with their expected
//! diagnostics (refresh with `UPDATE_EXPECT=1`), input values, templates and the JSON Schema.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first failure

use appstore_core::inputs::{resolve, InputValue};
use appstore_core::{config, manifest, parse_manifest, template};
use serde_json::json;
use std::path::{Path, PathBuf};

fn data_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(sub)
}

/// Compares `actual` with the `.expected` file beside `input` (expect-test: `UPDATE_EXPECT=1`
/// rewrites it).
fn check_snapshot(input: &Path, actual: &str) {
    expect_test::expect_file![input.with_extension("expected")].assert_eq(actual);
}

fn fixtures(sub: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {sub}");
    files
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn valid_manifests_parse_to_expected_model() {
    for path in fixtures("manifests/ok") {
        let text = std::fs::read_to_string(&path).unwrap();
        match parse_manifest(&text, Some(&stem(&path))) {
            Ok(m) => check_snapshot(&path, &(serde_json::to_string_pretty(&m).unwrap() + "\n")),
            Err(d) => panic!("{}: {d}", path.display()),
        }
    }
}

#[test]
fn invalid_manifests_report_every_problem_with_its_path() {
    for path in fixtures("manifests/err") {
        let text = std::fs::read_to_string(&path).unwrap();
        match parse_manifest(&text, Some(&stem(&path))) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(d) => check_snapshot(&path, &format!("{d}\n")),
        }
    }
}

#[test]
fn valid_configs_parse_to_expected_model() {
    for path in fixtures("config/ok") {
        let text = std::fs::read_to_string(&path).unwrap();
        match config::parse_config(&text) {
            Ok(c) => check_snapshot(&path, &(serde_json::to_string_pretty(&c).unwrap() + "\n")),
            Err(d) => panic!("{}: {d}", path.display()),
        }
    }
}

#[test]
fn invalid_configs_report_every_problem_with_its_path() {
    for path in fixtures("config/err") {
        let text = std::fs::read_to_string(&path).unwrap();
        match config::parse_config(&text) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(d) => check_snapshot(&path, &format!("{d}\n")),
        }
    }
}

fn full_manifest() -> manifest::Manifest {
    let text = std::fs::read_to_string(data_dir("manifests/ok/full.yml")).unwrap();
    parse_manifest(&text, Some("full")).unwrap()
}

#[test]
fn inputs_take_defaults_coerce_form_strings_and_generate_secrets() {
    let m = full_manifest();
    let submitted =
        json!({"port": "8080", "tls": "on", "cert_mode": "acme", "acme_email": "a@b.c"});
    let resolved = resolve(&m, submitted.as_object().unwrap(), &mut || {
        "GENERATED".into()
    })
    .unwrap();
    assert_eq!(
        resolved.get("admin_user").unwrap().value,
        InputValue::Text("admin".into())
    );
    assert_eq!(
        resolved.get("port").unwrap().value,
        InputValue::Number(8080.into())
    );
    assert_eq!(resolved.get("tls").unwrap().value, InputValue::Bool(true));
    let pw = resolved.get("admin_password").unwrap();
    assert!(pw.secret && pw.generated);
    assert_eq!(resolved.secret_values(), vec!["GENERATED".to_string()]);
    assert_eq!(resolved.redacted_json()["admin_password"], "***");
    assert!(!resolved.get("acme_email").unwrap().hidden);
}

#[test]
fn inputs_report_all_field_errors_at_once() {
    let m = full_manifest();
    let submitted = json!({"admin_user": "X", "port": 80, "tls": "maybe", "colour": "red"});
    let errors = resolve(&m, submitted.as_object().unwrap(), &mut || "pw".into()).unwrap_err();
    let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        got,
        [
            "colour: this app has no input named `colour`",
            "admin_user: must be at least 3 characters long",
            "port: must be at least 1024",
            "tls: `maybe` is not a boolean (true or false)",
        ]
    );
}

#[test]
fn hidden_inputs_are_not_validated_or_required() {
    let m = full_manifest();
    // tls defaults to false, so cert_mode and acme_email are hidden; a bad value for them is ignored.
    let submitted = json!({"cert_mode": "nonsense"});
    let resolved = resolve(&m, submitted.as_object().unwrap(), &mut || "pw".into()).unwrap();
    let cert = resolved.get("cert_mode").unwrap();
    assert!(cert.hidden);
    assert_eq!(cert.value, InputValue::Text("self-signed".into()));
}

#[test]
fn secret_values_never_appear_in_error_messages() {
    let text = "id: s\nname: S\ndescription: d\nversion: 1.0.0\nlxc: {ostemplate: debian-12}\nprovision: {script: a.sh}\ninputs:\n  - {key: pw, label: P, type: secret, validation: {regex: '[0-9]+'}}\n";
    let m = parse_manifest(text, None).unwrap();
    let errors = resolve(
        &m,
        json!({"pw": "hunter2"}).as_object().unwrap(),
        &mut String::new,
    )
    .unwrap_err();
    assert!(
        !errors[0].message.contains("hunter2"),
        "{}",
        errors[0].message
    );
}

#[test]
fn env_and_outputs_render_from_an_install_context() {
    let m = full_manifest();
    let resolved = resolve(&m, &serde_json::Map::new(), &mut || "pw123".into()).unwrap();
    let ctx = json!({
        "ctid": 123, "hostname": "full", "ip": "10.1.2.3", "node": "pve1", "pool": "appstore",
        "app": {"id": "full", "name": "Full", "version": "2.3.4-beta.1"},
        "inputs": resolved.to_json(),
        "gpu": {"vendor": "", "driver_version": ""},
    });
    let env = &m.provision().env;
    assert_eq!(
        template::render(&env["JSON"], &ctx).unwrap(),
        r#"{"node": "pve1", "ct": 123}"#
    );
    assert_eq!(template::render(&env["SCHEME"], &ctx).unwrap(), "http");
    assert_eq!(
        template::render(&m.outputs()[0].value, &ctx).unwrap(),
        "http://10.1.2.3:5984/"
    );
    assert!(
        m.outputs()[1].secret,
        "an output that shows a secret input is masked"
    );
}

#[test]
fn json_schema_describes_the_manifest_for_editors() {
    let schema = manifest::json_schema();
    assert_eq!(
        schema["title"],
        "PVE App Store app manifest (app.yml), schema version 1"
    );
    assert_eq!(schema["additionalProperties"], false);
    let required = schema["required"].as_array().unwrap();
    for key in ["id", "name", "version", "lxc", "provision"] {
        assert!(required.contains(&json!(key)), "{key}");
    }
    assert!(schema["properties"]["volumes"]["description"]
        .as_str()
        .unwrap()
        .contains("outlives"));
}

#[test]
fn requirements_name_what_the_store_or_the_node_lacks() {
    let m = full_manifest(); // requires store >=0.1, pve >=8.1
    let r = m.requires();
    assert!(r.unmet("0.1.0", Some("9.1.2")).is_empty());
    assert!(r.unmet("0.3.0", Some("8.1")).is_empty());
    assert_eq!(
        r.unmet("0.0.9", Some("8.0.9")),
        [
            "needs PVE App Store >=0.1; this store is 0.0.9 (update the store)",
            "needs Proxmox VE >=8.1; this node runs 8.0.9",
        ]
    );
    assert_eq!(
        r.unmet("0.1.0", None),
        ["needs Proxmox VE >=8.1; the node's release could not be read"]
    );
}
