//! Password login (`web.auth.mode: password`): one admin password, stored as an argon2id hash in a
//! 0600 file of the state directory (set with `pve-appstore passwd`); sessions in SQLite by the
//! SHA-256 of their token, in an HttpOnly SameSite=Strict cookie (Secure under TLS); a CSRF token per
//! session that every state-changing request sends back in `X-CSRF-Token`; failed logins limited per
//! client address.

use appstore_actors::store::Store;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
// Tokio's clock: the same as std's in the service, and one the tests can move.
use tokio::time::Instant;

/// The session cookie.
pub const COOKIE: &str = "pve_appstore_session";
/// The header that carries the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Where the hash lives in the state directory.
pub const PASSWORD_FILE: &str = "admin-password";
/// Login attempts allowed per client (an IPv4 address, an IPv6 /64) and window; a success gives its
/// attempt back.
const MAX_FAILURES: u32 = 5;
/// Attempts allowed from all clients together per window (a spread-out guessing run).
const MAX_FAILURES_ALL: u32 = 60;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Password verifications (argon2, ~19 MiB and tens of ms each) running at once.
const MAX_VERIFYING: usize = 2;

/// The key a client's attempts are counted under: its IPv4 address, or its IPv6 /64 (one host
/// usually holds a whole /64). IPv4-mapped IPv6 addresses count as IPv4.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// An argon2id hash of `password` (PHC string).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Does `password` match `hash`?
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash.trim())
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Checks a new password: at least 8 characters, one line.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < 8 {
        return Err("the password must have at least 8 characters".into());
    }
    if password.contains(['\n', '\r']) {
        return Err("the password must be a single line".into());
    }
    Ok(())
}

/// Writes the hash of `password` to `path` (0600, replaced atomically), owned by `owner` (uid, gid)
/// when given: root setting the password writes a file the service user can read.
pub fn write_password_file(
    path: &Path,
    password: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    check_new_password(password)?;
    let hash = hash_password(password)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    writeln!(f, "{hash}").map_err(|e| e.to_string())?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
            .map_err(|e| format!("{}: cannot hand it to uid {uid}: {e}", tmp.display()))?;
    }
    f.sync_all().map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Too many attempts from this client or from everyone, or too many logins at once; try again
    /// after this many seconds.
    RateLimited(u64),
    /// No password has been set on this node.
    NoPassword,
    /// Wrong password.
    Wrong,
    /// The session could not be stored.
    Store(String),
}

/// Password login and sessions.
#[derive(Debug)]
pub struct Auth {
    store: Store,
    password_file: PathBuf,
    secure: bool,
    ttl: Duration,
    attempts: Mutex<Attempts>,
    verifying: std::sync::atomic::AtomicUsize,
}

/// Login attempts in the current windows.
#[derive(Debug, Default)]
struct Attempts {
    per_client: HashMap<IpAddr, (u32, Instant)>,
    all: (u32, Option<Instant>),
}

/// A verification slot, given back when dropped.
struct Verifying<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Verifying<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Auth {
    /// Logins against the hash in `password_file`; `secure` marks the cookie Secure (HTTPS).
    pub fn new(store: Store, password_file: PathBuf, secure: bool) -> Self {
        Auth {
            store,
            password_file,
            secure,
            ttl: Duration::from_secs(12 * 3600),
            attempts: Mutex::new(Attempts::default()),
            verifying: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Checks the limits and counts the attempt in one step, before any password is verified.
    fn admit(&self, ip: IpAddr) -> Result<(), LoginError> {
        let key = client_key(ip);
        let mut a = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        a.per_client
            .retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        if a.all.1.is_some_and(|t| t.elapsed() >= FAILURE_WINDOW) {
            a.all = (0, None);
        }
        let wait = |since: Instant| FAILURE_WINDOW.saturating_sub(since.elapsed()).as_secs() + 1;
        if let Some((n, since)) = a.per_client.get(&key) {
            if *n >= MAX_FAILURES {
                return Err(LoginError::RateLimited(wait(*since)));
            }
        }
        if a.all.0 >= MAX_FAILURES_ALL {
            return Err(LoginError::RateLimited(wait(
                a.all.1.unwrap_or_else(Instant::now),
            )));
        }
        a.per_client.entry(key).or_insert((0, Instant::now())).0 += 1;
        a.all.0 += 1;
        a.all.1.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// A right password gives its attempt back.
    fn succeeded(&self, ip: IpAddr) {
        let mut a = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = a.per_client.get_mut(&client_key(ip)) {
            entry.0 = entry.0.saturating_sub(1);
        }
        a.all.0 = a.all.0.saturating_sub(1);
    }

    /// Checks the password; on success a new session: (token, CSRF token). Blocking (argon2). The
    /// attempt is counted before the password is verified, and at most [`MAX_VERIFYING`]
    /// verifications run at once.
    pub fn login(&self, ip: IpAddr, password: &str) -> Result<(String, String), LoginError> {
        self.verify(ip, password)?;
        let (token, csrf) = (random_token(), random_token());
        let expires = std::time::SystemTime::now()
            .checked_add(self.ttl)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(i64::MAX);
        self.store
            .create_session(&sha256_hex(&token), &csrf, expires)
            .map_err(|e| LoginError::Store(e.to_string()))?;
        Ok((token, csrf))
    }

    /// Checks the password again for a sensitive action (revealing a secret), under the same
    /// limits as a login; no session is made. Blocking (argon2).
    pub fn verify(&self, ip: IpAddr, password: &str) -> Result<(), LoginError> {
        use std::sync::atomic::Ordering;
        if self.verifying.fetch_add(1, Ordering::SeqCst) >= MAX_VERIFYING {
            self.verifying.fetch_sub(1, Ordering::SeqCst);
            return Err(LoginError::RateLimited(1));
        }
        let _slot = Verifying(&self.verifying);
        self.admit(ip)?;
        let hash = match std::fs::read_to_string(&self.password_file) {
            Ok(h) if !h.trim().is_empty() => h,
            _ => {
                // Nothing was checked: the attempt does not count.
                self.succeeded(ip);
                return Err(LoginError::NoPassword);
            }
        };
        if !verify_password(&hash, password) {
            return Err(LoginError::Wrong);
        }
        self.succeeded(ip);
        Ok(())
    }

    /// The CSRF token of the session `token`, if it is live. Blocking.
    pub fn session(&self, token: &str) -> Option<String> {
        self.store.session(&sha256_hex(token)).ok().flatten()
    }

    /// Ends the session `token`. Blocking.
    pub fn logout(&self, token: &str) {
        let _ = self.store.delete_session(&sha256_hex(token));
    }

    /// The `Set-Cookie` value for a new session.
    pub fn cookie(&self, token: &str) -> String {
        format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            self.ttl.as_secs(),
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear_cookie(&self) -> String {
        format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.secure { "; Secure" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horsE"));
        assert!(!verify_password("garbage", "correct horse"));
        assert_ne!(h, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn logins_are_limited_and_sessions_work() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let file = dir.path().join(PASSWORD_FILE);
        let auth = Auth::new(store, file.clone(), false);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(auth.login(ip, "whatever1"), Err(LoginError::NoPassword));
        write_password_file(&file, "s3cret-pass", None).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (token, csrf) = auth.login(ip, "s3cret-pass").unwrap();
        assert_eq!(auth.session(&token), Some(csrf));
        assert!(auth.cookie(&token).contains("HttpOnly; SameSite=Strict"));
        auth.logout(&token);
        assert_eq!(auth.session(&token), None);
        for _ in 0..MAX_FAILURES {
            assert_eq!(auth.login(ip, "wrong-pass"), Err(LoginError::Wrong));
        }
        assert!(matches!(
            auth.login(ip, "s3cret-pass"),
            Err(LoginError::RateLimited(_))
        ));
        // Another address is not affected.
        assert!(auth
            .login("192.0.2.8".parse().unwrap(), "s3cret-pass")
            .is_ok());
        assert!(check_new_password("short").is_err());
        // IPv6 clients count per /64: a new address in the same /64 is the same client.
        for i in 0..MAX_FAILURES {
            let ip: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            assert_eq!(auth.login(ip, "wrong-pass"), Err(LoginError::Wrong));
        }
        assert!(matches!(
            auth.login("2001:db8:1:2:ffff::9".parse().unwrap(), "s3cret-pass"),
            Err(LoginError::RateLimited(_))
        ));
        assert!(auth
            .login("2001:db8:1:3::1".parse().unwrap(), "s3cret-pass")
            .is_ok());
    }

    /// The window is a minute on a paused clock: the answer says how long to wait, and after that
    /// the client may try again.
    #[tokio::test(start_paused = true)]
    async fn a_limited_client_may_try_again_once_its_window_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let file = dir.path().join(PASSWORD_FILE);
        write_password_file(&file, "s3cret-pass", None).unwrap();
        let auth = Auth::new(store, file, false);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert_eq!(auth.login(ip, "wrong-pass"), Err(LoginError::Wrong));
        }
        assert_eq!(
            auth.login(ip, "s3cret-pass"),
            Err(LoginError::RateLimited(61))
        );
        tokio::time::advance(Duration::from_secs(45)).await;
        assert_eq!(
            auth.login(ip, "s3cret-pass"),
            Err(LoginError::RateLimited(16))
        );
        tokio::time::advance(Duration::from_secs(15)).await;
        assert!(auth.login(ip, "s3cret-pass").is_ok());
    }

    #[test]
    fn a_global_limit_stops_guessing_spread_over_many_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let file = dir.path().join(PASSWORD_FILE);
        write_password_file(&file, "s3cret-pass", None).unwrap();
        let auth = Auth::new(store, file, false);
        for i in 0..MAX_FAILURES_ALL {
            let ip: IpAddr = format!("198.51.100.{}", i % 250 + 1).parse().unwrap();
            let ip = if i >= 250 {
                "203.0.113.1".parse().unwrap()
            } else {
                ip
            };
            let _ = auth.login(ip, "wrong-pass");
        }
        assert!(matches!(
            auth.login("192.0.2.200".parse().unwrap(), "s3cret-pass"),
            Err(LoginError::RateLimited(_))
        ));
    }

    #[test]
    fn limits_are_checked_before_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let file = dir.path().join(PASSWORD_FILE);
        write_password_file(&file, "s3cret-pass", None).unwrap();
        let auth = std::sync::Arc::new(Auth::new(store, file, false));
        // Many concurrent wrong attempts from one client: never more than the limit verified.
        let wrong = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let (auth, wrong) = (auth.clone(), wrong.clone());
                std::thread::spawn(move || {
                    if auth.login("192.0.2.9".parse().unwrap(), "wrong-pass")
                        == Err(LoginError::Wrong)
                    {
                        wrong.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(wrong.load(std::sync::atomic::Ordering::SeqCst) <= MAX_FAILURES);
    }
}
