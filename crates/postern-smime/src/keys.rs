//! Certificates and keys: parsing, and the private-key operations behind a small trait.
//!
//! Every private-key operation of the backend goes through [`PrivateKeyOps`], so a key held in an
//! HSM (PKCS#11, a cloud KMS) plugs in without touching CMS code. The software implementation,
//! [`SoftwareKey`], uses aws-lc-rs: its RSA decryption is constant-time (the RustCrypto `rsa`
//! crate's 0.9 line is affected by RUSTSEC-2023-0071, "Marvin").

use std::fmt;

use aws_lc_rs::{agreement, rand::SystemRandom, rsa, signature};
use der::{Decode, Encode};
use postern_core::{DigestAlgorithm, Error, SignatureAlgorithm};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use crate::oids;

/// Parses one or more certificates: PEM (every `CERTIFICATE` block, whatever text surrounds
/// them, and `PKCS7` blocks), a single DER certificate, or a PKCS#7/CMS certificate bundle
/// (`.p7b`, DER or PEM). For a *signed* bundle — a SignedData whose content is itself a bundle,
/// as trust communities publish them — only the inner certificates are returned: the outer
/// ones are the publisher's signing chain, not the bundle's contents.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Certificate>, Error> {
    let certs = parse_certificates_unbounded(bytes)?;
    if certs.len() > MAX_CERTIFICATES {
        return Err(Error::malformed(
            "certificate file",
            format!("more than {MAX_CERTIFICATES} certificates"),
        ));
    }
    Ok(certs)
}

/// The most certificates one file or bundle may hold (a large trust bundle has a few hundred).
pub const MAX_CERTIFICATES: usize = 2000;

fn parse_certificates_unbounded(bytes: &[u8]) -> Result<Vec<Certificate>, Error> {
    if is_pem(bytes) {
        let mut certs = Vec::new();
        for b in pem_blocks(bytes)? {
            if certs.len() > MAX_CERTIFICATES {
                break;
            }
            match b.label.as_str() {
                "CERTIFICATE" | "X509 CERTIFICATE" => certs.push(
                    Certificate::from_der(&b.der)
                        .map_err(|e| Error::malformed("PEM certificate", e))?,
                ),
                "PKCS7" | "CMS" => certs.extend(bundle_certificates(&b.der, 0)?),
                _ => {}
            }
        }
        if certs.is_empty() {
            return Err(Error::malformed("PEM certificate", "no CERTIFICATE block"));
        }
        Ok(certs)
    } else {
        match Certificate::from_der(bytes) {
            Ok(c) => Ok(vec![c]),
            Err(e) => match bundle_certificates(bytes, 0) {
                Ok(certs) if !certs.is_empty() => Ok(certs),
                _ => Err(Error::malformed("DER certificate", e)),
            },
        }
    }
}

/// The certificates of a PKCS#7/CMS SignedData bundle; a bundle nested as the content (a signed
/// bundle) gives its own certificates instead of the outer ones.
fn bundle_certificates(der: &[u8], depth: usize) -> Result<Vec<Certificate>, Error> {
    use cms::cert::CertificateChoices;
    use cms::content_info::ContentInfo;
    use cms::signed_data::SignedData;
    if depth > 2 {
        return Err(Error::malformed("certificate bundle", "nested too deep"));
    }
    let ci = ContentInfo::from_der(der).map_err(|e| Error::malformed("certificate bundle", e))?;
    if ci.content_type != oids::ID_SIGNED_DATA {
        return Err(Error::malformed(
            "certificate bundle",
            "not a PKCS#7 SignedData",
        ));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| Error::malformed("certificate bundle", e))?;
    if let Some(inner) = &sd.encap_content_info.econtent {
        // The content is an OCTET STRING holding the inner bundle.
        if let Ok(octets) = inner.decode_as::<der::asn1::OctetString>() {
            if let Ok(certs) = bundle_certificates(octets.as_bytes(), depth + 1) {
                return Ok(certs);
            }
        }
    }
    Ok(sd
        .certificates
        .map(|set| {
            set.0
                .iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(c) => Some(c.clone()),
                    CertificateChoices::Other(_) => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Is this PEM text rather than DER? DER starts with a SEQUENCE tag (0x30); anything holding
/// an encapsulation boundary is taken as text.
fn is_pem(bytes: &[u8]) -> bool {
    trim_ascii_start(bytes).first() != Some(&0x30) && bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// One PEM block: its label and decoded contents (zeroised: it may be a private key).
struct PemBlock {
    label: String,
    der: Zeroizing<Vec<u8>>,
}

/// Every PEM block in `bytes`, read as RFC 7468 §2 asks of parsers: text before, between and
/// after the blocks is ignored (the `Bag Attributes` lines `openssl pkcs12` writes, the text
/// dump `openssl ca` writes), and so are line length, CRLF or LF, and whitespace at line ends.
/// A block with RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`) is an encrypted legacy key, which
/// is refused by name rather than misread.
fn pem_blocks(bytes: &[u8]) -> Result<Vec<PemBlock>, Error> {
    use base64::Engine;
    let mut blocks = Vec::new();
    let mut open: Option<(String, Zeroizing<Vec<u8>>)> = None;
    for line in bytes.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        match &mut open {
            None => {
                let Some(label) = line
                    .strip_prefix(b"-----BEGIN ")
                    .and_then(|l| l.strip_suffix(b"-----"))
                else {
                    continue;
                };
                let label = std::str::from_utf8(label)
                    .map_err(|_| Error::malformed("PEM", "label is not text"))?;
                open = Some((label.to_string(), Zeroizing::new(Vec::new())));
            }
            Some((label, body)) => {
                if let Some(end) = line
                    .strip_prefix(b"-----END ")
                    .and_then(|l| l.strip_suffix(b"-----"))
                {
                    if end != label.as_bytes() {
                        return Err(Error::malformed(
                            "PEM",
                            format!("-----BEGIN {label}----- closed by another label"),
                        ));
                    }
                    let mut der = Zeroizing::new(Vec::new());
                    base64::engine::general_purpose::STANDARD
                        .decode_vec(&body[..], &mut der)
                        .map_err(|e| Error::malformed("PEM", format!("{label}: {e}")))?;
                    blocks.push(PemBlock {
                        label: std::mem::take(label),
                        der,
                    });
                    open = None;
                } else if line.contains(&b':') {
                    return Err(Error::InvalidRequest(format!(
                        "{label} has PEM headers (a legacy encrypted key?); decrypt it first \
                         (openssl pkey -in key.pem -out plain.pem)"
                    )));
                } else {
                    body.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
                }
            }
        }
    }
    if let Some((label, _)) = open {
        return Err(Error::malformed(
            "PEM",
            format!("no -----END {label}----- line"),
        ));
    }
    Ok(blocks)
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// A public key taken from a certificate, in the form the primitives want.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA: the whole SubjectPublicKeyInfo DER, and the modulus size.
    Rsa {
        /// DER SubjectPublicKeyInfo.
        spki: Vec<u8>,
        /// Modulus length in bits.
        bits: usize,
    },
    /// ECDSA/ECDH on P-256: the uncompressed point.
    P256(Vec<u8>),
    /// ECDSA on P-384: the uncompressed point.
    P384(Vec<u8>),
    /// Ed25519: the 32-byte key.
    Ed25519(Vec<u8>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicKey::Rsa { bits, .. } => write!(f, "RSA-{bits}"),
            PublicKey::P256(_) => f.write_str("EC-P256"),
            PublicKey::P384(_) => f.write_str("EC-P384"),
            PublicKey::Ed25519(_) => f.write_str("Ed25519"),
        }
    }
}

impl PublicKey {
    /// Extracts the public key of `cert`.
    pub fn from_certificate(cert: &Certificate) -> Result<Self, Error> {
        let spki = cert.tbs_certificate().subject_public_key_info();
        let alg = spki.algorithm.oid;
        let key_bytes = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| Error::malformed("certificate", "public key has unused bits"))?;
        if alg == oids::RSA_ENCRYPTION || alg == oids::RSASSA_PSS {
            let der = spki
                .to_der()
                .map_err(|e| Error::malformed("certificate", e))?;
            // Read the size ourselves: aws-lc refuses small keys outright, and the policy
            // should be the one to say "RSA-1024 is too weak".
            #[derive(der::Sequence)]
            struct RsaPublicKey<'a> {
                modulus: der::asn1::UintRef<'a>,
                exponent: der::asn1::UintRef<'a>,
            }
            let rsa = RsaPublicKey::from_der(key_bytes)
                .map_err(|e| Error::malformed("RSA public key", e))?;
            let _ = rsa.exponent;
            let m = rsa.modulus.as_bytes();
            let bits = match m.first() {
                Some(&top) => m.len() * 8 - top.leading_zeros() as usize,
                None => 0,
            };
            Ok(PublicKey::Rsa { spki: der, bits })
        } else if alg == oids::EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
            match curve {
                Some(c) if c == oids::SECP256R1 => Ok(PublicKey::P256(key_bytes.to_vec())),
                Some(c) if c == oids::SECP384R1 => Ok(PublicKey::P384(key_bytes.to_vec())),
                other => Err(Error::UnsupportedAlgorithm(format!(
                    "elliptic curve {}",
                    other
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "(none)".into())
                ))),
            }
        } else if alg == oids::ED25519 {
            Ok(PublicKey::Ed25519(key_bytes.to_vec()))
        } else {
            Err(Error::UnsupportedAlgorithm(format!(
                "public key algorithm {}",
                crate::names::oid_name(&alg)
            )))
        }
    }

    /// True when both describe the same key, however the SubjectPublicKeyInfo was encoded.
    pub fn same_key(&self, other: &PublicKey) -> bool {
        match (self, other) {
            (PublicKey::Rsa { spki: a, .. }, PublicKey::Rsa { spki: b, .. }) => {
                let bits = |d: &[u8]| {
                    spki::SubjectPublicKeyInfoRef::from_der(d)
                        .ok()
                        .and_then(|s| s.subject_public_key.as_bytes().map(<[u8]>::to_vec))
                };
                bits(a).is_some() && bits(a) == bits(b)
            }
            (a, b) => a == b,
        }
    }

    /// Human name, e.g. `RSA-3072`.
    pub fn describe(&self) -> String {
        format!("{self:?}")
    }
}

/// RSA encryption padding for key transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaPadding {
    /// RSAES-PKCS1-v1_5 (RFC 8017 §7.2): what every S/MIME client reads.
    Pkcs1v15,
    /// RSAES-OAEP (RFC 8017 §7.1, RFC 3560) with this hash for both OAEP and MGF1.
    Oaep(DigestAlgorithm),
}

/// The private-key operations S/MIME needs. Implement it to keep keys in an HSM.
pub trait PrivateKeyOps: Send + Sync + fmt::Debug {
    /// The matching public key (to check a certificate belongs to this key).
    fn public_key(&self) -> &PublicKey;
    /// RSA key transport: decrypt a content-encryption key.
    fn rsa_decrypt(
        &self,
        padding: RsaPadding,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error>;
    /// ECDH: the shared secret Z with the originator's uncompressed point.
    fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error>;
    /// Sign `data` (the signature algorithm hashes it).
    fn sign(&self, alg: SignatureAlgorithm, data: &[u8]) -> Result<Vec<u8>, Error>;
}

/// A private key held in process memory, operated by aws-lc-rs.
pub struct SoftwareKey {
    public: PublicKey,
    inner: SoftwareKeyInner,
}

enum SoftwareKeyInner {
    Rsa {
        pkcs1: rsa::Pkcs1PrivateDecryptingKey,
        oaep: rsa::OaepPrivateDecryptingKey,
        signer: signature::RsaKeyPair,
    },
    P256 {
        ecdh: agreement::PrivateKey,
        signer: signature::EcdsaKeyPair,
    },
}

impl fmt::Debug for SoftwareKey {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SoftwareKey({:?})", self.public)
    }
}

impl SoftwareKey {
    /// Loads a private key: PEM (`PRIVATE KEY` PKCS#8, `RSA PRIVATE KEY` PKCS#1, `EC PRIVATE KEY`
    /// SEC1) or DER (PKCS#8).
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, Error> {
        let (label, der) = if is_pem(bytes) {
            find_pem_key(bytes)?
        } else {
            ("PRIVATE KEY".to_string(), Zeroizing::new(bytes.to_vec()))
        };
        match label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8(&der),
            "RSA PRIVATE KEY" => Self::from_pkcs8(&rsa_pkcs1_to_pkcs8(&der)?),
            "EC PRIVATE KEY" => Self::from_ec(&der),
            "ENCRYPTED PRIVATE KEY" => Err(Error::InvalidRequest(
                "encrypted private keys are not supported; decrypt it into the key store".into(),
            )),
            other => Err(Error::malformed(
                "private key",
                format!("unexpected PEM label {other:?}"),
            )),
        }
    }

    fn from_pkcs8(der: &[u8]) -> Result<Self, Error> {
        // aws-lc parses PKCS#8 itself; try RSA, then EC, rather than parse the structure twice.
        let first = match rsa::PrivateDecryptingKey::from_pkcs8(der) {
            Ok(k) => k,
            Err(rsa_err) => {
                return Self::from_ec(der).map_err(|_| {
                    Error::UnsupportedAlgorithm(format!(
                        "private key: not an RSA key of 2048-8192 bits ({rsa_err}) nor a P-256 key"
                    ))
                })
            }
        };
        let reject = |e: aws_lc_rs::error::KeyRejected| {
            Error::malformed("RSA private key", format!("rejected by aws-lc: {e}"))
        };
        let decrypting = || rsa::PrivateDecryptingKey::from_pkcs8(der).map_err(reject);
        let signer = signature::RsaKeyPair::from_pkcs8(der).map_err(reject)?;
        let bits = first.key_size_bits();
        let backend = |_| Error::Backend("RSA key setup".into());
        Ok(SoftwareKey {
            public: PublicKey::Rsa {
                spki: signer_public_spki(&signer)?,
                bits,
            },
            inner: SoftwareKeyInner::Rsa {
                pkcs1: rsa::Pkcs1PrivateDecryptingKey::new(first).map_err(backend)?,
                oaep: rsa::OaepPrivateDecryptingKey::new(decrypting()?).map_err(backend)?,
                signer,
            },
        })
    }

    fn from_ec(der: &[u8]) -> Result<Self, Error> {
        let signer = signature::EcdsaKeyPair::from_private_key_der(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            der,
        )
        .map_err(|e| {
            Error::UnsupportedAlgorithm(format!("EC private key (only P-256 is supported): {e}"))
        })?;
        let ecdh = agreement::PrivateKey::from_private_key_der(&agreement::ECDH_P256, der)
            .map_err(|e| Error::malformed("EC private key", e))?;
        let point = signature::KeyPair::public_key(&signer).as_ref().to_vec();
        Ok(SoftwareKey {
            public: PublicKey::P256(point),
            inner: SoftwareKeyInner::P256 { ecdh, signer },
        })
    }
}

fn signer_public_spki(signer: &signature::RsaKeyPair) -> Result<Vec<u8>, Error> {
    use aws_lc_rs::encoding::AsDer;
    let pk = signature::KeyPair::public_key(signer);
    let der: aws_lc_rs::encoding::PublicKeyX509Der<'_> = pk
        .as_der()
        .map_err(|_| Error::Backend("encode RSA public key".into()))?;
    Ok(der.as_ref().to_vec())
}

/// Finds the first private-key PEM block (skipping e.g. `EC PARAMETERS` and certificates:
/// `openssl pkcs12 -nodes` writes both into one file).
fn find_pem_key(bytes: &[u8]) -> Result<(String, Zeroizing<Vec<u8>>), Error> {
    pem_blocks(bytes)?
        .into_iter()
        .find(|b| b.label.ends_with("PRIVATE KEY"))
        .map(|b| (b.label, b.der))
        .ok_or_else(|| Error::malformed("PEM key", "no PRIVATE KEY block"))
}

/// Wraps a PKCS#1 RSAPrivateKey in a PKCS#8 PrivateKeyInfo (RFC 5208), which aws-lc-rs wants.
fn rsa_pkcs1_to_pkcs8(pkcs1: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    #[derive(der::Sequence)]
    struct PrivateKeyInfo {
        version: u8,
        algorithm: spki::AlgorithmIdentifierOwned,
        private_key: der::asn1::OctetString,
    }
    let info = PrivateKeyInfo {
        version: 0,
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: oids::RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        private_key: der::asn1::OctetString::new(pkcs1)
            .map_err(|e| Error::malformed("RSA private key", e))?,
    };
    Ok(Zeroizing::new(
        info.to_der()
            .map_err(|e| Error::malformed("RSA private key", e))?,
    ))
}

impl PrivateKeyOps for SoftwareKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn rsa_decrypt(
        &self,
        padding: RsaPadding,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let SoftwareKeyInner::Rsa { pkcs1, oaep, .. } = &self.inner else {
            return Err(Error::NotForUs("RSA key transport to a non-RSA key".into()));
        };
        match padding {
            RsaPadding::Pkcs1v15 => {
                let mut out = Zeroizing::new(vec![0u8; pkcs1.min_output_size()]);
                let n = pkcs1
                    .decrypt(ciphertext, &mut out)
                    .map_err(|_| Error::DecryptionFailed)?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            RsaPadding::Oaep(d) => {
                let alg = match d {
                    DigestAlgorithm::Sha1 => &rsa::OAEP_SHA1_MGF1SHA1,
                    DigestAlgorithm::Sha256 => &rsa::OAEP_SHA256_MGF1SHA256,
                    DigestAlgorithm::Sha384 => &rsa::OAEP_SHA384_MGF1SHA384,
                    DigestAlgorithm::Sha512 => &rsa::OAEP_SHA512_MGF1SHA512,
                    DigestAlgorithm::Md5 | DigestAlgorithm::Sha224 => {
                        return Err(Error::UnsupportedAlgorithm(format!("RSAES-OAEP with {d}")))
                    }
                };
                let mut out = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
                let n = oaep
                    .decrypt(alg, ciphertext, &mut out, None)
                    .map_err(|_| Error::DecryptionFailed)?
                    .len();
                out.truncate(n);
                Ok(out)
            }
        }
    }

    fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let SoftwareKeyInner::P256 { ecdh, .. } = &self.inner else {
            return Err(Error::NotForUs("ECDH key agreement to a non-EC key".into()));
        };
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, peer_point);
        agreement::agree(ecdh, peer, Error::DecryptionFailed, |z| {
            Ok(Zeroizing::new(z.to_vec()))
        })
    }

    fn sign(&self, alg: SignatureAlgorithm, data: &[u8]) -> Result<Vec<u8>, Error> {
        let rng = SystemRandom::new();
        let unsupported =
            || Error::UnsupportedAlgorithm(format!("signing with {alg} and this key"));
        match (&self.inner, alg) {
            (SoftwareKeyInner::Rsa { signer, .. }, SignatureAlgorithm::RsaPkcs1(d))
            | (SoftwareKeyInner::Rsa { signer, .. }, SignatureAlgorithm::RsaPss(d)) => {
                let pss = matches!(alg, SignatureAlgorithm::RsaPss(_));
                let enc: &'static dyn signature::RsaEncoding = match (pss, d) {
                    (false, DigestAlgorithm::Sha256) => &signature::RSA_PKCS1_SHA256,
                    (false, DigestAlgorithm::Sha384) => &signature::RSA_PKCS1_SHA384,
                    (false, DigestAlgorithm::Sha512) => &signature::RSA_PKCS1_SHA512,
                    (true, DigestAlgorithm::Sha256) => &signature::RSA_PSS_SHA256,
                    (true, DigestAlgorithm::Sha384) => &signature::RSA_PSS_SHA384,
                    (true, DigestAlgorithm::Sha512) => &signature::RSA_PSS_SHA512,
                    _ => return Err(unsupported()),
                };
                let mut sig = vec![0u8; signer.public_modulus_len()];
                signer
                    .sign(enc, &rng, data, &mut sig)
                    .map_err(|_| Error::Backend("RSA signing failed".into()))?;
                Ok(sig)
            }
            (
                SoftwareKeyInner::P256 { signer, .. },
                SignatureAlgorithm::Ecdsa(DigestAlgorithm::Sha256),
            ) => Ok(signer
                .sign(&rng, data)
                .map_err(|_| Error::Backend("ECDSA signing failed".into()))?
                .as_ref()
                .to_vec()),
            _ => Err(unsupported()),
        }
    }
}

/// Our identity for one operation: the certificate and the key behind it.
#[derive(Debug)]
pub struct Identity {
    /// Our certificate (and any chain certificates that came with it).
    pub certificate: Certificate,
    /// Further certificates from the same PEM (intermediates), sent along with signatures.
    pub chain: Vec<Certificate>,
    /// The private key.
    pub key: Box<dyn PrivateKeyOps>,
}

impl Identity {
    /// Loads a software identity from a credential (PEM/DER certificate and key).
    pub fn from_credential(cred: &postern_core::Credential) -> Result<Self, Error> {
        let mut certs = parse_certificates(&cred.certificate)?.into_iter();
        let certificate = certs
            .next()
            .ok_or_else(|| Error::malformed("certificate", "empty"))?;
        let secret = cred
            .secret
            .as_ref()
            .ok_or_else(|| Error::InvalidRequest("credential has no private key".into()))?;
        let key: Box<dyn PrivateKeyOps> = Box::new(SoftwareKey::from_pem_or_der(secret.expose())?);
        let cert_key = PublicKey::from_certificate(&certificate)?;
        if !cert_key.same_key(key.public_key()) {
            return Err(Error::InvalidRequest(
                "the private key does not belong to the certificate".into(),
            ));
        }
        Ok(Identity {
            certificate,
            chain: certs.collect(),
            key,
        })
    }
}

/// A CA certificate (basicConstraints cA = TRUE): chain material, never a recipient.
pub fn is_ca(cert: &Certificate) -> bool {
    crate::certinfo::is_ca(cert)
}

/// Self-issued (subject and issuer the same name) with a key usage that allows encryption to
/// it: key encipherment or key agreement, or no key usage extension at all (any use). The
/// self-signature is not verified: a pinned certificate is trusted for being pinned, and its
/// signature proves nothing more (an old SHA-1 one must not make a partner unreachable).
pub fn self_signed_for_encryption(cert: &Certificate) -> bool {
    let tbs = cert.tbs_certificate();
    if tbs.subject() != tbs.issuer() {
        return false;
    }
    crate::certinfo::key_usage(cert).is_none_or(|ku| {
        ku.0.contains(x509_cert::ext::pkix::KeyUsages::KeyEncipherment)
            || ku.0.contains(x509_cert::ext::pkix::KeyUsages::KeyAgreement)
    })
}

/// Which certificates of one partner file are recipients. Every end-entity certificate is; a
/// CA certificate in a chain file never is. But `openssl req -x509` marks every self-signed
/// certificate `CA:TRUE` — the commonest partner certificate there is — so a file whose only
/// certificate is self-signed and allows encryption ([`self_signed_for_encryption`]) holds
/// that partner's own certificate. The answer is per certificate, in the file's order.
pub fn recipient_roles(certs: &[Certificate]) -> Vec<bool> {
    let distinct = {
        let mut ders: Vec<Vec<u8>> = certs.iter().filter_map(|c| c.to_der().ok()).collect();
        ders.sort();
        ders.dedup();
        ders.len()
    };
    certs
        .iter()
        .map(|c| !is_ca(c) || (distinct == 1 && self_signed_for_encryption(c)))
        .collect()
}

/// The recipients of one partner file ([`recipient_roles`]), each key once: a file that holds
/// the same certificate (or the same key in two certificates) a hundred times is one recipient.
pub fn recipients(certs: Vec<Certificate>) -> Vec<Certificate> {
    let roles = recipient_roles(&certs);
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut out = Vec::new();
    for (c, recipient) in certs.into_iter().zip(roles) {
        if !recipient {
            continue;
        }
        let key = c
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap_or_default();
        if !seen.contains(&key) {
            seen.push(key);
            out.push(c);
        }
    }
    out
}

/// The DER encoding of a certificate.
pub fn to_der(cert: &Certificate) -> Result<Vec<u8>, Error> {
    cert.to_der()
        .map_err(|e| Error::malformed("certificate", e))
}
