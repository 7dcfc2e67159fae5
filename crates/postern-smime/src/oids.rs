//! Object identifiers used by the backend, each with the RFC that assigns it.

use const_oid::ObjectIdentifier as Oid;

// RFC 5652 §4-6, RFC 5083 §1: content types.
pub const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
pub const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
pub const ID_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
pub const ID_AUTH_ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.23");

// RFC 3565 / RFC 5084: AES content encryption and key wrap.
pub const AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
pub const AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
pub const AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
pub const AES128_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.6");
pub const AES256_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.46");
pub const AES128_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.5");
pub const AES256_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.45");
// Legacy ciphers, recognised only to be refused with a clear name (RFC 8551 §2.7).
pub const DES_EDE3_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.7");
pub const RC2_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.2");
pub const DES_CBC: Oid = Oid::new_unwrap("1.3.14.3.2.7");
// RFC 8103.
pub const CHACHA20_POLY1305: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.3.18");

// RFC 8017 / RFC 4055: RSA.
pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub const RSAES_OAEP: Oid = Oid::new_unwrap("1.2.840.113549.1.1.7");
pub const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
pub const P_SPECIFIED: Oid = Oid::new_unwrap("1.2.840.113549.1.1.9");
pub const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
pub const MD5_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.4");
pub const SHA1_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
pub const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
pub const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
pub const SHA224_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.14");

// Digests (RFC 5754, RFC 3370).
pub const MD5: Oid = Oid::new_unwrap("1.2.840.113549.2.5");
pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
pub const SHA224: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.4");
pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");

// Elliptic curves (RFC 5480, RFC 5753, RFC 8410).
pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
pub const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
pub const ECDSA_WITH_SHA1: Oid = Oid::new_unwrap("1.2.840.10045.4.1");
pub const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
pub const ECDSA_WITH_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
pub const ECDSA_WITH_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
pub const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
pub const X25519: Oid = Oid::new_unwrap("1.3.101.110");
pub const DSA: Oid = Oid::new_unwrap("1.2.840.10040.4.1");
pub const DSA_WITH_SHA1: Oid = Oid::new_unwrap("1.2.840.10040.4.3");
pub const DSA_WITH_SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.3.2");
// RFC 5753 §7.1.4 / SEC 1: ephemeral-static ECDH with the X9.63 KDF.
pub const ECDH_SHA1_KDF: Oid = Oid::new_unwrap("1.3.133.16.840.63.0.2");
pub const ECDH_SHA224_KDF: Oid = Oid::new_unwrap("1.3.132.1.11.0");
pub const ECDH_SHA256_KDF: Oid = Oid::new_unwrap("1.3.132.1.11.1");
pub const ECDH_SHA384_KDF: Oid = Oid::new_unwrap("1.3.132.1.11.2");
pub const ECDH_SHA512_KDF: Oid = Oid::new_unwrap("1.3.132.1.11.3");

// Signed attributes (RFC 5652 §11, RFC 8551 §2.5.2).
pub const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
pub const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
pub const SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
/// RFC 3183 §3.1.1: `id-aa-signatureType`, a signed attribute naming the kind of signature.
pub const SIGNATURE_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.28");
/// RFC 3183 §3.1.1: `id-sti-originatorSig`.
pub const STI_ORIGINATOR_SIG: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.9.1");
/// RFC 3183 §3.1.1: `id-sti-domainSig`, a domain signature.
pub const STI_DOMAIN_SIG: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.9.2");
/// RFC 3183 §3.1.1: `id-sti-addAttribSig`.
pub const STI_ADD_ATTRIB_SIG: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.9.3");
/// RFC 3183 §3.1.1: `id-sti-reviewSig`.
pub const STI_REVIEW_SIG: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.9.4");

// Certificates (RFC 5280, RFC 8550).
pub const EMAIL_ADDRESS: Oid = Oid::new_unwrap("1.2.840.113549.1.9.1");
pub const KP_EMAIL_PROTECTION: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.4");
pub const ANY_EXTENDED_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37.0");
