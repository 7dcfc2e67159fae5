//! The DNS resolver the lookups use: the system's, or one server the administrator names.

use std::net::SocketAddr;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;

use crate::TrustError;

/// A resolver over `dns` (`IP:PORT`), or the system's (`/etc/resolv.conf`) when empty.
pub fn resolver(dns: &str) -> Result<TokioResolver, TrustError> {
    let provider = TokioConnectionProvider::default();
    let builder = if dns.is_empty() {
        TokioResolver::builder(provider)
            .map_err(|e| TrustError::Resolver(format!("system resolver: {e}")))?
    } else {
        let sa: SocketAddr = dns
            .parse()
            .map_err(|_| TrustError::Resolver(format!("{dns:?} is not IP:PORT")))?;
        let group = NameServerConfigGroup::from_ips_clear(&[sa.ip()], sa.port(), true);
        TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, vec![], group),
            provider,
        )
    };
    Ok(builder.build())
}
