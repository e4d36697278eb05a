//! The simulated node's `pveum`: the commands an installer uses, with pveum's real syntax, acting on
//! the node's `user.cfg` (under its lock) and `priv/token.cfg` for real, so the API then answers with
//! what they made. Unknown commands fail the way pveum does; errors exit 255 with pveum's wording.
//!
//! `user add|delete|list`, `user token add|remove|list`, `role add|modify|delete|list`,
//! `pool add|delete|list`, `acl modify|delete|list`. List commands and `token add` answer
//! `--output-format json` (or `json-pretty`) as pveum does; other formats print one line per item.

use crate::pct::{options, Outcome};
use crate::state::{write_atomic, SimRoot};
use crate::user_cfg::{Acl, Token, User, UserCfg};
use crate::PveVersion;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn fail(msg: impl std::fmt::Display) -> Outcome {
    eprintln!("{msg}");
    Outcome { code: 255 }
}

/// Reads `user.cfg`, lets `change` edit it, and writes it back, all under the node's lock.
fn edit(
    root: &SimRoot,
    change: impl FnOnce(&mut UserCfg) -> Result<(), String>,
) -> Result<(), String> {
    let _lock = root.lock_users().map_err(|e| e.to_string())?;
    let mut cfg = UserCfg::parse(&root.read_user_cfg_text()).map_err(|e| e.to_string())?;
    change(&mut cfg)?;
    write_atomic(&root.user_cfg_path(), cfg.to_text().as_bytes()).map_err(|e| e.to_string())
}

fn read(root: &SimRoot) -> Result<UserCfg, String> {
    UserCfg::parse(&root.read_user_cfg_text()).map_err(|e| e.to_string())
}

/// Prints `value` as `--output-format` asks.
fn print(opts: &BTreeMap<String, String>, value: &Value) {
    match opts.get("output-format").map(String::as_str) {
        Some("json") => println!("{value}"),
        Some("json-pretty") => {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            )
        }
        _ => match value {
            Value::Array(items) => {
                for i in items {
                    println!("{i}");
                }
            }
            other => println!("{other}"),
        },
    }
}

fn flag(opts: &BTreeMap<String, String>, name: &str, default: bool) -> Result<bool, String> {
    match opts.get(name).map(String::as_str) {
        None => Ok(default),
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(v) => Err(format!(
            "400 Parameter verification failed.\n{name}: type check ('boolean') failed - got '{v}'"
        )),
    }
}

fn positional<'a>(pos: &'a [String], i: usize, usage: &str) -> Result<&'a str, String> {
    pos.get(i)
        .map(String::as_str)
        .ok_or_else(|| format!("400 not enough arguments\n{usage}"))
}

/// Runs `pveum` with `args` (without the program name) on the node at `root`, which runs `version`.
pub fn run(root: &SimRoot, version: PveVersion, args: &[String]) -> Outcome {
    let (pos, opts) = match options(args) {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let words: Vec<&str> = pos.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["user", "add", ..] => user_add(root, &pos[2..], &opts),
        ["user", "delete", ..] => user_delete(root, &pos[2..]),
        ["user", "list", ..] => read(root).map(|cfg| {
            let users: Vec<Value> = cfg
                .users()
                .iter()
                .map(|u| json!({"userid": u.userid, "enable": u.enable as u8, "comment": u.comment}))
                .collect();
            print(&opts, &Value::Array(users));
        }),
        ["user", "token", "add", ..] => token_add(root, &pos[3..], &opts),
        ["user", "token", "remove", ..] => token_remove(root, &pos[3..]),
        ["user", "token", "list", ..] => positional(&pos, 3, "pveum user token list <userid>")
            .and_then(|user| {
                let cfg = read(root)?;
                if cfg.user(user).is_none() {
                    return Err(format!("user '{user}' does not exist"));
                }
                let prefix = format!("{user}!");
                let tokens: Vec<Value> = cfg
                    .tokens()
                    .iter()
                    .filter_map(|t| {
                        let name = t.tokenid.strip_prefix(&prefix)?;
                        Some(json!({"tokenid": name, "privsep": t.privsep as u8, "comment": t.comment}))
                    })
                    .collect();
                print(&opts, &Value::Array(tokens));
                Ok(())
            }),
        ["role", "add", ..] => role_set(root, version, &pos[2..], &opts, true),
        ["role", "modify", ..] => role_set(root, version, &pos[2..], &opts, false),
        ["role", "delete", ..] => positional(&pos, 2, "pveum role delete <roleid>").and_then(|name| {
            edit(root, |cfg| {
                if cfg.role(name).is_none() {
                    return Err(format!("delete role failed: role '{name}' does not exist"));
                }
                cfg.remove_role(name);
                Ok(())
            })
        }),
        ["role", "list", ..] => read(root).map(|cfg| {
            let roles: Vec<Value> = cfg
                .roles()
                .iter()
                .map(|r| json!({"roleid": r.name, "privs": r.privs.join(","), "special": 0}))
                .collect();
            print(&opts, &Value::Array(roles));
        }),
        ["pool", "add", ..] => positional(&pos, 2, "pveum pool add <poolid>").and_then(|id| {
            let comment = opts.get("comment").cloned().unwrap_or_default();
            edit(root, |cfg| cfg.add_pool(id, &comment))
        }),
        ["pool", "delete", ..] => positional(&pos, 2, "pveum pool delete <poolid>")
            .and_then(|id| edit(root, |cfg| cfg.remove_pool(id))),
        ["pool", "list", ..] => read(root).map(|cfg| {
            let pools: Vec<Value> = cfg
                .pools()
                .iter()
                .map(|p| json!({"poolid": p.poolid, "comment": p.comment}))
                .collect();
            print(&opts, &Value::Array(pools));
        }),
        ["acl", "modify", ..] => acl(root, &pos[2..], &opts, false),
        ["acl", "delete", ..] => acl(root, &pos[2..], &opts, true),
        ["acl", "list", ..] => read(root).map(|cfg| {
            let mut out = Vec::new();
            for a in cfg.acls() {
                for ugid in &a.ugids {
                    for role in &a.roles {
                        let kind = if ugid.starts_with('@') {
                            "group"
                        } else if ugid.contains('!') {
                            "token"
                        } else {
                            "user"
                        };
                        out.push(json!({"path": a.path, "ugid": ugid.trim_start_matches('@'), "type": kind, "roleid": role, "propagate": a.propagate as u8}));
                    }
                }
            }
            print(&opts, &Value::Array(out));
        }),
        [] => Err("ERROR: no command specified".to_string()),
        other => Err(format!("ERROR: unknown command 'pveum {}'", other.join(" "))),
    };
    match result {
        Ok(()) => Outcome { code: 0 },
        Err(e) => fail(e),
    }
}

fn user_add(root: &SimRoot, pos: &[String], opts: &BTreeMap<String, String>) -> Result<(), String> {
    let userid = positional(pos, 0, "pveum user add <userid>")?;
    if !userid.contains('@') {
        return Err(format!(
            "400 Parameter verification failed.\nuserid: value '{userid}' does not look like a valid user name"
        ));
    }
    edit(root, |cfg| {
        if cfg.user(userid).is_some() {
            return Err(format!(
                "create user failed: user '{userid}' already exists"
            ));
        }
        cfg.add_user(User {
            userid: userid.to_string(),
            enable: flag(opts, "enable", true)?,
            comment: opts.get("comment").cloned().unwrap_or_default(),
            ..Default::default()
        });
        Ok(())
    })
}

fn user_delete(root: &SimRoot, pos: &[String]) -> Result<(), String> {
    let userid = positional(pos, 0, "pveum user delete <userid>")?;
    let tokens: Vec<String> = read(root)?
        .tokens()
        .iter()
        .filter(|t| t.tokenid.starts_with(&format!("{userid}!")))
        .map(|t| t.tokenid.clone())
        .collect();
    edit(root, |cfg| {
        if cfg.user(userid).is_none() {
            return Err(format!(
                "delete user failed: user '{userid}' does not exist"
            ));
        }
        // The user's tokens and every ACL entry of the user or its tokens go with it.
        cfg.remove_user(userid);
        Ok(())
    })?;
    for t in tokens {
        root.remove_token_secret(&t).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn token_add(
    root: &SimRoot,
    pos: &[String],
    opts: &BTreeMap<String, String>,
) -> Result<(), String> {
    let usage = "pveum user token add <userid> <tokenid>";
    let (userid, name) = (positional(pos, 0, usage)?, positional(pos, 1, usage)?);
    let full = format!("{userid}!{name}");
    let privsep = flag(opts, "privsep", true)?;
    edit(root, |cfg| {
        if cfg.user(userid).is_none() {
            return Err(format!("no such user ('{userid}')"));
        }
        if cfg.token(&full).is_some() {
            return Err("Token already exists.".to_string());
        }
        cfg.add_token(Token {
            tokenid: full.clone(),
            privsep,
            comment: opts.get("comment").cloned().unwrap_or_default(),
            ..Default::default()
        });
        Ok(())
    })?;
    let secret = crate::setup::new_secret();
    root.set_token_secret(&full, &secret)
        .map_err(|e| e.to_string())?;
    print(
        opts,
        &json!({"full-tokenid": full, "info": {"privsep": if privsep { "1" } else { "0" }}, "value": secret}),
    );
    Ok(())
}

fn token_remove(root: &SimRoot, pos: &[String]) -> Result<(), String> {
    let usage = "pveum user token remove <userid> <tokenid>";
    let (userid, name) = (positional(pos, 0, usage)?, positional(pos, 1, usage)?);
    let full = format!("{userid}!{name}");
    edit(root, |cfg| {
        if cfg.token(&full).is_none() {
            return Err(format!("no such token '{name}' for user '{userid}'"));
        }
        cfg.remove_token(&full);
        Ok(())
    })?;
    root.remove_token_secret(&full).map_err(|e| e.to_string())
}

fn role_set(
    root: &SimRoot,
    version: PveVersion,
    pos: &[String],
    opts: &BTreeMap<String, String>,
    create: bool,
) -> Result<(), String> {
    let name = positional(pos, 0, "pveum role add <roleid>")?;
    let privs: Vec<&str> = opts
        .get("privs")
        .map(|p| p.split([',', ';', ' ']).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    crate::user_cfg::check_privileges(version, &privs)
        .map_err(|e| format!("400 Parameter verification failed.\nprivs: {e}"))?;
    let append = flag(opts, "append", false)?;
    edit(root, |cfg| {
        if crate::user_cfg::builtin_role_privs(name).is_some() {
            return Err(format!("cannot modify built-in role '{name}'"));
        }
        let existing = cfg.role(name).map(|r| r.privs.clone());
        match (create, &existing) {
            (true, Some(_)) => {
                return Err(format!("create role failed: role '{name}' already exists"))
            }
            (false, None) => {
                return Err(format!("update role failed: role '{name}' does not exist"))
            }
            _ => {}
        }
        let mut all: Vec<&str> = privs.clone();
        if append {
            all.extend(existing.iter().flatten().map(String::as_str));
        }
        cfg.add_role(name, &all);
        Ok(())
    })
}

fn acl(
    root: &SimRoot,
    pos: &[String],
    opts: &BTreeMap<String, String>,
    delete: bool,
) -> Result<(), String> {
    let path = positional(pos, 0, "pveum acl modify <path> --roles <roles>")?;
    let roles = opts.get("roles").cloned().ok_or(
        "400 Parameter verification failed.\nroles: property is missing and it is not optional",
    )?;
    let mut ugids = Vec::new();
    for (key, prefix) in [("users", ""), ("tokens", ""), ("groups", "@")] {
        if let Some(list) = opts.get(key) {
            ugids.extend(
                list.split([',', ';', ' '])
                    .filter(|s| !s.is_empty())
                    .map(|s| format!("{prefix}{s}")),
            );
        }
    }
    let propagate = flag(opts, "propagate", true)?;
    edit(root, |cfg| {
        for r in roles.split([',', ';', ' ']).filter(|s| !s.is_empty()) {
            if cfg.role(r).is_none() && crate::user_cfg::builtin_role_privs(r).is_none() {
                return Err(format!("role '{r}' does not exist"));
            }
        }
        for u in &ugids {
            if u.contains('!') {
                if cfg.token(u).is_none() {
                    return Err(format!("no such token '{u}'"));
                }
            } else if !u.starts_with('@') && cfg.user(u).is_none() {
                return Err(format!("no such user ('{u}')"));
            }
        }
        let acl = Acl {
            propagate,
            path: path.to_string(),
            ugids: ugids.clone(),
            roles: vec![roles.clone()],
        };
        if delete {
            cfg.remove_acl(&acl);
        } else {
            cfg.add_acl(acl);
        }
        Ok(())
    })
}
