//! Where keys come from: partner certificates by address or domain, our own keys by domain.

use std::collections::HashMap;
use std::fmt::Debug;

use async_trait::async_trait;

use crate::{Address, Credential, Domain, Error, Standard};

/// A source of keys. Async because LDAP, WKD, DANE or an HSM may sit behind it.
///
/// Errors that may clear up (a directory server down) must be [`Error::Unavailable`] so the
/// relay retries; "there is no key" is an empty result, not an error.
#[async_trait]
pub trait KeyStore: Send + Sync + Debug {
    /// Certificates to encrypt to for `recipient`: the mailbox's own, else its domain's
    /// (organisation-to-organisation gateways usually publish one domain certificate).
    async fn recipient_certificates(
        &self,
        standard: Standard,
        recipient: &Address,
    ) -> Result<Vec<Vec<u8>>, Error>;

    /// Our own identities (certificate and private key) for `domain`.
    async fn own_credentials(
        &self,
        standard: Standard,
        domain: &Domain,
    ) -> Result<Vec<Credential>, Error>;
}

/// A key store held in memory: for tests, examples and embedders that load keys themselves.
#[derive(Debug, Default, Clone)]
pub struct MemoryKeyStore {
    by_address: HashMap<(Standard, String), Vec<Vec<u8>>>,
    by_domain: HashMap<(Standard, Domain), Vec<Vec<u8>>>,
    own: HashMap<(Standard, Domain), Vec<Credential>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a certificate for one mailbox.
    pub fn add_address_certificate(&mut self, standard: Standard, addr: &Address, cert: Vec<u8>) {
        self.by_address
            .entry((standard, addr.to_string().to_ascii_lowercase()))
            .or_default()
            .push(cert);
    }

    /// Adds a certificate for a whole domain (a partner gateway's domain certificate).
    pub fn add_domain_certificate(&mut self, standard: Standard, domain: &Domain, cert: Vec<u8>) {
        self.by_domain
            .entry((standard, domain.clone()))
            .or_default()
            .push(cert);
    }

    /// Adds one of our identities for `domain`.
    pub fn add_own_credential(&mut self, domain: &Domain, cred: Credential) {
        self.own
            .entry((cred.standard, domain.clone()))
            .or_default()
            .push(cred);
    }
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn recipient_certificates(
        &self,
        standard: Standard,
        recipient: &Address,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let key = (standard, recipient.to_string().to_ascii_lowercase());
        if let Some(certs) = self.by_address.get(&key) {
            return Ok(certs.clone());
        }
        Ok(self
            .by_domain
            .get(&(standard, recipient.domain().clone()))
            .cloned()
            .unwrap_or_default())
    }

    async fn own_credentials(
        &self,
        standard: Standard,
        domain: &Domain,
    ) -> Result<Vec<Credential>, Error> {
        Ok(self
            .own
            .get(&(standard, domain.clone()))
            .cloned()
            .unwrap_or_default())
    }
}
