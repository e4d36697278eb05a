//! `pct` of the simulated node: the real command-line syntax and exit codes (255 for an error, the
//! command's own code for `exec`, and 0 for a failed `push`, as the real one), acting on the same files
//! as the API server and on the node's container back end.

use crate::backend::{backend_for, Backend};
use crate::schema::validate;
use crate::state::SimRoot;
use crate::PveVersion;
use appstore_core::pve_config::PveConfig;
use std::collections::BTreeMap;
use std::path::Path;

/// In a binary that hosts the simulator: when called as `<binary> __pct ARGS...` with
/// `PVE_SIM_ROOT` set (what the node's `usr/sbin/pct` wrapper does), acts as pct and exits.
pub fn main_if_invoked() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("__pct") {
        return;
    }
    let Ok(root) = std::env::var("PVE_SIM_ROOT") else {
        eprintln!("pct: PVE_SIM_ROOT is not set");
        std::process::exit(255);
    };
    let root = match SimRoot::open(&root) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pct: {root} is not a simulated node: {e}");
            std::process::exit(255);
        }
    };
    let rest: Vec<String> = args.collect();
    std::process::exit(run(&root, &rest).code);
}

/// What `pct` ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Exit code.
    pub code: i32,
}

fn fail(msg: impl std::fmt::Display) -> Outcome {
    eprintln!("{msg}");
    Outcome { code: 255 }
}

/// Splits `--key value` options (and `--flag` followed by another option or nothing, meaning 1).
pub(crate) fn options(args: &[String]) -> Result<(Vec<String>, BTreeMap<String, String>), String> {
    let mut positional = Vec::new();
    let mut opts = BTreeMap::new();
    let mut i = 0;
    while i < args.len() {
        if let Some(name) = args[i].strip_prefix("--") {
            let value = match args.get(i + 1) {
                Some(v) if !v.starts_with("--") => {
                    i += 1;
                    v.clone()
                }
                _ => "1".to_string(),
            };
            if opts.insert(name.to_string(), value).is_some() {
                return Err(format!("duplicate option '--{name}'"));
            }
        } else {
            positional.push(args[i].clone());
        }
        i += 1;
    }
    Ok((positional, opts))
}

fn vmid(arg: Option<&String>) -> Result<u32, String> {
    let a = arg.ok_or("400 not enough arguments\npct <command> <vmid> ...")?;
    a.parse::<u32>()
        .ok()
        .filter(|v| (100..=999_999_999).contains(v))
        .ok_or_else(|| format!("400 Parameter verification failed.\nvmid: type check ('integer') failed - got '{a}'"))
}

fn check_params(
    method: &str,
    template: &str,
    params: &BTreeMap<String, String>,
    v: PveVersion,
) -> Result<(), String> {
    let endpoint = v
        .schema()
        .endpoints()
        .iter()
        .find(|e| e.method == method && e.template == template)
        .ok_or("schema has no entry")?;
    let mut errors = match validate(endpoint, params) {
        Ok(()) => BTreeMap::new(),
        Err(e) => e,
    };
    for name in params.keys() {
        let schema_name = format!("{}[n]", name.trim_end_matches(|c: char| c.is_ascii_digit()));
        if !v.has_param(method, template, &schema_name) {
            errors.insert(name.clone(), "property is not defined in schema and the schema does not allow additional properties".into());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        let lines: Vec<String> = errors
            .iter()
            .map(|(k, m)| format!("{k}: {}", m.trim_end()))
            .collect();
        Err(format!(
            "400 Parameter verification failed.\n{}",
            lines.join("\n")
        ))
    }
}

/// Where every `pct` call on the node is counted: one line with its command (`exec`, `set`, ...),
/// so tests and benchmarks can say how many `pct` processes an operation cost.
pub fn calls_file(root: &SimRoot) -> std::path::PathBuf {
    root.path().join("sim/pct-calls")
}

/// Runs `pct` with `args` (without the program name) on the node at `root`.
pub fn run(root: &SimRoot, args: &[String]) -> Outcome {
    {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(calls_file(root))
        {
            let _ = writeln!(f, "{}", args.first().map(String::as_str).unwrap_or(""));
        }
    }
    let backend = match backend_for(root) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let Some(cmd) = args.first() else {
        return fail("ERROR: no command specified\nUSAGE: pct <COMMAND> [ARGS] [OPTIONS]");
    };
    let rest = &args[1..];
    // `exec` takes everything after `--` verbatim.
    if cmd == "exec" {
        return exec(root, backend.as_ref(), rest);
    }
    let (pos, opts) = match options(rest) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let id = match vmid(pos.first()) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let result = match cmd.as_str() {
        "status" => status(root, backend.as_ref(), id),
        "config" => config(root, id),
        "set" => set(root, id, opts),
        "start" => power(root, backend.as_ref(), id, true),
        "stop" | "shutdown" => power(root, backend.as_ref(), id, false),
        "destroy" => destroy(root, backend.as_ref(), id, &opts),
        "push" => return push(root, backend.as_ref(), id, &pos, &opts),
        "pull" => pull(root, backend.as_ref(), id, &pos),
        "create" => create(root, backend.as_ref(), id, &pos, opts),
        other => Err(format!("ERROR: unknown command 'pct {other}'")),
    };
    match result {
        Ok(()) => Outcome { code: 0 },
        Err(e) => fail(e),
    }
}

fn conf(root: &SimRoot, id: u32) -> Result<PveConfig, String> {
    root.read_conf(id).map(|(c, _)| c).ok_or_else(|| {
        format!(
            "Configuration file 'nodes/{}/lxc/{id}.conf' does not exist",
            root.node()
        )
    })
}

fn status(root: &SimRoot, backend: &dyn Backend, id: u32) -> Result<(), String> {
    conf(root, id)?;
    println!(
        "status: {}",
        if backend.is_running(id) {
            "running"
        } else {
            "stopped"
        }
    );
    Ok(())
}

fn config(root: &SimRoot, id: u32) -> Result<(), String> {
    let c = conf(root, id)?;
    let cur = c.current();
    if !cur.description().is_empty() {
        println!("description: {}", cur.description().replace('\n', "\\n"));
    }
    for (k, v) in cur.keys() {
        println!("{k}: {v}");
    }
    for (k, v) in cur.raw_lxc() {
        println!("{k}: {v}");
    }
    Ok(())
}

fn set(root: &SimRoot, id: u32, mut opts: BTreeMap<String, String>) -> Result<(), String> {
    let mut params = opts.clone();
    params.insert("node".into(), root.node().into());
    params.insert("vmid".into(), id.to_string());
    check_params(
        "PUT",
        "/nodes/{node}/lxc/{vmid}/config",
        &params,
        root.version(),
    )?;
    let _lock = root.lock_config(id).map_err(|e| e.to_string())?;
    let mut c = conf(root, id)?;
    if let Some(l) = c.current().get("lock") {
        return Err(format!("CT {id} is locked ({l})"));
    }
    let deletes = opts.remove("delete").unwrap_or_default();
    let cur = c.current_mut();
    for key in deletes.split([',', ';', ' ']).filter(|s| !s.is_empty()) {
        cur.remove(key);
    }
    for (k, v) in &opts {
        if k == "description" {
            cur.set_description(v);
        } else {
            cur.try_set(k, v).map_err(|e| e.to_string())?;
        }
    }
    root.write_conf(id, &c).map_err(|e| e.to_string())
}

fn power(root: &SimRoot, backend: &dyn Backend, id: u32, start: bool) -> Result<(), String> {
    let c = conf(root, id)?;
    let running = backend.is_running(id);
    if start {
        if running {
            return Err(format!("CT {id} already running"));
        }
        if let Some(l) = c.current().get("lock") {
            return Err(format!("CT {id} is locked ({l})"));
        }
        backend.start(id, &c)
    } else if !running {
        Err(format!("CT {id} not running"))
    } else {
        backend.stop(id)
    }
}

fn destroy(
    root: &SimRoot,
    backend: &dyn Backend,
    id: u32,
    opts: &BTreeMap<String, String>,
) -> Result<(), String> {
    conf(root, id)?;
    if backend.is_running(id) {
        if opts.get("force").map(String::as_str) == Some("1") {
            backend.stop(id)?;
        } else {
            return Err(format!("CT {id} is running - destroy failed"));
        }
    }
    let _lock = root.lock_config(id).map_err(|e| e.to_string())?;
    backend.destroy(id)?;
    root.remove_conf(id).map_err(|e| e.to_string())?;
    if opts.get("purge").map(String::as_str) == Some("1") {
        let _ulock = root.lock_users().map_err(|e| e.to_string())?;
        let mut users = crate::user_cfg::UserCfg::parse(&root.read_user_cfg_text())
            .map_err(|e| e.to_string())?;
        users.remove_vm(id);
        crate::state::write_atomic(&root.user_cfg_path(), users.to_text().as_bytes())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn create(
    root: &SimRoot,
    backend: &dyn Backend,
    id: u32,
    pos: &[String],
    opts: BTreeMap<String, String>,
) -> Result<(), String> {
    let ostemplate = pos
        .get(1)
        .ok_or("400 not enough arguments\npct create <vmid> <ostemplate> [OPTIONS]")?;
    let mut params = opts.clone();
    params.insert("node".into(), root.node().into());
    params.insert("vmid".into(), id.to_string());
    params.insert("ostemplate".into(), ostemplate.clone());
    check_params("POST", "/nodes/{node}/lxc", &params, root.version())?;
    if root.conf_path(id).exists() {
        return Err(format!("CT {id} already exists on node '{}'", root.node()));
    }
    let tvol = ostemplate.split_once(':').map(|(_, v)| v).unwrap_or("");
    let tpath = root.template_dir().join(tvol.trim_start_matches("vztmpl/"));
    if !tpath.is_file() {
        return Err(format!("volume '{ostemplate}' does not exist"));
    }
    let mut c = PveConfig::default();
    {
        let cur = c.current_mut();
        for (k, v) in [
            ("arch", "amd64"),
            ("memory", "512"),
            ("swap", "512"),
            ("ostype", "debian"),
        ] {
            cur.try_set(k, v).map_err(|e| e.to_string())?;
        }
        cur.try_set("rootfs", &format!("local-lvm:vm-{id}-disk-0,size=4G"))
            .map_err(|e| e.to_string())?;
        for (k, v) in &opts {
            match k.as_str() {
                "pool" | "storage" | "start" => {}
                "description" => cur.set_description(v),
                _ => cur.try_set(k, v).map_err(|e| e.to_string())?,
            }
        }
    }
    let _lock = root.lock_config(id).map_err(|e| e.to_string())?;
    backend.create(id, &c, &tpath)?;
    root.write_conf(id, &c).map_err(|e| e.to_string())
}

fn exec(root: &SimRoot, backend: &dyn Backend, rest: &[String]) -> Outcome {
    let split = rest.iter().position(|a| a == "--");
    let (head, cmd) = match split {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[rest.len().min(1)..]),
    };
    let (pos, opts) = match options(head) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let id = match vmid(pos.first()) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if cmd.is_empty() {
        return fail("missing command");
    }
    if let Err(e) = conf(root, id) {
        return fail(e);
    }
    if !backend.is_running(id) {
        return fail(format!("CT {id} not running"));
    }
    // `--keep-env` defaults to 1 on 8.x: the host environment goes in. On 9.x the simulator takes
    // the announced default (0), so nothing may rely on either: the product passes it explicitly.
    let keep = match opts.get("keep-env").map(String::as_str) {
        Some(v) => v != "0",
        None => !root.version().is_9(),
    };
    let env: Vec<(String, String)> = if keep {
        std::env::vars()
            .filter(|(k, _)| k != "PVE_SIM_ROOT")
            .collect()
    } else {
        vec![(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        )]
    };
    match backend.exec(id, cmd, &env) {
        Ok(code) => Outcome { code },
        Err(e) => {
            eprintln!("{e}");
            Outcome { code: 1 }
        }
    }
}

fn push(
    root: &SimRoot,
    backend: &dyn Backend,
    id: u32,
    pos: &[String],
    opts: &BTreeMap<String, String>,
) -> Outcome {
    let (Some(src), Some(dest)) = (pos.get(1), pos.get(2)) else {
        return fail("400 not enough arguments\npct push <vmid> <file> <destination> [OPTIONS]");
    };
    if let Err(e) = conf(root, id) {
        return fail(e);
    }
    if !backend.is_running(id) {
        return fail(format!("CT {id} not running"));
    }
    let perms = opts
        .get("perms")
        .and_then(|p| u32::from_str_radix(p.trim_start_matches("0o"), 8).ok());
    // Like the real pct: a failed copy is reported, yet the exit code is 0.
    if let Err(e) = backend.push(id, Path::new(src), dest, perms) {
        eprintln!("{e}");
    }
    Outcome { code: 0 }
}

fn pull(root: &SimRoot, backend: &dyn Backend, id: u32, pos: &[String]) -> Result<(), String> {
    let (Some(src), Some(dest)) = (pos.get(1), pos.get(2)) else {
        return Err(
            "400 not enough arguments\npct pull <vmid> <path> <destination> [OPTIONS]".into(),
        );
    };
    conf(root, id)?;
    if !backend.is_running(id) {
        return Err(format!("CT {id} not running"));
    }
    backend.pull(id, src, Path::new(dest))
}
