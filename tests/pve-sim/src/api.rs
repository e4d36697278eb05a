//! The simulated API: one handler per endpoint of the schema subset, answering as a PVE 8.x node does,
//! errors included (permission failures with the path and privilege, runtime failures as 500 with
//! PVE's words, asynchronous work as tasks).

use crate::acl::{self, Caller};
use crate::backend::Backend;
use crate::state::{digest, SimRoot};
use crate::tasks::Tasks;
use crate::user_cfg::UserCfg;
use crate::PveVersion;
use appstore_core::pve_config::{ConfigSection, PveConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// An API failure: HTTP status, message (its first line is the reason phrase) and per-parameter errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiErr {
    /// HTTP status.
    pub status: u16,
    /// Message.
    pub message: String,
    /// Parameter errors (400).
    pub errors: BTreeMap<String, String>,
}

impl ApiErr {
    /// A 500 with PVE's text.
    pub fn runtime(message: impl Into<String>) -> Self {
        ApiErr {
            status: 500,
            message: message.into(),
            errors: BTreeMap::new(),
        }
    }

    /// A 403 "Permission check failed (...)".
    pub fn perm(detail: impl Into<String>) -> Self {
        ApiErr {
            status: 403,
            message: format!("Permission check failed ({})", detail.into()),
            errors: BTreeMap::new(),
        }
    }

    /// A 400 for one parameter.
    pub fn param(name: &str, message: impl Into<String>) -> Self {
        let mut errors = BTreeMap::new();
        errors.insert(name.to_string(), message.into());
        ApiErr {
            status: 400,
            message: "Parameter verification failed.".into(),
            errors,
        }
    }
}

/// Everything a handler needs.
#[derive(Debug)]
pub struct Node {
    /// Files.
    pub root: SimRoot,
    /// Emulated version.
    pub version: PveVersion,
    /// Delay before each task does its work.
    pub task_latency: Duration,
    /// Tasks.
    pub tasks: Tasks,
    /// Container back end.
    pub backend: Arc<dyn Backend>,
    /// SHA-256 fingerprint of the API certificate, when serving TLS.
    pub fingerprint: Option<String>,
    /// The containers' RRD data.
    pub rrd: crate::metrics::Rrd,
}

/// Storages of the simulated node: (id, type, content).
pub const STORAGES: &[(&str, &str, &str)] = &[
    ("local", "dir", "backup,iso,vztmpl"),
    ("local-lvm", "lvmthin", "images,rootdir"),
];
/// Bridges of the simulated node.
pub const BRIDGES: &[&str] = &["vmbr0", "vmbr1"];
/// Appliance templates `aplinfo` offers on 9.x besides [`APPLIANCES`].
pub const APPLIANCES_9: &[(&str, &str, &str)] = &[(
    "debian-13-standard_13.1-2_amd64.tar.zst",
    "debian-13",
    "Debian 13 Trixie (standard)",
)];
/// Appliance templates `aplinfo` offers: (template file, os, headline).
pub const APPLIANCES: &[(&str, &str, &str)] = &[
    (
        "debian-12-standard_12.7-1_amd64.tar.zst",
        "debian-12",
        "Debian 12 Bookworm (standard)",
    ),
    (
        "debian-11-standard_11.7-1_amd64.tar.zst",
        "debian-11",
        "Debian 11 Bullseye (standard)",
    ),
    (
        "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
        "ubuntu-24.04",
        "Ubuntu 24.04 Noble (standard)",
    ),
    (
        "alpine-3.20-default_20240908_amd64.tar.xz",
        "alpine-3.20",
        "Alpine Linux 3.20 (default)",
    ),
];

type Params = BTreeMap<String, String>;

fn get<'a>(p: &'a Params, k: &str) -> Option<&'a str> {
    p.get(k).map(String::as_str)
}

fn flag(p: &Params, k: &str) -> bool {
    get(p, k) == Some("1")
}

use crate::ops::vmid_of;

impl Node {
    pub(crate) fn users(&self) -> Result<UserCfg, ApiErr> {
        UserCfg::parse(&self.root.read_user_cfg_text()).map_err(|e| ApiErr::runtime(e.to_string()))
    }

    pub(crate) fn modify_users(
        &self,
        f: impl FnOnce(&mut UserCfg) -> Result<(), String>,
    ) -> Result<(), ApiErr> {
        let _lock = self
            .root
            .lock_users()
            .map_err(|e| ApiErr::runtime(e.to_string()))?;
        let mut users = self.users()?;
        f(&mut users).map_err(ApiErr::runtime)?;
        crate::state::write_atomic(&self.root.user_cfg_path(), users.to_text().as_bytes())
            .map_err(|e| ApiErr::runtime(e.to_string()))
    }

    fn require(
        &self,
        users: &UserCfg,
        caller: &Caller,
        path: &str,
        privilege: &str,
    ) -> Result<(), ApiErr> {
        if acl::has(users, caller, path, privilege) {
            Ok(())
        } else {
            Err(ApiErr::perm(format!("{path}, {privilege}")))
        }
    }

    pub(crate) fn conf(&self, vmid: u32) -> Result<(PveConfig, String), ApiErr> {
        self.root.read_conf(vmid).ok_or_else(|| {
            ApiErr::runtime(format!(
                "Configuration file 'nodes/{}/lxc/{vmid}.conf' does not exist",
                self.root.node()
            ))
        })
    }

    fn check_node(&self, p: &Params) -> Result<(), ApiErr> {
        match get(p, "node") {
            Some(n) if n != self.root.node() => Err(ApiErr {
                status: 500,
                message: format!("hostname lookup '{n}' failed - failed to get address info for: {n}: Name or service not known"),
                errors: BTreeMap::new(),
            }),
            _ => Ok(()),
        }
    }

    /// Runs `work` as a task after the configured latency; returns the UPID at once. Work that must
    /// undo itself on failure (create) does so inside `work`; an injected failure runs no work.
    pub(crate) fn task(
        &self,
        kind: &str,
        id: &str,
        caller: &Caller,
        work: impl FnOnce(&Tasks, &str) -> Result<(), String> + Send + 'static,
    ) -> Value {
        let upid = self
            .tasks
            .start(self.root.node(), kind, id, &caller.tokenid);
        let tasks = self.tasks.clone();
        let latency = self.task_latency;
        let u = upid.clone();
        // A test can make the next task of a kind fail with PVE's words: `sim/fail/<kind>` holds them.
        let injected = self.root.path().join("sim/fail").join(kind);
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(latency);
            let result = match std::fs::read_to_string(&injected) {
                Ok(msg) => {
                    let _ = std::fs::remove_file(&injected);
                    let msg = msg.trim().to_string();
                    tasks.log(&u, msg.clone());
                    Err(msg)
                }
                Err(_) => work(&tasks, &u),
            };
            tasks.finish(&u, result);
        });
        Value::String(upid)
    }

    /// Dispatches one validated, authorised request.
    pub fn handle(
        self: &Arc<Self>,
        method: &str,
        template: &str,
        p: &Params,
        caller: &Caller,
    ) -> Result<Value, ApiErr> {
        self.check_node(p)?;
        let users = self.users()?;
        match (method, template) {
            ("GET", "/version") => Ok(json!({"version": self.version.full(), "release": self.version.release(), "repoid": "5e1b7d2b"})),
            ("GET", "/nodes") => Ok(json!([{
                "node": self.root.node(), "status": "online", "type": "node", "id": format!("node/{}", self.root.node()),
                "maxcpu": 2, "maxmem": 24u64 << 30, "mem": 4u64 << 30, "uptime": 86400, "level": "",
                "ssl_fingerprint": self.fingerprint,
            }])),
            ("GET", "/cluster/nextid") => self.nextid(p, &users),
            ("GET", "/cluster/resources") => Ok(self.resources(p, &users, caller)),
            ("GET", "/access/permissions") => Ok(self.permissions(p, &users, caller)),
            ("GET", "/pools") => self.pools_list(p, &users, caller),
            ("POST", "/pools") => {
                let id = get(p, "poolid").unwrap_or_default().to_string();
                let comment = get(p, "comment").unwrap_or_default().to_string();
                self.modify_users(|u| u.add_pool(&id, &comment)).map(|()| Value::Null)
            }
            ("PUT", "/pools") => self.pool_update(get(p, "poolid").unwrap_or_default(), p, &users, caller),
            ("PUT", "/pools/{poolid}") => self.pool_update(get(p, "poolid").unwrap_or_default(), p, &users, caller),
            ("DELETE", "/pools") => {
                let id = get(p, "poolid").unwrap_or_default().to_string();
                self.modify_users(|u| u.remove_pool(&id)).map(|()| Value::Null)
            }
            ("GET", "/pools/{poolid}") => {
                let id = get(p, "poolid").unwrap_or_default();
                let pool = users.pool(id).ok_or_else(|| ApiErr::runtime(format!("pool '{id}' does not exist")))?;
                Ok(json!({"comment": pool.comment, "members": self.pool_members(&users, id)}))
            }
            ("GET", "/nodes/{node}/storage") => Ok(self.storages(p, &users, caller)),
            ("GET", "/nodes/{node}/storage/{storage}/content") => self.storage_content(p, &users, caller),
            ("GET", "/nodes/{node}/aplinfo") => Ok(Value::Array(
                self.appliances()
                    .iter()
                    .map(|(t, os, h)| {
                        let (package, version) = t.rsplit_once('_').and_then(|(a, _)| a.rsplit_once('_')).unwrap_or((t, ""));
                        json!({"template": t, "os": os, "headline": h, "package": package, "version": version, "section": "system", "type": "lxc", "source": format!("http://download.proxmox.com/images/system/{t}")})
                    })
                    .collect(),
            )),
            ("POST", "/nodes/{node}/aplinfo") => self.download_template(p, caller),
            ("GET", "/nodes/{node}/network") => Ok(self.network(p, &users, caller)),
            ("GET", "/nodes/{node}/lxc") => Ok(self.lxc_list(&users, caller)),
            ("POST", "/nodes/{node}/lxc") if flag(p, "restore") => self.restore(p, &users, caller),
            ("POST", "/nodes/{node}/lxc") => self.create(p, &users, caller),
            ("DELETE", "/nodes/{node}/lxc/{vmid}") => self.destroy(p, caller),
            ("GET", "/nodes/{node}/lxc/{vmid}/config") => {
                let vmid = vmid_of(p)?;
                let (conf, raw) = self.conf(vmid)?;
                Ok(config_json(conf.current(), &raw))
            }
            ("PUT", "/nodes/{node}/lxc/{vmid}/config") => self.update_config(p, &users, caller),
            ("GET", "/nodes/{node}/lxc/{vmid}/status/current") => self.status(p),
            ("POST", "/nodes/{node}/lxc/{vmid}/status/start") => self.power(p, caller, "vzstart"),
            ("POST", "/nodes/{node}/lxc/{vmid}/status/stop") => self.power(p, caller, "vzstop"),
            ("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown") => self.power(p, caller, "vzshutdown"),
            ("POST", "/nodes/{node}/lxc/{vmid}/status/reboot") => self.power(p, caller, "vzreboot"),
            ("GET", "/nodes/{node}/lxc/{vmid}/interfaces") => {
                let vmid = vmid_of(p)?;
                self.conf(vmid)?;
                Ok(match self.backend.interfaces(vmid) {
                    None => Value::Null,
                    Some(ifs) => Value::Array(
                        ifs.into_iter()
                            .map(|i| {
                                let mut v = json!({"name": i.name, "hwaddr": i.hwaddr, "hardware-address": i.hwaddr});
                                if let Some(a) = i.inet {
                                    v["inet"] = json!(a);
                                }
                                if let Some(a) = i.inet6 {
                                    v["inet6"] = json!(a);
                                }
                                v
                            })
                            .collect(),
                    ),
                })
            }
            ("POST", "/nodes/{node}/lxc/{vmid}/move_volume") => self.move_volume(p, &users, caller),
            ("GET", "/nodes/{node}/lxc/{vmid}/snapshot") => self.snapshots(p),
            ("GET", "/nodes/{node}/lxc/{vmid}/rrddata") => self.rrddata(p),
            ("PUT", "/nodes/{node}/lxc/{vmid}/resize") => self.resize(p, caller),
            ("POST", "/nodes/{node}/vzdump") => self.vzdump(p, &users, caller),
            ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}") => self.delete_volume(p, &users, caller),
            ("POST", "/nodes/{node}/lxc/{vmid}/snapshot") => self.snapshot_create(p, caller),
            ("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}") => self.snapshot_delete(p, caller),
            ("POST", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback") => self.snapshot_rollback(p, caller),
            ("GET", "/nodes/{node}/tasks/{upid}/status") => {
                let t = self.task_of(p, &users, caller)?;
                let mut v = json!({"upid": t.upid, "node": self.root.node(), "pid": t.pid, "pstart": 0, "starttime": t.starttime,
                    "type": t.kind, "id": t.id, "user": t.user, "status": if t.exitstatus.is_some() { "stopped" } else { "running" }});
                if let Some(e) = t.exitstatus {
                    v["exitstatus"] = json!(e);
                }
                Ok(v)
            }
            ("GET", "/nodes/{node}/tasks/{upid}/log") => {
                let t = self.task_of(p, &users, caller)?;
                let start: usize = get(p, "start").and_then(|s| s.parse().ok()).unwrap_or(0);
                let limit: usize = get(p, "limit").and_then(|s| s.parse().ok()).unwrap_or(50);
                let lines: Vec<Value> = t.log.iter().enumerate().skip(start).take(limit).map(|(i, l)| json!({"n": i + 1, "t": l})).collect();
                Ok(json!({"__total": t.log.len(), "__data": lines}))
            }
            _ => Err(ApiErr { status: 501, message: format!("Method '{method} {template}' not implemented"), errors: BTreeMap::new() }),
        }
    }

    fn task_of(
        &self,
        p: &Params,
        users: &UserCfg,
        caller: &Caller,
    ) -> Result<crate::tasks::Task, ApiErr> {
        let upid = get(p, "upid").unwrap_or_default();
        let t = self
            .tasks
            .get(upid)
            .ok_or_else(|| ApiErr::runtime(format!("no such task '{upid}'")))?;
        if t.user != caller.tokenid
            && !acl::has(
                users,
                caller,
                &format!("/nodes/{}", self.root.node()),
                "Sys.Audit",
            )
        {
            return Err(ApiErr::perm(format!(
                "/nodes/{}, Sys.Audit",
                self.root.node()
            )));
        }
        Ok(t)
    }

    fn nextid(&self, p: &Params, users: &UserCfg) -> Result<Value, ApiErr> {
        let taken = |id: u32| self.root.conf_path(id).exists() || users.pool_of_vm(id).is_some();
        if let Some(v) = get(p, "vmid") {
            let id: u32 = v.parse().unwrap_or(0);
            if taken(id) {
                return Err(ApiErr::param("vmid", format!("VM {id} already exists")));
            }
            return Ok(json!(id.to_string()));
        }
        let id = (100..).find(|id| !taken(*id)).unwrap_or(100);
        Ok(json!(id.to_string()))
    }

    fn ct_summary(&self, vmid: u32, conf: &PveConfig, users: &UserCfg) -> Value {
        let c = conf.current();
        let running = self.backend.is_running(vmid);
        let mem_mb: u64 = c.get("memory").and_then(|m| m.parse().ok()).unwrap_or(512);
        let vmid_value = if self.version < PveVersion::V8_2 {
            json!(vmid.to_string())
        } else {
            json!(vmid)
        };
        let mut v = json!({
            "vmid": vmid_value, "name": c.get("hostname").unwrap_or("CT"), "type": "lxc",
            "status": if running { "running" } else { "stopped" },
            "maxmem": mem_mb << 20, "mem": if running { (mem_mb << 20) / 8 } else { 0 },
            "cpus": c.get("cores").and_then(|x| x.parse::<u64>().ok()).unwrap_or(1),
            "maxdisk": 8u64 << 30, "disk": if running { 1u64 << 30 } else { 0 }, "netin": 0, "netout": 0,
            "uptime": self.backend.uptime(vmid).unwrap_or(0),
            "cpu": if running { 0.02 } else { 0.0 },
        });
        if let Some(t) = c.get("tags") {
            v["tags"] = json!(t);
        }
        if let Some(l) = c.get("lock") {
            v["lock"] = json!(l);
        }
        if let Some(pool) = users.pool_of_vm(vmid) {
            v["pool"] = json!(pool);
        }
        v
    }

    fn visible(&self, users: &UserCfg, caller: &Caller, vmid: u32) -> bool {
        acl::has(users, caller, &format!("/vms/{vmid}"), "VM.Audit")
    }

    fn lxc_list(&self, users: &UserCfg, caller: &Caller) -> Value {
        Value::Array(
            self.root
                .vmids()
                .into_iter()
                .filter(|id| self.visible(users, caller, *id))
                .filter_map(|id| {
                    self.root
                        .read_conf(id)
                        .map(|(c, _)| self.ct_summary(id, &c, users))
                })
                .collect(),
        )
    }

    fn resources(&self, p: &Params, users: &UserCfg, caller: &Caller) -> Value {
        let want = get(p, "type");
        let mut out = Vec::new();
        if want.is_none() || want == Some("vm") {
            for id in self
                .root
                .vmids()
                .into_iter()
                .filter(|id| self.visible(users, caller, *id))
            {
                if let Some((c, _)) = self.root.read_conf(id) {
                    let mut v = self.ct_summary(id, &c, users);
                    v["vmid"] = json!(id);
                    v["id"] = json!(format!("lxc/{id}"));
                    v["node"] = json!(self.root.node());
                    v["template"] = json!(0);
                    out.push(v);
                }
            }
        }
        if want.is_none() || want == Some("storage") {
            for (id, kind, content) in STORAGES {
                if acl::has(users, caller, &format!("/storage/{id}"), "Datastore.Audit")
                    || acl::has(
                        users,
                        caller,
                        &format!("/storage/{id}"),
                        "Datastore.AllocateSpace",
                    )
                {
                    out.push(json!({"id": format!("storage/{}/{id}", self.root.node()), "type": "storage", "storage": id, "node": self.root.node(),
                        "status": "available", "plugintype": kind, "content": content, "shared": 0, "maxdisk": 100u64 << 30, "disk": 10u64 << 30}));
                }
            }
        }
        if want.is_none() || want == Some("node") {
            out.push(json!({"id": format!("node/{}", self.root.node()), "type": "node", "node": self.root.node(), "status": "online", "maxcpu": 2, "maxmem": 24u64 << 30}));
        }
        Value::Array(out)
    }

    fn permissions(&self, p: &Params, users: &UserCfg, caller: &Caller) -> Value {
        let mut paths: Vec<String> = vec!["/".into()];
        paths.extend(users.pools().iter().map(|p| format!("/pool/{}", p.poolid)));
        paths.extend(STORAGES.iter().map(|(s, _, _)| format!("/storage/{s}")));
        paths.extend(self.root.vmids().into_iter().map(|id| format!("/vms/{id}")));
        paths.extend(
            BRIDGES
                .iter()
                .map(|b| format!("/sdn/zones/localnetwork/{b}")),
        );
        if let Some(only) = get(p, "path") {
            paths = vec![only.to_string()];
        }
        let mut out = serde_json::Map::new();
        for path in paths {
            let privs = acl::privileges(users, caller, &path);
            if !privs.is_empty() {
                let m: serde_json::Map<String, Value> =
                    privs.into_iter().map(|p| (p, json!(1))).collect();
                out.insert(path, Value::Object(m));
            }
        }
        Value::Object(out)
    }

    fn pool_members(&self, users: &UserCfg, id: &str) -> Vec<Value> {
        let Some(pool) = users.pool(id) else {
            return Vec::new();
        };
        let mut members: Vec<Value> = pool
            .vms
            .iter()
            .filter(|vmid| users.pool_of_vm(**vmid) == Some(id))
            .map(|vmid| match self.root.read_conf(*vmid) {
                Some((c, _)) => {
                    let mut v = self.ct_summary(*vmid, &c, users);
                    v["vmid"] = json!(vmid);
                    v["id"] = json!(format!("lxc/{vmid}"));
                    v["node"] = json!(self.root.node());
                    v
                }
                None => json!({"id": format!("lxc/{vmid}"), "vmid": vmid, "type": "lxc", "node": self.root.node(), "status": "unknown"}),
            })
            .collect();
        members.extend(pool.storage.iter().map(|s| json!({"id": format!("storage/{}/{s}", self.root.node()), "storage": s, "node": self.root.node(), "type": "storage"})));
        members
    }

    fn pools_list(&self, p: &Params, users: &UserCfg, caller: &Caller) -> Result<Value, ApiErr> {
        let audit = |id: &str| {
            acl::has(users, caller, &format!("/pool/{id}"), "Pool.Audit")
                || acl::has(users, caller, &format!("/pool/{id}"), "Pool.Allocate")
        };
        if let Some(id) = get(p, "poolid") {
            let pool = users
                .pool(id)
                .ok_or_else(|| ApiErr::runtime(format!("pool '{id}' does not exist")))?;
            if !audit(id) {
                return Err(ApiErr::perm(format!("/pool/{id}, Pool.Audit")));
            }
            return Ok(
                json!([{"poolid": id, "comment": pool.comment, "members": self.pool_members(users, id)}]),
            );
        }
        Ok(Value::Array(
            users
                .pools()
                .iter()
                .filter(|p| audit(&p.poolid))
                .map(|p| json!({"poolid": p.poolid, "comment": p.comment}))
                .collect(),
        ))
    }

    fn pool_update(
        &self,
        id: &str,
        p: &Params,
        users: &UserCfg,
        caller: &Caller,
    ) -> Result<Value, ApiErr> {
        self.require(users, caller, &format!("/pool/{id}"), "Pool.Allocate")?;
        if users.pool(id).is_none() {
            return Err(ApiErr::runtime(format!("pool '{id}' does not exist")));
        }
        let delete = flag(p, "delete");
        let allow_move = flag(p, "allow-move");
        let vms: Vec<u32> = get(p, "vms")
            .unwrap_or("")
            .split([',', ';', ' '])
            .filter_map(|s| s.parse().ok())
            .collect();
        let storages: Vec<String> = get(p, "storage")
            .unwrap_or("")
            .split([',', ';', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        for vmid in &vms {
            if !delete && !self.root.conf_path(*vmid).exists() {
                return Err(ApiErr::runtime(format!("no such VMID '{vmid}'")));
            }
        }
        let comment = get(p, "comment").map(str::to_string);
        let id = id.to_string();
        self.modify_users(move |u| {
            for vmid in &vms {
                if delete {
                    if u.pool_of_vm(*vmid) == Some(id.as_str()) {
                        u.remove_vm(*vmid);
                    }
                } else {
                    match u.pool_of_vm(*vmid) {
                        Some(other) if other == id => {}
                        Some(other) if !allow_move => {
                            return Err(format!(
                                "VM {vmid} is already a pool member of pool '{other}'"
                            ))
                        }
                        Some(_) => {
                            u.remove_vm(*vmid);
                            u.add_vm_to_pool(&id, *vmid)?;
                        }
                        None => u.add_vm_to_pool(&id, *vmid)?,
                    }
                }
            }
            for s in &storages {
                if !delete {
                    u.add_storage_to_pool(&id, s)?;
                }
            }
            let _ = comment;
            Ok(())
        })?;
        Ok(Value::Null)
    }

    fn storages(&self, p: &Params, users: &UserCfg, caller: &Caller) -> Value {
        let wanted: Vec<&str> = get(p, "content")
            .unwrap_or("")
            .split([',', ';', ' '])
            .filter(|s| !s.is_empty())
            .collect();
        Value::Array(
            STORAGES
                .iter()
                .filter(|(_, _, content)| wanted.is_empty() || wanted.iter().any(|w| content.split(',').any(|c| c == *w)))
                .filter(|(id, _, _)| get(p, "storage").is_none_or(|s| s == *id))
                .filter(|(id, _, _)| {
                    let path = format!("/storage/{id}");
                    acl::has(users, caller, &path, "Datastore.Audit") || acl::has(users, caller, &path, "Datastore.AllocateSpace")
                })
                .map(|(id, kind, content)| json!({"storage": id, "type": kind, "content": content, "active": 1, "enabled": 1, "shared": 0,
                    "total": 100u64 << 30, "used": 10u64 << 30, "avail": 90u64 << 30}))
                .collect(),
        )
    }

    fn storage_content(
        &self,
        p: &Params,
        users: &UserCfg,
        caller: &Caller,
    ) -> Result<Value, ApiErr> {
        let storage = get(p, "storage").unwrap_or_default();
        let Some((_, _, content)) = STORAGES.iter().find(|(id, _, _)| *id == storage) else {
            return Err(ApiErr::runtime(format!(
                "storage '{storage}' does not exist"
            )));
        };
        let want = get(p, "content");
        let mut out = Vec::new();
        if content.contains("vztmpl") && want.is_none_or(|w| w == "vztmpl") {
            let mut names: Vec<String> = std::fs::read_dir(self.root.template_dir())
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            for n in names {
                let size = std::fs::metadata(self.root.template_dir().join(&n))
                    .map(|m| m.len())
                    .unwrap_or(0);
                let format = if n.ends_with(".tar.zst") {
                    "tzst"
                } else if n.ends_with(".tar.xz") {
                    "txz"
                } else {
                    "tgz"
                };
                out.push(json!({"volid": format!("{storage}:vztmpl/{n}"), "content": "vztmpl", "format": format, "size": size, "ctime": 1_700_000_000}));
            }
        }
        if content.contains("rootdir") && want.is_none_or(|w| w == "rootdir" || w == "images") {
            for id in self.root.vmids() {
                if let Some((c, _)) = self.root.read_conf(id) {
                    if let Some(rootfs) = c.current().get("rootfs") {
                        if let Some(vol) = rootfs
                            .split(',')
                            .next()
                            .filter(|v| v.starts_with(&format!("{storage}:")))
                        {
                            out.push(json!({"volid": vol, "content": "rootdir", "format": "raw", "vmid": id, "size": 8u64 << 30}));
                        }
                    }
                }
            }
        }
        if content.contains("backup") && want.is_none_or(|w| w == "backup") {
            let vmid = get(p, "vmid").and_then(|v| v.parse().ok());
            out.extend(self.backup_volumes(storage, vmid, users, caller));
        }
        Ok(Value::Array(out))
    }

    fn download_template(&self, p: &Params, caller: &Caller) -> Result<Value, ApiErr> {
        let storage = get(p, "storage").unwrap_or_default().to_string();
        let template = get(p, "template").unwrap_or_default().to_string();
        if !STORAGES
            .iter()
            .any(|(id, _, c)| *id == storage && c.contains("vztmpl"))
        {
            return Err(ApiErr::runtime(format!(
                "storage '{storage}' does not support templates"
            )));
        }
        if !self.appliances().iter().any(|(t, _, _)| *t == template) {
            return Err(ApiErr::runtime(format!("no such template '{template}'")));
        }
        let dest = self.root.template_dir().join(&template);
        Ok(self.task("download", &template.clone(), caller, move |tasks, upid| {
            tasks.log(upid, format!("starting template download from: http://download.proxmox.com/images/system/{template}"));
            tasks.log(upid, format!("target file: {}", dest.display()));
            crate::state::write_atomic(&dest, b"pve-sim template placeholder\n").map_err(|e| e.to_string())?;
            tasks.log(upid, "download of template finished (simulated)");
            Ok(())
        }))
    }

    /// What `aplinfo` offers on this release.
    fn appliances(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        let extra: &[_] = if self.version.is_9() {
            APPLIANCES_9
        } else {
            &[]
        };
        extra.iter().chain(APPLIANCES).copied().collect()
    }

    fn network(&self, p: &Params, users: &UserCfg, caller: &Caller) -> Value {
        let kind = get(p, "type");
        if kind.is_some_and(|k| !["bridge", "any_bridge", "any_local_bridge"].contains(&k)) {
            return json!([]);
        }
        Value::Array(
            BRIDGES
                .iter()
                .filter(|b| {
                    let path = format!("/sdn/zones/localnetwork/{b}");
                    acl::has(users, caller, &path, "SDN.Use") || acl::has(users, caller, &path, "SDN.Audit")
                })
                .map(|b| json!({"iface": b, "type": "bridge", "active": 1, "autostart": 1, "bridge_ports": "", "bridge_stp": "off", "bridge_fd": "0", "families": ["inet"], "method": "manual"}))
                .collect(),
        )
    }

    /// Options only root@pam may set, with PVE's refusal.
    fn root_only(&self, p: &Params, caller: &Caller) -> Result<(), ApiErr> {
        if caller.is_root {
            return Ok(());
        }
        for (k, v) in p {
            if k.starts_with("dev") && k[3..].parse::<u32>().is_ok() {
                return Err(ApiErr::perm(
                    "configuring device passthrough is only allowed for root@pam",
                ));
            }
            if k == "features" {
                let other = v.split(',').any(|kv| {
                    let (key, val) = kv.split_once('=').unwrap_or((kv, "1"));
                    key != "nesting" && val != "0"
                });
                if other {
                    return Err(ApiErr::perm(
                        "changing feature flags (except nesting) is only allowed for root@pam",
                    ));
                }
            }
            if k.starts_with("mp") && k[2..].parse::<u32>().is_ok() {
                let source = v
                    .split(',')
                    .find(|s| !s.contains('=') || s.starts_with("volume="))
                    .unwrap_or("");
                let source = source.trim_start_matches("volume=");
                if source.starts_with('/') {
                    return Err(ApiErr::perm(format!(
                        "only root can set '{k}' config for non-volume mount points"
                    )));
                }
            }
            if k == "hookscript" {
                return Err(ApiErr::perm("only root can set 'hookscript' config"));
            }
        }
        Ok(())
    }

    /// The privilege an option needs (PVE's `check_ct_modify_config_perm`).
    fn option_privilege(key: &str) -> &'static str {
        let base = key.trim_end_matches(|c: char| c.is_ascii_digit());
        match base {
            "cores" | "cpulimit" | "cpuunits" => "VM.Config.CPU",
            "memory" | "swap" => "VM.Config.Memory",
            "net" | "nameserver" | "searchdomain" => "VM.Config.Network",
            "rootfs" | "mp" | "unused" => "VM.Config.Disk",
            _ => "VM.Config.Options",
        }
    }

    fn create(
        self: &Arc<Self>,
        p: &Params,
        users: &UserCfg,
        caller: &Caller,
    ) -> Result<Value, ApiErr> {
        let vmid = vmid_of(p)?;
        let node = self.root.node().to_string();
        let pool = get(p, "pool").map(str::to_string);
        let vm_path = format!("/vms/{vmid}");
        let allowed = acl::has(users, caller, &vm_path, "VM.Allocate")
            || pool
                .as_ref()
                .is_some_and(|pl| acl::has(users, caller, &format!("/pool/{pl}"), "VM.Allocate"));
        if !allowed {
            return Err(ApiErr::perm(format!("{vm_path}, VM.Allocate")));
        }
        if let Some(pl) = &pool {
            if users.pool(pl).is_none() {
                return Err(ApiErr::runtime(format!("pool '{pl}' does not exist")));
            }
        }
        if self.root.conf_path(vmid).exists() || users.pool_of_vm(vmid).is_some() {
            return Err(ApiErr::runtime(format!(
                "CT {vmid} already exists on node '{node}'"
            )));
        }
        self.root_only(p, caller)?;
        let on_vm_or_pool = |privilege: &str| {
            acl::has(users, caller, &vm_path, privilege)
                || pool
                    .as_ref()
                    .is_some_and(|pl| acl::has(users, caller, &format!("/pool/{pl}"), privilege))
        };
        for key in p.keys() {
            if [
                "node",
                "vmid",
                "ostemplate",
                "pool",
                "storage",
                "start",
                "unprivileged",
                "tags",
                "password",
                "ssh-public-keys",
            ]
            .contains(&key.as_str())
            {
                continue;
            }
            let privilege = Self::option_privilege(key);
            if !on_vm_or_pool(privilege) {
                return Err(ApiErr::perm(format!("{vm_path}, {privilege}")));
            }
        }
        // Tags are checked on the guest's own path: the new CT is not a pool member yet.
        if p.contains_key("tags") && !acl::has(users, caller, &vm_path, "VM.Config.Options") {
            return Err(ApiErr::perm(format!("{vm_path}, VM.Config.Options")));
        }

        // Template.
        let ostemplate = get(p, "ostemplate").unwrap_or_default().to_string();
        let (tstorage, tvol) = ostemplate.split_once(':').ok_or_else(|| {
            ApiErr::param(
                "ostemplate",
                format!("unable to parse volume ID '{ostemplate}'"),
            )
        })?;
        let tpath = self
            .root
            .template_dir()
            .join(tvol.trim_start_matches("vztmpl/"));
        if !STORAGES
            .iter()
            .any(|(id, _, c)| *id == tstorage && c.contains("vztmpl"))
            || !tvol.starts_with("vztmpl/")
        {
            return Err(ApiErr::runtime(format!(
                "volume '{ostemplate}' does not exist"
            )));
        }
        if !(acl::has(
            users,
            caller,
            &format!("/storage/{tstorage}"),
            "Datastore.Audit",
        ) || acl::has(
            users,
            caller,
            &format!("/storage/{tstorage}"),
            "Datastore.AllocateSpace",
        )) {
            return Err(ApiErr::perm(format!(
                "/storage/{tstorage}, Datastore.Audit"
            )));
        }
        if !tpath.is_file() {
            return Err(ApiErr::runtime(format!(
                "volume '{ostemplate}' does not exist"
            )));
        }

        // Root file system.
        let (rstorage, size) = match get(p, "rootfs") {
            Some(r) => {
                let vol = r
                    .split(',')
                    .find(|s| !s.contains('=') || s.starts_with("volume="))
                    .unwrap_or("")
                    .trim_start_matches("volume=");
                let (s, size) = vol
                    .split_once(':')
                    .ok_or_else(|| ApiErr::param("rootfs", "invalid format - format error"))?;
                (
                    s.to_string(),
                    size.parse::<u32>()
                        .map_err(|_| ApiErr::runtime(format!("unable to parse size of '{vol}'")))?,
                )
            }
            None => (get(p, "storage").unwrap_or("local").to_string(), 4),
        };
        if !STORAGES
            .iter()
            .any(|(id, _, c)| *id == rstorage && c.contains("rootdir"))
        {
            return Err(ApiErr::runtime(format!(
                "storage '{rstorage}' does not support container directories"
            )));
        }
        self.require(
            users,
            caller,
            &format!("/storage/{rstorage}"),
            "Datastore.AllocateSpace",
        )?;

        // Networks.
        for (k, v) in p.iter().filter(|(k, _)| k.starts_with("net")) {
            let bridge = v
                .split(',')
                .find_map(|kv| kv.strip_prefix("bridge="))
                .unwrap_or("");
            if !bridge.is_empty() {
                if !BRIDGES.contains(&bridge) {
                    return Err(ApiErr::runtime(format!(
                        "{k}: bridge '{bridge}' does not exist"
                    )));
                }
                self.require(
                    users,
                    caller,
                    &format!("/sdn/zones/localnetwork/{bridge}"),
                    "SDN.Use",
                )?;
            }
        }

        // The config PVE writes.
        let mut conf = PveConfig::default();
        let mut disk_index = 0;
        {
            let c = conf.current_mut();
            let set = |c: &mut ConfigSection, k: &str, v: &str| {
                c.try_set(k, v).map_err(|e| ApiErr::param(k, e.to_string()))
            };
            set(c, "arch", get(p, "arch").unwrap_or("amd64"))?;
            set(c, "memory", get(p, "memory").unwrap_or("512"))?;
            set(c, "swap", get(p, "swap").unwrap_or("512"))?;
            let ostype = tvol
                .trim_start_matches("vztmpl/")
                .split(['-', '_'])
                .next()
                .unwrap_or("debian")
                .to_string();
            set(c, "ostype", get(p, "ostype").unwrap_or(&ostype))?;
            set(
                c,
                "hostname",
                get(p, "hostname").unwrap_or(&format!("CT{vmid}")),
            )?;
            set(
                c,
                "rootfs",
                &format!("{rstorage}:vm-{vmid}-disk-{disk_index},size={size}G"),
            )?;
            disk_index += 1;
            for (k, v) in p {
                match k.as_str() {
                    "node" | "vmid" | "ostemplate" | "pool" | "storage" | "start" | "rootfs"
                    | "arch" | "memory" | "swap" | "ostype" | "hostname" | "password"
                    | "ssh-public-keys" => {}
                    "description" => c.set_description(v),
                    "tags" => set(
                        c,
                        "tags",
                        &appstore_core::policy::join_tags(
                            appstore_core::policy::parse_tags(v)
                                .iter()
                                .map(String::as_str),
                        ),
                    )?,
                    k if k.starts_with("net") => {
                        let mut value = v.clone();
                        if !value.contains("hwaddr=") {
                            value.push_str(&format!(
                                ",hwaddr=BC:24:11:{:02X}:{:02X}:{:02X}",
                                (vmid >> 16) & 0xff,
                                (vmid >> 8) & 0xff,
                                vmid & 0xff
                            ));
                        }
                        if !value.contains("type=") {
                            value.push_str(",type=veth");
                        }
                        set(c, k, &value)?;
                    }
                    k if k.starts_with("mp") => {
                        // `storage:size` allocates a volume; anything else is a bind mount (root only, checked above).
                        let mut parts: Vec<String> = v.split(',').map(str::to_string).collect();
                        if let Some(first) = parts.first_mut() {
                            let vol = first.trim_start_matches("volume=").to_string();
                            if let Some((s, sz)) = vol
                                .split_once(':')
                                .filter(|(_, sz)| sz.parse::<u32>().is_ok())
                            {
                                *first = format!("{s}:vm-{vmid}-disk-{disk_index}");
                                parts.push(format!("size={sz}G"));
                                disk_index += 1;
                            }
                        }
                        set(c, k, &parts.join(","))?;
                    }
                    _ => set(c, k, v)?,
                }
            }
            set(c, "lock", "create")?;
        }
        let start = flag(p, "start");
        {
            let _lock = self
                .root
                .lock_config(vmid)
                .map_err(|e| ApiErr::runtime(e.to_string()))?;
            self.root
                .write_conf(vmid, &conf)
                .map_err(|e| ApiErr::runtime(e.to_string()))?;
        }
        if let Some(pl) = &pool {
            let pl = pl.clone();
            self.modify_users(|u| u.add_vm_to_pool(&pl, vmid))?;
        }
        let node_ref = Arc::clone(self);
        Ok(
            self.task("vzcreate", &vmid.to_string(), caller, move |tasks, upid| {
                let result = (|| -> Result<(), String> {
                    tasks.log(upid, format!("extracting archive '{}'", tpath.display()));
                    node_ref.backend.create(vmid, &conf, &tpath)?;
                    tasks.log(upid, "Total bytes read: 524288000 (500MiB, 105MiB/s)");
                    tasks.log(upid, "Detected container architecture: amd64");
                    let _lock = node_ref.root.lock_config(vmid).map_err(|e| e.to_string())?;
                    let mut conf = conf.clone();
                    conf.current_mut().remove("lock");
                    node_ref
                        .root
                        .write_conf(vmid, &conf)
                        .map_err(|e| e.to_string())?;
                    if start {
                        node_ref.backend.start(vmid, &conf)?;
                    }
                    Ok(())
                })();
                if result.is_err() {
                    // A failed create leaves nothing behind, as PVE cleans up.
                    let _ = node_ref.backend.destroy(vmid);
                    let _ = node_ref.root.remove_conf(vmid);
                    let _ = node_ref.modify_users(|u| {
                        u.remove_vm(vmid);
                        Ok(())
                    });
                }
                result
            }),
        )
    }

    fn check_lock(conf: &PveConfig, vmid: u32) -> Result<(), ApiErr> {
        match conf.current().get("lock") {
            Some(l) => Err(ApiErr::runtime(format!("CT {vmid} is locked ({l})"))),
            None => Ok(()),
        }
    }

    fn destroy(self: &Arc<Self>, p: &Params, caller: &Caller) -> Result<Value, ApiErr> {
        let vmid = vmid_of(p)?;
        let (conf, _) = self.conf(vmid)?;
        Self::check_lock(&conf, vmid)?;
        if self.backend.is_running(vmid) {
            if flag(p, "force") {
                self.backend.stop(vmid).map_err(ApiErr::runtime)?;
            } else {
                return Err(ApiErr::runtime(format!(
                    "CT {vmid} is running - destroy failed"
                )));
            }
        }
        let purge = flag(p, "purge");
        let node_ref = Arc::clone(self);
        Ok(self.task(
            "vzdestroy",
            &vmid.to_string(),
            caller,
            move |tasks, upid| {
                let _lock = node_ref.root.lock_config(vmid).map_err(|e| e.to_string())?;
                node_ref.backend.destroy(vmid)?;
                for volid in crate::backend::storage_volumes(&conf) {
                    node_ref.backend.volume_freed(&volid);
                    tasks.log(
                        upid,
                        format!(
                            "Logical volume \"{}\" successfully removed.",
                            volid.split_once(':').map_or(volid.as_str(), |(_, n)| n)
                        ),
                    );
                }
                tasks.log(
                    upid,
                    format!("Logical volume \"vm-{vmid}-disk-0\" successfully removed."),
                );
                node_ref.root.remove_conf(vmid).map_err(|e| e.to_string())?;
                if purge {
                    node_ref
                        .modify_users(|u| {
                            u.remove_vm(vmid);
                            Ok(())
                        })
                        .map_err(|e| e.message)?;
                    tasks.log(
                        upid,
                        format!("purging CT {vmid} from related configurations.."),
                    );
                }
                Ok(())
            },
        ))
    }

    fn update_config(&self, p: &Params, users: &UserCfg, caller: &Caller) -> Result<Value, ApiErr> {
        let vmid = vmid_of(p)?;
        // Permissions first, as PVE checks them before it touches the config.
        self.root_only(p, caller)?;
        let vm_path = format!("/vms/{vmid}");
        let deletes: Vec<String> = get(p, "delete")
            .unwrap_or("")
            .split([',', ';', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        for key in p
            .keys()
            .filter(|k| !["node", "vmid", "digest", "delete", "revert"].contains(&k.as_str()))
            .chain(deletes.iter())
        {
            self.require(users, caller, &vm_path, Self::option_privilege(key))?;
        }
        let _lock = self
            .root
            .lock_config(vmid)
            .map_err(|e| ApiErr::runtime(e.to_string()))?;
        let (mut conf, raw) = self.conf(vmid)?;
        if let Some(d) = get(p, "digest") {
            if d != digest(&raw) {
                return Err(ApiErr::runtime(
                    "detected modified configuration - file changed by other user? Try again.",
                ));
            }
        }
        Self::check_lock(&conf, vmid)?;
        let c = conf.current_mut();
        for key in &deletes {
            if key == "description" {
                c.set_description("");
            } else {
                c.remove(key);
            }
        }
        for (k, v) in p {
            match k.as_str() {
                "node" | "vmid" | "digest" | "delete" | "revert" => {}
                "description" => c.set_description(v),
                "tags" => c
                    .try_set(
                        "tags",
                        &appstore_core::policy::join_tags(
                            appstore_core::policy::parse_tags(v)
                                .iter()
                                .map(String::as_str),
                        ),
                    )
                    .map_err(|e| ApiErr::param(k, e.to_string()))?,
                _ => c
                    .try_set(k, v)
                    .map_err(|e| ApiErr::param(k, e.to_string()))?,
            }
        }
        self.root
            .write_conf(vmid, &conf)
            .map_err(|e| ApiErr::runtime(e.to_string()))?;
        Ok(Value::Null)
    }

    fn status(&self, p: &Params) -> Result<Value, ApiErr> {
        let vmid = vmid_of(p)?;
        let (conf, _) = self.conf(vmid)?;
        let users = self.users()?;
        let mut v = self.ct_summary(vmid, &conf, &users);
        v["vmid"] = json!(vmid);
        v["ha"] = json!({"managed": 0});
        Ok(v)
    }

    fn power(
        self: &Arc<Self>,
        p: &Params,
        caller: &Caller,
        kind: &'static str,
    ) -> Result<Value, ApiErr> {
        let vmid = vmid_of(p)?;
        let (conf, _) = self.conf(vmid)?;
        let running = self.backend.is_running(vmid);
        match kind {
            "vzstart" => {
                Self::check_lock(&conf, vmid)?;
                if running {
                    return Err(ApiErr::runtime(format!("CT {vmid} already running")));
                }
            }
            // PVE's reboot says "VM" here.
            "vzreboot" if !running => {
                return Err(ApiErr::runtime(format!("VM {vmid} not running")))
            }
            _ if !running => return Err(ApiErr::runtime(format!("CT {vmid} not running"))),
            _ => {}
        }
        // 9.x hosts mount only the unified cgroup hierarchy: a container that still names a
        // cgroup v1 controller does not start.
        let v1 = self.version.is_9()
            && conf
                .current()
                .raw_lxc()
                .any(|(k, _)| k.starts_with("lxc.cgroup."));
        let node_ref = Arc::clone(self);
        Ok(
            self.task(kind, &vmid.to_string(), caller, move |tasks, upid| match kind {
                "vzstart" | "vzreboot" if v1 => {
                    tasks.log(upid, "lxc.cgroup.* keys need cgroup v1, which this host does not have; use lxc.cgroup2.*");
                    Err(format!("startup for container '{vmid}' failed"))
                }
                "vzstart" => node_ref.backend.start(vmid, &conf),
                "vzreboot" => node_ref
                    .backend
                    .stop(vmid)
                    .and_then(|()| node_ref.backend.start(vmid, &conf)),
                _ => node_ref.backend.stop(vmid),
            }),
        )
    }

    fn snapshots(&self, p: &Params) -> Result<Value, ApiErr> {
        let vmid = vmid_of(p)?;
        let (conf, _) = self.conf(vmid)?;
        let mut out: Vec<Value> = conf
            .snapshot_names()
            .filter_map(|n| {
                let s = conf.snapshot(n)?;
                Some(json!({"name": n, "description": s.description(), "snaptime": s.get("snaptime").and_then(|t| t.parse::<u64>().ok()), "parent": s.get("parent")}))
            })
            .collect();
        out.push(json!({"name": "current", "description": "You are here!", "running": i32::from(self.backend.is_running(vmid)), "parent": conf.current().get("parent")}));
        Ok(Value::Array(out))
    }

    /// `move_volume` to another container (reassign): the volume is renamed to the target's
    /// `vm-<target>-disk-N` and its config line moves from the source key to the target key. Moves
    /// to another storage are not simulated.
    fn move_volume(
        self: &Arc<Self>,
        p: &Params,
        users: &UserCfg,
        caller: &Caller,
    ) -> Result<Value, ApiErr> {
        let vmid = vmid_of(p)?;
        let key = get(p, "volume").unwrap_or_default().to_string();
        let Some(target) = get(p, "target-vmid").and_then(|t| t.parse::<u32>().ok()) else {
            if get(p, "storage").is_some() {
                return Err(ApiErr::runtime(
                    "pve-sim: moving a volume to another storage is not simulated",
                ));
            }
            return Err(ApiErr::param(
                "storage",
                "you must set either storage or target-vmid",
            ));
        };
        let target_key = get(p, "target-volume").unwrap_or(&key).to_string();
        if target == vmid {
            return Err(ApiErr::runtime("can't move a volume to the same container"));
        }
        self.require(users, caller, &format!("/vms/{target}"), "VM.Config.Disk")?;
        let (source_conf, _) = self.conf(vmid)?;
        let (target_conf, _) = self.conf(target)?;
        Self::check_lock(&source_conf, vmid)?;
        Self::check_lock(&target_conf, target)?;
        if key == "rootfs" || target_key == "rootfs" {
            return Err(ApiErr::runtime("cannot reassign a rootfs volume"));
        }
        let Some(line) = source_conf.current().get(&key).map(str::to_string) else {
            return Err(ApiErr::runtime(format!("no such volume '{key}'")));
        };
        let volid = line
            .split(',')
            .next()
            .unwrap_or("")
            .trim_start_matches("volume=");
        if !volid.contains(':') {
            return Err(ApiErr::runtime(format!(
                "cannot move volume '{key}': not a storage volume (bind or device mount)"
            )));
        }
        if target_conf.current().get(&target_key).is_some() {
            return Err(ApiErr::runtime(format!(
                "target volume key '{target_key}' is already in use on CT {target}"
            )));
        }
        for (id, c) in [(vmid, &source_conf), (target, &target_conf)] {
            if self.backend.is_running(id) || c.current().get("lock").is_some() {
                return Err(ApiErr::runtime(format!(
                    "CT {id} is running - cannot reassign a mount point volume"
                )));
            }
        }
        let storage = volid.split(':').next().unwrap_or("").to_string();
        self.require(
            users,
            caller,
            &format!("/storage/{storage}"),
            "Datastore.AllocateSpace",
        )?;
        let node_ref = Arc::clone(self);
        Ok(self.task(
            "move_volume",
            &vmid.to_string(),
            caller,
            move |tasks, upid| {
                let _l1 = node_ref.root.lock_config(vmid).map_err(|e| e.to_string())?;
                let _l2 = node_ref
                    .root
                    .lock_config(target)
                    .map_err(|e| e.to_string())?;
                let (mut src, _) = node_ref.root.read_conf(vmid).ok_or("config vanished")?;
                let (mut dst, _) = node_ref
                    .root
                    .read_conf(target)
                    .ok_or("target config vanished")?;
                let line = src.current_mut().remove(&key).ok_or("volume vanished")?;
                // The next free disk number of the target.
                let used: Vec<u32> = dst
                    .current()
                    .keys()
                    .filter_map(|(_, v)| {
                        v.split(',')
                            .next()
                            .and_then(|vol| vol.rsplit_once("-disk-"))
                            .and_then(|(_, n)| n.parse().ok())
                    })
                    .collect();
                let n = (0..).find(|n| !used.contains(n)).unwrap_or(0);
                let mut parts: Vec<String> = line.split(',').map(str::to_string).collect();
                let old = parts[0].trim_start_matches("volume=").to_string();
                let new = format!("{storage}:vm-{target}-disk-{n}");
                parts[0] = new.clone();
                dst.current_mut()
                    .try_set(&target_key, &parts.join(","))
                    .map_err(|e| e.to_string())?;
                node_ref.backend.volume_renamed(&old, &new)?;
                tasks.log(upid, format!("renamed volume '{old}' to '{new}'"));
                node_ref
                    .root
                    .write_conf(target, &dst)
                    .map_err(|e| e.to_string())?;
                node_ref
                    .root
                    .write_conf(vmid, &src)
                    .map_err(|e| e.to_string())
            },
        ))
    }

    fn snapshot_create(self: &Arc<Self>, p: &Params, caller: &Caller) -> Result<Value, ApiErr> {
        let vmid = vmid_of(p)?;
        let name = get(p, "snapname").unwrap_or_default().to_string();
        let (conf, _) = self.conf(vmid)?;
        if conf.snapshot(&name).is_some() {
            return Err(ApiErr::runtime(format!(
                "snapshot name '{name}' already used"
            )));
        }
        Self::check_lock(&conf, vmid)?;
        let description = get(p, "description").unwrap_or("").to_string();
        let node_ref = Arc::clone(self);
        Ok(
            self.task("vzsnapshot", &vmid.to_string(), caller, move |_, _| {
                let _lock = node_ref.root.lock_config(vmid).map_err(|e| e.to_string())?;
                let (mut conf, _) = node_ref.root.read_conf(vmid).ok_or("config vanished")?;
                // Only some storages snapshot volumes (lvmthin, zfs, rbd; not a directory).
                for (key, value) in conf.current().keys() {
                    if key == "rootfs" || key.starts_with("mp") {
                        let storage = value.split(':').next().unwrap_or("");
                        let kind = STORAGES.iter().find(|s| s.0 == storage).map(|s| s.1);
                        if matches!(kind, Some("dir" | "nfs" | "cifs" | "lvm")) {
                            return Err("snapshot feature is not available".into());
                        }
                    }
                }
                crate::backend::snapshot_files_create(node_ref.backend.as_ref(), vmid, &name)?;
                let mut snap = conf.current().clone();
                snap.set_description(&description);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                snap.try_set("snaptime", &now.to_string())
                    .map_err(|e| e.to_string())?;
                conf.set_snapshot(&name, snap);
                conf.current_mut()
                    .try_set("parent", &name)
                    .map_err(|e| e.to_string())?;
                node_ref
                    .root
                    .write_conf(vmid, &conf)
                    .map_err(|e| e.to_string())
            }),
        )
    }

    fn snapshot_delete(self: &Arc<Self>, p: &Params, caller: &Caller) -> Result<Value, ApiErr> {
        let vmid = vmid_of(p)?;
        let name = get(p, "snapname").unwrap_or_default().to_string();
        let (conf, _) = self.conf(vmid)?;
        if conf.snapshot(&name).is_none() {
            return Err(ApiErr::runtime(format!("snapshot '{name}' does not exist")));
        }
        let node_ref = Arc::clone(self);
        Ok(
            self.task("vzdelsnapshot", &vmid.to_string(), caller, move |_, _| {
                let _lock = node_ref.root.lock_config(vmid).map_err(|e| e.to_string())?;
                let (mut conf, _) = node_ref.root.read_conf(vmid).ok_or("config vanished")?;
                crate::backend::snapshot_files_delete(node_ref.backend.as_ref(), vmid, &name)?;
                let removed = conf.remove_snapshot(&name);
                let parent = removed
                    .as_ref()
                    .and_then(|s| s.get("parent").map(str::to_string));
                if conf.current().get("parent") == Some(name.as_str()) {
                    match parent {
                        Some(pa) => conf
                            .current_mut()
                            .try_set("parent", &pa)
                            .map_err(|e| e.to_string())?,
                        None => {
                            conf.current_mut().remove("parent");
                        }
                    }
                }
                node_ref
                    .root
                    .write_conf(vmid, &conf)
                    .map_err(|e| e.to_string())
            }),
        )
    }

    fn snapshot_rollback(self: &Arc<Self>, p: &Params, caller: &Caller) -> Result<Value, ApiErr> {
        let vmid = vmid_of(p)?;
        let name = get(p, "snapname").unwrap_or_default().to_string();
        let (conf, _) = self.conf(vmid)?;
        if conf.snapshot(&name).is_none() {
            return Err(ApiErr::runtime(format!("snapshot '{name}' does not exist")));
        }
        Self::check_lock(&conf, vmid)?;
        let node_ref = Arc::clone(self);
        Ok(
            self.task("vzrollback", &vmid.to_string(), caller, move |_, _| {
                if node_ref.backend.is_running(vmid) {
                    node_ref.backend.stop(vmid)?;
                }
                let _lock = node_ref.root.lock_config(vmid).map_err(|e| e.to_string())?;
                let (mut conf, _) = node_ref.root.read_conf(vmid).ok_or("config vanished")?;
                let mut snap = conf.snapshot(&name).cloned().ok_or("snapshot vanished")?;
                crate::backend::snapshot_files_rollback(node_ref.backend.as_ref(), vmid, &name)?;
                snap.remove("snaptime");
                snap.try_set("parent", &name).map_err(|e| e.to_string())?;
                *conf.current_mut() = snap;
                node_ref
                    .root
                    .write_conf(vmid, &conf)
                    .map_err(|e| e.to_string())
            }),
        )
    }
}

/// A config as `GET .../config` returns it: typed values, the description, and the digest.
fn config_json(c: &ConfigSection, raw: &str) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in c.keys() {
        let numeric = [
            "cores",
            "memory",
            "swap",
            "unprivileged",
            "onboot",
            "tty",
            "cpuunits",
            "protection",
            "template",
            "console",
        ]
        .contains(&k);
        let value = match (numeric, v.parse::<i64>()) {
            (true, Ok(n)) => json!(n),
            _ => json!(v),
        };
        out.insert(k.to_string(), value);
    }
    if !c.description().is_empty() {
        out.insert(
            "description".into(),
            json!(format!("{}\n", c.description())),
        );
    }
    out.insert("digest".into(), json!(digest(raw)));
    Value::Object(out)
}
