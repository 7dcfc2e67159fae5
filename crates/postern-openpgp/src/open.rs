//! Reading OpenPGP messages: decryption with our keys, verification against the partner's
//! certificates, with the output bounded so a compression bomb cannot exhaust memory.

use std::cell::RefCell;
use std::io::Read;
use std::time::SystemTime;

use openpgp::crypto::SessionKey;
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, DetachedVerifierBuilder, MessageLayer, MessageStructure,
    VerificationError, VerificationHelper, VerifierBuilder,
};
use openpgp::parse::Parse;
use openpgp::types::{AEADAlgorithm, HashAlgorithm, PublicKeyAlgorithm, SymmetricAlgorithm};
use openpgp::{Cert, KeyHandle};
use postern_core::{
    ChainStatus, ContentCipher, DigestAlgorithm, Encryption, Error, Policy, SignatureAlgorithm,
    SignatureReport, SignatureStatus,
};
use sequoia_openpgp as openpgp;

use crate::keys;

/// What opening found, beyond the plaintext.
#[derive(Debug, Default)]
pub struct Findings {
    /// Set when the message was encrypted and we decrypted it.
    pub encryption: Option<Encryption>,
    /// One report per signature.
    pub signatures: Vec<SignatureReport>,
}

#[derive(Default)]
struct Diagnostics {
    recipients: Vec<String>,
    key_management: String,
    decrypted_with: Option<String>,
    cipher: Option<ContentCipher>,
    refused: Option<Error>,
    signatures: Vec<SignatureReport>,
}

struct Helper<'a> {
    secrets: &'a [Cert],
    signers: &'a [Cert],
    p: &'a dyn openpgp::policy::Policy,
    policy: &'a Policy,
    diag: &'a RefCell<Diagnostics>,
}

/// The inputs every read needs.
pub struct Context<'a> {
    /// Our secret-key certificates.
    pub secrets: &'a [Cert],
    /// The partner certificates signatures may come from.
    pub signers: &'a [Cert],
    /// sequoia's policy (algorithm cut-offs by date).
    pub p: &'a dyn openpgp::policy::Policy,
    /// Our algorithm policy.
    pub policy: &'a Policy,
    /// Validation time.
    pub now: SystemTime,
    /// Largest plaintext we accept (decompression bombs stop here).
    pub max_output: usize,
}

/// The content cipher of an OpenPGP encryption container, refused unless it is AES.
#[allow(deprecated)] // the legacy ciphers are named precisely so they can be refused
fn content_cipher(
    sym: SymmetricAlgorithm,
    aead: Option<AEADAlgorithm>,
    policy: &Policy,
) -> Result<ContentCipher, Error> {
    let c = match (sym, aead) {
        (SymmetricAlgorithm::AES128, None) => ContentCipher::Aes128Cfb,
        (SymmetricAlgorithm::AES192, None) => ContentCipher::Aes192Cfb,
        (SymmetricAlgorithm::AES256, None) => ContentCipher::Aes256Cfb,
        (SymmetricAlgorithm::AES128, Some(AEADAlgorithm::OCB)) => ContentCipher::Aes128Ocb,
        (SymmetricAlgorithm::AES256, Some(AEADAlgorithm::OCB)) => ContentCipher::Aes256Ocb,
        (SymmetricAlgorithm::AES128, Some(AEADAlgorithm::GCM)) => ContentCipher::Aes128Gcm,
        (SymmetricAlgorithm::AES256, Some(AEADAlgorithm::GCM)) => ContentCipher::Aes256Gcm,
        (SymmetricAlgorithm::TripleDES, _) => ContentCipher::TripleDesCbc,
        (
            SymmetricAlgorithm::IDEA | SymmetricAlgorithm::CAST5 | SymmetricAlgorithm::Blowfish,
            _,
        ) => {
            return Err(Error::WeakAlgorithm {
                algorithm: sym.to_string(),
                reason: "64-bit block cipher".into(),
            })
        }
        (s, a) => {
            return Err(Error::UnsupportedAlgorithm(match a {
                Some(a) => format!("{s} with {a}"),
                None => s.to_string(),
            }))
        }
    };
    policy.check_cipher(c)?;
    Ok(c)
}

fn digest(h: HashAlgorithm) -> Option<DigestAlgorithm> {
    match h {
        HashAlgorithm::MD5 => Some(DigestAlgorithm::Md5),
        HashAlgorithm::SHA1 => Some(DigestAlgorithm::Sha1),
        HashAlgorithm::SHA224 => Some(DigestAlgorithm::Sha224),
        HashAlgorithm::SHA256 => Some(DigestAlgorithm::Sha256),
        HashAlgorithm::SHA384 => Some(DigestAlgorithm::Sha384),
        HashAlgorithm::SHA512 => Some(DigestAlgorithm::Sha512),
        _ => None,
    }
}

fn signature_algorithm(pk: PublicKeyAlgorithm, h: HashAlgorithm) -> Option<SignatureAlgorithm> {
    #[allow(deprecated)]
    match pk {
        PublicKeyAlgorithm::RSAEncryptSign | PublicKeyAlgorithm::RSASign => {
            digest(h).map(SignatureAlgorithm::RsaPkcs1)
        }
        PublicKeyAlgorithm::ECDSA => digest(h).map(SignatureAlgorithm::Ecdsa),
        PublicKeyAlgorithm::DSA => digest(h).map(SignatureAlgorithm::Dsa),
        PublicKeyAlgorithm::EdDSA | PublicKeyAlgorithm::Ed25519 => {
            Some(SignatureAlgorithm::Ed25519)
        }
        _ => None,
    }
}

fn signer_report(
    cert: &Cert,
    sig: &openpgp::packet::Signature,
    status: SignatureStatus,
) -> SignatureReport {
    let mut r = SignatureReport::new(status);
    r.signer = keys::email(cert);
    r.signer_addresses = keys::emails(cert);
    r.signer_subject = keys::bound_userids(cert)
        .next()
        .map(|u| String::from_utf8_lossy(u.value()).into_owned());
    r.fingerprint = Some(cert.fingerprint().to_hex());
    r.algorithm = signature_algorithm(sig.pk_algo(), sig.hash_algo());
    r.signing_time = sig.signature_creation_time();
    r
}

impl Helper<'_> {
    fn report(
        &self,
        result: Result<openpgp::parse::stream::GoodChecksum<'_>, VerificationError<'_>>,
    ) -> SignatureReport {
        match result {
            Ok(good) => {
                let cert = good.ka.cert();
                let mut status = SignatureStatus::Valid;
                if let Some(alg) = signature_algorithm(good.sig.pk_algo(), good.sig.hash_algo()) {
                    if let Err(e) = self.policy.check_signature(alg) {
                        status = SignatureStatus::Refused(e.to_string());
                    }
                }
                if let Err(e) = keys::check_key_strength(good.ka.key(), self.policy) {
                    status = SignatureStatus::Refused(e.to_string());
                }
                let mut r = signer_report(cert, good.sig, status);
                // OpenPGP has no CA: the only signers we look up are the partner's configured
                // certificates, so a good signature is from a pinned key.
                r.chain = ChainStatus::Trusted {
                    anchor: "pinned partner certificate".into(),
                };
                r
            }
            Err(VerificationError::MissingKey { sig }) => {
                let issuers: Vec<String> =
                    sig.get_issuers().iter().map(|i| i.to_string()).collect();
                let mut r = SignatureReport::new(SignatureStatus::SignerUnknown(format!(
                    "signed by {} which is not a configured partner key",
                    issuers.join(", ")
                )));
                r.algorithm = signature_algorithm(sig.pk_algo(), sig.hash_algo());
                r.signing_time = sig.signature_creation_time();
                r
            }
            Err(VerificationError::BadSignature { sig, ka, error }) => signer_report(
                ka.cert(),
                sig,
                SignatureStatus::Invalid(format!("bad signature: {error}")),
            ),
            Err(VerificationError::BadKey { sig, ka, error }) => signer_report(
                ka.cert(),
                sig,
                SignatureStatus::Invalid(format!("signing key not valid: {error}")),
            ),
            Err(VerificationError::UnboundKey { sig, cert, error }) => signer_report(
                cert,
                sig,
                SignatureStatus::Invalid(format!("signing key not bound: {error}")),
            ),
            Err(e) => SignatureReport::new(SignatureStatus::Invalid(e.to_string())),
        }
    }
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.signers.to_vec())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        for layer in structure {
            match layer {
                MessageLayer::Encryption {
                    sym_algo,
                    aead_algo,
                } => match content_cipher(sym_algo, aead_algo, self.policy) {
                    Ok(c) => self.diag.borrow_mut().cipher = Some(c),
                    Err(e) => {
                        self.diag.borrow_mut().refused = Some(e);
                        return Err(
                            openpgp::Error::PolicyViolation(sym_algo.to_string(), None).into()
                        );
                    }
                },
                MessageLayer::Compression { .. } => {}
                MessageLayer::SignatureGroup { results } => {
                    for r in results {
                        let report = self.report(r);
                        self.diag.borrow_mut().signatures.push(report);
                    }
                }
            }
        }
        Ok(())
    }
}

fn key_management(pk: PublicKeyAlgorithm) -> String {
    #[allow(deprecated)]
    match pk {
        PublicKeyAlgorithm::RSAEncryptSign | PublicKeyAlgorithm::RSAEncrypt => "rsa".into(),
        PublicKeyAlgorithm::ECDH => "ecdh".into(),
        PublicKeyAlgorithm::X25519 => "x25519".into(),
        PublicKeyAlgorithm::X448 => "x448".into(),
        other => other.to_string().to_lowercase(),
    }
}

impl DecryptionHelper for Helper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        self.diag.borrow_mut().recipients = pkesks
            .iter()
            .map(|p| {
                p.recipient()
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "anonymous".into())
            })
            .collect();
        for pkesk in pkesks {
            for cert in self.secrets {
                // Decryption uses every secret subkey that matches, expired or not: a message
                // encrypted while the key was valid must still open.
                for ka in cert.keys().secret() {
                    let matches = match pkesk.recipient() {
                        Some(h) => h.aliases(ka.key().key_handle()),
                        None => true,
                    };
                    if !matches || !ka.key().has_unencrypted_secret() {
                        continue;
                    }
                    if keys::check_key_strength(ka.key(), self.policy).is_err() {
                        continue;
                    }
                    let Ok(mut kp) = ka.key().clone().into_keypair() else {
                        continue;
                    };
                    if let Some((algo, sk)) = pkesk.decrypt(&mut kp, sym_algo) {
                        if let Some(a) = algo {
                            if let Err(e) = content_cipher(a, None, self.policy) {
                                if matches!(e, Error::WeakAlgorithm { .. }) {
                                    self.diag.borrow_mut().refused = Some(e);
                                    return Ok(None);
                                }
                            }
                        }
                        if decrypt(algo, &sk) {
                            let mut d = self.diag.borrow_mut();
                            d.decrypted_with = Some(keys::describe(cert));
                            d.key_management = key_management(pkesk.pk_algo());
                            return Ok(Some(cert.clone()));
                        }
                    }
                }
            }
        }
        Err(openpgp::Error::MissingSessionKey("no matching secret key".into()).into())
    }
}

/// How much plaintext sequoia holds back before handing it on. Its default (25 MB) buffers a
/// whole message below that size to verify signatures before releasing any of it, at several
/// times the message's size in memory; we release nothing before the last byte is read and
/// every check has run anyway (`read_bounded` reads to the end, and an error at the end, a bad
/// MDC or AEAD tag, fails the whole open), so the plaintext may stream.
const STREAM_BUFFER: usize = 64 * 1024;

fn read_bounded(r: impl Read, max: usize, expected: usize) -> Result<Vec<u8>, Error> {
    // Sized for the usual case (plaintext about as large as the message) to avoid regrowing,
    // and read straight into it: no bounce buffer to clear and copy through.
    let mut out = Vec::with_capacity(expected.min(max));
    // A read asks every layer underneath (decryption, partial bodies, decompression) for that
    // much at once, and each buffers it: reads of the whole spare capacity held the plaintext
    // four times over. A few hundred KiB per read keeps those buffers small.
    const READ: u64 = 256 * 1024;
    let mut r = r;
    loop {
        let n = (&mut r).take(READ).read_to_end(&mut out).map_err(map_io)?;
        if out.len() > max {
            return Err(Error::MalformedMessage(format!(
                "OpenPGP plaintext exceeds the {max} byte limit (compression bomb?)"
            )));
        }
        if n == 0 {
            return Ok(out);
        }
    }
}

fn map_io(e: std::io::Error) -> Error {
    match e.into_inner() {
        Some(inner) => match inner.downcast::<openpgp::Error>() {
            Ok(pgp) => map_anyhow(anyhow::Error::from(*pgp)),
            Err(other) => map_openpgp_error_text(&other.to_string()),
        },
        None => Error::malformed("OpenPGP message", "read error"),
    }
}

fn map_openpgp_error_text(s: &str) -> Error {
    if s.contains("anipulated") || s.contains("authentication") {
        Error::DecryptionFailed
    } else {
        Error::malformed("OpenPGP message", s)
    }
}

/// Maps sequoia's errors onto the core's, preserving the temporary/permanent distinction.
pub fn map_anyhow(e: anyhow::Error) -> Error {
    match e.downcast_ref::<openpgp::Error>() {
        Some(openpgp::Error::MissingSessionKey(_)) => {
            Error::NotForUs("no session key could be decrypted with our keys".into())
        }
        Some(openpgp::Error::ManipulatedMessage) => Error::DecryptionFailed,
        Some(openpgp::Error::PolicyViolation(what, _)) => Error::WeakAlgorithm {
            algorithm: what.clone(),
            reason: "refused by the OpenPGP standard policy".into(),
        },
        Some(openpgp::Error::UnsupportedSymmetricAlgorithm(a)) => {
            Error::UnsupportedAlgorithm(a.to_string())
        }
        _ => map_openpgp_error_text(&format!("{e:#}")),
    }
}

fn finish(diag: RefCell<Diagnostics>) -> Result<Findings, Error> {
    let d = diag.into_inner();
    if let Some(e) = d.refused {
        return Err(e);
    }
    let encryption = match (d.decrypted_with, d.cipher) {
        (Some(with), Some(cipher)) => Some(Encryption::new(
            cipher,
            d.key_management,
            d.recipients,
            with,
        )),
        _ => None,
    };
    Ok(Findings {
        encryption,
        signatures: d.signatures,
    })
}

/// Runs a sequoia parse, turning a panic inside the parser into an error.
///
/// sequoia 2.4.2 can panic on crafted input (an `unwrap()` in the SEIPDv1 path of its packet
/// parser, parse.rs:6367, reached with a tampered message encrypted to our key, found by this
/// crate's property test). Anyone can encrypt to our public key, so that is a remote crash of
/// the gateway unless contained here.
fn contained<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::malformed(
            "OpenPGP message",
            "the OpenPGP parser failed on this input",
        ))
    })
}

/// Decrypts and/or verifies an inline OpenPGP message (armored or binary).
pub fn read_message(data: &[u8], ctx: &Context<'_>) -> Result<(Vec<u8>, Findings), Error> {
    contained(|| read_message_unguarded(data, ctx))
}

fn read_message_unguarded(data: &[u8], ctx: &Context<'_>) -> Result<(Vec<u8>, Findings), Error> {
    // Only sequoia's Verifier applies the Cleartext Signature Framework transformation.
    if data.starts_with(b"-----BEGIN PGP SIGNED MESSAGE-----") {
        return with_helper(ctx, |helper| {
            VerifierBuilder::from_bytes(data)
                .map_err(map_anyhow)
                .and_then(|b| b.with_policy(ctx.p, ctx.now, helper).map_err(map_anyhow))
                .and_then(|v| read_bounded(v, ctx.max_output, data.len()))
        });
    }
    // Our one-pass dearmoring when the armor has the usual shape; sequoia's reader else.
    let binary = crate::armor::dearmor(data);
    with_helper(ctx, |helper| {
        decrypt(
            DecryptorBuilder::from_bytes(binary.as_deref().unwrap_or(data)),
            helper,
            ctx,
            data.len(),
        )
    })
}

/// Decrypts and/or verifies the binary OpenPGP message in `packets`, which it consumes: the
/// buffer shrinks as sequoia reads it, so the message and its plaintext are not both held
/// whole (what `open_owned` is for).
pub fn read_packets(packets: Vec<u8>, ctx: &Context<'_>) -> Result<(Vec<u8>, Findings), Error> {
    let expected = packets.len();
    contained(|| {
        with_helper(ctx, |helper| {
            decrypt(
                DecryptorBuilder::from_reader(Draining {
                    buf: packets,
                    read: 0,
                }),
                helper,
                ctx,
                expected,
            )
        })
    })
}

/// A reader over a buffer that gives back what it has read, a few MiB at a time.
struct Draining {
    buf: Vec<u8>,
    read: usize,
}

impl Read for Draining {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        const RELEASE: usize = 4 << 20;
        let n = out.len().min(self.buf.len() - self.read);
        out[..n].copy_from_slice(&self.buf[self.read..self.read + n]);
        self.read += n;
        if self.read >= RELEASE {
            // The rest moves to the front and the freed end goes back to the allocator.
            self.buf.drain(..self.read);
            self.buf.shrink_to_fit();
            self.read = 0;
        }
        Ok(n)
    }
}

fn decrypt(
    builder: openpgp::Result<DecryptorBuilder<'_>>,
    helper: Helper<'_>,
    ctx: &Context<'_>,
    expected: usize,
) -> Result<Vec<u8>, Error> {
    builder
        .map_err(map_anyhow)
        .map(|b| b.buffer_size(STREAM_BUFFER))
        .and_then(|b| b.with_policy(ctx.p, ctx.now, helper).map_err(map_anyhow))
        .and_then(|d| read_bounded(d, ctx.max_output, expected))
}

/// Runs a read with a fresh helper and turns what it recorded into findings.
fn with_helper(
    ctx: &Context<'_>,
    read: impl FnOnce(Helper<'_>) -> Result<Vec<u8>, Error>,
) -> Result<(Vec<u8>, Findings), Error> {
    let diag = RefCell::new(Diagnostics::default());
    let helper = Helper {
        secrets: ctx.secrets,
        signers: ctx.signers,
        p: ctx.p,
        policy: ctx.policy,
        diag: &diag,
    };
    let _ = helper.p;
    match read(helper) {
        Ok(plain) => Ok((plain, finish(diag)?)),
        Err(e) => {
            // A policy refusal recorded by the helper explains the failure better.
            if let Some(refused) = diag.into_inner().refused {
                return Err(refused);
            }
            Err(e)
        }
    }
}

/// Verifies a detached signature over exactly `content`.
pub fn verify_detached(
    sig: &[u8],
    content: &[u8],
    ctx: &Context<'_>,
) -> Result<Vec<SignatureReport>, Error> {
    contained(|| verify_detached_unguarded(sig, content, ctx))
}

fn verify_detached_unguarded(
    sig: &[u8],
    content: &[u8],
    ctx: &Context<'_>,
) -> Result<Vec<SignatureReport>, Error> {
    let diag = RefCell::new(Diagnostics::default());
    let helper = Helper {
        secrets: &[],
        signers: ctx.signers,
        p: ctx.p,
        policy: ctx.policy,
        diag: &diag,
    };
    let mut v = DetachedVerifierBuilder::from_bytes(sig)
        .map_err(map_anyhow)?
        .with_policy(ctx.p, ctx.now, helper)
        .map_err(map_anyhow)?;
    // A verification failure is reported per signature by check(); an Err here means the
    // signature packets themselves could not be processed.
    let outcome = v.verify_bytes(content);
    drop(v);
    let d = diag.into_inner();
    if d.signatures.is_empty() {
        if let Err(e) = outcome {
            return Err(map_anyhow(e));
        }
        return Ok(vec![SignatureReport::new(SignatureStatus::Invalid(
            "no signature found".into(),
        ))]);
    }
    Ok(d.signatures)
}
