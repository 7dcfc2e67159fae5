//! DKIM signatures (RFC 6376) for what a gateway sends: relaxed/relaxed canonicalization,
//! `rsa-sha256` and `ed25519-sha256` (RFC 8463), over the header fields RFC 6376 §5.4 recommends,
//! with From, To, Subject and Date signed once more than they occur (so a field of those names
//! added on the way breaks the signature instead of being shown as signed).
//!
//! Written here rather than taken from `mail-auth`: its releases that fit this workspace's
//! mail-parser (0.11) pin a pre-release hickory resolver beside ours and bring ring, rsa and
//! ed25519-dalek beside aws-lc-rs, and the current one needs a newer compiler than ours. Signing
//! is the small, fully specified half of DKIM; every signature is checked by an independent
//! verifier (dkimpy) in the tests.
#![forbid(unsafe_code)]

pub mod canon;
mod key;
mod sign;

pub use key::{DkimKey, KeyError};
pub use sign::{DkimSigner, SignError, SIGNED_FIELDS};
