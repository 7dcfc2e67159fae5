//! The `SecureEnvelope` trait and the requests it takes.

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::{ContentCipher, Error, MessageView, Opened, Policy};

/// A message-security standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Standard {
    /// S/MIME 4.0 (RFC 8551) over CMS.
    Smime,
    /// OpenPGP (RFC 9580) as PGP/MIME (RFC 3156).
    OpenPgp,
    /// A third party's envelope (e.g. an HSM-backed or PDF envelope), by name.
    Other(&'static str),
}

impl fmt::Display for Standard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Standard::Smime => f.write_str("smime"),
            Standard::OpenPgp => f.write_str("openpgp"),
            Standard::Other(name) => f.write_str(name),
        }
    }
}

/// Secret key bytes: zeroed on drop, never printed.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps secret bytes (PEM or DER for S/MIME, armored or binary for OpenPGP).
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The bytes, for the backend that parses them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

/// A certificate (or OpenPGP certificate) with, for our own identities, its private key.
///
/// `Debug` shows sizes only: an OpenPGP secret key also carries its certificate, and callers
/// may put the whole key in `certificate`, so no bytes are ever printed.
#[derive(Clone)]
pub struct Credential {
    /// Which standard the material is for.
    pub standard: Standard,
    /// The certificate: PEM or DER X.509 for S/MIME; armored or binary for OpenPGP.
    pub certificate: Vec<u8>,
    /// The private key, when this is one of our own identities.
    pub secret: Option<SecretBytes>,
    /// For one of our identities: the domains of ours the operator says it signs for, besides
    /// those its certificate names (lower-case; empty: only what the certificate names).
    pub domains: Vec<String>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("standard", &self.standard)
            .field("certificate_bytes", &self.certificate.len())
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("domains", &self.domains)
            .finish()
    }
}

impl Credential {
    /// A partner's public certificate.
    pub fn public(standard: Standard, certificate: Vec<u8>) -> Self {
        Credential {
            standard,
            certificate,
            secret: None,
            domains: Vec::new(),
        }
    }

    /// One of our own identities: certificate and private key.
    pub fn with_secret(standard: Standard, certificate: Vec<u8>, secret: Vec<u8>) -> Self {
        Credential {
            standard,
            certificate,
            secret: Some(SecretBytes::new(secret)),
            domains: Vec::new(),
        }
    }

    /// The same identity, signing also for `domains` (see [`Credential::domains`]).
    pub fn signing_for(mut self, domains: Vec<String>) -> Self {
        self.domains = domains;
        self
    }
}

/// How to sign while sealing.
#[derive(Debug, Clone, Copy)]
pub struct SignRequest<'a> {
    /// Our signing identity (certificate and private key).
    pub credential: &'a Credential,
    /// A detached signature (`multipart/signed`, readable without S/MIME support) rather than
    /// an opaque signed object: for sign-only, and with S/MIME inside the encryption too (the
    /// form Direct HISPs require). OpenPGP signs inside its encryption either way.
    pub detached: bool,
}

/// What [`SecureEnvelope::seal`] should do.
///
/// With recipients: encrypt (and sign first, if `sign` is set). Without recipients but with
/// `sign`: sign only.
#[derive(Debug, Clone, Copy)]
pub struct SealRequest<'a> {
    /// Recipient certificates (the encoding the backend's standard uses).
    pub recipients: &'a [Vec<u8>],
    /// Sign with our key first.
    pub sign: Option<SignRequest<'a>>,
    /// Content cipher; `None` takes the backend's default.
    pub cipher: Option<ContentCipher>,
    /// Protect the headers (RFC 9788): the outer Subject becomes `[...]`, the original header
    /// section travels inside.
    pub header_protection: bool,
    /// The algorithm policy.
    pub policy: &'a Policy,
    /// The time at which certificates must be valid.
    pub now: SystemTime,
    /// Our signature is an RFC 3183 domain signature, made by our domain signing authority:
    /// S/MIME marks it with the signed attribute `id-aa-signatureType` = `id-sti-domainSig`
    /// (RFC 3183 §3.1.1). Other standards have no such mark and ignore it.
    pub domain_signature: bool,
}

impl<'a> SealRequest<'a> {
    /// Encrypt to `recipients` with the backend defaults.
    pub fn encrypt(recipients: &'a [Vec<u8>], policy: &'a Policy) -> Self {
        SealRequest {
            recipients,
            sign: None,
            cipher: None,
            header_protection: false,
            policy,
            now: SystemTime::now(),
            domain_signature: false,
        }
    }

    /// Sign only, detached (`multipart/signed`) or opaque.
    pub fn sign_only(credential: &'a Credential, detached: bool, policy: &'a Policy) -> Self {
        SealRequest {
            recipients: &[],
            sign: Some(SignRequest {
                credential,
                detached,
            }),
            cipher: None,
            header_protection: false,
            policy,
            now: SystemTime::now(),
            domain_signature: false,
        }
    }

    /// Marks our signature as an RFC 3183 domain signature (see
    /// [`SealRequest::domain_signature`]).
    pub fn as_domain_signature(mut self, on: bool) -> Self {
        self.domain_signature = on;
        self
    }

    /// Also sign (before encrypting) with `credential`.
    pub fn signed_by(mut self, credential: &'a Credential) -> Self {
        self.sign = Some(SignRequest {
            credential,
            detached: false,
        });
        self
    }

    /// Sign with `credential` first, as a detached `multipart/signed` inside the encryption
    /// (S/MIME; see [`SignRequest::detached`]).
    pub fn signed_detached_by(mut self, credential: &'a Credential) -> Self {
        self.sign = Some(SignRequest {
            credential,
            detached: true,
        });
        self
    }

    /// Choose the content cipher.
    pub fn with_cipher(mut self, cipher: ContentCipher) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// Turn header protection on or off.
    pub fn with_header_protection(mut self, on: bool) -> Self {
        self.header_protection = on;
        self
    }
}

/// What [`SecureEnvelope::open`] may use.
#[derive(Debug, Clone, Copy)]
pub struct OpenRequest<'a> {
    /// Our decryption identities.
    pub keys: &'a [Credential],
    /// Trust anchors for signer certificates (S/MIME CA certificates).
    pub trust_anchors: &'a [Vec<u8>],
    /// Certificates the sender is expected to sign with (the partner's, from the directory):
    /// a signature by one of these is trusted as pinned, and these are used to verify signatures
    /// that carry no certificate.
    pub expected_signers: &'a [Vec<u8>],
    /// Further intermediate CA certificates (untrusted path material, e.g. fetched through a
    /// signer's authority information access) beside those the message carries.
    pub intermediates: &'a [Vec<u8>],
    /// The algorithm policy.
    pub policy: &'a Policy,
    /// The time at which certificates must be valid.
    pub now: SystemTime,
}

impl<'a> OpenRequest<'a> {
    /// Open with `keys`, no trust anchors, the given policy, now.
    pub fn new(keys: &'a [Credential], policy: &'a Policy) -> Self {
        OpenRequest {
            keys,
            trust_anchors: &[],
            expected_signers: &[],
            intermediates: &[],
            policy,
            now: SystemTime::now(),
        }
    }

    /// Check signer chains against these anchors.
    pub fn with_trust_anchors(mut self, anchors: &'a [Vec<u8>]) -> Self {
        self.trust_anchors = anchors;
        self
    }

    /// Expect signatures from these partner certificates.
    pub fn with_expected_signers(mut self, certs: &'a [Vec<u8>]) -> Self {
        self.expected_signers = certs;
        self
    }

    /// Adds untrusted intermediate certificates for path building.
    pub fn with_intermediates(mut self, certs: &'a [Vec<u8>]) -> Self {
        self.intermediates = certs;
        self
    }
}

/// The plug between a message-security standard and the router.
///
/// A backend turns a plain RFC 5322 message into a protected one (`seal`) and back (`open`).
/// Implementations are cheap to share (`Send + Sync`) and hold no per-message state; keys come
/// in with each request, so one backend value serves every partner.
#[async_trait]
pub trait SecureEnvelope: Send + Sync + fmt::Debug {
    /// The standard this backend speaks.
    fn standard(&self) -> Standard;

    /// Is this message protected in this backend's format (so `open` should be tried)?
    fn recognises(&self, msg: &MessageView<'_>) -> bool;

    /// Encrypt and/or sign a whole message. Returns a complete RFC 5322 message (CRLF line
    /// endings) with the routing headers (From, To, Cc, Date, Message-ID) kept outside.
    async fn seal(&self, msg: &MessageView<'_>, req: &SealRequest<'_>) -> Result<Vec<u8>, Error>;

    /// Decrypt and/or verify. A bad signature is a verdict in the report, not an error; an error
    /// means the message could not be opened at all.
    async fn open(&self, msg: &MessageView<'_>, req: &OpenRequest<'_>) -> Result<Opened, Error>;

    /// [`open`](Self::open) for a message the caller hands over and needs no more. A backend
    /// may then decode and decrypt inside `raw` instead of beside it (the S/MIME backend does:
    /// a large encrypted message costs about its own size once). The default parses `raw` and
    /// calls `open`.
    async fn open_owned(&self, raw: Vec<u8>, req: &OpenRequest<'_>) -> Result<Opened, Error> {
        let view = MessageView::parse(&raw)?;
        self.open(&view, req).await
    }

    /// Is `msg` already encrypted in this backend's format — proven by its structure, not by
    /// its labels? If so, returns the message rebuilt from what was proven: its header section
    /// and the ciphertext, with anything else (a preamble, an epilogue, extra parts, stray text
    /// in the body) dropped, so nothing readable rides along. `None` means "not proven"; the
    /// router then seals the message like any other, so the default is the safe answer.
    ///
    /// A `Content-Type` that says "encrypted" over a plain body must never pass: the label is
    /// the sender's word, the structure is the proof.
    fn proven_encrypted(&self, msg: &MessageView<'_>) -> Option<Vec<u8>> {
        let _ = msg;
        None
    }

    /// Whom the certificates in `bytes` (one file: a PEM bundle, a keyring) belong to, one
    /// summary per certificate, so a directory check can tell a partner's certificate from
    /// someone else's without knowing the format. The default knows nothing (an empty list),
    /// which the check reports as "cannot tell".
    fn describe_certificates(&self, bytes: &[u8]) -> Result<Vec<CertificateSummary>, Error> {
        let _ = bytes;
        Ok(Vec::new())
    }

    /// Does the certificate in `certificate` (with any intermediates after it) chain to one of
    /// `anchors` for e-mail protection at `now`, under `policy`? Asked of a key a discovery
    /// source found (DNS CERT, LDAP, a harvested signature): such a key becomes a recipient
    /// only when this says yes. The default says no, so a backend that cannot tell never
    /// seals to a found key.
    fn chains_to_anchor(
        &self,
        certificate: &[u8],
        anchors: &[Vec<u8>],
        policy: &Policy,
        now: std::time::SystemTime,
    ) -> bool {
        let _ = (certificate, anchors, policy, now);
        false
    }

    /// May a message be encrypted to `certificate` (one certificate entry: a certificate or a
    /// bundle)? A partner that publishes a pair of single-use certificates (the Direct
    /// Project's usual form: one for signing only, one for key encipherment only) has one that
    /// may and one that may not; only the first is a recipient. The default says yes: a
    /// backend that cannot tell leaves the decision to its seal, which fails closed.
    fn may_encrypt_to(&self, certificate: &[u8]) -> bool {
        let _ = certificate;
        true
    }

    /// May one of our identities sign with `certificate` at `now` (its key usage allows
    /// signing, it is valid)? The gateway signs only with one that may: an encipherment-only
    /// certificate listed first must not become the domain's signature. The default says yes.
    fn may_sign_with(&self, certificate: &[u8], now: std::time::SystemTime) -> bool {
        let _ = (certificate, now);
        true
    }
}

/// Whom one certificate belongs to, as [`SecureEnvelope::describe_certificates`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificateSummary {
    /// Subject or fingerprint, for messages.
    pub description: String,
    /// E-mail addresses it is bound to, lower-case.
    pub addresses: Vec<String>,
    /// Domains it is bound to as a whole (an S/MIME dNSName, as Direct Project domain
    /// certificates are), lower-case.
    pub domains: Vec<String>,
    /// A certificate authority: chain material, never an encryption recipient.
    pub authority: bool,
    /// Self-signed: its own trust anchor (a recipient only when pinned).
    pub self_signed: bool,
}

impl CertificateSummary {
    /// The domains it speaks for: its own, and those of its addresses.
    pub fn all_domains(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .addresses
            .iter()
            .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_string()))
            .chain(self.domains.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
