//! Recipient verification on the public listener: before a RCPT TO for one of our domains is
//! accepted, our mail server is asked (an SMTP probe without a message) whether it takes that
//! address. Unknown recipients are refused in the session, so the gateway never accepts mail it
//! would have to bounce later: such a bounce goes to a sender that may be forged (backscatter),
//! and to a partner it would be a sealed message built from a stranger's words.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::smtp::client::{probe_recipient, Probe};
use crate::smtp::tls::TlsContext;

/// How long a "yes" is believed.
const ACCEPTED_FOR: Duration = Duration::from_secs(3600);
/// How long a "no" is believed (shorter: a mailbox may be created).
const REJECTED_FOR: Duration = Duration::from_secs(600);
/// Cached answers at most; the cache starts over when full (a flood of made-up addresses
/// must not grow it without bound).
const MAX_CACHED: usize = 100_000;

/// Probes to our mail server at once: strangers choose the recipients (and can make every
/// one a cache miss), so they must not be able to flood it with connections through us.
const CONCURRENT_PROBES: usize = 4;

/// Asks the inbound next hop about recipients, and remembers the answers.
pub struct RecipientVerifier {
    addr: String,
    cache: Mutex<HashMap<String, (Instant, bool, String)>>,
    probes: tokio::sync::Semaphore,
}

impl std::fmt::Debug for RecipientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecipientVerifier")
            .field("next_hop", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RecipientVerifier {
    /// Verifies against the SMTP server at `addr` (`HOST:PORT`).
    pub fn new(addr: &str) -> Self {
        RecipientVerifier {
            addr: addr.to_string(),
            cache: Mutex::default(),
            probes: tokio::sync::Semaphore::new(CONCURRENT_PROBES),
        }
    }

    /// Whether our mail server takes `rcpt`: a cached answer, or a fresh probe.
    pub async fn check(&self, rcpt: &str, helo: &str, wait: Duration, tls: &TlsContext) -> Probe {
        let key = rcpt.to_lowercase();
        if let Some((at, ok, why)) = self.lock().get(&key).cloned() {
            let ttl = if ok { ACCEPTED_FOR } else { REJECTED_FOR };
            if at.elapsed() < ttl {
                return if ok {
                    Probe::Accepted
                } else {
                    Probe::Rejected(why)
                };
            }
        }
        let Ok(_slot) = self.probes.acquire().await else {
            return Probe::Unknown("recipient verification is shutting down".into());
        };
        let answer = probe_recipient(&self.addr, helo, rcpt, wait, tls).await;
        let remember = match &answer {
            Probe::Accepted => Some((true, String::new())),
            Probe::Rejected(why) => Some((false, why.clone())),
            Probe::Unknown(_) => None,
        };
        if let Some((ok, why)) = remember {
            let mut c = self.lock();
            if c.len() >= MAX_CACHED {
                c.clear();
            }
            c.insert(key, (Instant::now(), ok, why));
        }
        answer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, bool, String)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
