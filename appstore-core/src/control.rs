//! Container controls of an installed app: power (start, stop, shutdown, reboot), resources (cores,
//! memory, a bigger root disk) and start at boot. Each runs as a `control` job; this module holds the
//! request and its checks against the store's caps, so a bad request is refused, with its field,
//! before a job exists.

use crate::policy::ResourceCaps;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One control of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    /// Start a stopped container.
    Start {},
    /// Stop at once (like pulling the plug).
    Stop {},
    /// Ask the container to shut down cleanly; stopped after the timeout.
    Shutdown {},
    /// Shut down and start again.
    Reboot {},
    /// New cores and memory, and a root disk grown to `disk_gb`; each is optional.
    Resize {
        /// CPU cores.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cores: Option<u32>,
        /// Memory, MiB.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        memory_mb: Option<u32>,
        /// The root disk's new size, GiB (only growing is possible).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disk_gb: Option<u32>,
    },
    /// Start the container when the host boots, or not.
    Onboot {
        /// On or off.
        enabled: bool,
    },
}

/// What a container has now, for the checks of a resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    /// Cores.
    pub cores: u32,
    /// Memory, MiB.
    pub memory_mb: u32,
    /// Root disk, GiB (rounded down).
    pub disk_gb: u32,
}

impl Control {
    /// The action's name (`start`, `resize`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Control::Start {} => "start",
            Control::Stop {} => "stop",
            Control::Shutdown {} => "shutdown",
            Control::Reboot {} => "reboot",
            Control::Resize { .. } => "resize",
            Control::Onboot { .. } => "onboot",
        }
    }

    /// A line for the job list: `resize (2 cores, 1024 MiB)`.
    pub fn describe(&self) -> String {
        match self {
            Control::Resize {
                cores,
                memory_mb,
                disk_gb,
            } => {
                let mut parts = Vec::new();
                if let Some(c) = cores {
                    parts.push(format!("{c} cores"));
                }
                if let Some(m) = memory_mb {
                    parts.push(format!("{m} MiB memory"));
                }
                if let Some(d) = disk_gb {
                    parts.push(format!("{d} GiB disk"));
                }
                format!("resize ({})", parts.join(", "))
            }
            Control::Onboot { enabled } => {
                format!("start at boot {}", if *enabled { "on" } else { "off" })
            }
            other => other.name().to_string(),
        }
    }

    /// Checks a request against the caps and, for a disk, against the current size. Every problem
    /// is reported on its field with the fix.
    pub fn check(
        &self,
        caps: &ResourceCaps,
        now: Option<Current>,
    ) -> Result<(), BTreeMap<String, String>> {
        let Control::Resize {
            cores,
            memory_mb,
            disk_gb,
        } = self
        else {
            return Ok(());
        };
        let mut errors = BTreeMap::new();
        if cores.is_none() && memory_mb.is_none() && disk_gb.is_none() {
            errors.insert(
                "cores".to_string(),
                "a resize needs at least one of cores, memory_mb or disk_gb".to_string(),
            );
        }
        let mut cap = |field: &str, asked: Option<u32>, max: u32, min: u32, key: &str| match asked {
            Some(v) if v < min => {
                errors.insert(
                    field.to_string(),
                    format!("{v} is below the minimum of {min}; ask for {min} to {max}"),
                );
            }
            Some(v) if v > max => {
                errors.insert(field.to_string(), format!("{v} is above the cap of {max}; ask for at most {max}, or raise `caps.{key}` in the store's config"));
            }
            _ => {}
        };
        cap("cores", *cores, caps.max_cores, 1, "max_cores");
        cap(
            "memory_mb",
            *memory_mb,
            caps.max_memory_mb,
            64,
            "max_memory_mb",
        );
        cap("disk_gb", *disk_gb, caps.max_disk_gb, 1, "max_disk_gb");
        if let (Some(d), Some(now)) = (disk_gb, now) {
            if *d <= now.disk_gb && !errors.contains_key("disk_gb") {
                errors.insert(
                    "disk_gb".to_string(),
                    format!("the root disk is {} GiB already and can only grow; ask for more than {} GiB, or leave disk_gb out", now.disk_gb, now.disk_gb),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn caps() -> ResourceCaps {
        ResourceCaps {
            max_cores: 4,
            max_memory_mb: 4096,
            max_disk_gb: 64,
        }
    }

    #[test]
    fn requests_read_from_json() {
        let c: Control = serde_json::from_str(r#"{"action":"resize","cores":2}"#).unwrap();
        assert_eq!(
            c,
            Control::Resize {
                cores: Some(2),
                memory_mb: None,
                disk_gb: None
            }
        );
        assert_eq!(c.describe(), "resize (2 cores)");
        let c: Control = serde_json::from_str(r#"{"action":"onboot","enabled":true}"#).unwrap();
        assert_eq!(c.describe(), "start at boot on");
        assert!(serde_json::from_str::<Control>(r#"{"action":"explode"}"#).is_err());
        assert!(serde_json::from_str::<Control>(r#"{"action":"start","cores":1}"#).is_err());
    }

    #[test]
    fn resizes_stay_in_the_caps_and_disks_only_grow() {
        let now = Some(Current {
            cores: 1,
            memory_mb: 512,
            disk_gb: 8,
        });
        let ok = Control::Resize {
            cores: Some(4),
            memory_mb: Some(2048),
            disk_gb: Some(10),
        };
        assert_eq!(ok.check(&caps(), now), Ok(()));
        let bad = Control::Resize {
            cores: Some(9),
            memory_mb: Some(16),
            disk_gb: Some(8),
        };
        let errors = bad.check(&caps(), now).unwrap_err();
        assert!(errors["cores"].contains("caps.max_cores"), "{errors:?}");
        assert!(errors["memory_mb"].contains("minimum of 64"), "{errors:?}");
        assert!(errors["disk_gb"].contains("can only grow"), "{errors:?}");
        let empty = Control::Resize {
            cores: None,
            memory_mb: None,
            disk_gb: None,
        };
        assert!(empty.check(&caps(), now).is_err());
        assert_eq!(Control::Reboot {}.check(&caps(), now), Ok(()));
    }
}
