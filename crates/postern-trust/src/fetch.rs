//! One small HTTPS GET for the relay's lookups (Web Key Directory, trust bundles): a verified
//! TLS connection, HTTP/1.0, a size limit. `Ok(None)` is a 404.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// Where a fetch may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Only addresses on the internet ([`crate::netguard::is_public`]): the name came from
    /// outside (a recipient's domain).
    PublicOnly,
    /// Anywhere: the URL is the administrator's own.
    Any,
}

/// GET `https://host:port/path`, connecting to `connect_to` when given instead of resolving
/// `host` (the certificate is still verified for `host`). Otherwise `host` is resolved once,
/// checked against `reach`, and the connection goes to exactly the addresses checked (resolving
/// again to connect would let a name that answers differently the second time reach inside).
pub async fn https_get(
    tls: &TlsConnector,
    host: &str,
    port: u16,
    path: &str,
    connect_to: Option<SocketAddr>,
    reach: Reach,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, String> {
    if host.contains(['\r', '\n', ' ', '/']) || path.contains(['\r', '\n', ' ']) {
        return Err("malformed URL".into());
    }
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let addrs: Vec<SocketAddr> = match connect_to {
        Some(addr) => vec![addr],
        None => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("resolve {host}: {e}"))?
            .collect(),
    };
    if connect_to.is_none()
        && reach == Reach::PublicOnly
        && addrs.iter().any(|a| !crate::netguard::is_public(a.ip()))
    {
        return Err(format!("{host} points at a loopback or private address"));
    }
    let tcp = TcpStream::connect(&addrs[..])
        .await
        .map_err(|e| format!("connect {host}: {e}"))?;
    let mut tls = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {host}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: postern\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    // A server that closes without close_notify still gave us what it sent.
    let read = (&mut tls)
        .take(max_bytes + 16 * 1024)
        .read_to_end(&mut response)
        .await;
    if let Err(e) = read {
        if response.is_empty() {
            return Err(format!("read: {e}"));
        }
    }
    let split = memchr::memmem::find(&response, b"\r\n\r\n").ok_or("no HTTP header")?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    match head.split_whitespace().nth(1).unwrap_or("") {
        "200" => {
            let body = response.split_off(split + 4);
            if body.len() as u64 > max_bytes {
                return Err("answer larger than the limit".into());
            }
            Ok(Some(body))
        }
        "404" => Ok(None),
        other => Err(format!("HTTP status {other}")),
    }
}

/// Splits `https://host[:port]/path` into its parts.
pub fn parse_https_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url}: only https: URLs are fetched"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("{url}: bad port"))?),
        None => (authority, 443),
    };
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok((host.to_ascii_lowercase(), port, path.to_string()))
}
