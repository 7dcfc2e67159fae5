//! Mapping between OIDs and the core's algorithm names, in one place, matched exhaustively.

use const_oid::ObjectIdentifier as Oid;
use postern_core::{ContentCipher, DigestAlgorithm, Error};

use crate::oids;

/// A readable name for an OID, for error messages.
pub fn oid_name(oid: &Oid) -> String {
    let known: &[(Oid, &str)] = &[
        (oids::DES_EDE3_CBC, "3DES-CBC (des-ede3-cbc)"),
        (oids::RC2_CBC, "RC2-CBC"),
        (oids::DES_CBC, "DES-CBC"),
        (oids::CHACHA20_POLY1305, "ChaCha20-Poly1305"),
        (oids::SHA1, "SHA-1"),
        (oids::MD5, "MD5"),
        (oids::DSA, "DSA"),
        (oids::DSA_WITH_SHA1, "DSA-with-SHA1"),
        (oids::X25519, "X25519"),
        (oids::ED25519, "Ed25519"),
        (oids::SHA1_WITH_RSA, "sha1WithRSAEncryption"),
        (oids::MD5_WITH_RSA, "md5WithRSAEncryption"),
    ];
    known
        .iter()
        .find(|(o, _)| o == oid)
        .map(|(_, n)| n.to_string())
        .or_else(|| const_oid::db::DB.by_oid(oid).map(str::to_string))
        .unwrap_or_else(|| oid.to_string())
}

/// The content cipher named by a CMS content-encryption OID.
pub fn cipher_from_oid(oid: &Oid) -> Result<ContentCipher, Error> {
    let c = if *oid == oids::AES128_CBC {
        ContentCipher::Aes128Cbc
    } else if *oid == oids::AES192_CBC {
        ContentCipher::Aes192Cbc
    } else if *oid == oids::AES256_CBC {
        ContentCipher::Aes256Cbc
    } else if *oid == oids::AES128_GCM {
        ContentCipher::Aes128Gcm
    } else if *oid == oids::AES256_GCM {
        ContentCipher::Aes256Gcm
    } else if *oid == oids::CHACHA20_POLY1305 {
        ContentCipher::ChaCha20Poly1305
    } else if *oid == oids::DES_EDE3_CBC {
        ContentCipher::TripleDesCbc
    } else if *oid == oids::RC2_CBC {
        ContentCipher::Rc2Cbc
    } else if *oid == oids::DES_CBC {
        ContentCipher::DesCbc
    } else {
        return Err(Error::UnsupportedAlgorithm(format!(
            "content encryption {}",
            oid_name(oid)
        )));
    };
    Ok(c)
}

/// The CMS OID for a content cipher this backend can produce.
pub fn cipher_oid(c: ContentCipher) -> Result<Oid, Error> {
    match c {
        ContentCipher::Aes128Cbc => Ok(oids::AES128_CBC),
        ContentCipher::Aes192Cbc => Ok(oids::AES192_CBC),
        ContentCipher::Aes256Cbc => Ok(oids::AES256_CBC),
        ContentCipher::Aes128Gcm => Ok(oids::AES128_GCM),
        ContentCipher::Aes256Gcm => Ok(oids::AES256_GCM),
        ContentCipher::ChaCha20Poly1305
        | ContentCipher::Aes128Ocb
        | ContentCipher::Aes256Ocb
        | ContentCipher::Aes128Cfb
        | ContentCipher::Aes192Cfb
        | ContentCipher::Aes256Cfb
        | ContentCipher::TripleDesCbc
        | ContentCipher::DesCbc
        | ContentCipher::Rc2Cbc => Err(Error::UnsupportedAlgorithm(format!(
            "{c} is not offered by the S/MIME backend"
        ))),
    }
}

/// The digest named by an OID.
pub fn digest_from_oid(oid: &Oid) -> Result<DigestAlgorithm, Error> {
    if *oid == oids::SHA256 {
        Ok(DigestAlgorithm::Sha256)
    } else if *oid == oids::SHA384 {
        Ok(DigestAlgorithm::Sha384)
    } else if *oid == oids::SHA512 {
        Ok(DigestAlgorithm::Sha512)
    } else if *oid == oids::SHA224 {
        Ok(DigestAlgorithm::Sha224)
    } else if *oid == oids::SHA1 {
        Ok(DigestAlgorithm::Sha1)
    } else if *oid == oids::MD5 {
        Ok(DigestAlgorithm::Md5)
    } else {
        Err(Error::UnsupportedAlgorithm(format!(
            "digest {}",
            oid_name(oid)
        )))
    }
}

/// The OID of a digest.
pub fn digest_oid(d: DigestAlgorithm) -> Oid {
    match d {
        DigestAlgorithm::Md5 => oids::MD5,
        DigestAlgorithm::Sha1 => oids::SHA1,
        DigestAlgorithm::Sha224 => oids::SHA224,
        DigestAlgorithm::Sha256 => oids::SHA256,
        DigestAlgorithm::Sha384 => oids::SHA384,
        DigestAlgorithm::Sha512 => oids::SHA512,
    }
}
