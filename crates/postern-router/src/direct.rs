//! The Direct profile's rules for mail from a HISP (Applicability Statement 1.3, as both
//! reference implementations enforce them): only encrypted, validly signed mail is delivered,
//! and the envelope must agree with the header fields the signature covered — the envelope
//! sender is the From or Sender, and each recipient is in To or Cc. Anything else is not
//! delivered: held for review with the fault named (never tagged, never cut to text), and a
//! recipient the header fields do not name is refused.

use std::fmt;

use postern_core::{Address, MessageView, SignatureVerdict};

/// Why mail from a Direct partner is not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectFault {
    /// It was not protected at all (plain MIME).
    NotProtected,
    /// Signed only: Direct mail is always encrypted.
    NotEncrypted,
    /// Its signature does not vouch for its sender (unsigned, untrusted, invalid, refused…).
    Signature(SignatureVerdict),
    /// It could not be opened.
    CannotOpen {
        /// The backend's error (no content).
        error: String,
    },
    /// The envelope sender is neither its From nor its Sender.
    SenderMismatch,
}

impl fmt::Display for DirectFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Direct: ")?;
        match self {
            DirectFault::NotProtected => f.write_str("not encrypted or signed"),
            DirectFault::NotEncrypted => f.write_str("signed but not encrypted"),
            DirectFault::Signature(v) => write!(f, "signature {v}, not one that vouches"),
            DirectFault::CannotOpen { error } => write!(f, "cannot be opened ({error})"),
            DirectFault::SenderMismatch => f.write_str(
                "the envelope sender is neither its From nor its Sender (routing headers do not \
                 match the envelope)",
            ),
        }
    }
}

/// Whether a message from outside comes from a Direct partner: the partner of the envelope
/// sender, or — for the null sender — of the From field (as the inbound router chooses).
pub(crate) fn from_direct_partner(
    dir: &crate::Directory,
    mail_from: Option<&Address>,
    raw: &[u8],
) -> bool {
    let index = match mail_from {
        Some(a) => dir.partner_index_for(a.domain()),
        None => MessageView::parse(raw)
            .ok()
            .and_then(|v| crate::inbound::single_from(&v))
            .and_then(|a| dir.partner_index_for(a.domain())),
    };
    index.is_some_and(|i| dir.partners[i].profile == crate::PartnerProfile::Direct)
}

/// Whether `mail_from` is the address of the message's From or Sender field.
pub(crate) fn sender_matches(message: &[u8], mail_from: &Address) -> bool {
    let Ok(view) = MessageView::parse(message) else {
        return false;
    };
    let wanted = mail_from.to_string();
    view.headers()
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("from") || h.name.eq_ignore_ascii_case("sender"))
        .flat_map(|h| crate::inbound::mailboxes(&h.value()))
        .any(|m| m.eq_ignore_ascii_case(&wanted))
}

/// The recipients of `recipients` that the message's To and Cc fields do not name.
pub(crate) fn not_routed(message: &[u8], recipients: &[Address]) -> Vec<Address> {
    let named: Vec<String> = MessageView::parse(message)
        .map(|view| {
            view.headers()
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("to") || h.name.eq_ignore_ascii_case("cc"))
                .flat_map(|h| crate::inbound::mailboxes(&h.value()))
                .collect()
        })
        .unwrap_or_default();
    recipients
        .iter()
        .filter(|r| {
            let r = r.to_string();
            !named.iter().any(|n| n.eq_ignore_ascii_case(&r))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: \"Toby\" <toby@redmond.example>\r\nSender: hisp@redmond.example\r\nTo: Biff <biff@nhind.example>, team: a@nhind.example;\r\nCc: (nurse) nurse@nhind.example\r\n\r\nbody\r\n";

    fn a(s: &str) -> Address {
        Address::new(s).unwrap()
    }

    /// The envelope sender is From or Sender (any case); anyone else is a mismatch.
    #[test]
    fn the_envelope_sender_must_be_from_or_sender() {
        assert!(sender_matches(MSG, &a("Toby@Redmond.example")));
        assert!(sender_matches(MSG, &a("hisp@redmond.example")));
        assert!(!sender_matches(MSG, &a("mallory@redmond.example")));
        assert!(!sender_matches(
            b"not a message",
            &a("toby@redmond.example")
        ));
    }

    /// A recipient named in To or Cc (a group's members too) is routed; others are not.
    #[test]
    fn each_recipient_must_be_in_to_or_cc() {
        let rcpts = [
            a("biff@nhind.example"),
            a("A@nhind.example"),
            a("nurse@nhind.example"),
            a("bcc@nhind.example"),
        ];
        assert_eq!(not_routed(MSG, &rcpts), vec![a("bcc@nhind.example")]);
    }
}
