//! The simulated node's `pvesh`: root's shell access to the API, with pvesh's syntax
//! (`pvesh get|create|set|delete <path> [--param value ...] [--output-format json|json-pretty]`).
//! Like the real one it does not go through pveproxy: the request is routed, validated and answered
//! in this process by the same code the simulator's API uses, as root@pam. Calls that start a task
//! are refused (their task would die with this process).

use crate::acl::Caller;
use crate::api::Node;
use crate::pct::{options, Outcome};
use crate::server::Server;
use crate::state::SimRoot;
use crate::user_cfg::UserCfg;
use crate::PveVersion;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn fail(msg: impl std::fmt::Display) -> Outcome {
    eprintln!("{msg}");
    Outcome { code: 255 }
}

/// Runs `pvesh` with `args` (without the program name) on the node at `root`, which runs `version`.
pub fn run(root: SimRoot, version: PveVersion, args: &[String]) -> Outcome {
    let (pos, mut opts) = match options(args) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let (Some(verb), Some(path)) = (pos.first(), pos.get(1)) else {
        return fail(
            "400 not enough arguments\npvesh <get|create|set|delete> <api_path> [OPTIONS]",
        );
    };
    let method = match verb.as_str() {
        "get" | "ls" => "GET",
        "create" => "POST",
        "set" => "PUT",
        "delete" => "DELETE",
        other => return fail(format!("ERROR: unknown command 'pvesh {other}'")),
    };
    let format = opts
        .remove("output-format")
        .unwrap_or_else(|| "text".into());
    opts.remove("noproxy");
    let path = format!("/{}", path.trim_matches('/'));
    let backend = match crate::backend::backend_for(&root) {
        Ok(b) => Arc::from(b),
        Err(e) => return fail(e),
    };
    let users = match UserCfg::parse(&root.read_user_cfg_text()) {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let node = Arc::new(Node {
        root,
        version,
        task_latency: Duration::ZERO,
        tasks: Default::default(),
        backend,
        fingerprint: None,
        rrd: Default::default(),
    });
    let server = Server::new(node, Duration::ZERO, None);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mut params: BTreeMap<String, String> = opts;
    let result = runtime.block_on(server.process_as(
        method,
        &path,
        Caller::root_shell(),
        &users,
        &mut params,
    ));
    match result {
        Ok((data, template)) => {
            let starts_task = matches!(&data, Value::String(s) if s.starts_with("UPID:"));
            if starts_task {
                return fail(format!(
                    "pve-sim pvesh: {method} {template} starts a task; use the API or pct for it"
                ));
            }
            let data = match data {
                Value::Object(mut m) if m.contains_key("__data") => {
                    m.remove("__data").unwrap_or(Value::Null)
                }
                other => other,
            };
            match format.as_str() {
                "json" => println!("{data}"),
                "json-pretty" => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&data).unwrap_or_default()
                    )
                }
                _ => print_text(&data),
            }
            Outcome { code: 0 }
        }
        Err((e, _)) => {
            let mut text = format!("{} {}", e.status, e.message);
            for (k, v) in &e.errors {
                text.push_str(&format!("\n{k}: {v}"));
            }
            fail(text)
        }
    }
}

/// pvesh's text output, simplified: one line per item or per key.
fn print_text(data: &Value) {
    match data {
        Value::Array(items) => items.iter().for_each(|i| println!("{i}")),
        Value::Object(m) => m.iter().for_each(|(k, v)| println!("{k}: {v}")),
        Value::Null => {}
        other => println!("{other}"),
    }
}
