//! Partner certificates from the partner's LDAP directory: servers from `_ldap._tcp.<domain>`
//! SRV records (lowest priority first, then highest weight), anonymous bind, every naming
//! context of the root DSE searched for `(mail=<address>)`, certificates taken from
//! `userSMIMECertificate` (PKCS#7, RFC 2798) and `userCertificate;binary`.
//!
//! Plain LDAP: what comes back is path material only; the router uses an S/MIME certificate
//! only if it chains to our or the partner's trust anchors. A domain without SRV records has no
//! LDAP directory (no key); servers that exist but do not answer are [`Error::Unavailable`].

use std::net::SocketAddr;
use std::time::Duration;

use crate::keycache::KeyCache;
use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use postern_core::{Address, Credential, Domain, Error, KeyStore, Standard};

/// Most entries one search may return (a directory should have one per address).
const MAX_ENTRIES: i32 = 20;

/// LDAP lookups with a cache.
pub struct LdapKeys {
    resolver: TokioResolver,
    /// Connect and operation timeout.
    pub timeout: Duration,
    /// How long answers are kept.
    pub ttl: Duration,
    cache: KeyCache,
    private_targets: bool,
}

impl std::fmt::Debug for LdapKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl LdapKeys {
    /// Over the system's resolver (`/etc/resolv.conf`), on this crate's own runtime: the ready
    /// constructor for an embedder, whatever its executor (see [`crate::runtime`]).
    pub fn system() -> Result<crate::runtime::OwnRuntime<Self>, crate::TrustError> {
        crate::runtime::OwnRuntime::new(Self::new(crate::resolver::resolver("")?))
    }

    /// Over `resolver` (see [`crate::resolver::resolver`]) for the SRV and address lookups.
    pub fn new(resolver: TokioResolver) -> Self {
        LdapKeys {
            resolver,
            timeout: Duration::from_secs(10),
            ttl: Duration::from_secs(3600),
            cache: KeyCache::default(),
            private_targets: false,
        }
    }

    /// Lets SRV targets resolve to addresses that are not on the internet (loopback, private
    /// networks: a test, or partners reached over a private network). Off by default: a
    /// partner's DNS must not be able to point our lookups at our own network.
    pub fn with_private_targets(mut self, allow: bool) -> Self {
        self.private_targets = allow;
        self
    }

    /// Sets the cache lifetime (zero: ask every time).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The directory servers of `domain`, in the order RFC 2782 says to try them.
    async fn servers(&self, domain: &str) -> Result<Vec<SocketAddr>, Error> {
        let name = format!("_ldap._tcp.{domain}.");
        let srv = match self.resolver.srv_lookup(name.as_str()).await {
            Ok(s) => s,
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => return Ok(Vec::new()),
            Err(e) => return Err(Error::Unavailable(format!("SRV {name}: {e}"))),
        };
        let mut records: Vec<_> = srv.iter().cloned().collect();
        records.sort_by_key(|r| (r.priority(), std::cmp::Reverse(r.weight())));
        let mut out = Vec::new();
        for r in records {
            let target = r.target().to_ascii();
            if target == "." {
                continue; // "service not offered" (RFC 2782)
            }
            if let Ok(ips) = self.resolver.lookup_ip(target.as_str()).await {
                let before = out.len();
                out.extend(
                    ips.iter()
                        .filter(|ip| self.private_targets || crate::netguard::is_public(*ip))
                        .map(|ip| SocketAddr::new(ip, r.port())),
                );
                if out.len() == before {
                    tracing::warn!(domain, target = %target, "LDAP SRV target is not on the internet; not asked");
                }
            }
        }
        Ok(out)
    }

    /// Searches one server for the certificates of `address`.
    async fn search(&self, server: SocketAddr, address: &str) -> Result<Vec<Vec<u8>>, String> {
        let settings = LdapConnSettings::new().set_conn_timeout(self.timeout);
        let url = format!("ldap://{server}");
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &url)
            .await
            .map_err(|e| e.to_string())?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.timeout);
        ldap.simple_bind("", "")
            .await
            .and_then(|r| r.success())
            .map_err(|e| format!("anonymous bind: {e}"))?;
        let (root, _) = ldap
            .with_timeout(self.timeout)
            .search("", Scope::Base, "(objectClass=*)", vec!["namingContexts"])
            .await
            .and_then(|r| r.success())
            .map_err(|e| format!("root DSE: {e}"))?;
        let contexts: Vec<String> = root
            .into_iter()
            .map(SearchEntry::construct)
            .flat_map(|e| e.attrs.get("namingContexts").cloned().unwrap_or_default())
            .collect();
        let filter = format!("(mail={})", ldap3::ldap_escape(address));
        let mut found = Vec::new();
        for base in contexts {
            let (entries, _) = ldap
                .with_timeout(self.timeout)
                .with_search_options(ldap3::SearchOptions::new().sizelimit(MAX_ENTRIES))
                .search(
                    &base,
                    Scope::Subtree,
                    &filter,
                    vec![
                        "userSMIMECertificate",
                        "userCertificate;binary",
                        "userCertificate",
                    ],
                )
                .await
                .and_then(|r| r.success())
                .map_err(|e| format!("search {base}: {e}"))?;
            for e in entries.into_iter().map(SearchEntry::construct) {
                let mut blobs: Vec<Vec<u8>> = e.bin_attrs.into_values().flatten().collect();
                // A value that happens to be valid UTF-8 lands among the text attributes.
                blobs.extend(
                    e.attrs
                        .into_iter()
                        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("user"))
                        .flat_map(|(_, v)| v.into_iter().map(String::into_bytes)),
                );
                for blob in blobs {
                    for cert in postern_smime::keys::parse_certificates(&blob).unwrap_or_default() {
                        if !postern_smime::keys::is_ca(&cert) {
                            if let Ok(der) = postern_smime::keys::to_der(&cert) {
                                found.push(der);
                            }
                        }
                    }
                }
            }
        }
        let _ = ldap.unbind().await;
        Ok(found)
    }
}

#[async_trait]
impl KeyStore for LdapKeys {
    async fn recipient_certificates(
        &self,
        standard: Standard,
        recipient: &Address,
    ) -> Result<Vec<Vec<u8>>, Error> {
        if standard != Standard::Smime {
            return Ok(Vec::new());
        }
        let address = recipient.to_string().to_ascii_lowercase();
        if let Some(hit) = self.cache.get(&address, self.ttl) {
            return Ok(hit);
        }
        let servers = self.servers(recipient.domain().as_str()).await?;
        if servers.is_empty() {
            return Ok(Vec::new());
        }
        let mut failures = Vec::new();
        for server in servers {
            match self.search(server, &address).await {
                Ok(found) => {
                    self.cache.put(address, found.clone(), self.ttl);
                    return Ok(found);
                }
                Err(e) => failures.push(format!("{server}: {e}")),
            }
        }
        Err(Error::Unavailable(format!(
            "LDAP for {}: {}",
            recipient.domain(),
            failures.join("; ")
        )))
    }

    async fn own_credentials(&self, _: Standard, _: &Domain) -> Result<Vec<Credential>, Error> {
        Ok(Vec::new())
    }
}
