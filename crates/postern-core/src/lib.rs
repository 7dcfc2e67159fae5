//! # postern-core
//!
//! The part of Postern that every standard shares and that carries no cryptography:
//!
//! * [`SecureEnvelope`] — the plug between a message standard (S/MIME, OpenPGP, …) and the router;
//! * [`MessageView`] — a zero-copy view over the raw RFC 5322 bytes, with byte offsets so that
//!   signatures are checked over exactly the bytes received;
//! * [`Address`] and [`Domain`] — identities, normalised once;
//! * [`KeyStore`] — where partner certificates and our own keys come from;
//! * [`Policy`] — which algorithms are acceptable; the default refuses weak ones;
//! * [`Error`] — typed, `#[non_exhaustive]`, and each error knows whether it is temporary
//!   (SMTP 4xx: retry) or permanent (SMTP 5xx: bounce).
//!
//! Backends (`postern-smime`, `postern-openpgp`) depend on this crate, never the other way round.
#![forbid(unsafe_code)]

mod envelope;
mod error;
mod identity;
mod keystore;
mod message;
pub mod mime;
mod policy;
mod printable;
mod report;

pub use envelope::{
    Credential, OpenRequest, SealRequest, SecretBytes, SecureEnvelope, SignRequest, Standard,
};
pub use error::{Error, Result, SmtpReply};
pub use identity::{Address, Domain};
pub use keystore::{KeyStore, MemoryKeyStore};
pub use message::{HeaderField, MessageView, PartView};
pub use policy::{ContentCipher, DigestAlgorithm, Policy, SignatureAlgorithm};
pub use printable::{printable, Printable};
pub use report::{ChainStatus, Encryption, Opened, Report, SignatureReport, SignatureStatus};
