//! A zero-copy view over a raw RFC 5322 message.
//!
//! Parsing is delegated to `mail-parser`, which keeps byte offsets for every header and MIME
//! part. Everything this view hands out is a slice of the original bytes, so a backend verifies a
//! signature over exactly what was received, and rebuilds a message without re-serialising
//! headers it did not mean to touch.

use std::borrow::Cow;
use std::sync::OnceLock;

use mail_parser::{MessageParser, MessagePart, PartType};

use crate::Error;

/// Upper bound on the size of a message the view accepts (SMTP SIZE limits sit far below this).
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// A parsed message that borrows the raw bytes it was parsed from.
///
/// Only the top-level header section is parsed up front; the MIME structure below it is parsed
/// on first use. Sealing a message needs its headers and raw body only, so a large message is
/// not walked twice.
pub struct MessageView<'a> {
    raw: &'a [u8],
    head: mail_parser::Message<'a>,
    body_offset: usize,
    full: OnceLock<mail_parser::Message<'a>>,
}

impl std::fmt::Debug for MessageView<'_> {
    // Bodies must never reach logs: show the shape only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageView")
            .field("bytes", &self.raw.len())
            .field("structure_parsed", &self.full.get().is_some())
            .field("content_type", &self.root().mime_type())
            .finish()
    }
}

/// One header field of a message or part, as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderField<'a> {
    /// The field name as written (case kept).
    pub name: &'a str,
    /// The raw value after the colon, including folding and the final line break.
    pub raw_value: &'a [u8],
    /// The whole field: name, colon, value and line break.
    pub raw: &'a [u8],
}

impl HeaderField<'_> {
    /// The value unfolded and trimmed (no decoding of encoded words).
    pub fn value(&self) -> String {
        let s = String::from_utf8_lossy(self.raw_value);
        let mut out = String::with_capacity(s.len());
        for line in s.split('\n') {
            let line = line.trim_end_matches('\r');
            if !out.is_empty() && !line.trim().is_empty() {
                out.push(' ');
            }
            out.push_str(line.trim());
        }
        out
    }
}

/// A view of one MIME part inside a [`MessageView`].
#[derive(Clone, Copy)]
pub struct PartView<'m, 'a> {
    view: &'m MessageView<'a>,
    id: usize,
}

/// The MIME structure of `raw` as mail-parser reads it, or `None` when it is not a message.
///
/// mail-parser 0.11.9 panics on some broken nesting when built with debug assertions (a
/// `debug_assert!` "Invalid part ID, could not find multipart", found by the `dlp_inspect` fuzz
/// target; input in `tests/data/hostile-mime/`). Anyone can send such a message, and an
/// embedder's debug build must not fall over on it, so every parse in Postern goes through
/// here (or [`parse_headers`]), where a panic becomes "not a message".
pub fn parse_message(raw: &[u8]) -> Option<mail_parser::Message<'_>> {
    std::panic::catch_unwind(|| MessageParser::default().parse(raw))
        .ok()
        .flatten()
}

/// The header section of `raw` as mail-parser reads it, with panics contained as in
/// [`parse_message`].
pub fn parse_headers(raw: &[u8]) -> Option<mail_parser::Message<'_>> {
    std::panic::catch_unwind(|| MessageParser::default().parse_headers(raw))
        .ok()
        .flatten()
}

impl<'a> MessageView<'a> {
    /// Parses `raw` (CRLF or LF line endings). Fails only when the input is not a message at all
    /// (empty, no header section, absurdly large); broken MIME below the top level is tolerated,
    /// as receivers must.
    pub fn parse(raw: &'a [u8]) -> Result<Self, Error> {
        if raw.len() > MAX_MESSAGE_BYTES {
            return Err(Error::MalformedMessage(format!(
                "message of {} bytes exceeds the {} byte limit",
                raw.len(),
                MAX_MESSAGE_BYTES
            )));
        }
        let head = parse_headers(raw)
            .ok_or_else(|| Error::MalformedMessage("no header section".into()))?;
        let last = head
            .parts
            .first()
            .and_then(|p| p.headers.last())
            .ok_or_else(|| Error::MalformedMessage("no header section".into()))?;
        // The body starts after the blank line that ends the last header field.
        let mut body_offset = (last.offset_end as usize).min(raw.len());
        if raw[body_offset..].starts_with(b"\r\n") {
            body_offset += 2;
        } else if raw[body_offset..].starts_with(b"\n") {
            body_offset += 1;
        }
        Ok(MessageView {
            raw,
            head,
            body_offset,
            full: OnceLock::new(),
        })
    }

    /// The whole MIME structure, parsed on first use.
    fn full(&self) -> &mail_parser::Message<'a> {
        self.full.get_or_init(|| {
            // parse() succeeds whenever parse_headers() did (unless mail-parser panics); an
            // empty structure is the harmless fallback.
            parse_message(self.raw).unwrap_or_default()
        })
    }

    /// The bytes the view was parsed from.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The top-level part (the message itself).
    pub fn root(&self) -> PartView<'_, 'a> {
        PartView { view: self, id: 0 }
    }

    /// The top-level header fields, in order.
    pub fn headers(&self) -> Vec<HeaderField<'a>> {
        self.root().headers()
    }

    /// The first top-level header named `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.root().header(name)
    }

    /// The raw header section, up to and including the blank line that ends it (if any).
    pub fn header_section(&self) -> &'a [u8] {
        &self.raw[..self.root().body_offset()]
    }

    /// The raw body after the header section.
    pub fn body(&self) -> &'a [u8] {
        &self.raw[self.root().body_offset()..]
    }

    /// The raw bytes of each top-level body part of a multipart message, found by scanning for
    /// the boundary only (RFC 2046 §5.1.1) — no MIME parsing of the parts themselves, so a
    /// large encrypted attachment is not walked. Each slice is what [`PartView::raw`] gives:
    /// from the part's first header line up to, not including, the line break before the next
    /// delimiter. Empty when the message is not multipart or has no boundary.
    pub fn top_level_parts(&self) -> Vec<&'a [u8]> {
        let Some(boundary) = self.root().content_type_param("boundary") else {
            return Vec::new();
        };
        if !self.root().mime_type().starts_with("multipart/") || boundary.is_empty() {
            return Vec::new();
        }
        let body = self.body();
        let delimiter = format!("--{boundary}");
        let mut parts = Vec::new();
        let mut open: Option<usize> = None;
        for at in memchr::memmem::find_iter(body, delimiter.as_bytes()) {
            // A delimiter starts a line.
            if at != 0 && body[at - 1] != b'\n' {
                continue;
            }
            let after = &body[at + delimiter.len()..];
            let closing = after.starts_with(b"--");
            let rest = if closing { &after[2..] } else { after };
            // Only transport padding may follow on the delimiter line.
            let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            if !rest[..line_end]
                .iter()
                .all(|b| matches!(b, b' ' | b'\t' | b'\r'))
            {
                continue;
            }
            if let Some(start) = open.take() {
                // The line break before the delimiter belongs to the delimiter.
                let mut end = at.saturating_sub(1);
                if end > start && body[end - 1] == b'\r' {
                    end -= 1;
                }
                parts.push(&body[start..end.max(start)]);
            }
            if closing {
                break;
            }
            let next = at + delimiter.len() + line_end + 1;
            open = Some(next.min(body.len()));
        }
        parts
    }

    /// The line ending the message uses (`\r\n` unless its first line ends with a bare `\n`).
    pub fn line_ending(&self) -> &'static [u8] {
        match self.raw.iter().position(|&b| b == b'\n') {
            Some(i) if i > 0 && self.raw[i - 1] == b'\r' => b"\r\n",
            Some(_) => b"\n",
            None => b"\r\n",
        }
    }

    fn part(&self, id: usize) -> Option<&MessagePart<'a>> {
        self.full().parts.get(id)
    }
}

impl<'m, 'a> PartView<'m, 'a> {
    /// The part with its headers: the root comes from the header-only parse, the others from
    /// the full structure.
    fn header_part(&self) -> Option<&'m MessagePart<'a>> {
        if self.id == 0 {
            self.view.head.parts.first()
        } else {
            self.view.part(self.id)
        }
    }

    /// The part from the full structure (parsing it if needed).
    fn full_part(&self) -> Option<&'m MessagePart<'a>> {
        self.view.part(self.id)
    }

    fn body_offset(&self) -> usize {
        if self.id == 0 {
            return self.view.body_offset;
        }
        self.full_part()
            .map(|p| p.offset_body as usize)
            .unwrap_or(self.view.raw.len())
            .min(self.view.raw.len())
    }

    fn end_offset(&self) -> usize {
        if self.id == 0 {
            return self.view.raw.len();
        }
        self.full_part()
            .map(|p| p.offset_end as usize)
            .unwrap_or(self.view.raw.len())
            .min(self.view.raw.len())
    }

    /// The header fields of this part, in order.
    pub fn headers(&self) -> Vec<HeaderField<'a>> {
        let raw = self.view.raw;
        let Some(part) = self.header_part() else {
            return Vec::new();
        };
        part.headers
            .iter()
            .filter_map(|h| {
                let (field, start, end) = (
                    h.offset_field as usize,
                    h.offset_start as usize,
                    h.offset_end as usize,
                );
                if field > start || start > end || end > raw.len() {
                    return None;
                }
                let name = std::str::from_utf8(&raw[field..start])
                    .ok()?
                    .trim_end()
                    .trim_end_matches(':')
                    .trim_end();
                Some(HeaderField {
                    name,
                    raw_value: &raw[start..end],
                    raw: &raw[field..end],
                })
            })
            .collect()
    }

    /// The first header named `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value())
    }

    /// `type/subtype`, lower-case; `text/plain` when absent (RFC 2045 §5.2).
    pub fn mime_type(&self) -> String {
        match self.content_type() {
            Some(ct) => format!(
                "{}/{}",
                ct.c_type.to_ascii_lowercase(),
                ct.c_subtype
                    .as_deref()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            ),
            None => "text/plain".to_string(),
        }
    }

    fn content_type(&self) -> Option<&'m mail_parser::ContentType<'a>> {
        self.header_part()?
            .headers
            .iter()
            .find(|h| matches!(h.name, mail_parser::HeaderName::ContentType))
            .and_then(|h| h.value.as_content_type())
    }

    /// A Content-Type parameter (name case-insensitive), e.g. `smime-type` or `protocol`.
    pub fn content_type_param(&self, name: &str) -> Option<String> {
        self.content_type()?
            .attributes
            .as_ref()?
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
            .map(|a| a.value.to_string())
    }

    /// The whole part as received: its header section and body.
    pub fn raw(&self) -> &'a [u8] {
        let end = self.end_offset();
        let start = match self.id {
            0 => 0,
            _ => self
                .full_part()
                .map(|p| p.offset_header as usize)
                .unwrap_or(end),
        };
        &self.view.raw[start.min(end)..end]
    }

    /// The raw (still transfer-encoded) body of the part.
    pub fn raw_body(&self) -> &'a [u8] {
        let end = self.end_offset();
        &self.view.raw[self.body_offset().min(end)..end]
    }

    /// The body with its Content-Transfer-Encoding removed.
    pub fn decoded_body(&self) -> Cow<'m, [u8]> {
        match self.full_part().map(|p| &p.body) {
            Some(PartType::Text(t) | PartType::Html(t)) => Cow::Borrowed(t.as_bytes()),
            Some(PartType::Binary(b) | PartType::InlineBinary(b)) => Cow::Borrowed(b.as_ref()),
            Some(PartType::Message(_) | PartType::Multipart(_)) | None => {
                Cow::Borrowed(self.raw_body())
            }
        }
    }

    /// The body with only its Content-Transfer-Encoding undone: the bytes the sender encoded,
    /// with no charset conversion (what a signature over text covers).
    pub fn transfer_decoded_body(&self) -> Cow<'a, [u8]> {
        let raw = self.raw_body();
        let cte = self
            .header("content-transfer-encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        match cte.trim() {
            "base64" => Cow::Owned(decode_base64_lines(raw)),
            "quoted-printable" => Cow::Owned(decode_quoted_printable(raw)),
            _ => Cow::Borrowed(raw),
        }
    }

    /// The child parts of a multipart, in order (empty for a leaf).
    pub fn children(&self) -> Vec<PartView<'m, 'a>> {
        match self.full_part().map(|p| &p.body) {
            Some(PartType::Multipart(ids)) => ids
                .iter()
                .filter(|&&id| self.view.part(id as usize).is_some())
                .map(|&id| PartView {
                    view: self.view,
                    id: id as usize,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Base64 text is decoded in blocks of this many characters (a multiple of 4), counted over
/// the text with line breaks and blanks removed: [`decode_base64_lines`] and
/// [`decode_base64_in_place`] cut at the same places, so they agree on every input, padding in
/// the middle included.
const BASE64_BLOCK: usize = 64 * 1024;

fn base64_engine() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
}

/// The end of the line starting at `start` (after its LF, or the end of `b`), and whether it
/// has blanks inside (then every whitespace byte goes; else only the line break).
fn base64_line(b: &[u8], start: usize) -> (usize, bool) {
    let rest = &b[start..];
    let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
    let blanks = memchr::memchr3(b' ', b'\t', b'\x0c', &rest[..end]).is_some();
    (start + end, blanks)
}

/// `line` without its line break (LF, then CR).
fn without_break(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Base64 body decoding (RFC 2045 §6.8), lenient about padding and stray whitespace, as
/// receivers must be. Lines are gathered a block at a time into a small buffer and decoded
/// straight into the output, so a large attachment is not copied once more on the way.
/// Undecodable text gives an empty result.
fn decode_base64_lines(raw: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let engine = base64_engine();
    let mut out = Vec::with_capacity(raw.len() / 4 * 3 + 3);
    let mut pending: Vec<u8> = Vec::with_capacity(BASE64_BLOCK + 80);
    let flush = |text: &[u8], out: &mut Vec<u8>| -> bool {
        let start = out.len();
        out.resize(start + text.len() / 4 * 3 + 3, 0);
        match engine.decode_slice(text, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                true
            }
            Err(_) => false,
        }
    };
    let mut at = 0;
    while at < raw.len() {
        let (end, blanks) = base64_line(raw, at);
        let line = &raw[at..end];
        at = end;
        if blanks {
            pending.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
        } else {
            pending.extend_from_slice(without_break(line));
        }
        if pending.len() >= BASE64_BLOCK {
            if !flush(&pending[..BASE64_BLOCK], &mut out) {
                return Vec::new();
            }
            pending.drain(..BASE64_BLOCK);
        }
    }
    if !flush(&pending, &mut out) {
        return Vec::new();
    }
    out
}

/// Decodes the base64 body that starts at `body` in `buf` into `buf` itself, which then holds
/// the decoded bytes only (nothing on undecodable text, as [`PartView::transfer_decoded_body`]
/// gives). For a message its caller owns: the decoded body needs no second buffer of its size.
/// Decodes exactly as `transfer_decoded_body` does.
pub fn decode_base64_in_place(buf: &mut Vec<u8>, body: usize) {
    use base64::Engine;
    // First the text without line breaks and blanks, moved to the front. Writing never
    // overtakes reading: bytes are only ever dropped.
    let mut text = 0;
    let mut at = body.min(buf.len());
    while at < buf.len() {
        let (end, blanks) = base64_line(buf, at);
        if blanks {
            for i in at..end {
                let b = buf[i];
                if !b.is_ascii_whitespace() {
                    buf[text] = b;
                    text += 1;
                }
            }
        } else {
            let keep = without_break(&buf[at..end]).len();
            buf.copy_within(at..at + keep, text);
            text += keep;
        }
        at = end;
    }
    // Then the text a block at a time, through a small buffer: the output of a block ends
    // before the next block's text begins (three bytes out for four in).
    let engine = base64_engine();
    let mut scratch = vec![0u8; BASE64_BLOCK / 4 * 3 + 3];
    let (mut read, mut written) = (0, 0);
    while read < text {
        let take = (text - read).min(BASE64_BLOCK);
        let Ok(n) = engine.decode_slice(&buf[read..read + take], &mut scratch) else {
            buf.clear();
            return;
        };
        buf[written..written + n].copy_from_slice(&scratch[..n]);
        written += n;
        read += take;
    }
    buf.truncate(written);
}

/// Quoted-printable decoding (RFC 2045 §6.7), tolerant of malformed escapes (kept literally).
fn decode_quoted_printable(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b != b'=' {
            out.push(b);
            i += 1;
            continue;
        }
        match (input.get(i + 1), input.get(i + 2)) {
            (Some(b'\r'), Some(b'\n')) => i += 3,
            (Some(b'\n'), _) => i += 2,
            (Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) << 4) | hex(l).unwrap_or(0));
                i += 3;
            }
            _ => {
                out.push(b'=');
                i += 1;
            }
        }
    }
    out
}

impl std::fmt::Debug for PartView<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartView")
            .field("id", &self.id)
            .field("mime_type", &self.mime_type())
            .field("bytes", &self.raw().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED: &[u8] = b"From: a@b.example\r\nSubject: hi\r\n there\r\nContent-Type: multipart/signed; boundary=\"XX\"; protocol=\"application/pkcs7-signature\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n\r\n--XX\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--XX--\r\n";

    /// A message that makes mail-parser 0.11.9 panic while parsing its structure.
    const PANICS_MAIL_PARSER: &[u8] =
        include_bytes!("../../../tests/data/hostile-mime/mail-parser-part-id-panic.eml");

    #[test]
    fn a_parser_panic_is_a_message_without_structure() {
        // (The panic is a debug assertion: only builds with them panic.)
        assert_eq!(
            std::panic::catch_unwind(|| MessageParser::default().parse(PANICS_MAIL_PARSER))
                .is_err(),
            cfg!(debug_assertions),
            "mail-parser no longer panics on this input: the containment may be lifted"
        );
        let _ = parse_message(PANICS_MAIL_PARSER);
        let v = MessageView::parse(PANICS_MAIL_PARSER).unwrap();
        let _ = v.root().children();
        assert_eq!(v.header("subject").as_deref(), Some("f"));
    }

    #[test]
    fn signed_part_is_the_exact_bytes_between_boundaries() {
        let v = MessageView::parse(SIGNED).unwrap();
        let root = v.root();
        assert_eq!(root.mime_type(), "multipart/signed");
        assert_eq!(
            root.content_type_param("PROTOCOL").as_deref(),
            Some("application/pkcs7-signature")
        );
        let kids = root.children();
        assert_eq!(kids.len(), 2);
        // RFC 1847: the CRLF before the boundary belongs to the boundary, not the part.
        assert_eq!(kids[0].raw(), b"Content-Type: text/plain\r\n\r\nhello\r\n");
        assert_eq!(kids[1].decoded_body().as_ref(), &[0u8, 1, 2]);
        assert_eq!(v.header("subject").as_deref(), Some("hi there"));
    }

    #[test]
    fn boundary_scan_matches_the_parser() {
        let v = MessageView::parse(SIGNED).unwrap();
        let fast = v.top_level_parts();
        let parsed: Vec<&[u8]> = v.root().children().iter().map(|c| c.raw()).collect();
        assert_eq!(fast, parsed);
        // A boundary string inside a line is not a delimiter.
        let m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx --b y\r\n--b--\r\n";
        let v = MessageView::parse(m).unwrap();
        assert_eq!(
            v.top_level_parts(),
            vec![&b"Content-Type: text/plain\r\n\r\nx --b y"[..]]
        );
        assert!(MessageView::parse(b"Subject: x\r\n\r\nbody")
            .unwrap()
            .top_level_parts()
            .is_empty());
    }

    #[test]
    fn lf_input_works() {
        let lf: Vec<u8> = SIGNED
            .windows(2)
            .fold(Vec::new(), |mut acc, w| {
                if w != b"\r\n" {
                    acc.push(w[0]);
                }
                acc
            })
            .into_iter()
            .chain([b'\n'])
            .collect();
        let v = MessageView::parse(&lf).unwrap();
        assert_eq!(v.line_ending(), b"\n");
        assert_eq!(
            v.root().children()[0].raw(),
            b"Content-Type: text/plain\n\nhello\n"
        );
        assert!(v.header_section().ends_with(b"\n\n"));
    }

    #[test]
    fn transfer_decoding_keeps_the_bytes() {
        let m = b"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=\r\n=C3=9Fe =3D=\r\n";
        let v = MessageView::parse(m).unwrap();
        assert_eq!(
            v.root().transfer_decoded_body().as_ref(),
            "Grüße =".as_bytes()
        );
        let m = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nR3LD\r\nvMOfZQ\r\n";
        let v = MessageView::parse(m).unwrap();
        assert_eq!(
            v.root().transfer_decoded_body().as_ref(),
            "Grüße".as_bytes()
        );
    }

    #[test]
    fn headerless_input_is_refused() {
        assert!(MessageView::parse(b"").is_err());
        assert!(MessageView::parse(b"\r\njust a body").is_err());
    }

    /// Padding that ends a block is where both decoders cut, so the text after it is read by
    /// both; padding anywhere else makes the text undecodable for both.
    #[test]
    fn base64_padding_at_a_block_end_is_read_alike() {
        let text = |before_pad: usize| {
            let mut t = vec![b'Q'; before_pad];
            t.extend_from_slice(b"QQ==");
            t.resize(BASE64_BLOCK + 4, b'A');
            t.extend_from_slice(b"\r\nQUJD\r\n");
            t
        };
        // Padding ending the first block; then padding four characters before its end.
        for (text, decodable) in [
            (text(BASE64_BLOCK - 4), true),
            (text(BASE64_BLOCK - 8), false),
        ] {
            let mut m = b"Content-Transfer-Encoding: base64\r\n\r\n".to_vec();
            let at = m.len();
            m.extend_from_slice(&text);
            let borrowed = MessageView::parse(&m)
                .unwrap()
                .root()
                .transfer_decoded_body()
                .into_owned();
            assert_eq!(!borrowed.is_empty(), decodable);
            if decodable {
                assert!(borrowed.ends_with(b"\0\0\0ABC"));
            }
            decode_base64_in_place(&mut m, at);
            assert_eq!(m, borrowed);
        }
    }

    proptest::proptest! {
        #[test]
        fn base64_bodies_round_trip(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200_000), spaces in proptest::bool::ANY) {
            let mut b64 = crate::mime::base64_lines(&data);
            if spaces {
                // A sloppy encoder: blanks at line ends.
                b64 = String::from_utf8(b64).unwrap().replace("\r\n", " \r\n").into_bytes();
            }
            let mut m = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
            m.extend_from_slice(&b64);
            let v = MessageView::parse(&m).unwrap();
            let decoded = v.root().transfer_decoded_body().into_owned();
            proptest::prop_assert_eq!(&decoded, &data);
            let body = v.header_section().len();
            decode_base64_in_place(&mut m, body);
            proptest::prop_assert_eq!(m, data);
        }

        /// In place and borrowed, base64 decoding agrees on any text: blanks and breaks
        /// anywhere, padding in the middle, stray bytes, and texts past one block.
        #[test]
        fn base64_in_place_agrees_with_the_borrowed_decoder(seed in proptest::num::u64::ANY, len in 0usize..160_000, junk in 0u32..4) {
            const SET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut x = seed | 1;
            let mut body = Vec::with_capacity(len);
            while body.len() < len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let r = (x >> 32) as u32;
                match r % 1000 {
                    0..=9 => body.extend_from_slice(b"\r\n"),
                    10..=12 => body.push(b'\n'),
                    13 if junk > 0 => body.push(b'\r'),
                    14..=16 => body.push(b' '),
                    17 => body.push(b'\t'),
                    18 if junk > 1 => body.push(b'='),
                    19 if junk > 2 => body.push((r >> 16) as u8),
                    _ => body.push(SET[(r >> 10) as usize % 64]),
                }
            }

            let mut m = b"Content-Transfer-Encoding: base64\r\n\r\n".to_vec();
            m.extend_from_slice(&body);
            let v = MessageView::parse(&m).unwrap();
            let borrowed = v.root().transfer_decoded_body().into_owned();
            let at = v.header_section().len();
            decode_base64_in_place(&mut m, at);
            proptest::prop_assert_eq!(m, borrowed);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            if let Ok(v) = MessageView::parse(&bytes) {
                let _ = v.headers();
                let _ = v.body();
                for c in v.root().children() {
                    let _ = (c.raw(), c.decoded_body(), c.mime_type(), c.children());
                }
            }
        }
    }
}
