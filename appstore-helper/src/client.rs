//! Talking to the helper from the store: over its Unix socket (socket activation), or by running it
//! (through sudo, or directly as root in tests). Blocking; callers in async code use `spawn_blocking`.

use crate::protocol::{Reply, Request};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Why a helper call failed before the helper could answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket or process could not be used.
    #[error("cannot talk to pve-appstore-helper")]
    Io(#[from] std::io::Error),
    /// The helper sent something that is not a reply.
    #[error("pve-appstore-helper sent an unreadable line: {0}")]
    Protocol(String),
    /// The helper ended without a final reply.
    #[error("pve-appstore-helper ended without an answer")]
    NoAnswer,
}

fn converse(
    input: &mut dyn Write,
    output: &mut dyn BufRead,
    req: &Request,
    on_output: &mut dyn FnMut(&str, &str),
) -> Result<Reply, ClientError> {
    let text = serde_json::to_string(req).map_err(|e| ClientError::Protocol(e.to_string()))?;
    input.write_all(text.as_bytes())?;
    input.write_all(b"\n")?;
    input.flush()?;
    let mut line = String::new();
    loop {
        line.clear();
        if output.read_line(&mut line)? == 0 {
            return Err(ClientError::NoAnswer);
        }
        match serde_json::from_str::<Reply>(line.trim_end())
            .map_err(|_| ClientError::Protocol(line.trim_end().to_string()))?
        {
            Reply::Output { stream, line } => on_output(&stream, &line),
            done => return Ok(done),
        }
    }
}

/// The longest the helper may stay silent while it works on `req`: a script's own limit plus the
/// helper's grace, else the limit of one `pct` call and the config lock, with a margin.
pub fn answer_limit(req: &Request) -> std::time::Duration {
    let base = match req {
        Request::RunScript { timeout_sec, .. } => {
            std::time::Duration::from_secs(u64::from(*timeout_sec)) + crate::actions::SCRIPT_GRACE
        }
        _ => crate::actions::PCT_LIMIT * 2 + crate::actions::LOCK_LIMIT,
    };
    base + std::time::Duration::from_secs(30)
}

/// Sends `req` over the helper's socket; output lines of a script go to `on_output(stream, line)`.
/// Writing may take 30 s and each wait for a line [`answer_limit`] at most.
pub fn call_socket(
    socket: &Path,
    req: &Request,
    on_output: &mut dyn FnMut(&str, &str),
) -> Result<Reply, ClientError> {
    let stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_write_timeout(Some(std::time::Duration::from_secs(30)))?;
    stream.set_read_timeout(Some(answer_limit(req)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    converse(&mut writer, &mut reader, req, on_output)
}

/// Runs the helper as `program args...` (for example `sudo -n /usr/lib/pve-appstore/pve-appstore-helper`)
/// and sends `req` on its stdin.
pub fn call_command(
    program: &Path,
    args: &[&str],
    req: &Request,
    on_output: &mut dyn FnMut(&str, &str),
) -> Result<Reply, ClientError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or(ClientError::NoAnswer)?;
    let stdout = child.stdout.take().ok_or(ClientError::NoAnswer)?;
    let mut reader = BufReader::new(stdout);
    let reply = converse(&mut stdin, &mut reader, req, on_output);
    drop(stdin);
    let _ = child.wait();
    reply
}
