//! The answers of a published-key source (WKD, DNS CERT, LDAP) per address, for a while: one
//! cache for all of them. Bounded: our own users choose the addresses looked up, and every
//! distinct address would otherwise stay in memory for as long as the relay runs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most this many addresses are kept; past it, expired answers go, then all of them.
const MAX_ENTRIES: usize = 10_000;

/// Certificates found for one address, and when.
type Answer = (Vec<Vec<u8>>, Instant);

/// Answers per address (lower-case).
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    entries: Mutex<HashMap<String, Answer>>,
}

impl KeyCache {
    /// The answer for `key` if it is younger than `ttl`.
    pub(crate) fn get(&self, key: &str, ttl: Duration) -> Option<Vec<Vec<u8>>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < ttl)
            .map(|(certs, _)| certs.clone())
    }

    /// Keeps `certs` (also an empty answer: "not published") as the answer for `key`.
    pub(crate) fn put(&self, key: String, certs: Vec<Vec<u8>>, ttl: Duration) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (certs, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_expire_and_the_cache_stays_bounded() {
        let c = KeyCache::default();
        let hour = Duration::from_secs(3600);
        c.put("a@x.example".into(), vec![b"cert".to_vec()], hour);
        assert_eq!(c.get("a@x.example", hour), Some(vec![b"cert".to_vec()]));
        assert_eq!(
            c.get("a@x.example", Duration::ZERO),
            None,
            "ttl zero: ask every time"
        );
        assert_eq!(c.get("b@x.example", hour), None);
        for i in 0..MAX_ENTRIES + 5 {
            c.put(format!("u{i}@x.example"), Vec::new(), hour);
        }
        let len = c.entries.lock().unwrap().len();
        assert!(len <= MAX_ENTRIES, "{len} entries");
    }
}
