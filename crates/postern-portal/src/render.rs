//! A stored message made safe to show: its HTML body through ammonia (scripts, event handlers,
//! forms, styles, images and every non-web URL removed; links open without a referrer), plain
//! text escaped by the page template, attachments listed for download (never shown inline).

use std::collections::HashSet;
use std::sync::LazyLock;

use mail_parser::MimeHeaders;

use crate::letters::{one_line, safe_file_name};

/// What the message page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// From, as written in the message.
    pub from: String,
    /// Subject.
    pub subject: String,
    /// Date header, as written.
    pub date: String,
    /// The body: sanitised HTML, or `None` (then `text`).
    pub html: Option<String>,
    /// The plain text body (escaped when shown).
    pub text: String,
    /// Attachments: file name, size.
    pub attachments: Vec<(String, usize)>,
    /// The Message-ID, for a reply's In-Reply-To.
    pub message_id: Option<String>,
}

static SANITISER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    // Remote images are tracking pixels; inline ones would need a second request path. Neither
    // is shown; attachments are downloadable.
    b.rm_tags(["img"]);
    b.url_schemes(HashSet::from(["http", "https", "mailto"]));
    b.url_relative(ammonia::UrlRelative::Deny);
    b.link_rel(Some("noopener noreferrer nofollow"));
    b.strip_comments(true);
    b
});

/// Sanitises an HTML body.
pub fn sanitise(html: &str) -> String {
    SANITISER.clean(html).to_string()
}

/// Parses a stored message for the page. A message that does not parse is shown as text.
pub fn render(raw: &[u8]) -> Rendered {
    let Some(m) = postern_core::parse_message(raw) else {
        return Rendered {
            from: String::new(),
            subject: String::new(),
            date: String::new(),
            html: None,
            text: String::from_utf8_lossy(raw).into_owned(),
            attachments: Vec::new(),
            message_id: None,
        };
    };
    let from = m
        .from()
        .and_then(|a| a.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (None, Some(e)) => e.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .unwrap_or_default();
    let html = m
        .html_part(0)
        .filter(|p| p.is_text_html())
        .and_then(|p| p.text_contents())
        .map(sanitise);
    let text = m.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let attachments = m
        .attachments()
        .map(|p| {
            (
                safe_file_name(p.attachment_name().unwrap_or("attachment")),
                p.contents().len(),
            )
        })
        .collect();
    Rendered {
        from: one_line(&from, 300),
        subject: one_line(m.subject().unwrap_or(""), 300),
        date: m
            .header_raw("Date")
            .map(|d| one_line(d, 100))
            .unwrap_or_default(),
        html,
        text,
        attachments,
        message_id: m.message_id().map(|s| one_line(s, 300)),
    }
}

/// Attachment `n` (0-based): file name and bytes.
pub fn attachment(raw: &[u8], n: usize) -> Option<(String, Vec<u8>)> {
    let m = postern_core::parse_message(raw)?;
    let p = m.attachments().nth(n)?;
    Some((
        safe_file_name(p.attachment_name().unwrap_or("attachment")),
        p.contents().to_vec(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is a failure report
mod tests {
    use super::*;

    #[test]
    fn html_full_of_attacks_comes_out_inert() {
        let vectors = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
            "<a href=\"&#106;avascript:alert(1)\">x</a>",
            "<svg onload=alert(1)><script>alert(1)</script></svg>",
            "<div style=\"width: expression(alert(1))\">x</div>",
            "<style>body{background:url(https://track.example/p)}</style>",
            "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example\">",
            "<form action=\"https://evil.example\"><input name=p></form>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<object data=\"x.swf\"></object><embed src=x>",
            "<base href=\"https://evil.example/\">",
            "<a href=\"data:text/html,<script>alert(1)</script>\">x</a>",
            "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
            "<p onmouseover=\"alert(1)\">hover</p>",
            "<img src=\"https://track.example/pixel.gif\">",
            "<link rel=stylesheet href=https://evil.example/x.css>",
        ];
        let all = vectors.concat();
        let out = sanitise(&all).to_ascii_lowercase();
        for bad in [
            "<script",
            "onerror",
            "onload",
            "onmouseover",
            "javascript:",
            "<svg",
            "expression(",
            "<style",
            "<meta",
            "<form",
            "<input",
            "<iframe",
            "<object",
            "<embed",
            "<base",
            "data:",
            "<img",
            "<link",
            "track.example",
            "style=",
        ] {
            assert!(!out.contains(bad), "{bad} survived: {out}");
        }
        // The mXSS vector (<math><style>) swallows what follows; text before it stays.
        assert!(sanitise("<p onmouseover=\"alert(1)\">hover</p>").contains(">hover<"));
    }

    #[test]
    fn a_message_renders_with_its_attachments() {
        let raw = b"From: Dr A <a@h.example>\r\nSubject: Labs\r\nMessage-ID: <1@h>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/html\r\n\r\n<p>Hi <b>there</b><script>x()</script></p>\r\n--b\r\n\
Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"../../r.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n";
        let r = render(raw);
        assert_eq!(r.from, "Dr A <a@h.example>");
        assert_eq!(r.subject, "Labs");
        let html = r.html.unwrap();
        assert!(html.contains("<b>there</b>") && !html.contains("script"));
        assert_eq!(r.attachments, vec![("r.pdf".to_string(), 5)]);
        assert_eq!(attachment(raw, 0).unwrap().1, b"%PDF-");
        assert!(attachment(raw, 1).is_none());
    }
}
