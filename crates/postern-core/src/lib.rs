//! # postern-core
//!
//! The part of Postern that every standard shares and that carries no cryptography:
//!
//! * [`SecureEnvelope`] — the plug between a message standard (S/MIME, OpenPGP, …) and the router;
//! * [`MessageView`] — a zero-copy view over the raw RFC 5322 bytes, with byte offsets so that
//!   signatures are checked over exactly the bytes received;
//! * [`Address`] and [`Domain`] — identities, normalised once;
//! * [`KeyStore`] — where partner certificates and our own keys come from;
//! * [`ContentInspector`] — what looks at mail that would leave in clear (DLP), and the
//!   [`Envelope`] it is told;
//! * [`Policy`] — which algorithms are acceptable; the default refuses weak ones;
//! * [`Error`] — typed, `#[non_exhaustive]`, and each error knows whether it is temporary
//!   (SMTP 4xx: retry) or permanent (SMTP 5xx: bounce).
//!
//! Backends (`postern-smime`, `postern-openpgp`) depend on this crate, never the other way round.
//!
//! Reading a message without copying it:
//!
//! ```
//! # fn main() -> Result<(), postern_core::Error> {
//! use postern_core::MessageView;
//! let raw = b"From: Dr A <a@clinic.example>\r\nSubject: Labs\r\n\
//!     Content-Type: multipart/mixed; boundary=b\r\n\r\n\
//!     --b\r\nContent-Type: text/plain\r\n\r\nResults.\r\n\
//!     --b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n";
//! let view = MessageView::parse(raw)?;
//! assert_eq!(view.header("subject").as_deref(), Some("Labs"));
//! let parts = view.root().children();
//! assert_eq!(parts.len(), 2);
//! assert_eq!(&*parts[1].decoded_body(), b"%PDF-");
//! // A part's raw bytes are a slice of the input: what a signature covers, exactly.
//! assert!(raw.windows(parts[0].raw().len()).any(|w| w == parts[0].raw()));
//! # Ok(()) }
//! ```
//!
//! A third standard plugs in beside the built-in ones by implementing [`SecureEnvelope`]; the
//! router tries each backend's `recognises` on inbound mail and seals with the first standard
//! a partner's entry lists that a backend speaks:
//!
//! ```
//! use async_trait::async_trait;
//! use postern_core::{Error, MessageView, OpenRequest, Opened, SealRequest, SecureEnvelope, Standard};
//!
//! /// An envelope format of a partner's own (a sketch: it recognises its messages, and refuses
//! /// to seal or open rather than pretend).
//! #[derive(Debug)]
//! struct ExampleEnvelope;
//!
//! #[async_trait]
//! impl SecureEnvelope for ExampleEnvelope {
//!     fn standard(&self) -> Standard {
//!         Standard::Other("example")
//!     }
//!     fn recognises(&self, msg: &MessageView<'_>) -> bool {
//!         msg.header("content-type")
//!             .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/x-example-envelope"))
//!     }
//!     async fn seal(&self, _: &MessageView<'_>, _: &SealRequest<'_>) -> Result<Vec<u8>, Error> {
//!         Err(Error::UnsupportedAlgorithm("example envelope: sealing not implemented".into()))
//!     }
//!     async fn open(&self, _: &MessageView<'_>, _: &OpenRequest<'_>) -> Result<Opened, Error> {
//!         Err(Error::UnsupportedAlgorithm("example envelope: opening not implemented".into()))
//!     }
//! }
//!
//! let plain = MessageView::parse(b"Subject: x\r\n\r\nhello\r\n").unwrap();
//! let ours = MessageView::parse(b"Content-Type: application/x-example-envelope\r\n\r\n...\r\n").unwrap();
//! assert!(!ExampleEnvelope.recognises(&plain) && ExampleEnvelope.recognises(&ours));
//! // Not proven encrypted by default: the router seals such a message rather than pass it.
//! assert!(ExampleEnvelope.proven_encrypted(&ours).is_none());
//! // Errors carry their SMTP meaning: this one is permanent (5.x.x, a bounce), not a retry.
//! let e = Error::UnsupportedAlgorithm("x".into());
//! assert!(!e.is_temporary());
//! ```
#![forbid(unsafe_code)]

/// Serde for a type that is written as its `Display` text and read back through its `FromStr`
/// (a status code, a detector name): one definition, so each such type reads what it writes and
/// refuses what it would not parse.
#[macro_export]
macro_rules! serde_as_text {
    ($t:ty) => {
        impl $crate::__serde::Serialize for $t {
            fn serialize<S: $crate::__serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> $crate::__serde::Deserialize<'de> for $t {
            fn deserialize<D: $crate::__serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as $crate::__serde::Deserialize>::deserialize(d)?;
                s.parse().map_err($crate::__serde::de::Error::custom)
            }
        }
    };
}

#[doc(hidden)]
pub use serde as __serde;

pub mod civil;
pub mod clock;
mod entropy;
mod envelope;
mod error;
mod exec;
mod hold;
mod identity;
mod inspect;
mod keystore;
mod message;
pub mod mime;
mod network;
mod policy;
mod printable;
mod report;
mod revocation;
mod scan;
mod status;

pub use clock::{Clock, FixedClock, SystemClock};
pub use entropy::looks_random;
pub use envelope::{
    CertificateSummary, Credential, OpenRequest, SealRequest, SecretBytes, SecureEnvelope,
    SignRequest, Standard,
};
pub use error::{Error, Result, SmtpReply};
pub use exec::block_on;
pub use hold::{HoldCode, UnknownHoldCode};
pub use identity::{Address, Domain};
pub use inspect::{ContentAction, ContentInspector, Envelope, Inspection, PassThrough};
pub use keystore::{KeyStore, MemoryKeyStore};
pub use message::{
    decode_base64_in_place, parse_headers, parse_message, HeaderField, MessageView, PartView,
};
pub use network::{client_network, ConnectionSlot, ConnectionSlots, Network};
pub use policy::{ContentCipher, DigestAlgorithm, Policy, SignatureAlgorithm};
pub use printable::{display_text, is_format, printable, Printable};
pub use report::{
    ChainStatus, Encryption, Opened, Report, SignatureReport, SignatureStatus, SignatureType,
    SignatureVerdict, UnknownVerdict,
};
pub use revocation::{Revocation, RevocationChecker, RevocationPolicy};
pub use scan::{MalwareScanner, ScanVerdict};
pub use status::{EnhancedStatus, NotAStatus, StatusClass};
