//! Signing keys: RSA (PKCS#8 or PKCS#1 PEM, as `openssl genrsa`/`genpkey` and `opendkim-genkey`
//! write them) and Ed25519 (PKCS#8 PEM, `openssl genpkey -algorithm ed25519`).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use zeroize::Zeroizing;

/// The smallest RSA key we sign with. RFC 8301 lets signers use 1024 bits and recommends 2048;
/// we take 2048, the floor of current key-size guidance (and the smallest aws-lc-rs signs with).
pub const MIN_RSA_BITS: usize = 2048;

/// A DKIM signing key.
pub struct DkimKey {
    kind: Kind,
    /// `k=` and `p=` of the DNS record, made when the key is read (so printing it cannot fail).
    record: (&'static str, String),
}

enum Kind {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key: its kind and size only.
        match &self.kind {
            Kind::Rsa(k) => write!(f, "DkimKey(rsa, {} bits)", k.public_modulus_len() * 8),
            Kind::Ed25519(_) => f.write_str("DkimKey(ed25519)"),
        }
    }
}

/// Why a key cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not a PEM private key we read.
    #[error("not a PEM private key (PKCS#8 \"PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\")")]
    NotPem,
    /// PEM, but not an RSA or Ed25519 key, or damaged.
    #[error("not an RSA or Ed25519 private key, or a damaged one: {0}")]
    Unreadable(String),
    /// An RSA key shorter than [`MIN_RSA_BITS`].
    #[error("an RSA key under {MIN_RSA_BITS} bits: make a 2048-bit key and publish it under a new selector")]
    TooShort,
}

impl DkimKey {
    /// Reads a PEM private key.
    pub fn from_pem(pem: &[u8]) -> Result<DkimKey, KeyError> {
        let text = std::str::from_utf8(pem).map_err(|_| KeyError::NotPem)?;
        let (label, der) = pem_block(text).ok_or(KeyError::NotPem)?;
        let kind = match label {
            "RSA PRIVATE KEY" => Kind::Rsa(RsaKeyPair::from_der(&der).map_err(rsa_error)?),
            "PRIVATE KEY" => match RsaKeyPair::from_pkcs8(&der) {
                Ok(k) => Kind::Rsa(k),
                Err(rsa) if rsa.description_() == "TooSmall" => return Err(KeyError::TooShort),
                Err(rsa) => Kind::Ed25519(
                    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                        .map_err(|e| KeyError::Unreadable(format!("{rsa}; {e}")))?,
                ),
            },
            _ => return Err(KeyError::NotPem),
        };
        if let Kind::Rsa(k) = &kind {
            if k.public_modulus_len() * 8 < MIN_RSA_BITS {
                return Err(KeyError::TooShort);
            }
        }
        let record = public_record(&kind)?;
        Ok(DkimKey { kind, record })
    }

    /// `rsa-sha256` or `ed25519-sha256`.
    pub fn algorithm(&self) -> &'static str {
        match self.kind {
            Kind::Rsa(_) => "rsa-sha256",
            Kind::Ed25519(_) => "ed25519-sha256",
        }
    }

    /// The public key as the DNS record's `k=` and `p=` carry it.
    pub(crate) fn public_record(&self) -> &(&'static str, String) {
        &self.record
    }

    /// Signs the canonical header data (RFC 6376 §3.7): RSASSA-PKCS1-v1_5 over its SHA-256, or
    /// Ed25519 over its SHA-256 (ed25519-sha256 signs the hash, RFC 8463 §3).
    pub(crate) fn sign_data(&self, data: &[u8]) -> Option<Vec<u8>> {
        match &self.kind {
            Kind::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                let rng = aws_lc_rs::rand::SystemRandom::new();
                k.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &rng,
                    data,
                    &mut sig,
                )
                .ok()?;
                Some(sig)
            }
            Kind::Ed25519(k) => {
                let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
                Some(k.sign(hash.as_ref()).as_ref().to_vec())
            }
        }
    }
}

/// `k=` and `p=` for a key (an empty `p=` would publish a revoked key: an error instead).
fn public_record(kind: &Kind) -> Result<(&'static str, String), KeyError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match kind {
        Kind::Rsa(k) => {
            let der = k
                .public_key()
                .as_der()
                .map_err(|e| KeyError::Unreadable(format!("its public key: {e}")))?;
            Ok(("rsa", b64.encode(der.as_ref())))
        }
        Kind::Ed25519(k) => Ok(("ed25519", b64.encode(k.public_key().as_ref()))),
    }
}

/// aws-lc-rs refuses RSA keys under 2048 bits as "TooSmall".
fn rsa_error(e: aws_lc_rs::error::KeyRejected) -> KeyError {
    if e.description_() == "TooSmall" {
        KeyError::TooShort
    } else {
        KeyError::Unreadable(e.to_string())
    }
}

/// The first PEM block: its label and its bytes.
fn pem_block(text: &str) -> Option<(&str, Zeroizing<Vec<u8>>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = text.get(start + 11..)?;
    let label_end = rest.find("-----")?;
    let label = rest.get(..label_end)?;
    let body = rest.get(label_end + 5..)?;
    let end = body.find(&format!("-----END {label}-----"))?;
    let b64: Zeroizing<String> = Zeroizing::new(
        body.get(..end)?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    );
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .ok()?;
    Some((label, Zeroizing::new(der)))
}
