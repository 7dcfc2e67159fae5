//! Finding where a domain's mail goes (RFC 5321 §5.1): its MX hosts by preference, the domain
//! itself when it has no MX (implicit MX), nowhere for a null MX (RFC 7505) or a domain that
//! does not exist. DNS trouble is temporary: the message waits.

use std::net::IpAddr;

use hickory_resolver::TokioResolver;

use crate::config::ConfigError;

/// Where a domain's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Try these hosts in order.
    Hosts(Vec<String>),
    /// The domain does not exist (NXDOMAIN): a permanent failure.
    NoSuchDomain,
    /// The domain says it takes no mail (null MX): a permanent failure.
    NullMx,
}

/// An MX resolver.
pub struct MxResolver {
    resolver: TokioResolver,
    /// SMTP port on the MX hosts (25; tests use another).
    pub port: u16,
}

impl std::fmt::Debug for MxResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MxResolver")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl MxResolver {
    /// Uses the nameserver at `dns` (`IP:PORT`), or the system's (`/etc/resolv.conf`) if empty.
    pub fn new(dns: &str, port: u16) -> Result<Self, ConfigError> {
        Ok(MxResolver {
            resolver: resolver(dns)?,
            port,
        })
    }

    /// The hosts to try for `domain`, or why there are none. `Err`: temporary DNS trouble.
    pub async fn route(&self, domain: &str) -> Result<Route, String> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(mx) => {
                let mut recs: Vec<(u16, String)> = mx
                    .iter()
                    .map(|r| (r.preference(), r.exchange().to_utf8()))
                    .collect();
                recs.sort();
                if recs.len() == 1 && (recs[0].1 == "." || recs[0].1.is_empty()) {
                    return Ok(Route::NullMx);
                }
                Ok(Route::Hosts(
                    recs.into_iter()
                        .map(|(_, h)| h.trim_end_matches('.').to_string())
                        .filter(|h| !h.is_empty())
                        .collect(),
                ))
            }
            Err(e) if e.is_nx_domain() => Ok(Route::NoSuchDomain),
            // The name exists but has no MX: the domain itself is the host (implicit MX).
            Err(e) if e.is_no_records_found() => Ok(Route::Hosts(vec![domain.to_string()])),
            Err(e) => Err(format!("MX lookup for {domain}: {e}")),
        }
    }

    /// The addresses of an MX host. `Err`: temporary DNS trouble (or none found).
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        let found = self
            .resolver
            .lookup_ip(fqdn.as_str())
            .await
            .map_err(|e| format!("address lookup for {host}: {e}"))?;
        let ips: Vec<IpAddr> = found.iter().collect();
        if ips.is_empty() {
            return Err(format!("{host} has no address"));
        }
        Ok(ips)
    }
}

/// The resolver for `dns` (`IP:PORT`, or the system's when empty): postern-trust's, with the
/// configuration field named in its error.
pub fn resolver(dns: &str) -> Result<TokioResolver, ConfigError> {
    postern_trust::resolver::resolver(dns).map_err(|e| ConfigError::Value {
        field: "dns",
        message: e.to_string(),
    })
}
