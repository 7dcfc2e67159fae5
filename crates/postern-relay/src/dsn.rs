//! Delivery status notifications (RFC 3464 inside RFC 6522 multipart/report). We return the
//! original's header section only, never its body: the body may be the very PHI that policy
//! refused to send, and the sender still has it.

use crate::spool::{Entry, Recipient};
use crate::util::rfc5322_date;

/// One recipient that failed for good.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    /// The recipient.
    pub rcpt: &'a Recipient,
    /// Enhanced status code, e.g. `5.7.1`.
    pub status: postern_core::EnhancedStatus,
    /// The reason (a next hop's reply or our policy's words).
    pub reason: &'a str,
}

/// Whether the sender asked for failure notices for this recipient (RFC 3461 NOTIFY).
pub fn wants_failure_notice(r: &Recipient) -> bool {
    r.notify
        .as_deref()
        .is_none_or(|n| n.split(',').any(|x| x.trim() == "FAILURE"))
}

/// Builds the DSN message for `entry`'s sender.
pub fn build(
    hostname: &str,
    entry: &Entry,
    failures: &[Failure<'_>],
    original: &[u8],
    now_secs: u64,
    boundary_seed: &str,
) -> Vec<u8> {
    let to = entry.mail_from.as_deref().unwrap_or("");
    let boundary = format!("=_postern_dsn_{boundary_seed}");
    let mut m = report_head(
        hostname,
        to,
        "Undelivered Mail Returned to Sender",
        now_secs,
        boundary_seed,
    );
    m.push_str(
        "Your message could not be delivered to one or more recipients.\r\n\
         It has not been sent to them, in clear or otherwise.\r\n\r\n",
    );
    for f in failures {
        m.push_str(&format!("<{}>: {}\r\n", f.rcpt.address, one_line(f.reason)));
    }
    m.push_str(&format!(
        "\r\n--{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {hostname}\r\n"
    ));
    if let Some(envid) = &entry.envid {
        m.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(envid)));
    }
    // The message it is about, by its Message-ID: what a Direct sender's tracking keys on
    // (the Direct guide's X-Original-Message-ID), and a help to anyone matching the bounce.
    if let Some(id) = postern_core::MessageView::parse(original)
        .ok()
        .and_then(|v| v.header("message-id"))
        .and_then(|v| postern_router::mdn::message_id_token(&v))
    {
        m.push_str(&format!("X-Original-Message-ID: {id}\r\n"));
    }
    m.push_str(&format!(
        "Arrival-Date: {}\r\n",
        rfc5322_date(entry.received_at)
    ));
    for f in failures {
        m.push_str("\r\n");
        if let Some(o) = &f.rcpt.orcpt {
            m.push_str(&format!("Original-Recipient: {}\r\n", one_line(o)));
        }
        m.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n\
             Action: failed\r\n\
             Status: {}\r\n\
             Diagnostic-Code: smtp; {}\r\n",
            f.rcpt.address,
            f.status,
            one_line(f.reason)
        ));
    }
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ));
    let mut out = m.into_bytes();
    out.extend_from_slice(&postern_core::mime::crlf(header_section(original)));
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// The header section of a message (up to and including the blank line's first CRLF).
fn header_section(msg: &[u8]) -> &[u8] {
    for sep in [&b"\r\n\r\n"[..], b"\n\n"] {
        if let Some(i) = memchr::memmem::find(msg, sep) {
            return &msg[..i + sep.len() / 2];
        }
    }
    msg
}

/// Reasons come from next hops and may hold anything: one printable line, bounded (the one
/// sanitiser for text from mail).
/// The DSN that tells our user that a Direct message got no notification in time from the
/// HISPs of `late`'s recipients (all rows of one message and one sender; RFC 3464: Action
/// failed, Status 5.4.7 each), naming the message by `X-Original-Message-ID` (we keep no copy
/// of it to return).
pub fn timed_out(
    hostname: &str,
    late: &[postern_store::Tracked],
    now_secs: u64,
    boundary_seed: &str,
) -> Vec<u8> {
    let Some(first) = late.first() else {
        return Vec::new();
    };
    let boundary = format!("=_postern_dsn_{boundary_seed}");
    let waited = first.deadline.saturating_sub(first.sent_at);
    let wanted = if first.reliable {
        "processed and dispatched notifications"
    } else {
        "a processed notification"
    };
    let id = one_line(&first.message_id);
    let mut m = report_head(
        hostname,
        &one_line(&first.sender),
        "Delivery not confirmed: no notification from the recipient's gateway",
        now_secs,
        boundary_seed,
    );
    m.push_str(&format!(
        "Your message {id} was handed to the secure (Direct) gateways of the recipients\r\n\
         below, but {wanted} did not come back within {waited} seconds.\r\n\
         It may not have reached them: please confirm another way.\r\n\r\n"
    ));
    for t in late {
        m.push_str(&format!("<{}>\r\n", one_line(&t.recipient)));
    }
    m.push_str(&format!(
        "\r\n--{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {hostname}\r\n\
         X-Original-Message-ID: {id}\r\n\
         Arrival-Date: {sent}\r\n",
        sent = rfc5322_date(u64::try_from(first.sent_at).unwrap_or(0)),
    ));
    for t in late {
        m.push_str(&format!(
            "\r\nFinal-Recipient: rfc822;{}\r\n\
             Action: failed\r\n\
             Status: 5.4.7\r\n\
             Diagnostic-Code: X-Postern; no delivery notification within {waited} seconds\r\n",
            one_line(&t.recipient)
        ));
    }
    m.push_str(&format!("\r\n--{boundary}--\r\n"));
    m.into_bytes()
}

/// A DSN's header section and the start of its human-readable part, up to the text that says
/// what happened (RFC 6522 `multipart/report; report-type=delivery-status`, the boundary made
/// from `boundary_seed`, as the callers close it).
fn report_head(
    hostname: &str,
    to: &str,
    subject: &str,
    now_secs: u64,
    boundary_seed: &str,
) -> String {
    let boundary = format!("=_postern_dsn_{boundary_seed}");
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{to}>\r\n\
         Subject: {subject}\r\n\
         Date: {date}\r\n\
         Message-ID: <dsn.{boundary_seed}@{hostname}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated delivery status notification.\r\n\
         \r\n--{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         This is the mail gateway at {hostname}.\r\n\
         \r\n",
        date = rfc5322_date(now_secs),
    )
}

fn one_line(s: &str) -> String {
    postern_core::display_text(s, 500)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::Origin;

    #[test]
    fn dsn_has_the_report_parts_and_no_body() {
        let mut r = Recipient::new("x@partner.example".into());
        r.orcpt = Some("rfc822;x@partner.example".into());
        let e = Entry {
            id: "ABC".into(),
            origin: Origin::Internal,
            received_at: 0,
            client: "127.0.0.1".into(),
            mail_from: Some("doc@clinic.example".into()),
            envid: Some("E1".into()),
            ret: None,
            recipients: vec![r.clone()],
            attempts: 1,
            next_attempt: 0,
            size: 0,
            released: false,
            inspection: None,
        };
        let f = [Failure {
            rcpt: &r,
            status: postern_core::EnhancedStatus::REFUSED,
            reason: "no usable certificate\r\nInjected: yes",
        }];
        let orig = b"Subject: labs\r\nFrom: doc@clinic.example\r\nMessage-ID: (c) <m1@clinic.example>\r\n\r\nSSN 123-45-6789\r\n";
        let d = String::from_utf8(build("gw.example", &e, &f, orig, 0, "B1")).unwrap();
        assert!(d.contains("report-type=delivery-status"));
        assert!(d.contains(
            "Final-Recipient: rfc822; x@partner.example\r\nAction: failed\r\nStatus: 5.7.1\r\n"
        ));
        assert!(d.contains("Original-Envelope-Id: E1"));
        assert!(d.contains("X-Original-Message-ID: <m1@clinic.example>\r\n"));
        assert!(d.contains("Subject: labs\r\n"));
        assert!(!d.contains("123-45-6789"), "the body must not come back");
        assert!(!d.contains("\r\nInjected:"), "reasons stay on one line");
        assert!(d.ends_with("--=_postern_dsn_B1--\r\n"));
    }

    /// The timeout DSN: one per message and sender, every late recipient with 5.4.7, the
    /// message named by its Message-ID, and no line break from stored values.
    #[test]
    fn the_timeout_dsn_names_the_message_and_every_late_recipient() {
        let row = |r: &str| postern_store::Tracked {
            message_id: "<m2@nhind.example>".into(),
            recipient: r.into(),
            sender: "biff@nhind.example".into(),
            reliable: false,
            state: postern_store::TrackState::TimedOut,
            sent_at: 100,
            deadline: 3700,
        };
        let d = String::from_utf8(timed_out(
            "gw.example",
            &[
                row("a@redmond.example"),
                row("b@redmond.example\r\nInjected: yes"),
            ],
            4000,
            "B2",
        ))
        .unwrap();
        assert!(d.starts_with(
            "From: Mail Delivery System <MAILER-DAEMON@gw.example>\r\nTo: <biff@nhind.example>\r\n"
        ));
        assert!(d.contains("X-Original-Message-ID: <m2@nhind.example>\r\n"));
        assert_eq!(d.matches("Status: 5.4.7\r\n").count(), 2, "{d}");
        assert!(d.contains("within 3600 seconds"), "{d}");
        assert!(!d.contains("\r\nInjected:"), "{d}");
        assert!(timed_out("gw.example", &[], 0, "x").is_empty());
    }
}
