//! Which network a client counts as, for every per-client limit (SMTP AUTH locks, unknown
//! recipients, the portal's request limits): one answer everywhere, so an IPv6 client cannot
//! spread its tries over the 2^64 addresses of its own network.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The network a client address is counted as: an IPv4 address as it is (an IPv4-mapped IPv6
/// address as its IPv4 address), an IPv6 address cut to its first `v6_prefix` bits.
pub fn client_network(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6);
                let keep = u32::from(v6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
                IpAddr::V6(std::net::Ipv6Addr::from(bits & mask))
            }
        },
    }
}

/// A parsed client network (CIDR), as listeners, proxies and limits name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `127.0.0.0/8`, `::1/128` or a bare address.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix must be 0..={max}"))?,
            None => max,
        };
        Ok(Network { addr, prefix })
    }

    /// Whether `ip` is inside (IPv4-mapped IPv6 clients count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// A listener's connection allowance: in all, and per client (an IPv4 address or an IPv6
/// network, [`client_network`]). The relay's SMTP listeners and the portal's HTTP listener each
/// hold one; an embedder's listener can too.
#[derive(Debug, Clone)]
pub struct ConnectionSlots {
    total: usize,
    per_client: usize,
    v6_prefix: u8,
    held: Arc<Mutex<Held>>,
}

/// Connections holding a slot: in all and per client (clients with none are forgotten, so the
/// map is as large as the connections, never the clients seen).
#[derive(Debug, Default)]
struct Held {
    all: usize,
    clients: HashMap<IpAddr, usize>,
}

/// One connection's hold on its listener's slots, given back when it is dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    client: IpAddr,
    held: Arc<Mutex<Held>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut h = self.held.lock().unwrap_or_else(|p| p.into_inner());
        h.all = h.all.saturating_sub(1);
        if let Some(n) = h.clients.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                h.clients.remove(&self.client);
            }
        }
    }
}

impl ConnectionSlots {
    /// `all` connections at once, `per_client` from one client (IPv6 clients by their
    /// `v6_prefix` network).
    pub fn new(all: usize, per_client: usize, v6_prefix: u8) -> Self {
        ConnectionSlots {
            total: all,
            per_client,
            v6_prefix,
            held: Arc::default(),
        }
    }

    /// A slot for a connection from `ip`, unless the listener or that client is at its limit.
    pub fn take(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        self.take_within(ip, self.per_client)
    }

    /// [`ConnectionSlots::take`] with another per-client limit: a trusted reverse proxy, which
    /// carries many clients' connections, is held to the listener's total only.
    pub fn take_within(&self, ip: IpAddr, per_client: usize) -> Option<ConnectionSlot> {
        let client = client_network(ip, self.v6_prefix);
        let mut h = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if h.all >= self.total || h.clients.get(&client).copied().unwrap_or(0) >= per_client {
            return None;
        }
        h.all += 1;
        *h.clients.entry(client).or_insert(0) += 1;
        Some(ConnectionSlot {
            client,
            held: self.held.clone(),
        })
    }

    /// Connections holding a slot now.
    pub fn in_use(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_slots_hold_per_client_and_in_all_and_come_back() {
        let s = ConnectionSlots::new(3, 2, 64);
        let a = s.take("2001:db8::1".parse().unwrap()).unwrap();
        let _b = s.take("2001:db8::2".parse().unwrap()).unwrap();
        assert!(
            s.take("2001:db8::3".parse().unwrap()).is_none(),
            "the /64 has two"
        );
        let _c = s.take("192.0.2.1".parse().unwrap()).unwrap();
        assert!(
            s.take("192.0.2.2".parse().unwrap()).is_none(),
            "three in all"
        );
        assert_eq!(s.in_use(), 3);
        drop(a);
        assert_eq!(s.in_use(), 2);
        assert!(s.take("2001:db8::3".parse().unwrap()).is_some());
        // A trusted proxy is held to the total only.
        let p = ConnectionSlots::new(4, 1, 64);
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let held: Vec<_> = (0..4).filter_map(|_| p.take_within(proxy, 4)).collect();
        assert_eq!(held.len(), 4);
        assert!(p.take_within(proxy, 4).is_none(), "the total still holds");
    }

    #[test]
    fn slots_hold_under_parallel_takers() {
        let s = ConnectionSlots::new(50, 1000, 64);
        let got: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter_map(|i| s.take(format!("10.0.{t}.{i}").parse().unwrap()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let held: Vec<_> = got.into_iter().flat_map(|t| t.join().unwrap()).collect();
        assert_eq!(held.len(), 50, "never more than the listener's total");
        drop(held);
        assert_eq!(s.in_use(), 0);
    }
}
