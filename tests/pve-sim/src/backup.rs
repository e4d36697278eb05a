//! Backups as a PVE node makes them: `POST /nodes/{node}/vzdump` writes a real archive (the
//! container's config as `./etc/vzdump/pct.conf`, then its files, and every volume mount point
//! marked `backup=1` at its mount path) to `dump/` of the backup storage, with PVE's task log,
//! `.log`, `.notes` and `.protected` files; the storage's content lists it; `DELETE` of the volume
//! removes it; and `POST /nodes/{node}/lxc` with `restore=1` makes a container from it (config
//! from the archive, the sent parameters winning; volumes recreated on the target storage).
//! Archives are made and read by GNU tar (with zstd or gzip), as `vzdump` does.

use crate::acl::{self, Caller};
use crate::api::{ApiErr, Node, STORAGES};
use crate::ops::{format_size, volume_size};
use crate::tasks::Tasks;
use crate::user_cfg::UserCfg;
use appstore_core::pve_config::PveConfig;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

type Params = BTreeMap<String, String>;

fn get<'a>(p: &'a Params, k: &str) -> Option<&'a str> {
    p.get(k).map(String::as_str)
}

/// Where the sim keeps what the archive carries for its own back end (the LXC back end's Debian
/// release): beside PVE's own files in `./etc/vzdump/`.
const EXTRA_FILE: &str = "etc/vzdump/pve-sim.extra";

/// A backup archive's name: `vzdump-lxc-<vmid>-YYYY_MM_DD-HH_MM_SS.<ext>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveName {
    /// Owner.
    pub vmid: u32,
    /// Seconds since the epoch, from the name (UTC on the simulated node).
    pub ctime: u64,
    /// `tar`, `tar.zst`, `tar.gz`.
    pub format: String,
}

impl ArchiveName {
    /// Reads a file name; `None` for anything else.
    pub fn parse(file: &str) -> Option<ArchiveName> {
        let rest = file.strip_prefix("vzdump-lxc-")?;
        let (vmid, rest) = rest.split_once('-')?;
        let (stamp, format) = rest.split_once('.')?;
        if !["tar", "tar.zst", "tar.gz", "tar.lzo"].contains(&format) {
            return None;
        }
        let n: Vec<u64> = stamp
            .split(['_', '-'])
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        let [y, mo, d, h, mi, s] = n[..] else {
            return None;
        };
        Some(ArchiveName {
            vmid: vmid.parse().ok()?,
            ctime: appstore_core::update_policy::date_epoch(&format!("{y:04}-{mo:02}-{d:02}"))?
                + h * 3600
                + mi * 60
                + s,
            format: format.to_string(),
        })
    }
}

/// `YYYY_MM_DD-HH_MM_SS` of `epoch` (UTC).
fn stamp(epoch: u64) -> String {
    let iso = crate::backend::iso_time(epoch);
    // 2026-12-06T10:00:00+0000
    format!(
        "{}_{}_{}-{}_{}_{}",
        &iso[0..4],
        &iso[5..7],
        &iso[8..10],
        &iso[11..13],
        &iso[14..16],
        &iso[17..19]
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Node {
    /// A storage's directory on the node (`local` is `/var/lib/vz`).
    fn storage_dir(&self, storage: &str) -> PathBuf {
        if storage == "local" {
            self.root.path().join("var/lib/vz")
        } else {
            self.root.path().join("mnt/pve").join(storage)
        }
    }

    /// `dump/` of a storage that holds backups, or why it does not.
    fn dump_dir(&self, storage: &str) -> Result<PathBuf, ApiErr> {
        match STORAGES.iter().find(|(id, _, _)| *id == storage) {
            None => Err(ApiErr::runtime(format!(
                "storage '{storage}' does not exist"
            ))),
            Some((_, _, content)) if !content.contains("backup") => Err(ApiErr::runtime(format!(
                "storage '{storage}' does not support backups"
            ))),
            Some(_) => Ok(self.storage_dir(storage).join("dump")),
        }
    }

    /// The backup volumes of `storage` the caller may see (`Datastore.Allocate` on the storage, or
    /// `Datastore.AllocateSpace` there and `VM.Backup` on the owner), as the content API lists them.
    pub(crate) fn backup_volumes(
        &self,
        storage: &str,
        vmid: Option<u32>,
        users: &UserCfg,
        caller: &Caller,
    ) -> Vec<Value> {
        let Ok(dir) = self.dump_dir(storage) else {
            return Vec::new();
        };
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let store_path = format!("/storage/{storage}");
        let all = acl::has(users, caller, &store_path, "Datastore.Allocate");
        let space = acl::has(users, caller, &store_path, "Datastore.AllocateSpace");
        names
            .iter()
            .filter_map(|n| Some((n, ArchiveName::parse(n)?)))
            .filter(|(_, a)| vmid.is_none_or(|v| v == a.vmid))
            .filter(|(_, a)| {
                all || (space
                    && acl::has(users, caller, &format!("/vms/{}", a.vmid), "VM.Backup"))
            })
            .map(|(n, a)| {
                let path = dir.join(n);
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let mut v = json!({"volid": format!("{storage}:backup/{n}"), "content": "backup", "format": a.format,
                    "size": size, "ctime": a.ctime, "vmid": a.vmid, "subtype": "lxc"});
                if let Ok(notes) = std::fs::read_to_string(dir.join(format!("{n}.notes"))) {
                    v["notes"] = json!(notes.lines().next().unwrap_or(""));
                }
                if dir.join(format!("{n}.protected")).exists() {
                    v["protected"] = json!(1);
                }
                v
            })
            .collect()
    }

    /// `POST /nodes/{node}/vzdump` for one container.
    pub(crate) fn vzdump(
        self: &Arc<Self>,
        p: &Params,
        users: &UserCfg,
        caller: &Caller,
    ) -> Result<Value, ApiErr> {
        let Some(vmid_text) = get(p, "vmid") else {
            return Err(ApiErr::param(
                "vmid",
                "property is missing and it is not optional",
            ));
        };
        let vmid: u32 = vmid_text.parse().map_err(|_| {
            ApiErr::runtime("pve-sim: vzdump of more than one guest is not simulated")
        })?;
        for root_only in ["tmpdir", "dumpdir", "script", "job-id"] {
            if p.contains_key(root_only) && caller.tokenid != "root@pam" {
                return Err(ApiErr::param(root_only, "Only root may set this option."));
            }
        }
        // Like PVE: without `storage` the check is on `local`.
        let storage = get(p, "storage").unwrap_or("local").to_string();
        let store_path = format!("/storage/{storage}");
        if p.contains_key("prune-backups")
            && !acl::has(users, caller, &store_path, "Datastore.Allocate")
        {
            return Err(ApiErr::perm(format!("{store_path}, Datastore.Allocate")));
        }
        if !acl::has(users, caller, &store_path, "Datastore.AllocateSpace") {
            return Err(ApiErr::perm(format!(
                "{store_path}, Datastore.AllocateSpace"
            )));
        }
        let dump = self.dump_dir(&storage)?;
        let compress = get(p, "compress").unwrap_or("0").to_string();
        let ext = match compress.as_str() {
            "0" => "tar",
            "gzip" => "tar.gz",
            "zstd" => "tar.zst",
            _ => {
                return Err(ApiErr::runtime(
                    "pve-sim: lzo compression is not simulated; use zstd or gzip",
                ))
            }
        };
        let mode = get(p, "mode").unwrap_or("snapshot").to_string();
        let keep_last = get(p, "prune-backups").and_then(|v| {
            v.split(',')
                .find_map(|kv| kv.strip_prefix("keep-last="))
                .and_then(|n| n.parse::<usize>().ok())
        });
        let remove = get(p, "remove").is_none_or(|r| r == "1") && keep_last.is_some();
        let notes = get(p, "notes-template").map(str::to_string);
        let protected = get(p, "protected") == Some("1");
        let allowed = acl::has(users, caller, &format!("/vms/{vmid}"), "VM.Backup");
        let command = {
            let mut parts = vec![format!("vzdump {vmid}")];
            for (k, v) in p {
                if k != "vmid" {
                    parts.push(format!("--{k} {v}"));
                }
            }
            parts.join(" ")
        };
        let node = Arc::clone(self);
        let users = users.clone();
        let owner = caller.clone();
        Ok(
            self.task("vzdump", &vmid.to_string(), caller, move |tasks, upid| {
                let info = |line: String| tasks.log(upid, format!("INFO: {line}"));
                info(format!("starting new backup job: {command}"));
                let result = (|| -> Result<(), String> {
                    if !allowed {
                        return Err(format!("Permission check failed (/vms/{vmid}, VM.Backup)"));
                    }
                    node.backup_one(
                        tasks,
                        upid,
                        vmid,
                        &dump,
                        ext,
                        &mode,
                        notes.as_deref(),
                        protected,
                    )?;
                    if remove {
                        if let Some(keep) = keep_last {
                            node.prune(tasks, upid, &storage, vmid, keep, &users, &owner);
                        }
                    }
                    Ok(())
                })();
                match result {
                    Ok(()) => {
                        info("Backup job finished successfully".into());
                        Ok(())
                    }
                    Err(e) => {
                        tasks.log(upid, format!("ERROR: Backup of VM {vmid} failed - {e}"));
                        info("Backup job finished with errors".into());
                        Err("job errors".into())
                    }
                }
            }),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn backup_one(
        &self,
        tasks: &Tasks,
        upid: &str,
        vmid: u32,
        dump: &Path,
        ext: &str,
        mode: &str,
        notes: Option<&str>,
        protected: bool,
    ) -> Result<(), String> {
        let info = |line: String| tasks.log(upid, format!("INFO: {line}"));
        let started = now();
        info(format!("Starting Backup of VM {vmid} (lxc)"));
        let (mut conf, _) = {
            let _lock = self.root.lock_config(vmid).map_err(|e| e.to_string())?;
            let (mut conf, raw) = self
                .root
                .read_conf(vmid)
                .ok_or_else(|| format!("unable to find VM '{vmid}'"))?;
            if let Some(l) = conf.current().get("lock") {
                return Err(format!("CT is locked ({l})"));
            }
            conf.current_mut()
                .try_set("lock", "backup")
                .map_err(|e| e.to_string())?;
            self.root
                .write_conf(vmid, &conf)
                .map_err(|e| e.to_string())?;
            conf.current_mut().remove("lock");
            (conf, raw)
        };
        let result = (|| -> Result<(), String> {
            let running = self.backend.is_running(vmid);
            let c = conf.current();
            let name = c.get("hostname").unwrap_or("CT").to_string();
            info(format!(
                "status = {}",
                if running { "running" } else { "stopped" }
            ));
            info(format!("CT Name: {name}"));
            info("including mount point rootfs ('/') in backup".into());
            // Volume mount points go in with `backup=1`; bind mounts never do.
            let mut volumes = Vec::new();
            for (k, v) in c.keys() {
                let Some(i) = k.strip_prefix("mp").and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                let first = v
                    .split(',')
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("volume=");
                let mount = v
                    .split(',')
                    .find_map(|p| p.strip_prefix("mp="))
                    .unwrap_or("");
                if first.starts_with('/') {
                    info(format!(
                        "excluding bind mount point mp{i} ('{mount}') from backup (not a volume)"
                    ));
                } else if v.split(',').any(|p| p == "backup=1") {
                    info(format!("including mount point mp{i} ('{mount}') in backup"));
                    volumes.push((first.to_string(), mount.to_string()));
                } else {
                    info(format!(
                        "excluding volume mount point mp{i} ('{mount}') from backup (disabled)"
                    ));
                }
            }
            // (Every container volume here is on lvmthin, which snapshots: snapshot mode never
            // falls back to suspend as it would on a directory storage.)
            let shown_mode = if running { mode } else { "stop" };
            info(format!("backup mode: {shown_mode}"));
            info("ionice priority: 7".into());
            let stage = tempfile::Builder::new()
                .prefix("vzdump-")
                .tempdir_in(self.root.path())
                .map_err(|e| e.to_string())?;
            // What tar reads: the container's files and its volumes (directory, mount path).
            let mut files = Some(self.backend.files_dir(vmid)).filter(|d| d.is_dir());
            let mut volume_dirs: Vec<(PathBuf, String)> = volumes
                .iter()
                .filter_map(|(volid, mount)| {
                    let dir = self.backend.volume_path(volid).filter(|d| d.is_dir())?;
                    Some((dir, mount.clone()))
                })
                .collect();
            // A running container's files change under tar (a journal does), and tar fails on
            // that. PVE reads a storage snapshot, or a copy it syncs again while the guest is
            // suspended; the simulator archives a copy made while the guest runs, for both. (It
            // does not freeze the guest: the cgroup v1 freezer may never finish freezing a task
            // waiting on a vfork child.)
            let mut restart = None;
            if running {
                let began = now();
                match shown_mode {
                    "stop" => {
                        info("stopping virtual guest".into());
                        self.backend.stop(vmid)?;
                        restart = Some((conf.clone(), began));
                    }
                    "snapshot" => info("create storage snapshot 'vzdump'".into()),
                    _ => {}
                }
                if shown_mode != "stop" {
                    let copy = stage.path().join("still");
                    if shown_mode == "suspend" {
                        info(format!("starting first sync to {}", copy.display()));
                    }
                    still_copy(&mut files, &mut volume_dirs, &copy)?;
                    if shown_mode == "suspend" {
                        info(format!(
                            "first sync finished ({} seconds)",
                            now().saturating_sub(began)
                        ));
                    }
                }
            }
            std::fs::create_dir_all(dump).map_err(|e| e.to_string())?;
            let mut t = now();
            while dump
                .join(format!("vzdump-lxc-{vmid}-{}.{ext}", stamp(t)))
                .exists()
            {
                std::thread::sleep(std::time::Duration::from_millis(200));
                t = now();
            }
            let base = format!("vzdump-lxc-{vmid}-{}", stamp(t));
            let archive = dump.join(format!("{base}.{ext}"));
            info(format!("creating vzdump archive '{}'", archive.display()));
            // The config as the archive carries it: no lock, no snapshots.
            for s in conf
                .snapshot_names()
                .map(str::to_string)
                .collect::<Vec<_>>()
            {
                conf.remove_snapshot(&s);
            }
            conf.current_mut().remove("parent");
            let etc = stage.path().join("etc/vzdump");
            std::fs::create_dir_all(&etc).map_err(|e| e.to_string())?;
            std::fs::write(etc.join("pct.conf"), conf.to_text()).map_err(|e| e.to_string())?;
            std::fs::write(etc.join("pct.fw"), "").map_err(|e| e.to_string())?;
            if let Some(extra) = self.backend.backup_extra(vmid) {
                std::fs::write(stage.path().join(EXTRA_FILE), extra).map_err(|e| e.to_string())?;
            }
            let mut cmd = Command::new("tar");
            cmd.arg("-cpf")
                .arg(&archive)
                .args(["--numeric-owner", "--sparse"]);
            match ext {
                "tar.zst" => {
                    cmd.arg("--zstd");
                }
                "tar.gz" => {
                    cmd.arg("--gzip");
                }
                _ => {}
            }
            let mut transforms = Vec::new();
            let mut sources: Vec<(PathBuf, String)> =
                vec![(stage.path().to_path_buf(), "./etc/vzdump".into())];
            if let Some(files) = files {
                sources.push((files, ".".into()));
            }
            for (dir, mount) in &volume_dirs {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let parent = dir.parent().map(Path::to_path_buf).unwrap_or_default();
                transforms.push(format!("s,^\\./{name},.{mount},"));
                sources.push((parent, format!("./{name}")));
            }
            for t in &transforms {
                cmd.arg("--transform").arg(t);
            }
            for (dir, what) in &sources {
                cmd.arg("-C").arg(dir).arg(what);
            }
            let out = cmd.output().map_err(|e| format!("tar: {e}"));
            if let Some((c, stopped_at)) = &restart {
                info("restarting vm".into());
                self.backend.start(vmid, c)?;
                info(format!(
                    "guest is online again after {} seconds",
                    now().saturating_sub(*stopped_at)
                ));
            }
            let out = out?;
            if !out.status.success() {
                let _ = std::fs::remove_file(&archive);
                return Err(format!(
                    "command 'tar' failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
            info(format!("Total bytes written: {size} ({})", human(size)));
            info(format!("archive file size: {}", human(size)));
            if let Some(n) = notes {
                let text = n
                    .replace("{{guestname}}", &name)
                    .replace("{{vmid}}", &vmid.to_string())
                    .replace("{{node}}", self.root.node())
                    .replace("{{cluster}}", "")
                    .replace("\\n", "\n");
                info("adding notes to backup".into());
                std::fs::write(dump.join(format!("{base}.{ext}.notes")), text)
                    .map_err(|e| e.to_string())?;
            }
            if protected {
                info("marking backup as protected".into());
                std::fs::write(dump.join(format!("{base}.{ext}.protected")), "")
                    .map_err(|e| e.to_string())?;
            }
            if running && shown_mode == "snapshot" {
                info("cleanup temporary 'vzdump' snapshot".into());
            }
            let secs = now().saturating_sub(started);
            info(format!(
                "Finished Backup of VM {vmid} ({:02}:{:02}:{:02})",
                secs / 3600,
                secs % 3600 / 60,
                secs % 60
            ));
            let log: Vec<String> = tasks
                .get(upid)
                .map(|t| t.log)
                .unwrap_or_default()
                .into_iter()
                .filter(|l| !l.contains("starting new backup job"))
                .map(|l| format!("{} {l}", crate::backend::iso_time(now())))
                .collect();
            std::fs::write(dump.join(format!("{base}.log")), log.join("\n") + "\n")
                .map_err(|e| e.to_string())?;
            Ok(())
        })();
        // The lock goes, whatever happened.
        if let Ok(_lock) = self.root.lock_config(vmid) {
            if let Some((mut c, _)) = self.root.read_conf(vmid) {
                c.current_mut().remove("lock");
                let _ = self.root.write_conf(vmid, &c);
            }
        }
        result
    }

    /// Keeps the newest `keep` backups of `vmid` on `storage` and removes the rest, as `vzdump`'s
    /// `prune-backups keep-last=N` does.
    #[allow(clippy::too_many_arguments)]
    fn prune(
        &self,
        tasks: &Tasks,
        upid: &str,
        storage: &str,
        vmid: u32,
        keep: usize,
        users: &UserCfg,
        caller: &Caller,
    ) {
        let info = |line: String| tasks.log(upid, format!("INFO: {line}"));
        info(format!(
            "prune older backups with retention: keep-last={keep}"
        ));
        let mut list = self.backup_volumes(storage, Some(vmid), users, caller);
        list.sort_by_key(|v| std::cmp::Reverse(v["ctime"].as_u64().unwrap_or(0)));
        let mut pruned = 0;
        for v in list.iter().skip(keep) {
            if v.get("protected").is_some() {
                continue;
            }
            let volid = v["volid"].as_str().unwrap_or_default();
            info(format!("removing backup '{volid}'"));
            if self.remove_backup_files(storage, volid).is_ok() {
                pruned += 1;
            }
        }
        info(format!(
            "pruned {pruned} backup(s) not covered by keep-retention policy"
        ));
    }

    fn remove_backup_files(&self, storage: &str, volid: &str) -> Result<(), String> {
        let dir = self.dump_dir(storage).map_err(|e| e.message)?;
        let file = volid
            .split_once(":backup/")
            .map(|(_, f)| f.to_string())
            .ok_or_else(|| format!("unable to parse volume ID '{volid}'"))?;
        let a = ArchiveName::parse(&file)
            .ok_or_else(|| format!("unable to parse volume ID '{volid}'"))?;
        std::fs::remove_file(dir.join(&file)).map_err(|e| e.to_string())?;
        let base = file.trim_end_matches(&format!(".{}", a.format)).to_string();
        for extra in [
            format!("{file}.notes"),
            format!("{file}.protected"),
            format!("{base}.log"),
        ] {
            let _ = std::fs::remove_file(dir.join(extra));
        }
        Ok(())
    }

    /// `DELETE /nodes/{node}/storage/{storage}/content/{volume}` of a backup: a task `imgdel`.
    pub(crate) fn delete_volume(
        self: &Arc<Self>,
        p: &Params,
        users: &UserCfg,
        caller: &Caller,
    ) -> Result<Value, ApiErr> {
        let volume = get(p, "volume").unwrap_or_default().to_string();
        let storage = get(p, "storage")
            .map(str::to_string)
            .or_else(|| volume.split_once(':').map(|(s, _)| s.to_string()))
            .unwrap_or_default();
        let volid = if volume.contains(':') {
            volume.clone()
        } else {
            format!("{storage}:{volume}")
        };
        let file = volid.split_once(":backup/").map(|(_, f)| f.to_string());
        let Some(archive) = file.as_deref().and_then(ArchiveName::parse) else {
            return Err(ApiErr::runtime(format!(
                "pve-sim: only backup volumes can be deleted here, not '{volid}'"
            )));
        };
        let store_path = format!("/storage/{storage}");
        let ok = acl::has(users, caller, &store_path, "Datastore.Allocate")
            || (acl::has(users, caller, &store_path, "Datastore.AllocateSpace")
                && acl::has(
                    users,
                    caller,
                    &format!("/vms/{}", archive.vmid),
                    "VM.Backup",
                ));
        if !ok {
            return Err(ApiErr::perm(format!("{store_path}, Datastore.Allocate")));
        }
        let dir = self.dump_dir(&storage)?;
        let name = file.unwrap_or_default();
        if !dir.join(&name).is_file() {
            return Err(ApiErr::runtime(format!("volume '{volid}' does not exist")));
        }
        if dir.join(format!("{name}.protected")).exists() {
            return Err(ApiErr::runtime(format!(
                "cannot delete protected backup '{volid}'"
            )));
        }
        let node = Arc::clone(self);
        Ok(self.task(
            "imgdel",
            &format!("{}@{storage}", archive.vmid),
            caller,
            move |tasks, upid| {
                tasks.log(upid, format!("Removed volume '{volid}'"));
                node.remove_backup_files(&storage, &volid)
            },
        ))
    }

    /// `POST /nodes/{node}/lxc` with `restore=1`: a container from a backup archive.
    pub(crate) fn restore(
        self: &Arc<Self>,
        p: &Params,
        users: &UserCfg,
        caller: &Caller,
    ) -> Result<Value, ApiErr> {
        let vmid = crate::ops::vmid_of(p)?;
        let node_name = self.root.node().to_string();
        let force = get(p, "force") == Some("1");
        let pool = get(p, "pool").map(str::to_string);
        let vm_path = format!("/vms/{vmid}");
        let exists = self.root.conf_path(vmid).exists();
        if exists && !force {
            return Err(ApiErr::runtime(format!(
                "CT {vmid} already exists on node '{node_name}'"
            )));
        }
        if exists {
            if self.backend.is_running(vmid) {
                return Err(ApiErr::runtime("can't overwrite running container"));
            }
            if let Some((c, _)) = self.root.read_conf(vmid) {
                if let Some(l) = c.current().get("lock") {
                    return Err(ApiErr::runtime(format!(
                        "unable to restore CT {vmid} - CT is locked ({l})"
                    )));
                }
                if c.current().get("protection") == Some("1") {
                    return Err(ApiErr::runtime(format!(
                        "unable to restore CT {vmid} - protection mode enabled"
                    )));
                }
            }
        }
        if let Some(pl) = &pool {
            if users.pool(pl).is_none() {
                return Err(ApiErr::perm(format!("pool '{pl}' does not exist")));
            }
        }
        let allowed = acl::has(users, caller, &vm_path, "VM.Allocate")
            || pool
                .as_ref()
                .is_some_and(|pl| acl::has(users, caller, &format!("/pool/{pl}"), "VM.Allocate"))
            || (force && exists && acl::has(users, caller, &vm_path, "VM.Backup"));
        if !allowed {
            return Err(ApiErr::perm(format!("{vm_path}, VM.Allocate")));
        }
        let ostemplate = get(p, "ostemplate").unwrap_or_default().to_string();
        let Some((bstorage, file)) = ostemplate
            .split_once(":backup/")
            .map(|(s, f)| (s.to_string(), f.to_string()))
        else {
            return Err(ApiErr::runtime(format!(
                "unable to use volume {ostemplate} - content type needs to be 'backup'"
            )));
        };
        let Some(archive) = ArchiveName::parse(&file) else {
            return Err(ApiErr::runtime(format!(
                "unable to parse volume ID '{ostemplate}'"
            )));
        };
        let bpath = format!("/storage/{bstorage}");
        let volume_ok = acl::has(users, caller, &bpath, "Datastore.Allocate")
            || archive.vmid == vmid
            || (acl::has(users, caller, &bpath, "Datastore.AllocateSpace")
                && acl::has(
                    users,
                    caller,
                    &format!("/vms/{}", archive.vmid),
                    "VM.Backup",
                ));
        if !volume_ok {
            return Err(ApiErr::perm(format!("{bpath}, Datastore.Allocate")));
        }
        let path = self.dump_dir(&bstorage)?.join(&file);
        if !path.is_file() {
            return Err(ApiErr::runtime(format!(
                "volume '{ostemplate}' does not exist"
            )));
        }
        let storage = get(p, "storage").unwrap_or("local").to_string();
        if !STORAGES
            .iter()
            .any(|(id, _, c)| *id == storage && c.contains("rootdir"))
        {
            return Err(ApiErr::param(
                "storage",
                format!("storage '{storage}' does not support container directories"),
            ));
        }
        if !acl::has(
            users,
            caller,
            &format!("/storage/{storage}"),
            "Datastore.AllocateSpace",
        ) {
            return Err(ApiErr::perm(format!(
                "/storage/{storage}, Datastore.AllocateSpace"
            )));
        }
        let sent: Params = p
            .iter()
            .filter(|(k, _)| {
                ![
                    "node",
                    "vmid",
                    "ostemplate",
                    "restore",
                    "force",
                    "storage",
                    "pool",
                    "unique",
                    "start",
                    "password",
                    "ssh-public-keys",
                ]
                .contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let unique = get(p, "unique") == Some("1");
        let start = get(p, "start") == Some("1");
        // The CT is locked while its restore runs.
        let old = if exists {
            self.root.read_conf(vmid).map(|(c, _)| c)
        } else {
            None
        };
        {
            let _lock = self
                .root
                .lock_config(vmid)
                .map_err(|e| ApiErr::runtime(e.to_string()))?;
            let mut placeholder = old.clone().unwrap_or_default();
            placeholder
                .current_mut()
                .try_set("lock", "create")
                .map_err(|e| ApiErr::runtime(e.to_string()))?;
            self.root
                .write_conf(vmid, &placeholder)
                .map_err(|e| ApiErr::runtime(e.to_string()))?;
        }
        if let (Some(pl), false) = (&pool, exists) {
            let pl = pl.clone();
            self.modify_users(|u| u.add_vm_to_pool(&pl, vmid))?;
        }
        let node = Arc::clone(self);
        Ok(self.task(
            "vzrestore",
            &vmid.to_string(),
            caller,
            move |tasks, upid| {
                let result = node.restore_task(
                    tasks,
                    upid,
                    vmid,
                    &ostemplate,
                    &path,
                    &storage,
                    &sent,
                    unique,
                    old.as_ref(),
                );
                match result {
                    Ok(conf) => {
                        if start {
                            node.backend.start(vmid, &conf)?;
                        }
                        Ok(())
                    }
                    Err(e) => {
                        if !exists {
                            let _ = node.backend.destroy(vmid);
                            let _ = node.root.remove_conf(vmid);
                            let _ = node.modify_users(|u| {
                                u.remove_vm(vmid);
                                Ok(())
                            });
                        }
                        Err(format!("unable to restore CT {vmid} - {e}"))
                    }
                }
            },
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn restore_task(
        &self,
        tasks: &Tasks,
        upid: &str,
        vmid: u32,
        volid: &str,
        archive: &Path,
        storage: &str,
        sent: &Params,
        unique: bool,
        old: Option<&PveConfig>,
    ) -> Result<PveConfig, String> {
        tasks.log(
            upid,
            format!("recovering backed-up configuration from '{volid}'"),
        );
        let stage = tempfile::Builder::new()
            .prefix("vzrestore-")
            .tempdir_in(self.root.path())
            .map_err(|e| e.to_string())?;
        tasks.log(upid, format!("restoring '{volid}' now.."));
        tasks.log(upid, format!("extracting archive '{}'", archive.display()));
        let out = Command::new("tar")
            .arg("-xpf")
            .arg(archive)
            .args(["--numeric-owner", "-C"])
            .arg(stage.path())
            .output()
            .map_err(|e| format!("tar: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "command 'tar' failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let size = std::fs::metadata(archive).map(|m| m.len()).unwrap_or(0);
        tasks.log(upid, format!("Total bytes read: {size} ({})", human(size)));
        let text = std::fs::read_to_string(stage.path().join("etc/vzdump/pct.conf"))
            .map_err(|_| "archive contains no configuration file".to_string())?;
        let backed = PveConfig::parse(&text).map_err(|e| e.to_string())?;
        let extra = std::fs::read_to_string(stage.path().join(EXTRA_FILE)).ok();
        let _ = std::fs::remove_dir_all(stage.path().join("etc/vzdump"));
        tasks.log(upid, "merging backed-up and given configuration..");
        let mut conf = PveConfig::default();
        let b = backed.current();
        let mut disk = 0;
        {
            let c = conf.current_mut();
            for (k, v) in b.keys() {
                let is_mp = k
                    .strip_prefix("mp")
                    .is_some_and(|n| n.parse::<u32>().is_ok());
                let skip = [
                    "digest",
                    "rootfs",
                    "snapshots",
                    "parent",
                    "template",
                    "lock",
                ]
                .contains(&k)
                    || k.starts_with("unused")
                    || k.starts_with("lxc.")
                    || is_mp
                    || sent.contains_key(k);
                if k == "description" {
                    c.set_description(b.description());
                } else if !skip {
                    c.try_set(k, v).map_err(|e| e.to_string())?;
                }
            }
            let rootfs_size = b
                .get("rootfs")
                .and_then(volume_size)
                .ok_or("unable to detect disk size - please specify rootfs (size)")?;
            c.try_set(
                "rootfs",
                &format!(
                    "{storage}:vm-{vmid}-disk-{disk},size={}",
                    format_size(rootfs_size)
                ),
            )
            .map_err(|e| e.to_string())?;
            disk += 1;
            for (k, v) in b.keys() {
                if k.strip_prefix("mp")
                    .is_none_or(|n| n.parse::<u32>().is_err())
                {
                    continue;
                }
                let first = v.split(',').next().unwrap_or_default();
                if first.starts_with('/') {
                    tasks.log(
                        upid,
                        format!("WARN: skipping bind mount point {k} (only root may restore it)"),
                    );
                    continue;
                }
                let mut parts: Vec<String> = v.split(',').skip(1).map(str::to_string).collect();
                parts.insert(0, format!("{storage}:vm-{vmid}-disk-{disk}"));
                disk += 1;
                c.try_set(k, &parts.join(",")).map_err(|e| e.to_string())?;
            }
            for (k, v) in sent {
                if k == "description" {
                    c.set_description(v);
                } else {
                    c.try_set(k, v).map_err(|e| e.to_string())?;
                }
            }
            if unique {
                let nets: Vec<(String, String)> = c
                    .keys()
                    .filter(|(k, _)| k.starts_with("net"))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                for (k, v) in nets {
                    let salt = now() as u32;
                    let parts: Vec<String> = v
                        .split(',')
                        .map(|p| {
                            if p.starts_with("hwaddr=") {
                                format!(
                                    "hwaddr=BC:24:11:{:02X}:{:02X}:{:02X}",
                                    (vmid >> 8) & 0xff,
                                    vmid & 0xff,
                                    salt & 0xff
                                )
                            } else {
                                p.to_string()
                            }
                        })
                        .collect();
                    c.try_set(&k, &parts.join(",")).map_err(|e| e.to_string())?;
                }
            }
            if c.get("hostname").is_none() {
                c.try_set("hostname", &format!("CT{vmid}"))
                    .map_err(|e| e.to_string())?;
            }
        }
        // A forced restore replaces the old container: its volumes go.
        if let Some(old) = old {
            for v in crate::backend::storage_volumes(old) {
                self.backend.volume_freed(&v);
            }
            self.backend.destroy(vmid)?;
        }
        // Volume mount points get their contents back from the archive.
        for (k, v) in conf.current().keys() {
            if k.strip_prefix("mp")
                .is_none_or(|n| n.parse::<u32>().is_err())
            {
                continue;
            }
            let new_vol = v.split(',').next().unwrap_or_default();
            let mount = v
                .split(',')
                .find_map(|p| p.strip_prefix("mp="))
                .unwrap_or("");
            let inside = stage.path().join(mount.trim_start_matches('/'));
            if let Some(dir) = self.backend.volume_path(new_vol) {
                if inside.is_dir() && !mount.is_empty() {
                    if let Some(parent) = dir.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                    }
                    let _ = std::fs::remove_dir_all(&dir);
                    std::fs::rename(&inside, &dir)
                        .map_err(|e| format!("{}: {e}", dir.display()))?;
                    std::fs::create_dir_all(&inside).map_err(|e| e.to_string())?;
                }
            }
        }
        let target = self
            .backend
            .restore_target(vmid, extra.as_deref().map(str::trim))?;
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(|e| e.to_string())?;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::rename(stage.path(), &target).map_err(|e| format!("{}: {e}", target.display()))?;
        let _lock = self.root.lock_config(vmid).map_err(|e| e.to_string())?;
        self.root
            .write_conf(vmid, &conf)
            .map_err(|e| e.to_string())?;
        Ok(conf)
    }
}

/// Copies the container's files and volume directories below `copy` (GNU `cp -a`, which keeps
/// owners, modes, device nodes and the overlay's whiteouts) and points `files` and `volumes` at
/// the copies.
fn still_copy(
    files: &mut Option<PathBuf>,
    volumes: &mut [(PathBuf, String)],
    copy: &Path,
) -> Result<(), String> {
    let cp = |from: &Path, to: &Path| -> Result<(), String> {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let out = Command::new("cp")
            .arg("-a")
            .arg("--reflink=auto")
            .arg("--")
            .arg(from)
            .arg(to)
            .output()
            .map_err(|e| format!("cp: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A file a running guest removed while it was copied is simply not in the copy.
        let vanished = !stderr.trim().is_empty()
            && stderr
                .lines()
                .all(|l| l.ends_with("No such file or directory"));
        if out.status.success() || vanished {
            Ok(())
        } else {
            Err(format!("command 'cp' failed: {}", stderr.trim()))
        }
    };
    if let Some(dir) = files.as_mut() {
        let to = copy.join("rootfs");
        cp(dir, &to)?;
        *dir = to;
    }
    for (i, (dir, _)) in volumes.iter_mut().enumerate() {
        let name = dir.file_name().unwrap_or_default().to_owned();
        let to = copy.join(format!("mp{i}")).join(name);
        cp(dir, &to)?;
        *dir = to;
    }
    Ok(())
}

/// `456MB`, `1.20GB`: how vzdump prints sizes.
fn human(bytes: u64) -> String {
    const KB: u64 = 1024;
    match bytes {
        b if b < KB * KB => format!("{}KB", b / KB),
        b if b < KB * KB * KB => format!("{}MB", b / KB / KB),
        b => format!("{:.2}GB", b as f64 / (KB * KB * KB) as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_read_back() {
        let t = 1_796_558_400; // 2026-12-06 12:00:00 UTC
        assert_eq!(stamp(t), "2026_12_06-12_00_00");
        let a = ArchiveName::parse(&format!("vzdump-lxc-101-{}.tar.zst", stamp(t))).unwrap();
        assert_eq!(
            a,
            ArchiveName {
                vmid: 101,
                ctime: t,
                format: "tar.zst".into()
            }
        );
        assert!(ArchiveName::parse("vzdump-lxc-101-2026_12_06-12_00_00.log").is_none());
        assert!(ArchiveName::parse("vzdump-qemu-101-2026_12_06-12_00_00.vma.zst").is_none());
        assert_eq!(human(3 << 20), "3MB");
    }
}
