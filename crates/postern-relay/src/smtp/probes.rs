//! Recipient verification is an oracle: "250" or "550 unknown" tells a stranger which addresses
//! exist (391 answers in 0.3 s to one client once). Unknown-recipient answers are counted per
//! client (an IPv4 address or an IPv6 network) over a window that survives reconnects: the first
//! [`UnknownRecipients::free`] are answered at once, the next as many only after a pause each
//! (a tarpit), and after that the client gets 421 and is disconnected until its window passes —
//! before our mail server is even asked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long unknown-recipient answers count against a client.
pub const WINDOW: Duration = Duration::from_secs(600);
/// The pause before each answer in the tarpit.
pub const TARPIT: Duration = Duration::from_secs(1);

/// What to do about a client's next unknown recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Answer 550 now.
    Answer,
    /// Pause, then answer 550.
    Slow(Duration),
    /// 421 and close: this client asked about too many addresses that do not exist.
    Refuse,
}

/// The counts.
#[derive(Debug)]
pub struct UnknownRecipients {
    free: u32,
    v6_prefix: u8,
    seen: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl UnknownRecipients {
    /// `free` unknown recipients per client and window answered at once, as many more slowly.
    pub fn new(free: u32, v6_prefix: u8) -> Self {
        UnknownRecipients {
            free,
            v6_prefix,
            seen: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `ip` is refused now (asked before our mail server is).
    pub fn refused(&self, ip: IpAddr) -> bool {
        let key = postern_core::client_network(ip, self.v6_prefix);
        self.lock()
            .get(&key)
            .is_some_and(|(n, since)| since.elapsed() < WINDOW && *n >= self.free * 2)
    }

    /// Counts one unknown recipient for `ip` and says how to answer.
    pub fn unknown(&self, ip: IpAddr) -> Probe {
        let key = postern_core::client_network(ip, self.v6_prefix);
        let mut seen = self.lock();
        // Bounded: a flood of addresses drops the expired counts, then all of them.
        if seen.len() > 100_000 {
            seen.retain(|_, (_, since)| since.elapsed() < WINDOW);
            if seen.len() > 100_000 {
                seen.clear();
            }
        }
        let e = seen.entry(key).or_insert((0, Instant::now()));
        if e.1.elapsed() >= WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
        match e.0 {
            n if n <= self.free => Probe::Answer,
            n if n <= self.free * 2 => Probe::Slow(TARPIT),
            _ => Probe::Refuse,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_then_a_tarpit_then_refusal_per_client_network() {
        let u = UnknownRecipients::new(3, 64);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_net: IpAddr = "2001:db8::2".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        let got: Vec<Probe> = (0..7)
            .map(|i| u.unknown(if i % 2 == 0 { a } else { same_net }))
            .collect();
        assert_eq!(
            got,
            [
                Probe::Answer,
                Probe::Answer,
                Probe::Answer,
                Probe::Slow(TARPIT),
                Probe::Slow(TARPIT),
                Probe::Slow(TARPIT),
                Probe::Refuse
            ]
        );
        assert!(u.refused(a) && u.refused(same_net));
        assert!(!u.refused(other));
        assert_eq!(u.unknown(other), Probe::Answer);
    }
}
