//! A message reduced to its readable text: what is delivered when its content cannot be
//! trusted to be what the sender wrote (AES-CBC without a signature: EFAIL). Nothing in the
//! result can make a mail client fetch anything: it is one `text/plain` part, links are
//! removed, HTML is reduced to its text, attachments are withheld and listed.

use postern_core::{mime, MessageView, PartView};

/// Parts deeper than this are listed, not read (a hostile nesting costs nothing).
const MAX_DEPTH: usize = 8;

/// The header fields a text-only copy keeps.
const KEPT_FIELDS: &[&str] = &[
    "from",
    "to",
    "cc",
    "date",
    "subject",
    "message-id",
    "in-reply-to",
    "references",
];

/// The message as text only, with `notice` at the top of the body. The original header fields
/// stay except the MIME ones (they are rewritten well-formed); the body is the text of every
/// text part, HTML as text, and a list of what was withheld.
pub fn text_only(message: &[u8], notice: &str) -> Vec<u8> {
    let Ok(view) = MessageView::parse(message) else {
        return format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{notice}\r\n"
        )
        .into_bytes();
    };
    let mut text = String::new();
    let mut withheld = Vec::new();
    collect(&view.root(), 0, &mut text, &mut withheld);
    let mut out = Vec::with_capacity(message.len() / 2 + 512);
    // The header fields came out of the same malleable ciphertext: only those a reader needs
    // to tell what the message is stay (no Disposition-Notification-To, List-Unsubscribe or
    // Return-Receipt-To that a reader could act on), and the Subject loses its links too.
    for h in view.headers() {
        let name = h.name.to_ascii_lowercase();
        if !KEPT_FIELDS.contains(&name.as_str()) {
            continue;
        }
        if name == "subject" {
            // Judged as a reader shows it: encoded words decoded first (a link can hide in
            // =?utf-8?B?…?=), then written back encoded when it is not ASCII.
            let decoded = postern_core::parse_headers(message)
                .and_then(|m| m.subject().map(str::to_string))
                .unwrap_or_else(|| h.value());
            let cleaned = remove_links(&decoded);
            mime::push_outer_field(&mut out, h.name, encoded_words(&cleaned).as_bytes());
        } else {
            mime::push_outer_field(&mut out, h.name, h.raw_value);
        }
    }
    out.extend_from_slice(
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
    let mut body = format!("[{notice}]\n\n");
    body.push_str(&remove_links(&text));
    if !withheld.is_empty() {
        body.push_str("\n\n[Withheld from this copy:]\n");
        for w in &withheld {
            body.push_str(&format!("  - {w}\n"));
        }
    }
    out.extend_from_slice(&mime::to_crlf(body.as_bytes()));
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn collect(part: &PartView<'_, '_>, depth: usize, text: &mut String, withheld: &mut Vec<String>) {
    let kids = part.children();
    let t = part.mime_type();
    if !kids.is_empty() && depth < MAX_DEPTH {
        for k in &kids {
            collect(k, depth + 1, text, withheld);
        }
        return;
    }
    let name = part
        .content_type_param("name")
        .or_else(|| {
            part.header("content-disposition").and_then(|d| {
                d.split(';')
                    .find_map(|p| p.trim().strip_prefix("filename=").map(str::to_string))
            })
        })
        .map(|n| n.trim_matches('"').to_string());
    let attachment = part.header("content-disposition").is_some_and(|d| {
        d.trim_start()
            .to_ascii_lowercase()
            .starts_with("attachment")
    });
    let body = part.decoded_body();
    match t.as_str() {
        "text/plain" | "" if !attachment => {
            text.push_str(&String::from_utf8_lossy(&body));
            text.push('\n');
        }
        "text/html" if !attachment => {
            text.push_str(&html_text(&String::from_utf8_lossy(&body)));
            text.push('\n');
        }
        _ => withheld.push(format!(
            "{} ({t}, {} bytes)",
            postern_core::printable(name.as_deref().unwrap_or("unnamed part")),
            body.len()
        )),
    }
}

/// The text a reader sees in HTML: scripts, styles and comments dropped, tags removed (block
/// ends become line breaks), the common character references decoded.
fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(rest.get(..lt).unwrap_or_default());
        let after = rest.get(lt..).unwrap_or_default();
        let lower: String = after
            .chars()
            .take(10)
            .collect::<String>()
            .to_ascii_lowercase();
        let skip_to = if lower.starts_with("<!--") {
            after.find("-->").map(|e| e + 3)
        } else if lower.starts_with("<script") || lower.starts_with("<style") {
            let close = if lower.starts_with("<script") {
                "</script"
            } else {
                "</style"
            };
            after
                .to_ascii_lowercase()
                .find(close)
                .and_then(|c| after.get(c..).and_then(|s| s.find('>')).map(|g| c + g + 1))
        } else {
            let tag: String = lower
                .trim_start_matches(['<', '/'])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if matches!(
                tag.as_str(),
                "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "table"
            ) {
                out.push('\n');
            }
            after.find('>').map(|g| g + 1)
        };
        rest = skip_to.and_then(|n| after.get(n..)).unwrap_or("");
    }
    out.push_str(rest);
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// `text` as a header value: as it is when ASCII, else RFC 2047 encoded words (UTF-8, base64,
/// at most 45 bytes of text each, cut at character boundaries).
fn encoded_words(text: &str) -> String {
    use base64::Engine;
    if text.is_ascii() {
        return text.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every word a mail reader could turn into a link becomes `[link removed]`: the text may have
/// been rewritten by an attacker to carry one, and a rewritten tag can be cut short by the
/// garbage block a CBC gadget leaves, spilling the rest of its URL into the text. A word is
/// judged after the characters a reader would not show are dropped (no-break and other
/// spaces, zero-width and direction marks: `evil\u{a0}.example` reads as one host) and
/// full-width dots read as dots, and it goes when it holds:
/// - a scheme: letters, then `:` and anything (`http:`, `ftp:`, `news:`, `javascript:`,
///   `tel:`, `mailto:`, `file:`, `data:`, `cid:`; also `host:8080`);
/// - `\\` or `//` (a UNC path, a protocol-relative URL);
/// - `@` between other characters (an address a reader links as mailto);
/// - a dotted host: a letter or digit, a dot, two letters (`evil.example`, `report.pdf`), or
///   a dotted quad (`10.0.0.10`);
/// - `src=` or `href=`.
///
/// Ordinary prose stays: times (`10:30`), dates (`12/03/2026`), `and/or`, `e.g.`, `3.5mg`,
/// `v1.2`. A file name goes too, which a copy of last resort can afford.
fn remove_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let words: Vec<&str> = line.split([' ', '\t']).collect();
        let kept: Vec<String> = words
            .iter()
            .map(|w| {
                if is_link(&reader_form(w)) {
                    "[link removed]".to_string()
                } else {
                    (*w).to_string()
                }
            })
            .collect();
        out.push_str(&kept.join(" "));
    }
    out
}

/// The word as a reader's autolinker sees it: invisible and spacing characters other than the
/// ASCII space dropped, ideographic and full-width dots as `.`, lower case.
fn reader_form(word: &str) -> String {
    word.chars()
        .filter(|c| !(c.is_whitespace() || postern_core::is_format(*c)))
        .map(|c| match c {
            '\u{3002}' | '\u{ff0e}' | '\u{ff61}' => '.',
            '\u{ff0f}' => '/',
            '\u{ff1a}' => ':',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_link(w: &str) -> bool {
    has_scheme(w)
        || w.contains("\\\\")
        || w.contains("//")
        || inner_at(w)
        || dotted_host(w)
        || w.contains("src=")
        || w.contains("href=")
}

/// A scheme anywhere in the word: a letter, then letters, digits, `+`, `-` or `.`, then `:`
/// and at least one more character (`10:30` starts with a digit and stays; a word ending in a
/// colon, `Note:`, stays).
fn has_scheme(w: &str) -> bool {
    let b = w.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        if c != b':' || i + 1 >= b.len() {
            return false;
        }
        // The run of scheme characters before the colon must start with a letter.
        let start = b[..i]
            .iter()
            .rposition(|x| !(x.is_ascii_alphanumeric() || matches!(x, b'+' | b'-' | b'.')))
            .map_or(0, |p| p + 1);
        start < i && b[start].is_ascii_alphabetic()
    })
}

/// `@` with something on both sides: `user@host` links as mail.
fn inner_at(w: &str) -> bool {
    let b = w.as_bytes();
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'@' && i > 0 && i + 1 < b.len() && b[i + 1] != b'.')
}

/// A letter or digit, a dot, then two letters (`name.tld`, anywhere in the word; Unicode
/// letters count, for internationalised top-level domains), or a dotted quad.
fn dotted_host(w: &str) -> bool {
    let chars: Vec<char> = w.chars().collect();
    let named = chars.iter().enumerate().any(|(i, &c)| {
        c == '.'
            && i > 0
            && chars[i - 1].is_alphanumeric()
            && chars[i + 1..]
                .iter()
                .take_while(|x| x.is_alphabetic())
                .count()
                >= 2
    });
    named || dotted_quad(w)
}

fn dotted_quad(w: &str) -> bool {
    w.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|run| {
            let parts: Vec<&str> = run.split('.').collect();
            parts.len() >= 4
                && parts
                    .windows(4)
                    .any(|q| q.iter().all(|p| !p.is_empty() && p.len() <= 3))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_spilled_out_of_a_cut_short_tag_is_removed_but_ordinary_text_stays() {
        let t = remove_links(
            "zz\u{fffd}s/evil.example/?a\"> and http:/x and result 12/03/2026, and/or e.g. this.",
        );
        assert!(!t.contains("evil.example"), "{t}");
        assert!(!t.contains("http:"), "{t}");
        assert!(
            t.contains("12/03/2026") && t.contains("and/or") && t.contains("e.g. this."),
            "{t}"
        );
    }

    /// Issue 22.8: every link form a mail reader turns into a link is neutralised (nine of
    /// these twenty survived), and ordinary clinical text is not.
    #[test]
    fn every_form_of_link_is_removed() {
        let forms = [
            "http://evil.example/x",
            "https://evil.example",
            "HTTP://EVIL.EXAMPLE",
            "//evil.example/x",
            "\\\\host\\share",
            "host:8080/?q",
            "10.0.0.10/exfil?",
            "10.0.0.10",
            "evil.example",
            "www.evil.example",
            "ftp:evil.example",
            "news:comp.lang",
            "javascript:alert(1)",
            "tel:+15550100",
            "mailto:x@evil.example",
            "collector@evil.example",
            "evil\u{a0}.example/x",
            "evil.\u{200b}example",
            "evil\u{3002}example",
            "data:text/html,<b>",
            "cid:part1",
            "file:///etc/passwd",
            "(see:evil.example)",
            "href=\"x\">",
        ];
        for f in forms {
            let out = remove_links(&format!("before {f} after"));
            assert_eq!(out, "before [link removed] after", "{f:?}");
        }
        let prose = "At 10:30 on 12/03/2026 the patient (e.g. J. Doe) took 3.5mg and/or \
                     v1.2 of it. Note: result negative; ratio 1:2, BP 120/80.";
        assert_eq!(remove_links(prose), prose);
    }

    #[test]
    fn html_becomes_text_without_anything_that_loads() {
        let msg = b"From: a@b.test\r\nSubject: =?utf-8?B?aHR0cDovL2V2aWwuZXhhbXBsZS94?= s\r\nDisposition-Notification-To: x@evil.test\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<html><style>p{background:url(http://e.test/a)}</style><p>Result: <b>negative</b></p><img src=\"http://evil.test/?x\"><script>alert(1)</script>See www.evil.test now</html>\r\n--x\r\nContent-Type: application/pdf; name=r.pdf\r\n\r\nPDF\r\n--x--\r\n";
        let out = String::from_utf8(text_only(msg, "text only")).unwrap();
        assert!(
            out.contains("Content-Type: text/plain; charset=utf-8"),
            "{out}"
        );
        assert!(out.contains("Result: negative"), "{out}");
        assert!(out.contains("r.pdf (application/pdf"), "{out}");
        for bad in [
            "<img",
            "http://",
            "www.evil",
            "<script",
            "alert",
            "url(",
            "multipart",
            "Disposition-Notification-To",
        ] {
            assert!(!out.contains(bad), "{bad} in {out}");
        }
        assert!(
            out.starts_with("From: a@b.test\r\nSubject: [link removed] s\r\n"),
            "{out}"
        );
    }
}
