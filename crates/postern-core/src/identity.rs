//! Identities: mail domains and addresses, normalised once so comparisons are plain equality.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A mail domain, stored lower-case without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Parses and normalises a domain name (ASCII or already-encoded A-labels).
    pub fn new(s: &str) -> Result<Self, Error> {
        let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80)
        };
        if d.is_empty() || d.len() > 253 || !d.split('.').all(valid_label) {
            return Err(Error::InvalidRequest(format!("invalid domain {s:?}")));
        }
        Ok(Domain(d))
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True if `self` equals `other` or is a subdomain of it.
    pub fn is_within(&self, other: &Domain) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.ends_with(&other.0)
                && self.0.as_bytes()[self.0.len() - other.0.len() - 1] == b'.')
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Domain {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Domain::new(s)
    }
}

/// A mailbox address `local@domain`. The local part keeps its case (RFC 5321 §2.4); the domain is
/// normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: String,
    domain: Domain,
}

impl Address {
    /// Parses `local@domain`, also accepting `<local@domain>`.
    pub fn new(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        let s = s
            .strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or(s);
        let (local, domain) = s
            .rsplit_once('@')
            .ok_or_else(|| Error::InvalidRequest(format!("address without @: {s:?}")))?;
        if local.is_empty() || local.len() > 64 || local.chars().any(|c| c.is_control() || c == ' ')
        {
            return Err(Error::InvalidRequest(format!(
                "invalid local part in {s:?}"
            )));
        }
        Ok(Address {
            local: local.to_string(),
            domain: Domain::new(domain)?,
        })
    }

    /// The local part, as given.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// True when both addresses name the same mailbox, comparing local parts case-insensitively
    /// (what every real mail system does, although RFC 5321 allows otherwise).
    pub fn same_mailbox(&self, other: &Address) -> bool {
        self.domain == other.domain && self.local.eq_ignore_ascii_case(&other.local)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl FromStr for Address {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Address::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_normalise_and_nest() {
        let d = Domain::new("Mail.Partner.Example.").unwrap();
        assert_eq!(d.as_str(), "mail.partner.example");
        assert!(d.is_within(&Domain::new("partner.example").unwrap()));
        assert!(!Domain::new("evilpartner.example")
            .unwrap()
            .is_within(&Domain::new("partner.example").unwrap()));
        assert!(Domain::new("bad..example").is_err());
        assert!(Domain::new("-bad.example").is_err());
    }

    #[test]
    fn addresses_parse() {
        let a = Address::new("<Gw@Partner.Example>").unwrap();
        assert_eq!(a.to_string(), "Gw@partner.example");
        assert!(a.same_mailbox(&Address::new("gw@PARTNER.example").unwrap()));
        assert!(Address::new("nobody").is_err());
        assert!(Address::new("@x.example").is_err());
    }
}
