//! RFC 3463 enhanced mail system status codes (`5.7.1`): one type for what the gateway
//! answers, what it stores in its spool, what a next hop said and what a DSN reports, so a
//! status is checked once, where it is read, and compared as a value.

use std::fmt;
use std::str::FromStr;

/// The class of a status: what it means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// `2`: delivered.
    Success,
    /// `4`: persistent transient failure; trying again may work.
    Persistent,
    /// `5`: permanent failure.
    Permanent,
}

/// An enhanced status code: class, subject and detail (`5.7.1`). Subject and detail are at
/// most three digits each (RFC 3463 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    class: StatusClass,
    subject: u16,
    detail: u16,
}

/// A text that is not an enhanced status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an enhanced status code (class.subject.detail, e.g. 5.7.1)")]
pub struct NotAStatus(pub String);

impl EnhancedStatus {
    /// `2.0.0`: delivered.
    pub const OK: Self = Self::new(StatusClass::Success, 0, 0);
    /// `4.3.0`: a temporary system problem.
    pub const TEMPORARY_SYSTEM: Self = Self::new(StatusClass::Persistent, 3, 0);
    /// `4.7.5`: a cryptographic failure that may pass (a key server down).
    pub const TEMPORARY_CRYPTO: Self = Self::new(StatusClass::Persistent, 7, 5);
    /// `5.0.0`: permanent, nothing more known.
    pub const PERMANENT: Self = Self::new(StatusClass::Permanent, 0, 0);
    /// `5.1.3`: a recipient address that is not valid.
    pub const BAD_ADDRESS: Self = Self::new(StatusClass::Permanent, 1, 3);
    /// `5.3.0`: a permanent system problem.
    pub const PERMANENT_SYSTEM: Self = Self::new(StatusClass::Permanent, 3, 0);
    /// `5.6.0`: the message cannot be read (media error).
    pub const BAD_CONTENT: Self = Self::new(StatusClass::Permanent, 6, 0);
    /// `5.7.1`: delivery not authorised, message refused.
    pub const REFUSED: Self = Self::new(StatusClass::Permanent, 7, 1);
    /// `5.7.5`: cryptographic failure.
    pub const CRYPTO: Self = Self::new(StatusClass::Permanent, 7, 5);

    /// A status from its parts (subject and detail taken modulo 1000, so always three digits
    /// at most).
    pub const fn new(class: StatusClass, subject: u16, detail: u16) -> Self {
        EnhancedStatus {
            class,
            subject: subject % 1000,
            detail: detail % 1000,
        }
    }

    /// Its class.
    pub fn class(&self) -> StatusClass {
        self.class
    }

    /// The same subject and detail, permanent: what a DSN reports for a recipient given up
    /// (RFC 3464 needs a 5.x.x for `failed`, whatever class the last answer had).
    pub fn as_permanent(self) -> Self {
        Self::new(StatusClass::Permanent, self.subject, self.detail)
    }

    /// The status at the start of an SMTP reply's text (RFC 2034), if it has one and its class
    /// agrees with the reply code's first digit.
    pub fn from_reply(code: u16, text: &str) -> Option<Self> {
        let s: Self = text.split_whitespace().next()?.parse().ok()?;
        let digit = match s.class {
            StatusClass::Success => 2,
            StatusClass::Persistent => 4,
            StatusClass::Permanent => 5,
        };
        (code / 100 == digit).then_some(s)
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.class {
            StatusClass::Success => 2,
            StatusClass::Persistent => 4,
            StatusClass::Permanent => 5,
        };
        write!(f, "{class}.{}.{}", self.subject, self.detail)
    }
}

impl FromStr for EnhancedStatus {
    type Err = NotAStatus;
    fn from_str(s: &str) -> Result<Self, NotAStatus> {
        let bad = || NotAStatus(s.chars().take(40).collect());
        let mut parts = s.split('.');
        let (Some(c), Some(sub), Some(det), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let class = match c {
            "2" => StatusClass::Success,
            "4" => StatusClass::Persistent,
            "5" => StatusClass::Permanent,
            _ => return Err(bad()),
        };
        let num = |x: &str| {
            (!x.is_empty() && x.len() <= 3 && x.bytes().all(|b| b.is_ascii_digit()))
                .then(|| x.parse::<u16>().ok())
                .flatten()
        };
        match (num(sub), num(det)) {
            (Some(subject), Some(detail)) => Ok(Self::new(class, subject, detail)),
            _ => Err(bad()),
        }
    }
}

// Stored and read as its text (`"5.7.1"`): spool files written before the type existed hold
// the same words.
crate::serde_as_text!(EnhancedStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_and_write_as_rfc_3463_text() {
        for s in ["2.0.0", "4.7.5", "5.7.1", "5.1.10", "5.999.999"] {
            assert_eq!(s.parse::<EnhancedStatus>().unwrap().to_string(), s);
        }
        for bad in [
            "", "5", "5.7", "5.7.1.2", "3.1.1", "5.7.", "5..1", "5.1000.1", "5.a.1", "+5.1.1",
            "5.7.1 ", "٥.7.1",
        ] {
            assert!(bad.parse::<EnhancedStatus>().is_err(), "{bad:?}");
        }
        assert_eq!(EnhancedStatus::REFUSED.to_string(), "5.7.1");
        assert_eq!(
            EnhancedStatus::TEMPORARY_CRYPTO.as_permanent(),
            EnhancedStatus::CRYPTO
        );
        let json = serde_json::to_string(&EnhancedStatus::BAD_ADDRESS).unwrap();
        assert_eq!(json, "\"5.1.3\"");
        assert_eq!(
            serde_json::from_str::<EnhancedStatus>(&json).unwrap(),
            EnhancedStatus::BAD_ADDRESS
        );
        assert!(serde_json::from_str::<EnhancedStatus>("\"5.7\"").is_err());
    }

    #[test]
    fn a_reply_carries_a_status_only_of_its_own_class() {
        assert_eq!(
            EnhancedStatus::from_reply(550, "5.1.1 no such user"),
            Some("5.1.1".parse().unwrap())
        );
        assert_eq!(EnhancedStatus::from_reply(550, "4.1.1 odd"), None);
        assert_eq!(EnhancedStatus::from_reply(550, "no such user"), None);
        assert_eq!(
            EnhancedStatus::from_reply(451, "4.3.0 later"),
            Some(EnhancedStatus::TEMPORARY_SYSTEM)
        );
    }
}
