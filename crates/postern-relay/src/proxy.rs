//! The PROXY protocol (HAProxy's, versions 1 and 2) on the SMTP listeners: behind a load
//! balancer every connection comes from the balancer, so every per-client limit (connections,
//! AUTH locks, unknown recipients) would count one client and one flood would lock everyone
//! out. A listener given `proxy_from` networks reads the header a balancer in them sends first
//! and treats the client it names as the peer; from anywhere else nothing is read and nothing
//! is believed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a proxy may take to send its header.
pub const HEADER_WAIT: Duration = Duration::from_secs(5);
/// Version 1's longest line (the specification's bound).
const V1_MAX: usize = 107;
/// Version 2's signature.
const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// Why a connection from a proxy was dropped.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No header in time, or the connection ended.
    #[error("no PROXY header: {0}")]
    Io(#[from] std::io::Error),
    /// Something that is not a PROXY header, or one we do not accept.
    #[error("not a PROXY header: {0}")]
    Malformed(&'static str),
}

/// Reads the PROXY header at the start of `io` (nothing after it) and returns the client it
/// names; `None` for a header that names none (`UNKNOWN`, `LOCAL`: the balancer's own health
/// check), which the listener refuses (the balancer's address would pass as a client of its
/// network).
pub async fn read_header<R: AsyncRead + Unpin>(
    io: &mut R,
) -> Result<Option<SocketAddr>, ProxyError> {
    let mut first = [0u8; 12];
    io.read_exact(&mut first[..5]).await?;
    if &first[..5] == b"PROXY" {
        return v1(io).await;
    }
    io.read_exact(&mut first[5..]).await?;
    if first != V2_SIGNATURE {
        return Err(ProxyError::Malformed("neither version 1 nor version 2"));
    }
    v2(io).await
}

/// `PROXY TCP4 src dst sport dport\r\n` (after "PROXY"), read a byte at a time so nothing of
/// the SMTP session is consumed.
async fn v1<R: AsyncRead + Unpin>(io: &mut R) -> Result<Option<SocketAddr>, ProxyError> {
    let mut line = Vec::with_capacity(V1_MAX);
    loop {
        let mut b = [0u8; 1];
        io.read_exact(&mut b).await?;
        line.push(b[0]);
        if line.ends_with(b"\r\n") {
            break;
        }
        if line.len() + 5 > V1_MAX {
            return Err(ProxyError::Malformed("version 1 line too long"));
        }
    }
    let text = std::str::from_utf8(&line).map_err(|_| ProxyError::Malformed("not text"))?;
    let fields: Vec<&str> = text.trim_end().split(' ').collect();
    match fields.as_slice() {
        ["", "UNKNOWN", ..] => Ok(None),
        ["", proto @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = src
                .parse()
                .map_err(|_| ProxyError::Malformed("source address"))?;
            if (*proto == "TCP4") != ip.is_ipv4() {
                return Err(ProxyError::Malformed("address family"));
            }
            let port: u16 = sport
                .parse()
                .map_err(|_| ProxyError::Malformed("source port"))?;
            Ok(Some(SocketAddr::new(ip, port)))
        }
        _ => Err(ProxyError::Malformed("version 1 fields")),
    }
}

/// Version 2 after its signature: version/command, family, length, addresses (TLVs skipped).
async fn v2<R: AsyncRead + Unpin>(io: &mut R) -> Result<Option<SocketAddr>, ProxyError> {
    let mut head = [0u8; 4];
    io.read_exact(&mut head).await?;
    if head[0] >> 4 != 2 {
        return Err(ProxyError::Malformed("version 2 expected"));
    }
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    // 216 bytes for Unix addresses plus TLVs; a balancer sends far less.
    if len > 512 {
        return Err(ProxyError::Malformed("version 2 header too long"));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    match head[0] & 0x0F {
        0 => return Ok(None), // LOCAL: the balancer itself
        1 => {}
        _ => return Err(ProxyError::Malformed("version 2 command")),
    }
    let port = |at: usize| -> Result<u16, ProxyError> {
        body.get(at..at + 2)
            .map(|p| u16::from_be_bytes([p[0], p[1]]))
            .ok_or(ProxyError::Malformed("version 2 addresses"))
    };
    match head[1] >> 4 {
        0 => Ok(None), // AF_UNSPEC
        1 => {
            let a = body
                .get(..4)
                .ok_or(ProxyError::Malformed("version 2 addresses"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port(8)?)))
        }
        2 => {
            let a: [u8; 16] = body
                .get(..16)
                .and_then(|a| a.try_into().ok())
                .ok_or(ProxyError::Malformed("version 2 addresses"))?;
            Ok(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(a)),
                port(32)?,
            )))
        }
        _ => Err(ProxyError::Malformed("version 2 address family")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let mut io = std::io::Cursor::new(bytes.to_vec());
        let r = read_header(&mut io).await;
        let mut rest = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut io, &mut rest).await;
        (r, rest)
    }

    #[tokio::test]
    async fn both_versions_name_the_client_and_leave_the_session_untouched() {
        let (r, rest) = read(b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 25\r\nEHLO x\r\n").await;
        assert_eq!(r.unwrap(), Some("198.51.100.7:40000".parse().unwrap()));
        assert_eq!(rest, b"EHLO x\r\n");
        let (r, _) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 25\r\n").await;
        assert_eq!(r.unwrap(), Some("[2001:db8::7]:40000".parse().unwrap()));
        let (r, _) = read(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(r.unwrap(), None);
        // Version 2, PROXY command, TCP over IPv4.
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[
            0x21, 0x11, 0, 12, 198, 51, 100, 7, 192, 0, 2, 1, 0x9c, 0x40, 0, 25,
        ]);
        v2.extend_from_slice(b"EHLO y\r\n");
        let (r, rest) = read(&v2).await;
        assert_eq!(r.unwrap(), Some("198.51.100.7:40000".parse().unwrap()));
        assert_eq!(rest, b"EHLO y\r\n");
        // LOCAL (a health check): no client.
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(read(&local).await.0.unwrap(), None);
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        for bad in [
            &b"EHLO x\r\n"[..],
            b"PROXY TCP4 198.51.100.7 192.0.2.1 40000\r\n",
            b"PROXY TCP4 2001:db8::7 192.0.2.1 1 2\r\n",
            b"PROXY TCP4 999.1.1.1 192.0.2.1 1 2\r\n",
            b"PROXY TCP4 198.51.100.7 192.0.2.1 70000 25\r\n",
            b"PROXY TCP4 198.51.100.7",
        ] {
            assert!(read(bad).await.0.is_err(), "{bad:?}");
        }
        let long = [b"PROXY ".as_slice(), &[b'A'; 200]].concat();
        assert!(read(&long).await.0.is_err());
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        assert!(read(&huge).await.0.is_err());
    }
}
