//! The mail the portal writes: the notification, the one-time code, the read receipt and a
//! recipient's reply. The first three carry no PHI: not the subject (unless configured), not a
//! word of the message. Every value from a message (a display name, a subject) is reduced to
//! one line of printable text before it is written anywhere.

use mail_builder::headers::address::Address as MbAddress;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::MessageBuilder;

use crate::settings::PortalSettings;
use crate::store::Deposited;

/// One line of printable text, at most `max` characters.
pub fn one_line(s: &str, max: usize) -> String {
    // One sanitiser for every name taken from mail (see postern_core::display_text).
    postern_core::display_text(s, max)
}

/// `2026-12-30` from unix seconds (UTC).
pub use postern_core::civil::utc_day as day;

/// `2026-12-30 14:05 UTC`.
pub use postern_core::civil::utc_minute as moment;

fn from<'a>(s: &'a PortalSettings) -> MbAddress<'a> {
    MbAddress::new_address(Some(s.organisation.as_str()), s.from.as_str())
}

fn support_line(s: &PortalSettings) -> String {
    if s.support.is_empty() {
        String::new()
    } else {
        format!("\nQuestions? {}\n", one_line(&s.support, 200))
    }
}

/// How a sender is named to a recipient: the address (which our own mail server vouches for),
/// with the display name, short and sanitised, beside it. A display name alone could say
/// anything ("IT desk: your password expired, visit …").
pub fn sender_label(address: &str, display_name: &str) -> String {
    let address = one_line(address, 200);
    let name = one_line(display_name, 40);
    if name.is_empty() || name.eq_ignore_ascii_case(&address) {
        address
    } else {
        format!("{name} <{address}>")
    }
}

/// The notification for one recipient. Its Subject names our organisation and the sender's
/// address only; the body names the sender as [`sender_label`] does.
pub fn notification(
    s: &PortalSettings,
    base_url: &str,
    recipient: &str,
    sender: &str,
    sender_name: &str,
    subject: &str,
    d: &Deposited,
) -> std::io::Result<Vec<u8>> {
    let org = one_line(&s.organisation, 100);
    let who = sender_label(sender, sender_name);
    let address = one_line(sender, 200);
    let link = format!("{base_url}/m/{}", d.token);
    let about = if s.show_subject {
        format!("Subject: {}\n\n", one_line(subject, 200))
    } else {
        String::new()
    };
    let text = format!(
        "{who} at {org} has sent you a secure message.\n\n{about}\
         Open it here:\n{link}\n\n\
         Reference: {reference}\n\
         The page you open will show the same reference. If it does not, close it.\n\n\
         To read the message you will be sent a one-time code by email. We never ask for a \
         password or personal details by email.\n\n\
         The message can be read until {expiry}.\n{support}",
        reference = d.reference,
        expiry = day(d.expires_at),
        support = support_line(s),
    );
    MessageBuilder::new()
        .from(from(s))
        .to(recipient)
        .subject(format!("Secure message from {address} ({org})"))
        .date(crate::now())
        .message_id(format!("{}.notify@{}", d.id, domain_of(&s.from)))
        .header("Auto-Submitted", Text::new("auto-generated"))
        .text_body(text)
        .write_to_vec()
}

/// The one-time code.
pub fn code(
    s: &PortalSettings,
    recipient: &str,
    code: &str,
    reference: &str,
    minutes: i64,
) -> std::io::Result<Vec<u8>> {
    let org = one_line(&s.organisation, 100);
    let (a, b) = code.split_at_checked(4).unwrap_or((code, ""));
    let text = format!(
        "Your one-time code for the secure message {reference}:\n\n    {a} {b}\n\n\
         It works once, for {minutes} minutes. If you did not ask for it, ignore this email: \
         nobody can read the message without the code.\n{}",
        support_line(s)
    );
    MessageBuilder::new()
        .from(from(s))
        .to(recipient)
        .subject(format!("Your code for {org} secure mail: {a} {b}"))
        .date(crate::now())
        .header("Auto-Submitted", Text::new("auto-generated"))
        .text_body(text)
        .write_to_vec()
}

/// The read receipt for our sender.
pub fn read_receipt(
    s: &PortalSettings,
    sender: &str,
    recipient: &str,
    reference: &str,
    subject: &str,
    at: i64,
) -> std::io::Result<Vec<u8>> {
    let text = format!(
        "Your secure message \"{}\" (reference {reference}) was opened by {recipient} on {}.\n",
        one_line(subject, 200),
        moment(at)
    );
    MessageBuilder::new()
        .from(from(s))
        .to(sender)
        .subject(format!("Opened: {}", one_line(subject, 150)))
        .date(crate::now())
        .header("Auto-Submitted", Text::new("auto-replied"))
        .text_body(text)
        .write_to_vec()
}

/// The notice to our sender: delivered through the portal, and the link that withdraws it.
pub fn sender_notice(
    s: &PortalSettings,
    base_url: &str,
    sender: &str,
    recipient: &str,
    subject: &str,
    d: &Deposited,
) -> std::io::Result<Vec<u8>> {
    let text = format!(
        "Your message \"{}\" to {recipient} was delivered through the secure portal.\n\n\
         Reference: {}\nAvailable to the recipient until {}.\n\n\
         To withdraw it (the recipient can then no longer read it), open:\n{base_url}/revoke/{}\n\n\
         Keep this email to yourself: the link withdraws the message without asking who you are.\n",
        one_line(subject, 200),
        d.reference,
        day(d.expires_at),
        d.revoke_token,
    );
    MessageBuilder::new()
        .from(from(s))
        .to(sender)
        .subject(format!("Sent securely: {}", one_line(subject, 150)))
        .date(crate::now())
        .header("Auto-Submitted", Text::new("auto-generated"))
        .text_body(text)
        .write_to_vec()
}

/// An uploaded file of a reply.
#[derive(Debug)]
pub struct Upload {
    /// File name as the browser sent it (cleaned here).
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// The reply of a recipient who proved `from` by `proof`, to the original sender only.
#[allow(clippy::too_many_arguments)]
pub fn reply(
    from_addr: &str,
    to: &str,
    subject: &str,
    in_reply_to: Option<&str>,
    text: &str,
    uploads: Vec<Upload>,
    portal_id: &str,
    proof: &str,
) -> std::io::Result<Vec<u8>> {
    let subject = one_line(subject, 200);
    let subject = if subject.to_ascii_lowercase().starts_with("re:") {
        subject
    } else {
        format!("Re: {subject}")
    };
    let mut b = MessageBuilder::new()
        .from(from_addr)
        .to(to)
        .subject(subject)
        .date(crate::now())
        // Raw, so that it stays readable ASCII (Text would become encoded-words); every
        // part is one line already (addresses from SMTP, our IDs, our proof names).
        .header(
            "Postern-Portal",
            Raw::new(one_line(
                &format!(
                    "reply from {from_addr} to portal message {portal_id}; address proven by {proof}"
                ),
                400,
            )),
        )
        .text_body(text.replace("\r\n", "\n"));
    if let Some(id) = in_reply_to {
        b = b.in_reply_to(id.to_string());
    }
    for u in uploads {
        b = b.attachment("application/octet-stream", safe_file_name(&u.name), u.data);
    }
    b.write_to_vec()
}

/// A file name without directories, control characters or quotes, never empty.
pub fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| {
            !c.is_control()
                && !postern_core::is_format(*c)
                && !matches!(c, '"' | '\\' | '/' | ':' | '*' | '?' | '<' | '>' | '|')
        })
        .take(150)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "attachment".into()
    } else {
        cleaned
    }
}

fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map_or("localhost", |(_, d)| d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is a failure report
mod tests {
    use super::*;

    #[test]
    fn dates_and_names() {
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(1_798_675_200), "2026-12-31");
        assert_eq!(moment(1_798_675_200 + 3600 + 120), "2026-12-31 01:02 UTC");
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(safe_file_name("a\"b\r\nc.pdf"), "abc.pdf");
        assert_eq!(safe_file_name("..."), "attachment");
        assert_eq!(one_line("a\r\nBcc: x\u{7}", 50), "a Bcc: x");
    }
}
