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

/// Whether the Direct rules apply to `message` from outside: the envelope sender's partner
/// entry has the Direct profile, or a mailbox of its From or Sender fields belongs to such a
/// partner. Either is enough: mail that names a HISP as its author is held to the HISP's
/// rules whatever envelope it came in, or a forger would pick an envelope outside the partner
/// and have plain mail delivered under the HISP's name. Callers ask again of the opened
/// message (its inner From may name a HISP the outer one did not).
pub(crate) fn rules_apply(
    dir: &crate::Directory,
    mail_from: Option<&Address>,
    message: &[u8],
) -> bool {
    mail_from.is_some_and(|a| is_direct(dir, a.domain().as_str())) || names_direct(dir, message)
}

/// Whether a mailbox of `message`'s From or Sender fields is of a Direct partner's domain
/// (read leniently: a mailbox whose address does not parse still counts by what follows its
/// last `@`).
pub(crate) fn names_direct(dir: &crate::Directory, message: &[u8]) -> bool {
    let Ok(view) = MessageView::parse(message) else {
        return false;
    };
    view.headers()
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("from") || h.name.eq_ignore_ascii_case("sender"))
        .flat_map(|h| crate::addresses::mailboxes(&h.value()))
        .filter_map(|m| m.rsplit_once('@').map(|(_, d)| d.trim().to_string()))
        .any(|d| is_direct(dir, &d))
}

fn is_direct(dir: &crate::Directory, domain: &str) -> bool {
    postern_core::Domain::new(domain).is_ok_and(|d| {
        dir.partner_index_for(&d)
            .is_some_and(|i| dir.partners[i].profile == crate::PartnerProfile::Direct)
    })
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
        .flat_map(|h| crate::addresses::mailboxes(&h.value()))
        .any(|m| m.eq_ignore_ascii_case(&wanted))
}

/// The recipients of `recipients` that the message's To and Cc fields do not name.
pub(crate) fn not_routed(message: &[u8], recipients: &[Address]) -> Vec<Address> {
    let named: std::collections::HashSet<String> = MessageView::parse(message)
        .map(|view| {
            view.headers()
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("to") || h.name.eq_ignore_ascii_case("cc"))
                .flat_map(|h| crate::addresses::mailboxes(&h.value()))
                .map(|m| m.to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    recipients
        .iter()
        .filter(|r| !named.contains(&r.to_string().to_ascii_lowercase()))
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
