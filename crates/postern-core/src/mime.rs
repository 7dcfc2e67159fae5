//! MIME shared by every envelope: the inner entity we protect, the outer message we send, and
//! putting an opened message back together. S/MIME (RFC 8551) and PGP/MIME (RFC 3156) wrap the
//! same inner entity; only the wrapping differs.
//!
//! Output always uses CRLF line endings (RFC 5322 §2.1; RFC 8551 §3.1.1 and RFC 3156 §5
//! canonical form).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;

use crate::{HeaderField, MessageView, PartView};

/// Trace fields stay outside: they document the route and are added by every hop.
const TRACE: &[&str] = &["received", "return-path"];
/// Fields that must stay readable on the outside so the message can be routed and threaded
/// (the issue's "From, To, Cc, Date, Message-ID kept").
const ROUTING: &[&str] = &["from", "sender", "to", "cc", "date", "message-id"];
/// Never copied anywhere: a Bcc list must not reach any recipient.
const NEVER: &[&str] = &["bcc"];

fn is(name: &str, set: &[&str]) -> bool {
    set.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn is_content_header(name: &str) -> bool {
    name.len() > 8 && starts_with_ignore_case(name, "content-")
}

/// Does `s` begin with `prefix`, ASCII case ignored? Compares bytes, so a multi-byte character
/// at the cut (a header named `Contenté:`) is just a mismatch, never a panic.
pub fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// Converts bare LF to CRLF (leaves existing CRLF alone).
pub fn to_crlf(input: &[u8]) -> Vec<u8> {
    crlf(input).into_owned()
}

/// [`to_crlf`] for an owned buffer: returned as is when already canonical.
pub fn into_crlf(input: Vec<u8>) -> Vec<u8> {
    match crlf(&input) {
        std::borrow::Cow::Borrowed(_) => input,
        std::borrow::Cow::Owned(v) => v,
    }
}

/// Like [`to_crlf`], but borrows when the input is already canonical (the usual case for mail
/// that arrived over SMTP), so large bodies are not copied for nothing.
pub fn crlf(input: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let bare = memchr::memchr_iter(b'\n', input).filter(|&i| i == 0 || input[i - 1] != b'\r');
    let extra = bare.count();
    if extra == 0 {
        return std::borrow::Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len() + extra);
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', input) {
        if i == 0 || input[i - 1] != b'\r' {
            out.extend_from_slice(&input[start..i]);
            out.extend_from_slice(b"\r\n");
            start = i + 1;
        }
    }
    out.extend_from_slice(&input[start..]);
    std::borrow::Cow::Owned(out)
}

fn push_field(out: &mut Vec<u8>, raw: &[u8]) {
    let f = crlf(raw);
    out.extend_from_slice(&f);
    if !f.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
}

/// Base64 with 76-character CRLF lines (RFC 2045 §6.8).
pub fn base64_lines(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    append_base64_lines(&mut out, data);
    out
}

/// Appends `data` as base64 with 76-character CRLF lines to `out`, encoding in place.
pub fn append_base64_lines(out: &mut Vec<u8>, data: &[u8]) {
    // 57 input bytes make one 76-character line; encode many lines per call.
    const LINE_IN: usize = 57;
    const LINES_PER_BLOCK: usize = 256;
    let engine = &base64::engine::general_purpose::STANDARD;
    let lines = data.len().div_ceil(LINE_IN);
    let mut pos = out.len();
    out.resize(pos + data.len().div_ceil(3) * 4 + lines * 2, 0);
    // Sized to what is encoded: a fixed 20 KB buffer cleared on every call cost more than the
    // encoding itself for the short writes a DER encoder makes.
    let mut line_buf = vec![0u8; 78 * LINES_PER_BLOCK.min(lines)];
    for block in data.chunks(LINE_IN * LINES_PER_BLOCK) {
        // The buffer holds a whole block's encoding, so this cannot fail.
        let n = engine
            .encode_slice(block, &mut line_buf[..])
            .unwrap_or_default();
        for line in line_buf[..n].chunks(76) {
            out[pos..pos + line.len()].copy_from_slice(line);
            out[pos + line.len()..pos + line.len() + 2].copy_from_slice(b"\r\n");
            pos += line.len() + 2;
        }
    }
    out.truncate(pos);
}

/// A fresh multipart boundary. It needs to be unique, not secret: 128 bits from the process's
/// randomly keyed SipHash over a counter and the time. `=_` cannot occur in base64 or
/// quoted-printable text, so the boundary cannot collide with an encoded body (RFC 2045 §6.7).
pub fn boundary() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let state = std::collections::hash_map::RandomState::new();
    let mut words = [0u64; 2];
    for (i, w) in words.iter_mut().enumerate() {
        let mut h = state.build_hasher();
        h.write_u64(n);
        h.write_u128(now);
        h.write_usize(i);
        *w = h.finish();
    }
    format!("----=_postern_{:016x}{:016x}", words[0], words[1])
}

/// Appends an `hp` parameter (RFC 9788 §2.1.1) to a raw Content-Type field.
fn content_type_with_hp(raw: &[u8], hp: &str) -> Vec<u8> {
    let f = to_crlf(raw);
    let body = f.strip_suffix(b"\r\n").unwrap_or(&f);
    let mut out = body.to_vec();
    out.extend_from_slice(format!("; hp=\"{hp}\"\r\n").as_bytes());
    out
}

/// The entity placed inside the encryption (or header-protected signature): the original header
/// section (without trace fields or Bcc) and body, canonicalised to CRLF. With header protection
/// the Content-Type carries `hp` and each outer field is echoed as `HP-Outer` (RFC 9788).
pub fn inner_entity(view: &MessageView<'_>, hp: Option<&str>) -> Vec<u8> {
    let (head, body) = inner_entity_parts(view, hp);
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(&body);
    out
}

/// [`inner_entity`] as its header section (with the blank line) and its body, which is
/// borrowed from the message when that is already CRLF: a caller that streams the entity
/// (encryption a chunk at a time) never copies the body.
pub fn inner_entity_parts<'a>(
    view: &MessageView<'a>,
    hp: Option<&str>,
) -> (Vec<u8>, std::borrow::Cow<'a, [u8]>) {
    let mut out = Vec::with_capacity(view.header_section().len() + 256);
    let headers = view.headers();
    let mut has_ct = false;
    for h in &headers {
        if is(h.name, TRACE) || is(h.name, NEVER) {
            continue;
        }
        if h.name.eq_ignore_ascii_case("content-type") {
            has_ct = true;
            if let Some(hp) = hp {
                out.extend_from_slice(&content_type_with_hp(h.raw, hp));
                continue;
            }
        }
        push_field(&mut out, h.raw);
    }
    if let Some(hp) = hp {
        if !has_ct {
            out.extend_from_slice(
                format!("Content-Type: text/plain; charset=us-ascii; hp=\"{hp}\"\r\n").as_bytes(),
            );
        }
        for h in headers.iter().filter(|h| is(h.name, ROUTING)) {
            out.extend_from_slice(b"HP-Outer: ");
            push_field(&mut out, h.raw);
        }
        out.extend_from_slice(b"HP-Outer: Subject: [...]\r\n");
    }
    out.extend_from_slice(b"\r\n");
    (out, crlf(view.body()))
}

/// The entity to sign without header protection: only the MIME (`Content-*`) fields of the
/// original, made safe for transport unchanged (RFC 8551 §3.1.2, RFC 3156 §5): leaves with 8-bit
/// data, over-long lines, trailing whitespace or a line starting with `From ` become base64.
pub fn signed_entity(view: &MessageView<'_>) -> Vec<u8> {
    seven_bit(&view.root(), true)
}

fn needs_encoding(body: &[u8]) -> bool {
    body.iter().any(|&b| b >= 0x80 || b == 0)
        || body.split(|&b| b == b'\n').any(|l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            // Relays may strip trailing whitespace or quote "From " lines (mbox): either would
            // break a signature, so such lines are not sent as they are.
            l.len() > 998 || l.ends_with(b" ") || l.ends_with(b"\t") || l.starts_with(b"From ")
        })
}

fn seven_bit(part: &PartView<'_, '_>, top: bool) -> Vec<u8> {
    let headers: Vec<HeaderField<'_>> = part
        .headers()
        .into_iter()
        .filter(|h| !top || is_content_header(h.name))
        .collect();
    let kids = part.children();
    let mut out = Vec::new();
    let body = part.raw_body();
    if !kids.is_empty() && needs_encoding(body) {
        for h in &headers {
            push_field(&mut out, h.raw);
        }
        if !headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("content-type"))
        {
            out.extend_from_slice(b"Content-Type: text/plain\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let b = part.content_type_param("boundary").unwrap_or_default();
        for k in kids {
            out.extend_from_slice(format!("--{b}\r\n").as_bytes());
            out.extend_from_slice(&seven_bit(&k, false));
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{b}--\r\n").as_bytes());
        return out;
    }
    let reencode = kids.is_empty() && needs_encoding(body);
    for h in &headers {
        if reencode && h.name.eq_ignore_ascii_case("content-transfer-encoding") {
            continue;
        }
        push_field(&mut out, h.raw);
    }
    if !headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("content-type"))
    {
        out.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii\r\n");
    }
    if reencode {
        // The body of an 8bit/binary part is its content as is; text is canonicalised to CRLF
        // before encoding (RFC 2045 §6.8), other types are left byte for byte.
        out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
        let content = if part.mime_type().starts_with("text/") {
            to_crlf(body)
        } else {
            body.to_vec()
        };
        out.extend_from_slice(&base64_lines(&content));
    } else {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&crlf(body));
    }
    out
}

/// What a sign-only message is made of: the entity to sign and the outer header section.
///
/// Without header protection the entity carries only the MIME fields and every other header stays
/// outside; with it, the whole header section goes inside marked `hp="clear"` (RFC 9788) and
/// only the routing fields stay outside.
pub fn sign_only_parts(view: &MessageView<'_>, header_protection: bool) -> (Vec<u8>, Vec<u8>) {
    if header_protection {
        (
            inner_entity(view, Some("clear")),
            outer_headers(view, false, false),
        )
    } else {
        (signed_entity(view), outer_headers(view, false, true))
    }
}

/// Verifies a detached signature with `verify` over the exact bytes received and, if that does
/// not succeed and the bytes have bare LFs, over their CRLF canonical form: signatures are made
/// over CRLF text (RFC 8551 §3.1.1, RFC 3156 §5) but stored mail may have lost its CRs.
pub fn verify_canonical<E>(
    exact: &[u8],
    mut verify: impl FnMut(&[u8]) -> Result<Vec<crate::SignatureReport>, E>,
) -> Result<Vec<crate::SignatureReport>, E> {
    let valid =
        |r: &[crate::SignatureReport]| r.iter().all(|s| s.status == crate::SignatureStatus::Valid);
    let first = verify(exact)?;
    if valid(&first) {
        return Ok(first);
    }
    match crlf(exact) {
        std::borrow::Cow::Owned(canonical) => {
            let again = verify(&canonical)?;
            Ok(if valid(&again) { again } else { first })
        }
        std::borrow::Cow::Borrowed(_) => Ok(first),
    }
}

/// The outer header section: trace and routing fields of the original, Subject (or `[...]`
/// under header protection), and `MIME-Version`. Ends with CRLF but not the blank line.
pub fn outer_headers(view: &MessageView<'_>, header_protection: bool, keep_all: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for h in view.headers() {
        let keep = if is(h.name, NEVER)
            || is_content_header(h.name)
            || h.name.eq_ignore_ascii_case("mime-version")
        {
            false
        } else if h.name.eq_ignore_ascii_case("subject") {
            if header_protection {
                out.extend_from_slice(b"Subject: [...]\r\n");
                false
            } else {
                true
            }
        } else {
            keep_all || is(h.name, TRACE) || is(h.name, ROUTING)
        };
        if keep {
            push_outer_field(&mut out, h.name, h.raw_value);
        }
    }
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    out
}

/// Unstructured fields whose non-ASCII text is written as RFC 2047 encoded words.
const UNSTRUCTURED: &[&str] = &["subject", "comments", "keywords"];
/// Address fields: display names become encoded words; an address itself that is not ASCII
/// stays UTF-8 (RFC 6532: encoded words cannot hold an address).
const ADDRESSES: &[&str] = &["from", "sender", "to", "cc", "reply-to"];
/// Longest line we write before folding; RFC 5322's hard limit is 998.
const FOLD_AT: usize = 78;
const HARD_LIMIT: usize = 900;

/// Writes one header field of the outer (unprotected) message well-formed, whatever came in:
/// the field is unfolded and every control character (a bare CR, NUL, a form feed) becomes a
/// space, so nothing can start a new field or end the header section; non-ASCII text becomes
/// encoded words in unstructured fields, stays UTF-8 in address fields and becomes `?`
/// elsewhere; invalid UTF-8 is replaced; and long values are folded at spaces (hard-broken
/// only when a single word is longer than a line may be). A field whose name is not printable
/// ASCII is dropped.
pub fn push_outer_field(out: &mut Vec<u8>, name: &str, raw_value: &[u8]) {
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return;
    }
    let lower = name.to_ascii_lowercase();
    let text = String::from_utf8_lossy(raw_value);
    let mut value = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && (value.is_empty() || value.ends_with(' ')) {
            continue;
        }
        value.push(c);
    }
    let value = value.trim_end();
    let words: Vec<String> = if value.is_ascii() {
        value.split(' ').map(str::to_string).collect()
    } else if ADDRESSES.contains(&lower.as_str()) {
        display_names_encoded(value)
    } else if UNSTRUCTURED.contains(&lower.as_str()) {
        encoded_words(value)
    } else {
        let ascii: String = value
            .chars()
            .map(|c| if c.is_ascii() { c } else { '?' })
            .collect();
        ascii.split(' ').map(str::to_string).collect()
    };
    out.extend_from_slice(name.as_bytes());
    out.push(b':');
    let mut line = name.len() + 1;
    for word in words.iter().filter(|w| !w.is_empty()) {
        if line + 1 + word.len() > FOLD_AT && line > name.len() + 1 {
            out.extend_from_slice(b"\r\n");
            line = 0;
        }
        out.push(b' ');
        line += 1;
        // A single word too long for any line is broken where it must be.
        let mut rest = word.as_str();
        while line + rest.len() > HARD_LIMIT {
            let mut cut = HARD_LIMIT.saturating_sub(line).max(1).min(rest.len());
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (head, tail) = rest.split_at(cut.max(1));
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(b"\r\n ");
            line = 1;
            rest = tail;
        }
        out.extend_from_slice(rest.as_bytes());
        line += rest.len();
    }
    out.extend_from_slice(b"\r\n");
}

/// The words of an address field with each run of non-ASCII display-name words (outside angle
/// brackets, without `@`) as encoded words; quotes around such a run go (an encoded word may
/// not stand inside a quoted string).
fn display_names_encoded(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    let mut in_angle = false;
    let flush = |run: &mut Vec<&str>, out: &mut Vec<String>| {
        if run.is_empty() {
            return;
        }
        let text = run.join(" ");
        if text.is_ascii() {
            out.extend(run.iter().map(|w| w.to_string()));
        } else {
            out.extend(encoded_words(text.trim_matches('"')));
        }
        run.clear();
    };
    for w in value.split(' ') {
        let address_part = in_angle || w.starts_with('<') || w.contains('@');
        if w.contains('<') {
            in_angle = true;
        }
        if w.contains('>') {
            in_angle = false;
        }
        if address_part {
            flush(&mut run, &mut out);
            out.push(w.to_string());
        } else if w.ends_with(',') {
            run.push(w.trim_end_matches(','));
            flush(&mut run, &mut out);
            if let Some(last) = out.last_mut() {
                last.push(',');
            }
        } else {
            run.push(w);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// `text` as RFC 2047 B-encoded UTF-8 words, each at most 75 characters, split between
/// characters.
fn encoded_words(text: &str) -> Vec<String> {
    use base64::Engine;
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        // 45 bytes of UTF-8 make 60 base64 characters: "=?UTF-8?B?" + 60 + "?=" = 72.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(format!("=?UTF-8?B?{}?=", engine.encode(&chunk)));
            chunk.clear();
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(format!("=?UTF-8?B?{}?=", engine.encode(&chunk)));
    }
    words
}

/// A complete multipart message: `outer` headers, then `Content-Type: {content_type}` with a
/// fresh boundary, a short preamble and the `parts` (each a MIME entity: header section, blank
/// line, body), byte for byte.
///
/// Parts are never altered: for `multipart/signed` the first part is exactly the signed bytes,
/// and the CRLF that precedes each boundary belongs to the boundary (RFC 2046 §5.1.1).
pub fn multipart(outer: &[u8], content_type: &str, preamble: &str, parts: &[&[u8]]) -> Vec<u8> {
    let b = boundary();
    let size: usize = parts.iter().map(|p| p.len() + b.len() + 8).sum();
    let mut out = Vec::with_capacity(outer.len() + size + 256);
    out.extend_from_slice(outer);
    out.extend_from_slice(
        format!("Content-Type: {content_type};\r\n boundary=\"{b}\"\r\n\r\n{preamble}\r\n")
            .as_bytes(),
    );
    for part in parts {
        out.extend_from_slice(format!("\r\n--{b}\r\n").as_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    out
}

/// True when `data` begins with an RFC 5322 header field (`name:` with printable ASCII, no
/// spaces), i.e. it is a MIME entity rather than bare content.
fn starts_with_header_field(data: &[u8]) -> bool {
    let line_end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let line = &data[..line_end];
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => line[..colon].iter().all(|&b| (33..=126).contains(&b)),
        _ => false,
    }
}

/// Puts an opened inner entity back into a message: the outer fields that the inner entity does
/// not itself carry (trace, routing), then the inner header section and body.
///
/// Inner fields win over outer ones of the same name: they were protected, the outer ones not.
/// `HP-Outer` echoes are dropped, and the `[...]` placeholder Subject never survives.
pub fn merge(outer: &MessageView<'_>, inner: &[u8]) -> Vec<u8> {
    let inner = crlf(inner);
    let (head, body) = merged_head(outer, &inner);
    let mut out = Vec::with_capacity(head.len() + inner.len() - body);
    out.extend_from_slice(&head);
    out.extend_from_slice(&inner[body..]);
    out
}

/// [`merge`], reusing `inner`'s buffer: the body stays where it is and the new header section
/// takes the place of the old one, so opening a large message does not copy its body again.
pub fn merge_owned(outer: &MessageView<'_>, inner: Vec<u8>) -> Vec<u8> {
    let mut inner = into_crlf(inner);
    let (head, body) = merged_head(outer, &inner);
    inner.splice(..body, head);
    inner
}

/// The header section of the merged message, and where the inner body starts in `inner`.
fn merged_head(outer: &MessageView<'_>, inner: &[u8]) -> (Vec<u8>, usize) {
    let parsed = if starts_with_header_field(inner) {
        MessageView::parse(inner).ok()
    } else {
        None
    };
    // A set: an outer section of many fields against an inner one of many is not quadratic.
    let inner_names: std::collections::HashSet<String> = parsed
        .as_ref()
        .map(|v| {
            v.headers()
                .iter()
                .map(|h| h.name.to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::with_capacity(outer.header_section().len() + 1024);
    for h in outer.headers() {
        // A name that is not an RFC 5322 field name ("Content -Type") is one mail-parser reads
        // as the field it resembles while our comparisons would not: an unprotected field
        // could then stand in front of the protected one. Such a field is dropped.
        if !h.name.bytes().all(|b| (33..=126).contains(&b)) {
            continue;
        }
        let lname = h.name.to_ascii_lowercase();
        if is_content_header(h.name)
            || lname == "mime-version"
            || inner_names.contains(&lname)
            || (lname == "subject" && h.value() == "[...]")
        {
            continue;
        }
        push_field(&mut out, h.raw);
    }
    match parsed {
        Some(v) => {
            if !inner_names.iter().any(|n| n == "mime-version") {
                out.extend_from_slice(b"MIME-Version: 1.0\r\n");
            }
            for h in v.headers() {
                if !h.name.eq_ignore_ascii_case("hp-outer") {
                    push_field(&mut out, h.raw);
                }
            }
            out.extend_from_slice(b"\r\n");
            // The body is a slice of `inner` (zero-copy parse); an empty one may not point into
            // it, and then nothing follows the header section.
            let (b, start) = (v.body(), inner.as_ptr() as usize);
            let at = (b.as_ptr() as usize).wrapping_sub(start);
            let body = if at <= inner.len() && b.len() <= inner.len() - at {
                at
            } else {
                inner.len()
            };
            (out, body)
        }
        None => {
            // Content without a header section (e.g. `openssl smime -encrypt` of a bare file).
            out.extend_from_slice(b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n");
            (out, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-place merge gives the same bytes as the copying one, for every shape of inner
    /// entity: headers and body, no body, LF line ends, no header section at all.
    #[test]
    fn merge_in_place_equals_merge() {
        let outer = b"Received: x\r\nFrom: a@b.example\r\nSubject: [...]\r\nContent-Type: application/pkcs7-mime\r\n\r\nAAAA\r\n";
        let outer = MessageView::parse(outer).unwrap();
        let inners: [&[u8]; 6] = [
            b"Subject: real\r\nContent-Type: text/plain\r\n\r\nbody\r\n",
            b"Subject: real\r\nContent-Type: text/plain\r\n\r\n",
            b"Subject: real\r\nContent-Type: text/plain\r\n",
            b"Subject: real\nContent-Type: text/plain\n\nbody\n",
            b"just some text, no header section\r\n",
            b"",
        ];
        for inner in inners {
            assert_eq!(
                merge_owned(&outer, inner.to_vec()),
                merge(&outer, inner),
                "{}",
                String::from_utf8_lossy(inner)
            );
        }
    }

    /// Issue 14.8: whatever the input's header fields hold, the outer header section we write
    /// is well-formed: no control characters, nothing that starts a new field, 7-bit outside
    /// address fields, and no line over 998 octets.
    #[test]
    fn outer_headers_are_well_formed_whatever_came_in() {
        let long = "x".repeat(200_000);
        let words = "word ".repeat(400);
        let raw = format!(
            "From: Jörg <a@b.test>\r\nTo: c@d.test\r\nSubject: a\rBcc: evil@attacker.test\x00 \u{1b}[31m Grüße {words}\r\n\
             Message-ID: <{long}@x>\r\nDate: Mon, 30 Nov 2026 \u{e9}\r\nReceived: by x;\r\n \r\n\tmore\r\n\r\nbody\r\n"
        );
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(b"");
        let view = MessageView::parse(&bytes).unwrap();
        for hp in [false, true] {
            let out = outer_headers(&view, hp, false);
            let text = String::from_utf8(out.clone()).unwrap();
            for line in text.split("\r\n") {
                assert!(line.len() <= 998, "a line of {}", line.len());
                assert!(
                    !line.chars().any(|c| c.is_control() && c != '\t'),
                    "{line:?}"
                );
                assert!(!line.to_ascii_lowercase().starts_with("bcc"), "{line:?}");
                assert!(line.is_ascii(), "{line:?}");
            }
            assert!(
                text.contains("From: =?UTF-8?B?"),
                "display name encoded: {text}"
            );
            assert!(text.contains("<a@b.test>"), "address kept: {text}");
            assert!(!text.contains("\r\n\r\n"), "no blank line inside");
            assert!(text.ends_with("\r\n"));
            // What a parser reads back: the fields we meant, one Subject, no Bcc.
            let mut again = out.clone();
            again.extend_from_slice(b"\r\nbody\r\n");
            let v = MessageView::parse(&again).unwrap();
            let names: Vec<String> = v
                .headers()
                .iter()
                .map(|h| h.name.to_ascii_lowercase())
                .collect();
            assert_eq!(
                names.iter().filter(|n| *n == "subject").count(),
                1,
                "{names:?}"
            );
            assert!(!names.iter().any(|n| n == "bcc"), "{names:?}");
            if !hp {
                let subject = v.header("subject").unwrap();
                assert!(subject.contains("=?UTF-8?B?"), "{subject}");
            }
        }
    }

    /// Header names from strangers may hold any bytes; a multi-byte character where a prefix
    /// ends once panicked every path that builds a message.
    #[test]
    fn non_ascii_header_names_are_headers_like_any_other() {
        let raw = "From: a@b.test\r\nContenté: x\r\nConten\u{e9}-Type: y\r\n\u{e9}: z\r\nSubject: s\r\n\r\nbody\r\n";
        let view = MessageView::parse(raw.as_bytes()).unwrap();
        for hp in [false, true] {
            let _ = inner_entity(&view, hp.then_some("cipher"));
            let _ = outer_headers(&view, hp, false);
            let _ = sign_only_parts(&view, hp);
        }
        let _ = signed_entity(&view);
        assert!(!is_content_header("Contenté"));
        assert!(is_content_header("CONTENT-Type"));
        assert!(starts_with_ignore_case("Postern-X", "postern-"));
        assert!(!starts_with_ignore_case("Posterné", "postern-"));
    }

    #[test]
    fn crlf_normalisation_is_idempotent() {
        assert_eq!(to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert_eq!(to_crlf(&to_crlf(b"a\nb\n")), b"a\r\nb\r\n");
    }

    #[test]
    fn outer_keeps_routing_and_hides_the_rest() {
        let m = b"Received: from x\nFrom: a@x.example\nTo: b@y.example\nBcc: secret@z.example\nSubject: PHI\nX-Custom: inner only\nContent-Type: text/plain\n\nhello\n";
        let v = MessageView::parse(m).unwrap();
        let outer = String::from_utf8(outer_headers(&v, true, false)).unwrap();
        assert!(outer.contains("Received: from x\r\n"));
        assert!(outer.contains("Subject: [...]\r\n"));
        assert!(!outer.contains("PHI") && !outer.contains("X-Custom") && !outer.contains("Bcc"));
        let inner = String::from_utf8(inner_entity(&v, Some("cipher"))).unwrap();
        assert!(inner.contains("Subject: PHI\r\n") && inner.contains("X-Custom"));
        assert!(inner.contains("hp=\"cipher\"") && !inner.contains("Bcc"));
        assert!(inner.ends_with("\r\n\r\nhello\r\n"));
    }

    #[test]
    fn merge_prefers_protected_inner_fields() {
        let outer = b"Received: from x\r\nFrom: a@x.example\r\nSubject: [...]\r\nContent-Type: application/pkcs7-mime\r\n\r\nxx";
        let inner = b"From: a@x.example\r\nSubject: real\r\nHP-Outer: Subject: [...]\r\nContent-Type: text/plain; hp=\"cipher\"\r\n\r\nbody\r\n";
        let v = MessageView::parse(outer).unwrap();
        let m = String::from_utf8(merge(&v, inner)).unwrap();
        assert!(m.starts_with("Received: from x\r\n"));
        assert!(m.contains("Subject: real\r\n") && !m.contains("[...]"));
        assert_eq!(m.matches("From:").count(), 1);
        assert!(m.ends_with("\r\n\r\nbody\r\n"));
    }

    /// An unprotected outer field whose name is not a field name ("Content -Type", which
    /// mail-parser reads as Content-Type) is dropped: it cannot stand in front of the
    /// protected Content-Type and change what the opened message is.
    #[test]
    fn a_malformed_outer_field_name_never_reaches_the_opened_message() {
        let outer = b"From: a@x.example\r\nContent-Type: application/pkcs7-mime\r\nContent -Type: text/plain\r\nX Postern: 1\r\n\r\nxx";
        let inner = b"Content-Type: message/rfc822\r\n\r\nFrom: ceo@clinic.example\r\n\r\nhi\r\n";
        let v = MessageView::parse(outer).unwrap();
        let m = merge(&v, inner);
        let text = String::from_utf8_lossy(&m).into_owned();
        assert!(
            !text.contains("Content -Type") && !text.contains("X Postern"),
            "{text}"
        );
        let merged = MessageView::parse(&m).unwrap();
        assert_eq!(merged.root().mime_type(), "message/rfc822", "{text}");
    }

    #[test]
    fn multipart_parts_are_kept_byte_for_byte() {
        // No final newline: the part must still end exactly where it ended.
        let part = b"Content-Type: text/plain\r\n\r\nno newline at the end";
        let m = multipart(b"From: a@x.example\r\n", "multipart/mixed", "pre", &[part]);
        let v = MessageView::parse(&m).unwrap();
        assert_eq!(v.root().children()[0].raw(), part);
        assert_ne!(boundary(), boundary());
    }

    #[test]
    fn trailing_whitespace_and_from_lines_are_encoded_for_signing() {
        for body in ["trailing space \n", "ok\nFrom the lab\n"] {
            let m = format!("Content-Type: text/plain\n\n{body}");
            let v = MessageView::parse(m.as_bytes()).unwrap();
            let e = String::from_utf8(signed_entity(&v)).unwrap();
            assert!(e.contains("Content-Transfer-Encoding: base64"), "{e}");
        }
        let v = MessageView::parse(b"Content-Type: text/plain\n\nplain text\n").unwrap();
        assert_eq!(
            signed_entity(&v),
            b"Content-Type: text/plain\r\n\r\nplain text\r\n"
        );
    }

    proptest::proptest! {
        #[test]
        fn boundary_scan_finds_exactly_the_parts_written(
            bodies in proptest::collection::vec("[ -~]{0,40}(\r\n[ -~]{0,40}){0,5}", 1..5),
        ) {
            let parts: Vec<Vec<u8>> = bodies
                .iter()
                .map(|b| format!("Content-Type: text/plain\r\n\r\n{b}").into_bytes())
                .collect();
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let m = multipart(b"From: a@x.example\r\n", "multipart/mixed", "pre", &refs);
            let v = MessageView::parse(&m).unwrap();
            proptest::prop_assert_eq!(v.top_level_parts(), refs.clone());
            let parsed: Vec<&[u8]> = v.root().children().iter().map(|c| c.raw()).collect();
            proptest::prop_assert_eq!(parsed, refs);
        }
    }

    #[test]
    fn bare_content_is_not_mistaken_for_headers() {
        let outer = b"From: a@x.example\r\nContent-Type: multipart/encrypted\r\n\r\nxx";
        let v = MessageView::parse(outer).unwrap();
        let m = String::from_utf8(merge(&v, b"Hello, world!")).unwrap();
        assert!(
            m.ends_with("Content-Type: text/plain\r\n\r\nHello, world!"),
            "{m}"
        );
    }

    #[test]
    fn eight_bit_leaf_is_base64_encoded_for_signing() {
        let m = "From: a@x.example\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße\n";
        let v = MessageView::parse(m.as_bytes()).unwrap();
        let e = String::from_utf8(signed_entity(&v)).unwrap();
        assert!(!e.contains("From:"));
        assert!(
            e.contains("Content-Transfer-Encoding: base64\r\n\r\nR3LDvMOfZQ0K\r\n"),
            "{e}"
        );
    }
}
