//! Errors shared by every backend, each mapped to the SMTP reply a relay should give.

use crate::status::EnhancedStatus;
use std::fmt;

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while sealing or opening a message.
///
/// Every variant knows whether it is *temporary* (the same operation may succeed later: answer
/// 4xx, keep the message queued) or *permanent* (it will never succeed: answer 5xx, bounce).
/// Messages never contain message bodies or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message itself could not be understood (broken MIME, missing part, bad encoding).
    #[error("malformed message: {0}")]
    MalformedMessage(String),
    /// A cryptographic structure (CMS/DER, OpenPGP packets, a certificate, a key) is malformed.
    #[error("malformed {what}: {detail}")]
    MalformedData {
        /// What was being parsed (e.g. "CMS ContentInfo", "certificate").
        what: &'static str,
        /// Parser detail, safe to log.
        detail: String,
    },
    /// The algorithm is known but refused by the [`crate::Policy`] (too weak).
    #[error("algorithm refused by policy: {algorithm} ({reason})")]
    WeakAlgorithm {
        /// Human name of the algorithm, e.g. "3DES-CBC" or "RSA-1024".
        algorithm: String,
        /// Why the policy refuses it.
        reason: String,
    },
    /// The algorithm is not implemented by this backend.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// No usable key for a recipient (none configured, expired, revoked, cannot encrypt).
    #[error("no usable key for {recipient}: {reason}")]
    NoUsableKey {
        /// Address, domain or key identifier concerned.
        recipient: String,
        /// Why the key cannot be used.
        reason: String,
    },
    /// The message is encrypted, but to none of the keys we hold.
    #[error("message is not encrypted to any of our keys ({0})")]
    NotForUs(String),
    /// Decryption failed (wrong key, tampered ciphertext, bad padding or tag).
    ///
    /// Deliberately carries no detail that would help a padding-oracle attacker.
    #[error("decryption failed")]
    DecryptionFailed,
    /// The message is not in the format this backend handles.
    #[error("not a {standard} message: {detail}")]
    NotRecognised {
        /// The backend that looked at it.
        standard: String,
        /// What it expected.
        detail: String,
    },
    /// The request itself is wrong (e.g. a seal request with no recipients).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A key store or other dependency is unavailable right now.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// An internal failure of a crypto library (not caused by the input).
    #[error("crypto backend failure: {0}")]
    Backend(String),
}

impl Error {
    /// Shorthand for [`Error::MalformedData`].
    pub fn malformed(what: &'static str, detail: impl fmt::Display) -> Self {
        Error::MalformedData {
            what,
            detail: detail.to_string(),
        }
    }

    /// True when retrying later may succeed (SMTP 4xx); false when it never will (5xx).
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Unavailable(_) | Error::Backend(_) => true,
            Error::MalformedMessage(_)
            | Error::MalformedData { .. }
            | Error::WeakAlgorithm { .. }
            | Error::UnsupportedAlgorithm(_)
            | Error::NoUsableKey { .. }
            | Error::NotForUs(_)
            | Error::DecryptionFailed
            | Error::NotRecognised { .. }
            | Error::InvalidRequest(_) => false,
        }
    }

    /// The SMTP reply (RFC 5321 code, RFC 3463 enhanced status) a relay should give for this error.
    pub fn smtp_reply(&self) -> SmtpReply {
        let (code, enhanced) = match self {
            Error::Unavailable(_) | Error::Backend(_) => (451, EnhancedStatus::TEMPORARY_CRYPTO),
            Error::MalformedMessage(_) | Error::MalformedData { .. } => {
                (554, EnhancedStatus::BAD_CONTENT)
            }
            Error::WeakAlgorithm { .. } | Error::UnsupportedAlgorithm(_) => {
                (554, EnhancedStatus::CRYPTO)
            }
            Error::NoUsableKey { .. } => (554, EnhancedStatus::CRYPTO),
            Error::NotForUs(_) | Error::DecryptionFailed => (554, EnhancedStatus::CRYPTO),
            Error::NotRecognised { .. } => (554, EnhancedStatus::BAD_CONTENT),
            Error::InvalidRequest(_) => (554, EnhancedStatus::PERMANENT_SYSTEM),
        };
        SmtpReply {
            code,
            enhanced,
            text: self.to_string(),
        }
    }
}

/// An SMTP reply derived from an [`Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    /// Three-digit reply code (4xx temporary, 5xx permanent).
    pub code: u16,
    /// RFC 3463 enhanced status code.
    pub enhanced: EnhancedStatus,
    /// One line of text, safe to send to the peer.
    pub text: String,
}

impl fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line only: a reply text must never inject further SMTP lines.
        let text: String = self
            .text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        write!(f, "{} {} {}", self.code, self.enhanced, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_errors_map_to_4xx_and_permanent_to_5xx() {
        let temp = Error::Unavailable("key server down".into());
        assert!(temp.is_temporary());
        assert_eq!(temp.smtp_reply().code, 451);
        let perm = Error::NoUsableKey {
            recipient: "partner.example".into(),
            reason: "certificate expired".into(),
        };
        assert!(!perm.is_temporary());
        assert_eq!(perm.smtp_reply().code, 554);
        assert!(perm.smtp_reply().to_string().starts_with("554 5.7.5 "));
    }

    #[test]
    fn credentials_never_print_key_material() {
        let c = crate::Credential::with_secret(
            crate::Standard::OpenPgp,
            b"-----BEGIN PGP PRIVATE KEY BLOCK-----secret".to_vec(),
            b"-----BEGIN PGP PRIVATE KEY BLOCK-----secret".to_vec(),
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("PRIVATE") && !shown.contains("secret\""),
            "{shown}"
        );
    }

    #[test]
    fn reply_text_cannot_inject_lines() {
        let e = Error::MalformedMessage("bad\r\n250 OK".into());
        let line = e.smtp_reply().to_string();
        assert!(!line.contains('\r') && !line.contains('\n'));
    }
}
