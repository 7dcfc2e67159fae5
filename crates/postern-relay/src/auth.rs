//! SMTP AUTH for the internal listener (RFC 4954, PLAIN and LOGIN), offered only inside TLS.
//! Users and Argon2id password hashes (PHC strings, `postern-relay hash-password`) come from a
//! file: one `name:$argon2id$...` per line, `#` comments.

use std::collections::HashMap;
use std::path::Path;

use argon2::PasswordHash;
use postern_store::password::Hasher;

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
        Ok(Users { hashes: users })
    }

    /// Whether `user` is configured.
    pub fn contains(&self, user: &str) -> bool {
        self.hashes.contains_key(user)
    }

    /// Whether any user is configured.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Checks a password (Argon2: slow on purpose; call it off the async threads). An unknown
    /// user costs the same as a wrong password, so timing does not tell which names exist.
    pub fn verify(&self, hasher: &mut Hasher, user: &str, password: &[u8]) -> bool {
        // The portal's check, decoy included: one Argon2 verification in the process.
        hasher.verify(self.hashes.get(user).map(String::as_str), password)
    }
}

/// An Argon2id PHC string for `password` (default parameters, random salt).
pub fn hash_password(password: &[u8]) -> Result<String, AuthError> {
    Hasher::new()
        .hash(password)
        .ok_or_else(|| AuthError::Hash("Argon2 or the random source failed".into()))
}

/// Failures before a user name is locked (within [`FAILURE_WINDOW`]).
pub const USER_FAILURES: u32 = 5;
/// Failures before a client address is locked (within [`FAILURE_WINDOW`]).
pub const ADDRESS_FAILURES: u32 = 10;
/// How far back failures count, and how long a lock lasts.
pub const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// Password guessing made slow and bounded: Argon2 runs within the process's password budget
/// (shared with the portal: [`postern_store::password::PasswordBudget::global`]), and a lock
/// on a user name and on a client (IPv4 address, IPv6 network) after repeated failures. Each
/// attempt is counted before its check, under one mutex, so parallel attempts cannot all pass
/// a lock that is only written once their checks end.
#[derive(Debug)]
pub struct AuthLimiter {
    v6_prefix: u8,
    failures: std::sync::Mutex<HashMap<String, (u32, std::time::Instant)>>,
}

impl Default for AuthLimiter {
    fn default() -> Self {
        AuthLimiter::new(64)
    }
}

impl AuthLimiter {
    /// A limiter counting IPv6 clients by their `v6_prefix` network.
    pub fn new(v6_prefix: u8) -> Self {
        AuthLimiter {
            v6_prefix,
            failures: std::sync::Mutex::default(),
        }
    }

    fn keys(&self, user: &str, ip: std::net::IpAddr) -> [(String, u32); 2] {
        let net = postern_core::client_network(ip, self.v6_prefix);
        [
            (format!("user:{user}"), USER_FAILURES),
            (format!("addr:{net}"), ADDRESS_FAILURES),
        ]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, std::time::Instant)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this user name or this client is locked out now.
    pub fn locked(&self, user: &str, ip: std::net::IpAddr) -> bool {
        over_limit(&mut self.lock(), &self.keys(user, ip))
    }

    /// Counts an attempt before it is checked; false (nothing counted) when the user or the
    /// client is locked. A success ([`AuthLimiter::succeeded`]) forgives the counts.
    pub fn begin(&self, user: &str, ip: std::net::IpAddr) -> bool {
        let keys = self.keys(user, ip);
        let mut f = self.lock();
        if over_limit(&mut f, &keys) {
            return false;
        }
        count(&mut f, keys);
        true
    }

    /// Records a success: that user's and that client's failures are forgiven.
    pub fn succeeded(&self, user: &str, ip: std::net::IpAddr) {
        let keys = self.keys(user, ip);
        let mut f = self.lock();
        for (k, _) in keys {
            f.remove(&k);
        }
    }

    /// Checks a password within the process's password budget, off the async threads: a place
    /// in the budget first (none: [`AuthOutcome::Busy`] at once), then the attempt is counted
    /// (locked: nothing checked), then the hash.
    pub async fn check(
        &self,
        users: &std::sync::Arc<Users>,
        user: &str,
        ip: std::net::IpAddr,
        password: Vec<u8>,
    ) -> AuthOutcome {
        let password = zeroize::Zeroizing::new(password);
        let Ok(admission) = postern_store::password::PasswordBudget::global().admit() else {
            return AuthOutcome::Busy;
        };
        if !self.begin(user, ip) {
            return AuthOutcome::Locked;
        }
        let (u, name) = (users.clone(), user.to_string());
        let Ok(ok) = admission.run(move |h| u.verify(h, &name, &password)).await else {
            return AuthOutcome::Busy;
        };
        if ok {
            self.succeeded(user, ip);
            AuthOutcome::Ok
        } else {
            AuthOutcome::Wrong
        }
    }
}

/// Whether any of `keys` has reached its limit within the window (older counts are forgotten).
fn over_limit(
    f: &mut HashMap<String, (u32, std::time::Instant)>,
    keys: &[(String, u32); 2],
) -> bool {
    f.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
    keys.iter()
        .any(|(k, limit)| f.get(k).is_some_and(|(n, _)| n >= limit))
}

/// One more failure on each key.
fn count(f: &mut HashMap<String, (u32, std::time::Instant)>, keys: [(String, u32); 2]) {
    // A flood of made-up names must not grow the table without bound.
    if f.len() > 100_000 {
        f.clear();
    }
    for (k, _) in keys {
        let e = f.entry(k).or_insert((0, std::time::Instant::now()));
        e.0 += 1;
        e.1 = std::time::Instant::now();
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
    /// The process's password budget is spent; nothing was checked, try again shortly.
    Busy,
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
            assert!(l.begin("exchange", a));
        }
        assert!(l.locked("exchange", a), "user locked");
        assert!(l.locked("exchange", b), "the user, from anywhere");
        assert!(!l.locked("other", b), "others are not");
        for i in 0..ADDRESS_FAILURES {
            assert!(l.begin(&format!("name{i}"), b));
        }
        assert!(l.locked("fresh-name", b), "address locked");
        l.succeeded("exchange", a);
        assert!(!l.locked("exchange", a));
    }

    #[test]
    fn attempts_are_counted_before_their_check_and_ipv6_clients_by_network() {
        let l = AuthLimiter::default();
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        // Parallel attempts: each begins before any check has ended; only the limit begins.
        let begun = (0..40).filter(|_| l.begin("exchange", a)).count();
        assert_eq!(begun, USER_FAILURES as usize);
        let l = AuthLimiter::default();
        for i in 0..ADDRESS_FAILURES {
            let ip: std::net::IpAddr = format!("2001:db8::{i:x}").parse().unwrap();
            assert!(l.begin(&format!("name{i}"), ip));
        }
        let same_net: std::net::IpAddr = "2001:db8::ffff:1".parse().unwrap();
        assert!(!l.begin("fresh", same_net), "the /64 is one client");
        assert!(l.begin("fresh", "2001:db8:0:1::1".parse().unwrap()));
    }

    #[test]
    fn hash_load_verify() {
        let d = tempfile::tempdir().unwrap();
        let h = hash_password(b"s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        let f = d.path().join("users");
        std::fs::write(&f, format!("# submitters\nexchange:{h}\n")).unwrap();
        let u = Users::load(&f).unwrap();
        let mut hasher = Hasher::new();
        assert!(u.verify(&mut hasher, "exchange", b"s3cret"));
        assert!(!u.verify(&mut hasher, "exchange", b"wrong"));
        assert!(!u.verify(&mut hasher, "nobody", b"s3cret"));
        assert!(!format!("{u:?}").contains("argon2"));
        std::fs::write(&f, "exchange:plaintext\n").unwrap();
        let e = Users::load(&f).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
