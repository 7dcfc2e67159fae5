//! What `open` found: the inner message and a verification report.

use std::time::SystemTime;

use crate::{ContentCipher, SignatureAlgorithm, Standard};

/// The result of opening a message: the inner RFC 5322 message and what was verified.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The inner message, ready to deliver (CRLF line endings).
    pub message: Vec<u8>,
    /// What was decrypted and verified.
    pub report: Report,
}

/// The verification report of one opened message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The standard that opened it.
    pub standard: Standard,
    /// Set when the message was encrypted.
    pub encryption: Option<Encryption>,
    /// One entry per signature found (empty: the message was not signed).
    pub signatures: Vec<SignatureReport>,
    /// Header fields (lower-case names, in order) inside the signed content: what the
    /// signature vouches for besides the body. Empty when the signed entity held only the body
    /// and its MIME fields, so every other header field is the sender's unsigned word.
    pub signed_fields: Vec<String>,
    /// Text outside every signature was delivered along with signed text (inline PGP with
    /// words before or after the signed block): the signature covers part of the body only.
    pub partly_protected: bool,
}

impl Report {
    /// A report with nothing found yet.
    pub fn new(standard: Standard) -> Self {
        Report {
            standard,
            encryption: None,
            signatures: Vec::new(),
            signed_fields: Vec::new(),
            partly_protected: false,
        }
    }

    /// Records the header fields of a signed entity (called by backends for each signed layer).
    pub fn note_signed_entity(&mut self, entity: &[u8]) {
        if let Ok(v) = crate::MessageView::parse(entity) {
            for h in v.headers() {
                let n = h.name.to_ascii_lowercase();
                if !self.signed_fields.contains(&n) {
                    self.signed_fields.push(n);
                }
            }
        }
    }

    /// One word for the signature outcome: `valid` (every signature verifies, chain trusted),
    /// `untrusted` (verifies, but the signer is not trusted), `invalid`, or `absent`.
    pub fn signature_verdict(&self) -> &'static str {
        if self.signatures.is_empty() {
            return "absent";
        }
        if self
            .signatures
            .iter()
            .any(|s| !matches!(s.status, SignatureStatus::Valid))
        {
            return "invalid";
        }
        if self
            .signatures
            .iter()
            .all(|s| matches!(s.chain, ChainStatus::Trusted { .. }))
        {
            "valid"
        } else {
            "untrusted"
        }
    }
}

/// How the message was encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Encryption {
    /// Content-encryption algorithm.
    pub cipher: ContentCipher,
    /// Key management used for our key, e.g. `rsaes-oaep`, `rsa-pkcs1v15`, `ecdh-p256`.
    pub key_management: String,
    /// Every recipient the message was encrypted to (issuer/serial, key identifier or fingerprint).
    pub recipients: Vec<String>,
    /// Which of our keys opened it.
    pub decrypted_with: String,
}

impl Encryption {
    /// Builds an encryption record.
    pub fn new(
        cipher: ContentCipher,
        key_management: impl Into<String>,
        recipients: Vec<String>,
        decrypted_with: impl Into<String>,
    ) -> Self {
        Encryption {
            cipher,
            key_management: key_management.into(),
            recipients,
            decrypted_with: decrypted_with.into(),
        }
    }
}

/// The outcome of checking one signature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignatureReport {
    /// The signer's e-mail address, from the certificate (S/MIME) or user ID (OpenPGP).
    pub signer: Option<String>,
    /// Every address the signer's certificate names (lower-case): the From address of a
    /// message must be one of these for the signature to speak for it (RFC 8550 §3).
    pub signer_addresses: Vec<String>,
    /// The signer's certificate subject or primary user ID.
    pub signer_subject: Option<String>,
    /// SHA-256 fingerprint of the signer's certificate (hex), or the OpenPGP fingerprint.
    pub fingerprint: Option<String>,
    /// The signature algorithm, when recognised.
    pub algorithm: Option<SignatureAlgorithm>,
    /// Whether the signature verifies over the content.
    pub status: SignatureStatus,
    /// Whether the signer's certificate chains to a trust anchor (or is a pinned partner key).
    pub chain: ChainStatus,
    /// The signing time the signer claims (a signed attribute, not a proof).
    pub signing_time: Option<SystemTime>,
    /// The signer's certificate and the path it was validated on, DER, signer first (just the
    /// signer when no path was found): what a revocation check needs.
    pub signer_chain: Vec<Vec<u8>>,
    /// Domains the signer's certificate is bound to as a whole (an S/MIME dNSName, or an
    /// rfc822Name that is a bare domain, as Direct Project domain certificates have): such a
    /// certificate speaks for every address of those domains.
    pub signer_domains: Vec<String>,
}

impl SignatureReport {
    /// A report with the given status and nothing else known yet.
    pub fn new(status: SignatureStatus) -> Self {
        SignatureReport {
            signer: None,
            signer_addresses: Vec::new(),
            signer_subject: None,
            fingerprint: None,
            algorithm: None,
            status,
            chain: ChainStatus::NotChecked,
            signing_time: None,
            signer_chain: Vec::new(),
            signer_domains: Vec::new(),
        }
    }
}

/// Does the signature verify?
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureStatus {
    /// The signature verifies over the content.
    Valid,
    /// It does not (tampered content or signature, wrong key); the reason says which check failed.
    Invalid(String),
    /// It was not checked because the policy refuses its algorithm (e.g. SHA-1).
    Refused(String),
    /// The signer's certificate was not found in the message nor in configuration.
    SignerUnknown(String),
}

/// Is the signer trusted?
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainStatus {
    /// The certificate chains to a configured trust anchor (named), or is a pinned partner
    /// certificate.
    Trusted {
        /// Subject of the anchor or `pinned`.
        anchor: String,
    },
    /// It does not; the reason says why (expired, unknown issuer, wrong key usage, …).
    Untrusted(String),
    /// No trust anchors were configured, so the chain was not checked.
    NotChecked,
}
