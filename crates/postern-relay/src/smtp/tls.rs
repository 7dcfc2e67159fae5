//! TLS for both SMTP directions (rustls on aws-lc-rs): the STARTTLS certificate our listeners
//! present, and the two ways we connect out — opportunistic (encrypt if offered, any
//! certificate, RFC 7435) and verified (the certificate must chain to a trusted root and match
//! the next hop's name; used for `tls-required` partners, where failure means retry, never
//! plaintext).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime,
};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{ConfigError, TlsConfig};

/// Everything TLS the relay needs, built once at start.
#[derive(Clone)]
pub struct TlsContext {
    /// For STARTTLS on our listeners.
    pub acceptor: TlsAcceptor,
    /// Encrypt if offered, whatever the certificate.
    pub opportunistic: TlsConnector,
    /// Encrypt and verify chain and name.
    pub verified: TlsConnector,
    /// Whether the listener certificate was generated (self-signed) rather than configured.
    pub self_signed: bool,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("self_signed", &self.self_signed)
            .finish_non_exhaustive()
    }
}

fn err(field: &'static str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Value {
        field,
        message: message.to_string(),
    }
}

impl TlsContext {
    /// Loads the configured certificate and key, or makes a self-signed one for `hostname`.
    pub fn new(cfg: &TlsConfig, hostname: &str) -> Result<Self, ConfigError> {
        let provider = Arc::new(crypto::aws_lc_rs::default_provider());
        let (chain, key, self_signed) = if cfg.certificate.as_os_str().is_empty() {
            let ck = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
                .map_err(|e| err("tls.certificate", format!("cannot generate one: {e}")))?;
            let key =
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
            (vec![ck.cert.der().clone()], key, true)
        } else {
            let chain = CertificateDer::pem_file_iter(&cfg.certificate)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    err(
                        "tls.certificate",
                        format!("{}: {e}", cfg.certificate.display()),
                    )
                })?;
            if chain.is_empty() {
                return Err(err("tls.certificate", "no certificate in the file"));
            }
            let key = PrivateKeyDer::from_pem_file(&cfg.key)
                .map_err(|e| err("tls.key", format!("{}: {e}", cfg.key.display())))?;
            (chain, key, false)
        };
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| err("tls", e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| err("tls.key", e))?;

        // The same verified client as the lookups' (postern-trust): web PKI roots plus ours.
        let extra = if cfg.ca_file.as_os_str().is_empty() {
            Vec::new()
        } else {
            load_certs(&cfg.ca_file)?
        };
        let verified = postern_trust::tls::verified_connector(&extra)
            .map_err(|e| err("tls.ca_file", format!("{}: {e}", cfg.ca_file.display())))?;
        let opportunistic = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| err("tls", e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Ok(TlsContext {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            opportunistic: TlsConnector::from(Arc::new(opportunistic)),
            verified,
            self_signed,
        })
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err("tls.ca_file", format!("{}: {e}", path.display())))
}

/// The name to verify for `host:port` (an IP address or a DNS name).
pub fn server_name(hostport: &str) -> Option<ServerName<'static>> {
    let host = match hostport.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => hostport,
    };
    ServerName::try_from(host.trim_matches(['[', ']']).to_string()).ok()
}

/// Opportunistic TLS (RFC 7435): any certificate is accepted, but the handshake signature is
/// still checked, so the session key belongs to whoever holds that certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_generated_certificate() {
        assert!(matches!(
            server_name("127.0.0.1:25"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("mx.partner.example:25"),
            Some(ServerName::DnsName(_))
        ));
        let t = TlsContext::new(&TlsConfig::default(), "postern.localhost").unwrap();
        assert!(t.self_signed);
    }
}
