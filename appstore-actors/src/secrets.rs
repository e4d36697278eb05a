//! Secrets at rest: values that must be kept (a generated password shown as an output) are stored
//! encrypted with ChaCha20-Poly1305 under a key file readable only by the service (`0600` in the state
//! directory). Anything else secret is never stored at all.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::path::Path;

/// Prefix of an encrypted value.
const PREFIX: &str = "enc:v1:";

/// Errors of the secret box.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file could not be read or made.
    #[error("cannot use the key file {path}")]
    KeyFile {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not a key, or is readable by others.
    #[error("the key file {0} must hold 32 bytes and be readable only by the service (mode 0600)")]
    BadKey(String),
    /// A value could not be decrypted (another key, or tampered).
    #[error("a stored secret cannot be decrypted with this key")]
    Decrypt,
}

/// Encrypts and decrypts stored secrets.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// Loads the key at `path`, creating it (mode 0600) when missing.
    pub fn open(path: &Path) -> Result<SecretBox, SecretError> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let err = |source| SecretError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            let key = ChaCha20Poly1305::generate_key(&mut OsRng);
            let mut f = std::fs::OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .open(path)
                .map_err(err)?;
            f.write_all(&key).map_err(err)?;
        }
        let meta = std::fs::metadata(path).map_err(err)?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(SecretError::BadKey(path.display().to_string()));
        }
        let bytes = std::fs::read(path).map_err(err)?;
        if bytes.len() != 32 {
            return Err(SecretError::BadKey(path.display().to_string()));
        }
        Ok(SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
        })
    }

    /// `enc:v1:<hex nonce><hex ciphertext>`.
    pub fn seal(&self, plain: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a fresh nonce cannot fail for inputs of this size.
        let ct = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .unwrap_or_default();
        format!("{PREFIX}{}{}", hex::encode(nonce), hex::encode(ct))
    }

    /// The plain text of a sealed value (values without the prefix are returned as they are).
    pub fn open_value(&self, stored: &str) -> Result<String, SecretError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let bytes = hex::decode(rest).map_err(|_| SecretError::Decrypt)?;
        if bytes.len() < 12 {
            return Err(SecretError::Decrypt);
        }
        let (nonce, ct) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| SecretError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_with_the_same_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::open(&dir.path().join("a.key")).unwrap();
        let sealed = a.seal("hunter2");
        assert!(sealed.starts_with("enc:v1:") && !sealed.contains("hunter2"));
        assert_eq!(a.open_value(&sealed).unwrap(), "hunter2");
        assert_eq!(
            SecretBox::open(&dir.path().join("a.key"))
                .unwrap()
                .open_value(&sealed)
                .unwrap(),
            "hunter2",
            "the key persists"
        );
        let b = SecretBox::open(&dir.path().join("b.key")).unwrap();
        assert!(b.open_value(&sealed).is_err());
        assert_eq!(a.open_value("plain").unwrap(), "plain");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(dir.path().join("a.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    #[test]
    fn refuses_a_key_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, [7u8; 32]).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SecretBox::open(&path),
            Err(SecretError::BadKey(_))
        ));
    }
}
