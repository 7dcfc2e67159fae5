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

/// Failures before a user name is locked (within [`FAILURE_WINDOW`]).
pub const USER_FAILURES: u32 = 5;
/// Failures before a client address is locked (within [`FAILURE_WINDOW`]).
pub const ADDRESS_FAILURES: u32 = 10;
/// How far back failures count, and how long a lock lasts.
pub const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// Argon2 checks at once: each takes about 19 MiB for as long as it runs, so parallel guessing
/// must not be able to multiply that.
pub const CONCURRENT_CHECKS: usize = 2;

/// Password guessing made slow and bounded: a few Argon2 checks at a time, and a lock on a user
/// name and on a client address after repeated failures (checked before any hashing, so a
/// locked guesser costs nothing).
#[derive(Debug)]
pub struct AuthLimiter {
    checks: tokio::sync::Semaphore,
    failures: std::sync::Mutex<HashMap<String, (u32, std::time::Instant)>>,
}

impl Default for AuthLimiter {
    fn default() -> Self {
        AuthLimiter {
            checks: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
            failures: std::sync::Mutex::default(),
        }
    }
}

impl AuthLimiter {
    fn keys(user: &str, ip: std::net::IpAddr) -> [(String, u32); 2] {
        [
            (format!("user:{user}"), USER_FAILURES),
            (format!("addr:{ip}"), ADDRESS_FAILURES),
        ]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, std::time::Instant)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this user name or this client address is locked out now.
    pub fn locked(&self, user: &str, ip: std::net::IpAddr) -> bool {
        let mut f = self.lock();
        f.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        Self::keys(user, ip)
            .iter()
            .any(|(k, limit)| f.get(k).is_some_and(|(n, _)| n >= limit))
    }

    /// Records a failed attempt.
    pub fn failed(&self, user: &str, ip: std::net::IpAddr) {
        let mut f = self.lock();
        // A flood of made-up names must not grow the table without bound.
        if f.len() > 100_000 {
            f.clear();
        }
        for (k, _) in Self::keys(user, ip) {
            let e = f.entry(k).or_insert((0, std::time::Instant::now()));
            e.0 += 1;
            e.1 = std::time::Instant::now();
        }
    }

    /// Records a success: that user's and that address's failures are forgiven.
    pub fn succeeded(&self, user: &str, ip: std::net::IpAddr) {
        let mut f = self.lock();
        for (k, _) in Self::keys(user, ip) {
            f.remove(&k);
        }
    }

    /// Checks a password with at most [`CONCURRENT_CHECKS`] Argon2 runs at once, off the
    /// async threads, and records the outcome. The lock is looked at again once a check may
    /// run: guesses queued behind others are refused as soon as a lock falls.
    pub async fn check(
        &self,
        users: &std::sync::Arc<Users>,
        user: &str,
        ip: std::net::IpAddr,
        password: Vec<u8>,
    ) -> AuthOutcome {
        let password = zeroize::Zeroizing::new(password);
        if self.locked(user, ip) {
            return AuthOutcome::Locked;
        }
        let Ok(_permit) = self.checks.acquire().await else {
            return AuthOutcome::Wrong;
        };
        if self.locked(user, ip) {
            return AuthOutcome::Locked;
        }
        let (u, name) = (users.clone(), user.to_string());
        let ok = tokio::task::spawn_blocking(move || u.verify(&name, &password))
            .await
            .unwrap_or(false);
        if ok {
            self.succeeded(user, ip);
            AuthOutcome::Ok
        } else {
            self.failed(user, ip);
            AuthOutcome::Wrong
        }
    }
}

/// What an AUTH attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The password is right.
    Ok,
    /// It is not (or the name is unknown).
    Wrong,
    /// The user name or the client address is locked; nothing was checked.
    Locked,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_and_an_address_are_locked_after_repeated_failures() {
        let l = AuthLimiter::default();
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..USER_FAILURES {
            assert!(!l.locked("exchange", a));
            l.failed("exchange", a);
        }
        assert!(l.locked("exchange", a), "user locked");
        assert!(l.locked("exchange", b), "the user, from anywhere");
        assert!(!l.locked("other", b), "others are not");
        for i in 0..ADDRESS_FAILURES {
            l.failed(&format!("name{i}"), b);
        }
        assert!(l.locked("fresh-name", b), "address locked");
        l.succeeded("exchange", a);
        assert!(!l.locked("exchange", a));
    }

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
