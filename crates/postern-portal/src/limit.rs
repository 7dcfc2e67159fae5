//! Requests per client per minute, for the sensitive paths (codes, sign-ins, replies): a fixed
//! one-minute window per client, forgotten when the window passes. A client is an IPv4 address
//! or an IPv6 network ([`client_network`]): one host usually holds a whole /64, so counting
//! single IPv6 addresses would give it 2^64 budgets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

pub use postern_core::{client_network, ConnectionSlot, ConnectionSlots};

/// The limiter.
#[derive(Debug)]
pub struct Limiter {
    per_minute: u32,
    v6_prefix: u8,
    seen: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl Limiter {
    /// At most `per_minute` per client (IPv6 clients by their `v6_prefix` network).
    pub fn new(per_minute: u32, v6_prefix: u8) -> Limiter {
        Limiter {
            per_minute,
            v6_prefix,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request; false when the client is over its limit.
    pub fn allow(&self, client: IpAddr) -> bool {
        let client = client_network(client, self.v6_prefix);
        let minute = crate::now() / 60;
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.len() > 100_000 {
            seen.retain(|_, (m, _)| *m == minute);
        }
        let e = seen.entry(client).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        e.1 += 1;
        e.1 <= self.per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_network_and_ipv4_by_address() {
        let n = |s: &str, p| client_network(s.parse().unwrap(), p).to_string();
        assert_eq!(n("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::");
        assert_eq!(n("2001:db8:1:2:ffff:ffff:ffff:ffff", 64), "2001:db8:1:2::");
        assert_eq!(n("2001:db8:1:2:3:4:5:6", 48), "2001:db8:1::");
        assert_eq!(n("2001:db8::1", 128), "2001:db8::1");
        assert_eq!(n("2001:db8::1", 0), "::");
        assert_eq!(n("192.0.2.7", 64), "192.0.2.7");
        assert_eq!(n("::ffff:192.0.2.7", 64), "192.0.2.7");
        let l = Limiter::new(3, 64);
        for i in 0..3 {
            assert!(l.allow(format!("2001:db8::{i}").parse().unwrap()));
        }
        assert!(!l.allow("2001:db8::ffff".parse().unwrap()), "the same /64");
        assert!(l.allow("2001:db8:0:1::1".parse().unwrap()), "another /64");
        assert!(l.allow("192.0.2.1".parse().unwrap()));
    }
}
