//! Why a message is held for review, as a kind: what the quarantine stores beside the sentence
//! it shows, so that a decision about held mail (a report, a retention rule, an embedder's
//! desk) names a case and never reads text.

use std::fmt;
use std::str::FromStr;

/// The kind of reason a message was held for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldCode {
    /// Content inspection held a copy that would leave in clear.
    Content,
    /// A plain copy to a partner, held because the policy inspects partner mail too.
    PlainToPartner,
    /// Inbound data with no header section.
    NotAMessage,
    /// An inbound protected message that could not be opened.
    CannotOpen,
    /// AES-CBC without a valid signature (EFAIL).
    UnsignedCbc,
    /// Plaintext from a partner that must encrypt.
    PlaintextFromRequired,
    /// A malware scanner found something.
    Malware,
    /// The malware scanner cannot scan it (over its size limit).
    Unscannable,
    /// Refused for good downstream, and no bounce to a sender nobody vouched for.
    Undeliverable,
    /// A protected wrapped message (`message/rfc822`) that cannot be read as a message.
    BadWrapper,
    /// Mail from a Direct partner that breaks the Direct rules (not encrypted, not validly
    /// signed, the envelope disagreeing with its header fields).
    DirectRefused,
}

impl HoldCode {
    /// Every kind.
    pub const ALL: [HoldCode; 11] = [
        HoldCode::Content,
        HoldCode::PlainToPartner,
        HoldCode::NotAMessage,
        HoldCode::CannotOpen,
        HoldCode::UnsignedCbc,
        HoldCode::PlaintextFromRequired,
        HoldCode::Malware,
        HoldCode::Unscannable,
        HoldCode::Undeliverable,
        HoldCode::BadWrapper,
        HoldCode::DirectRefused,
    ];

    /// The stable word stored and shown in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldCode::Content => "content",
            HoldCode::PlainToPartner => "plain-to-partner",
            HoldCode::NotAMessage => "not-a-message",
            HoldCode::CannotOpen => "cannot-open",
            HoldCode::UnsignedCbc => "unsigned-cbc",
            HoldCode::PlaintextFromRequired => "plaintext-from-required",
            HoldCode::Malware => "malware",
            HoldCode::Unscannable => "unscannable",
            HoldCode::Undeliverable => "undeliverable",
            HoldCode::BadWrapper => "bad-wrapper",
            HoldCode::DirectRefused => "direct-refused",
        }
    }
}

impl fmt::Display for HoldCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no [`HoldCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hold reason {0:?}")]
pub struct UnknownHoldCode(pub String);

impl FromStr for HoldCode {
    type Err = UnknownHoldCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HoldCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownHoldCode(s.to_string()))
    }
}

crate::serde_as_text!(HoldCode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_and_strangers_are_refused() {
        for c in HoldCode::ALL {
            assert_eq!(c.as_str().parse::<HoldCode>(), Ok(c));
        }
        assert!("contnet".parse::<HoldCode>().is_err());
    }
}
