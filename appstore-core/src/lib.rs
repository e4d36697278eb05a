//! Pure core of PVE App Store: app manifests and their validation, install form values, templates,
//! policy decisions, the PVE container config format, the store's config file and log redaction.
//!
//! Nothing here does I/O, spawns processes or runs async code: callers read files and talk to Proxmox,
//! and hand the data in. Every check reports all problems at once, each with the path of its field.
//!
//! ```
//! let text = "\
//! id: hello
//! name: Hello
//! description: Says hello
//! version: 1.0.0
//! lxc: { ostemplate: debian-12 }
//! provision: { script: install.sh }
//! ";
//! let manifest = appstore_core::parse_manifest(text, Some("hello")).expect("valid manifest");
//! assert_eq!(manifest.id().as_str(), "hello");
//! assert_eq!(manifest.lxc().memory_mb, 512);
//! ```

#![warn(missing_docs)]

pub mod access;
pub mod config;
pub mod control;
pub mod ctid;
pub mod device;
pub mod diag;
pub mod gpu;
pub mod gpu_drift;
pub mod inputs;
pub mod job;
pub mod journal;
pub mod manifest;
pub mod network;
pub mod notify;
pub mod ostemplate;
pub mod policy;
pub mod pve_config;
pub mod pve_pools;
pub mod redact;
pub mod schedule;
mod schema_check;
pub mod script_env;
pub mod template;
pub mod update_policy;
pub mod upgrade;
pub mod yaml;

pub use ctid::Ctid;
pub use diag::{Diagnostic, Diagnostics};
pub use manifest::{check_manifest, parse_manifest, AppId, Manifest, ManifestCheck, RelPath};

/// Version of this store, for manifests' `requires.store`.
pub const STORE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Errors of the core library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An app manifest has problems.
    #[error("invalid app manifest:\n{0}")]
    InvalidManifest(Diagnostics),
    /// The store's config file has problems.
    #[error("invalid configuration:\n{0}")]
    InvalidConfig(Diagnostics),
    /// Submitted install form values have problems.
    #[error("invalid input values: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    InvalidInputs(Vec<inputs::FieldError>),
    /// A template could not be rendered.
    #[error("template for {what} cannot be rendered")]
    Template {
        /// Which template (`outputs.url`, `provision.env.PORT`).
        what: String,
        /// Why.
        #[source]
        source: template::TemplateError,
    },
    /// A container config file could not be parsed.
    #[error("container config cannot be parsed")]
    PveConfig(#[from] pve_config::PveConfigError),
}
