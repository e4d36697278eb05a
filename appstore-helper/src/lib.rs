//! pve-appstore-helper: the one small program of PVE App Store that runs as root. It reads one JSON
//! request on stdin and answers JSON lines on stdout, so one code path serves systemd socket
//! activation (the socket is stdin/stdout, the peer is checked with SO_PEERCRED) and sudo. Before it
//! acts it re-checks, from the node's own files, that the container is in the configured pool and
//! carries the managed tag; it validates every argument, never builds a shell string, keeps secrets
//! off command lines, and audits every action. It depends on appstore-core only.

pub mod actions;
pub mod audit;
pub mod checks;
pub mod client;
pub mod config;
pub mod deliver;
pub mod process;
pub mod protocol;
pub mod safe_fs;

pub use actions::Helper;
pub use config::HelperConfig;
pub use protocol::{DeviceRequest, Reply, ReplyError, Request};

/// Largest request read from stdin.
pub const MAX_REQUEST_BYTES: u64 = 1 << 20;
