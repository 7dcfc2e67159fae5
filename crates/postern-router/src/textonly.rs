//! A message reduced to its readable text: what is delivered when its content cannot be
//! trusted to be what the sender wrote (AES-CBC without a signature: EFAIL). Nothing in the
//! result can make a mail client fetch anything: it is one `text/plain` part, links are
//! removed, HTML is reduced to its text, attachments are withheld and listed.

use postern_core::{mime, MessageView, PartView};

/// Parts deeper than this are listed, not read (a hostile nesting costs nothing).
const MAX_DEPTH: usize = 8;

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
    for h in view.headers() {
        let name = h.name.to_ascii_lowercase();
        if name.starts_with("content-") || name == "mime-version" {
            continue;
        }
        mime::push_outer_field(&mut out, h.name, h.raw_value);
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

/// Every word that is or holds a link (`scheme://`, `scheme:/`, `www.`, `data:`, `cid:`, or a
/// host name followed by a path or query, `evil.example/?x`) becomes `[link removed]`: the text
/// may have been rewritten by an attacker to carry one, and a rewritten tag can be cut short by
/// the garbage block a CBC gadget leaves, spilling the rest of its URL into the text.
fn remove_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let words: Vec<String> = line
            .split(' ')
            .map(|w| {
                let l = w.to_ascii_lowercase();
                if l.contains("://")
                    || l.contains("http:")
                    || l.contains("https:")
                    || host_with_path(&l)
                    || l.contains("www.")
                    || l.contains("data:")
                    || l.contains("cid:")
                    || l.contains("src=")
                    || l.contains("href=")
                {
                    "[link removed]".to_string()
                } else {
                    w.to_string()
                }
            })
            .collect();
        out.push_str(&words.join(" "));
    }
    out
}

/// `name.tld/…`, `name.tld?…` or `name.tld#…` anywhere in a word: a host and a path, as
/// autolinking mail clients read them (dates like 12/03/2026 and words like and/or have no
/// dotted letters before the slash).
fn host_with_path(word: &str) -> bool {
    let b = word.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        if c != b'.' || i == 0 || !b[i - 1].is_ascii_alphanumeric() {
            return false;
        }
        let letters = b[i + 1..]
            .iter()
            .take_while(|x| x.is_ascii_alphabetic())
            .count();
        letters >= 2 && matches!(b.get(i + 1 + letters), Some(b'/' | b'?' | b'#'))
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
        assert!(host_with_path("a.bc/"));
        assert!(host_with_path("x.com?q"));
        assert!(!host_with_path("v1.2/3"));
        assert!(!host_with_path(".com/"));
    }

    #[test]
    fn html_becomes_text_without_anything_that_loads() {
        let msg = b"From: a@b.test\r\nSubject: s\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<html><style>p{background:url(http://e.test/a)}</style><p>Result: <b>negative</b></p><img src=\"http://evil.test/?x\"><script>alert(1)</script>See www.evil.test now</html>\r\n--x\r\nContent-Type: application/pdf; name=r.pdf\r\n\r\nPDF\r\n--x--\r\n";
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
        ] {
            assert!(!out.contains(bad), "{bad} in {out}");
        }
        assert!(out.starts_with("From: a@b.test\r\nSubject: s\r\n"), "{out}");
    }
}
