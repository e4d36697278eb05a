//! Parser and writer for Proxmox VE's `/etc/pve/user.cfg` (pve-access-control, PVE 8.x): the whole model
//! the simulated node keeps its users, tokens, pools, roles and ACLs in. (The product reads only pool
//! membership, with `appstore_core::pve_pools`.)
//!
//! The file holds one entry a line, with `:`-separated fields:
//!
//! ```text
//! user:<userid>:<enable>:<expire>:<firstname>:<lastname>:<email>:<comment>:<keys>:
//! token:<user@realm!tokenid>:<expire>:<privsep>:<comment>:
//! group:<name>:<user,user>:<comment>:
//! pool:<poolid>:<comment>:<vmid,vmid>:<storage,storage>:
//! role:<name>:<priv,priv>:
//! acl:<propagate>:<path>:<user|@group|token,...>:<role,...>:
//! ```
//!
//! Reading follows `parse_user_config` of pve-access-control:
//!
//! * lines and fields are trimmed, missing trailing fields count as empty;
//! * free-text fields are percent-decoded (PVE's `decode_text`);
//! * a repeated `group`, `pool`, `role` or `token` entry merges into the first one, a
//!   repeated `user` entry replaces the earlier one (and drops the tokens read for it so far);
//! * a vmid belongs to at most one pool: the first listing in file order wins, later ones
//!   are ignored;
//! * a nested pool (`a/b`) implies its parent pools;
//! * `root@pam` always exists (an enabled user is added when the file has none);
//! * ACL entries are merged into one tree (path -> member -> role -> propagate), so a later
//!   entry for the same member and role overrides the propagate flag of an earlier one.
//!   ACL entries for the user `root@pam` are dropped, as PVE never writes them.
//!
//! Where PVE would warn and skip a malformed entry (bad user id, non-numeric vmid or expire,
//! invalid names, a token before or without its user, ...), this parser returns a
//! [`UserCfgError`] naming the line instead. Blank lines and `#` lines are skipped. Entries
//! of unknown type are kept verbatim (written back after the ACLs) but otherwise ignored.
//! References are not cross-checked: a group may list unknown users, an ACL may name
//! unknown roles, groups or tokens, and role privileges are not checked against PVE's list.
//!
//! Writing follows `write_user_config`: users (each followed by its tokens), groups, pools,
//! roles and ACLs, every section sorted and followed by an empty line (none after the ACLs);
//! list fields are sorted (vmids as strings, like PVE); ACLs of one path are grouped by
//! propagate flag and role list. PVE walks the ACL paths in hash order; this writer walks
//! them in sorted order (parents before children), so the output is deterministic.
//! Free-text fields (names, email, comment, keys) are percent-encoded like PVE's
//! `encode_text` (control characters, bytes >= 0x7f, `%` and `:` as `%XX`); in addition a
//! leading or trailing space is written as `%20`, because a reader trims the field.
//!
//! The model is kept in that canonical form at all times, so
//! `UserCfg::parse(&cfg.to_text()) == Ok(cfg)` holds for every value, and `to_text` gives
//! back canonical text unchanged.

use std::collections::{BTreeMap, BTreeSet};

/// A line of `user.cfg` that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user.cfg line {line}: {message}")]
pub struct UserCfgError {
    /// 1-based number of the offending line.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// A `user:` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// `name@realm`.
    pub userid: String,
    /// Whether the account may log in.
    pub enable: bool,
    /// Expiry as a Unix timestamp; 0 means never.
    pub expire: u64,
    /// First name (decoded).
    pub firstname: String,
    /// Last name (decoded).
    pub lastname: String,
    /// E-mail address.
    pub email: String,
    /// Free-text comment (decoded).
    pub comment: String,
    /// Legacy two-factor keys field (`x` once migrated to `priv/tfa.cfg`).
    pub keys: String,
}

/// A `token:` entry (an API token of a user).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Token {
    /// Full token id `user@realm!name`.
    pub tokenid: String,
    /// Expiry as a Unix timestamp; 0 means never.
    pub expire: u64,
    /// Privilege separation: the token only gets what ACLs grant the token itself.
    pub privsep: bool,
    /// Free-text comment (decoded).
    pub comment: String,
}

/// A `group:` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Member user ids, sorted.
    pub users: Vec<String>,
    /// Free-text comment (decoded).
    pub comment: String,
}

/// A `pool:` entry (a resource pool).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pool {
    /// Pool id; PVE >= 8.1 allows up to three `/`-separated levels.
    pub poolid: String,
    /// Free-text comment (decoded).
    pub comment: String,
    /// Member guests, in PVE's order (sorted as decimal strings).
    pub vms: Vec<u32>,
    /// Member storage ids, sorted.
    pub storage: Vec<String>,
}

/// A `role:` entry (a custom role; built-in roles are never stored in the file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Role {
    /// Role name.
    pub name: String,
    /// Privileges, sorted.
    pub privs: Vec<String>,
}

/// An `acl:` entry: the `roles` are granted on `path` to every member of `ugids`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acl {
    /// Whether the grant also applies below `path`.
    pub propagate: bool,
    /// Normalized ACL path such as `/pool/appstore` or `/`.
    pub path: String,
    /// Members, sorted: `user@realm`, `@group` or `user@realm!token`.
    pub ugids: Vec<String>,
    /// Role names, sorted.
    pub roles: Vec<String>,
}

/// The parsed contents of `/etc/pve/user.cfg`, always in canonical (PVE write) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCfg {
    users: Vec<User>,
    tokens: Vec<Token>,
    groups: Vec<Group>,
    pools: Vec<Pool>,
    roles: Vec<Role>,
    acls: Vec<Acl>,
    unknown: Vec<String>,
}

const ROOT_USER: &str = "root@pam";

/// Every privilege of PVE 8.x, sorted: the `Administrator` role.
const ALL_PRIVS: &[&str] = &[
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "Group.Allocate",
    "Mapping.Audit",
    "Mapping.Modify",
    "Mapping.Use",
    "Permissions.Modify",
    "Pool.Allocate",
    "Pool.Audit",
    "Realm.Allocate",
    "Realm.AllocateUser",
    "SDN.Allocate",
    "SDN.Audit",
    "SDN.Use",
    "Sys.AccessNetwork",
    "Sys.Audit",
    "Sys.Console",
    "Sys.Incoming",
    "Sys.Modify",
    "Sys.PowerMgmt",
    "Sys.Syslog",
    "User.Modify",
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Clone",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Console",
    "VM.Migrate",
    "VM.Monitor",
    "VM.PowerMgmt",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
];

/// The privileges 9.x added: replication and the guest agent's, split up.
const PRIVS_ADDED_IN_9: &[&str] = &[
    "VM.GuestAgent.Audit",
    "VM.GuestAgent.FileRead",
    "VM.GuestAgent.FileSystemMgmt",
    "VM.GuestAgent.FileWrite",
    "VM.GuestAgent.Unrestricted",
    "VM.Replicate",
];

/// The privileges 9.x removed.
const PRIVS_REMOVED_IN_9: &[&str] = &["VM.Monitor"];

/// Every privilege `version` knows, sorted.
pub fn privileges(version: crate::PveVersion) -> Vec<&'static str> {
    let mut all: Vec<&str> = ALL_PRIVS.to_vec();
    if version.is_9() {
        all.retain(|p| !PRIVS_REMOVED_IN_9.contains(p));
        all.extend(PRIVS_ADDED_IN_9);
        all.sort_unstable();
    }
    all
}

/// A role's privileges as `pveum role add`/`modify` checks them on `version`: an unknown name is
/// refused with PVE's message.
pub fn check_privileges(version: crate::PveVersion, privs: &[&str]) -> Result<(), String> {
    let known = privileges(version);
    match privs.iter().find(|p| !known.contains(p)) {
        Some(bad) => Err(format!("invalid privilege '{bad}'")),
        None => Ok(()),
    }
}

/// `PVEAdmin`: the admin, user and audit privileges of every group, without the root-only
/// ones (`Sys.PowerMgmt`, `Sys.Modify`, `Sys.Incoming`, `Sys.AccessNetwork`,
/// `Realm.Allocate`), `Permissions.Modify` and `Mapping.Modify`.
const PVE_ADMIN: &[&str] = &[
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "Group.Allocate",
    "Mapping.Audit",
    "Mapping.Use",
    "Pool.Allocate",
    "Pool.Audit",
    "Realm.AllocateUser",
    "SDN.Allocate",
    "SDN.Audit",
    "SDN.Use",
    "Sys.Audit",
    "Sys.Console",
    "Sys.Syslog",
    "User.Modify",
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Clone",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Console",
    "VM.Migrate",
    "VM.Monitor",
    "VM.PowerMgmt",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
];

const PVE_VM_ADMIN: &[&str] = &[
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Clone",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Console",
    "VM.Migrate",
    "VM.Monitor",
    "VM.PowerMgmt",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
];

const PVE_VM_USER: &[&str] = &[
    "VM.Audit",
    "VM.Backup",
    "VM.Config.CDROM",
    "VM.Config.Cloudinit",
    "VM.Console",
    "VM.PowerMgmt",
];

const PVE_AUDITOR: &[&str] = &[
    "Datastore.Audit",
    "Mapping.Audit",
    "Pool.Audit",
    "SDN.Audit",
    "Sys.Audit",
    "VM.Audit",
];

/// Built-in roles of PVE 8.x and their privileges (sorted).
const BUILTIN_ROLES: &[(&str, &[&str])] = &[
    ("Administrator", ALL_PRIVS),
    ("NoAccess", &[]),
    ("PVEAdmin", PVE_ADMIN),
    ("PVEAuditor", PVE_AUDITOR),
    (
        "PVEDatastoreAdmin",
        &[
            "Datastore.Allocate",
            "Datastore.AllocateSpace",
            "Datastore.AllocateTemplate",
            "Datastore.Audit",
        ],
    ),
    (
        "PVEDatastoreUser",
        &["Datastore.AllocateSpace", "Datastore.Audit"],
    ),
    (
        "PVEMappingAdmin",
        &["Mapping.Audit", "Mapping.Modify", "Mapping.Use"],
    ),
    ("PVEMappingUser", &["Mapping.Audit", "Mapping.Use"]),
    ("PVEPoolAdmin", &["Pool.Allocate", "Pool.Audit"]),
    ("PVEPoolUser", &["Pool.Audit"]),
    ("PVESDNAdmin", &["SDN.Allocate", "SDN.Audit", "SDN.Use"]),
    ("PVESDNUser", &["SDN.Audit", "SDN.Use"]),
    ("PVESysAdmin", &["Sys.Audit", "Sys.Console", "Sys.Syslog"]),
    ("PVETemplateUser", &["VM.Audit", "VM.Clone"]),
    (
        "PVEUserAdmin",
        &["Group.Allocate", "Realm.AllocateUser", "User.Modify"],
    ),
    ("PVEVMAdmin", PVE_VM_ADMIN),
    ("PVEVMUser", PVE_VM_USER),
];

/// The privileges of a PVE 8.x built-in role (sorted), or `None` for any other name.
///
/// Covers every built-in role: `Administrator` (all 42 privileges of PVE 8.x),
/// `NoAccess` (none), `PVEAdmin`, `PVEAuditor`, `PVEDatastoreAdmin`, `PVEDatastoreUser`,
/// `PVEMappingAdmin`, `PVEMappingUser`, `PVEPoolAdmin`, `PVEPoolUser`, `PVESDNAdmin`,
/// `PVESDNUser`, `PVESysAdmin`, `PVETemplateUser`, `PVEUserAdmin`, `PVEVMAdmin` and
/// `PVEVMUser`, as pve-access-control derives them from its privilege groups.
pub fn builtin_role_privs(name: &str) -> Option<&'static [&'static str]> {
    BUILTIN_ROLES
        .iter()
        .find(|(role, _)| *role == name)
        .map(|(_, privs)| *privs)
}

impl Default for UserCfg {
    fn default() -> Self {
        Self::new()
    }
}

impl UserCfg {
    /// The configuration of an empty file: only the enabled `root@pam` user.
    pub fn new() -> UserCfg {
        Builder::default().finish()
    }

    /// Reads the text of a `user.cfg` file; see the module documentation for the rules.
    ///
    /// A malformed line gives an error with its 1-based line number.
    pub fn parse(text: &str) -> Result<UserCfg, UserCfgError> {
        let mut builder = Builder::default();
        for (index, raw) in text.lines().enumerate() {
            let line = trim_field(raw);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            builder.entry(line).map_err(|message| UserCfgError {
                line: index + 1,
                message,
            })?;
        }
        Ok(builder.finish())
    }

    /// The canonical file text, as PVE's `write_user_config` lays it out.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for user in &self.users {
            out.push_str(&format!(
                "user:{}:{}:{}:{}:{}:{}:{}:{}:\n",
                user.userid,
                flag(user.enable),
                user.expire,
                encode_text(&user.firstname),
                encode_text(&user.lastname),
                encode_text(&user.email),
                encode_text(&user.comment),
                encode_text(&user.keys),
            ));
            let own = self.tokens.iter().filter(|t| {
                split_tokenid(&t.tokenid).map(|(u, _)| u) == Some(user.userid.as_str())
            });
            for token in own {
                out.push_str(&format!(
                    "token:{}:{}:{}:{}:\n",
                    token.tokenid,
                    token.expire,
                    flag(token.privsep),
                    encode_text(&token.comment),
                ));
            }
        }
        out.push('\n');
        for group in &self.groups {
            out.push_str(&format!(
                "group:{}:{}:{}:\n",
                group.name,
                group.users.join(","),
                encode_text(&group.comment),
            ));
        }
        out.push('\n');
        for pool in &self.pools {
            let vms: Vec<String> = pool.vms.iter().map(u32::to_string).collect();
            out.push_str(&format!(
                "pool:{}:{}:{}:{}:\n",
                pool.poolid,
                encode_text(&pool.comment),
                vms.join(","),
                pool.storage.join(","),
            ));
        }
        out.push('\n');
        for role in &self.roles {
            out.push_str(&format!("role:{}:{}:\n", role.name, role.privs.join(",")));
        }
        out.push('\n');
        for acl in &self.acls {
            out.push_str(&format!(
                "acl:{}:{}:{}:{}:\n",
                flag(acl.propagate),
                acl.path,
                acl.ugids.join(","),
                acl.roles.join(","),
            ));
        }
        for line in &self.unknown {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// All users, sorted by user id.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// All API tokens, sorted by user id, then token name.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// All groups, sorted by name.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// All pools, sorted by pool id.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// The custom roles of the file, sorted by name (built-in roles are not listed).
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// All ACL entries in canonical form: by path (parents first), then propagate flag
    /// (0 first), then role list.
    pub fn acls(&self) -> &[Acl] {
        &self.acls
    }

    /// Lines of unknown entry types, verbatim (trimmed), in file order.
    pub fn unknown_lines(&self) -> &[String] {
        &self.unknown
    }

    /// The user with this id.
    pub fn user(&self, userid: &str) -> Option<&User> {
        self.users.iter().find(|u| u.userid == userid)
    }

    /// The group with this name.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The custom role with this name (built-in roles: see [`builtin_role_privs`]).
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// The pool with this id.
    pub fn pool(&self, poolid: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.poolid == poolid)
    }

    /// The id of the pool that holds guest `vmid` (a guest is in at most one pool).
    pub fn pool_of_vm(&self, vmid: u32) -> Option<&str> {
        self.pools
            .iter()
            .find(|p| p.vms.contains(&vmid))
            .map(|p| p.poolid.as_str())
    }

    /// The id of the first pool (in pool id order) that lists this storage; PVE lets a
    /// storage belong to several pools.
    pub fn pool_of_storage(&self, storage: &str) -> Option<&str> {
        self.pools
            .iter()
            .find(|p| p.storage.iter().any(|s| s == storage))
            .map(|p| p.poolid.as_str())
    }

    /// The token with this full id (`user@realm!name`).
    pub fn token(&self, tokenid: &str) -> Option<&Token> {
        self.tokens.iter().find(|t| t.tokenid == tokenid)
    }

    /// Adds a user, or replaces the user with the same id (its tokens are kept).
    ///
    /// Ignored when `u.userid` is not a valid `name@realm`.
    pub fn add_user(&mut self, u: User) {
        if !is_userid(&u.userid) {
            return;
        }
        match self.users.binary_search_by(|x| x.userid.cmp(&u.userid)) {
            Ok(i) => self.users[i] = u,
            Err(i) => self.users.insert(i, u),
        }
    }

    /// Adds an API token, or replaces the token with the same id.
    ///
    /// Ignored when `t.tokenid` is not a valid `user@realm!name` or its user does not
    /// exist (PVE keeps tokens inside their user).
    pub fn add_token(&mut self, t: Token) {
        let Some((user, name)) = split_tokenid(&t.tokenid) else {
            return;
        };
        if self.user(user).is_none() {
            return;
        }
        let key = (user.to_string(), name.to_string());
        match self
            .tokens
            .binary_search_by(|x| token_key(&x.tokenid).cmp(&key))
        {
            Ok(i) => self.tokens[i] = t,
            Err(i) => self.tokens.insert(i, t),
        }
    }

    /// Creates an empty pool, like `POST /pools`.
    ///
    /// Errors: invalid id, `pool 'x' already exists`, or a missing parent of a nested pool.
    pub fn add_pool(&mut self, poolid: &str, comment: &str) -> Result<(), String> {
        if !is_poolid(poolid) {
            return Err(format!("invalid pool ID '{poolid}'"));
        }
        if self.pool(poolid).is_some() {
            return Err(format!("pool '{poolid}' already exists"));
        }
        if let Some((parent, _)) = poolid.rsplit_once('/') {
            if self.pool(parent).is_none() {
                return Err(format!("parent pool '{parent}' does not exist"));
            }
        }
        let pool = Pool {
            poolid: poolid.to_string(),
            comment: comment.to_string(),
            vms: Vec::new(),
            storage: Vec::new(),
        };
        match self
            .pools
            .binary_search_by(|p| p.poolid.as_str().cmp(poolid))
        {
            Ok(i) => self.pools[i] = pool,
            Err(i) => self.pools.insert(i, pool),
        }
        Ok(())
    }

    /// Deletes an empty pool and the ACL entries on `/pool/<poolid>` and below, like
    /// `DELETE /pools/<poolid>`.
    ///
    /// Errors: `pool 'x' does not exist`, or `pool 'x' is not empty (contains VM 101)`
    /// (also for a storage or a child pool).
    pub fn remove_pool(&mut self, poolid: &str) -> Result<(), String> {
        let Some(index) = self.pools.iter().position(|p| p.poolid == poolid) else {
            return Err(format!("pool '{poolid}' does not exist"));
        };
        let pool = &self.pools[index];
        if let Some(vmid) = pool.vms.first() {
            return Err(format!("pool '{poolid}' is not empty (contains VM {vmid})"));
        }
        if let Some(storage) = pool.storage.first() {
            return Err(format!(
                "pool '{poolid}' is not empty (contains storage '{storage}')"
            ));
        }
        let child_prefix = format!("{poolid}/");
        if let Some(child) = self
            .pools
            .iter()
            .find(|p| p.poolid.starts_with(&child_prefix))
        {
            return Err(format!(
                "pool '{poolid}' is not empty (contains pool '{}')",
                child.poolid
            ));
        }
        self.pools.remove(index);
        let path = format!("/pool/{poolid}");
        let below = format!("{path}/");
        self.acls
            .retain(|a| a.path != path && !a.path.starts_with(&below));
        Ok(())
    }

    /// Adds guest `vmid` to a pool, like `PUT /pools/<poolid>` with `vms`.
    ///
    /// Errors: `pool 'x' does not exist`, `VM 101 is already a pool member`, or
    /// `VM 101 belongs already to pool 'y'` when another pool holds it.
    pub fn add_vm_to_pool(&mut self, poolid: &str, vmid: u32) -> Result<(), String> {
        if self.pool(poolid).is_none() {
            return Err(format!("pool '{poolid}' does not exist"));
        }
        match self.pool_of_vm(vmid) {
            Some(owner) if owner == poolid => {
                return Err(format!("VM {vmid} is already a pool member"));
            }
            Some(owner) => {
                return Err(format!("VM {vmid} belongs already to pool '{owner}'"));
            }
            None => {}
        }
        if let Some(pool) = self.pools.iter_mut().find(|p| p.poolid == poolid) {
            pool.vms.push(vmid);
            sort_vmids(&mut pool.vms);
        }
        Ok(())
    }

    /// Removes a storage from a pool, like `PUT /pools/<poolid>` with `storage` and `delete`.
    ///
    /// Errors: `pool 'x' does not exist` or `Storage 'x' is not a pool member`.
    pub fn remove_storage_from_pool(&mut self, poolid: &str, storage: &str) -> Result<(), String> {
        let Some(pool) = self.pools.iter_mut().find(|p| p.poolid == poolid) else {
            return Err(format!("pool '{poolid}' does not exist"));
        };
        let before = pool.storage.len();
        pool.storage.retain(|s| s != storage);
        if pool.storage.len() == before {
            return Err(format!("Storage '{storage}' is not a pool member"));
        }
        Ok(())
    }

    /// Removes guest `vmid` from whatever pool holds it (nothing happens when none does).
    pub fn remove_vm(&mut self, vmid: u32) {
        for pool in &mut self.pools {
            pool.vms.retain(|v| *v != vmid);
        }
    }

    /// What PVE does to `user.cfg` when a guest is destroyed: removes it from its pool and
    /// drops the ACL entries on `/vms/<vmid>` and below.
    pub fn remove_vm_access(&mut self, vmid: u32) {
        self.remove_vm(vmid);
        let path = format!("/vms/{vmid}");
        let below = format!("{path}/");
        self.acls
            .retain(|a| a.path != path && !a.path.starts_with(&below));
    }

    /// Adds a storage to a pool, like `PUT /pools/<poolid>` with `storage`.
    ///
    /// Errors: `pool 'x' does not exist`, an invalid storage id, or
    /// `Storage 'x' is already a pool member`.
    pub fn add_storage_to_pool(&mut self, poolid: &str, storage: &str) -> Result<(), String> {
        let Some(pool) = self.pools.iter_mut().find(|p| p.poolid == poolid) else {
            return Err(format!("pool '{poolid}' does not exist"));
        };
        if !is_storage_id(storage) {
            return Err(format!("invalid storage ID '{storage}'"));
        }
        if pool.storage.iter().any(|s| s == storage) {
            return Err(format!("Storage '{storage}' is already a pool member"));
        }
        pool.storage.push(storage.to_string());
        pool.storage.sort();
        Ok(())
    }

    /// Adds a custom role, or replaces the privileges of the custom role with that name.
    ///
    /// Each entry of `privs` may itself be a list (`"A,B"`, split like `pveum --privs`);
    /// privilege names with characters other than letters, digits, `.`, `-` and `_` are
    /// skipped. Ignored for an invalid role name or a built-in role.
    pub fn add_role(&mut self, name: &str, privs: &[&str]) {
        if !is_name(name) || builtin_role_privs(name).is_some() {
            return;
        }
        let set: BTreeSet<String> = privs
            .iter()
            .flat_map(|p| split_list(p))
            .filter(|p| is_name(p))
            .map(str::to_string)
            .collect();
        let role = Role {
            name: name.to_string(),
            privs: set.into_iter().collect(),
        };
        match self.roles.binary_search_by(|r| r.name.as_str().cmp(name)) {
            Ok(i) => self.roles[i] = role,
            Err(i) => self.roles.insert(i, role),
        }
    }

    /// Grants `acl.roles` on `acl.path` to every member of `acl.ugids`, like
    /// `pveum acl modify`: merged into the existing ACLs (an existing grant of the same role
    /// to the same member takes the new propagate flag), then regrouped canonically.
    ///
    /// The path is normalized; entries of `ugids` and `roles` may be lists. Invalid members
    /// or role names and the member `root@pam` are skipped; an invalid path is ignored.
    pub fn add_acl(&mut self, acl: Acl) {
        let Some(segments) = normalize_path(&acl.path) else {
            return;
        };
        let members: Vec<String> = acl
            .ugids
            .iter()
            .flat_map(|m| split_list(m))
            .filter(|m| is_acl_member(m))
            .map(str::to_string)
            .collect();
        let roles: Vec<String> = acl
            .roles
            .iter()
            .flat_map(|r| split_list(r))
            .filter(|r| is_name(r))
            .map(str::to_string)
            .collect();
        let mut tree = acl_tree(&self.acls);
        acl_tree_insert(&mut tree, segments, acl.propagate, &members, &roles);
        self.acls = acls_from_tree(tree);
    }
}

impl UserCfg {
    /// Takes `roles` on `acl.path` away from the members of `acl.ugids`, like `pveum acl delete`.
    pub fn remove_acl(&mut self, acl: &Acl) {
        let Some(segments) = normalize_path(&acl.path) else {
            return;
        };
        let roles: Vec<&str> = acl.roles.iter().flat_map(|r| split_list(r)).collect();
        let mut tree = acl_tree(&self.acls);
        if let Some(members) = tree.get_mut(&segments) {
            for m in acl.ugids.iter().flat_map(|m| split_list(m)) {
                if let Some(granted) = members.get_mut(m) {
                    granted.retain(|r, _| !roles.contains(&r.as_str()));
                }
            }
            members.retain(|_, granted| !granted.is_empty());
        }
        tree.retain(|_, members| !members.is_empty());
        self.acls = acls_from_tree(tree);
    }

    /// Drops every ACL entry of the members `gone` says.
    fn forget_members(&mut self, gone: &dyn Fn(&str) -> bool) {
        let mut tree = acl_tree(&self.acls);
        for members in tree.values_mut() {
            members.retain(|m, _| !gone(m));
        }
        tree.retain(|_, members| !members.is_empty());
        self.acls = acls_from_tree(tree);
    }

    /// Removes a user with its tokens, its group memberships and its ACL entries (`pveum user
    /// delete`).
    pub fn remove_user(&mut self, userid: &str) {
        let prefix = format!("{userid}!");
        self.users.retain(|u| u.userid != userid);
        self.tokens.retain(|t| !t.tokenid.starts_with(&prefix));
        for g in &mut self.groups {
            g.users.retain(|u| u != userid);
        }
        self.forget_members(&|m| m == userid || m.starts_with(&prefix));
    }

    /// Removes a token and its ACL entries (`pveum user token remove`).
    pub fn remove_token(&mut self, tokenid: &str) {
        self.tokens.retain(|t| t.tokenid != tokenid);
        self.forget_members(&|m| m == tokenid);
    }

    /// Removes a custom role, and the role from every ACL entry (`pveum role delete`).
    pub fn remove_role(&mut self, name: &str) {
        self.roles.retain(|r| r.name != name);
        let mut tree = acl_tree(&self.acls);
        for members in tree.values_mut() {
            for granted in members.values_mut() {
                granted.remove(name);
            }
            members.retain(|_, granted| !granted.is_empty());
        }
        tree.retain(|_, members| !members.is_empty());
        self.acls = acls_from_tree(tree);
    }
}

/// `(user, token name)`: the sort key of a token.
fn token_key(tokenid: &str) -> (String, String) {
    let (user, name) = split_tokenid(tokenid).unwrap_or(("", ""));
    (user.to_string(), name.to_string())
}

fn flag(value: bool) -> &'static str {
    if value {
        "1"
    } else {
        "0"
    }
}

/// PVE writes pool members with `sort keys`, i.e. as strings.
fn sort_vmids(vms: &mut [u32]) {
    vms.sort_by_cached_key(u32::to_string);
}

// ---------------------------------------------------------------- text encoding

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Perl's `s/^\s+//; s/\s+$//` on a byte string.
fn trim_field(s: &str) -> &str {
    s.trim_matches(is_blank)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// PVE's `encode_text`: UTF-8 bytes outside 0x20..=0x7e, `%` and `:` become `%XX`;
/// additionally a space at either end becomes `%20` so that trimming cannot eat it.
fn encode_text(text: &str) -> String {
    let bytes = text.as_bytes();
    let last = bytes.len().saturating_sub(1);
    let mut out = String::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        let edge_space = b == b' ' && (i == 0 || i == last);
        if !(0x20..0x7f).contains(&b) || b == b'%' || b == b':' || edge_space {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// PVE's `decode_text`: `%XX` (either case) becomes that byte, anything else stays; the
/// bytes are then read as UTF-8 (invalid sequences become U+FFFD).
fn decode_text(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// PVE's `split_list`: items separated by `,`, `;` or whitespace.
fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|item| !item.is_empty())
}

// ---------------------------------------------------------------- identifiers

/// Group, role, privilege and pool-level names: `[A-Za-z0-9.\-_]+`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// `[A-Za-z][A-Za-z0-9.\-_]+` (realms and token names).
fn is_realm(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && s.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// `name@realm` where the name has no whitespace, `:` or `/`.
fn is_userid(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((name, realm)) => {
            !name.is_empty()
                && !name
                    .chars()
                    .any(|c| c.is_whitespace() || c == ':' || c == '/')
                && is_realm(realm)
        }
        None => false,
    }
}

/// `user@realm!name` -> (`user@realm`, `name`).
fn split_tokenid(s: &str) -> Option<(&str, &str)> {
    let (user, name) = s.rsplit_once('!')?;
    (is_userid(user) && is_realm(name)).then_some((user, name))
}

/// Pool ids: one to three `/`-separated names (nested pools exist since PVE 8.1).
fn is_poolid(s: &str) -> bool {
    let levels: Vec<&str> = s.split('/').collect();
    levels.len() <= 3 && levels.iter().all(|l| is_name(l))
}

/// Storage ids: `[a-z][a-z0-9\-_.]*[a-z0-9]`, case-insensitive.
fn is_storage_id(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) if bytes.len() >= 2 => {
            first.is_ascii_alphabetic()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// An ACL member: `@group`, `user@realm` or `user@realm!token`.
fn is_acl_member(s: &str) -> bool {
    if let Some(group) = s.strip_prefix('@') {
        if is_name(group) {
            return true;
        }
    }
    is_userid(s) || split_tokenid(s).is_some()
}

/// PVE's `normalize_path`, returning the path's segments (empty for `/`).
fn normalize_path(path: &str) -> Option<Vec<String>> {
    if path.is_empty() {
        return None;
    }
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    segments.iter().all(|s| is_name(s)).then_some(segments)
}

// ---------------------------------------------------------------- ACL tree

/// path segments -> member (`@group`, user or token) -> role -> propagate.
type AclTree = BTreeMap<Vec<String>, BTreeMap<String, BTreeMap<String, bool>>>;

fn acl_tree_insert(
    tree: &mut AclTree,
    segments: Vec<String>,
    propagate: bool,
    members: &[String],
    roles: &[String],
) {
    let members: Vec<&String> = members.iter().filter(|m| *m != ROOT_USER).collect();
    if members.is_empty() || roles.is_empty() {
        return;
    }
    let node = tree.entry(segments).or_default();
    for role in roles {
        for member in &members {
            node.entry((*member).clone())
                .or_default()
                .insert(role.clone(), propagate);
        }
    }
}

fn acl_tree(acls: &[Acl]) -> AclTree {
    let mut tree = AclTree::new();
    for acl in acls {
        if let Some(segments) = normalize_path(&acl.path) {
            acl_tree_insert(&mut tree, segments, acl.propagate, &acl.ugids, &acl.roles);
        }
    }
    tree
}

/// The ACL lines PVE writes for a tree: per path, members grouped by their role lists
/// (propagate 0 first), role lists and members sorted.
fn acls_from_tree(tree: AclTree) -> Vec<Acl> {
    let mut out = Vec::new();
    for (segments, members) in tree {
        let path = format!("/{}", segments.join("/"));
        let mut grouped: [BTreeMap<String, BTreeSet<String>>; 2] = Default::default();
        for (member, roles) in members {
            for (propagate, group) in grouped.iter_mut().enumerate() {
                let list: Vec<&str> = roles
                    .iter()
                    .filter(|(_, p)| **p == (propagate == 1))
                    .map(|(role, _)| role.as_str())
                    .collect();
                if !list.is_empty() {
                    group
                        .entry(list.join(","))
                        .or_default()
                        .insert(member.clone());
                }
            }
        }
        for (propagate, group) in grouped.into_iter().enumerate() {
            for (roles, ugids) in group {
                out.push(Acl {
                    propagate: propagate == 1,
                    path: path.clone(),
                    ugids: ugids.into_iter().collect(),
                    roles: roles.split(',').map(str::to_string).collect(),
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------- parsing

#[derive(Default)]
struct PoolEntry {
    comment: String,
    vms: Vec<u32>,
    storage: BTreeSet<String>,
}

#[derive(Default)]
struct GroupEntry {
    users: BTreeSet<String>,
    comment: String,
}

/// Accumulates entries with PVE's merge rules, then yields the canonical [`UserCfg`].
#[derive(Default)]
struct Builder {
    users: BTreeMap<String, User>,
    tokens: BTreeMap<(String, String), Token>,
    groups: BTreeMap<String, GroupEntry>,
    pools: BTreeMap<String, PoolEntry>,
    vm_owner: BTreeMap<u32, String>,
    roles: BTreeMap<String, BTreeSet<String>>,
    acl: AclTree,
    unknown: Vec<String>,
}

/// Field `i` of a split line; missing fields are empty.
fn field<'a>(fields: &[&'a str], i: usize) -> &'a str {
    fields.get(i).copied().unwrap_or("")
}

fn check_field_count(fields: &[&str], max: usize) -> Result<(), String> {
    if fields.len() > max {
        return Err(format!(
            "too many fields for a '{}' entry (at most {} expected)",
            field(fields, 0),
            max - 1
        ));
    }
    Ok(())
}

fn parse_flag(raw: &str, what: &str) -> Result<bool, String> {
    match raw {
        "" | "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("invalid {what} flag '{raw}' (expected 0 or 1)")),
    }
}

fn parse_expire(raw: &str) -> Result<u64, String> {
    if raw.is_empty() {
        return Ok(0);
    }
    if !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid expire '{raw}'"));
    }
    raw.parse().map_err(|_| format!("invalid expire '{raw}'"))
}

impl Builder {
    fn entry(&mut self, line: &str) -> Result<(), String> {
        // Like Perl's split(/:/): trailing empty fields are dropped.
        let mut fields: Vec<&str> = line.split(':').map(trim_field).collect();
        while fields.last().is_some_and(|f| f.is_empty()) {
            fields.pop();
        }
        match field(&fields, 0) {
            "user" => self.user(&fields),
            "token" => self.token(&fields),
            "group" => self.group(&fields),
            "pool" => self.pool(&fields),
            "role" => self.role(&fields),
            "acl" => self.acl(&fields),
            _ => {
                self.unknown.push(line.to_string());
                Ok(())
            }
        }
    }

    fn user(&mut self, f: &[&str]) -> Result<(), String> {
        check_field_count(f, 9)?;
        let userid = field(f, 1);
        if !is_userid(userid) {
            return Err(format!("invalid user id '{userid}'"));
        }
        let user = User {
            userid: userid.to_string(),
            enable: parse_flag(field(f, 2), "enable")?,
            expire: parse_expire(field(f, 3))?,
            firstname: decode_text(field(f, 4)),
            lastname: decode_text(field(f, 5)),
            email: decode_text(field(f, 6)),
            comment: decode_text(field(f, 7)),
            keys: decode_text(field(f, 8)),
        };
        // PVE replaces the whole user record, tokens read so far included.
        self.tokens.retain(|(owner, _), _| owner != userid);
        self.users.insert(userid.to_string(), user);
        Ok(())
    }

    fn token(&mut self, f: &[&str]) -> Result<(), String> {
        check_field_count(f, 5)?;
        let tokenid = field(f, 1);
        let Some((user, name)) = split_tokenid(tokenid) else {
            return Err(format!("invalid token id '{tokenid}'"));
        };
        let expire = parse_expire(field(f, 2))?;
        let privsep = parse_flag(field(f, 3), "privsep")?;
        if !self.users.contains_key(user) {
            return Err(format!(
                "token '{tokenid}' comes before or without its user '{user}'"
            ));
        }
        let comment = decode_text(field(f, 4));
        let token = self
            .tokens
            .entry((user.to_string(), name.to_string()))
            .or_insert_with(|| Token {
                tokenid: tokenid.to_string(),
                ..Token::default()
            });
        token.expire = expire;
        token.privsep = privsep;
        if !comment.is_empty() {
            token.comment = comment;
        }
        Ok(())
    }

    fn group(&mut self, f: &[&str]) -> Result<(), String> {
        check_field_count(f, 4)?;
        let name = field(f, 1);
        if !is_name(name) {
            return Err(format!("invalid group name '{name}'"));
        }
        let members: Vec<&str> = split_list(field(f, 2)).collect();
        if let Some(bad) = members.iter().find(|m| !is_userid(m)) {
            return Err(format!("invalid member '{bad}' in group '{name}'"));
        }
        let comment = decode_text(field(f, 3));
        let group = self.groups.entry(name.to_string()).or_default();
        group.users.extend(members.iter().map(|m| m.to_string()));
        if !comment.is_empty() {
            group.comment = comment;
        }
        Ok(())
    }

    fn pool(&mut self, f: &[&str]) -> Result<(), String> {
        check_field_count(f, 5)?;
        let poolid = field(f, 1);
        if !is_poolid(poolid) {
            return Err(format!("invalid pool id '{poolid}'"));
        }
        let mut vms = Vec::new();
        for item in split_list(field(f, 3)) {
            let vmid = item
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| item.parse::<u32>().ok())
                .flatten()
                .ok_or_else(|| format!("invalid vmid '{item}' in pool '{poolid}'"))?;
            vms.push(vmid);
        }
        let storage: Vec<&str> = split_list(field(f, 4)).collect();
        if let Some(bad) = storage.iter().find(|s| !is_storage_id(s)) {
            return Err(format!("invalid storage '{bad}' in pool '{poolid}'"));
        }
        let comment = decode_text(field(f, 2));

        // A nested pool implies its parents (PVE >= 8.1).
        let mut parent = poolid;
        while let Some((up, _)) = parent.rsplit_once('/') {
            self.pools.entry(up.to_string()).or_default();
            parent = up;
        }
        let pool = self.pools.entry(poolid.to_string()).or_default();
        if !comment.is_empty() {
            pool.comment = comment;
        }
        for vmid in vms {
            // First listing wins: a guest is in at most one pool.
            if let std::collections::btree_map::Entry::Vacant(slot) = self.vm_owner.entry(vmid) {
                slot.insert(poolid.to_string());
                pool.vms.push(vmid);
            }
        }
        pool.storage.extend(storage.iter().map(|s| s.to_string()));
        Ok(())
    }

    fn role(&mut self, f: &[&str]) -> Result<(), String> {
        check_field_count(f, 3)?;
        let name = field(f, 1);
        if !is_name(name) {
            return Err(format!("invalid role name '{name}'"));
        }
        if builtin_role_privs(name).is_some() {
            return Err(format!("role '{name}' is a built-in role"));
        }
        let privs: Vec<&str> = split_list(field(f, 2)).collect();
        if let Some(bad) = privs.iter().find(|p| !is_name(p)) {
            return Err(format!("invalid privilege '{bad}' in role '{name}'"));
        }
        self.roles
            .entry(name.to_string())
            .or_default()
            .extend(privs.iter().map(|p| p.to_string()));
        Ok(())
    }

    fn acl(&mut self, f: &[&str]) -> Result<(), String> {
        check_field_count(f, 5)?;
        let propagate = parse_flag(field(f, 1), "propagate")?;
        let path = field(f, 2);
        let segments = normalize_path(path).ok_or_else(|| format!("invalid acl path '{path}'"))?;
        let members: Vec<String> = split_list(field(f, 3)).map(str::to_string).collect();
        if let Some(bad) = members.iter().find(|m| !is_acl_member(m)) {
            return Err(format!("invalid acl member '{bad}'"));
        }
        let roles: Vec<String> = split_list(field(f, 4)).map(str::to_string).collect();
        if let Some(bad) = roles.iter().find(|r| !is_name(r)) {
            return Err(format!("invalid role name '{bad}' in acl"));
        }
        acl_tree_insert(&mut self.acl, segments, propagate, &members, &roles);
        Ok(())
    }

    fn finish(mut self) -> UserCfg {
        self.users
            .entry(ROOT_USER.to_string())
            .or_insert_with(|| User {
                userid: ROOT_USER.to_string(),
                enable: true,
                ..User::default()
            });
        UserCfg {
            users: self.users.into_values().collect(),
            tokens: self.tokens.into_values().collect(),
            groups: self
                .groups
                .into_iter()
                .map(|(name, g)| Group {
                    name,
                    users: g.users.into_iter().collect(),
                    comment: g.comment,
                })
                .collect(),
            pools: self
                .pools
                .into_iter()
                .map(|(poolid, p)| {
                    let mut vms = p.vms;
                    sort_vmids(&mut vms);
                    Pool {
                        poolid,
                        comment: p.comment,
                        vms,
                        storage: p.storage.into_iter().collect(),
                    }
                })
                .collect(),
            roles: self
                .roles
                .into_iter()
                .map(|(name, privs)| Role {
                    name,
                    privs: privs.into_iter().collect(),
                })
                .collect(),
            acls: acls_from_tree(self.acl),
            unknown: self.unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) {
        assert_eq!(got, want, "{what}");
    }

    fn parsed(text: &str) -> UserCfg {
        match UserCfg::parse(text) {
            Ok(cfg) => cfg,
            Err(err) => panic!("parse failed: {err}\n{text}"),
        }
    }

    /// `parse(to_text(x)) == x` and `to_text` is stable.
    fn check_round_trip(what: &str, cfg: &UserCfg) {
        let text = cfg.to_text();
        let again = parsed(&text);
        check(&format!("{what}: parse(to_text(x)) == x"), &again, cfg);
        check(&format!("{what}: to_text is stable"), again.to_text(), text);
    }

    /// Canonical text from its five sections (each a run of complete lines).
    fn canonical(users: &str, groups: &str, pools: &str, roles: &str, acls: &str) -> String {
        format!("{users}\n{groups}\n{pools}\n{roles}\n{acls}")
    }

    const ROOT_LINE: &str = "user:root@pam:1:0::::::\n";

    const REALISTIC: &str = "\
user:appstore@pve:1:0:App:Store:appstore@example.com:PVE App Store service account::
token:appstore@pve!store:0:1:App Store%3A pool-scoped, privsep:
user:ops@pve:1:1767225600:Ops:Team:ops@example.com:On-call %C3%A9quipe:x:
user:root@pam:1:0:::root@example.com:::

group:appstore-admins:appstore@pve,ops@pve:App Store admins:

pool:appstore:Containers managed by PVE App Store:101,102:local-lvm:
pool:scratch::::

role:AppStore:Datastore.AllocateSpace,Datastore.Audit,SDN.Use,VM.Allocate,VM.Audit,VM.Config.CPU,VM.Config.Disk,VM.Config.Memory,VM.Config.Network,VM.Config.Options,VM.PowerMgmt:

acl:1:/pool/appstore:appstore@pve!store:AppStore:
acl:1:/pool/appstore:@appstore-admins:PVEPoolAdmin:
acl:1:/sdn/zones/localnetwork/vmbr0:appstore@pve!store:PVESDNUser:
acl:0:/storage/local:appstore@pve!store:PVEDatastoreUser:
acl:1:/storage/local:@appstore-admins:PVEDatastoreAdmin:
";

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn realistic_file_round_trips_byte_for_byte() {
        let cfg = parsed(REALISTIC);
        check("to_text", cfg.to_text().as_str(), REALISTIC);
        check_round_trip("realistic", &cfg);
    }

    #[test]
    fn realistic_file_exposes_every_entry() {
        let cfg = parsed(REALISTIC);
        let userids: Vec<&str> = cfg.users().iter().map(|u| u.userid.as_str()).collect();
        check(
            "user order",
            userids,
            vec!["appstore@pve", "ops@pve", "root@pam"],
        );
        check(
            "ops user",
            cfg.user("ops@pve").cloned(),
            Some(User {
                userid: "ops@pve".into(),
                enable: true,
                expire: 1_767_225_600,
                firstname: "Ops".into(),
                lastname: "Team".into(),
                email: "ops@example.com".into(),
                comment: "On-call équipe".into(),
                keys: "x".into(),
            }),
        );
        check(
            "privsep token",
            cfg.token("appstore@pve!store").cloned(),
            Some(Token {
                tokenid: "appstore@pve!store".into(),
                expire: 0,
                privsep: true,
                comment: "App Store: pool-scoped, privsep".into(),
            }),
        );
        check("unknown token", cfg.token("appstore@pve!other"), None);
        check("token count", cfg.tokens().len(), 1);
        check(
            "group",
            cfg.group("appstore-admins").map(|g| g.users.clone()),
            Some(strings(&["appstore@pve", "ops@pve"])),
        );
        check(
            "pool appstore",
            cfg.pool("appstore").cloned(),
            Some(Pool {
                poolid: "appstore".into(),
                comment: "Containers managed by PVE App Store".into(),
                vms: vec![101, 102],
                storage: strings(&["local-lvm"]),
            }),
        );
        check(
            "empty pool",
            cfg.pool("scratch").cloned(),
            Some(Pool {
                poolid: "scratch".into(),
                ..Pool::default()
            }),
        );
        check("missing pool", cfg.pool("nope"), None);
        for (vmid, want) in [
            (101, Some("appstore")),
            (102, Some("appstore")),
            (103, None),
        ] {
            check(&format!("pool_of_vm({vmid})"), cfg.pool_of_vm(vmid), want);
        }
        for (storage, want) in [("local-lvm", Some("appstore")), ("local", None)] {
            check(
                &format!("pool_of_storage({storage})"),
                cfg.pool_of_storage(storage),
                want,
            );
        }
        check(
            "custom role",
            cfg.role("AppStore").map(|r| r.privs.len()),
            Some(11),
        );
        check(
            "built-in roles are not listed",
            cfg.role("PVEPoolAdmin"),
            None,
        );
        check("acl count", cfg.acls().len(), 5);
        check(
            "first acl",
            cfg.acls().first().cloned(),
            Some(Acl {
                propagate: true,
                path: "/pool/appstore".into(),
                ugids: strings(&["appstore@pve!store"]),
                roles: strings(&["AppStore"]),
            }),
        );
        check(
            "non-propagating storage acl",
            cfg.acls().get(3).cloned(),
            Some(Acl {
                propagate: false,
                path: "/storage/local".into(),
                ugids: strings(&["appstore@pve!store"]),
                roles: strings(&["PVEDatastoreUser"]),
            }),
        );
    }

    #[test]
    fn comments_with_colons_and_non_ascii_are_percent_encoded() {
        let cases = [
            ("plain text, with commas", "plain text, with commas"),
            ("a:b", "a%3Ab"),
            ("100%", "100%25"),
            ("équipe", "%C3%A9quipe"),
            ("日本", "%E6%97%A5%E6%9C%AC"),
            ("tab\there", "tab%09here"),
            ("two\nlines", "two%0Alines"),
            ("del\u{7f}", "del%7F"),
            (" padded ", "%20padded%20"),
            ("", ""),
        ];
        for (text, encoded) in cases {
            check(
                &format!("encode {text:?}"),
                encode_text(text).as_str(),
                encoded,
            );
            check(
                &format!("decode {encoded:?}"),
                decode_text(encoded).as_str(),
                text,
            );

            let mut cfg = UserCfg::new();
            check("add pool", cfg.add_pool("p", text), Ok(()));
            let want = canonical(ROOT_LINE, "", &format!("pool:p:{encoded}:::\n"), "", "");
            check(&format!("pool line for {text:?}"), cfg.to_text(), want);
            check_round_trip(&format!("comment {text:?}"), &cfg);
        }
    }

    #[test]
    fn decoding_is_as_lenient_as_pve() {
        let cases = [
            ("%zz", "%zz"),
            ("50%", "50%"),
            ("%4", "%4"),
            ("%c3%a9", "é"),
            ("raw é", "raw é"),
            ("%41%3a", "A:"),
            ("%FF", "\u{FFFD}"),
        ];
        for (raw, want) in cases {
            check(&format!("decode {raw:?}"), decode_text(raw).as_str(), want);
        }
    }

    #[test]
    fn first_pool_listing_of_a_vmid_wins() {
        let cfg = parsed(
            "pool:zeta::101,103::\n\
             pool:alpha::101,102,101::\n\
             pool:zeta::102::\n",
        );
        for (vmid, want) in [
            (101, Some("zeta")),
            (102, Some("alpha")),
            (103, Some("zeta")),
        ] {
            check(&format!("pool_of_vm({vmid})"), cfg.pool_of_vm(vmid), want);
        }
        let want = canonical(
            ROOT_LINE,
            "",
            "pool:alpha::102::\npool:zeta::101,103::\n",
            "",
            "",
        );
        check("duplicates dropped on write", cfg.to_text(), want);
        check_round_trip("duplicate vmids", &cfg);
    }

    #[test]
    fn non_canonical_input_is_normalized() {
        let input = "# managed by hand\r\n\
            \r\n\
            acl:1://pool//apps/:u1@pve:RoleB:\r\n\
            acl:1:/pool/apps:u1@pve:RoleA:\r\n\
            acl:1:/:root@pam:Administrator:\r\n\
            acl:0:/vms/100:u2@pve,@ops:PVEVMUser:\r\n\
            role:RoleB:VM.Audit;VM.Console:\r\n\
            role:RoleA:  Pool.Audit  :\r\n\
            role:RoleB:VM.Audit VM.Allocate:\r\n\
            pool:apps: first : 99,1000,100 :local:\r\n\
            group:ops:u2@pve::\r\n\
            group:ops:u1@pve:Operators:\r\n  \
            user : u2@pve : 1 : 0 : : : : : :  \r\n\
            user:u1@pve:0\r\n";
        let want = canonical(
            "user:root@pam:1:0::::::\nuser:u1@pve:0:0::::::\nuser:u2@pve:1:0::::::\n",
            "group:ops:u1@pve,u2@pve:Operators:\n",
            "pool:apps:first:100,1000,99:local:\n",
            "role:RoleA:Pool.Audit:\nrole:RoleB:VM.Allocate,VM.Audit,VM.Console:\n",
            "acl:1:/pool/apps:u1@pve:RoleA,RoleB:\nacl:0:/vms/100:@ops,u2@pve:PVEVMUser:\n",
        );
        let cfg = parsed(input);
        check("normalized text", cfg.to_text(), want);
        check(
            "vmids in PVE order",
            cfg.pool("apps").map(|p| p.vms.clone()),
            Some(vec![100, 1000, 99]),
        );
        check_round_trip("normalized", &cfg);
    }

    #[test]
    fn repeated_entries_merge_like_pve() {
        let cases = [
            (
                "a repeated user replaces the earlier one and its tokens",
                "user:a@pve:1:0::::old::\ntoken:a@pve!t1x:0:1::\n\
                 user:a@pve:0:0::::new::\ntoken:a@pve!t2x:0:0::\n",
                canonical(
                    "user:a@pve:0:0::::new::\ntoken:a@pve!t2x:0:0::\nuser:root@pam:1:0::::::\n",
                    "",
                    "",
                    "",
                    "",
                ),
            ),
            (
                "a repeated token updates flags and keeps a non-empty comment",
                "user:a@pve:1:0::::::\ntoken:a@pve!tk:0:1:first:\ntoken:a@pve!tk:5:0::\n",
                canonical(
                    "user:a@pve:1:0::::::\ntoken:a@pve!tk:5:0:first:\nuser:root@pam:1:0::::::\n",
                    "",
                    "",
                    "",
                    "",
                ),
            ),
            (
                "tokens follow their user sorted by name",
                "user:a@pve:1:0::::::\ntoken:a@pve!zz:0:1::\ntoken:a@pve!aa:0:1::\n",
                canonical(
                    "user:a@pve:1:0::::::\ntoken:a@pve!aa:0:1::\ntoken:a@pve!zz:0:1::\nuser:root@pam:1:0::::::\n",
                    "",
                    "",
                    "",
                    "",
                ),
            ),
            (
                "a repeated pool merges members and keeps a non-empty comment",
                "pool:p:one:::\npool:p::101:local:\n",
                canonical(ROOT_LINE, "", "pool:p:one:101:local:\n", "", ""),
            ),
            (
                "a nested pool implies its parents",
                "pool:a/b/c:::\n",
                canonical(ROOT_LINE, "", "pool:a::::\npool:a/b::::\npool:a/b/c::::\n", "", ""),
            ),
            (
                "a later acl entry overrides the propagate flag",
                "acl:1:/:u@pve:R:\nacl:0:/:u@pve:R:\n",
                canonical(ROOT_LINE, "", "", "", "acl:0:/:u@pve:R:\n"),
            ),
            (
                "acl members with the same roles share a line",
                "acl:1:/storage/x:b@pve:R:\nacl:1:/storage/x:a@pve!tk:R:\nacl:1:/storage/x:c@pve:S:\n",
                canonical(
                    ROOT_LINE,
                    "",
                    "",
                    "",
                    "acl:1:/storage/x:a@pve!tk,b@pve:R:\nacl:1:/storage/x:c@pve:S:\n",
                ),
            ),
            (
                "acl paths are written parents first",
                "acl:1:/a-c:u@pve:R:\nacl:1:/a/b:u@pve:R:\nacl:1:/a:u@pve:R:\nacl:1:/:u@pve:R:\n",
                canonical(
                    ROOT_LINE,
                    "",
                    "",
                    "",
                    "acl:1:/:u@pve:R:\nacl:1:/a:u@pve:R:\nacl:1:/a/b:u@pve:R:\nacl:1:/a-c:u@pve:R:\n",
                ),
            ),
            (
                "unknown entry types are kept after the acls",
                "frobnicate:a:b:\nacl:1:/:u@pve:R:\nfuture:x\n",
                canonical(ROOT_LINE, "", "", "", "acl:1:/:u@pve:R:\nfrobnicate:a:b:\nfuture:x\n"),
            ),
            ("an empty file still has root@pam", "", canonical(ROOT_LINE, "", "", "", "")),
        ];
        for (what, input, want) in cases {
            let cfg = parsed(input);
            check(what, cfg.to_text(), want);
            check_round_trip(what, &cfg);
        }
    }

    #[test]
    fn unknown_entries_are_kept_but_ignored() {
        let cfg = parsed("frobnicate:a:b:\npool:p:::\n");
        check(
            "unknown lines",
            cfg.unknown_lines().to_vec(),
            strings(&["frobnicate:a:b:"]),
        );
        check("pools", cfg.pools().len(), 1);
        check("new() is an empty file", UserCfg::new(), parsed(""));
        check("default() is new()", UserCfg::default(), UserCfg::new());
    }

    #[test]
    fn malformed_lines_are_errors_with_line_numbers() {
        let cases = [
            ("user:nobody:1:0::::::\n", 1, "invalid user id 'nobody'"),
            (
                "\n# note\nuser:a@pve:2:0::::::\n",
                3,
                "invalid enable flag '2' (expected 0 or 1)",
            ),
            ("user:a@pve:1:soon::::::\n", 1, "invalid expire 'soon'"),
            (
                "user:a@pve:1:0:a:b:c:d:e:f:\n",
                1,
                "too many fields for a 'user' entry (at most 8 expected)",
            ),
            (
                "token:a@pve!tk:0:1::\nuser:a@pve:1:0::::::\n",
                1,
                "token 'a@pve!tk' comes before or without its user 'a@pve'",
            ),
            (
                "user:a@pve:1:0::::::\ntoken:a@pve:0:1::\n",
                2,
                "invalid token id 'a@pve'",
            ),
            (
                "user:a@pve:1:0::::::\ntoken:a@pve!t:0:1::\n",
                2,
                "invalid token id 'a@pve!t'",
            ),
            (
                "user:a@pve:1:0::::::\ntoken:a@pve!tk:0:on::\n",
                2,
                "invalid privsep flag 'on' (expected 0 or 1)",
            ),
            (
                "group:g:nobody::\n",
                1,
                "invalid member 'nobody' in group 'g'",
            ),
            ("group:bad/name:::\n", 1, "invalid group name 'bad/name'"),
            ("pool:p::10x::\n", 1, "invalid vmid '10x' in pool 'p'"),
            (
                "pool:p::4294967296::\n",
                1,
                "invalid vmid '4294967296' in pool 'p'",
            ),
            ("pool:p::+5::\n", 1, "invalid vmid '+5' in pool 'p'"),
            ("pool:bad name:::\n", 1, "invalid pool id 'bad name'"),
            ("pool:a/b/c/d:::\n", 1, "invalid pool id 'a/b/c/d'"),
            ("pool:p:::-x:\n", 1, "invalid storage '-x' in pool 'p'"),
            (
                "role:PVEAdmin:VM.Audit:\n",
                1,
                "role 'PVEAdmin' is a built-in role",
            ),
            (
                "role:r:VM.Audit,Bad$:\n",
                1,
                "invalid privilege 'Bad$' in role 'r'",
            ),
            (
                "acl:yes:/:u@pve:R:\n",
                1,
                "invalid propagate flag 'yes' (expected 0 or 1)",
            ),
            ("acl:1::u@pve:R:\n", 1, "invalid acl path ''"),
            (
                "acl:1:/pool/a b:u@pve:R:\n",
                1,
                "invalid acl path '/pool/a b'",
            ),
            ("acl:1:/:nobody:R:\n", 1, "invalid acl member 'nobody'"),
            (
                "acl:1:/:u@pve:Bad$:\n",
                1,
                "invalid role name 'Bad$' in acl",
            ),
            (REALISTIC_WITH_BAD_LAST_LINE, 21, "invalid acl member 'x'"),
        ];
        for (input, line, message) in cases {
            let want = UserCfgError {
                line,
                message: message.to_string(),
            };
            check(
                &format!("parse {input:?}"),
                UserCfg::parse(input),
                Err(want),
            );
        }
        let err = UserCfg::parse("pool:p::x::").err().map(|e| e.to_string());
        check(
            "display",
            err.as_deref(),
            Some("user.cfg line 1: invalid vmid 'x' in pool 'p'"),
        );
    }

    const REALISTIC_WITH_BAD_LAST_LINE: &str = concat!(
        "user:appstore@pve:1:0:App:Store:appstore@example.com:PVE App Store service account::\n",
        "token:appstore@pve!store:0:1:App Store%3A pool-scoped, privsep:\n",
        "user:ops@pve:1:1767225600:Ops:Team:ops@example.com:On-call %C3%A9quipe:x:\n",
        "user:root@pam:1:0:::root@example.com:::\n",
        "\n",
        "group:appstore-admins:appstore@pve,ops@pve:App Store admins:\n",
        "\n",
        "pool:appstore:Containers managed by PVE App Store:101,102:local-lvm:\n",
        "pool:scratch::::\n",
        "\n",
        "role:AppStore:VM.Allocate:\n",
        "\n",
        "acl:1:/pool/appstore:appstore@pve!store:AppStore:\n",
        "acl:1:/pool/appstore:@appstore-admins:PVEPoolAdmin:\n",
        "acl:1:/sdn/zones/localnetwork/vmbr0:appstore@pve!store:PVESDNUser:\n",
        "acl:0:/storage/local:appstore@pve!store:PVEDatastoreUser:\n",
        "acl:1:/storage/local:@appstore-admins:PVEDatastoreAdmin:\n",
        "\n",
        "# trailing notes\n",
        "\n",
        "acl:1:/vms/101:x:PVEVMUser:\n",
    );

    type Step = fn(&mut UserCfg) -> Result<(), String>;

    /// propagate, path, ugids, roles, expected ACL section.
    type AclStep = (
        bool,
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static str,
    );

    #[test]
    fn pool_operations_follow_pve_and_report_its_errors() {
        let steps: &[(&str, Step, Result<(), &str>)] = &[
            ("create", |c| c.add_pool("apps", "App Store"), Ok(())),
            (
                "create twice",
                |c| c.add_pool("apps", ""),
                Err("pool 'apps' already exists"),
            ),
            (
                "invalid id",
                |c| c.add_pool("a:b", ""),
                Err("invalid pool ID 'a:b'"),
            ),
            (
                "too deep",
                |c| c.add_pool("a/b/c/d", ""),
                Err("invalid pool ID 'a/b/c/d'"),
            ),
            (
                "orphan child",
                |c| c.add_pool("x/y", ""),
                Err("parent pool 'x' does not exist"),
            ),
            ("child", |c| c.add_pool("apps/web", ""), Ok(())),
            (
                "vm into missing pool",
                |c| c.add_vm_to_pool("nope", 101),
                Err("pool 'nope' does not exist"),
            ),
            ("vm", |c| c.add_vm_to_pool("apps", 101), Ok(())),
            (
                "vm twice",
                |c| c.add_vm_to_pool("apps", 101),
                Err("VM 101 is already a pool member"),
            ),
            (
                "vm into a second pool",
                |c| c.add_vm_to_pool("apps/web", 101),
                Err("VM 101 belongs already to pool 'apps'"),
            ),
            (
                "storage",
                |c| c.add_storage_to_pool("apps", "local-lvm"),
                Ok(()),
            ),
            (
                "storage twice",
                |c| c.add_storage_to_pool("apps", "local-lvm"),
                Err("Storage 'local-lvm' is already a pool member"),
            ),
            (
                "invalid storage",
                |c| c.add_storage_to_pool("apps", "-x"),
                Err("invalid storage ID '-x'"),
            ),
            (
                "storage into missing pool",
                |c| c.add_storage_to_pool("nope", "local"),
                Err("pool 'nope' does not exist"),
            ),
            (
                "storage in a second pool",
                |c| c.add_storage_to_pool("apps/web", "local-lvm"),
                Ok(()),
            ),
            (
                "remove missing",
                |c| c.remove_pool("nope"),
                Err("pool 'nope' does not exist"),
            ),
            (
                "remove with vm",
                |c| c.remove_pool("apps"),
                Err("pool 'apps' is not empty (contains VM 101)"),
            ),
            (
                "remove vm",
                |c| {
                    c.remove_vm(101);
                    c.remove_vm(999);
                    Ok(())
                },
                Ok(()),
            ),
            (
                "remove with storage",
                |c| c.remove_pool("apps"),
                Err("pool 'apps' is not empty (contains storage 'local-lvm')"),
            ),
            (
                "drop storage",
                |c| c.remove_storage_from_pool("apps", "local-lvm"),
                Ok(()),
            ),
            (
                "drop storage twice",
                |c| c.remove_storage_from_pool("apps", "local-lvm"),
                Err("Storage 'local-lvm' is not a pool member"),
            ),
            (
                "remove with child",
                |c| c.remove_pool("apps"),
                Err("pool 'apps' is not empty (contains pool 'apps/web')"),
            ),
            (
                "drop child storage",
                |c| c.remove_storage_from_pool("apps/web", "local-lvm"),
                Ok(()),
            ),
            ("remove child", |c| c.remove_pool("apps/web"), Ok(())),
            ("vm again", |c| c.add_vm_to_pool("apps", 1000), Ok(())),
            ("vm order", |c| c.add_vm_to_pool("apps", 999), Ok(())),
        ];
        let mut cfg = UserCfg::new();
        for (what, step, want) in steps {
            check(what, step(&mut cfg), want.map_err(str::to_string));
            check_round_trip(what, &cfg);
        }
        check("final pools", cfg.pools().len(), 1);
        check(
            "vms sorted as PVE does",
            cfg.pool("apps").map(|p| p.vms.clone()),
            Some(vec![1000, 999]),
        );
        check("pool_of_vm", cfg.pool_of_vm(999), Some("apps"));
        check("removed vm", cfg.pool_of_vm(101), None);
        check(
            "text",
            cfg.to_text(),
            canonical(ROOT_LINE, "", "pool:apps:App Store:1000,999::\n", "", ""),
        );
    }

    #[test]
    fn removing_a_pool_or_guest_drops_its_acls() {
        let mut cfg = parsed(REALISTIC);
        cfg.add_acl(Acl {
            propagate: true,
            path: "/vms/101".into(),
            ugids: strings(&["ops@pve"]),
            roles: strings(&["PVEVMUser"]),
        });
        cfg.remove_vm_access(101);
        check("vm left its pool", cfg.pool_of_vm(101), None);
        check(
            "vm acl gone",
            cfg.acls().iter().any(|a| a.path == "/vms/101"),
            false,
        );

        check(
            "appstore still holds a guest",
            cfg.remove_pool("appstore"),
            Err("pool 'appstore' is not empty (contains VM 102)".to_string()),
        );
        cfg.remove_vm(102);
        check(
            "storage left",
            cfg.remove_storage_from_pool("appstore", "local-lvm"),
            Ok(()),
        );
        check("remove pool", cfg.remove_pool("appstore"), Ok(()));
        let paths: Vec<&str> = cfg.acls().iter().map(|a| a.path.as_str()).collect();
        check(
            "pool acls gone, others kept",
            paths,
            vec![
                "/sdn/zones/localnetwork/vmbr0",
                "/storage/local",
                "/storage/local",
            ],
        );
        check_round_trip("after removals", &cfg);
    }

    #[test]
    fn users_tokens_roles_and_acls_are_upserted() {
        let mut cfg = UserCfg::new();
        let user = User {
            userid: "appstore@pve".into(),
            enable: true,
            comment: "App Store: service".into(),
            ..User::default()
        };
        let token = Token {
            tokenid: "appstore@pve!store".into(),
            privsep: true,
            ..Token::default()
        };

        cfg.add_token(token.clone());
        check(
            "token without its user is ignored",
            cfg.token("appstore@pve!store"),
            None,
        );
        cfg.add_user(User {
            userid: "no-realm".into(),
            ..User::default()
        });
        check("invalid user is ignored", cfg.users().len(), 1);
        cfg.add_token(Token {
            tokenid: "appstore@pve".into(),
            ..Token::default()
        });
        check("invalid token is ignored", cfg.tokens().len(), 0);

        cfg.add_user(user.clone());
        cfg.add_token(token.clone());
        check("token added", cfg.token("appstore@pve!store"), Some(&token));
        cfg.add_user(User {
            enable: false,
            ..user.clone()
        });
        check(
            "user replaced",
            cfg.user("appstore@pve").map(|u| u.enable),
            Some(false),
        );
        check("tokens survive a user update", cfg.tokens().len(), 1);
        cfg.add_token(Token {
            privsep: false,
            ..token.clone()
        });
        check(
            "token replaced",
            cfg.token("appstore@pve!store").map(|t| t.privsep),
            Some(false),
        );

        cfg.add_role("PVEAdmin", &["VM.Audit"]);
        check("built-in role is ignored", cfg.roles().len(), 0);
        cfg.add_role(
            "AppStore",
            &[
                "VM.Audit",
                "VM.Allocate,VM.Config.Disk",
                "Bad:Priv",
                "VM.Audit",
            ],
        );
        check(
            "role privs split, filtered, sorted",
            cfg.role("AppStore").map(|r| r.privs.clone()),
            Some(strings(&["VM.Allocate", "VM.Audit", "VM.Config.Disk"])),
        );
        cfg.add_role("AppStore", &["Pool.Audit"]);
        check(
            "role replaced",
            cfg.role("AppStore").map(|r| r.privs.clone()),
            Some(strings(&["Pool.Audit"])),
        );

        let acl_steps: &[AclStep] = &[
            (true, "/pool/apps/", &["appstore@pve!store"], &["AppStore"], "acl:1:/pool/apps:appstore@pve!store:AppStore:\n"),
            (
                true,
                "pool/apps",
                &["appstore@pve!store"],
                &["PVEPoolUser"],
                "acl:1:/pool/apps:appstore@pve!store:AppStore,PVEPoolUser:\n",
            ),
            (
                false,
                "/pool/apps",
                &["appstore@pve!store"],
                &["PVEPoolUser"],
                "acl:0:/pool/apps:appstore@pve!store:PVEPoolUser:\nacl:1:/pool/apps:appstore@pve!store:AppStore:\n",
            ),
            (
                true,
                "/pool/apps",
                &["root@pam", "bogus", "@ops,appstore@pve"],
                &["AppStore", "Bad$"],
                "acl:0:/pool/apps:appstore@pve!store:PVEPoolUser:\nacl:1:/pool/apps:@ops,appstore@pve,appstore@pve!store:AppStore:\n",
            ),
            (
                true,
                "/bad path",
                &["appstore@pve"],
                &["AppStore"],
                "acl:0:/pool/apps:appstore@pve!store:PVEPoolUser:\nacl:1:/pool/apps:@ops,appstore@pve,appstore@pve!store:AppStore:\n",
            ),
        ];
        for (propagate, path, ugids, roles, want_acls) in acl_steps {
            cfg.add_acl(Acl {
                propagate: *propagate,
                path: path.to_string(),
                ugids: strings(ugids),
                roles: strings(roles),
            });
            let want = canonical(
                "user:appstore@pve:0:0::::App Store%3A service::\n\
                 token:appstore@pve!store:0:0::\n\
                 user:root@pam:1:0::::::\n",
                "",
                "",
                "role:AppStore:Pool.Audit:\n",
                want_acls,
            );
            check(&format!("acl {path} {roles:?}"), cfg.to_text(), want);
            check_round_trip(&format!("acl {path}"), &cfg);
        }
    }

    #[test]
    fn release_9_drops_vm_monitor_and_knows_the_guest_agent_privileges() {
        use crate::PveVersion;
        assert!(check_privileges(PveVersion::V8_4, &["VM.Monitor", "VM.Audit"]).is_ok());
        assert_eq!(
            check_privileges(PveVersion::V9_1, &["VM.Audit", "VM.Monitor"]),
            Err("invalid privilege 'VM.Monitor'".to_string())
        );
        assert!(
            check_privileges(PveVersion::V9_0, &["VM.GuestAgent.Audit", "VM.Replicate"]).is_ok()
        );
        assert!(check_privileges(PveVersion::V8_4, &["VM.Replicate"]).is_err());
        let nine = privileges(PveVersion::V9_1);
        assert!(nine.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
    }

    #[test]
    fn builtin_roles_match_pve_8() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            (
                "PVEDatastoreUser",
                Some(&["Datastore.AllocateSpace", "Datastore.Audit"]),
            ),
            ("PVESDNUser", Some(&["SDN.Audit", "SDN.Use"])),
            ("PVEPoolUser", Some(&["Pool.Audit"])),
            ("PVEPoolAdmin", Some(&["Pool.Allocate", "Pool.Audit"])),
            ("PVETemplateUser", Some(&["VM.Audit", "VM.Clone"])),
            (
                "PVEVMUser",
                Some(&[
                    "VM.Audit",
                    "VM.Backup",
                    "VM.Config.CDROM",
                    "VM.Config.Cloudinit",
                    "VM.Console",
                    "VM.PowerMgmt",
                ]),
            ),
            (
                "PVEAuditor",
                Some(&[
                    "Datastore.Audit",
                    "Mapping.Audit",
                    "Pool.Audit",
                    "SDN.Audit",
                    "Sys.Audit",
                    "VM.Audit",
                ]),
            ),
            ("NoAccess", Some(&[])),
            ("AppStore", None),
            ("pveadmin", None),
        ];
        for (name, want) in cases {
            check(name, builtin_role_privs(name), *want);
        }

        let count = |name: &str| builtin_role_privs(name).map(<[&str]>::len);
        check("Administrator", count("Administrator"), Some(42));
        check("PVEAdmin", count("PVEAdmin"), Some(35));
        check("PVEVMAdmin", count("PVEVMAdmin"), Some(18));

        let admin = builtin_role_privs("PVEAdmin").unwrap_or_default();
        for missing in [
            "Sys.Modify",
            "Sys.PowerMgmt",
            "Sys.Incoming",
            "Sys.AccessNetwork",
            "Realm.Allocate",
            "Permissions.Modify",
            "Mapping.Modify",
        ] {
            check(
                &format!("PVEAdmin lacks {missing}"),
                admin.contains(&missing),
                false,
            );
        }

        let all = builtin_role_privs("Administrator").unwrap_or_default();
        for (name, privs) in BUILTIN_ROLES {
            let mut sorted = privs.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            check(
                &format!("{name} is sorted and unique"),
                sorted.as_slice(),
                *privs,
            );
            for p in *privs {
                check(
                    &format!("{name}: {p} is a known privilege"),
                    all.contains(p),
                    true,
                );
            }
        }
    }
}
