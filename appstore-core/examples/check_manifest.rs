//! Embedding appstore-core: validate an `app.yml`, resolve install form values and render its outputs,
//! the way a tool outside the store would.
//!
//! `cargo run -p appstore-core --example check_manifest -- catalog/apps/radicale/app.yml [key=value...]`

use appstore_core::inputs::resolve;
use appstore_core::{parse_manifest, template};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: check_manifest <app.yml> [key=value...]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    // The app's directory name must equal its id.
    let dir = Path::new(&path)
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    let manifest = match parse_manifest(&text, dir) {
        Ok(m) => m,
        Err(diagnostics) => {
            eprintln!(
                "{path} has {} problem(s):\n{diagnostics}",
                diagnostics.len()
            );
            return ExitCode::from(1);
        }
    };
    println!(
        "{} {} ({}): {}",
        manifest.id(),
        manifest.version(),
        manifest.lxc().ostemplate,
        manifest.description()
    );

    // Form values as a browser would send them: strings, coerced by type.
    let submitted: serde_json::Map<String, serde_json::Value> = args
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        })
        .collect();
    let mut counter = 0;
    let inputs = match resolve(&manifest, &submitted, &mut || {
        counter += 1;
        format!("example-secret-{counter}")
    }) {
        Ok(i) => i,
        Err(errors) => {
            for e in errors {
                eprintln!("input {e}");
            }
            return ExitCode::from(1);
        }
    };
    println!("inputs (secrets redacted): {}", inputs.redacted_json());

    let context = serde_json::json!({
        "ctid": 120, "hostname": manifest.id(), "ip": "192.0.2.20", "node": "pve1", "pool": "appstore",
        "app": {"id": manifest.id(), "name": manifest.name(), "version": manifest.version().to_string()},
        "inputs": inputs.to_json(),
        "gpu": {"vendor": "", "driver_version": ""},
    });
    for output in manifest.outputs() {
        match template::render(&output.value, &context) {
            Ok(v) if output.secret => println!("{}: {} characters (secret)", output.label, v.len()),
            Ok(v) => println!("{}: {v}", output.label),
            Err(e) => println!("{}: cannot render: {e}", output.label),
        }
    }
    ExitCode::SUCCESS
}
