//! The signature: which header fields, the `DKIM-Signature` field itself, folded.

use std::time::SystemTime;

use base64::Engine as _;

use crate::canon::{relaxed_body_hash, relaxed_header};
use crate::DkimKey;

/// The header fields signed when present (RFC 6376 §5.4.1's list, with the MIME fields and
/// Message-ID), each as often as it occurs.
pub const SIGNED_FIELDS: &[&str] = &[
    "from",
    "reply-to",
    "subject",
    "date",
    "to",
    "cc",
    "message-id",
    "in-reply-to",
    "references",
    "resent-date",
    "resent-from",
    "resent-to",
    "resent-cc",
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
];

/// Signed once more than they occur (RFC 6376 §8.15): a second From added later does not
/// verify.
const OVERSIGNED: &[&str] = &["from", "to", "subject", "date"];

/// Names that are not a domain or selector, or a message we cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The signing domain or the selector is not a DNS name.
    #[error("{0:?} is not a DNS name (letters, digits, '-' in dot-separated labels)")]
    BadName(String),
    /// The message has no From field: nothing for a receiver to align the signature with.
    #[error("the message has no From field")]
    NoFrom,
    /// The key failed to sign.
    #[error("the key failed to sign")]
    Key,
    /// A line in the header section is neither a field nor a continuation: receivers disagree
    /// on where such a header ends, so no signature over it would verify everywhere.
    #[error("a header line without a colon: not signed")]
    Malformed,
}

/// Instances of one field name signed at most (the topmost beyond them are left unsigned), so
/// a message with thousands of Received-like repeats cannot make an unbounded `h=`.
const MAX_INSTANCES: usize = 16;

/// Signs for one domain with one selector's key.
#[derive(Debug)]
pub struct DkimSigner {
    domain: String,
    selector: String,
    key: DkimKey,
}

impl DkimSigner {
    /// A signer for `domain` (`d=`) with `selector`'s key (`s=`).
    pub fn new(domain: &str, selector: &str, key: DkimKey) -> Result<DkimSigner, SignError> {
        for name in [domain, selector] {
            if !dns_name(name) {
                return Err(SignError::BadName(name.to_string()));
            }
        }
        Ok(DkimSigner {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_ascii_lowercase(),
            key,
        })
    }

    /// The signing domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The selector.
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// Where receivers look the key up: `selector._domainkey.domain`.
    pub fn dns_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The TXT record to publish at [`DkimSigner::dns_name`].
    pub fn dns_record(&self) -> String {
        let (k, p) = self.key.public_record();
        format!("v=DKIM1; k={k}; p={p}")
    }

    /// The `DKIM-Signature` header field (CRLF-ended) for `message` as it will be sent (CRLF
    /// line ends; put the field on top of it), signed at `now`.
    pub fn sign(&self, message: &[u8], now: SystemTime) -> Result<Vec<u8>, SignError> {
        let (fields, body) = split(message).ok_or(SignError::Malformed)?;
        if !fields.iter().any(|f| f.lower == "from") {
            return Err(SignError::NoFrom);
        }
        let mut names: Vec<&str> = Vec::new();
        let mut signed: Vec<u8> = Vec::new();
        for name in SIGNED_FIELDS {
            // Bottom-up: the k-th time a name is listed takes its k-th instance from the end
            // (RFC 6376 §5.4.2).
            let present: Vec<&Field<'_>> = fields
                .iter()
                .rev()
                .filter(|f| f.lower == *name)
                .take(MAX_INSTANCES)
                .collect();
            for f in &present {
                names.push(name);
                signed.extend(relaxed_header(f.lower.as_str(), f.value));
            }
            if OVERSIGNED.contains(name) {
                names.push(name);
            }
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let t = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let bh = b64.encode(relaxed_body_hash(body));
        // The field as it is sent, with b= still empty: what is signed is its relaxed form.
        let mut value = format!(
            " v=1; a={}; c=relaxed/relaxed; d={}; s={};\r\n\tt={t}; bh={bh};\r\n\th=",
            self.key.algorithm(),
            self.domain,
            self.selector
        );
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                value.push(':');
                if i % 8 == 0 {
                    value.push_str("\r\n\t");
                }
            }
            value.push_str(n);
        }
        value.push_str(";\r\n\tb=");
        let mut data = signed;
        let own = relaxed_header("dkim-signature", value.as_bytes());
        data.extend_from_slice(own.strip_suffix(b"\r\n").unwrap_or(&own));
        let sig = b64.encode(self.key.sign_data(&data).ok_or(SignError::Key)?);
        let mut out = format!("DKIM-Signature:{value}").into_bytes();
        for (i, chunk) in sig.as_bytes().chunks(72).enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n\t");
            }
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(b"\r\n");
        Ok(out)
    }
}

/// One header field: its name in lower case and its raw value (after the colon, folding kept).
struct Field<'m> {
    lower: String,
    value: &'m [u8],
}

/// The header fields and the body (after the blank line; none: no body); `None` when a header
/// line is neither a field nor a continuation.
fn split(message: &[u8]) -> Option<(Vec<Field<'_>>, &[u8])> {
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut at = 0;
    let mut current: Option<(usize, usize)> = None; // (name end, value start)
    let mut field_start = 0;
    while at < message.len() {
        let rest = message.get(at..).unwrap_or_default();
        let line_end = memchr_lf(rest).map_or(message.len(), |i| at + i + 1);
        let line = message.get(at..line_end).unwrap_or_default();
        let content = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if content.is_empty() {
            close(message, &mut fields, current, field_start, at);
            return Some((fields, message.get(line_end..).unwrap_or_default()));
        }
        if matches!(content.first(), Some(b' ' | b'\t')) {
            // A continuation of the field before.
        } else {
            close(message, &mut fields, current, field_start, at);
            field_start = at;
            let colon = content.iter().position(|b| *b == b':')?;
            current = Some((at + colon, at + colon + 1));
        }
        at = line_end;
    }
    close(message, &mut fields, current, field_start, at);
    Some((fields, &[]))
}

/// Ends the field that began at `start` (if it had a name) at `end`.
fn close<'m>(
    message: &'m [u8],
    fields: &mut Vec<Field<'m>>,
    current: Option<(usize, usize)>,
    start: usize,
    end: usize,
) {
    let Some((name_end, value_start)) = current else {
        return;
    };
    let (Some(name), Some(value)) = (message.get(start..name_end), message.get(value_start..end))
    else {
        return;
    };
    fields.push(Field {
        lower: String::from_utf8_lossy(name)
            .trim_end_matches([' ', '\t'])
            .to_ascii_lowercase(),
        value,
    });
}

fn memchr_lf(b: &[u8]) -> Option<usize> {
    b.iter().position(|x| *x == b'\n')
}

fn dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_split_with_their_folding_and_the_body_after_the_blank_line() {
        let m = b"From: a@x.test\r\nSubject: one\r\n two\r\nX: y\r\n\r\nbody\r\n";
        let (f, body) = split(m).unwrap();
        let names: Vec<&str> = f.iter().map(|f| f.lower.as_str()).collect();
        assert_eq!(names, ["from", "subject", "x"]);
        assert_eq!(f[1].value, b" one\r\n two\r\n");
        assert_eq!(body, b"body\r\n");
        let (f, body) = split(b"From: a@x.test\r\n").unwrap();
        assert_eq!(f.len(), 1);
        assert!(body.is_empty());
        assert!(split(b"From: a@x.test\r\nno colon here\r\n\r\nbody\r\n").is_none());
    }

    #[test]
    fn names_must_be_dns_names() {
        assert!(dns_name("hospital.example"));
        assert!(dns_name("sel-2026"));
        assert!(!dns_name("a..b"));
        assert!(!dns_name("a b"));
        assert!(!dns_name(""));
    }
}
