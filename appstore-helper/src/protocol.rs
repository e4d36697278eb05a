//! The helper's protocol: one JSON request on stdin, JSON lines on stdout (output lines of a script as
//! they come, then one final result). Every action names one container; nothing is a shell string.

use appstore_core::Ctid;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where the store's files land inside a container; every path the helper writes, checks or removes
/// there is below it.
pub const CONTAINER_BASE: &str = "/opt/appstore";

/// The helper's script wrapper inside the container, delivered with every archive.
pub const WRAPPER_PATH: &str = "/opt/appstore/bin/run-script";

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Runs `/bin/bash /opt/appstore/provision/<script>` inside the container through the fixed
    /// wrapper the helper delivers ([`WRAPPER_PATH`]). `env` and `inputs` go to the wrapper on
    /// standard input, never into the environment or the command line of a host process; the
    /// wrapper exports the variables, keeps the inputs in a private file under `/run` for the
    /// script's lifetime, and stops the script inside the container at `timeout_sec`.
    RunScript {
        /// Container id.
        ctid: Ctid,
        /// Script path relative to `/opt/appstore/provision/`.
        script: String,
        /// Environment variables (names checked by `appstore_core::script_env`); may hold secrets.
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// The inputs as JSON, given to the script as `$APPSTORE_INPUTS` (a 0600 file that lives
        /// as long as the script). May hold secrets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inputs: Option<serde_json::Value>,
        /// Seconds before the script is stopped (at most
        /// `appstore_core::script_env::MAX_SCRIPT_TIMEOUT_SEC`).
        timeout_sec: u32,
    },
    /// Delivers a job's files into the container in one go: a tar archive in the job root (regular
    /// files and directories below `provision/` only) is opened once without following links,
    /// checked, copied into the helper's private staging together with the helper's own script
    /// wrapper, and unpacked below `/opt/appstore/` by one `tar` inside the container.
    Deliver {
        /// Container id (running).
        ctid: Ctid,
        /// The archive: an absolute path below the helper's `job_root`, owned by the caller.
        archive: String,
    },
    /// Removes a file or directory below `/opt/appstore/` inside the container.
    RemovePath {
        /// Container id.
        ctid: Ctid,
        /// Absolute path below `/opt/appstore/`.
        path: String,
    },
    /// Passes GPU device nodes through (`devN` on PVE 8.1+, raw `lxc.*` lines before).
    AttachDevices {
        /// Container id.
        ctid: Ctid,
        /// The devices.
        devices: Vec<DeviceRequest>,
    },
    /// Removes passed-through devices by path.
    DetachDevices {
        /// Container id.
        ctid: Ctid,
        /// Device paths.
        paths: Vec<String>,
    },
    /// Sets container feature flags (only those the helper's config allows).
    SetFeatures {
        /// Container id.
        ctid: Ctid,
        /// `nesting`, `keyctl`, `fuse` -> on/off.
        features: BTreeMap<String, bool>,
    },
    /// Bind-mounts a host directory (below an allowed prefix) as `mp<index>`.
    BindMount {
        /// Container id.
        ctid: Ctid,
        /// Mount point index (0..=255).
        index: u8,
        /// Host directory.
        host_path: String,
        /// Absolute path inside the container.
        mount_path: String,
        /// Read-only.
        #[serde(default)]
        read_only: bool,
    },
    /// Checks every host directory bind-mounted into the container (`mpN` with a host path) again:
    /// below an allowed bind path and every directory on the way owned by root and writable by no
    /// one else. Run before each start.
    CheckMounts {
        /// Container id.
        ctid: Ctid,
    },
    /// Reads the container's run state (`pct status`).
    Status {
        /// Container id.
        ctid: Ctid,
    },
    /// Prints the container's `render` and `video` groups (`getent group render video` inside it,
    /// as output lines): the gids a GPU's nodes get.
    ContainerGroups {
        /// Container id (running).
        ctid: Ctid,
    },
    /// Prints `path gid major minor mode` (`stat`, hex major and minor, octal mode) for each device
    /// path inside the container, as output lines; a missing path prints on stderr.
    InspectDevices {
        /// Container id (running).
        ctid: Ctid,
        /// Paths below an allowed device prefix.
        paths: Vec<String>,
    },
    /// Runs a GPU smoke test inside the container (a fixed command per tool); output lines, then
    /// the exit code.
    SmokeTest {
        /// Container id (running).
        ctid: Ctid,
        /// Which test.
        tool: SmokeTool,
    },
    /// Reads the app's service log inside the container: one fixed `journalctl` command
    /// (`appstore_core::journal::argv`) for `unit`, the last `lines` entries or those after
    /// `after_cursor`; output lines, the last one `-- cursor: ...`.
    Journal {
        /// Container id (running).
        ctid: Ctid,
        /// The systemd unit (checked by `appstore_core::journal::check_unit`).
        unit: String,
        /// How many entries at most (1..=2000).
        lines: u32,
        /// Only entries after this cursor.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_cursor: Option<String>,
    },
}

/// The GPU smoke tests a manifest may ask for; each is one fixed command.
pub use appstore_core::manifest::GpuSmokeTest as SmokeTool;

impl Request {
    /// The container the request is about.
    pub fn ctid(&self) -> Ctid {
        match self {
            Request::RunScript { ctid, .. }
            | Request::Deliver { ctid, .. }
            | Request::CheckMounts { ctid }
            | Request::RemovePath { ctid, .. }
            | Request::AttachDevices { ctid, .. }
            | Request::DetachDevices { ctid, .. }
            | Request::SetFeatures { ctid, .. }
            | Request::BindMount { ctid, .. }
            | Request::Status { ctid }
            | Request::ContainerGroups { ctid }
            | Request::InspectDevices { ctid, .. }
            | Request::SmokeTest { ctid, .. }
            | Request::Journal { ctid, .. } => *ctid,
        }
    }

    /// The action's name, for the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Request::RunScript { .. } => "run_script",
            Request::Deliver { .. } => "deliver",
            Request::CheckMounts { .. } => "check_mounts",
            Request::RemovePath { .. } => "remove_path",
            Request::AttachDevices { .. } => "attach_devices",
            Request::DetachDevices { .. } => "detach_devices",
            Request::SetFeatures { .. } => "set_features",
            Request::BindMount { .. } => "bind_mount",
            Request::Status { .. } => "status",
            Request::ContainerGroups { .. } => "container_groups",
            Request::InspectDevices { .. } => "inspect_devices",
            Request::SmokeTest { .. } => "smoke_test",
            Request::Journal { .. } => "journal",
        }
    }
}

/// One device to pass through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    /// `/dev/dri/renderD128`, `/dev/nvidia0`, `/dev/kfd`, ...
    pub path: String,
    /// Group id inside the container (the container's `render` or `video` group).
    #[serde(default)]
    pub gid: Option<u32>,
    /// User id inside the container.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Octal mode, `0660`.
    #[serde(default)]
    pub mode: Option<String>,
}

/// One line the helper writes. (Variants are tried in order when reading: `Failed` before `Done`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    /// A line of a script's output.
    Output {
        /// `stdout` or `stderr`.
        stream: String,
        /// The line (without newline).
        line: String,
    },
    /// The end: refused or failed.
    Failed {
        /// Always false.
        ok: bool,
        /// What went wrong.
        error: ReplyError,
    },
    /// The end: success, with what the action returns.
    Done {
        /// Always true.
        ok: bool,
        /// The script's exit code (run_script).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// The container's state (status).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<String>,
    },
}

/// Why a request was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyError {
    /// `bad_request`, `boundary`, `not_allowed`, `failed`, `timeout`.
    pub code: String,
    /// For people: the rule, the container and the fix.
    pub message: String,
}
