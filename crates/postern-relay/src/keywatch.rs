//! Notices when the key a partner publishes for an address changes: every discovery source is
//! wrapped so that a different set of certificates than last time is logged and written to the
//! audit log (a changed key can be a rollover, or someone else's key in the partner's place).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use postern_core::{Address, Credential, Domain, Error, KeyStore, Standard};
use postern_store::audit::{Action, AuditLog};

/// A key store whose answers are compared with the previous ones.
pub struct Watched {
    inner: Arc<dyn KeyStore>,
    source: &'static str,
    audit: Arc<AuditLog>,
    seen: Mutex<HashMap<(Standard, String), Vec<String>>>,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Watched {
    /// Watches `inner` (named `source` in the log), auditing changes to `audit`.
    pub fn new(inner: Arc<dyn KeyStore>, source: &'static str, audit: Arc<AuditLog>) -> Self {
        Watched {
            inner,
            source,
            audit,
            seen: Mutex::new(HashMap::new()),
        }
    }
}

fn fingerprints(certs: &[Vec<u8>]) -> Vec<String> {
    let mut out: Vec<String> = certs
        .iter()
        .map(|c| {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, c);
            d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
        })
        .collect();
    out.sort();
    out
}

#[async_trait]
impl KeyStore for Watched {
    async fn recipient_certificates(
        &self,
        standard: Standard,
        recipient: &Address,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let certs = self
            .inner
            .recipient_certificates(standard, recipient)
            .await?;
        let now = fingerprints(&certs);
        let key = (standard, recipient.to_string().to_lowercase());
        let before = self
            .seen
            .lock()
            .ok()
            .and_then(|mut s| s.insert(key, now.clone()));
        if let Some(before) = before.filter(|b| !b.is_empty() && *b != now) {
            let detail = format!(
                "{} {standard} key for {recipient} changed: {} -> {}",
                self.source,
                before.join(","),
                if now.is_empty() {
                    "none".to_string()
                } else {
                    now.join(",")
                }
            );
            tracing::warn!(source = self.source, address = %recipient, "published key changed");
            if let Err(e) = self
                .audit
                .append(
                    "gateway",
                    Action::KeyChanged,
                    &recipient.to_string(),
                    None,
                    &detail,
                )
                .await
            {
                tracing::warn!(error = %e, "key change not audited");
            }
        }
        Ok(certs)
    }

    async fn own_credentials(
        &self,
        standard: Standard,
        domain: &Domain,
    ) -> Result<Vec<Credential>, Error> {
        self.inner.own_credentials(standard, domain).await
    }
}
