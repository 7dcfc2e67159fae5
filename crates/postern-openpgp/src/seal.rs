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

use crate::keys;

fn backend(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("{what}: {e}"))
}

/// Encrypts (and, with `signer`, signs inside the same OpenPGP message) `entity` to every valid
/// encryption key of every certificate. Returns ASCII armor with CRLF line endings.
///
/// The container version follows what the recipients advertise: SEIPDv2 (AEAD) only when every
/// recipient certificate supports it, else SEIPDv1, which GnuPG 2.2 reads.
pub fn encrypt(
    entity: &[u8],
    certs: &[Cert],
    signer: Option<KeyPair>,
    p: &dyn openpgp::policy::Policy,
    policy: &Policy,
    now: SystemTime,
) -> Result<Vec<u8>, Error> {
    let mut recipients: Vec<Recipient<'_>> = Vec::new();
    for cert in certs {
        for ka in keys::encryption_keys(cert, p, policy, now)? {
            recipients.push(ka.into());
        }
    }
    let mut sink = Vec::with_capacity(entity.len() * 4 / 3 + 1024);
    {
        let message = Message::new(&mut sink);
        let message = Armorer::new(message)
            .build()
            .map_err(|e| backend("armor", e))?;
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
        literal.write_all(entity).map_err(|e| backend("write", e))?;
        literal.finalize().map_err(|e| backend("finalize", e))?;
    }
    Ok(mime::to_crlf(&sink))
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

/// `multipart/encrypted` (RFC 3156 §4) around an armored OpenPGP message.
pub fn pgp_mime_encrypted(outer: &[u8], armored: &[u8]) -> Vec<u8> {
    let version = b"Content-Type: application/pgp-encrypted\r\n\
Content-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n";
    let mut data = b"Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\
Content-Description: OpenPGP encrypted message\r\n\
Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n"
        .to_vec();
    data.extend_from_slice(armored);
    mime::multipart(
        outer,
        "multipart/encrypted; protocol=\"application/pgp-encrypted\"",
        "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)",
        &[version, &data],
    )
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
