//! What the PVE API answers and takes, typed. Answers are read leniently (unknown fields ignored,
//! numbers that older releases send as strings accepted); requests are built so that a real node
//! accepts them (booleans as 1/0, property strings in PVE's syntax).

use appstore_core::Ctid;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// Reads an integer that may come as a JSON number or a string (`vmid` before PVE 8.2, `nextid`).
pub fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Str(String),
    }
    match N::deserialize(d)? {
        N::Num(n) => Ok(n),
        N::Str(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

fn opt_int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Str(String),
        Float(f64),
    }
    Ok(match Option::<N>::deserialize(d)? {
        None => None,
        Some(N::Num(n)) => Some(n),
        Some(N::Float(f)) => Some(f as u64),
        Some(N::Str(s)) => s.trim().parse().ok(),
    })
}

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct VersionInfo {
    /// `8.4.1`.
    pub version: String,
    /// `8.4`.
    pub release: String,
    /// Repository id.
    #[serde(default)]
    pub repoid: String,
}

impl VersionInfo {
    /// (major, minor) of the release.
    pub fn major_minor(&self) -> (u32, u32) {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    /// `PUT /pools` and `GET /pools?poolid=` exist (8.1+).
    pub fn has_pool_put(&self) -> bool {
        self.major_minor() >= (8, 1)
    }

    /// `GET .../interfaces` exists (8.1+).
    pub fn has_interfaces(&self) -> bool {
        self.major_minor() >= (8, 1)
    }

    /// `devN` passthrough entries exist (8.1+).
    pub fn has_dev_passthrough(&self) -> bool {
        self.major_minor() >= (8, 1)
    }
}

/// `GET /nodes` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct NodeInfo {
    /// Name.
    pub node: String,
    /// `online` / `offline`.
    #[serde(default)]
    pub status: String,
    /// SHA-256 fingerprint of its certificate.
    #[serde(default)]
    pub ssl_fingerprint: Option<String>,
}

/// A container in a list (`GET /nodes/{node}/lxc`, pool members, cluster resources).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct LxcSummary {
    /// Container id (a string before PVE 8.2).
    #[serde(deserialize_with = "int_or_string")]
    pub vmid: u64,
    /// Hostname.
    #[serde(default)]
    pub name: Option<String>,
    /// `running` / `stopped`.
    #[serde(default)]
    pub status: String,
    /// Tags, `;`-separated.
    #[serde(default)]
    pub tags: Option<String>,
    /// Lock, when locked.
    #[serde(default)]
    pub lock: Option<String>,
    /// Pool (cluster resources only).
    #[serde(default)]
    pub pool: Option<String>,
    /// Node (cluster resources and pool members).
    #[serde(default)]
    pub node: Option<String>,
}

/// Kind of a cluster resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// Guests.
    Vm,
    /// Storages.
    Storage,
    /// Nodes.
    Node,
}

/// `GET /cluster/resources` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ClusterResource {
    /// `lxc/101`, `storage/pve1/local`, `node/pve1`.
    pub id: String,
    /// `lxc`, `qemu`, `storage`, `node`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Node.
    #[serde(default)]
    pub node: Option<String>,
    /// Guest id.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub vmid: Option<u64>,
    /// Pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// Status.
    #[serde(default)]
    pub status: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Storage id.
    #[serde(default)]
    pub storage: Option<String>,
}

/// A pool in `GET /pools`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PoolSummary {
    /// Pool id.
    pub poolid: String,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// One member of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PoolMember {
    /// `lxc/101` or `storage/pve1/local-lvm`.
    pub id: String,
    /// `lxc`, `qemu`, `storage`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Guest id.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub vmid: Option<u64>,
    /// Storage id.
    #[serde(default)]
    pub storage: Option<String>,
    /// Node.
    #[serde(default)]
    pub node: Option<String>,
}

/// A pool with its members.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PoolInfo {
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// Members.
    #[serde(default)]
    pub members: Vec<PoolMember>,
}

/// A storage of a node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct StorageInfo {
    /// Storage id.
    pub storage: String,
    /// Plugin type (`dir`, `lvmthin`, `zfspool`, ...).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Content types, comma-separated.
    #[serde(default)]
    pub content: String,
    /// Free bytes.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub avail: Option<u64>,
    /// Active.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub active: Option<u64>,
}

/// A volume in a storage's content list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Volume {
    /// `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`.
    pub volid: String,
    /// `vztmpl`, `rootdir`, ...
    #[serde(default)]
    pub content: String,
    /// Size in bytes.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub size: Option<u64>,
}

/// An appliance template `aplinfo` can download.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Appliance {
    /// File name, `debian-12-standard_12.7-1_amd64.tar.zst`.
    pub template: String,
    /// `debian-12`.
    #[serde(default)]
    pub os: String,
    /// Package name.
    #[serde(default)]
    pub package: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// `system`, `turnkeylinux`, ...
    #[serde(default)]
    pub section: String,
    /// Headline.
    #[serde(default)]
    pub headline: String,
}

/// A network interface of a node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct NetworkInterface {
    /// Name (`vmbr0`).
    pub iface: String,
    /// Type (`bridge`, `OVSBridge`, ...).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Active.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub active: Option<u64>,
    /// Address with prefix.
    #[serde(default)]
    pub cidr: Option<String>,
}

/// `GET .../status/current`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct LxcStatus {
    /// `running` / `stopped`.
    pub status: String,
    /// Hostname.
    #[serde(default)]
    pub name: Option<String>,
    /// Cores.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub cpus: Option<u64>,
    /// CPU load, 0..cores.
    #[serde(default)]
    pub cpu: Option<f64>,
    /// Memory used, bytes.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub mem: Option<u64>,
    /// Memory limit, bytes.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub maxmem: Option<u64>,
    /// Disk used, bytes.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub disk: Option<u64>,
    /// Disk size, bytes.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub maxdisk: Option<u64>,
    /// Seconds up.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub uptime: Option<u64>,
    /// Network bytes in.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub netin: Option<u64>,
    /// Network bytes out.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub netout: Option<u64>,
    /// Lock.
    #[serde(default)]
    pub lock: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<String>,
}

/// A running container's interface.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// MAC.
    #[serde(default)]
    pub hwaddr: Option<String>,
    /// IPv4 with prefix.
    #[serde(default)]
    pub inet: Option<String>,
    /// IPv6 with prefix.
    #[serde(default)]
    pub inet6: Option<String>,
}

/// A container's config as the API returns it: option -> value (text), and the digest to send back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LxcConfig {
    /// Options (numbers rendered as text).
    pub options: BTreeMap<String, String>,
    /// SHA1 of the file, for `PUT ... digest`.
    pub digest: String,
}

impl LxcConfig {
    /// Tags, normalised.
    pub fn tags(&self) -> Vec<String> {
        self.options
            .get("tags")
            .map(|t| appstore_tags(t))
            .unwrap_or_default()
    }
}

fn appstore_tags(list: &str) -> Vec<String> {
    let mut v: Vec<String> = list
        .split([',', ';', ' '])
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// A snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Snapshot {
    /// Name (`current` is the running state).
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Parent snapshot.
    #[serde(default)]
    pub parent: Option<String>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub snaptime: Option<u64>,
}

/// `GET .../tasks/{upid}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TaskStatus {
    /// `running` / `stopped`.
    pub status: String,
    /// `OK`, `WARNINGS: N`, or the error; only when stopped.
    #[serde(default)]
    pub exitstatus: Option<String>,
}

impl TaskStatus {
    /// Finished without error (`OK` or `WARNINGS: N`).
    pub fn succeeded(&self) -> bool {
        self.exitstatus
            .as_deref()
            .is_some_and(|e| e == "OK" || e.starts_with("WARNINGS"))
    }
}

/// One task log line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct LogLine {
    /// Line number (1-based).
    pub n: u64,
    /// Text.
    pub t: String,
}

/// Network settings of `net0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Bridge.
    pub bridge: String,
    /// `dhcp` or `a.b.c.d/nn`.
    pub ip: String,
    /// IPv4 gateway (static only).
    pub gw: Option<String>,
    /// `auto`, `dhcp`, `manual` or an address with prefix.
    pub ip6: Option<String>,
    /// IPv6 gateway.
    pub gw6: Option<String>,
    /// VLAN tag.
    pub tag: Option<u16>,
    /// Firewall on the interface.
    pub firewall: bool,
}

impl NetConfig {
    /// The `net0` property string.
    pub fn property_string(&self) -> String {
        let mut s = format!("name=eth0,bridge={},ip={}", self.bridge, self.ip);
        if let Some(gw) = &self.gw {
            s.push_str(&format!(",gw={gw}"));
        }
        if let Some(ip6) = &self.ip6 {
            s.push_str(&format!(",ip6={ip6}"));
        }
        if let Some(gw6) = &self.gw6 {
            s.push_str(&format!(",gw6={gw6}"));
        }
        if let Some(tag) = self.tag {
            s.push_str(&format!(",tag={tag}"));
        }
        s.push_str(&format!(",firewall={},type=veth", u8::from(self.firewall)));
        s
    }
}

/// Everything `POST /nodes/{node}/lxc` gets from the store. Tags are not here: a pool-scoped token
/// may not send them in the create call; they are set with a config update after the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateLxc {
    /// Container id.
    pub vmid: Ctid,
    /// Template volume (`local:vztmpl/...`).
    pub ostemplate: String,
    /// Hostname.
    pub hostname: String,
    /// Pool the container goes into.
    pub pool: String,
    /// Storage of the root disk.
    pub storage: String,
    /// Root disk size in GiB.
    pub disk_gb: u32,
    /// Cores.
    pub cores: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// Swap in MiB.
    pub swap_mb: u32,
    /// Unprivileged (always sent: PVE's default is privileged).
    pub unprivileged: bool,
    /// Start on boot.
    pub onboot: bool,
    /// Nesting (the only feature a token may set).
    pub nesting: bool,
    /// `net0`.
    pub net: NetConfig,
    /// Description (Markdown shown in the PVE UI).
    pub description: Option<String>,
    /// PVE-managed volumes: (mp index, storage, size GiB, mount path).
    pub volumes: Vec<(u8, String, u32, String)>,
}

impl CreateLxc {
    /// The form parameters, as a real node takes them.
    pub fn form(&self) -> Vec<(String, String)> {
        let b = |v: bool| if v { "1".to_string() } else { "0".to_string() };
        let mut f = vec![
            ("vmid".to_string(), self.vmid.to_string()),
            ("ostemplate".to_string(), self.ostemplate.clone()),
            ("hostname".to_string(), self.hostname.clone()),
            ("pool".to_string(), self.pool.clone()),
            (
                "rootfs".to_string(),
                format!("{}:{}", self.storage, self.disk_gb),
            ),
            ("cores".to_string(), self.cores.to_string()),
            ("memory".to_string(), self.memory_mb.to_string()),
            ("swap".to_string(), self.swap_mb.to_string()),
            ("unprivileged".to_string(), b(self.unprivileged)),
            ("onboot".to_string(), b(self.onboot)),
            ("net0".to_string(), self.net.property_string()),
        ];
        if self.nesting {
            f.push(("features".to_string(), "nesting=1".to_string()));
        }
        if let Some(d) = &self.description {
            f.push(("description".to_string(), d.clone()));
        }
        for (i, storage, size, path) in &self.volumes {
            // Data volumes go into PVE's backups (`vzdump` leaves a volume out without it).
            f.push((
                format!("mp{i}"),
                format!("{storage}:{size},mp={path},backup=1"),
            ));
        }
        f
    }
}

/// A time frame of PVE's RRD data (8.x: 70 rows each; 9.x: more, at finer steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timeframe {
    /// One row a minute.
    Hour,
    /// One row per 30 minutes.
    Day,
    /// One row per 3 hours.
    Week,
}

impl Timeframe {
    /// The name PVE takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Timeframe::Hour => "hour",
            Timeframe::Day => "day",
            Timeframe::Week => "week",
        }
    }

    /// The frame called `s`.
    pub fn parse(s: &str) -> Option<Timeframe> {
        [Timeframe::Hour, Timeframe::Day, Timeframe::Week]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// One row of a container's RRD data; a row from before the container existed (or while the node
/// was down) has only `time`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct RrdRow {
    /// Start of the row's interval, seconds since the epoch.
    pub time: u64,
    /// CPU use, a fraction of `maxcpu` cores (0..1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxcpu: Option<f64>,
    /// Memory in use, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<f64>,
    /// Memory limit, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxmem: Option<f64>,
    /// Received, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netin: Option<f64>,
    /// Sent, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netout: Option<f64>,
    /// Read from disk, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diskread: Option<f64>,
    /// Written to disk, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diskwrite: Option<f64>,
}

/// How `vzdump` backs up a running container.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    /// A storage snapshot while the container runs (PVE falls back to suspend where the storage
    /// cannot snapshot).
    #[default]
    Snapshot,
    /// Copy, then freeze the container for a final sync.
    Suspend,
    /// Stop the container for the backup, then start it again.
    Stop,
}

impl BackupMode {
    /// The mode called `s` (as stored); `snapshot` for anything else.
    pub fn parse(s: &str) -> BackupMode {
        match s {
            "suspend" => BackupMode::Suspend,
            "stop" => BackupMode::Stop,
            _ => BackupMode::Snapshot,
        }
    }

    /// The name PVE takes.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupMode::Snapshot => "snapshot",
            BackupMode::Suspend => "suspend",
            BackupMode::Stop => "stop",
        }
    }
}

/// One `vzdump` of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vzdump {
    /// The container.
    pub vmid: Ctid,
    /// The backup storage.
    pub storage: String,
    /// Mode.
    pub mode: BackupMode,
    /// Notes kept beside the archive (`{{guestname}}`, `{{vmid}}` are PVE's variables).
    pub notes: Option<String>,
}

impl Vzdump {
    /// The form parameters: zstd, no pruning by PVE (the store prunes, with fewer privileges).
    pub fn form(&self) -> Vec<(String, String)> {
        let mut f = vec![
            ("vmid".to_string(), self.vmid.to_string()),
            ("storage".to_string(), self.storage.clone()),
            ("mode".to_string(), self.mode.as_str().to_string()),
            ("compress".to_string(), "zstd".to_string()),
            ("remove".to_string(), "0".to_string()),
        ];
        if let Some(n) = &self.notes {
            f.push(("notes-template".to_string(), n.clone()));
        }
        f
    }
}

/// A backup archive on a storage (`GET .../storage/{storage}/content?content=backup`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BackupVolume {
    /// `local:backup/vzdump-lxc-101-2026_12_06-10_00_00.tar.zst`.
    pub volid: String,
    /// Bytes.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub size: Option<u64>,
    /// When it was made, seconds since the epoch.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub ctime: Option<u64>,
    /// The container it is of.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub vmid: Option<u64>,
    /// `tar.zst`, ...
    #[serde(default)]
    pub format: Option<String>,
    /// The first line of its notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// Protected from pruning and deletion.
    #[serde(default, deserialize_with = "opt_int_or_string")]
    pub protected: Option<u64>,
}

/// A restore of a backup archive into a container (`POST /nodes/{node}/lxc` with `restore=1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreLxc {
    /// The container id (a new one, or the one to overwrite with `force`).
    pub vmid: Ctid,
    /// The archive's volume id.
    pub archive: String,
    /// Storage for the root disk and volumes.
    pub storage: String,
    /// Pool of a new container.
    pub pool: Option<String>,
    /// Overwrite the existing (stopped) container.
    pub force: bool,
    /// New MAC addresses (the original may still run).
    pub unique: bool,
    /// Options sent, which win over the archive's (`description`).
    pub options: Vec<(String, String)>,
}

impl RestoreLxc {
    /// The form parameters.
    pub fn form(&self) -> Vec<(String, String)> {
        let mut f = vec![
            ("vmid".to_string(), self.vmid.to_string()),
            ("ostemplate".to_string(), self.archive.clone()),
            ("restore".to_string(), "1".to_string()),
            ("storage".to_string(), self.storage.clone()),
        ];
        if let Some(p) = &self.pool {
            f.push(("pool".to_string(), p.clone()));
        }
        if self.force {
            f.push(("force".to_string(), "1".to_string()));
        }
        if self.unique {
            f.push(("unique".to_string(), "1".to_string()));
        }
        f.extend(self.options.iter().cloned());
        f
    }
}
