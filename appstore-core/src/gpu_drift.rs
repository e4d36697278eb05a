//! GPU drift: what no longer matches between an app's container and the host's GPUs. After the
//! host's NVIDIA driver changed, the container's userland (installed for the driver of its last GPU
//! setup) no longer matches; a card that was unplugged, or whose driver was unloaded, is gone.
//! Pure: the caller reads the store's attachments and the inventory.

use serde::Serialize;
use std::collections::BTreeSet;

/// One mismatch of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Drift {
    /// The host's NVIDIA driver is not the one the container was set up for.
    DriverMismatch {
        /// The driver the container's userland matches.
        container: String,
        /// The host's driver now.
        host: String,
    },
    /// An attached GPU is not on the host.
    Vanished {
        /// Its PCI address.
        pci_address: String,
    },
}

impl Drift {
    /// For people: `container 550.54.14, host 560.35.03`.
    pub fn message(&self) -> String {
        match self {
            Drift::DriverMismatch { container, host } => format!(
                "NVIDIA driver mismatch: container {container}, host {host}; run a GPU sync"
            ),
            Drift::Vanished { pci_address } => format!(
                "the GPU {pci_address} is gone (unplugged, or its driver unloaded); the app is attached again when it comes back"
            ),
        }
    }
}

/// The drift of a container with GPUs `attached` (PCI addresses) set up for NVIDIA driver
/// `synced` (if NVIDIA), on a host whose GPUs are `present` and whose driver is `host_driver`.
pub fn drift(
    attached: &BTreeSet<String>,
    synced: Option<&str>,
    present: &BTreeSet<String>,
    host_driver: Option<&str>,
) -> Vec<Drift> {
    let mut out: Vec<Drift> = attached
        .iter()
        .filter(|p| !present.contains(*p))
        .map(|p| Drift::Vanished {
            pci_address: p.clone(),
        })
        .collect();
    if let (Some(c), Some(h)) = (synced, host_driver) {
        if c != h {
            out.push(Drift::DriverMismatch {
                container: c.to_string(),
                host: h.to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_changed_driver_and_a_missing_card_are_drift() {
        let attached = set(&["0000:01:00.0"]);
        assert!(drift(&attached, Some("550.54.14"), &attached, Some("550.54.14")).is_empty());
        let d = drift(&attached, Some("550.54.14"), &attached, Some("560.35.03"));
        assert_eq!(d.len(), 1);
        assert!(
            d[0].message()
                .contains("container 550.54.14, host 560.35.03"),
            "{}",
            d[0].message()
        );
        let d = drift(&attached, Some("550.54.14"), &set(&[]), None);
        assert_eq!(
            d,
            [Drift::Vanished {
                pci_address: "0000:01:00.0".into()
            }]
        );
        // Intel and AMD have no userland version to match.
        assert!(drift(&attached, None, &attached, Some("560.35.03")).is_empty());
    }
}
