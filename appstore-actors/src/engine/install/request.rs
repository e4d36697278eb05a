//! What a user asks of an install, an upgrade or a reconfigure, as the API receives it.

use appstore_core::manifest::Manifest;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Network choices of an install.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkRequest {
    /// `dhcp` (default) or a static IPv4 address with prefix.
    #[serde(default)]
    pub ip: Option<String>,
    /// IPv4 gateway (static only).
    #[serde(default)]
    pub gw: Option<String>,
    /// `auto`, `dhcp` or a static IPv6 address with prefix.
    #[serde(default)]
    pub ip6: Option<String>,
    /// IPv6 gateway.
    #[serde(default)]
    pub gw6: Option<String>,
    /// VLAN tag.
    #[serde(default)]
    pub vlan: Option<u16>,
}

/// What the user asked for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// The app.
    pub app_id: String,
    /// Form values.
    #[serde(default)]
    pub inputs: serde_json::Map<String, Value>,
    /// Hostname (default: the app id).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Storage override.
    #[serde(default)]
    pub storage: Option<String>,
    /// Bridge override.
    #[serde(default)]
    pub bridge: Option<String>,
    /// Cores override.
    #[serde(default)]
    pub cores: Option<u32>,
    /// Memory override (MiB).
    #[serde(default)]
    pub memory_mb: Option<u32>,
    /// Disk override (GiB).
    #[serde(default)]
    pub disk_gb: Option<u32>,
    /// Network.
    #[serde(default)]
    pub network: NetworkRequest,
    /// Take back data volumes kept by an earlier uninstall of this app (default: yes).
    #[serde(default)]
    pub reuse_volumes: Option<bool>,
    /// GPU: none (default), the best one, or named devices.
    #[serde(default)]
    pub gpu: appstore_core::gpu::GpuRequest,
    /// Optional volumes (by name) not to mount.
    #[serde(default)]
    pub skip_volumes: Vec<String>,
}

impl InstallRequest {
    /// The request's host name and network settings, for [`appstore_core::network::check`].
    pub fn network_fields(&self) -> appstore_core::network::NetworkFields<'_> {
        appstore_core::network::NetworkFields {
            hostname: self.hostname.as_deref(),
            ip: self.network.ip.as_deref(),
            gw: self.network.gw.as_deref(),
            ip6: self.network.ip6.as_deref(),
            gw6: self.network.gw6.as_deref(),
            vlan: self.network.vlan,
        }
    }
}

impl InstallRequest {
    /// The request as stored: secret inputs masked.
    pub fn redacted_json(&self, manifest: &Manifest) -> Value {
        let inputs: serde_json::Map<String, Value> = self
            .inputs
            .iter()
            .map(|(k, v)| {
                let secret = manifest
                    .input(k)
                    .is_some_and(|i| i.kind == appstore_core::manifest::InputType::Secret);
                (k.clone(), if secret { json!("***") } else { v.clone() })
            })
            .collect();
        json!({
            "app_id": self.app_id, "inputs": inputs, "hostname": self.hostname, "storage": self.storage,
            "bridge": self.bridge, "cores": self.cores, "memory_mb": self.memory_mb, "disk_gb": self.disk_gb,
            "network": {"ip": self.network.ip, "gw": self.network.gw, "ip6": self.network.ip6, "gw6": self.network.gw6, "vlan": self.network.vlan},
            "reuse_volumes": self.reuse_volumes,
        })
    }
}

/// What an uninstall job records as its request (and reads back when it resumes): the install, or
/// the failed install job whose container it destroys, and whether the data volumes are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct UninstallRequest {
    /// The install, for an uninstall of an installed app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_id: Option<i64>,
    /// The failed install job, for a destroy of the container it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_job: Option<i64>,
    /// Keep the data volumes for a later install of the same app.
    #[serde(default)]
    pub keep_volumes: bool,
}

impl UninstallRequest {
    /// The request stored with job `job`; a request that cannot be read keeps nothing and names
    /// no failed job.
    pub fn of(job: &crate::store::JobRecord) -> UninstallRequest {
        serde_json::from_str(&job.request).unwrap_or_default()
    }
}

/// An upgrade or a reconfigure of an existing install.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintainRequest {
    /// The install.
    pub install_id: i64,
    /// Reconfigure: the new values of reconfigurable inputs (an empty secret keeps the old one).
    #[serde(default)]
    pub inputs: serde_json::Map<String, Value>,
    /// Reconfigure: restart the container after the script.
    #[serde(default)]
    pub restart: bool,
    /// Upgrade: go on without a snapshot when the storage cannot take one (no rollback then).
    #[serde(default)]
    pub allow_no_snapshot: bool,
    /// Upgrade: keep the snapshot after a successful upgrade.
    #[serde(default)]
    pub keep_snapshot: bool,
}

impl MaintainRequest {
    /// The request as stored: secret inputs masked.
    pub fn redacted_json(&self, manifest: &Manifest) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        for (k, val) in self.inputs.iter() {
            let secret = manifest
                .input(k)
                .is_some_and(|i| i.kind == appstore_core::manifest::InputType::Secret);
            if secret && !val.is_null() && val != "" {
                v["inputs"][k] = json!("***");
            }
        }
        v
    }
}
