//! Delivery notifications for Direct (the Direct Project's "Implementation Guide for Delivery
//! Notification", on RFC 8098 message disposition notifications): a HISP that accepts a Direct
//! message for its users answers each with a `processed` MDN, so the sending HISP knows it
//! arrived. Made here, sent by the caller through the normal outbound path (so it is wrapped,
//! signed and encrypted like any Direct message).
//!
//! Never for an MDN or a DSN (a notification about a notification loops), never to the null
//! sender, never for mail that was not delivered; and `Disposition-Notification-To` redirects
//! the MDN only within the sender's own domain (anyone may write that field: elsewhere it
//! would make us send mail to a stranger's address, backscatter).

use postern_core::{Address, MessageView};

use crate::Directory;

/// One notification to send: MAIL FROM, RCPT TO and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Its sender: our recipient who got the message (what the sending HISP tracks).
    pub from: Address,
    /// Where it goes.
    pub to: Address,
    /// The MDN itself (RFC 8098 `multipart/report`).
    pub message: Vec<u8>,
}

/// What every notification of one call shares.
#[derive(Debug, Clone)]
pub struct Stamp<'a> {
    /// The Date field's value (RFC 5322).
    pub date: &'a str,
    /// A unique word for each notification's Message-ID and MIME boundary; `{n}` is appended.
    pub unique: &'a str,
    /// The host named in Message-IDs.
    pub hostname: &'a str,
}

/// Which notification to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `processed`: our gateway accepted it (always, for every Direct message).
    Processed,
    /// `dispatched`: handed to the recipient's own mail system, for a message that asked for
    /// timely and reliable delivery, when our gateway is its destination (the .NET RI's
    /// `GatewayIsDestination`); carries the `X-DIRECT-FINAL-DESTINATION-DELIVERY` field.
    Dispatched,
    /// `failed`: it cannot be delivered (a timely-and-reliable message; others get a DSN).
    Failed {
        /// Why (safe to send: our next hop's reply or our words).
        why: String,
    },
}

/// The `processed` MDNs for a message from outside that was delivered to `recipients`
/// (`delivered` is the message as our users got it: opened and unwrapped): one per recipient,
/// when the envelope sender's partner entry has the Direct profile.
pub fn processed(
    dir: &Directory,
    mail_from: Option<&Address>,
    delivered: &[u8],
    recipients: &[Address],
    stamp: &Stamp<'_>,
) -> Vec<Notification> {
    notifications(
        dir,
        mail_from,
        delivered,
        recipients,
        stamp,
        &Kind::Processed,
    )
}

/// The MDNs of `kind` for a message from outside to `recipients`, under the same conditions as
/// [`processed`] (a Direct partner's message, not itself a notification, not from the null
/// sender).
pub fn notifications(
    dir: &Directory,
    mail_from: Option<&Address>,
    delivered: &[u8],
    recipients: &[Address],
    stamp: &Stamp<'_>,
    kind: &Kind,
) -> Vec<Notification> {
    let Some(sender) = mail_from else {
        return Vec::new();
    };
    let direct = dir
        .partner_index_for(sender.domain())
        .is_some_and(|i| dir.partners[i].profile == crate::PartnerProfile::Direct);
    let Ok(view) = MessageView::parse(delivered) else {
        return Vec::new();
    };
    if !direct || is_notification(&view) {
        return Vec::new();
    }
    let to = reply_address(&view, sender);
    let subject = view
        .header("subject")
        .map(|s| postern_core::display_text(s.trim(), 200))
        .unwrap_or_default();
    let original_id = view.header("message-id").and_then(|v| message_id_token(&v));
    recipients
        .iter()
        .enumerate()
        .map(|(n, rcpt)| Notification {
            from: rcpt.clone(),
            to: to.clone(),
            message: build(
                rcpt,
                &to,
                &subject,
                original_id.as_deref(),
                stamp,
                (n, kind),
            ),
        })
        .collect()
}

/// An MDN or a DSN (RFC 6522 `multipart/report`, whatever its report type).
fn is_notification(view: &MessageView<'_>) -> bool {
    view.root().mime_type() == "multipart/report"
}

/// `Disposition-Notification-To` when it names one address of the sender's own domain, else
/// the envelope sender.
fn reply_address(view: &MessageView<'_>, sender: &Address) -> Address {
    let asked: Vec<String> = view
        .headers()
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("disposition-notification-to"))
        .flat_map(|h| crate::addresses::mailboxes(&h.value()))
        .collect();
    match asked.as_slice() {
        [one] => Address::new(one)
            .ok()
            .filter(|a| {
                a.domain()
                    .as_str()
                    .eq_ignore_ascii_case(sender.domain().as_str())
            })
            .unwrap_or_else(|| sender.clone()),
        _ => sender.clone(),
    }
}

fn build(
    rcpt: &Address,
    to: &Address,
    subject: &str,
    original_id: Option<&str>,
    stamp: &Stamp<'_>,
    (n, kind): (usize, &Kind),
) -> Vec<u8> {
    let (word, title, said) = match kind {
        Kind::Processed => (
            "processed",
            "Processed",
            "was received and processed by its secure mail gateway.\r\n\
             This is not a sign that the recipient has read it.",
        ),
        Kind::Dispatched => (
            "dispatched",
            "Dispatched",
            "was delivered to the recipient's mailbox by its secure mail gateway.\r\n\
             This is not a sign that the recipient has read it.",
        ),
        Kind::Failed { .. } => (
            "failed",
            "Failed",
            "could not be delivered by the recipient's secure mail gateway.",
        ),
    };
    let unique = format!("{}.{word}.{n}", stamp.unique);
    let boundary = format!("=_postern_mdn_{unique}");
    let subject = if subject.is_empty() {
        title.to_string()
    } else {
        format!("{title}: {subject}")
    };
    let domain = rcpt.domain();
    let mut m = format!(
        "From: <{rcpt}>\r\n\
         To: <{to}>\r\n\
         Subject: {subject}\r\n\
         Date: {date}\r\n\
         Message-ID: <mdn.{unique}@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=disposition-notification;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         The message sent to {rcpt} {said}\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: message/disposition-notification\r\n\
         \r\n\
         Reporting-UA: {domain}; Postern\r\n\
         Original-Recipient: rfc822;{rcpt}\r\n\
         Final-Recipient: rfc822;{rcpt}\r\n",
        date = stamp.date,
        host = stamp.hostname,
    );
    if let Some(id) = original_id {
        m.push_str(&format!("Original-Message-ID: {id}\r\n"));
    }
    m.push_str(&format!(
        "Disposition: automatic-action/MDN-sent-automatically; {word}\r\n"
    ));
    match kind {
        // The Java RI's reliable dispatched notification carries this extension field.
        Kind::Dispatched => m.push_str("X-DIRECT-FINAL-DESTINATION-DELIVERY:\r\n"),
        Kind::Failed { why } => m.push_str(&format!(
            "Failure: {}\r\n",
            postern_core::display_text(why, 300)
        )),
        Kind::Processed => {}
    }
    m.push_str(&format!("\r\n--{boundary}--\r\n"));
    m.into_bytes()
}

/// What a notification from a partner reports about one of our messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    /// The Message-ID of the message it is about (`<…>`).
    pub original_message_id: String,
    /// The recipient it is about (the address after `rfc822;`).
    pub final_recipient: String,
    /// What happened.
    pub disposition: Disposition,
}

/// An MDN's disposition type (RFC 8098 §3.2.6; `failed` as the Direct guide uses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Accepted by the recipient's HISP.
    Processed,
    /// Handed to the recipient's own system (timely and reliable delivery).
    Dispatched,
    /// It will not arrive.
    Failed,
    /// Anything else (displayed, deleted): not tracked.
    Other,
}

/// The report of an MDN (`multipart/report; report-type=disposition-notification` with a
/// `message/disposition-notification` part naming the original Message-ID and one final
/// recipient), or `None` for anything else.
pub fn read(message: &[u8]) -> Option<Reported> {
    let view = MessageView::parse(message).ok()?;
    let root = view.root();
    if root.mime_type() != "multipart/report"
        || !root
            .content_type_param("report-type")
            .is_some_and(|t| t.eq_ignore_ascii_case("disposition-notification"))
    {
        return None;
    }
    let children = root.children();
    let part = children
        .iter()
        .find(|p| p.mime_type() == "message/disposition-notification")?;
    let body = part.transfer_decoded_body();
    // Bounded: a report is a handful of short fields.
    let text = String::from_utf8_lossy(&body[..body.len().min(16 * 1024)]).into_owned();
    let fields = report_fields(&text);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let original_message_id = message_id_token(&field("original-message-id")?)?;
    let final_recipient = field("final-recipient")?;
    let (kind, address) = final_recipient.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("rfc822") {
        return None;
    }
    let address = crate::addresses::addr_spec(address.trim());
    let disposition = field("disposition")?;
    // "automatic-action/MDN-sent-automatically; processed/error": the type after the `;`,
    // before any modifier.
    let kind = disposition
        .split_once(';')
        .map(|(_, t)| t)
        .unwrap_or_default()
        .trim()
        .split(['/', ' ', '\t'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let disposition = match kind.as_str() {
        "processed" => Disposition::Processed,
        "dispatched" => Disposition::Dispatched,
        "failed" | "failure" => Disposition::Failed,
        _ => Disposition::Other,
    };
    Some(Reported {
        original_message_id,
        final_recipient: address,
        disposition,
    })
}

/// A Message-ID as both sides key it: the first `<…>` of the field's value (comments and
/// white space around it dropped), with no white space or angle bracket inside and at most
/// 250 characters; `None` otherwise (such a message cannot be tracked).
pub fn message_id_token(value: &str) -> Option<String> {
    let start = value.find('<')?;
    let rest = value.get(start..)?;
    let end = rest.find('>')?;
    let token = rest.get(..=end)?;
    let inside = token.get(1..token.len() - 1)?;
    (!inside.is_empty() && token.len() <= 250 && !inside.contains(['<', ' ', '\t', '\r', '\n']))
        .then(|| token.to_string())
}

/// `name: value` lines, continuation lines joined (RFC 8098 fields are header-like).
fn report_fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines().take(200) {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// Whether the sender asked for timely and reliable delivery (the Direct guide's
/// `Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true`):
/// then a `dispatched` notification is awaited as well as `processed`.
pub fn wants_reliable(message: &[u8]) -> bool {
    MessageView::parse(message).is_ok_and(|v| {
        v.headers().iter().any(|h| {
            h.name
                .eq_ignore_ascii_case("disposition-notification-options")
                && h.value()
                    .to_ascii_lowercase()
                    .contains("x-direct-final-destination-delivery")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Directory {
        Directory::from_toml(
            "[our]\ndomains = [\"nhind.example\"]\n\
             [[partner]]\ndomain = \"redmond.example\"\nstandards = [\"smime\"]\n\
             policy = \"required\"\nprofile = \"direct\"\n\
             [[partner]]\ndomain = \"plain.example\"\nstandards = [\"smime\"]\n\
             policy = \"required\"\n",
            std::path::Path::new("."),
        )
        .unwrap()
    }

    fn a(s: &str) -> Address {
        Address::new(s).unwrap()
    }

    const STAMP: Stamp<'static> = Stamp {
        date: "Sat, 01 Jun 2019 12:00:00 +0000",
        unique: "q1",
        hostname: "gw.nhind.example",
    };

    const MSG: &str = "From: toby@redmond.example\r\nTo: biff@nhind.example, nurse@nhind.example\r\nSubject: Simple Text Message\r\nMessage-ID: <m1@redmond.example>\r\n\r\nYo.\r\n";

    /// One processed MDN per delivered recipient, from that recipient to the sender, naming
    /// the original by its Message-ID; RFC 8098's fields as the Direct guide wants them.
    #[test]
    fn each_recipient_of_direct_mail_answers_processed() {
        let rcpts = [a("biff@nhind.example"), a("nurse@nhind.example")];
        let got = processed(
            &dir(),
            Some(&a("toby@redmond.example")),
            MSG.as_bytes(),
            &rcpts,
            &STAMP,
        );
        assert_eq!(got.len(), 2);
        for (n, r) in rcpts.iter().enumerate() {
            assert_eq!(&got[n].from, r);
            assert_eq!(got[n].to, a("toby@redmond.example"));
            let text = String::from_utf8(got[n].message.clone()).unwrap();
            let view = MessageView::parse(text.as_bytes()).unwrap();
            assert_eq!(view.root().mime_type(), "multipart/report");
            assert_eq!(
                view.header("subject").unwrap().trim(),
                "Processed: Simple Text Message"
            );
            let report = &view.root().children()[1];
            assert_eq!(report.mime_type(), "message/disposition-notification");
            let body = String::from_utf8_lossy(report.raw_body()).into_owned();
            assert!(
                body.contains(&format!("Final-Recipient: rfc822;{r}\r\n")),
                "{body}"
            );
            assert!(body.contains("Original-Message-ID: <m1@redmond.example>\r\n"));
            assert!(body
                .contains("Disposition: automatic-action/MDN-sent-automatically; processed\r\n"));
            assert!(body.contains("Reporting-UA: nhind.example; Postern\r\n"));
        }
        assert_ne!(got[0].message, got[1].message, "each its own Message-ID");
    }

    /// None for the null sender, a partner without the Direct profile, a stranger, or a
    /// notification (MDN or DSN); Disposition-Notification-To counts only within the
    /// sender's domain.
    #[test]
    fn no_mdn_where_none_is_due_and_none_to_a_stranger() {
        let rcpts = [a("biff@nhind.example")];
        let none = |from: Option<&str>, msg: &str| {
            processed(&dir(), from.map(a).as_ref(), msg.as_bytes(), &rcpts, &STAMP).is_empty()
        };
        assert!(none(None, MSG));
        assert!(none(Some("x@plain.example"), MSG));
        assert!(none(Some("x@stranger.example"), MSG));
        let mdn = "From: toby@redmond.example\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n--b--\r\n";
        assert!(none(Some("toby@redmond.example"), mdn));
        let to = |dnt: &str| {
            let msg = format!("Disposition-Notification-To: {dnt}\r\n{MSG}");
            processed(
                &dir(),
                Some(&a("toby@redmond.example")),
                msg.as_bytes(),
                &rcpts,
                &STAMP,
            )[0]
            .to
            .to_string()
        };
        assert_eq!(to("<tracker@redmond.example>"), "tracker@redmond.example");
        assert_eq!(to("victim@elsewhere.example"), "toby@redmond.example");
        assert_eq!(
            to("a@redmond.example, b@redmond.example"),
            "toby@redmond.example"
        );
    }

    /// What we send reads back as what it says; other dispositions, modifiers and a report
    /// with no Original-Message-ID are read as the guide means them.
    #[test]
    fn a_notification_reads_back() {
        let rcpts = [a("biff@nhind.example")];
        let sent = processed(
            &dir(),
            Some(&a("toby@redmond.example")),
            MSG.as_bytes(),
            &rcpts,
            &STAMP,
        );
        assert_eq!(
            read(&sent[0].message),
            Some(Reported {
                original_message_id: "<m1@redmond.example>".into(),
                final_recipient: "biff@nhind.example".into(),
                disposition: Disposition::Processed,
            })
        );
        let report = |fields: &str| {
            format!(
                "From: toby@redmond.example\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: message/disposition-notification\r\n\r\n{fields}\r\n--b--\r\n"
            )
        };
        let got = read(report("Final-Recipient: rfc822; <Toby@Redmond.example>\r\nOriginal-Message-ID: <m2@x>\r\nDisposition: automatic-action/MDN-sent-automatically;\r\n dispatched\r\nX-DIRECT-FINAL-DESTINATION-DELIVERY:").as_bytes()).unwrap();
        assert_eq!(got.disposition, Disposition::Dispatched);
        assert_eq!(got.final_recipient, "Toby@Redmond.example");
        let failed = read(report("Final-Recipient: rfc822;t@r.example\r\nOriginal-Message-ID: <m3@x>\r\nDisposition: automatic-action/MDN-sent-automatically; failed/error\r\nFailure: mailbox full").as_bytes()).unwrap();
        assert_eq!(failed.disposition, Disposition::Failed);
        assert_eq!(
            read(
                report("Final-Recipient: rfc822;t@r.example\r\nDisposition: a/b; processed")
                    .as_bytes()
            ),
            None
        );
        assert_eq!(read(MSG.as_bytes()), None);
        assert!(wants_reliable(b"Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\nFrom: a@b.example\r\n\r\nx"));
        assert!(!wants_reliable(MSG.as_bytes()));
    }

    /// Dispatched and failed notifications read back as what they say, and name themselves.
    #[test]
    fn dispatched_and_failed_notifications_read_back() {
        let rcpts = [a("biff@nhind.example")];
        let from = Some(a("toby@redmond.example"));
        let make = |kind: Kind| {
            notifications(&dir(), from.as_ref(), MSG.as_bytes(), &rcpts, &STAMP, &kind).remove(0)
        };
        let d = make(Kind::Dispatched);
        assert_eq!(
            read(&d.message).unwrap().disposition,
            Disposition::Dispatched
        );
        let text = String::from_utf8(d.message).unwrap();
        assert!(
            text.contains("Subject: Dispatched: Simple Text Message"),
            "{text}"
        );
        assert!(
            text.contains("X-DIRECT-FINAL-DESTINATION-DELIVERY:"),
            "{text}"
        );
        let f = make(Kind::Failed {
            why: "550 5.1.1 no such user\r\nInjected: yes".into(),
        });
        assert_eq!(read(&f.message).unwrap().disposition, Disposition::Failed);
        let text = String::from_utf8(f.message).unwrap();
        assert!(
            text.contains("Failure: 550 5.1.1 no such user Injected: yes\r\n"),
            "{text}"
        );
        assert!(!text.contains("\r\nInjected"), "{text}");
    }

    /// Both sides key a message by the same token, or do not track it.
    #[test]
    fn message_ids_are_keyed_by_their_token() {
        assert_eq!(message_id_token(" (c) <a@b> (d)").as_deref(), Some("<a@b>"));
        assert_eq!(message_id_token("<a@b>").as_deref(), Some("<a@b>"));
        for bad in [
            "a@b",
            "<>",
            "<a b@c>",
            "<a",
            &format!("<{}@b>", "x".repeat(300)),
        ] {
            assert_eq!(message_id_token(bad), None, "{bad}");
        }
    }
}
