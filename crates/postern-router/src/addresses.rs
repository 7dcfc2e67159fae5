//! The addresses in header fields as the gateway reads them: the one From mailbox a signer
//! must be bound to, and the addr-specs of an address list (To, Cc, Sender,
//! Disposition-Notification-To). One reading for every check, so two checks never disagree
//! about whom a field names.

use postern_core::{Address, MessageView};

/// The one mailbox of the message's one From field, or `None` (no From, several From fields,
/// a group or a list of mailboxes, or an address that does not parse).
pub(crate) fn single_from(view: &MessageView<'_>) -> Option<Address> {
    let fields: Vec<_> = view
        .headers()
        .into_iter()
        .filter(|h| h.name.eq_ignore_ascii_case("from"))
        .collect();
    let [field] = fields.as_slice() else {
        return None;
    };
    let mailboxes = mailboxes(&field.value());
    let [one] = mailboxes.as_slice() else {
        return None;
    };
    Address::new(one).ok()
}

/// The addr-specs of an address list: each comma-separated mailbox (commas inside quotes,
/// comments and angle brackets do not separate), the part in angle brackets when there is one.
/// A group (`name: a, b;`) yields its members, so it never counts as one mailbox by accident.
pub(crate) fn mailboxes(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut depth, mut angle) = (false, 0usize, false);
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted || depth > 0 => {
                current.push(c);
                if let Some(n) = chars.next() {
                    current.push(n);
                }
                continue;
            }
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            '<' if !quoted && depth == 0 => angle = true,
            '>' if !quoted && depth == 0 => angle = false,
            ',' | ';' if !quoted && depth == 0 && !angle => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            ':' if !quoted && depth == 0 && !angle => {
                // A group's display name: what follows are its members.
                current.clear();
                out.push(String::from("group:"));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out.into_iter()
        .map(|m| addr_spec(&m))
        .filter(|m| !m.is_empty())
        .collect()
}

/// The address inside one mailbox: between angle brackets if present, else the text with
/// comments removed.
pub(crate) fn addr_spec(mailbox: &str) -> String {
    if let (Some(open), Some(close)) = (mailbox.rfind('<'), mailbox.rfind('>')) {
        if open < close {
            return mailbox
                .get(open + 1..close)
                .unwrap_or_default()
                .trim()
                .to_string();
        }
    }
    let mut out = String::new();
    let mut depth = 0usize;
    for c in mailbox.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

/// The domain an RFC 3183 domain signing authority's address names
/// (`domain-signing-authority@<domain>`), or `None` for any other address.
pub(crate) fn signing_authority_of(address: &str) -> Option<postern_core::Domain> {
    let (local, domain) = address.rsplit_once('@')?;
    if !local.eq_ignore_ascii_case("domain-signing-authority") {
        return None;
    }
    postern_core::Domain::new(domain).ok()
}
