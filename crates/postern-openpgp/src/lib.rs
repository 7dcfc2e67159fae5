//! # postern-openpgp
//!
//! The OpenPGP backend of Postern: PGP/MIME (RFC 3156) over sequoia-openpgp (RFC 9580).
//!
//! * **Seal**: `multipart/encrypted` with the whole inner MIME entity encrypted to every valid
//!   encryption subkey of each recipient certificate (v4 and v6), optionally signed inside the
//!   same OpenPGP message; or sign-only as `multipart/signed` with a detached signature.
//!   SEIPDv2 (AEAD) is used only when every recipient advertises it; otherwise SEIPDv1, which
//!   GnuPG 2.2 reads.
//! * **Open**: PGP/MIME encrypted and signed, and inline PGP in a `text/plain` body from older
//!   partners; decryption with our secret keys, verification against the partner's certificates,
//!   output bounded against compression bombs.
//!
//! ## Crypto backend
//! sequoia's crypto backend is chosen with this crate's features: `crypto-rust` (default; pure
//! Rust, builds anywhere, but sequoia marks it **experimental and not constant-time**) or
//! `crypto-openssl` (production-hardened; needs libclang-dev at build time).
#![forbid(unsafe_code)]

// sequoia needs exactly one crypto backend; say so plainly instead of failing deep in its build.
#[cfg(all(feature = "crypto-rust", feature = "crypto-openssl"))]
compile_error!(
    "postern-openpgp: enable one crypto backend: the default `crypto-rust`, or \
     `--no-default-features --features crypto-openssl`"
);
#[cfg(not(any(feature = "crypto-rust", feature = "crypto-openssl")))]
compile_error!("postern-openpgp: enable the `crypto-rust` (default) or `crypto-openssl` feature");

mod armor;
mod keys;
mod open;
mod proof;
mod seal;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use openpgp::policy::StandardPolicy;
use openpgp::Cert;
use postern_core::{
    mime, Error, MessageView, OpenRequest, Opened, Report, SealRequest, SecureEnvelope, Standard,
};
use sequoia_openpgp as openpgp;

/// How deep PGP/MIME layers (signed inside encrypted inside …) may nest.
const MAX_LAYERS: usize = 4;

/// The OpenPGP backend. Holds configuration and a cache of parsed certificates; cheap to clone
/// (clones share the cache).
#[derive(Debug, Clone)]
pub struct OpenPgpEnvelope {
    /// Largest plaintext accepted when opening (default 64 MiB): a compression bomb stops here.
    pub max_output: usize,
    certs: Arc<CertCache>,
}

impl Default for OpenPgpEnvelope {
    fn default() -> Self {
        OpenPgpEnvelope {
            max_output: 64 * 1024 * 1024,
            certs: Arc::default(),
        }
    }
}

/// Parsed certificates by the SHA-256 of their bytes. Parsing and checking an armored key costs
/// more than encrypting a small message to it, and a gateway sees the same few partner keys all
/// day. Keyed by digest, not bytes: for our own keys the bytes are an unlocked secret key, which
/// must not linger in a map key that is never zeroised.
#[derive(Debug, Default)]
struct CertCache(Mutex<HashMap<Vec<u8>, Arc<Vec<Cert>>>>);

fn cache_key(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let mut ctx = openpgp::types::HashAlgorithm::SHA256
        .context()
        .map_err(|e| Error::Backend(format!("SHA-256: {e}")))?
        .for_digest();
    ctx.update(bytes);
    ctx.into_digest()
        .map_err(|e| Error::Backend(format!("SHA-256: {e}")))
}

/// Parsed certificates kept at most; the cache starts over when full.
const CERT_CACHE_SIZE: usize = 256;

impl CertCache {
    fn get(&self, bytes: &[u8], secret: bool) -> Result<Arc<Vec<Cert>>, Error> {
        let key = cache_key(bytes)?;
        if let Some(hit) = self.0.lock().ok().and_then(|c| c.get(&key).cloned()) {
            if !secret || hit.iter().all(|c| c.is_tsk()) {
                return Ok(hit);
            }
        }
        let parsed = Arc::new(if secret {
            keys::parse_secret_certs(bytes)?
        } else {
            keys::parse_certs(bytes)?
        });
        if let Ok(mut c) = self.0.lock() {
            if c.len() >= CERT_CACHE_SIZE {
                c.clear();
            }
            c.insert(key, parsed.clone());
        }
        Ok(parsed)
    }
}

/// Parsed certificates, shared with the cache.
type Certs = Arc<Vec<Cert>>;

enum Kind {
    Encrypted,
    Signed,
    Inline,
    Other,
}

fn kind(view: &MessageView<'_>) -> Kind {
    let root = view.root();
    let protocol = || {
        root.content_type_param("protocol")
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    match root.mime_type().as_str() {
        "multipart/encrypted" if protocol() == "application/pgp-encrypted" => Kind::Encrypted,
        "multipart/signed" if protocol() == "application/pgp-signature" => Kind::Signed,
        "text/plain" if inline_armor(&root.transfer_decoded_body()).is_some() => Kind::Inline,
        _ => Kind::Other,
    }
}

/// Where the armored block of an inline PGP message (`BEGIN PGP MESSAGE` or `BEGIN PGP SIGNED
/// MESSAGE`) sits in the text, if it carries one.
fn inline_armor(text: &[u8]) -> Option<std::ops::Range<usize>> {
    let find = |needle: &[u8]| memchr::memmem::find(text, needle);
    let (start, end_marker): (usize, &[u8]) = if let Some(s) = find(b"-----BEGIN PGP MESSAGE-----")
    {
        (s, b"-----END PGP MESSAGE-----")
    } else if let Some(s) = find(b"-----BEGIN PGP SIGNED MESSAGE-----") {
        (s, b"-----END PGP SIGNATURE-----")
    } else {
        return None;
    };
    let rest = &text[start..];
    let end = memchr::memmem::find(rest, end_marker)
        .map(|e| e + end_marker.len())
        .unwrap_or(rest.len());
    Some(start..start + end)
}

impl OpenPgpEnvelope {
    /// The backend with defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The parsed certificates of several encoded ones, from the cache. A single entry (the
    /// usual case: one partner, one key) is shared, not copied: cloning a `Cert` is deep.
    fn gather<'b>(&self, items: impl Iterator<Item = (&'b [u8], bool)>) -> Result<Certs, Error> {
        let mut found: Vec<Arc<Vec<Cert>>> = Vec::new();
        for (bytes, secret) in items {
            found.push(self.certs.get(bytes, secret)?);
        }
        Ok(match found.len() {
            0 => Arc::default(),
            1 => found.swap_remove(0),
            _ => Arc::new(found.iter().flat_map(|v| v.iter().cloned()).collect()),
        })
    }

    /// The backend with a plaintext limit other than the default 64 MiB.
    pub fn with_max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// Synchronous seal.
    pub fn seal_sync(
        &self,
        msg: &MessageView<'_>,
        req: &SealRequest<'_>,
    ) -> Result<Vec<u8>, Error> {
        self.seal_into(msg, req, None)
    }

    /// Seals into `w` instead of a buffer. Encryption (signed or not) streams: the armored
    /// message is written as sequoia makes it and never held whole, so a 50 MB message costs
    /// the input and a few hundred KiB. A sign-only message is made in memory first.
    pub fn seal_to(
        &self,
        msg: &MessageView<'_>,
        req: &SealRequest<'_>,
        w: &mut (dyn std::io::Write + Send + Sync),
    ) -> Result<(), Error> {
        let sealed = self.seal_into(msg, req, Some(&mut *w))?;
        w.write_all(&sealed)
            .map_err(|e| Error::Unavailable(format!("writing the sealed message: {e}")))
    }

    /// Seals, into `sink` when there is one (the result is then empty unless the message was
    /// not streamed).
    fn seal_into(
        &self,
        msg: &MessageView<'_>,
        req: &SealRequest<'_>,
        sink: Option<&mut (dyn std::io::Write + Send + Sync)>,
    ) -> Result<Vec<u8>, Error> {
        let p = StandardPolicy::new();
        let now = req.now;
        let signer = match req.sign {
            Some(s) => {
                let secret = s.credential.secret.as_ref().ok_or_else(|| {
                    Error::InvalidRequest("signing credential has no secret key".into())
                })?;
                let certs = self.certs.get(secret.expose(), true)?;
                Some(keys::signing_keypair(&certs[0], &p, req.policy, now)?)
            }
            None => None,
        };
        if req.recipients.is_empty() {
            let (Some(kp), Some(sign)) = (signer, req.sign) else {
                return Err(Error::InvalidRequest(
                    "nothing to do: no recipients and no signing key".into(),
                ));
            };
            let _ = sign.detached; // PGP/MIME signing is always detached (RFC 3156 §5).
            let (entity, outer) = mime::sign_only_parts(msg, req.header_protection);
            let sig = seal::detached_signature(&entity, kp, now)?;
            return Ok(seal::pgp_mime_signed(&outer, &entity, &sig));
        }
        let certs = self.gather(req.recipients.iter().map(|r| (r.as_slice(), false)))?;
        let hp = if req.header_protection {
            Some("cipher")
        } else {
            None
        };
        // The entity goes to the encryptor as its header section and the body as it lies.
        let (head, body) = mime::inner_entity_parts(msg, hp);
        let outer = mime::outer_headers(msg, req.header_protection, false);
        seal::pgp_mime_encrypted(&outer, head.len() + body.len(), sink, |out, sink| {
            seal::encrypt_into(
                out,
                sink,
                &[&head, &body],
                &certs,
                signer,
                &p,
                req.policy,
                now,
            )
        })
    }

    /// Synchronous open.
    pub fn open_sync(&self, msg: &MessageView<'_>, req: &OpenRequest<'_>) -> Result<Opened, Error> {
        let p = StandardPolicy::new();
        let (secrets, signers) = self.open_keys(req)?;
        let ctx = self.context(&secrets, &signers, &p, req);
        // Borrowed until the first layer is peeled: the input is not copied.
        let report = Report::new(Standard::OpenPgp);
        self.peel(std::borrow::Cow::Borrowed(msg.raw()), 0, &ctx, report)
    }

    /// [`open_sync`](Self::open_sync) for a message handed over: a PGP/MIME message whose
    /// armor has the plain shape is dearmored inside `raw`, and sequoia reads the packets from
    /// there while the buffer gives back what it has read, so the message and its plaintext are
    /// not both held whole. Anything else opens as `open_sync` opens it.
    pub fn open_owned_sync(
        &self,
        mut raw: Vec<u8>,
        req: &OpenRequest<'_>,
    ) -> Result<Opened, Error> {
        let found = {
            let view = MessageView::parse(&raw)?;
            encrypted_armor(&view)
                .and_then(|at| armor::check_in_place(&raw, at))
                .map(|found| (view.header_section().to_vec(), found))
        };
        let Some((head, found)) = found else {
            return self.open_sync(&MessageView::parse(&raw)?, req);
        };
        let p = StandardPolicy::new();
        let (secrets, signers) = self.open_keys(req)?;
        let ctx = self.context(&secrets, &signers, &p, req);
        armor::decode_in_place(&mut raw, found)
            .ok_or_else(|| Error::malformed("OpenPGP armor", "changed while decoded"))?;
        raw.shrink_to_fit();
        let outer = MessageView::parse(&head)?;
        let mut report = Report::new(Standard::OpenPgp);
        let (plain, found) = open::read_packets(raw, &ctx)?;
        let next = encrypted_layer(&outer, plain, found, &mut report)?;
        self.peel(std::borrow::Cow::Owned(next), 1, &ctx, report)
    }

    /// Our secret keys and the partner's certificates, parsed (and cached).
    fn open_keys(&self, req: &OpenRequest<'_>) -> Result<(Certs, Certs), Error> {
        let mut our_keys = Vec::new();
        for k in req.keys.iter().filter(|k| k.standard == Standard::OpenPgp) {
            let secret = k.secret.as_ref().ok_or_else(|| {
                Error::InvalidRequest("decryption credential has no secret key".into())
            })?;
            our_keys.push(secret.expose());
        }
        let secrets = self.gather(our_keys.into_iter().map(|k| (k, true)))?;
        let signers = self.gather(req.expected_signers.iter().map(|c| (c.as_slice(), false)))?;
        Ok((secrets, signers))
    }

    fn context<'c>(
        &self,
        secrets: &'c [Cert],
        signers: &'c [Cert],
        p: &'c StandardPolicy<'c>,
        req: &OpenRequest<'c>,
    ) -> open::Context<'c> {
        open::Context {
            secrets,
            signers,
            p,
            policy: req.policy,
            now: req.now,
            max_output: self.max_output,
        }
    }

    /// Peels OpenPGP layers off `current` (after `layers` already peeled) until a message
    /// that is not OpenPGP remains.
    fn peel(
        &self,
        mut current: std::borrow::Cow<'_, [u8]>,
        mut layers: usize,
        ctx: &open::Context<'_>,
        mut report: Report,
    ) -> Result<Opened, Error> {
        loop {
            let view = MessageView::parse(&current)?;
            let k = kind(&view);
            if matches!(k, Kind::Other) {
                break;
            }
            if layers == MAX_LAYERS {
                return Err(Error::MalformedMessage(format!(
                    "more than {MAX_LAYERS} nested OpenPGP layers"
                )));
            }
            let next = match k {
                Kind::Encrypted => {
                    // Locate the parts by boundary only: the armored payload may be large.
                    let parts = view.top_level_parts();
                    let data = parts.get(1).ok_or_else(|| {
                        Error::MalformedMessage("multipart/encrypted without its data part".into())
                    })?;
                    let data = MessageView::parse(data)?;
                    let (plain, found) =
                        open::read_message(&data.root().transfer_decoded_body(), ctx)?;
                    encrypted_layer(&view, plain, found, &mut report)?
                }
                Kind::Signed => {
                    let parts = view.top_level_parts();
                    let (Some(&exact), Some(sig)) = (parts.first(), parts.get(1)) else {
                        return Err(Error::MalformedMessage(
                            "multipart/signed without two parts".into(),
                        ));
                    };
                    let sig = MessageView::parse(sig)?;
                    let sig = sig.root().transfer_decoded_body();
                    let reports =
                        mime::verify_canonical(exact, |c| open::verify_detached(&sig, c, ctx))?;
                    report.signatures.extend(reports);
                    report.note_signed_entity(exact);
                    mime::merge(&view, exact)
                }
                Kind::Inline => {
                    // The bytes as sent: charset conversion would break a cleartext signature.
                    let body = view.root().transfer_decoded_body();
                    let at = inline_armor(&body).unwrap_or_default();
                    let armor = body.get(at.clone()).unwrap_or_default();
                    let (plain, found) = open::read_message(armor, ctx)?;
                    // Text before and after the armoured block was not signed or encrypted:
                    // it stays visible (a reader must see everything that was sent), and the
                    // report says that only part of the body is protected.
                    let before = body.get(..at.start).unwrap_or_default();
                    let after = body.get(at.end..).unwrap_or_default();
                    let outside = |t: &[u8]| t.iter().any(|b| !b.is_ascii_whitespace());
                    if outside(before) || outside(after) {
                        report.partly_protected = true;
                    }
                    absorb(&mut report, found);
                    let mut entity =
                        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                            .to_vec();
                    if outside(before) {
                        entity.extend_from_slice(&mime::to_crlf(before));
                    }
                    entity.extend_from_slice(&mime::to_crlf(&plain));
                    if outside(after) {
                        if !entity.ends_with(b"\n") {
                            entity.extend_from_slice(b"\r\n");
                        }
                        entity.extend_from_slice(&mime::to_crlf(after));
                    }
                    mime::merge_owned(&view, entity)
                }
                Kind::Other => break,
            };
            current = std::borrow::Cow::Owned(next);
            layers += 1;
        }
        if layers == 0 {
            return Err(Error::NotRecognised {
                standard: "OpenPGP".into(),
                detail: "neither PGP/MIME nor inline PGP".into(),
            });
        }
        Ok(Opened {
            message: mime::into_crlf(current.into_owned()),
            report,
        })
    }
}

/// The body of the data part of a PGP/MIME encrypted message, where it lies in the message,
/// when it is sent as it is (no base64 or quoted-printable around the armor).
fn encrypted_armor(view: &MessageView<'_>) -> Option<std::ops::Range<usize>> {
    if !matches!(kind(view), Kind::Encrypted) {
        return None;
    }
    let parts = view.top_level_parts();
    let data = parts.get(1)?;
    let part = MessageView::parse(data).ok()?;
    let cte = part
        .root()
        .header("content-transfer-encoding")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if cte == "base64" || cte == "quoted-printable" {
        return None;
    }
    // The part is a slice of the message: its place is where its bytes begin.
    let start = data.as_ptr() as usize - view.raw().as_ptr() as usize + part.header_section().len();
    Some(start..start + part.body().len())
}

/// The message after an encrypted layer: `plain` merged into `outer`'s headers.
fn encrypted_layer(
    outer: &MessageView<'_>,
    plain: Vec<u8>,
    found: open::Findings,
    report: &mut Report,
) -> Result<Vec<u8>, Error> {
    if found.encryption.is_none() {
        // Plaintext dressed up as encrypted must never pass for protected mail.
        return Err(Error::MalformedMessage(
            "multipart/encrypted whose content is not encrypted".into(),
        ));
    }
    if !found.signatures.is_empty() {
        report.note_signed_entity(&plain);
    }
    absorb(report, found);
    Ok(mime::merge_owned(outer, plain))
}

fn absorb(report: &mut Report, found: open::Findings) {
    if report.encryption.is_none() {
        report.encryption = found.encryption;
    }
    report.signatures.extend(found.signatures);
}

#[async_trait]
impl SecureEnvelope for OpenPgpEnvelope {
    fn standard(&self) -> Standard {
        Standard::OpenPgp
    }

    fn recognises(&self, msg: &MessageView<'_>) -> bool {
        !matches!(kind(msg), Kind::Other)
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
        proof::proven_encrypted(msg)
    }

    fn describe_certificates(
        &self,
        bytes: &[u8],
    ) -> Result<Vec<postern_core::CertificateSummary>, Error> {
        Ok(keys::parse_certs(bytes)?
            .iter()
            .map(|c| postern_core::CertificateSummary {
                description: keys::describe(c),
                addresses: keys::emails(c),
                domains: Vec::new(),
                authority: false,
                self_signed: false,
            })
            .collect())
    }
}

/// The certificates in `bytes` (a keyring, armored or binary) that carry a user ID for
/// `address` (case-insensitive), each serialised alone (binary, public parts only). A Web Key
/// Directory answer may only vouch for the address that was asked for, so anything else a
/// server returns is dropped.
pub fn certificates_with_address(bytes: &[u8], address: &str) -> Result<Vec<Vec<u8>>, Error> {
    use openpgp::serialize::SerializeInto;
    let want = address.to_lowercase();
    keys::parse_certs(bytes)?
        .iter()
        .filter(|c| keys::emails(c).contains(&want))
        .map(|c| {
            c.to_vec()
                .map_err(|e| Error::malformed("OpenPGP certificate", e))
        })
        .collect()
}
