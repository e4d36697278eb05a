//! `pve-appstore-helper`: reads one request on stdin, answers JSON lines on stdout.
//!
//! Started by systemd per connection (`pve-appstore-helper.socket`, `Accept=yes`: the socket is
//! stdin/stdout) or through sudo. `--config FILE` is honoured only when root starts the helper itself
//! (systemd's unit or root's shell), never through sudo, so a caller can never choose the rules it is
//! held to.

use appstore_helper::{Helper, HelperConfig, Reply, ReplyError, Request, MAX_REQUEST_BYTES};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

fn emit(out: &mut std::io::StdoutLock<'_>, reply: &Reply) {
    if let Ok(text) = serde_json::to_string(reply) {
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

fn fail(out: &mut std::io::StdoutLock<'_>, code: &str, message: String) -> ExitCode {
    emit(
        out,
        &Reply::Failed {
            ok: false,
            error: ReplyError {
                code: code.into(),
                message,
            },
        },
    );
    ExitCode::from(1)
}

/// Who is asking: a socket peer (checked against the config), a sudo caller, or root; with the uid
/// whose files the caller may hand over.
fn peer(config: &HelperConfig) -> Result<(String, u32), String> {
    use std::os::fd::AsFd;
    // Through sudo the caller is who sudo says, whatever stdin is connected to.
    if let Some(uid) = std::env::var("SUDO_UID")
        .ok()
        .and_then(|u| u.parse::<u32>().ok())
    {
        return Ok((format!("sudo uid={uid}"), uid));
    }
    let stdin = std::io::stdin();
    match rustix::net::sockopt::socket_peercred(stdin.as_fd()) {
        Ok(cred) => {
            let uid = cred.uid.as_raw();
            let gid = cred.gid.as_raw();
            if uid == 0 || config.allowed_uids.contains(&uid) || config.allowed_gid == Some(gid) {
                Ok((
                    format!(
                        "socket uid={uid} gid={gid} pid={}",
                        cred.pid.as_raw_nonzero()
                    ),
                    uid,
                ))
            } else {
                Err(format!(
                    "socket peer uid {uid} (gid {gid}) is not allowed to use the helper"
                ))
            }
        }
        // Not a socket: started through sudo or by root directly.
        Err(_) => Ok(
            match std::env::var("SUDO_UID")
                .ok()
                .and_then(|u| u.parse::<u32>().ok())
            {
                Some(uid) => (format!("sudo uid={uid}"), uid),
                None => ("root".to_string(), 0),
            },
        ),
    }
}

fn main() -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let via_sudo = std::env::var_os("SUDO_UID").is_some();
    let config_path = match args.as_slice() {
        [] => PathBuf::from(appstore_helper::config::DEFAULT_CONFIG),
        [flag, path] if flag == "--config" => {
            if via_sudo || !rustix::process::geteuid().is_root() {
                return fail(
                    &mut out,
                    "not_allowed",
                    "--config is only honoured when root starts the helper directly".into(),
                );
            }
            PathBuf::from(path)
        }
        _ => {
            return fail(
                &mut out,
                "bad_request",
                "usage: pve-appstore-helper [--config FILE] < request.json".into(),
            )
        }
    };
    let config = match HelperConfig::load(&config_path) {
        Ok(c) => c,
        Err(e) => return fail(&mut out, "failed", e),
    };
    let audit_refusal = |who: &str, code: &str, message: &str| {
        appstore_helper::audit::record(
            &config.audit_log,
            who,
            "request",
            None,
            "refused",
            serde_json::json!({"code": code, "message": message}),
        )
    };
    let (who, caller_uid) = match peer(&config) {
        Ok(w) => w,
        Err(e) => {
            audit_refusal("socket", "not_allowed", &e);
            return fail(&mut out, "not_allowed", e);
        }
    };
    {
        // A peer that connects and sends nothing, or stops reading the answer, must not hold a
        // root process: socket reads and writes give up after 30 s.
        use std::os::fd::AsFd;
        for (fd, which) in [
            (
                std::io::stdin().as_fd().try_clone_to_owned(),
                rustix::net::sockopt::Timeout::Recv,
            ),
            (
                std::io::stdout().as_fd().try_clone_to_owned(),
                rustix::net::sockopt::Timeout::Send,
            ),
        ] {
            if let Ok(fd) = fd {
                let _ = rustix::net::sockopt::set_socket_timeout(
                    &fd,
                    which,
                    Some(std::time::Duration::from_secs(30)),
                );
            }
        }
    }
    let mut text = String::new();
    if let Err(e) = std::io::stdin()
        .take(MAX_REQUEST_BYTES)
        .read_line_or_all(&mut text)
    {
        let message = format!("cannot read the request: {e}");
        audit_refusal(&who, "bad_request", &message);
        return fail(&mut out, "bad_request", message);
    }
    let req: Request = match serde_json::from_str(text.trim()) {
        Ok(r) => r,
        Err(e) => {
            let message = format!("not a valid request: {e}");
            audit_refusal(&who, "bad_request", &message);
            return fail(&mut out, "bad_request", message);
        }
    };
    // However it was started (socket or sudo), at most a few helpers act at once.
    let _slot = match appstore_helper::actions::take_slot(&config) {
        Ok(s) => s,
        Err(message) => {
            audit_refusal(&who, "busy", &message);
            return fail(&mut out, "busy", message);
        }
    };
    Helper::new(config.clone(), who, caller_uid).handle(&req, &mut |reply| emit(&mut out, reply));
    ExitCode::SUCCESS
}

/// Reads one line (a socket stays open for the answer, so EOF cannot be awaited), or everything when
/// the input ends first.
trait ReadRequest {
    fn read_line_or_all(&mut self, buf: &mut String) -> std::io::Result<usize>;
}

impl<R: Read> ReadRequest for R {
    fn read_line_or_all(&mut self, buf: &mut String) -> std::io::Result<usize> {
        let mut bytes = Vec::new();
        let mut byte = [0u8; 1];
        // The whole request within 30 s, however slowly it trickles in.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if std::time::Instant::now() > deadline {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request did not arrive within 30 s",
                ));
            }
            match self.read(&mut byte)? {
                0 => break,
                _ if byte[0] == b'\n' => break,
                _ => bytes.push(byte[0]),
            }
        }
        buf.push_str(&String::from_utf8_lossy(&bytes));
        Ok(bytes.len())
    }
}
