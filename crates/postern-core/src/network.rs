//! Which network a client counts as, for every per-client limit (SMTP AUTH locks, unknown
//! recipients, the portal's request limits): one answer everywhere, so an IPv6 client cannot
//! spread its tries over the 2^64 addresses of its own network.

use std::net::IpAddr;

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
