//! Tokens and permissions as PVE computes them: a token's secret from `priv/token.cfg`, its ACLs from
//! `user.cfg` (propagation down paths, pool membership of guests and storages, privilege separation),
//! and built-in plus custom roles.

use crate::user_cfg::{builtin_role_privs, UserCfg};
use std::collections::BTreeSet;

/// An authenticated API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `user@realm!tokenid`.
    pub tokenid: String,
    /// `user@realm`.
    pub userid: String,
    /// root@pam without privilege separation: every privilege, root-only options included.
    pub is_root: bool,
    privsep: bool,
}

impl Caller {
    /// root@pam on the node's shell, as `pvesh` runs: every privilege, no token.
    pub fn root_shell() -> Caller {
        Caller {
            tokenid: "root@pam".into(),
            userid: "root@pam".into(),
            is_root: true,
            privsep: false,
        }
    }

    /// Checks `PVEAPIToken=user@realm!tokenid=secret` against the node's files.
    pub fn authenticate(
        header: &str,
        users: &UserCfg,
        secret_of: impl Fn(&str) -> Option<String>,
    ) -> Option<Caller> {
        let value = header.strip_prefix("PVEAPIToken=")?;
        // The secret is a UUID; the value splits on its last '='.
        let (tokenid, secret) = value.rsplit_once('=')?;
        let token = users.token(tokenid)?;
        let (userid, _) = tokenid.split_once('!')?;
        let user = users.users().iter().find(|u| u.userid == userid)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if !user.enable
            || (user.expire != 0 && user.expire < now)
            || (token.expire != 0 && token.expire < now)
        {
            return None;
        }
        if secret_of(tokenid).as_deref() != Some(secret) {
            return None;
        }
        Some(Caller {
            tokenid: tokenid.to_string(),
            userid: userid.to_string(),
            is_root: userid == "root@pam" && !token.privsep,
            privsep: token.privsep,
        })
    }
}

fn role_privs(users: &UserCfg, role: &str) -> Vec<String> {
    if let Some(p) = builtin_role_privs(role) {
        return p.iter().map(|s| s.to_string()).collect();
    }
    users
        .roles()
        .iter()
        .find(|r| r.name == role)
        .map(|r| r.privs.clone())
        .unwrap_or_default()
}

/// Privileges one principal (a user with its groups, or a token) has on `path` from ACLs alone: the
/// deepest path with an entry wins; entries on parent paths count only when they propagate.
fn acl_privs(users: &UserCfg, principals: &[String], path: &str) -> BTreeSet<String> {
    let mut prefixes = vec!["/".to_string()];
    let mut acc = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        acc.push('/');
        acc.push_str(seg);
        prefixes.push(acc.clone());
    }
    let mut current = BTreeSet::new();
    for prefix in &prefixes {
        let exact = prefix == path || (path.is_empty() && prefix == "/");
        let entries: Vec<_> = users
            .acls()
            .iter()
            .filter(|a| &a.path == prefix && (exact || a.propagate))
            .filter(|a| a.ugids.iter().any(|u| principals.contains(u)))
            .collect();
        if !entries.is_empty() {
            current = entries
                .iter()
                .flat_map(|a| a.roles.iter())
                .flat_map(|r| role_privs(users, r))
                .collect();
        }
    }
    current
}

/// Every privilege `caller` has on `path` (`/vms/101`, `/storage/local`, `/pool/appstore`, ...).
pub fn privileges(users: &UserCfg, caller: &Caller, path: &str) -> BTreeSet<String> {
    if caller.userid == "root@pam" && !caller.privsep {
        return ["*".to_string()].into();
    }
    let mut paths = vec![path.to_string()];
    // Guests and storages inherit the ACLs of the pool that holds them.
    if let Some(id) = path
        .strip_prefix("/vms/")
        .and_then(|s| s.parse::<u32>().ok())
    {
        if let Some(pool) = users.pool_of_vm(id) {
            paths.push(format!("/pool/{pool}"));
        }
    }
    if let Some(s) = path.strip_prefix("/storage/") {
        if let Some(pool) = users.pool_of_storage(s) {
            paths.push(format!("/pool/{pool}"));
        }
    }
    let mut user_principals = vec![caller.userid.clone()];
    user_principals.extend(
        users
            .groups()
            .iter()
            .filter(|g| g.users.contains(&caller.userid))
            .map(|g| format!("@{}", g.name)),
    );
    let of = |principals: &[String]| -> BTreeSet<String> {
        paths
            .iter()
            .flat_map(|p| acl_privs(users, principals, p))
            .collect()
    };
    let user_privs = if caller.userid == "root@pam" {
        ["*".to_string()].into()
    } else {
        of(&user_principals)
    };
    if !caller.privsep {
        return user_privs;
    }
    let token_privs = of(std::slice::from_ref(&caller.tokenid));
    if user_privs.contains("*") {
        token_privs
    } else {
        token_privs.intersection(&user_privs).cloned().collect()
    }
}

/// True when `caller` has `privilege` on `path`.
pub fn has(users: &UserCfg, caller: &Caller, path: &str, privilege: &str) -> bool {
    let p = privileges(users, caller, path);
    p.contains("*") || p.contains(privilege)
}
