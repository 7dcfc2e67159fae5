//! Which algorithms are acceptable. Shared by both standards and passed explicitly.
//!
//! The default refuses what is broken or too weak for protected health information: RSA keys
//! under 2048 bits, SHA-1 (and MD5) signatures, DES, 3DES and RC2 content encryption.

use std::fmt;

use crate::Error;

/// Symmetric content-encryption algorithms, as both standards name them.
///
/// Deliberately not `#[non_exhaustive]`: backends match it exhaustively, so adding an algorithm is
/// a breaking change that forces every backend to decide what it does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentCipher {
    /// AES-128 in CBC mode (S/MIME EnvelopedData).
    Aes128Cbc,
    /// AES-192 in CBC mode.
    Aes192Cbc,
    /// AES-256 in CBC mode (what Outlook reads; the S/MIME default).
    Aes256Cbc,
    /// AES-128 in GCM mode (S/MIME AuthEnvelopedData, RFC 5084).
    Aes128Gcm,
    /// AES-256 in GCM mode.
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8103).
    ChaCha20Poly1305,
    /// AES-128 in OCB mode (OpenPGP SEIPDv2).
    Aes128Ocb,
    /// AES-256 in OCB mode (OpenPGP SEIPDv2).
    Aes256Ocb,
    /// AES-128 in OpenPGP CFB mode (SEIPDv1).
    Aes128Cfb,
    /// AES-192 in OpenPGP CFB mode (SEIPDv1).
    Aes192Cfb,
    /// AES-256 in OpenPGP CFB mode (SEIPDv1).
    Aes256Cfb,
    /// Triple DES (weak: refused by default).
    TripleDesCbc,
    /// Single DES (broken: refused by default).
    DesCbc,
    /// RC2 (broken: refused by default).
    Rc2Cbc,
}

impl ContentCipher {
    /// Short lower-case name used in reports and headers, e.g. `aes256-cbc`.
    pub fn name(self) -> &'static str {
        match self {
            ContentCipher::Aes128Cbc => "aes128-cbc",
            ContentCipher::Aes192Cbc => "aes192-cbc",
            ContentCipher::Aes256Cbc => "aes256-cbc",
            ContentCipher::Aes128Gcm => "aes128-gcm",
            ContentCipher::Aes256Gcm => "aes256-gcm",
            ContentCipher::ChaCha20Poly1305 => "chacha20-poly1305",
            ContentCipher::Aes128Ocb => "aes128-ocb",
            ContentCipher::Aes256Ocb => "aes256-ocb",
            ContentCipher::Aes128Cfb => "aes128-cfb",
            ContentCipher::Aes192Cfb => "aes192-cfb",
            ContentCipher::Aes256Cfb => "aes256-cfb",
            ContentCipher::TripleDesCbc => "3des-cbc",
            ContentCipher::DesCbc => "des-cbc",
            ContentCipher::Rc2Cbc => "rc2-cbc",
        }
    }

    /// Parses the names returned by [`ContentCipher::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        use ContentCipher::*;
        [
            Aes128Cbc,
            Aes192Cbc,
            Aes256Cbc,
            Aes128Gcm,
            Aes256Gcm,
            ChaCha20Poly1305,
            Aes128Ocb,
            Aes256Ocb,
            Aes128Cfb,
            Aes192Cfb,
            Aes256Cfb,
            TripleDesCbc,
            DesCbc,
            Rc2Cbc,
        ]
        .into_iter()
        .find(|c| c.name().eq_ignore_ascii_case(s))
    }

    /// True for authenticated (AEAD) modes.
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            ContentCipher::Aes128Gcm
                | ContentCipher::Aes256Gcm
                | ContentCipher::ChaCha20Poly1305
                | ContentCipher::Aes128Ocb
                | ContentCipher::Aes256Ocb
        )
    }
}

impl fmt::Display for ContentCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Message digests used in signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// MD5 (broken).
    Md5,
    /// SHA-1 (broken for signatures).
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// Lower-case name, e.g. `sha256` (the RFC 8551 `micalg` spelling).
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "md5",
            DigestAlgorithm::Sha1 => "sha-1",
            DigestAlgorithm::Sha224 => "sha-224",
            DigestAlgorithm::Sha256 => "sha-256",
            DigestAlgorithm::Sha384 => "sha-384",
            DigestAlgorithm::Sha512 => "sha-512",
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Signature algorithms, with the digest they are used with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1(DigestAlgorithm),
    /// RSASSA-PSS (MGF1 with the same digest).
    RsaPss(DigestAlgorithm),
    /// ECDSA.
    Ecdsa(DigestAlgorithm),
    /// Ed25519 (pure EdDSA).
    Ed25519,
    /// DSA (obsolete).
    Dsa(DigestAlgorithm),
}

impl SignatureAlgorithm {
    /// The digest the signature is computed over, if the algorithm names one.
    pub fn digest(self) -> Option<DigestAlgorithm> {
        match self {
            SignatureAlgorithm::RsaPkcs1(d)
            | SignatureAlgorithm::RsaPss(d)
            | SignatureAlgorithm::Ecdsa(d)
            | SignatureAlgorithm::Dsa(d) => Some(d),
            SignatureAlgorithm::Ed25519 => None,
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureAlgorithm::RsaPkcs1(d) => write!(f, "rsa-pkcs1v15-{d}"),
            SignatureAlgorithm::RsaPss(d) => write!(f, "rsa-pss-{d}"),
            SignatureAlgorithm::Ecdsa(d) => write!(f, "ecdsa-{d}"),
            SignatureAlgorithm::Ed25519 => f.write_str("ed25519"),
            SignatureAlgorithm::Dsa(d) => write!(f, "dsa-{d}"),
        }
    }
}

/// The security policy: what the gateway accepts when it seals and opens.
///
/// A plain value, passed explicitly to every seal and open. [`Policy::default`] is strict;
/// relaxing it is a visible, deliberate act in configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Smallest RSA modulus accepted, in bits (default 2048).
    pub min_rsa_bits: usize,
    /// Accept SHA-1 (and MD5) in signatures (default false).
    pub allow_sha1_signatures: bool,
    /// Accept 3DES content encryption when opening (default false). DES and RC2 are never accepted.
    pub allow_triple_des: bool,
    /// Accept DSA signatures (default false).
    pub allow_dsa: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_rsa_bits: 2048,
            allow_sha1_signatures: false,
            allow_triple_des: false,
            allow_dsa: false,
        }
    }
}

impl Policy {
    /// Checks a content-encryption algorithm.
    pub fn check_cipher(&self, cipher: ContentCipher) -> Result<(), Error> {
        let refuse = |reason: &str| {
            Err(Error::WeakAlgorithm {
                algorithm: cipher.name().to_string(),
                reason: reason.to_string(),
            })
        };
        match cipher {
            ContentCipher::DesCbc => refuse("56-bit key, broken"),
            ContentCipher::Rc2Cbc => refuse("RC2 is broken (RFC 8551 forbids it)"),
            ContentCipher::TripleDesCbc if !self.allow_triple_des => {
                refuse("64-bit block, deprecated (RFC 8551)")
            }
            ContentCipher::TripleDesCbc
            | ContentCipher::Aes128Cbc
            | ContentCipher::Aes192Cbc
            | ContentCipher::Aes256Cbc
            | ContentCipher::Aes128Gcm
            | ContentCipher::Aes256Gcm
            | ContentCipher::ChaCha20Poly1305
            | ContentCipher::Aes128Ocb
            | ContentCipher::Aes256Ocb
            | ContentCipher::Aes128Cfb
            | ContentCipher::Aes192Cfb
            | ContentCipher::Aes256Cfb => Ok(()),
        }
    }

    /// Checks an RSA key size.
    pub fn check_rsa_bits(&self, bits: usize) -> Result<(), Error> {
        if bits < self.min_rsa_bits {
            return Err(Error::WeakAlgorithm {
                algorithm: format!("RSA-{bits}"),
                reason: format!("RSA keys must be at least {} bits", self.min_rsa_bits),
            });
        }
        Ok(())
    }

    /// Checks a signature algorithm (and its digest).
    pub fn check_signature(&self, alg: SignatureAlgorithm) -> Result<(), Error> {
        if matches!(alg, SignatureAlgorithm::Dsa(_)) && !self.allow_dsa {
            return Err(Error::WeakAlgorithm {
                algorithm: alg.to_string(),
                reason: "DSA is obsolete (RFC 8551)".into(),
            });
        }
        match alg.digest() {
            Some(d) => self.check_digest(d),
            None => Ok(()),
        }
    }

    /// Checks a digest used in a signature.
    pub fn check_digest(&self, d: DigestAlgorithm) -> Result<(), Error> {
        match d {
            DigestAlgorithm::Md5 => Err(Error::WeakAlgorithm {
                algorithm: d.to_string(),
                reason: "MD5 is broken".into(),
            }),
            DigestAlgorithm::Sha1 if !self.allow_sha1_signatures => Err(Error::WeakAlgorithm {
                algorithm: d.to_string(),
                reason: "SHA-1 signatures are forgeable (chosen-prefix collisions)".into(),
            }),
            DigestAlgorithm::Sha1
            | DigestAlgorithm::Sha224
            | DigestAlgorithm::Sha256
            | DigestAlgorithm::Sha384
            | DigestAlgorithm::Sha512 => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_refuses_weak_algorithms() {
        let p = Policy::default();
        assert!(p.check_cipher(ContentCipher::TripleDesCbc).is_err());
        assert!(p.check_cipher(ContentCipher::Rc2Cbc).is_err());
        assert!(p.check_cipher(ContentCipher::DesCbc).is_err());
        assert!(p.check_cipher(ContentCipher::Aes256Cbc).is_ok());
        assert!(p.check_rsa_bits(1024).is_err());
        assert!(p.check_rsa_bits(2048).is_ok());
        let e = p
            .check_signature(SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha1))
            .unwrap_err();
        assert!(e.to_string().contains("sha-1"), "{e}");
        assert!(p
            .check_signature(SignatureAlgorithm::RsaPss(DigestAlgorithm::Sha256))
            .is_ok());
    }

    #[test]
    fn relaxed_policy_is_explicit_but_never_allows_des_or_rc2() {
        let p = Policy {
            allow_triple_des: true,
            allow_sha1_signatures: true,
            ..Policy::default()
        };
        assert!(p.check_cipher(ContentCipher::TripleDesCbc).is_ok());
        assert!(p.check_cipher(ContentCipher::Rc2Cbc).is_err());
        assert!(p.check_digest(DigestAlgorithm::Md5).is_err());
    }

    #[test]
    fn cipher_names_round_trip() {
        for c in [
            ContentCipher::Aes256Cbc,
            ContentCipher::Aes128Gcm,
            ContentCipher::TripleDesCbc,
        ] {
            assert_eq!(ContentCipher::from_name(c.name()), Some(c));
        }
    }
}
