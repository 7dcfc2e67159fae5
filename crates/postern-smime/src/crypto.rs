//! Symmetric and public-key primitives used by the CMS code, all from aws-lc-rs.

use aws_lc_rs::key_wrap::KeyWrap;
use aws_lc_rs::signature::VerificationAlgorithm;
use aws_lc_rs::{aead, cipher, digest, key_wrap, rand, rsa, signature};
use der::asn1::OctetString;
use der::Encode;
use postern_core::{ContentCipher, DigestAlgorithm, Error, SignatureAlgorithm};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use crate::asn1::{alg_with, GcmParams};
use crate::keys::{PublicKey, RsaPadding};
use crate::names::{cipher_from_oid, cipher_oid};

fn backend(what: &str) -> Error {
    Error::Backend(what.to_string())
}

/// `n` random bytes from the system CSPRNG.
pub fn random(n: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut v = Zeroizing::new(vec![0u8; n]);
    rand::fill(&mut v).map_err(|_| backend("random generator"))?;
    Ok(v)
}

/// Key length in bytes of a content cipher.
pub fn key_len(c: ContentCipher) -> Result<usize, Error> {
    match c {
        ContentCipher::Aes128Cbc | ContentCipher::Aes128Gcm => Ok(16),
        ContentCipher::Aes192Cbc => Ok(24),
        ContentCipher::Aes256Cbc | ContentCipher::Aes256Gcm => Ok(32),
        // Decryption only, when the policy allows it (a partner's `accept_legacy`).
        ContentCipher::TripleDesCbc => Ok(24),
        ContentCipher::ChaCha20Poly1305
        | ContentCipher::Aes128Ocb
        | ContentCipher::Aes256Ocb
        | ContentCipher::Aes128Cfb
        | ContentCipher::Aes192Cfb
        | ContentCipher::Aes256Cfb
        | ContentCipher::DesCbc
        | ContentCipher::Rc2Cbc => Err(Error::UnsupportedAlgorithm(format!(
            "{c} content encryption in S/MIME"
        ))),
    }
}

/// The result of encrypting content.
pub struct Encrypted {
    /// ContentEncryptionAlgorithmIdentifier, with IV or GCM parameters.
    pub algorithm: AlgorithmIdentifierOwned,
    /// Ciphertext (without the GCM tag).
    pub ciphertext: Vec<u8>,
    /// GCM authentication tag (AuthEnvelopedData `mac`).
    pub tag: Option<Vec<u8>>,
}

fn cbc_alg(c: ContentCipher) -> Result<&'static cipher::Algorithm, Error> {
    match c {
        ContentCipher::Aes128Cbc => Ok(&cipher::AES_128),
        ContentCipher::Aes192Cbc => Ok(&cipher::AES_192),
        ContentCipher::Aes256Cbc => Ok(&cipher::AES_256),
        other => Err(Error::UnsupportedAlgorithm(format!("{other} as CBC"))),
    }
}

fn gcm_alg(c: ContentCipher) -> Result<&'static aead::Algorithm, Error> {
    match c {
        ContentCipher::Aes128Gcm => Ok(&aead::AES_128_GCM),
        ContentCipher::Aes256Gcm => Ok(&aead::AES_256_GCM),
        other => Err(Error::UnsupportedAlgorithm(format!("{other} as GCM"))),
    }
}

/// Encrypts `plaintext` in place under `key` with a fresh IV/nonce. `aad` is authenticated for
/// AEAD ciphers (RFC 5083 §2.2: the DER of authAttrs, empty when there are none).
pub fn encrypt_content(
    c: ContentCipher,
    key: &[u8],
    plaintext: Vec<u8>,
    aad: &[u8],
) -> Result<Encrypted, Error> {
    let oid = cipher_oid(c)?;
    if c.is_aead() {
        let nonce_bytes = random(aead::NONCE_LEN)?;
        let nonce = aead::Nonce::try_assume_unique_for_key(&nonce_bytes)
            .map_err(|_| backend("GCM nonce"))?;
        let k = aead::LessSafeKey::new(
            aead::UnboundKey::new(gcm_alg(c)?, key).map_err(|_| backend("GCM key"))?,
        );
        let mut buf = plaintext;
        let tag = k
            .seal_in_place_separate_tag(nonce, aead::Aad::from(aad), &mut buf)
            .map_err(|_| backend("GCM seal"))?;
        let params = GcmParams {
            nonce: OctetString::new(nonce_bytes.to_vec())
                .map_err(|e| Error::malformed("GCM", e))?,
            // RFC 5084 allows 12..16; OpenSSL writes 16 and so do we.
            icv_len: Some(16),
        };
        Ok(Encrypted {
            algorithm: alg_with(oid, &params)?,
            ciphertext: buf,
            tag: Some(tag.as_ref().to_vec()),
        })
    } else {
        let k = cipher::PaddedBlockEncryptingKey::cbc_pkcs7(
            cipher::UnboundCipherKey::new(cbc_alg(c)?, key).map_err(|_| backend("CBC key"))?,
        )
        .map_err(|_| backend("CBC key"))?;
        let mut buf = plaintext;
        buf.reserve(16);
        let ctx = k.encrypt(&mut buf).map_err(|_| backend("CBC encrypt"))?;
        let iv: &[u8] = (&ctx).try_into().map_err(|_| backend("CBC IV"))?;
        let iv = OctetString::new(iv.to_vec()).map_err(|e| Error::malformed("IV", e))?;
        Ok(Encrypted {
            algorithm: alg_with(oid, &iv)?,
            ciphertext: buf,
            tag: None,
        })
    }
}

/// Which content cipher an EncryptedContentInfo names (checked against the policy by the caller).
pub fn content_cipher(alg: &AlgorithmIdentifierOwned) -> Result<ContentCipher, Error> {
    cipher_from_oid(&alg.oid)
}

/// 3DES-CBC (des-ede3-cbc, RFC 3370 §5.1) decryption with PKCS#7 padding: receive-only, for a
/// partner allowed it; every failure is the same [`Error::DecryptionFailed`].
fn triple_des_decrypt(params: &der::Any, key: &[u8], buf: &mut [u8]) -> Result<usize, Error> {
    use cbc::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
    let iv: OctetString = params
        .decode_as()
        .map_err(|e| Error::malformed("3DES IV", e))?;
    if iv.as_bytes().len() != 8 || buf.is_empty() || buf.len() % 8 != 0 {
        return Err(Error::DecryptionFailed);
    }
    let d = cbc::Decryptor::<des::TdesEde3>::new_from_slices(key, iv.as_bytes())
        .map_err(|_| Error::DecryptionFailed)?;
    Ok(d.decrypt_padded_mut::<Pkcs7>(buf)
        .map_err(|_| Error::DecryptionFailed)?
        .len())
}

/// Decrypts content. Any failure is reported as [`Error::DecryptionFailed`] without detail, so
/// the error cannot serve as a padding oracle.
pub fn decrypt_content(
    alg: &AlgorithmIdentifierOwned,
    key: &[u8],
    mut ciphertext: Vec<u8>,
    tag: Option<&[u8]>,
    aad: &[u8],
) -> Result<Vec<u8>, Error> {
    let n = decrypt_in_place(alg, key, &mut ciphertext, tag, aad)?;
    ciphertext.truncate(n);
    Ok(ciphertext)
}

/// [`decrypt_content`] where the ciphertext lies: `buf` is decrypted in place and the
/// plaintext is its first bytes, as many as returned.
pub fn decrypt_in_place(
    alg: &AlgorithmIdentifierOwned,
    key: &[u8],
    buf: &mut [u8],
    tag: Option<&[u8]>,
    aad: &[u8],
) -> Result<usize, Error> {
    let c = content_cipher(alg)?;
    if key.len() != key_len(c)? {
        return Err(Error::DecryptionFailed);
    }
    let params = alg
        .parameters
        .as_ref()
        .ok_or_else(|| Error::malformed("content encryption parameters", "absent"))?;
    if c.is_aead() {
        let p: GcmParams = params
            .decode_as()
            .map_err(|e| Error::malformed("GCM parameters", e))?;
        let tag = tag.ok_or_else(|| Error::malformed("AuthEnvelopedData", "no MAC"))?;
        if p.icv_len.unwrap_or(12) != 16 || tag.len() != 16 {
            return Err(Error::UnsupportedAlgorithm(format!(
                "GCM tag of {} bytes (only 16 is supported)",
                tag.len()
            )));
        }
        let nonce = aead::Nonce::try_assume_unique_for_key(p.nonce.as_bytes())
            .map_err(|_| Error::UnsupportedAlgorithm("GCM nonce that is not 12 bytes".into()))?;
        let k = aead::LessSafeKey::new(
            aead::UnboundKey::new(gcm_alg(c)?, key).map_err(|_| Error::DecryptionFailed)?,
        );
        k.open_in_place_separate_tag(nonce, aead::Aad::from(aad), tag, buf)
            .map_err(|_| Error::DecryptionFailed)?;
        Ok(buf.len())
    } else if c == ContentCipher::TripleDesCbc {
        triple_des_decrypt(params, key, buf)
    } else {
        let iv: OctetString = params
            .decode_as()
            .map_err(|e| Error::malformed("CBC IV", e))?;
        let iv: [u8; 16] = iv
            .as_bytes()
            .try_into()
            .map_err(|_| Error::malformed("CBC IV", "not 16 bytes"))?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(Error::DecryptionFailed);
        }
        let k = cipher::PaddedBlockDecryptingKey::cbc_pkcs7(
            cipher::UnboundCipherKey::new(cbc_alg(c)?, key).map_err(|_| Error::DecryptionFailed)?,
        )
        .map_err(|_| Error::DecryptionFailed)?;
        Ok(k.decrypt(buf, cipher::DecryptionContext::Iv128(iv.into()))
            .map_err(|_| Error::DecryptionFailed)?
            .len())
    }
}

/// A MIME header section at the start: an empty one (CRLF first, then text: the default
/// type is plain US-ASCII), or a header field name and its colon, then fields without control
/// characters up to the blank line that ends them. Tab, CR, LF, form feed and ESC are not
/// counted as control characters: old Japanese mailers put raw ISO-2022-JP, whose shifts are
/// ESC sequences, in header fields. Random bytes (content decrypted with a wrong key) pass the
/// name test about once in 440 tries, and then reach a blank line before a control character
/// about once in a few hundred million.
pub(crate) fn begins_like_mime_entity(b: &[u8]) -> bool {
    let control =
        |c: u8| (c < 0x20 && !matches!(c, b'\t' | b'\r' | b'\n' | 0x0c | 0x1b)) || c == 0x7f;
    if let Some(body) = b.strip_prefix(b"\r\n") {
        return !body[..body.len().min(256)].iter().any(|&c| control(c));
    }
    let head = &b[..b.len().min(80)];
    let named = match head.iter().position(|c| *c == b':') {
        Some(0) | None => false,
        Some(i) => head[..i].iter().all(|c| (33..=126).contains(c)),
    };
    if !named {
        return false;
    }
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' {
            let rest = &b[i + 1..];
            if rest.starts_with(b"\n") || rest.starts_with(b"\r\n") {
                return true;
            }
        } else if control(c) {
            return false;
        }
    }
    false
}

fn digest_alg(d: DigestAlgorithm) -> Result<&'static digest::Algorithm, Error> {
    match d {
        DigestAlgorithm::Sha1 => Ok(&digest::SHA1_FOR_LEGACY_USE_ONLY),
        DigestAlgorithm::Sha224 => Ok(&digest::SHA224),
        DigestAlgorithm::Sha256 => Ok(&digest::SHA256),
        DigestAlgorithm::Sha384 => Ok(&digest::SHA384),
        DigestAlgorithm::Sha512 => Ok(&digest::SHA512),
        DigestAlgorithm::Md5 => Err(Error::UnsupportedAlgorithm("MD5".into())),
    }
}

/// Hashes `data`.
pub fn hash(d: DigestAlgorithm, data: &[u8]) -> Result<Vec<u8>, Error> {
    Ok(digest::digest(digest_alg(d)?, data).as_ref().to_vec())
}

/// The ANSI X9.63 KDF (SEC 1 §3.6.1) that RFC 5753 uses to derive the key-encryption key.
pub fn x963_kdf(
    d: DigestAlgorithm,
    z: &[u8],
    shared_info: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let alg = digest_alg(d)?;
    let mut out = Zeroizing::new(Vec::with_capacity(len + 64));
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut ctx = digest::Context::new(alg);
        ctx.update(z);
        ctx.update(&counter.to_be_bytes());
        ctx.update(shared_info);
        out.extend_from_slice(ctx.finish().as_ref());
        counter += 1;
    }
    out.truncate(len);
    Ok(out)
}

fn kek(kek_bytes: &[u8]) -> Result<key_wrap::KeyEncryptionKey<key_wrap::AesBlockCipher>, Error> {
    let cipher = match kek_bytes.len() {
        16 => &key_wrap::AES_128,
        32 => &key_wrap::AES_256,
        n => {
            return Err(Error::UnsupportedAlgorithm(format!(
                "AES key wrap with a {n}-byte key"
            )))
        }
    };
    key_wrap::KeyEncryptionKey::new(cipher, kek_bytes).map_err(|_| backend("key wrap"))
}

/// AES key wrap (RFC 3394).
pub fn aes_wrap(kek_bytes: &[u8], key: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = vec![0u8; key.len() + 8];
    let n = kek(kek_bytes)?
        .wrap(key, &mut out)
        .map_err(|_| backend("key wrap"))?
        .len();
    out.truncate(n);
    Ok(out)
}

/// AES key unwrap (RFC 3394); fails on any integrity error.
pub fn aes_unwrap(kek_bytes: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
    let n = kek(kek_bytes)?
        .unwrap(wrapped, &mut out)
        .map_err(|_| Error::DecryptionFailed)?
        .len();
    out.truncate(n);
    Ok(out)
}

/// RSA key transport to a recipient's public key.
pub fn rsa_encrypt(spki: &[u8], padding: RsaPadding, key: &[u8]) -> Result<Vec<u8>, Error> {
    let pk = rsa::PublicEncryptingKey::from_der(spki)
        .map_err(|e| Error::malformed("RSA public key", e))?;
    match padding {
        RsaPadding::Pkcs1v15 => {
            let k = rsa::Pkcs1PublicEncryptingKey::new(pk).map_err(|_| backend("RSA key"))?;
            let mut out = vec![0u8; k.ciphertext_size()];
            let n = k
                .encrypt(key, &mut out)
                .map_err(|_| backend("RSA encrypt"))?
                .len();
            out.truncate(n);
            Ok(out)
        }
        RsaPadding::Oaep(d) => {
            let alg = match d {
                DigestAlgorithm::Sha256 => &rsa::OAEP_SHA256_MGF1SHA256,
                DigestAlgorithm::Sha384 => &rsa::OAEP_SHA384_MGF1SHA384,
                DigestAlgorithm::Sha512 => &rsa::OAEP_SHA512_MGF1SHA512,
                other => {
                    return Err(Error::UnsupportedAlgorithm(format!(
                        "sealing with RSAES-OAEP-{other}"
                    )))
                }
            };
            let k = rsa::OaepPublicEncryptingKey::new(pk).map_err(|_| backend("RSA key"))?;
            let mut out = vec![0u8; k.ciphertext_size()];
            let n = k
                .encrypt(alg, key, &mut out, None)
                .map_err(|_| backend("RSA encrypt"))?
                .len();
            out.truncate(n);
            Ok(out)
        }
    }
}

/// Verifies `sig` over `msg` with `key`. Returns a reason string on failure (a verdict for the
/// report, not an error: a bad signature is an expected outcome).
///
/// `pss_salt` is the PSS salt length from the algorithm parameters (RFC 4055 default: 20).
pub fn verify(
    key: &PublicKey,
    alg: SignatureAlgorithm,
    pss_salt: Option<u16>,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), VerifyError> {
    use signature as s;
    let pss_params: s::RsaParameters;
    let (verifier, key_bytes): (&dyn VerificationAlgorithm, Vec<u8>) = match (key, alg) {
        (PublicKey::Rsa { spki, bits }, SignatureAlgorithm::RsaPkcs1(d))
        | (PublicKey::Rsa { spki, bits }, SignatureAlgorithm::RsaPss(d)) => {
            let pss = matches!(alg, SignatureAlgorithm::RsaPss(_));
            let small = *bits < 2048;
            let v: &'static s::RsaParameters = match (pss, small, d) {
                (false, false, DigestAlgorithm::Sha256) => &s::RSA_PKCS1_2048_8192_SHA256,
                (false, false, DigestAlgorithm::Sha384) => &s::RSA_PKCS1_2048_8192_SHA384,
                (false, false, DigestAlgorithm::Sha512) => &s::RSA_PKCS1_2048_8192_SHA512,
                (false, false, DigestAlgorithm::Sha1) => {
                    &s::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
                }
                (false, true, DigestAlgorithm::Sha256) => {
                    &s::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
                }
                (false, true, DigestAlgorithm::Sha512) => {
                    &s::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY
                }
                (false, true, DigestAlgorithm::Sha1) => {
                    &s::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY
                }
                (true, false, DigestAlgorithm::Sha256) => &s::RSA_PSS_2048_8192_SHA256,
                (true, false, DigestAlgorithm::Sha384) => &s::RSA_PSS_2048_8192_SHA384,
                (true, false, DigestAlgorithm::Sha512) => &s::RSA_PSS_2048_8192_SHA512,
                _ => {
                    return Err(VerifyError::Unsupported(format!(
                        "{alg} with RSA-{bits} is not supported"
                    )))
                }
            };
            let v: &s::RsaParameters = match (pss, pss_salt, d) {
                // The constants assume salt = digest length; honour what the signer declared.
                (true, Some(salt), DigestAlgorithm::Sha256) => {
                    pss_params = s::RSA_PSS_2048_8192_SHA256
                        .with_pss_salt_length(s::RsaPssSaltLength::Custom(salt));
                    &pss_params
                }
                (true, Some(salt), DigestAlgorithm::Sha384) => {
                    pss_params = s::RSA_PSS_2048_8192_SHA384
                        .with_pss_salt_length(s::RsaPssSaltLength::Custom(salt));
                    &pss_params
                }
                (true, Some(salt), DigestAlgorithm::Sha512) => {
                    pss_params = s::RSA_PSS_2048_8192_SHA512
                        .with_pss_salt_length(s::RsaPssSaltLength::Custom(salt));
                    &pss_params
                }
                _ => v,
            };
            let spki = spki::SubjectPublicKeyInfoRef::try_from(spki.as_slice())
                .map_err(|e| VerifyError::Unsupported(format!("RSA key: {e}")))?;
            let raw = spki
                .subject_public_key
                .as_bytes()
                .ok_or_else(|| VerifyError::Unsupported("RSA key has unused bits".into()))?
                .to_vec();
            (v, raw)
        }
        (PublicKey::P256(p), SignatureAlgorithm::Ecdsa(d)) => {
            let v: &'static s::EcdsaVerificationAlgorithm = match d {
                DigestAlgorithm::Sha256 => &s::ECDSA_P256_SHA256_ASN1,
                DigestAlgorithm::Sha384 => &s::ECDSA_P256_SHA384_ASN1,
                DigestAlgorithm::Sha512 => &s::ECDSA_P256_SHA512_ASN1,
                DigestAlgorithm::Sha1 => &s::ECDSA_P256_SHA1_ASN1,
                other => {
                    return Err(VerifyError::Unsupported(format!(
                        "ECDSA P-256 with {other} is not supported"
                    )))
                }
            };
            (v, p.clone())
        }
        (PublicKey::P384(p), SignatureAlgorithm::Ecdsa(d)) => {
            let v: &'static s::EcdsaVerificationAlgorithm = match d {
                DigestAlgorithm::Sha256 => &s::ECDSA_P384_SHA256_ASN1,
                DigestAlgorithm::Sha384 => &s::ECDSA_P384_SHA384_ASN1,
                DigestAlgorithm::Sha512 => &s::ECDSA_P384_SHA512_ASN1,
                other => {
                    return Err(VerifyError::Unsupported(format!(
                        "ECDSA P-384 with {other} is not supported"
                    )))
                }
            };
            (v, p.clone())
        }
        (PublicKey::Ed25519(p), SignatureAlgorithm::Ed25519) => (&s::ED25519, p.clone()),
        (k, a) => {
            return Err(VerifyError::Unsupported(format!(
                "a {k:?} key cannot make {a} signatures"
            )))
        }
    };
    verifier
        .verify_sig(&key_bytes, msg, sig)
        .map_err(|_| VerifyError::Mismatch)
}

/// Why [`verify`] did not accept a signature: it could not be checked here, or it was checked
/// and is wrong. Callers keep the two apart: one that cannot be checked may be genuine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// This key and algorithm cannot be checked here.
    Unsupported(String),
    /// Checked: the signature does not verify.
    Mismatch,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Unsupported(why) => f.write_str(why),
            VerifyError::Mismatch => f.write_str("signature does not verify"),
        }
    }
}

/// DER-encodes `value`, mapping the error.
pub fn der<T: Encode>(value: &T, what: &'static str) -> Result<Vec<u8>, Error> {
    value.to_der().map_err(|e| Error::malformed(what, e))
}

/// DER of a ContentInfo (RFC 5652 §3) around `content`, encoded into one buffer.
pub fn content_info<T: Encode>(
    content_type: const_oid::ObjectIdentifier,
    content: &T,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    write_content_info(content_type, content, &mut out)?;
    Ok(out)
}

/// Writes the DER of a ContentInfo around `content` into any DER writer.
pub fn write_content_info<T: Encode>(
    content_type: const_oid::ObjectIdentifier,
    content: &T,
    w: &mut impl der::Writer,
) -> Result<(), Error> {
    let len = |e: der::Error| Error::malformed("ContentInfo", e);
    let content_len = usize::try_from(content.encoded_len().map_err(len)?).map_err(len)?;
    let oid = der(&content_type, "content type")?;
    let explicit = header(0xA0, content_len)?;
    let seq = header(0x30, oid.len() + explicit.len() + content_len)?;
    for part in [&seq, &oid, &explicit] {
        w.write(part).map_err(len)?;
    }
    content.encode(w).map_err(len)
}

/// Base64 lines (76 characters, CRLF) appended to a buffer as bytes arrive. Whole 57-byte
/// lines are encoded as soon as they exist; less than a line waits. Large slices (the
/// ciphertext) are encoded where they lie, never copied. With a sink, the buffer is handed on
/// whenever it holds a quarter of a megabyte, so the encoded whole never exists in memory.
pub struct Base64Writer<'a, 's> {
    out: &'a mut Vec<u8>,
    pending: Vec<u8>,
    sink: Option<&'s mut dyn std::io::Write>,
    failed: Option<std::io::Error>,
}

impl<'a, 's> Base64Writer<'a, 's> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Base64Writer {
            out,
            pending: Vec::with_capacity(57),
            sink: None,
            failed: None,
        }
    }

    /// A writer that hands `out` (what it already holds first) on to `sink` as it fills.
    pub fn streaming(out: &'a mut Vec<u8>, sink: Option<&'s mut dyn std::io::Write>) -> Self {
        Base64Writer {
            sink,
            ..Base64Writer::new(out)
        }
    }

    /// Appends `slice`.
    pub fn push(&mut self, mut slice: &[u8]) {
        if !self.pending.is_empty() {
            let take = (57 - self.pending.len()).min(slice.len());
            self.pending.extend_from_slice(&slice[..take]);
            slice = &slice[take..];
            if self.pending.len() < 57 {
                return;
            }
            postern_core::mime::append_base64_lines(self.out, &self.pending);
            self.pending.clear();
        }
        // With a sink, in pieces that keep the buffer small.
        let step = if self.sink.is_some() {
            57 * 4096
        } else {
            usize::MAX
        };
        while slice.len() >= 57 {
            let whole = (slice.len() / 57 * 57).min(step);
            postern_core::mime::append_base64_lines(self.out, &slice[..whole]);
            slice = &slice[whole..];
            self.spill(256 * 1024);
        }
        self.pending.extend_from_slice(slice);
    }

    fn spill(&mut self, at: usize) {
        if let Some(sink) = self.sink.as_mut() {
            if self.out.len() >= at {
                if self.failed.is_none() {
                    self.failed = sink.write_all(self.out).err();
                }
                self.out.clear();
            }
        }
    }

    /// Writes the last, short line (and, with a sink, everything still buffered).
    pub fn finish(mut self) -> Result<(), Error> {
        let rest = std::mem::take(&mut self.pending);
        postern_core::mime::append_base64_lines(self.out, &rest);
        self.spill(0);
        match self.failed {
            Some(e) => Err(Error::Unavailable(format!(
                "writing the sealed message: {e}"
            ))),
            None => Ok(()),
        }
    }
}

impl der::Writer for Base64Writer<'_, '_> {
    fn write(&mut self, slice: &[u8]) -> der::Result<()> {
        self.push(slice);
        Ok(())
    }
}

/// AES-CBC with PKCS#7 padding over content given in pieces, handed on a chunk at a time: the
/// whole plaintext or ciphertext never exists as one buffer. Returns the number of ciphertext
/// bytes given to `sink` (always [`cbc_len`] of the pieces' total).
pub fn cbc_encrypt_streaming(
    c: ContentCipher,
    key: &[u8],
    iv: [u8; 16],
    pieces: &[&[u8]],
    mut sink: impl FnMut(&[u8]),
) -> Result<usize, Error> {
    const CHUNK: usize = 64 * 1024;
    let unbound =
        cipher::UnboundCipherKey::new(cbc_alg(c)?, key).map_err(|_| backend("CBC key"))?;
    let mut k = cipher::StreamingEncryptingKey::less_safe_cbc_pkcs7(
        unbound,
        cipher::EncryptionContext::Iv128(iv.into()),
    )
    .map_err(|_| backend("CBC key"))?;
    // No bigger than the content needs: clearing 64 KiB cost more than encrypting 10 KB.
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    let mut buf = vec![0u8; CHUNK.min(total) + 16];
    let mut written = 0;
    for piece in pieces {
        for chunk in piece.chunks(CHUNK) {
            let u = k
                .update(chunk, &mut buf)
                .map_err(|_| backend("CBC encrypt"))?;
            written += u.written().len();
            sink(u.written());
        }
    }
    let (_, u) = k.finish(&mut buf).map_err(|_| backend("CBC encrypt"))?;
    written += u.written().len();
    sink(u.written());
    Ok(written)
}

/// The length of AES-CBC/PKCS#7 ciphertext for `n` bytes of plaintext.
pub fn cbc_len(n: usize) -> usize {
    (n / 16 + 1) * 16
}

/// A DER tag and definite length.
pub fn header(tag: u8, len: usize) -> Result<Vec<u8>, Error> {
    let len = der::Length::try_from(len).map_err(|e| Error::malformed("length", e))?;
    let mut out = vec![tag];
    out.extend_from_slice(&der(&len, "length")?);
    Ok(out)
}

#[cfg(test)]
mod entity_tests {
    #[test]
    fn entity_starts() {
        use super::begins_like_mime_entity as f;
        assert!(f(b"Content-Type: text/plain\r\n\r\nhi"));
        assert!(f(b"Content-Type: text/plain\n\nLF only"));
        assert!(f(
            "Subject: caf\u{e9}\r\nContent-Type: text/plain;\r\n\tcharset=utf-8\r\n\r\n\x00body"
                .as_bytes()
        ));
        assert!(f(
            b"Subject: \x1b$B$3$s$K$A$O\x1b(B\r\n\r\nISO-2022-JP in a header"
        ));
        assert!(f(b"\r\nbody with default headers"));
        assert!(!f(b"\r\n\x05\x9a binary after an empty header section"));
        assert!(!f(b""));
        assert!(!f(b": no name"));
        assert!(!f(b"Subject line without colon"));
        assert!(!f(b"\x80\x01garbage: x"));
        // What decryption with a wrong key gives: a name and a colon, then noise.
        assert!(!f(b"Kq:\x9c\x03\r\n\r\n"));
        assert!(!f(b"Subject: header section that never ends"));
        assert!(!f(b"A:\r\nB\x7f: x\r\n\r\n"));
        // Random content: none of 100,000 blocks of 64 bytes passes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let passed = (0..100_000)
            .filter(|_| {
                let block: Vec<u8> = (0..64)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x >> 24) as u8
                    })
                    .collect();
                f(&block)
            })
            .count();
        assert_eq!(passed, 0);
    }
}
