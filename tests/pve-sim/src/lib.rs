//! pve-sim: a stand-in for one Proxmox VE 8.x node, faithful enough that code which passes against it
//! works on a real node. The HTTP API validates every request against the real schema (a subset copied
//! into `data/`), checks tokens and ACLs as PVE does, runs asynchronous work as tasks with UPIDs, and
//! keeps its state on disk in PVE's layout so that `pct` (the `pve-sim-pct` binary) and the privileged
//! helper read the same files a real node has. Containers come from a back end: `inert` (no processes)
//! or real LXC.

pub mod acl;
pub mod api;
pub mod backend;
pub mod backup;
pub mod harness;
pub mod lxc;
pub mod metrics;
pub mod ops;
pub mod pct;
pub mod pvesh;
pub mod pveum;
pub mod schema;
pub mod server;
pub mod setup;
pub mod state;
pub mod tasks;
pub mod user_cfg;

/// The PVE release the simulator behaves as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PveVersion {
    /// 8.0: no `PUT /pools`, no `/interfaces`, no `devN`, vmid as a string in lists, no `message` in
    /// error bodies.
    V8_0,
    /// 8.2: `devN` without `deny-write`, integer vmids.
    V8_2,
    /// 8.4: everything in the 8.4 schema.
    V8_4,
    /// 9.0 (Debian 13): the 9.1 schema's endpoints, no `VM.Monitor`, Debian 13 templates, cgroup v2
    /// only, and `pct exec` without `--keep-env` keeps no host environment (the announced default).
    V9_0,
    /// 9.1: as 9.0; the create call also knows `entrypoint`, `env` and `ha-managed` (OCI images).
    V9_1,
}

impl PveVersion {
    /// Every release the simulator knows, oldest first.
    pub const ALL: [PveVersion; 5] = [
        PveVersion::V8_0,
        PveVersion::V8_2,
        PveVersion::V8_4,
        PveVersion::V9_0,
        PveVersion::V9_1,
    ];

    /// Parses `8.0`, `8.2`, `8.4`, `9.0` or `9.1`.
    pub fn parse(s: &str) -> Option<Self> {
        PveVersion::ALL.into_iter().find(|v| v.release() == s)
    }

    /// Full version string.
    pub fn full(self) -> &'static str {
        match self {
            PveVersion::V8_0 => "8.0.9",
            PveVersion::V8_2 => "8.2.8",
            PveVersion::V8_4 => "8.4.1",
            PveVersion::V9_0 => "9.0.11",
            PveVersion::V9_1 => "9.1.2",
        }
    }

    /// Release (`8.4`).
    pub fn release(self) -> &'static str {
        match self {
            PveVersion::V8_0 => "8.0",
            PveVersion::V8_2 => "8.2",
            PveVersion::V8_4 => "8.4",
            PveVersion::V9_0 => "9.0",
            PveVersion::V9_1 => "9.1",
        }
    }

    /// A 9.x release.
    pub fn is_9(self) -> bool {
        self >= PveVersion::V9_0
    }

    /// The API schema of this release: 8.x nodes answer by the 8.4 schema, 9.x nodes by 9.1's.
    pub fn schema(self) -> &'static schema::Schema {
        if self.is_9() {
            schema::schema_9()
        } else {
            schema::schema()
        }
    }

    /// Does this release have the endpoint at all?
    pub fn has_endpoint(self, method: &str, template: &str) -> bool {
        let since_8_1 = matches!(
            (method, template),
            ("PUT" | "DELETE", "/pools") | ("GET", "/nodes/{node}/lxc/{vmid}/interfaces")
        );
        !(since_8_1 && self < PveVersion::V8_2)
    }

    /// Does this release know the parameter (by schema name, `dev[n]`)?
    pub fn has_param(self, method: &str, template: &str, name: &str) -> bool {
        match name {
            // OCI application containers came with 9.1.
            "entrypoint" | "env" | "ha-managed" if template.starts_with("/nodes/{node}/lxc") => {
                self >= PveVersion::V9_1
            }
            "dev[n]" => self >= PveVersion::V8_2,
            "poolid" | "type" if method == "GET" && template == "/pools" => {
                self >= PveVersion::V8_2
            }
            _ => true,
        }
    }
}
