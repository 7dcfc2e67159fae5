//! Finding the encrypted content of an EnvelopedData or AuthEnvelopedData where it lies, so it
//! is decrypted in the buffer that holds the DER instead of in a copy of its own.
//!
//! The `cms` types own their OCTET STRINGs: decoding a 20 MB message with them copies the
//! ciphertext once more. This walk reads only the headers of the outer structures, in the one
//! shape the usual senders write (definite lengths, encrypted content in one primitive
//! `[0]`, no originator information or attributes), and hands every inner piece that carries
//! meaning (version, recipients, algorithm) to the `cms` decoders. Anything else is not ours
//! to guess at: `None`, and the caller decodes the whole object the usual way, which reads
//! BER and the optional fields too. So this path accepts a subset of what the other one does
//! and reads it the same (a test compares the two over every one-byte change).

use std::ops::Range;

use cms::content_info::CmsVersion;
use cms::enveloped_data::RecipientInfos;
use der::Decode;
use spki::AlgorithmIdentifierOwned;

use crate::oids;

/// One DER element: its tag, where it begins, and where its content begins and ends.
#[derive(Clone, Copy)]
struct Tlv {
    tag: u8,
    at: usize,
    start: usize,
    end: usize,
}

/// The element at `at`, which must end by `limit`. Only low tag numbers and definite lengths
/// of up to four bytes: nothing in these structures needs more.
fn tlv(b: &[u8], at: usize, limit: usize) -> Option<Tlv> {
    let tag = *b.get(at)?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let first = *b.get(at + 1)?;
    let (len, head) = match first {
        0..=0x7f => (usize::from(first), 2),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            let bytes = b.get(at + 2..at + 2 + n)?;
            let len = bytes.iter().try_fold(0usize, |a, &x| {
                a.checked_mul(256)?.checked_add(usize::from(x))
            })?;
            (len, 2 + n)
        }
        // Indefinite (BER) or longer than any message we accept.
        _ => return None,
    };
    let start = at + head;
    let end = start.checked_add(len)?;
    (end <= limit).then_some(Tlv {
        tag,
        at,
        start,
        end,
    })
}

/// The element at `at` with tag `tag`.
fn expect(b: &[u8], at: usize, limit: usize, tag: u8) -> Option<Tlv> {
    tlv(b, at, limit).filter(|t| t.tag == tag)
}

/// What decryption needs from the ContentInfo in `der`, and where its encrypted content lies;
/// `None` when the object is not an EnvelopedData or AuthEnvelopedData in the plain shape.
pub(crate) fn locate(der: &[u8]) -> Option<(Envelope, Range<usize>)> {
    let ci = expect(der, 0, der.len(), 0x30).filter(|t| t.end == der.len())?;
    let oid = expect(der, ci.start, ci.end, 0x06)?;
    let content_type = &der[oid.start..oid.end];
    let auth = if content_type == oids::ID_AUTH_ENVELOPED_DATA.as_bytes() {
        true
    } else if content_type == oids::ID_ENVELOPED_DATA.as_bytes() {
        false
    } else {
        return None;
    };
    let explicit = expect(der, oid.end, ci.end, 0xA0).filter(|t| t.end == ci.end)?;
    let body = expect(der, explicit.start, explicit.end, 0x30).filter(|t| t.end == explicit.end)?;
    let version = expect(der, body.start, body.end, 0x02)?;
    CmsVersion::from_der(&der[version.at..version.end]).ok()?;
    // A SET here: originator information ([0]) is left to the full decoder.
    let ris = expect(der, version.end, body.end, 0x31)?;
    let recip_infos = RecipientInfos::from_der(&der[ris.at..ris.end]).ok()?;
    let eci = expect(der, ris.end, body.end, 0x30)?;
    let inner_type = expect(der, eci.start, eci.end, 0x06)?;
    <const_oid::ObjectIdentifier>::from_der(&der[inner_type.at..inner_type.end]).ok()?;
    let alg = expect(der, inner_type.end, eci.end, 0x30)?;
    let alg_id = AlgorithmIdentifierOwned::from_der(&der[alg.at..alg.end]).ok()?;
    // [0] IMPLICIT OCTET STRING, primitive: the ciphertext in one piece.
    let content = expect(der, alg.end, eci.end, 0x80).filter(|t| t.end == eci.end)?;
    let mac = if auth {
        // Straight after the content: no authenticated attributes, and nothing after the MAC.
        let mac = expect(der, eci.end, body.end, 0x04).filter(|t| t.end == body.end)?;
        Some(der[mac.start..mac.end].to_vec())
    } else if eci.end == body.end {
        None
    } else {
        // Unprotected attributes: the full decoder reads them.
        return None;
    };
    Some((
        Envelope {
            recip_infos,
            alg: alg_id,
            mac,
            aad: Vec::new(),
        },
        content.start..content.end,
    ))
}

/// What decryption needs from an EnvelopedData or AuthEnvelopedData, besides the ciphertext.
pub(crate) struct Envelope {
    /// Who the content key was encrypted to.
    pub recip_infos: RecipientInfos,
    /// The content-encryption algorithm with its IV or GCM parameters.
    pub alg: spki::AlgorithmIdentifierOwned,
    /// The AuthEnvelopedData MAC (the GCM tag).
    pub mac: Option<Vec<u8>>,
    /// The AuthEnvelopedData authenticated attributes, as MACed.
    pub aad: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::{locate, tlv};
    use crate::enveloped::{open, open_der, parse_content_info, seal_base64, Layer};
    use crate::recipient::KeyTransport;
    use postern_core::{ContentCipher, Policy};

    type Outcome = Result<(Vec<u8>, String), String>;

    /// Every one-byte change of the structure around the ciphertext (four replacement values
    /// at each position) that the walk still takes opens exactly as the full decoder opens it:
    /// the same plaintext and report, or the same error.
    #[test]
    fn in_place_reads_every_one_byte_change_as_the_full_decoder_does() {
        use base64::Engine;
        let (me, cert) = crate::enveloped::tests::bob();
        let ids = [me];
        let policy = Policy::default();
        let fast = |der: Vec<u8>| -> Outcome {
            match open_der(der, &ids, &policy) {
                Ok(Layer::Opened(p, e)) => Ok((p, format!("{e:?}"))),
                Ok(Layer::Signed(_)) => Err("signed".into()),
                Err(e) => Err(e.to_string()),
            }
        };
        let full = |der: &[u8]| -> Outcome {
            parse_content_info(der)
                .and_then(|ci| open(ci, &ids, &policy))
                .map(|(p, e)| (p, format!("{e:?}")))
                .map_err(|e| e.to_string())
        };
        for (cipher, kt) in [
            (ContentCipher::Aes256Cbc, KeyTransport::RsaPkcs1v15),
            (ContentCipher::Aes128Gcm, KeyTransport::RsaOaepSha256),
        ] {
            let mut lines = Vec::new();
            let content = b"Content-Type: text/plain\r\n\r\nlab value 4.1\r\n".to_vec();
            let now = std::time::SystemTime::now();
            seal_base64(
                &mut lines,
                None,
                content.clone(),
                &cert,
                cipher,
                kt,
                &policy,
                now,
            )
            .unwrap();
            lines.retain(|b| !b.is_ascii_whitespace());
            let der = base64::engine::general_purpose::STANDARD
                .decode(&lines)
                .unwrap();
            let (_, at) = locate(&der).expect("our own output is read in place");
            assert_eq!(fast(der.clone()), full(&der));
            assert_eq!(fast(der.clone()).unwrap().0, content);
            let (mut taken, mut opened) = (0, 0);
            for i in (0..at.start).chain(at.end..der.len()) {
                for v in [der[i] ^ 1, der[i] ^ 0x80, 0, 0xff] {
                    let mut changed = der.clone();
                    changed[i] = v;
                    if locate(&changed).is_none() {
                        continue; // the full decoder's alone
                    }
                    taken += 1;
                    let (a, b) = (fast(changed.clone()), full(&changed));
                    assert_eq!(a, b, "{cipher}: byte {i} as {v:#04x}");
                    opened += usize::from(a.is_ok());
                }
            }
            // The walk is not a formality: many changes go through it, some still open.
            assert!(
                taken > 300 && opened > 10,
                "{cipher}: {taken} taken, {opened} opened"
            );
        }
    }

    #[test]
    fn lengths() {
        assert_eq!(
            tlv(&[0x04, 0x01, 0xAA], 0, 3).map(|t| (t.start, t.end)),
            Some((2, 3))
        );
        assert_eq!(
            tlv(&[0x04, 0x81, 0x01, 0xAA], 0, 4).map(|t| (t.start, t.end)),
            Some((3, 4))
        );
        // Past the limit, truncated length bytes, indefinite length, high tag number.
        assert!(tlv(&[0x04, 0x02, 0xAA], 0, 3).is_none());
        assert!(tlv(&[0x04, 0x82, 0x01], 0, 3).is_none());
        assert!(tlv(&[0x30, 0x80, 0x00, 0x00], 0, 4).is_none());
        assert!(tlv(&[0x1f, 0x01, 0x00], 0, 3).is_none());
        assert!(tlv(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff], 0, 6).is_none());
        assert!(tlv(&[], 0, 0).is_none());
    }
}
