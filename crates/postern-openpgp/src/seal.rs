//! Producing OpenPGP messages with sequoia's streaming writers (RFC 9580 §10), and the PGP/MIME
//! wrapping around them (RFC 3156 §4 and §5).

use std::io::Write;
use std::time::SystemTime;

use openpgp::crypto::KeyPair;
use openpgp::serialize::stream::{Armorer, Encryptor, LiteralWriter, Message, Recipient, Signer};
use openpgp::types::HashAlgorithm;
use openpgp::Cert;
use postern_core::{mime, Error, Policy};
use sequoia_openpgp as openpgp;

use crate::armor::ArmorWriter;
use crate::keys;

fn backend(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("{what}: {e}"))
}

/// How much plaintext goes to sequoia's writer at a time.
const WRITE: usize = 64 * 1024;

/// Encrypts (and, with `signer`, signs inside the same OpenPGP message) the entity given in
/// `pieces` to every valid encryption key of every certificate, appending ASCII armor with
/// CRLF line endings to `out` as sequoia writes the packets: neither the entity nor the armor
/// is a buffer of its own. With a `sink`, the armor goes on to it as it fills (see
/// [`ArmorWriter`]), and what `out` held before with it.
///
/// The container version follows what the recipients advertise: SEIPDv2 (AEAD) only when every
/// recipient certificate supports it, else SEIPDv1, which GnuPG 2.2 reads.
#[allow(clippy::too_many_arguments)]
pub fn encrypt_into(
    out: &mut Vec<u8>,
    sink: Option<&mut (dyn Write + Send + Sync)>,
    pieces: &[&[u8]],
    certs: &[Cert],
    signer: Option<KeyPair>,
    p: &dyn openpgp::policy::Policy,
    policy: &Policy,
    now: SystemTime,
) -> Result<(), Error> {
    let mut recipients: Vec<Recipient<'_>> = Vec::new();
    for cert in certs {
        for ka in keys::encryption_keys(cert, p, policy, now)? {
            recipients.push(ka.into());
        }
    }
    let mut armor = ArmorWriter::streaming(out, sink);
    let message = Message::new(&mut armor);
    let message = Encryptor::for_recipients(message, recipients)
        .build()
        .map_err(|e| backend("encryptor", e))?;
    let message = match signer {
        Some(kp) => Signer::new(message, kp)
            .and_then(|s| s.hash_algo(HashAlgorithm::SHA256))
            .and_then(|s| s.creation_time(now).build())
            .map_err(|e| backend("signer", e))?,
        None => message,
    };
    let mut literal = LiteralWriter::new(message)
        .build()
        .map_err(|e| backend("literal", e))?;
    // In pieces: handed a whole body at once, sequoia's partial-body writer buffers a chunk of
    // up to 16 MiB of it.
    for piece in pieces {
        for chunk in piece.chunks(WRITE) {
            literal.write_all(chunk).map_err(|e| backend("write", e))?;
        }
    }
    literal.finalize().map_err(|e| backend("finalize", e))?;
    armor.finish();
    Ok(())
}

/// A detached signature over exactly `entity` (binary signature, SHA-256), armored, CRLF.
pub fn detached_signature(entity: &[u8], kp: KeyPair, now: SystemTime) -> Result<Vec<u8>, Error> {
    let mut sink = Vec::new();
    {
        let message = Message::new(&mut sink);
        let message = Armorer::new(message)
            .kind(openpgp::armor::Kind::Signature)
            .build()
            .map_err(|e| backend("armor", e))?;
        let mut signer = Signer::new(message, kp)
            .and_then(|s| s.hash_algo(HashAlgorithm::SHA256))
            .and_then(|s| s.creation_time(now).detached().build())
            .map_err(|e| backend("signer", e))?;
        signer.write_all(entity).map_err(|e| backend("write", e))?;
        signer.finalize().map_err(|e| backend("finalize", e))?;
    }
    Ok(mime::to_crlf(&sink))
}

/// `multipart/encrypted` (RFC 3156 §4) around the armored data that `armor` appends to the
/// buffer it is given: the message is built in one buffer, sized for `content_len` bytes of
/// plaintext, the armor written into its place. With a `sink`, `armor` is given it to hand
/// the buffer on as it fills, the end goes after it, and the result is empty.
pub fn pgp_mime_encrypted(
    outer: &[u8],
    content_len: usize,
    sink: Option<&mut (dyn Write + Send + Sync)>,
    armor: impl FnOnce(&mut Vec<u8>, Option<&mut (dyn Write + Send + Sync)>) -> Result<(), Error>,
) -> Result<Vec<u8>, Error> {
    let b = mime::boundary();
    // Armor: 4/3 of the ciphertext, 65 characters a line plus CR; a little for packets. With
    // a sink, what is handed on at a time.
    let cap = match sink {
        Some(_) => crate::armor::SPILL + 64 * 1024,
        None => outer.len() + content_len / 3 * 4 * 66 / 64 + 2048,
    };
    let mut out = Vec::with_capacity(cap);
    out.extend_from_slice(outer);
    out.extend_from_slice(
        format!(
            "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n \
             boundary=\"{b}\"\r\n\r\nThis is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n\
             \r\n--{b}\r\n\
             Content-Type: application/pgp-encrypted\r\n\
             Content-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\
             \r\n--{b}\r\n\
             Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\
             Content-Description: OpenPGP encrypted message\r\n\
             Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n"
        )
        .as_bytes(),
    );
    let mut sink = sink;
    armor(
        &mut out,
        sink.as_mut()
            .map(|s| &mut **s as &mut (dyn Write + Send + Sync)),
    )?;
    out.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    if let Some(sink) = sink {
        sink.write_all(&out).map_err(|e| backend("write", e))?;
        out.clear();
    }
    Ok(out)
}

/// `multipart/signed` (RFC 3156 §5) around `entity` with an armored detached signature.
pub fn pgp_mime_signed(outer: &[u8], entity: &[u8], armored_sig: &[u8]) -> Vec<u8> {
    let mut sig = b"Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n\
Content-Description: OpenPGP digital signature\r\n\
Content-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n"
        .to_vec();
    sig.extend_from_slice(armored_sig);
    mime::multipart(
        outer,
        "multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"",
        "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)",
        &[entity, &sig],
    )
}
