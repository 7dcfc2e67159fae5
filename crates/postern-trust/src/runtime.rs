//! The lookups' own runtime. Key discovery and revocation need sockets and timers; the caller's
//! executor may have neither (a tokio runtime built without `enable_all()`, or no tokio at all,
//! as in a thread-per-connection server using [`postern_core::block_on`]). Run there, a lookup
//! panicked at the first message ("timers are disabled"). [`OwnRuntime`] runs a source on a
//! small tokio runtime of this crate's own, started once per process, and hands the answer
//! back through the join handle, which any executor can wait on. The ready constructors
//! ([`crate::wkd::Wkd::web_pki`], [`crate::dnscert::DnsCert::system`],
//! [`crate::ldap::LdapKeys::system`], [`crate::revocation::CrlChecker::standalone`]) return
//! sources wrapped this way, so the embedder's runtime cannot break them.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use postern_core::{
    Address, Credential, Domain, Error, KeyStore, Revocation, RevocationChecker, Standard,
};
use tokio::runtime::{Handle, Runtime};

use crate::TrustError;

/// The runtime the wrapped sources run on: two worker threads, I/O and timers enabled.
fn io_runtime() -> Result<Handle, TrustError> {
    static RT: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postern-trust-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map(|rt| rt.handle().clone())
    .map_err(|e| TrustError::Runtime(e.clone()))
}

/// A key source or revocation checker that runs on this crate's own runtime, whatever the
/// caller's executor (see the module text).
#[derive(Debug)]
pub struct OwnRuntime<T> {
    inner: Arc<T>,
    handle: Handle,
}

impl<T> OwnRuntime<T> {
    /// Wraps `inner`; fails only if the runtime cannot be started (no threads).
    pub fn new(inner: T) -> Result<Self, TrustError> {
        Ok(OwnRuntime {
            inner: Arc::new(inner),
            handle: io_runtime()?,
        })
    }

    /// The wrapped source.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// Runs `f(inner)` on the runtime and waits for it from whatever executor polls this.
    async fn run<R, F, Fut>(&self, f: F) -> Option<R>
    where
        T: Send + Sync + 'static,
        R: Send + 'static,
        F: FnOnce(Arc<T>) -> Fut,
        Fut: Future<Output = R> + Send + 'static,
    {
        // A lookup that panicked, or a runtime shutting down, is an answer of "unavailable".
        self.handle.spawn(f(self.inner.clone())).await.ok()
    }
}

fn unavailable() -> Error {
    Error::Unavailable("key lookup did not finish (its runtime stopped)".into())
}

#[async_trait]
impl<T: KeyStore + 'static> KeyStore for OwnRuntime<T> {
    async fn recipient_certificates(
        &self,
        standard: Standard,
        recipient: &Address,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let recipient = recipient.clone();
        self.run(move |s| async move { s.recipient_certificates(standard, &recipient).await })
            .await
            .unwrap_or_else(|| Err(unavailable()))
    }

    async fn own_credentials(
        &self,
        standard: Standard,
        domain: &Domain,
    ) -> Result<Vec<Credential>, Error> {
        let domain = domain.clone();
        self.run(move |s| async move { s.own_credentials(standard, &domain).await })
            .await
            .unwrap_or_else(|| Err(unavailable()))
    }
}

#[async_trait]
impl<T: RevocationChecker + 'static> RevocationChecker for OwnRuntime<T> {
    async fn check(
        &self,
        standard: Standard,
        certificates: &[u8],
        issuers: &[Vec<u8>],
    ) -> Vec<(String, Revocation)> {
        let (certificates, issuers) = (certificates.to_vec(), issuers.to_vec());
        self.run(move |s| async move { s.check(standard, &certificates, &issuers).await })
            .await
            // Never Good without an answer: unknown, for the policy to judge.
            .unwrap_or_else(|| {
                vec![(
                    "revocation check".into(),
                    Revocation::Unknown("the check did not finish".into()),
                )]
            })
    }

    async fn issuers(&self, standard: Standard, certificate: &[u8]) -> Vec<Vec<u8>> {
        let certificate = certificate.to_vec();
        self.run(move |s| async move { s.issuers(standard, &certificate).await })
            .await
            .unwrap_or_default()
    }
}
