//! Delivering a job's files into a container in one step. The caller's archive is opened once below
//! the job root without following links, checked on its descriptor (a regular file of the caller's,
//! within a size cap), and read entry by entry: only regular files and directories below
//! `provision/`, with clean relative paths and sizes within limits. What passes is written, with
//! the helper's own script wrapper, into an unnamed file in the helper's private staging, which the
//! container's `tar` then reads on its standard input. Nothing the caller can still change is read
//! after the check, and nothing stays behind on the host.

use crate::checks::{bad, not_allowed, Refusal};
use crate::config::HelperConfig;
use crate::protocol::{CONTAINER_BASE, WRAPPER_PATH};
use std::io::{Read, Seek};

/// The largest archive.
pub const MAX_ARCHIVE_BYTES: u64 = 256 << 20;
/// The largest file in it.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// The most entries.
pub const MAX_ENTRIES: usize = 10_000;

/// The script wrapper (see `run-script.sh`).
pub const WRAPPER: &str = include_str!("run-script.sh");

/// Checks the archive `rel` (below the job root, owned by `caller_uid`) and returns the staged copy
/// to unpack at `/` inside the container, rewound, and how many files it holds.
pub fn stage(
    config: &HelperConfig,
    caller_uid: u32,
    rel: &str,
) -> Result<(std::fs::File, usize), Refusal> {
    let fd = crate::safe_fs::open_beneath(&config.job_root, rel, "archive")
        .map_err(|e| not_allowed(e.to_string()))?;
    let shown = config.job_root.join(rel).to_string_lossy().into_owned();
    crate::safe_fs::regular_file(&fd, caller_uid, MAX_ARCHIVE_BYTES, "archive", &shown)
        .map_err(|e| not_allowed(e.to_string()))?;
    let me = rustix::process::geteuid().as_raw();
    let staging = crate::safe_fs::private_dir(&config.staging_dir, me, "the helper's staging")
        .map_err(|e| Refusal {
            code: "failed",
            message: e.to_string(),
        })?;
    let out =
        crate::safe_fs::unnamed_file(&staging, "the helper's staging").map_err(|e| Refusal {
            code: "failed",
            message: e.to_string(),
        })?;
    let source = std::fs::File::from(fd).take(MAX_ARCHIVE_BYTES);
    let mut builder = tar::Builder::new(out);
    let files = copy_entries(source, &mut builder)?;
    let failed = |e: std::io::Error| Refusal {
        code: "failed",
        message: format!("staging the archive: {e}"),
    };
    append(
        &mut builder,
        WRAPPER_PATH.trim_start_matches('/'),
        0o755,
        WRAPPER.as_bytes(),
    )
    .map_err(failed)?;
    let mut out = builder.into_inner().map_err(failed)?;
    out.rewind().map_err(failed)?;
    Ok((out, files))
}

/// A header of root's (uid and gid 0, time 0) for an entry of `kind`, `mode` and `size`.
fn root_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}

fn append(
    builder: &mut tar::Builder<std::fs::File>,
    path: &str,
    mode: u32,
    data: impl Read,
) -> std::io::Result<()> {
    let mut data = data;
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes)?;
    let mut header = root_header(tar::EntryType::Regular, mode, bytes.len() as u64);
    builder.append_data(&mut header, path, bytes.as_slice())
}

/// Copies every checked entry of `source` below `opt/appstore/`; returns the number of files.
fn copy_entries(
    source: impl Read,
    builder: &mut tar::Builder<std::fs::File>,
) -> Result<usize, Refusal> {
    let mut archive = tar::Archive::new(source);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("archive: not a tar archive: {e}")))?;
    let mut files = 0;
    for (i, entry) in entries.enumerate() {
        if i >= MAX_ENTRIES {
            return Err(bad(format!("archive: more than {MAX_ENTRIES} entries")));
        }
        let entry = entry.map_err(|e| bad(format!("archive: entry {i}: {e}")))?;
        if entry.path_bytes().len() > 4096 {
            return Err(bad(format!(
                "archive: entry {i}: the path is over 4096 bytes"
            )));
        }
        let raw = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| bad(format!("archive: entry {i}: the path is not UTF-8")))?;
        let kind = entry.header().entry_type();
        let path = raw.trim_end_matches('/');
        let rel = appstore_core::RelPath::parse(path)
            .map_err(|e| not_allowed(format!("archive: `{raw}`: {e}")))?;
        let rel = rel.as_str();
        if rel != "provision" && !rel.starts_with("provision/") {
            return Err(not_allowed(format!(
                "archive: `{raw}` is outside provision/, where a job's files go"
            )));
        }
        if rel.bytes().any(|b| b.is_ascii_control()) {
            return Err(bad(format!("archive: `{raw}` has a control character")));
        }
        let target = format!("{}/{rel}", CONTAINER_BASE.trim_start_matches('/'));
        let failed = |e: std::io::Error| Refusal {
            code: "failed",
            message: format!("staging the archive: {e}"),
        };
        match kind {
            tar::EntryType::Directory => {
                let mut header = root_header(tar::EntryType::Directory, 0o755, 0);
                builder
                    .append_data(&mut header, format!("{target}/"), std::io::empty())
                    .map_err(failed)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().unwrap_or(u64::MAX);
                if size > MAX_FILE_BYTES {
                    return Err(bad(format!(
                        "archive: `{raw}` is {size} bytes, over the limit of {MAX_FILE_BYTES}"
                    )));
                }
                let executable = entry.header().mode().unwrap_or(0) & 0o111 != 0;
                let mode = if executable { 0o755 } else { 0o644 };
                append(builder, &target, mode, entry.take(MAX_FILE_BYTES)).map_err(failed)?;
                files += 1;
            }
            other => {
                return Err(not_allowed(format!(
                    "archive: `{raw}` is a {other:?} entry; only regular files and directories are delivered"
                )))
            }
        }
    }
    Ok(files)
}
