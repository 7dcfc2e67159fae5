//! EnvelopedData (RFC 5652 §6) and AuthEnvelopedData (RFC 5083) in and out.

use cms::authenveloped_data::AuthEnvelopedData;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{EncryptedContentInfo, EnvelopedData, RecipientInfo, RecipientInfos};
use der::asn1::OctetString;
use der::{Any, Decode, EncodingRules};

use postern_core::{ContentCipher, Encryption, Error, Policy};
use x509_cert::Certificate;

use crate::crypto;
use crate::inplace::Envelope;
use crate::keys::Identity;
use crate::oids;
use crate::recipient::{self, KeyTransport};

/// Parses a ContentInfo: DER first; else the BER made DER-shaped (indefinite lengths, chunked
/// OCTET STRINGs as OpenSSL's `-stream` and Bouncy Castle write them); else the der crate's
/// own BER reading.
pub fn parse_content_info(bytes: &[u8]) -> Result<ContentInfo, Error> {
    ContentInfo::from_der(bytes)
        .or_else(|e| {
            crate::ber::content_info_to_der(bytes)
                .ok()
                .and_then(|der| ContentInfo::from_der(&der).ok())
                .ok_or(e)
        })
        .or_else(|_| ContentInfo::from_ber(bytes))
        .map_err(|e| Error::malformed("CMS ContentInfo", e))
}

/// Decodes an EnvelopedData or AuthEnvelopedData: as it is, else made DER-shaped first (a
/// chunked encrypted content, as Bouncy Castle writes it, is valid BER that OpenSSL reads).
fn decode_enveloped<T>(any: &Any, what: &'static str) -> Result<T, Error>
where
    T: for<'a> der::DecodeValue<'a> + der::FixedTag + for<'a> der::Decode<'a>,
    for<'a> <T as der::DecodeValue<'a>>::Error: From<der::Error> + std::fmt::Display,
    for<'a> <T as der::Decode<'a>>::Error: std::fmt::Display,
{
    match decode_content::<T>(any, what) {
        Ok(v) => Ok(v),
        Err(first) => {
            let der = der::Encode::to_der(any).map_err(|e| Error::malformed(what, e))?;
            let fixed = crate::ber::enveloped_to_der(&der).map_err(|_| first)?;
            T::from_der(&fixed).map_err(|e| Error::malformed(what, e))
        }
    }
}

/// Decodes the content of a ContentInfo as `T`, in DER, else BER.
pub fn decode_content<'a, T>(any: &'a Any, what: &'static str) -> Result<T, Error>
where
    T: der::DecodeValue<'a> + der::FixedTag + 'a,
    <T as der::DecodeValue<'a>>::Error: From<der::Error> + std::fmt::Display,
{
    match any.decode_as::<T>() {
        Ok(v) => Ok(v),
        Err(_) => any
            .decode_as_encoding::<T>(EncodingRules::Ber)
            .map_err(|e| Error::malformed(what, e)),
    }
}

/// A fresh content key and one RecipientInfo per certificate; whether all are version 0.
fn recipients_for(
    recipients: &[Certificate],
    cipher: ContentCipher,
    transport: KeyTransport,
    policy: &Policy,
    now: std::time::SystemTime,
) -> Result<(zeroize::Zeroizing<Vec<u8>>, RecipientInfos, bool), Error> {
    if recipients.is_empty() {
        return Err(Error::InvalidRequest("no recipients to encrypt to".into()));
    }
    policy.check_cipher(cipher)?;
    let cek = crypto::random(crypto::key_len(cipher)?)?;
    let infos = recipients
        .iter()
        .map(|c| recipient::build(c, &cek, transport, policy, now))
        .collect::<Result<Vec<_>, _>>()?;
    // RFC 5652 §6.1: version 0 only when every RecipientInfo is a version-0 KTRI.
    let all_v0 = infos
        .iter()
        .all(|ri| matches!(ri, RecipientInfo::Ktri(k) if k.version == CmsVersion::V0));
    let recip_infos =
        RecipientInfos::try_from(infos).map_err(|e| Error::malformed("RecipientInfos", e))?;
    Ok((cek, recip_infos, all_v0))
}

/// Encrypts `content` (a canonical MIME entity, encrypted in place) for `recipients` and
/// appends the ContentInfo to `out` as base64 lines (the body of an `application/pkcs7-mime`).
/// With a `sink`, `out` and the lines are written there as they fill (see [`Base64Writer`]):
/// the ciphertext is then the only whole-message buffer.
///
/// [`Base64Writer`]: crypto::Base64Writer
#[allow(clippy::too_many_arguments)]
pub fn seal_base64(
    out: &mut Vec<u8>,
    sink: Option<&mut dyn std::io::Write>,
    content: Vec<u8>,
    recipients: &[Certificate],
    cipher: ContentCipher,
    transport: KeyTransport,
    policy: &Policy,
    now: std::time::SystemTime,
) -> Result<(), Error> {
    let (cek, recip_infos, all_v0) = recipients_for(recipients, cipher, transport, policy, now)?;
    let enc = crypto::encrypt_content(cipher, &cek, content, &[])?;
    let mut w = crypto::Base64Writer::streaming(out, sink);
    let eci = EncryptedContentInfo {
        content_type: oids::ID_DATA,
        content_enc_alg: enc.algorithm,
        encrypted_content: Some(
            OctetString::new(enc.ciphertext).map_err(|e| Error::malformed("content", e))?,
        ),
    };
    match enc.tag {
        Some(tag) => crypto::write_content_info(
            oids::ID_AUTH_ENVELOPED_DATA,
            &AuthEnvelopedData {
                version: CmsVersion::V0,
                originator_info: None,
                recip_infos,
                auth_encrypted_content_info: eci,
                auth_attrs: None,
                mac: OctetString::new(tag).map_err(|e| Error::malformed("MAC", e))?,
                unauth_attrs: None,
            },
            &mut w,
        )?,
        None => crypto::write_content_info(
            oids::ID_ENVELOPED_DATA,
            &EnvelopedData {
                version: if all_v0 {
                    CmsVersion::V0
                } else {
                    CmsVersion::V2
                },
                originator_info: None,
                recip_infos,
                encrypted_content: eci,
                unprotected_attrs: None,
            },
            &mut w,
        )?,
    }
    w.finish()
}

/// [`seal_base64`] for content given in pieces (a header section and the body, which is the
/// caller's input) under AES-CBC: encrypted a chunk at a time straight into the base64 lines,
/// so neither the whole plaintext nor the whole ciphertext is ever a buffer of its own. The
/// DER is written by hand around the stream (its lengths are known up front); AEAD content,
/// whose tag comes last in another structure, goes through [`seal_base64`].
/// With a `sink`, `out` (and what follows it) is written there as it fills.
#[allow(clippy::too_many_arguments)]
pub fn seal_base64_pieces(
    out: &mut Vec<u8>,
    sink: Option<&mut dyn std::io::Write>,
    pieces: &[&[u8]],
    recipients: &[Certificate],
    cipher: ContentCipher,
    transport: KeyTransport,
    policy: &Policy,
    now: std::time::SystemTime,
) -> Result<(), Error> {
    if cipher.is_aead() {
        return seal_base64(
            out,
            sink,
            pieces.concat(),
            recipients,
            cipher,
            transport,
            policy,
            now,
        );
    }
    let (cek, recip_infos, all_v0) = recipients_for(recipients, cipher, transport, policy, now)?;
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&crypto::random(16)?);
    let alg = crate::asn1::alg_with(
        crate::names::cipher_oid(cipher)?,
        &OctetString::new(iv.to_vec()).map_err(|e| Error::malformed("IV", e))?,
    )?;
    let plain_len: usize = pieces.iter().map(|p| p.len()).sum();
    let ct_len = crypto::cbc_len(plain_len);
    let version = crypto::der(
        &if all_v0 {
            CmsVersion::V0
        } else {
            CmsVersion::V2
        },
        "version",
    )?;
    let ris = crypto::der(&recip_infos, "RecipientInfos")?;
    let data_type = crypto::der(&oids::ID_DATA, "content type")?;
    let alg = crypto::der(&alg, "content encryption algorithm")?;
    // EncryptedContentInfo's encryptedContent is [0] IMPLICIT OCTET STRING, primitive.
    let ct_head = crypto::header(0x80, ct_len)?;
    let eci_len = data_type.len() + alg.len() + ct_head.len() + ct_len;
    let eci_head = crypto::header(0x30, eci_len)?;
    let ed_len = version.len() + ris.len() + eci_head.len() + eci_len;
    let ed_head = crypto::header(0x30, ed_len)?;
    let ci_type = crypto::der(&oids::ID_ENVELOPED_DATA, "content type")?;
    let explicit = crypto::header(0xA0, ed_head.len() + ed_len)?;
    let ci_head = crypto::header(
        0x30,
        ci_type.len() + explicit.len() + ed_head.len() + ed_len,
    )?;
    let mut w = crypto::Base64Writer::streaming(out, sink);
    for part in [
        &ci_head, &ci_type, &explicit, &ed_head, &version, &ris, &eci_head, &data_type, &alg,
        &ct_head,
    ] {
        w.push(part);
    }
    let written = crypto::cbc_encrypt_streaming(cipher, &cek, iv, pieces, |c| w.push(c))?;
    if written != ct_len {
        // Never hand on a structure whose lengths do not match its content.
        return Err(Error::Backend("CBC output length".into()));
    }
    w.finish()
}

/// One CMS layer read from its DER: decrypted, or a SignedData for the caller to verify.
pub enum Layer {
    /// The content of an EnvelopedData or AuthEnvelopedData, and how it was encrypted.
    Opened(Vec<u8>, Encryption),
    /// A SignedData.
    Signed(ContentInfo),
}

/// Reads the ContentInfo in `der`. Encrypted content in the usual shape is decrypted where it
/// lies in `der`, which becomes the plaintext: no copy of a large message is made. Other
/// shapes are decoded whole first (see [`parse_content_info`]).
pub fn open_der(
    mut der: Vec<u8>,
    ids: &[std::sync::Arc<Identity>],
    policy: &Policy,
) -> Result<Layer, Error> {
    if let Some((envelope, at)) = crate::inplace::locate(&der) {
        let (n, report) = decrypt(&envelope, ids, policy, &mut der[at.clone()])?;
        der.copy_within(at.start..at.start + n, 0);
        der.truncate(n);
        return Ok(Layer::Opened(der, report));
    }
    let ci = parse_content_info(&der)?;
    // Decoded: the DER goes before the content is decrypted.
    drop(der);
    if ci.content_type == oids::ID_SIGNED_DATA {
        return Ok(Layer::Signed(ci));
    }
    let (plain, report) = open(ci, ids, policy)?;
    Ok(Layer::Opened(plain, report))
}

/// Decrypts an EnvelopedData or AuthEnvelopedData with one of `ids`.
pub fn open(
    ci: ContentInfo,
    ids: &[std::sync::Arc<Identity>],
    policy: &Policy,
) -> Result<(Vec<u8>, Encryption), Error> {
    let (recip_infos, eci, mac, aad) = if ci.content_type == oids::ID_ENVELOPED_DATA {
        let ed: EnvelopedData = decode_enveloped(&ci.content, "EnvelopedData")?;
        (ed.recip_infos, ed.encrypted_content, None, Vec::new())
    } else if ci.content_type == oids::ID_AUTH_ENVELOPED_DATA {
        let ad: AuthEnvelopedData = decode_enveloped(&ci.content, "AuthEnvelopedData")?;
        // RFC 5083 §2.2: authenticated attributes are MACed as their DER SET OF encoding.
        let aad = match &ad.auth_attrs {
            Some(a) => crypto::der(a, "authAttrs")?,
            None => Vec::new(),
        };
        (
            ad.recip_infos,
            ad.auth_encrypted_content_info,
            Some(ad.mac.as_bytes().to_vec()),
            aad,
        )
    } else {
        return Err(Error::NotRecognised {
            standard: "S/MIME".into(),
            detail: format!("content type {} is not enveloped", ci.content_type),
        });
    };
    // Decoded: the ContentInfo's copy of the ciphertext goes before decryption begins.
    drop(ci);
    let ciphertext = eci
        .encrypted_content
        .ok_or_else(|| Error::malformed("EncryptedContentInfo", "detached content"))?;
    let envelope = Envelope {
        recip_infos,
        alg: eci.content_enc_alg,
        mac,
        aad,
    };
    let mut ciphertext = Vec::from(ciphertext.into_bytes());
    let (n, report) = decrypt(&envelope, ids, policy, &mut ciphertext)?;
    ciphertext.truncate(n);
    Ok((ciphertext, report))
}

/// Unwraps the content key with one of `ids` and decrypts `buf` in place; the plaintext is
/// its first bytes, as many as returned.
fn decrypt(
    envelope: &Envelope,
    ids: &[std::sync::Arc<Identity>],
    policy: &Policy,
    buf: &mut [u8],
) -> Result<(usize, Encryption), Error> {
    let cipher = crypto::content_cipher(&envelope.alg)?;
    policy.check_cipher(cipher)?;
    let cek_len = crypto::key_len(cipher)?;
    let all: Vec<String> = envelope
        .recip_infos
        .0
        .iter()
        .map(recipient::describe)
        .collect();
    for me in ids {
        for ri in envelope.recip_infos.0.iter() {
            if let Some(u) = recipient::unwrap(ri, me, cek_len, policy)? {
                let n = crypto::decrypt_in_place(
                    &envelope.alg,
                    &u.cek,
                    buf,
                    envelope.mac.as_deref(),
                    &envelope.aad,
                )?;
                // A PKCS#1 v1.5 failure yields a random content key (RFC 3218), and CBC has no
                // integrity: such a key still passes the padding check about once in 256. What
                // a real S/MIME agent encrypts is a MIME entity, so content that does not begin
                // like one is the same DecryptionFailed. (OAEP and ECDH fail loudly instead, and
                // some samples encrypt raw text with them, so they are not held to this.)
                if u.key_management == "rsa-pkcs1v15"
                    && !cipher.is_aead()
                    && !crypto::begins_like_mime_entity(&buf[..n])
                {
                    return Err(Error::DecryptionFailed);
                }
                let report = Encryption::new(
                    cipher,
                    u.key_management,
                    all,
                    crate::certinfo::describe(&me.certificate),
                );
                return Ok((n, report));
            }
        }
    }
    Err(Error::NotForUs(format!("recipients: {}", all.join("; "))))
}

/// Proves that `view` is an S/MIME encrypted message by its structure: an
/// `application/pkcs7-mime` whose whole body is strict base64 of exactly one CMS ContentInfo
/// holding an EnvelopedData or AuthEnvelopedData with at least one recipient and the encrypted
/// content inside. Returns the message rebuilt from its header section and that object, so no
/// stray text in the body rides along. The labels alone prove nothing: they are the sender's.
pub fn proven_encrypted(view: &postern_core::MessageView<'_>) -> Option<Vec<u8>> {
    let root = view.root();
    if !matches!(
        root.mime_type().as_str(),
        "application/pkcs7-mime" | "application/x-pkcs7-mime"
    ) {
        return None;
    }
    let cte = root.header("content-transfer-encoding")?;
    if !cte.trim().eq_ignore_ascii_case("base64") {
        return None;
    }
    let der = strict_base64(view.body())?;
    let ci = parse_content_info(&der).ok()?;
    let (recipients, eci) = if ci.content_type == oids::ID_ENVELOPED_DATA {
        let ed: EnvelopedData = decode_enveloped(&ci.content, "EnvelopedData").ok()?;
        (ed.recip_infos, ed.encrypted_content)
    } else if ci.content_type == oids::ID_AUTH_ENVELOPED_DATA {
        let ad: AuthEnvelopedData = decode_enveloped(&ci.content, "AuthEnvelopedData").ok()?;
        if ad.mac.as_bytes().is_empty() {
            return None;
        }
        (ad.recip_infos, ad.auth_encrypted_content_info)
    } else {
        return None;
    };
    // The algorithm must be one we know as a cipher (legacy ones included: the message is
    // the user's, and nothing of it is readable without the key).
    crypto::content_cipher(&eci.content_enc_alg)
        .or_else(|e| match e {
            Error::WeakAlgorithm { .. } => Ok(ContentCipher::Aes256Cbc),
            other => Err(other),
        })
        .ok()?;
    let content = eci.encrypted_content?;
    if recipients.0.is_empty() || content.as_bytes().is_empty() {
        return None;
    }
    let mut out = view.header_section().to_vec();
    postern_core::mime::append_base64_lines(&mut out, &der);
    Some(out)
}

/// Decodes a base64 body that holds nothing but base64: alphabet characters, line breaks and
/// spaces, with `=` padding only at the very end. Anything else (a line of text before or after
/// the object) is not proof of encryption.
fn strict_base64(body: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let mut compact = Vec::with_capacity(body.len());
    for &b in body {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => compact.push(b),
            b'\r' | b'\n' | b' ' | b'\t' => {}
            _ => return None,
        }
    }
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .ok()
        .filter(|d| !d.is_empty())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use postern_core::Credential;

    const CERT: &[u8] = include_bytes!("../../../examples/data/lamps-bob.encrypt.crt");
    const KEY: &[u8] = include_bytes!("../../../examples/data/lamps-bob.decrypt.p8.pem");

    /// The published LAMPS sample key of Bob, and his certificate.
    pub(crate) fn bob() -> (std::sync::Arc<Identity>, Vec<Certificate>) {
        let me = Identity::from_credential(&Credential::with_secret(
            postern_core::Standard::Smime,
            CERT.to_vec(),
            KEY.to_vec(),
        ))
        .unwrap();
        let cert = crate::keys::parse_certificates(CERT).unwrap();
        (std::sync::Arc::new(me), cert)
    }

    /// The streamed structure is strict DER with the right lengths, and opens to the pieces'
    /// concatenation at every size around the block and chunk boundaries.
    #[test]
    fn streamed_cbc_content_is_der_and_opens_to_the_pieces() {
        use base64::Engine;
        let (me, cert) = bob();
        let policy = Policy::default();
        for size in [0usize, 1, 15, 16, 17, 65_535, 65_536, 65_537, 200_003] {
            let head = b"Content-Type: text/plain\r\n\r\n".to_vec();
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            seal_base64_pieces(
                &mut out,
                None,
                &[&head, &body],
                &cert,
                ContentCipher::Aes256Cbc,
                KeyTransport::default(),
                &policy,
                std::time::SystemTime::now(),
            )
            .unwrap();
            let text: Vec<u8> = out
                .into_iter()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap();
            // Strict DER: the hand-written lengths must be exact.
            let ci = ContentInfo::from_der(&der).unwrap();
            let (plain, _) = open(ci, std::slice::from_ref(&me), &policy).unwrap();
            assert_eq!(plain, [head.as_slice(), &body].concat(), "size {size}");
        }
    }
}
