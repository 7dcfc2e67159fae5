//! # postern-smime
//!
//! The S/MIME 4.0 backend of Postern (RFC 8551), on CMS (RFC 5652), AuthEnvelopedData (RFC 5083)
//! and AES-GCM (RFC 5084).
//!
//! * **Seal**: `application/pkcs7-mime` enveloped-data (AES-CBC) or authEnveloped-data (AES-GCM),
//!   to RSA recipients (PKCS#1 v1.5 or RSAES-OAEP) and EC P-256 recipients (ECDH, RFC 5753);
//!   optionally signed first. Sign-only as detached `multipart/signed` or opaque signed-data.
//! * **Open**: decrypts with our keys, verifies every signature over the exact bytes received,
//!   validates the signer's chain to configured trust anchors, and reports.
//!
//! Structures come from the RustCrypto `cms`/`x509-cert`/`der` crates; primitives from aws-lc-rs
//! (constant-time RSA decryption); private-key operations sit behind [`keys::PrivateKeyOps`] so
//! an HSM can take over.
#![forbid(unsafe_code)]

mod asn1;
mod ber;
mod certinfo;
mod chain;
mod constraints;
pub mod crl;
mod crypto;
mod enveloped;
mod inplace;
mod issuer;
pub mod keys;
mod names;
pub mod ocsp;
mod oids;
pub mod path;
pub mod pkcs12;
mod recipient;
mod signed;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use postern_core::mime;
use postern_core::{
    ContentCipher, Credential, Error, MessageView, OpenRequest, Opened, Report, SealRequest,
    SecureEnvelope, Standard,
};

pub use keys::{Identity, PrivateKeyOps, SoftwareKey};
pub use recipient::KeyTransport;
pub use signed::RsaSignatureScheme;
/// The certificate type the public functions take (so callers need not pin x509-cert).
pub use x509_cert::Certificate;

/// How deep signed-inside-encrypted-inside-signed nesting may go before we stop.
const MAX_LAYERS: usize = 4;

/// Turns a [`Credential`] into an [`Identity`]: the plug for keys held outside the process.
pub trait KeyLoader: Send + Sync + fmt::Debug {
    /// Loads the identity (certificate and private-key operations) for `cred`.
    fn load(&self, cred: &Credential) -> Result<Arc<Identity>, Error>;
}

/// How many loaded software keys [`SoftwareKeyLoader`] keeps (a gateway has a handful).
const KEY_CACHE_SIZE: usize = 64;

/// Loads PEM/DER private keys into memory ([`SoftwareKey`]), and keeps the parsed keys: loading
/// an RSA key (parse plus consistency checks) costs more than the RSA operation it is used for.
#[derive(Debug, Default)]
pub struct SoftwareKeyLoader {
    cache: Mutex<HashMap<[u8; 32], Arc<Identity>>>,
}

impl KeyLoader for SoftwareKeyLoader {
    fn load(&self, cred: &Credential) -> Result<Arc<Identity>, Error> {
        let id = credential_id(cred);
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&id).cloned()) {
            return Ok(hit);
        }
        let loaded = Arc::new(Identity::from_credential(cred)?);
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= KEY_CACHE_SIZE {
                c.clear();
            }
            c.insert(id, loaded.clone());
        }
        Ok(loaded)
    }
}

/// A digest of the whole credential (certificate and key), so a changed key never hits.
fn credential_id(cred: &Credential) -> [u8; 32] {
    use aws_lc_rs::digest;
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&(cred.certificate.len() as u64).to_be_bytes());
    ctx.update(&cred.certificate);
    if let Some(s) = &cred.secret {
        ctx.update(s.expose());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The S/MIME backend. Cheap to clone; holds configuration only.
#[derive(Debug, Clone)]
pub struct SmimeEnvelope {
    /// Content cipher when the request names none (default AES-256-CBC: what Outlook reads).
    pub default_cipher: ContentCipher,
    /// Key transport for RSA recipients.
    pub key_transport: KeyTransport,
    /// Signature scheme for RSA signing keys.
    pub rsa_signature: RsaSignatureScheme,
    key_loader: Arc<dyn KeyLoader>,
}

impl Default for SmimeEnvelope {
    fn default() -> Self {
        SmimeEnvelope {
            default_cipher: ContentCipher::Aes256Cbc,
            key_transport: KeyTransport::default(),
            rsa_signature: RsaSignatureScheme::default(),
            key_loader: Arc::new(SoftwareKeyLoader::default()),
        }
    }
}

impl SmimeEnvelope {
    /// The backend with defaults: AES-256-CBC, RSA PKCS#1 v1.5 key transport, RSA PKCS#1 v1.5
    /// SHA-256 signatures, software keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use `loader` for private keys (e.g. an HSM).
    pub fn with_key_loader(mut self, loader: Arc<dyn KeyLoader>) -> Self {
        self.key_loader = loader;
        self
    }

    /// Use `t` for RSA recipients.
    pub fn with_key_transport(mut self, t: KeyTransport) -> Self {
        self.key_transport = t;
        self
    }

    /// Use `s` when signing with RSA keys.
    pub fn with_rsa_signature(mut self, s: RsaSignatureScheme) -> Self {
        self.rsa_signature = s;
        self
    }

    /// Use `c` when a request names no cipher.
    pub fn with_default_cipher(mut self, c: ContentCipher) -> Self {
        self.default_cipher = c;
        self
    }

    /// Seals into `w` instead of a buffer. Encryption without signing streams: the sealed
    /// message is written as it is made and never held whole. Under AES-CBC a 50 MB message
    /// costs the input and a quarter of a megabyte; under AES-GCM (one pass over contiguous
    /// content) the input and one copy of the content, encrypted in place. Signed requests are
    /// sealed in memory first.
    pub fn seal_to(
        &self,
        msg: &MessageView<'_>,
        req: &SealRequest<'_>,
        w: &mut dyn std::io::Write,
    ) -> Result<(), Error> {
        if req.sign.is_some() || req.recipients.is_empty() {
            let sealed = self.seal_sync(msg, req)?;
            return w
                .write_all(&sealed)
                .map_err(|e| Error::Unavailable(format!("writing the sealed message: {e}")));
        }
        self.encrypt_only(msg, req, Some(w)).map(drop)
    }

    /// Encryption without a signature: the entity streams from its header section and the
    /// message body (into `sink`, when there is one; the result is then empty).
    fn encrypt_only(
        &self,
        msg: &MessageView<'_>,
        req: &SealRequest<'_>,
        sink: Option<&mut dyn std::io::Write>,
    ) -> Result<Vec<u8>, Error> {
        let hp = req.header_protection.then_some("cipher");
        let (head, body) = mime::inner_entity_parts(msg, hp);
        self.envelope(msg, req, &[&head, &body], sink)
    }

    /// The `application/pkcs7-mime` message enveloping the entity given in `pieces`.
    fn envelope(
        &self,
        msg: &MessageView<'_>,
        req: &SealRequest<'_>,
        pieces: &[&[u8]],
        sink: Option<&mut dyn std::io::Write>,
    ) -> Result<Vec<u8>, Error> {
        let recipients = recipient_certificates(req.recipients)?;
        let cipher = req.cipher.unwrap_or(self.default_cipher);
        let outer = mime::outer_headers(msg, req.header_protection, false);
        let smime_type = if cipher.is_aead() {
            "authEnveloped-data"
        } else {
            "enveloped-data"
        };
        let len = pieces.iter().map(|p| p.len()).sum();
        let mut out = pkcs7_mime_head(&outer, smime_type, len);
        enveloped::seal_base64_pieces(
            &mut out,
            sink,
            pieces,
            &recipients,
            cipher,
            self.key_transport,
            req.policy,
            req.now,
        )?;
        Ok(out)
    }

    /// Synchronous seal (the trait's `seal` is this, without awaiting anything).
    pub fn seal_sync(
        &self,
        msg: &MessageView<'_>,
        req: &SealRequest<'_>,
    ) -> Result<Vec<u8>, Error> {
        let signer = req
            .sign
            .map(|s| self.key_loader.load(s.credential))
            .transpose()?;
        if req.recipients.is_empty() {
            let (Some(me), Some(sign)) = (&signer, req.sign) else {
                return Err(Error::InvalidRequest(
                    "nothing to do: no recipients and no signing key".into(),
                ));
            };
            let (entity, outer) = mime::sign_only_parts(msg, req.header_protection);
            return self.signed(me, sign, req, &entity, &outer);
        }
        if signer.is_none() {
            return self.encrypt_only(msg, req, None);
        }
        let hp = req.header_protection.then_some("cipher");
        let mut entity = mime::inner_entity(msg, hp);
        if let (Some(me), Some(sign)) = (&signer, req.sign) {
            // Sign, then encrypt (RFC 8551 §3.7): the signed object becomes the content — the
            // same entity as a sign-only message, minus the outer headers. Detached when asked
            // (Direct: a multipart/signed whose first part is the entity), else opaque.
            entity = self.signed(me, sign, req, &entity, b"")?;
        }
        self.envelope(msg, req, &[&entity], None)
    }

    /// `entity` signed as `sign` asks: a `multipart/signed` (detached) or an opaque
    /// `application/pkcs7-mime` signed-data, behind the header fields `outer`.
    fn signed(
        &self,
        me: &keys::Identity,
        sign: postern_core::SignRequest<'_>,
        req: &SealRequest<'_>,
        entity: &[u8],
        outer: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let sig = signed::sign(
            entity,
            me,
            self.rsa_signature,
            (sign.detached, req.domain_signature),
            req.policy,
            req.now,
        )?;
        Ok(if sign.detached {
            multipart_signed(outer, entity, &sig)
        } else {
            pkcs7_mime(outer, "signed-data", &sig)
        })
    }

    /// Synchronous open.
    pub fn open_sync(&self, msg: &MessageView<'_>, req: &OpenRequest<'_>) -> Result<Opened, Error> {
        let keys = self.open_keys(req)?;
        // Borrowed until the first layer is peeled: the input is not copied.
        let report = Report::new(Standard::Smime);
        self.peel(std::borrow::Cow::Borrowed(msg.raw()), 0, &keys, report)
    }

    /// [`open_sync`](Self::open_sync) for a message handed over: an encrypted message is
    /// transfer-decoded and decrypted inside `raw`, so opening it costs about its own size once
    /// (not the input, its decoded DER and the plaintext side by side).
    pub fn open_owned_sync(
        &self,
        mut raw: Vec<u8>,
        req: &OpenRequest<'_>,
    ) -> Result<Opened, Error> {
        let base64_cms = {
            let view = MessageView::parse(&raw)?;
            let root = view.root();
            let base64 = root
                .header("content-transfer-encoding")
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("base64"));
            (matches!(Kind::of(&view), Kind::Pkcs7Mime) && base64)
                .then(|| view.header_section().to_vec())
        };
        let Some(head) = base64_cms else {
            return self.open_sync(&MessageView::parse(&raw)?, req);
        };
        let keys = self.open_keys(req)?;
        postern_core::decode_base64_in_place(&mut raw, head.len());
        let outer = MessageView::parse(&head)?;
        let mut report = Report::new(Standard::Smime);
        let first = self.peel_cms(raw, &keys, &mut report)?;
        let merged = mime::merge_owned(&outer, first);
        self.peel(std::borrow::Cow::Owned(merged), 1, &keys, report)
    }

    /// Our keys and the certificates a signature is verified against.
    fn open_keys<'r>(&self, req: &OpenRequest<'r>) -> Result<OpenKeys<'r>, Error> {
        let ids = req
            .keys
            .iter()
            .filter(|k| k.standard == Standard::Smime)
            .map(|k| self.key_loader.load(k))
            .collect::<Result<Vec<_>, _>>()?;
        let parse_all = |list: &[Vec<u8>]| -> Result<Vec<Certificate>, Error> {
            let mut v = Vec::new();
            for c in list {
                v.extend(keys::parse_certificates(c)?);
            }
            Ok(v)
        };
        Ok(OpenKeys {
            ids,
            anchors: parse_all(req.trust_anchors)?,
            pinned: parse_all(req.expected_signers)?,
            intermediates: parse_all(req.intermediates)?,
            policy: req.policy,
            now: req.now,
        })
    }

    /// Peels S/MIME layers off `current` (after `layers` already peeled) until a message that
    /// is not S/MIME remains.
    fn peel(
        &self,
        mut current: std::borrow::Cow<'_, [u8]>,
        mut layers: usize,
        keys: &OpenKeys<'_>,
        mut report: Report,
    ) -> Result<Opened, Error> {
        loop {
            let view = MessageView::parse(&current)?;
            let next = match Kind::of(&view) {
                Kind::Other => break,
                _ if layers == MAX_LAYERS => {
                    return Err(Error::MalformedMessage(format!(
                        "more than {MAX_LAYERS} nested S/MIME layers"
                    )))
                }
                Kind::Pkcs7Mime => {
                    // Transfer decoding only: no need to walk the MIME structure of a leaf.
                    let der = view.root().transfer_decoded_body().into_owned();
                    let inner = self.peel_cms(der, keys, &mut report)?;
                    mime::merge_owned(&view, inner)
                }
                Kind::MultipartSigned => {
                    let kids = view.root().children();
                    let (Some(content), Some(sig)) = (kids.first(), kids.get(1)) else {
                        return Err(Error::MalformedMessage(
                            "multipart/signed without two parts".into(),
                        ));
                    };
                    let ci = enveloped::parse_content_info(&sig.decoded_body())?;
                    let signed = signed::signed_data(&ci)?;
                    let exact = content.raw();
                    let vctx = keys.verify_context();
                    let reports = mime::verify_canonical(exact, |c| {
                        Ok::<_, Error>(signed::verify(&signed, c, &vctx))
                    })?;
                    // Only a signature vouches for the fields of what it covers.
                    if !reports.is_empty() {
                        report.note_signed_entity(exact);
                    }
                    report.signatures.extend(reports);
                    mime::merge(&view, exact)
                }
            };
            current = std::borrow::Cow::Owned(next);
            layers += 1;
        }
        if layers == 0 {
            return Err(Error::NotRecognised {
                standard: "S/MIME".into(),
                detail: "neither application/pkcs7-mime nor multipart/signed".into(),
            });
        }
        Ok(Opened {
            message: mime::into_crlf(current.into_owned()),
            report,
        })
    }

    /// The content of the CMS object in `der` (an `application/pkcs7-mime` body): decrypted in
    /// place, or the encapsulated content of a SignedData, verified into `report`.
    fn peel_cms(
        &self,
        der: Vec<u8>,
        keys: &OpenKeys<'_>,
        report: &mut Report,
    ) -> Result<Vec<u8>, Error> {
        match enveloped::open_der(der, &keys.ids, keys.policy)? {
            enveloped::Layer::Opened(plain, encryption) => {
                if report.encryption.is_none() {
                    report.encryption = Some(encryption);
                }
                Ok(plain)
            }
            enveloped::Layer::Signed(ci) => {
                let signed = signed::signed_data(&ci)?;
                let content = signed
                    .content
                    .clone()
                    .ok_or_else(|| Error::malformed("signed-data", "no encapsulated content"))?;
                let reports = signed::verify(&signed, &content, &keys.verify_context());
                if !reports.is_empty() {
                    report.note_signed_entity(&content);
                }
                report.signatures.extend(reports);
                Ok(content)
            }
        }
    }
}

/// What opening needs from the request, loaded and parsed once per message.
struct OpenKeys<'r> {
    ids: Vec<Arc<Identity>>,
    anchors: Vec<Certificate>,
    pinned: Vec<Certificate>,
    intermediates: Vec<Certificate>,
    policy: &'r postern_core::Policy,
    now: std::time::SystemTime,
}

impl OpenKeys<'_> {
    fn verify_context(&self) -> signed::VerifyContext<'_> {
        signed::VerifyContext {
            anchors: &self.anchors,
            pinned: &self.pinned,
            intermediates: &self.intermediates,
            policy: self.policy,
            now: self.now,
        }
    }
}

/// A complete `application/pkcs7-mime` message (RFC 8551 §3.2): `outer` headers, then the CMS
/// object in base64.
fn pkcs7_mime(outer: &[u8], smime_type: &str, der: &[u8]) -> Vec<u8> {
    let mut out = pkcs7_mime_head(outer, smime_type, der.len());
    mime::append_base64_lines(&mut out, der);
    out
}

/// The header section of an `application/pkcs7-mime` message, with room reserved for a body
/// of about `content_len` bytes before base64.
fn pkcs7_mime_head(outer: &[u8], smime_type: &str, content_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(outer.len() + 1024 + (content_len + 512) / 57 * 78 + 80);
    out.extend_from_slice(outer);
    out.extend_from_slice(
        format!(
            "Content-Type: application/pkcs7-mime; smime-type={smime_type}; name=\"smime.p7m\"\r\n\
             Content-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n"
        )
        .as_bytes(),
    );
    out
}

/// A complete `multipart/signed` message (RFC 8551 §3.5.3) around `entity`.
fn multipart_signed(outer: &[u8], entity: &[u8], signature_der: &[u8]) -> Vec<u8> {
    let mut sig_part = b"Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n"
        .to_vec();
    sig_part.extend_from_slice(&mime::base64_lines(signature_der));
    mime::multipart(
        outer,
        "multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256",
        "This is a cryptographically signed message in MIME format.",
        &[entity, &sig_part],
    )
}

enum Kind {
    Pkcs7Mime,
    MultipartSigned,
    Other,
}

impl Kind {
    fn of(view: &MessageView<'_>) -> Kind {
        let root = view.root();
        match root.mime_type().as_str() {
            "application/pkcs7-mime" | "application/x-pkcs7-mime" => {
                let t = root
                    .content_type_param("smime-type")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if t == "certs-only" {
                    Kind::Other
                } else {
                    Kind::Pkcs7Mime
                }
            }
            "multipart/signed" => {
                let p = root
                    .content_type_param("protocol")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if p == "application/pkcs7-signature" || p == "application/x-pkcs7-signature" {
                    Kind::MultipartSigned
                } else {
                    Kind::Other
                }
            }
            _ => Kind::Other,
        }
    }
}

#[async_trait]
impl SecureEnvelope for SmimeEnvelope {
    fn standard(&self) -> Standard {
        Standard::Smime
    }

    fn recognises(&self, msg: &MessageView<'_>) -> bool {
        !matches!(Kind::of(msg), Kind::Other)
    }

    async fn seal(&self, msg: &MessageView<'_>, req: &SealRequest<'_>) -> Result<Vec<u8>, Error> {
        self.seal_sync(msg, req)
    }

    async fn open(&self, msg: &MessageView<'_>, req: &OpenRequest<'_>) -> Result<Opened, Error> {
        self.open_sync(msg, req)
    }

    async fn open_owned(&self, raw: Vec<u8>, req: &OpenRequest<'_>) -> Result<Opened, Error> {
        self.open_owned_sync(raw, req)
    }

    fn proven_encrypted(&self, msg: &MessageView<'_>) -> Option<Vec<u8>> {
        enveloped::proven_encrypted(msg)
    }

    fn describe_certificates(
        &self,
        bytes: &[u8],
    ) -> Result<Vec<postern_core::CertificateSummary>, Error> {
        let certs = keys::parse_certificates(bytes)?;
        let roles = keys::recipient_roles(&certs);
        Ok(certs
            .iter()
            .zip(roles)
            .map(|(c, recipient)| postern_core::CertificateSummary {
                description: certinfo::describe(c),
                addresses: certinfo::emails(c),
                domains: certinfo::domain_names(c),
                authority: !recipient,
                self_signed: c.tbs_certificate().subject() == c.tbs_certificate().issuer(),
            })
            .collect())
    }

    fn may_sign_with(&self, certificate: &[u8], now: std::time::SystemTime) -> bool {
        let Ok(certs) = keys::parse_certificates(certificate) else {
            return false;
        };
        // The leaf: the first end-entity certificate of the entry (a chain may follow it).
        keys::recipients(certs).first().is_some_and(|leaf| {
            certinfo::validity_problem(leaf, now).is_none()
                && certinfo::key_usage(leaf)
                    .is_none_or(|k| k.digital_signature() || k.non_repudiation())
                && certinfo::allows_email_protection(leaf)
        })
    }

    fn may_encrypt_to(&self, certificate: &[u8]) -> bool {
        keys::parse_certificates(certificate)
            .is_ok_and(|certs| keys::recipients(certs).iter().any(recipient::may_encrypt))
    }

    fn chains_to_anchor(
        &self,
        certificate: &[u8],
        anchors: &[Vec<u8>],
        policy: &postern_core::Policy,
        now: std::time::SystemTime,
    ) -> bool {
        let anchors: Vec<_> = anchors
            .iter()
            .filter_map(|a| keys::parse_certificates(a).ok())
            .flatten()
            .collect();
        let Ok(certs) = keys::parse_certificates(certificate) else {
            return false;
        };
        let Some(leaf) = certs.first() else {
            return false;
        };
        let opts = path::PathOptions {
            anchors: &anchors,
            intermediates: &certs,
            now,
            policy,
            purpose: Some(path::EMAIL_PROTECTION),
            max_intermediates: path::DEFAULT_MAX_INTERMEDIATES,
        };
        path::validate(leaf, &opts).is_ok()
    }
}

/// The certificates to encrypt to: the recipients of each entry ([`keys::recipients`]: every
/// end-entity certificate, a lone self-signed partner certificate, each key once; a CA
/// certificate of a chain is never one). A certificate that may not encrypt (the signing half of
/// a single-use pair) is left out while another may; when none may, all stay and sealing says
/// why. An entry without an end-entity certificate is an error, so nothing is sealed to a CA's
/// key or silently to the first certificate only. (The router checks this per recipient before
/// it seals; here the entries are all one caller gave.)
fn recipient_certificates(entries: &[Vec<u8>]) -> Result<Vec<Certificate>, Error> {
    let mut out: Vec<Certificate> = Vec::new();
    for entry in entries {
        let certs = keys::parse_certificates(entry)?;
        let before = out.len();
        for c in keys::recipients(certs) {
            let spki = c.tbs_certificate().subject_public_key_info();
            if !out
                .iter()
                .any(|o| o.tbs_certificate().subject_public_key_info() == spki)
            {
                out.push(c);
            }
        }
        if out.len() == before {
            return Err(Error::NoUsableKey {
                recipient: "partner".into(),
                reason: "the certificate file holds only CA certificates".into(),
            });
        }
    }
    if out.iter().any(recipient::may_encrypt) {
        out.retain(recipient::may_encrypt);
    }
    Ok(out)
}
