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
            self.note_signed_fields(v.headers().iter().map(|h| h.name.to_ascii_lowercase()));
        }
    }

    /// Adds header field names (lower-case) to [`Report::signed_fields`], each once, in
    /// linear time (a hostile entity may carry very many fields).
    pub fn note_signed_fields(&mut self, names: impl IntoIterator<Item = String>) {
        let mut seen: std::collections::HashSet<String> =
            self.signed_fields.iter().cloned().collect();
        for n in names {
            if seen.insert(n.clone()) {
                self.signed_fields.push(n);
            }
        }
    }

    /// The signature outcome of the cryptography alone: [`SignatureVerdict::Valid`] (every
    /// signature verifies, chain trusted), [`SignatureVerdict::Untrusted`] (verifies, but the
    /// signer is not trusted), [`SignatureVerdict::Refused`] (an algorithm the policy refuses),
    /// [`SignatureVerdict::Invalid`], or [`SignatureVerdict::Absent`].
    /// Whether the signer speaks for the message's author is the router's question
    /// (`postern_router::signature_verdict`), which may lower this verdict, never raise it.
    pub fn signature_verdict(&self) -> SignatureVerdict {
        if self.signatures.is_empty() {
            return SignatureVerdict::Absent;
        }
        // Refused only when every signature that is not valid was refused by policy: one that
        // fails to verify makes the whole message invalid.
        let not_valid = || {
            self.signatures
                .iter()
                .filter(|s| !matches!(s.status, SignatureStatus::Valid))
        };
        if not_valid().any(|s| !matches!(s.status, SignatureStatus::Refused(_))) {
            return SignatureVerdict::Invalid;
        }
        if not_valid().next().is_some() {
            return SignatureVerdict::Refused;
        }
        if self
            .signatures
            .iter()
            .all(|s| matches!(s.chain, ChainStatus::Trusted { .. }))
        {
            SignatureVerdict::Valid
        } else {
            SignatureVerdict::Untrusted
        }
    }
}

/// What a message's signatures establish, from the backends through the router to the result
/// headers, the CLI, the portal and the metrics. A type, not a word: a decision that tests
/// `verdict == "vaild"` fails open, a decision that names a variant does not compile.
///
/// Exhaustive on purpose: a new verdict must be placed in every decision that reads one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignatureVerdict {
    /// Every signature verifies, its signer is trusted and speaks for the message's author.
    Valid,
    /// As `Valid`, but with a legacy digest (SHA-1, MD5) accepted for this partner only.
    Weak,
    /// As `Valid`, but text outside the signature was delivered with it (inline OpenPGP).
    Partial,
    /// Verifies, but the signer is not trusted, or does not speak for the author (a mismatch
    /// inside the signer's organisation, or no single From mailbox).
    Untrusted,
    /// Made with an algorithm our policy refuses (SHA-1 from a partner without
    /// `accept_legacy`, a key too short): it may be genuine, but proves nothing.
    Refused,
    /// A signature does not verify, or the signer is of another organisation than the author.
    Invalid,
    /// The message is not signed.
    Absent,
}

impl SignatureVerdict {
    /// Every verdict, in order from best to worst.
    pub const ALL: [SignatureVerdict; 7] = [
        SignatureVerdict::Valid,
        SignatureVerdict::Weak,
        SignatureVerdict::Partial,
        SignatureVerdict::Untrusted,
        SignatureVerdict::Refused,
        SignatureVerdict::Invalid,
        SignatureVerdict::Absent,
    ];

    /// The word stated in the `Postern-Signature` result header and the CLI's report.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureVerdict::Valid => "valid",
            SignatureVerdict::Weak => "weak",
            SignatureVerdict::Partial => "partial",
            SignatureVerdict::Untrusted => "untrusted",
            SignatureVerdict::Refused => "refused",
            SignatureVerdict::Invalid => "invalid",
            SignatureVerdict::Absent => "absent",
        }
    }

    /// Whether the signer vouches for the whole message and its author: `Valid`, or `Weak`
    /// (a legacy digest the directory accepts from this partner). What may lift a protection
    /// that otherwise applies (EFAIL's text-only copy, a bounce to an unvouched sender).
    pub fn vouches(self) -> bool {
        match self {
            SignatureVerdict::Valid | SignatureVerdict::Weak => true,
            SignatureVerdict::Partial
            | SignatureVerdict::Untrusted
            | SignatureVerdict::Refused
            | SignatureVerdict::Invalid
            | SignatureVerdict::Absent => false,
        }
    }
}

impl std::fmt::Display for SignatureVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no [`SignatureVerdict`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown signature verdict {0:?} (known: valid, weak, partial, untrusted, refused, invalid, absent)"
)]
pub struct UnknownVerdict(pub String);

impl std::str::FromStr for SignatureVerdict {
    type Err = UnknownVerdict;

    /// Reads the header word back (exactly as [`SignatureVerdict::as_str`] writes it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SignatureVerdict::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVerdict(s.to_string()))
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
    /// What the signature says it is (RFC 3183 `id-aa-signatureType`, S/MIME); empty when it
    /// carries no such attribute (an originator's signature).
    pub signature_types: Vec<SignatureType>,
}

/// The kinds of signature RFC 3183 §3.1.1 names (`id-sti-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureType {
    /// `originatorSig`: the author's own.
    Originator,
    /// `domainSig`: a domain signing authority's, for the whole domain.
    Domain,
    /// `addAttribSig`: adds attributes only.
    AdditionalAttributes,
    /// `reviewSig`: a review authority's.
    Review,
}

impl SignatureType {
    /// The word used in result headers.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureType::Originator => "originator",
            SignatureType::Domain => "domain",
            SignatureType::AdditionalAttributes => "additional-attributes",
            SignatureType::Review => "review",
        }
    }
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
            signature_types: Vec::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_signature_is_refused_unless_another_is_invalid() {
        let sig = |status: SignatureStatus| {
            let mut s = SignatureReport::new(status);
            s.chain = ChainStatus::Trusted {
                anchor: "CN=CA".into(),
            };
            s
        };
        let verdict = |sigs: Vec<SignatureReport>| {
            let mut r = Report::new(crate::Standard::Smime);
            r.signatures = sigs;
            r.signature_verdict()
        };
        let refused = || sig(SignatureStatus::Refused("sha-1".into()));
        assert_eq!(verdict(vec![]), SignatureVerdict::Absent);
        assert_eq!(verdict(vec![refused()]), SignatureVerdict::Refused);
        assert_eq!(
            verdict(vec![sig(SignatureStatus::Valid), refused()]),
            SignatureVerdict::Refused
        );
        assert_eq!(
            verdict(vec![
                refused(),
                sig(SignatureStatus::Invalid("altered".into()))
            ]),
            SignatureVerdict::Invalid
        );
        assert!(!SignatureVerdict::Refused.vouches());
        assert_eq!("refused".parse(), Ok(SignatureVerdict::Refused));
    }
}
