//! Certificates published in DNS CERT records (RFC 4398) as the Direct Project uses them: an
//! address-bound record at `local.domain` (the `@` becomes a dot), else a domain-bound one at
//! `domain`; PKIX (X.509) certificates for S/MIME. Answers larger than a UDP datagram come over
//! TCP (the resolver retries a truncated answer).
//!
//! DNS CERT answers are not DNSSEC-validated here, so a certificate found this way is only path
//! material: the router uses it only if it chains to our (or the partner's) trust anchors, as
//! Direct requires. OpenPGP CERT records are not used, since there is no chain to check them.

use std::time::Duration;

use crate::keycache::KeyCache;
use async_trait::async_trait;
use hickory_resolver::proto::rr::rdata::cert::CertType;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use postern_core::{Address, Credential, Domain, Error, KeyStore, SecureEnvelope, Standard};

/// Looks certificates up in DNS CERT records, with a cache.
pub struct DnsCert {
    resolver: TokioResolver,
    /// How long answers (and "none") are kept.
    pub ttl: Duration,
    cache: KeyCache,
}

impl std::fmt::Debug for DnsCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsCert")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl DnsCert {
    /// Over the system's resolver (`/etc/resolv.conf`), on this crate's own runtime: the ready
    /// constructor for an embedder, whatever its executor (see [`crate::runtime`]).
    pub fn system() -> Result<crate::runtime::OwnRuntime<Self>, crate::TrustError> {
        crate::runtime::OwnRuntime::new(Self::new(crate::resolver::resolver("")?))
    }

    /// Over `resolver` (see [`crate::resolver::resolver`]).
    pub fn new(resolver: TokioResolver) -> Self {
        DnsCert {
            resolver,
            ttl: Duration::from_secs(3600),
            cache: KeyCache::default(),
        }
    }

    /// Sets the cache lifetime (zero: ask every time).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The PKIX certificates of the CERT records at `name`; `Ok(empty)` when there are none.
    async fn lookup(&self, name: &str) -> Result<Vec<Vec<u8>>, Error> {
        let answer = self.resolver.lookup(name, RecordType::CERT).await;
        let lookup = match answer {
            Ok(l) => l,
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => return Ok(Vec::new()),
            Err(e) => return Err(Error::Unavailable(format!("DNS CERT {name}: {e}"))),
        };
        Ok(lookup
            .record_iter()
            .filter_map(|r| match r.data() {
                RData::CERT(c) if c.cert_type() == CertType::PKIX => Some(c.cert_data()),
                _ => None,
            })
            .collect())
    }
}

/// `local.domain` for an address whose local part is a valid run of DNS labels.
fn address_name(recipient: &Address) -> Option<String> {
    let local = recipient.local();
    let ok = !local.is_empty()
        && local.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then(|| {
        format!(
            "{}.{}.",
            local.to_ascii_lowercase(),
            recipient.domain().as_str()
        )
    })
}

#[async_trait]
impl KeyStore for DnsCert {
    /// The recipient's address-bound certificates that name it, else the domain-bound ones
    /// that name its domain. Not trusted yet: the router checks the chain.
    async fn recipient_certificates(
        &self,
        standard: Standard,
        recipient: &Address,
    ) -> Result<Vec<Vec<u8>>, Error> {
        if standard != Standard::Smime {
            return Ok(Vec::new());
        }
        let key = recipient.to_string().to_ascii_lowercase();
        if let Some(hit) = self.cache.get(&key, self.ttl) {
            return Ok(hit);
        }
        let smime = postern_smime::SmimeEnvelope::new();
        let address = key.clone();
        let domain = recipient.domain().as_str().to_ascii_lowercase();
        let mut found = Vec::new();
        if let Some(name) = address_name(recipient) {
            for der in self.lookup(&name).await? {
                let names_it = smime
                    .describe_certificates(&der)
                    .is_ok_and(|s| s.iter().any(|c| c.addresses.contains(&address)));
                if names_it {
                    found.push(der);
                }
            }
        }
        if found.is_empty() {
            for der in self.lookup(&format!("{domain}.")).await? {
                let names_it = smime.describe_certificates(&der).is_ok_and(|s| {
                    s.iter().any(|c| {
                        c.domains.contains(&domain)
                            || c.addresses
                                .iter()
                                .any(|a| a.ends_with(&format!("@{domain}")))
                    })
                });
                if names_it {
                    found.push(der);
                }
            }
        }
        self.cache.put(key, found.clone(), self.ttl);
        Ok(found)
    }

    async fn own_credentials(&self, _: Standard, _: &Domain) -> Result<Vec<Credential>, Error> {
        Ok(Vec::new())
    }
}
