//! SMTP AUTH for the internal listener (RFC 4954, PLAIN and LOGIN), offered only inside TLS.
//! Users and Argon2id password hashes (PHC strings, `postern-relay hash-password`) come from a
//! file: one `name:$argon2id$...` per line, `#` comments.

use std::collections::HashMap;
use std::path::Path;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

/// Why the users file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unreadable.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// A line is not `name:hash` with a valid PHC hash.
    #[error("{file} line {line}: {message}")]
    Line {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Hashing failed.
    #[error("cannot hash: {0}")]
    Hash(String),
}

/// The users allowed to submit, with their password hashes.
#[derive(Clone, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
    /// Checked for unknown names, so they cost as much as known ones.
    decoy: String,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the hashes stay out of logs and debug output.
        f.debug_set().entries(self.hashes.keys()).finish()
    }
}

impl Users {
    /// Reads a users file; every line is checked (a bad line is an error, not skipped).
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AuthError::Read(path.display().to_string(), e))?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: &str| AuthError::Line {
                file: path.display().to_string(),
                line: n + 1,
                message: message.into(),
            };
            let (name, hash) = line
                .split_once(':')
                .ok_or_else(|| err("expected name:hash"))?;
            if name.is_empty() {
                return Err(err("empty user name"));
            }
            PasswordHash::new(hash).map_err(|_| err("not a PHC password hash"))?;
            users.insert(name.to_string(), hash.to_string());
        }
        Ok(Users {
            hashes: users,
            decoy: hash_password(b"decoy password never used")?,
        })
    }

    /// Whether any user is configured.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Checks a password (Argon2: slow on purpose; call it off the async threads). An unknown
    /// user costs the same as a wrong password, so timing does not tell which names exist.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        let stored = self.hashes.get(user);
        let phc = stored.unwrap_or(&self.decoy);
        let ok = PasswordHash::new(phc)
            .map(|h| Argon2::default().verify_password(password, &h).is_ok())
            .unwrap_or(false);
        ok && stored.is_some()
    }
}

/// An Argon2id PHC string for `password` (default parameters, random salt).
pub fn hash_password(password: &[u8]) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_load_verify() {
        let d = tempfile::tempdir().unwrap();
        let h = hash_password(b"s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        let f = d.path().join("users");
        std::fs::write(&f, format!("# submitters\nexchange:{h}\n")).unwrap();
        let u = Users::load(&f).unwrap();
        assert!(u.verify("exchange", b"s3cret"));
        assert!(!u.verify("exchange", b"wrong"));
        assert!(!u.verify("nobody", b"s3cret"));
        assert!(!format!("{u:?}").contains("argon2"));
        std::fs::write(&f, "exchange:plaintext\n").unwrap();
        let e = Users::load(&f).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
