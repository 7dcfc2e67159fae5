//! Revocation checking for S/MIME certificates: OCSP (RFC 6960) at the responders the
//! certificate names, else CRLs (RFC 5280 §5) from its distribution points; answers verified
//! against the issuer and cached until their next update (or a shorter maximum age).
//!
//! OpenPGP certificates carry their own revocation signatures, which sequoia honours when
//! sealing and verifying; nothing is fetched for them here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use postern_core::{Policy, Revocation, RevocationChecker, Standard};
use postern_smime::crl::{self, CrlStatus};
use postern_smime::keys;
use postern_smime::ocsp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest CRL we download (large CAs publish lists of tens of megabytes).
const MAX_CRL_BYTES: usize = 32 * 1024 * 1024;
/// How long a failed download is not retried (never longer than the maximum age), so a dead
/// server does not cost every message a timeout.
const FAILURE_BACKOFF: Duration = Duration::from_secs(60);

/// Fetches, verifies and caches CRLs.
#[derive(Debug)]
pub struct CrlChecker {
    cache: Mutex<HashMap<String, Cached>>,
    answers: Mutex<HashMap<String, OcspAnswer>>,
    /// A list is fetched again after this long even if its next update is later.
    pub max_age: Duration,
    /// Connect and download timeout.
    pub timeout: Duration,
    /// Algorithm policy for CRL and certificate signatures.
    pub policy: Policy,
    /// Whether caIssuers URLs may point at loopback or private addresses. Off by default: those
    /// URLs come from a certificate nobody has vouched for yet, and anyone who forges a
    /// partner's envelope sender could otherwise make us send requests into our own network.
    pub allow_private_issuer_urls: bool,
}

/// An OCSP answer (or failure), when it was had, and until when it holds.
type OcspAnswer = (Result<CrlStatus, String>, Instant, SystemTime);

#[derive(Debug, Clone)]
enum Cached {
    List {
        der: std::sync::Arc<Vec<u8>>,
        fetched: Instant,
        next_update: SystemTime,
    },
    Failed {
        at: Instant,
        why: String,
    },
}

impl Default for CrlChecker {
    fn default() -> Self {
        CrlChecker {
            cache: Mutex::new(HashMap::new()),
            answers: Mutex::new(HashMap::new()),
            max_age: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            policy: Policy::default(),
            allow_private_issuer_urls: false,
        }
    }
}

impl CrlChecker {
    /// A checker on this crate's own runtime: the ready constructor for an embedder, whatever
    /// its executor (see [`crate::runtime`]).
    pub fn standalone() -> Result<crate::runtime::OwnRuntime<Self>, crate::TrustError> {
        crate::runtime::OwnRuntime::new(Self::new())
    }

    /// A checker with the defaults (1 h maximum age, 10 s timeout).
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets caIssuers URLs point at loopback and private addresses (tests, closed networks).
    pub fn allow_private_issuer_urls(mut self) -> Self {
        self.allow_private_issuer_urls = true;
        self
    }

    /// Sets the maximum age of a cached list (zero: fetch every time).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The DER list at `url`, from the cache while it is current.
    async fn list(&self, url: &str) -> Result<std::sync::Arc<Vec<u8>>, String> {
        let cached = self.cache.lock().ok().and_then(|c| c.get(url).cloned());
        match cached {
            Some(Cached::List {
                der,
                fetched,
                next_update,
            }) if fetched.elapsed() < self.max_age && SystemTime::now() < next_update => {
                return Ok(der)
            }
            Some(Cached::Failed { at, why })
                if at.elapsed() < FAILURE_BACKOFF.min(self.max_age) =>
            {
                return Err(why)
            }
            _ => {}
        }
        let fetched = tokio::time::timeout(self.timeout, http_get(url, Reach::Any)).await;
        let result = match fetched {
            Ok(Ok(body)) => to_der(body),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {} s", self.timeout.as_secs())),
        };
        let entry = match &result {
            Ok(der) => Cached::List {
                der: std::sync::Arc::new(der.clone()),
                fetched: Instant::now(),
                next_update: crl::next_update(der).unwrap_or(SystemTime::UNIX_EPOCH),
            },
            Err(why) => {
                tracing::warn!(url, error = %why, "CRL download failed");
                Cached::Failed {
                    at: Instant::now(),
                    why: why.clone(),
                }
            }
        };
        if let Ok(mut c) = self.cache.lock() {
            c.insert(url.to_string(), entry);
        }
        result.map(std::sync::Arc::new)
    }
}

impl CrlChecker {
    /// Asks the responder at `url` about `cert`; answers are cached until their next update
    /// (or the maximum age), failures for a minute.
    async fn ocsp(
        &self,
        url: &str,
        cert: &postern_smime::Certificate,
        issuer: &postern_smime::Certificate,
    ) -> Result<CrlStatus, String> {
        let key = format!(
            "{url} {} {}",
            cert.tbs_certificate().issuer(),
            cert.tbs_certificate().serial_number()
        );
        let hit = self.answers.lock().ok().and_then(|c| c.get(&key).cloned());
        match hit {
            Some((Ok(status), fetched, until))
                if fetched.elapsed() < self.max_age && SystemTime::now() < until =>
            {
                return Ok(status)
            }
            Some((Err(why), fetched, _))
                if fetched.elapsed() < FAILURE_BACKOFF.min(self.max_age) =>
            {
                return Err(why)
            }
            _ => {}
        }
        let result = async {
            let pending = ocsp::request(cert, issuer).map_err(|e| e.to_string())?;
            let body = tokio::time::timeout(
                self.timeout,
                http_request(url, Some(&pending.der), Reach::Any),
            )
            .await
            .map_err(|_| format!("no answer within {} s", self.timeout.as_secs()))??;
            ocsp::check(&body, &pending, issuer, SystemTime::now(), &self.policy)
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(why) = &result {
            tracing::warn!(url, error = %why, "OCSP request failed");
        }
        let until = match &result {
            Ok(CrlStatus::Good { next_update }) => *next_update,
            _ => SystemTime::now() + self.max_age,
        };
        if let Ok(mut c) = self.answers.lock() {
            if c.len() > 10_000 {
                c.clear();
            }
            c.insert(key, (result.clone(), Instant::now(), until));
        }
        result
    }
}

impl CrlChecker {
    /// The certificates published at `cert`'s caIssuers URLs, following each one's own
    /// caIssuers up to three levels (at most eight certificates). Path material only.
    async fn fetch_issuers(
        &self,
        cert: &postern_smime::Certificate,
    ) -> Vec<postern_smime::Certificate> {
        let mut found: Vec<postern_smime::Certificate> = Vec::new();
        let mut todo = vec![cert.clone()];
        for _ in 0..3 {
            let mut next = Vec::new();
            for c in &todo {
                for url in ocsp::ca_issuers(c).into_iter().take(2) {
                    for issuer in self.issuer_file(&url).await {
                        let self_signed =
                            issuer.tbs_certificate().subject() == issuer.tbs_certificate().issuer();
                        if found.len() < 8 && !found.contains(&issuer) {
                            found.push(issuer.clone());
                            if !self_signed {
                                next.push(issuer);
                            }
                        }
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            todo = next;
        }
        found
    }

    /// The CA certificates at `url` (DER, PEM or a PKCS#7 bundle), cached like CRLs.
    async fn issuer_file(&self, url: &str) -> Vec<postern_smime::Certificate> {
        let key = format!("issuer {url}");
        let body = match self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            Some(Cached::List { der, fetched, .. }) if fetched.elapsed() < self.max_age => {
                Some(der.to_vec())
            }
            _ => None,
        };
        let reach = if self.allow_private_issuer_urls {
            Reach::Any
        } else {
            Reach::PublicOnly
        };
        let body = match body {
            Some(b) => b,
            None => match tokio::time::timeout(self.timeout, http_get(url, reach)).await {
                Ok(Ok(b)) => {
                    if let Ok(mut c) = self.cache.lock() {
                        c.insert(
                            key,
                            Cached::List {
                                der: std::sync::Arc::new(b.clone()),
                                fetched: Instant::now(),
                                next_update: SystemTime::now() + self.max_age,
                            },
                        );
                    }
                    b
                }
                Ok(Err(e)) => {
                    tracing::warn!(url, error = %e, "issuer certificate download failed");
                    return Vec::new();
                }
                Err(_) => return Vec::new(),
            },
        };
        keys::parse_certificates(&body)
            .unwrap_or_default()
            .into_iter()
            .filter(keys::is_ca)
            .collect()
    }
}

#[async_trait]
impl RevocationChecker for CrlChecker {
    async fn issuers(&self, standard: Standard, certificate: &[u8]) -> Vec<Vec<u8>> {
        if standard != Standard::Smime {
            return Vec::new();
        }
        let Ok(certs) = keys::parse_certificates(certificate) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for c in certs.iter().filter(|c| !keys::is_ca(c)) {
            for issuer in self.fetch_issuers(c).await {
                if let Ok(der) = der_of(&issuer) {
                    out.push(der);
                }
            }
        }
        out
    }

    async fn check(
        &self,
        standard: Standard,
        certificates: &[u8],
        issuers: &[Vec<u8>],
    ) -> Vec<(String, Revocation)> {
        if standard != Standard::Smime {
            return Vec::new();
        }
        let certs = match keys::parse_certificates(certificates) {
            Ok(c) => c,
            Err(e) => return vec![("certificate".into(), Revocation::Unknown(e.to_string()))],
        };
        let mut pool: Vec<_> = certs.iter().filter(|c| keys::is_ca(c)).cloned().collect();
        for i in issuers {
            pool.extend(keys::parse_certificates(i).unwrap_or_default());
        }
        let mut out = Vec::new();
        for cert in certs.iter().filter(|c| !keys::is_ca(c)) {
            let name = cert.tbs_certificate().subject().to_string();
            let urls = crl::distribution_points(cert);
            let responders = ocsp::responders(cert);
            if urls.is_empty() && responders.is_empty() {
                out.push((name, Revocation::NoSource));
                continue;
            }
            if crl::find_issuer(cert, &pool, &self.policy).is_none() {
                pool.extend(self.fetch_issuers(cert).await);
            }
            let Some(issuer) = crl::find_issuer(cert, &pool, &self.policy) else {
                out.push((
                    name,
                    Revocation::Unknown(
                        "its issuer's certificate is not at hand to verify the CRL".into(),
                    ),
                ));
                continue;
            };
            let mut answer = Revocation::Unknown("no revocation source answered".into());
            // OCSP first (fresher, smaller), the CRL when no responder gives an answer.
            for url in responders {
                match self.ocsp(&url, cert, issuer).await {
                    Ok(status) => {
                        answer = describe(status);
                        break;
                    }
                    Err(e) => answer = Revocation::Unknown(format!("OCSP {url}: {e}")),
                }
            }
            if matches!(answer, Revocation::Good | Revocation::Revoked(_)) {
                out.push((name, answer));
                continue;
            }
            for url in urls {
                let der = match self.list(&url).await {
                    Ok(d) => d,
                    Err(e) => {
                        answer = Revocation::Unknown(format!("CRL {url}: {e}"));
                        continue;
                    }
                };
                match crl::check(cert, issuer, &der, SystemTime::now(), &self.policy) {
                    Ok(status) => {
                        answer = describe(status);
                        break;
                    }
                    Err(e) => answer = Revocation::Unknown(format!("CRL {url}: {e}")),
                }
            }
            out.push((name, answer));
        }
        out
    }
}

fn der_of(c: &postern_smime::Certificate) -> Result<Vec<u8>, String> {
    postern_smime::keys::to_der(c).map_err(|e| e.to_string())
}

// Which addresses a download may connect to: CRL and OCSP URLs of certificates that chain to
// an anchor we trust go anywhere; caIssuers URLs from a certificate nobody has vouched for only
// to the internet.
use crate::fetch::Reach;

/// An `http:` URL taken apart: one parser for the check and the request, so the two cannot
/// disagree about which host is meant.
#[derive(Debug, PartialEq, Eq)]
struct HttpUrl<'a> {
    authority: &'a str,
    host: &'a str,
    port: u16,
    path: &'a str,
}

fn parse_http_url(url: &str) -> Result<HttpUrl<'_>, String> {
    let rest = url
        .get(7..)
        .filter(|_| {
            url.get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        })
        .ok_or("not an http: URL")?;
    if rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("malformed URL".into());
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) if rest.as_bytes()[i] == b'/' => rest.split_at(i),
        Some(_) => return Err("malformed URL".into()),
        None => (rest, "/"),
    };
    // User information would let `http://inside@outside/` mean different hosts to different
    // readers; CA URLs never carry it.
    if authority.contains('@') {
        return Err("URL with user information".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("malformed URL")?;
            let port = match after {
                "" => 80,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or("bad port")?,
            };
            (host, port)
        }
        None => match authority.split_once(':') {
            Some((host, p)) => (host, p.parse().map_err(|_| "bad port")?),
            None => (authority, 80),
        },
    };
    if host.is_empty() {
        return Err("malformed URL".into());
    }
    Ok(HttpUrl {
        authority,
        host,
        port,
        path,
    })
}

/// The addresses to connect to for `url`, resolved once. Under [`Reach::PublicOnly`] a host
/// that is, or resolves to, any address that is not on the internet is refused, and the
/// connection goes to exactly the addresses checked: resolving again to connect would let a
/// name that answers differently the second time (DNS rebinding) reach our own network.
async fn resolve(url: &HttpUrl<'_>, reach: Reach) -> Result<Vec<std::net::SocketAddr>, String> {
    let addrs: Vec<_> = tokio::net::lookup_host((url.host, url.port))
        .await
        .map_err(|e| format!("resolve: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err("resolve: no address".into());
    }
    if reach == Reach::PublicOnly && addrs.iter().any(|a| !crate::netguard::is_public(a.ip())) {
        return Err("points at a loopback or private address".into());
    }
    Ok(addrs)
}

/// A CRL's or OCSP responder's answer as the router takes it.
fn describe(status: CrlStatus) -> Revocation {
    match status {
        CrlStatus::Good { .. } => Revocation::Good,
        CrlStatus::Revoked { date, reason } => {
            let when = postern_core::civil::utc_timestamp(date);
            Revocation::Revoked(match reason {
                Some(r) => format!("revoked {when} ({r})"),
                None => format!("revoked {when}"),
            })
        }
    }
}

/// A CRL as DER: servers send DER, some PEM.
fn to_der(body: Vec<u8>) -> Result<Vec<u8>, String> {
    if body.starts_with(b"-----BEGIN") {
        let text = String::from_utf8_lossy(&body);
        let b64: String = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN X509 CRL-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        use base64::Engine as _;
        return base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("PEM CRL: {e}"));
    }
    Ok(body)
}

/// `GET` over plain HTTP/1.0 (CRL distribution points are `http:` by design: the list is
/// signed, and HTTPS would need revocation checking of its own).
async fn http_get(url: &str, reach: Reach) -> Result<Vec<u8>, String> {
    http_request(url, None, reach).await
}

/// `GET`, or `POST` of an OCSP request when `ocsp_request` is given.
async fn http_request(
    url: &str,
    ocsp_request: Option<&[u8]>,
    reach: Reach,
) -> Result<Vec<u8>, String> {
    let url = parse_http_url(url)?;
    let addrs = resolve(&url, reach).await?;
    let mut stream = TcpStream::connect(&addrs[..])
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (authority, path) = (url.authority, url.path);
    let mut request = match ocsp_request {
        None => format!(
            "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: postern\r\nAccept: application/pkix-crl\r\nConnection: close\r\n\r\n"
        )
        .into_bytes(),
        Some(body) => format!(
            "POST {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: postern\r\nContent-Type: application/ocsp-request\r\nAccept: application/ocsp-response\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes(),
    };
    if let Some(body) = ocsp_request {
        request.extend_from_slice(body);
    }
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    (&mut stream)
        .take(MAX_CRL_BYTES as u64 + 16 * 1024)
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let split = memchr::memmem::find(&response, b"\r\n\r\n").ok_or("no HTTP header")?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("HTTP status {status}"));
    }
    let body = response.split_off(split + 4);
    if body.len() > MAX_CRL_BYTES {
        return Err("CRL larger than the limit".into());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolves `url` under [`Reach::PublicOnly`].
    async fn public_only(url: &str) -> Result<(), String> {
        resolve(&parse_http_url(url)?, Reach::PublicOnly)
            .await
            .map(drop)
    }

    #[tokio::test]
    async fn issuer_urls_into_our_own_network_are_refused() {
        for url in [
            "http://127.0.0.1/int.der",
            "http://127.0.0.1:8080/int.der",
            "http://10.1.2.3/int.der",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:80/x",
            "http://[::1]/x",
            "http://localhost/x",
            "http://192.0.2.10/int.der",
            "http://100.64.0.1/int.der",
            "http://[::ffff:169.254.169.254]/latest/meta-data",
            "http://93.184.216.34@127.0.0.1/x",
        ] {
            assert!(public_only(url).await.is_err(), "{url}");
        }
        // An internet address literal (only parsed: nothing connects to it).
        assert!(public_only("http://93.184.216.34/int.der").await.is_ok());
    }

    #[test]
    fn one_parser_reads_host_port_and_path() {
        let u = parse_http_url("HTTP://[::1]:8080/a/b.crl").unwrap();
        assert_eq!(
            (u.host, u.port, u.path, u.authority),
            ("::1", 8080, "/a/b.crl", "[::1]:8080")
        );
        let u = parse_http_url("http://[::1]").unwrap();
        assert_eq!((u.host, u.port, u.path), ("::1", 80, "/"));
        let u = parse_http_url("http://ca.example:81").unwrap();
        assert_eq!((u.host, u.port, u.path), ("ca.example", 81, "/"));
        for bad in [
            "http://",
            "http://:80/x",
            "http://a:b/x",
            "http://[::1/x",
            "http://[::1]x/x",
            "http://a@b/x",
            "http://a?x",
            "http://a/\r\nHost: b",
            "ftp://a/x",
            "http:/a",
        ] {
            assert!(parse_http_url(bad).is_err(), "{bad}");
        }
    }

    /// The download itself (not only the check) refuses a name that resolves into our own
    /// network, and makes no connection: the address checked is the address connected to.
    #[tokio::test]
    async fn a_public_only_download_never_connects_inside() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.0 200 OK\r\n\r\nissuer").await.unwrap();
        });
        let url = format!("http://localhost:{port}/int.der");
        let refused = http_get(&url, Reach::PublicOnly).await;
        assert!(refused.unwrap_err().contains("private"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!server.is_finished(), "a connection was made");
        // The same URL where private addresses are allowed is fetched (the listener works).
        let url = format!("http://127.0.0.1:{port}/int.der");
        assert_eq!(http_get(&url, Reach::Any).await.unwrap(), b"issuer");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn only_http_urls_are_fetched() {
        assert!(http_get("https://example.org/x.crl", Reach::Any)
            .await
            .is_err());
        assert!(http_get("http://exa mple/x", Reach::Any).await.is_err());
    }
}
