//! OpenPGP Web Key Directory (draft-koch-openpgp-webkey-service): a partner's keys found where
//! the partner publishes them, over HTTPS with a verified certificate. The advanced method
//! (`openpgpkey.<domain>`) is used when that host exists, else the direct one (`<domain>`).
//!
//! Found keys are cached with their expiry (the relay's key watch notices changes). A server
//! that cannot be reached is [`Error::Unavailable`] (the router holds the mail, 451); a key that
//! is not published is an empty answer (no key).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::keycache::KeyCache;
use async_trait::async_trait;
use postern_core::{Address, Credential, Domain, Error, KeyStore, Standard};
use tokio_rustls::TlsConnector;

/// Largest answer read (a keyring for one address).
const MAX_ANSWER: u64 = 1024 * 1024;

/// A WKD client with a cache.
pub struct Wkd {
    tls: TlsConnector,
    /// Where to connect for a host name instead of resolving it (tests, split-horizon setups).
    overrides: HashMap<String, SocketAddr>,
    port: u16,
    /// How long found keys (and "not published") are kept.
    pub ttl: Duration,
    /// Connect and download timeout.
    pub timeout: Duration,
    cache: KeyCache,
}

impl std::fmt::Debug for Wkd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wkd")
            .field("overrides", &self.overrides)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Wkd {
    /// A client that verifies servers with `tls` (web PKI roots plus the configured CA file).
    pub fn new(tls: TlsConnector) -> Self {
        Wkd {
            tls,
            overrides: HashMap::new(),
            port: 443,
            ttl: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            cache: KeyCache::default(),
        }
    }

    /// A client that verifies servers against the web PKI roots (what a partner's WKD host
    /// presents), running on this crate's own runtime: the ready constructor for an embedder,
    /// whatever its executor (see [`crate::runtime`]).
    pub fn web_pki() -> Result<crate::runtime::OwnRuntime<Self>, crate::TrustError> {
        crate::runtime::OwnRuntime::new(Wkd::new(crate::tls::verified_connector(&[])?))
    }

    /// Connects to `addr` for `host` instead of resolving it (the TLS name stays `host`).
    pub fn with_host(mut self, host: &str, addr: SocketAddr) -> Self {
        self.overrides.insert(host.to_ascii_lowercase(), addr);
        self
    }

    /// Sets how long answers are cached (zero: ask every time).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The two URLs (host, path) for `address`, advanced method first.
    fn locations(address: &Address) -> [(String, String); 2] {
        let local = address.local();
        let domain = address.domain().as_str().to_ascii_lowercase();
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            local.to_lowercase().as_bytes(),
        );
        let hash = zbase32(digest.as_ref());
        let l = percent_encode(local);
        [
            (
                format!("openpgpkey.{domain}"),
                format!("/.well-known/openpgpkey/{domain}/hu/{hash}?l={l}"),
            ),
            (
                domain.clone(),
                format!("/.well-known/openpgpkey/hu/{hash}?l={l}"),
            ),
        ]
    }

    /// GET over HTTPS; `Ok(None)` for 404 (not published).
    async fn get(&self, host: &str, path: &str) -> Result<Option<Vec<u8>>, String> {
        let connect_to = self.overrides.get(host).copied();
        crate::fetch::https_get(
            &self.tls,
            host,
            self.port,
            path,
            connect_to,
            crate::fetch::Reach::PublicOnly,
            MAX_ANSWER,
        )
        .await
    }

    /// Whether `host` has an address (an override counts).
    async fn exists(&self, host: &str) -> bool {
        self.overrides.contains_key(host)
            || tokio::net::lookup_host((host, self.port))
                .await
                .is_ok_and(|mut a| a.next().is_some())
    }

    /// The advanced method when its `openpgpkey.` host exists, else the direct method (the
    /// draft's rule: a server that exists but fails is an outage, not a reason to ask elsewhere).
    async fn lookup(&self, address: &Address) -> Result<Vec<Vec<u8>>, Error> {
        let [advanced, direct] = Self::locations(address);
        let (host, path) = if self.exists(&advanced.0).await {
            advanced
        } else {
            direct
        };
        let failure = match tokio::time::timeout(self.timeout, self.get(&host, &path)).await {
            Ok(Ok(Some(body))) => {
                return postern_openpgp::certificates_with_address(&body, &address.to_string())
            }
            Ok(Ok(None)) => return Ok(Vec::new()),
            Ok(Err(e)) => e,
            Err(_) => format!("{host}: no answer in time"),
        };
        Err(Error::Unavailable(format!(
            "Web Key Directory for {address}: {failure}"
        )))
    }
}

#[async_trait]
impl KeyStore for Wkd {
    async fn recipient_certificates(
        &self,
        standard: Standard,
        recipient: &Address,
    ) -> Result<Vec<Vec<u8>>, Error> {
        if standard != Standard::OpenPgp {
            return Ok(Vec::new());
        }
        let key = recipient.to_string().to_lowercase();
        if let Some(hit) = self.cache.get(&key, self.ttl) {
            return Ok(hit);
        }
        let certs = self.lookup(recipient).await?;
        self.cache.put(key, certs.clone(), self.ttl);
        Ok(certs)
    }

    async fn own_credentials(
        &self,
        _standard: Standard,
        _domain: &Domain,
    ) -> Result<Vec<Credential>, Error> {
        Ok(Vec::new())
    }
}

/// z-base-32 (the WKD local-part hash encoding), 5-bit groups from the most significant bit.
fn zbase32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the WKD draft: `Joe.Doe@Example.ORG` hashes to
    /// `iy9q119eutrkn8s1mk4r39qejnbu3n5q`.
    #[test]
    fn local_part_hash_matches_the_draft() {
        let a = Address::new("Joe.Doe@Example.ORG").unwrap();
        let [(host, path), (direct, _)] = Wkd::locations(&a);
        assert_eq!(host, "openpgpkey.example.org");
        assert_eq!(direct, "example.org");
        assert!(
            path.starts_with(
                "/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe"
            ),
            "{path}"
        );
    }
}
