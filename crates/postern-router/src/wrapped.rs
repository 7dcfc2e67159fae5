//! Wrapped messages: a protected content that is a whole message (`message/rfc822`), as Direct
//! HISPs send every message (the RIs' `WrappedMessage`) and as RFC 8551 §3.1 lets any S/MIME
//! sender protect its header fields.
//!
//! After opening, such a wrapper is replaced by the message inside: its header section is the
//! one that was signed and encrypted, so it is authoritative for From, To, Cc, Subject, Date and
//! Message-ID (and the signer is bound to its From, not to the outer one, which anyone on the
//! path could have written). The outer header section contributes its trace fields only, and
//! Date and Message-ID where the inner message has none. One level: a message wrapped twice
//! keeps its second wrapper as its content.

use postern_core::{MessageView, Opened};

/// Why a wrapper cannot be delivered as the message inside it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadWrapper {
    /// A Content-Transfer-Encoding RFC 2045 does not define.
    #[error("wrapped message with an unknown transfer encoding ({0})")]
    Encoding(String),
    /// What is inside has no header section, or no From.
    #[error("wrapped message without a header section naming its sender")]
    NoHeader,
}

/// Outer fields kept in front of the unwrapped message: trace fields (RFC 5322 §3.6.7).
const TRACE: [&str; 2] = ["received", "return-path"];

/// Outer fields taken only when the inner message lacks them.
const IF_MISSING: [&str; 2] = ["date", "message-id"];

/// A wrapped message taken out of its wrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwrapped {
    /// The message inside, the outer trace fields in front.
    pub message: Vec<u8>,
    /// The names (lower-case) of the header fields that came from inside: as protected as the
    /// wrapper was (the outer fields taken along are not).
    pub inner_fields: Vec<String>,
}

/// The message inside `opened` when its content is `message/rfc822`, with the outer trace
/// fields in front; `Ok(None)` when it is anything else.
pub fn unwrap(opened: &[u8]) -> Result<Option<Unwrapped>, BadWrapper> {
    // Not a message at all: nothing to unwrap (the caller judges it as it is).
    let Ok(view) = MessageView::parse(opened) else {
        return Ok(None);
    };
    let root = view.root();
    if root.mime_type() != "message/rfc822" {
        return Ok(None);
    }
    let cte = root
        .header("content-transfer-encoding")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !matches!(
        cte.as_str(),
        "" | "7bit" | "8bit" | "binary" | "base64" | "quoted-printable"
    ) {
        return Err(BadWrapper::Encoding(postern_core::display_text(&cte, 40)));
    }
    let inner = root.transfer_decoded_body();
    let inner_view = MessageView::parse(&inner).map_err(|_| BadWrapper::NoHeader)?;
    let inner_fields = inner_view.headers();
    if inner_view
        .header("from")
        .is_none_or(|f| f.trim().is_empty())
    {
        return Err(BadWrapper::NoHeader);
    }
    let inner_names: std::collections::HashSet<String> = inner_fields
        .iter()
        .map(|h| h.name.to_ascii_lowercase())
        .collect();
    let mut out = Vec::with_capacity(inner.len() + 1024);
    let mut push = |raw: &[u8]| {
        out.extend_from_slice(raw);
        if !raw.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
    };
    for h in view.headers() {
        let name = h.name.to_ascii_lowercase();
        if TRACE.contains(&name.as_str())
            || (IF_MISSING.contains(&name.as_str()) && !inner_names.contains(&name))
        {
            push(h.raw);
        }
    }
    // The inner header section as it was read: field by field, so a line the parser skipped
    // (no colon, white space only) never reaches a reader who might read it as a field —
    // a result field, or a second From — that none of our checks saw.
    for h in &inner_fields {
        push(h.raw);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(inner_view.body());
    // In order, each once.
    let mut named = std::collections::HashSet::new();
    let inner_fields = inner_fields
        .iter()
        .map(|h| h.name.to_ascii_lowercase())
        .filter(|n| named.insert(n.clone()))
        .collect();
    Ok(Some(Unwrapped {
        message: out,
        inner_fields,
    }))
}

/// The fields a Direct message shows outside its wrapper (the .NET RI's `MailHeadersUsed` and
/// the trace fields): enough to route and thread it; never the Subject, which may name a
/// patient.
const DIRECT_OUTER: [&str; 10] = [
    "received",
    "return-path",
    "from",
    "sender",
    "to",
    "cc",
    "date",
    "message-id",
    "in-reply-to",
    "references",
];

/// `view` wrapped as a Direct HISP sends it: the routing fields above outside, then
/// `Content-Type: message/rfc822` around the whole message (its header section without trace
/// fields or Bcc, and its body, in CRLF) — the entity that is signed and encrypted.
pub fn wrap(view: &MessageView<'_>) -> Vec<u8> {
    let inner = postern_core::mime::inner_entity(view, None);
    let mut out = Vec::with_capacity(inner.len() + 1024);
    for h in view.headers() {
        if DIRECT_OUTER.iter().any(|n| h.name.eq_ignore_ascii_case(n)) {
            postern_core::mime::push_outer_field(&mut out, h.name, h.raw_value);
        }
    }
    out.extend_from_slice(b"MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n");
    // RFC 2046 §5.2.1: 7bit, 8bit or binary only; say 8bit when it is not 7-bit text.
    if !inner.is_ascii() {
        out.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&inner);
    out
}

/// Replaces a wrapper in what a backend opened with the message inside (see [`unwrap`]):
/// every signature around the wrapper covers the header fields inside it too, so they join the
/// report's signed fields. Nothing changes for content that is not a wrapper.
pub fn unwrap_opened(opened: &mut Opened) -> Result<(), BadWrapper> {
    let Some(u) = unwrap(&opened.message)? else {
        return Ok(());
    };
    if !opened.report.signatures.is_empty() {
        opened.report.note_signed_fields(u.inner_fields);
    }
    opened.message = u.message;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INNER: &str = "From: <toby@redmond.example>\r\nTo: <biff@nhind.example>\r\nSubject: Simple Text Message\r\nContent-Type: text/plain\r\n\r\nYo.\r\n";

    fn wrapped(cte: &str, body: &str) -> Vec<u8> {
        format!(
            "Received: from a by b; Mon, 10 May 2010 14:53:27 -0700\r\nFrom: <mallory@redmond.example>\r\nSubject: outer\r\nDate: Mon, 10 May 2010 14:53:27 -0700\r\nMessage-ID: <outer@x>\r\nMIME-Version: 1.0\r\nContent-Type: Message/RFC822\r\n{cte}\r\n{body}"
        )
        .into_bytes()
    }

    /// The inner header section is the message's; the outer one gives its trace fields, and
    /// Date and Message-ID only where the inner message has none. Every encoding RFC 2045
    /// defines is undone.
    #[test]
    fn the_inner_message_is_delivered_with_the_outer_trace_fields() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(INNER);
        let qp = INNER.replace("Yo.", "Y=6F.");
        for (cte, body) in [
            ("", INNER.to_string()),
            ("Content-Transfer-Encoding: 7bit\r\n", INNER.to_string()),
            ("Content-Transfer-Encoding: 8bit\r\n", INNER.to_string()),
            ("Content-Transfer-Encoding: binary\r\n", INNER.to_string()),
            (
                "Content-Transfer-Encoding: base64\r\n",
                format!("{b64}\r\n"),
            ),
            ("Content-Transfer-Encoding: Quoted-Printable\r\n", qp),
        ] {
            let got = unwrap(&wrapped(cte, &body)).unwrap().unwrap();
            assert_eq!(got.inner_fields, ["from", "to", "subject", "content-type"]);
            let got = String::from_utf8(got.message).unwrap();
            let view = MessageView::parse(got.as_bytes()).unwrap();
            assert_eq!(
                view.header("from").unwrap().trim(),
                "<toby@redmond.example>"
            );
            assert_eq!(
                view.header("subject").unwrap().trim(),
                "Simple Text Message"
            );
            assert_eq!(view.root().mime_type(), "text/plain");
            assert!(got.starts_with("Received: from a by b"), "{got}");
            assert!(got.contains("Message-ID: <outer@x>\r\n"), "{got}");
            assert!(
                !got.contains("mallory") && !got.contains("outer\r\n"),
                "{got}"
            );
            assert!(got.ends_with("\r\n\r\nYo.\r\n"), "{got:?}");
        }
    }

    /// Wrapped for Direct: routing fields outside, no Subject and no Bcc anywhere, the whole
    /// message inside; unwrapping gives the message back.
    #[test]
    fn a_direct_wrapper_shows_routing_fields_only_and_unwraps_to_the_message() {
        let msg = "Received: from mua by mx; Mon, 10 May 2010 14:53:27 -0700\r\nFrom: dr@clinic.example\r\nTo: toby@redmond.example\r\nBcc: secret@clinic.example\r\nSubject: J. Doe, HIV test\r\nMessage-ID: <1@clinic.example>\r\nDate: Mon, 10 May 2010 14:53:27 -0700\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGr\u{fc}\u{df}e\n";
        let view = MessageView::parse(msg.as_bytes()).unwrap();
        let w = wrap(&view);
        let text = String::from_utf8(w.clone()).unwrap();
        let (outer, inner) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            !outer.contains("Subject") && !text.contains("Bcc"),
            "{text}"
        );
        assert!(outer.contains("Message-ID: <1@clinic.example>"), "{outer}");
        assert!(outer.contains("Content-Type: message/rfc822"), "{outer}");
        assert!(outer.contains("Content-Transfer-Encoding: 8bit"), "{outer}");
        assert!(inner.contains("Subject: J. Doe, HIV test\r\n"), "{inner}");
        assert!(!inner.contains("Received:"), "{inner}");
        let back = unwrap(&w).unwrap().unwrap();
        let view = MessageView::parse(&back.message).unwrap();
        assert_eq!(view.header("subject").unwrap().trim(), "J. Doe, HIV test");
        assert!(back.message.ends_with("Grüße\r\n".as_bytes()));
    }

    /// The inner header section is delivered as it was read, field by field: a line the
    /// parser skipped (no colon, white space only) cannot smuggle a result field or a second
    /// From past every check to a reader who reads headers more leniently.
    #[test]
    fn lines_the_parser_skipped_never_reach_the_reader_as_fields() {
        let inner = "From: me@partner.example\r\nX\r\n \r\nPostern-Signature: valid\r\nFrom: ceo@clinic.example\r\n\r\nbody\r\n";
        let got = unwrap(&wrapped("", inner)).unwrap().unwrap();
        let text = String::from_utf8(got.message).unwrap();
        let view = MessageView::parse(text.as_bytes()).unwrap();
        let head = String::from_utf8_lossy(view.header_section()).into_owned();
        assert!(!head.contains("Postern-Signature"), "{head}");
        assert!(!head.contains("ceo@"), "{head}");
        assert_eq!(
            view.headers()
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("from"))
                .count(),
            1,
            "{text}"
        );
    }

    /// Anything but a wrapper is left alone; a second wrapper inside stays the content.
    #[test]
    fn only_one_level_and_only_message_rfc822() {
        assert_eq!(unwrap(INNER.as_bytes()), Ok(None));
        let twice = String::from_utf8(wrapped("", &String::from_utf8(wrapped("", INNER)).unwrap()))
            .unwrap();
        let once = unwrap(twice.as_bytes()).unwrap().unwrap();
        let view = MessageView::parse(&once.message).unwrap();
        assert_eq!(view.root().mime_type(), "message/rfc822");
    }

    /// An encoding nobody defined, or nothing that names a sender inside: refused by name.
    #[test]
    fn a_wrapper_that_cannot_be_read_is_refused_with_its_reason() {
        assert_eq!(
            unwrap(&wrapped("Content-Transfer-Encoding: x-uuencode\r\n", INNER)),
            Err(BadWrapper::Encoding("x-uuencode".into()))
        );
        assert_eq!(
            unwrap(&wrapped("", "just some text\r\n")),
            Err(BadWrapper::NoHeader)
        );
        assert_eq!(
            unwrap(&wrapped("", "Subject: no sender\r\n\r\ntext\r\n")),
            Err(BadWrapper::NoHeader)
        );
    }
}
