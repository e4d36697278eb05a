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
use std::time::{Duration, Instant};

/// The session cookie.
pub const COOKIE: &str = "pve_appstore_session";
/// The header that carries the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Where the hash lives in the state directory.
pub const PASSWORD_FILE: &str = "admin-password";
/// Failed logins allowed per address and window.
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

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

/// Writes the hash of `password` to `path` (0600, replaced atomically).
pub fn write_password_file(path: &Path, password: &str) -> Result<(), String> {
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
    /// Too many failures from this address; try again after this many seconds.
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
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Auth {
    /// Logins against the hash in `password_file`; `secure` marks the cookie Secure (HTTPS).
    pub fn new(store: Store, password_file: PathBuf, secure: bool) -> Self {
        Auth {
            store,
            password_file,
            secure,
            ttl: Duration::from_secs(12 * 3600),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn limited(&self, ip: IpAddr) -> Option<u64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        map.get(&ip)
            .filter(|(n, _)| *n >= MAX_FAILURES)
            .map(|(_, since)| FAILURE_WINDOW.saturating_sub(since.elapsed()).as_secs() + 1)
    }

    fn failed(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(ip).or_insert((0, Instant::now()));
        entry.0 += 1;
    }

    /// Checks the password; on success a new session: (token, CSRF token). Blocking (argon2).
    pub fn login(&self, ip: IpAddr, password: &str) -> Result<(String, String), LoginError> {
        if let Some(after) = self.limited(ip) {
            return Err(LoginError::RateLimited(after));
        }
        let hash = match std::fs::read_to_string(&self.password_file) {
            Ok(h) if !h.trim().is_empty() => h,
            _ => return Err(LoginError::NoPassword),
        };
        if !verify_password(&hash, password) {
            self.failed(ip);
            return Err(LoginError::Wrong);
        }
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
        write_password_file(&file, "s3cret-pass").unwrap();
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
    }
}
