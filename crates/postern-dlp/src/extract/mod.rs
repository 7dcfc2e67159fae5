//! From a raw message to the text a person would read: the subject, every body part (transfer
//! encoding undone and charset converted by mail-parser, HTML reduced to text), and attachments
//! (text, CSV, PDF, DOCX/XLSX/PPTX, zip archives, nested messages) — within limits on depth,
//! expanded size and time, so no attachment can stall the gateway. What could not be read
//! (encrypted, over a limit, broken) is reported, not skipped silently.

mod ebcdic;
mod html;
mod inflate;
mod office;
mod ole;
mod pdf;
mod pgp;
mod rtf;

use std::time::{Duration, Instant};

use mail_parser::{MimeHeaders, PartType};
use serde::{Deserialize, Serialize};

pub use html::html_to_text;

/// Where a piece of text was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "in", content = "name")]
pub enum Location {
    /// The Subject header field.
    Subject,
    /// Another header field a reader or a recipient's system can see (`X-*`, `Comments`,
    /// `Keywords`), by name.
    Header(String),
    /// A body part (text or HTML).
    Body,
    /// An attachment, by file name (`archive.zip/inner.docx` for nested ones).
    Attachment(String),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Subject => f.write_str("subject"),
            Location::Header(n) => write!(f, "header {n}"),
            Location::Body => f.write_str("body"),
            Location::Attachment(n) => write!(f, "attachment {n}"),
        }
    }
}

/// Something that could not be inspected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Note {
    /// A limit stopped inspection (what was read so far still counts).
    Limit {
        /// Which limit, in words.
        what: String,
    },
    /// An encrypted part (S/MIME, PGP, password-protected zip or PDF).
    Encrypted {
        /// Where.
        location: Location,
    },
    /// A part that could not be parsed.
    Unreadable {
        /// Where.
        location: Location,
        /// Why, briefly.
        why: String,
    },
}

/// Bounds on inspection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Nesting of archives and attached messages.
    pub max_depth: usize,
    /// Total bytes of text and decompressed data per message.
    pub max_expanded: usize,
    /// Wall-clock time per message, in milliseconds.
    pub max_millis: u64,
    /// Entries read per archive.
    pub max_entries: usize,
    /// Largest ratio of expanded to compressed size for an archive entry (zip bombs).
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 4,
            max_expanded: 64 * 1024 * 1024,
            max_millis: 5_000,
            max_entries: 2_000,
            max_ratio: 200,
        }
    }
}

/// One piece of readable text and where it came from.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Where.
    pub location: Location,
    /// The text.
    pub text: String,
}

/// Everything readable in a message, and what was not.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// Readable text.
    pub segments: Vec<Segment>,
    /// What could not be inspected.
    pub notes: Vec<Note>,
}

/// Running totals against the limits.
pub(crate) struct Budget<'a> {
    limits: &'a Limits,
    deadline: Instant,
    expanded: usize,
    stopped: bool,
}

impl<'a> Budget<'a> {
    fn new(limits: &'a Limits) -> Self {
        Budget {
            limits,
            deadline: Instant::now() + Duration::from_millis(limits.max_millis),
            expanded: 0,
            stopped: false,
        }
    }

    /// Bytes still allowed.
    pub(crate) fn room(&self) -> usize {
        self.limits.max_expanded.saturating_sub(self.expanded)
    }

    /// Takes `n` bytes from the budget; `false` (and a stop) when there is not enough.
    pub(crate) fn take(&mut self, n: usize, out: &mut Extracted) -> bool {
        if self.stopped {
            return false;
        }
        if n > self.room() {
            self.stop(
                out,
                format!("more than {} bytes of content", self.limits.max_expanded),
            );
            return false;
        }
        self.expanded += n;
        true
    }

    /// Whether time is left; records the stop once.
    pub(crate) fn in_time(&mut self, out: &mut Extracted) -> bool {
        if self.stopped {
            return false;
        }
        if Instant::now() > self.deadline {
            self.stop(
                out,
                format!("inspection took over {} ms", self.limits.max_millis),
            );
            return false;
        }
        true
    }

    fn stop(&mut self, out: &mut Extracted, what: String) {
        self.stopped = true;
        out.notes.push(Note::Limit { what });
    }

    pub(crate) fn limits(&self) -> &Limits {
        self.limits
    }
}

/// Extracts the readable text of `raw` within `limits`.
pub fn extract(raw: &[u8], limits: &Limits) -> Extracted {
    let mut out = Extracted::default();
    let mut budget = Budget::new(limits);
    message(raw, 0, "", &mut budget, &mut out);
    out
}

fn push(out: &mut Extracted, budget: &mut Budget<'_>, location: Location, text: String) {
    if text.trim().is_empty() {
        return;
    }
    // NULs between characters: UTF-16 read under an 8-bit or UTF-8 label. Without them the
    // text reads as it was written.
    let text = if memchr::memchr(0, text.as_bytes()).is_some() {
        text.replace('\0', "")
    } else {
        text
    };
    // OpenPGP armour that is not encrypted (a literal packet dressed up as a message).
    static PGP: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new("-----BEGIN PGP MESSAGE-----"));
    static UU: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new("begin "));
    // Text hidden inside the text: each piece found is a segment of its own.
    let mut found: Vec<String> = Vec::new();
    if PGP.find(text.as_bytes()).is_some() {
        found.extend(
            pgp::unencrypted_armour(&text, budget.room())
                .iter()
                .map(|l| decode_text(l)),
        );
    }
    // uuencoded files inside text (`begin 644 name` … `end`).
    if UU.find(text.as_bytes()).is_some() {
        found.extend(uudecode(&text).iter().map(|d| decode_text(d)));
    }
    // `data:` URIs (in a body's text, or an attribute the HTML pass took out): their bytes.
    // (Schemes are case-insensitive: look for the colon after "data" in any case.)
    if has_data_scheme(text.as_bytes()) {
        found.extend(data_uris(&text).iter().map(|d| decode_text(d)));
    }
    // Digits written as a list (`[4,1,1,1,…]` in JSON, a CSV row of single digits): the
    // number they spell.
    found.extend(digit_lists(&text));
    // Text pasted as base64 into any text (a body, a document, a CSV cell) is text too.
    found.extend(embedded_base64(&text));
    for t in found {
        if budget.take(t.len(), out) {
            out.segments.push(Segment {
                location: location.clone(),
                text: t,
            });
        }
    }
    if budget.take(text.len(), out) {
        out.segments.push(Segment { location, text });
    }
}

fn message(raw: &[u8], depth: usize, prefix: &str, budget: &mut Budget<'_>, out: &mut Extracted) {
    // (A parser panic on hostile structure is "not MIME" too: see postern_core::parse_message.)
    let Some(msg) = postern_core::parse_message(raw) else {
        let loc = if prefix.is_empty() {
            Location::Body
        } else {
            Location::Attachment(prefix.to_string())
        };
        // Not MIME at all: the bytes are what a reader would see.
        push(out, budget, loc, String::from_utf8_lossy(raw).into_owned());
        return;
    };
    if let Some(s) = msg.subject() {
        let loc = if prefix.is_empty() {
            Location::Subject
        } else {
            Location::Attachment(prefix.to_string())
        };
        push(out, budget, loc, s.to_string());
    }
    // Header fields that travel with the message and that people and programs read: free text
    // hides there as well as in the Subject.
    for h in msg.headers() {
        let name = h.name();
        let lower = name.to_ascii_lowercase();
        if !(lower.starts_with("x-") || lower == "comments" || lower == "keywords") {
            continue;
        }
        let text = match h.value() {
            mail_parser::HeaderValue::Text(t) => t.to_string(),
            mail_parser::HeaderValue::TextList(l) => l.join(", "),
            _ => continue,
        };
        let loc = if prefix.is_empty() {
            Location::Header(name.to_string())
        } else {
            Location::Attachment(prefix.to_string())
        };
        push(out, budget, loc, text);
    }
    for (i, part) in msg.parts.iter().enumerate() {
        if !budget.in_time(out) {
            return;
        }
        let name = part.attachment_name().map(str::to_string);
        let is_attachment = name.is_some()
            || part
                .content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
        let shown = name.clone().unwrap_or_else(|| format!("part{}", i + 1));
        // A file name (RFC 2231 decoded by the parser) is text the recipient sees.
        if let Some(n) = &name {
            if n.bytes().any(|b| b.is_ascii_digit()) {
                push(out, budget, Location::Attachment(n.clone()), n.clone());
            }
        }
        let full = if prefix.is_empty() {
            shown.clone()
        } else {
            format!("{prefix}/{shown}")
        };
        let location = if is_attachment || !prefix.is_empty() {
            Location::Attachment(full.clone())
        } else {
            Location::Body
        };
        let ctype = part
            .content_type()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.ctype().to_ascii_lowercase(),
                    c.subtype().unwrap_or("").to_ascii_lowercase()
                )
            })
            .unwrap_or_default();
        match &part.body {
            PartType::Text(t) if t.starts_with("{\\rtf") => {
                push(out, budget, location, rtf::rtf_to_text(t.as_bytes()))
            }
            PartType::Text(t) => {
                // EBCDIC under its own label (which the MIME parser does not know) or under a
                // wrong one: the parser's text lost the bytes; read them as EBCDIC.
                let labelled = part
                    .content_type()
                    .and_then(|c| c.attribute("charset"))
                    .is_some_and(ebcdic::is_ebcdic_label);
                if labelled || t.contains('\u{FFFD}') {
                    if let Some(bytes) = transfer_decoded(&msg, part) {
                        if labelled || ebcdic::looks_ebcdic(&bytes) {
                            push(out, budget, location.clone(), ebcdic::decode(&bytes));
                        }
                    }
                }
                push(out, budget, location, t.to_string())
            }
            PartType::Html(h) => {
                // What a reader sees, when hidden elements make it differ (a hidden digit
                // inside a number), and everything (what hidden elements hold leaves too).
                if let Some(visible) = html::html_visible_text(h) {
                    push(out, budget, location.clone(), visible);
                }
                // What attributes hold (alt, title, a hidden input's value, data: URIs).
                if let Some(attrs) = html::html_attribute_text(h) {
                    push(out, budget, location.clone(), attrs);
                }
                push(out, budget, location, html_to_text(h));
            }
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                file(b, &ctype, &full, depth, budget, out);
            }
            PartType::Message(m) => {
                if too_deep(depth, budget, out) {
                    return;
                }
                message(m.raw_message(), depth + 1, &full, budget, out);
            }
            PartType::Multipart(_) => {
                // The text before the first boundary and after the last: mail clients hide it,
                // but it leaves with the message.
                let boundary = part.content_type().and_then(|c| c.attribute("boundary"));
                let body = raw
                    .get(part.offset_body as usize..part.offset_end as usize)
                    .unwrap_or_default();
                if let Some(b) = boundary {
                    let text = outside_parts(body, b);
                    if text.bytes().any(|c| c.is_ascii_alphanumeric()) {
                        push(out, budget, location, text);
                    }
                }
            }
        }
    }
}

/// Every uuencoded block in `text` (`begin MODE NAME`, length-prefixed lines, `end`), decoded.
fn uudecode(text: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in text.lines() {
        let l = line.trim_end();
        match &mut current {
            None => {
                let mut words = l.split_whitespace();
                if words.next() == Some("begin")
                    && words
                        .next()
                        .is_some_and(|m| m.bytes().all(|b| b.is_ascii_digit()))
                {
                    current = Some(Vec::new());
                }
            }
            Some(data) => {
                if l == "end" {
                    out.push(std::mem::take(data));
                    current = None;
                    continue;
                }
                let b = l.as_bytes();
                let Some(&first) = b.first() else { continue };
                let n = usize::from(first.wrapping_sub(32) & 63);
                let val = |c: u8| c.wrapping_sub(32) & 63;
                let mut bytes = Vec::with_capacity(n + 2);
                for quad in b.get(1..).unwrap_or_default().chunks(4) {
                    let q: Vec<u8> = (0..4).map(|i| val(*quad.get(i).unwrap_or(&b'`'))).collect();
                    bytes.push(q[0] << 2 | q[1] >> 4);
                    bytes.push(q[1] << 4 | q[2] >> 2);
                    bytes.push(q[2] << 6 | q[3]);
                }
                bytes.truncate(n);
                data.extend_from_slice(&bytes);
            }
        }
    }
    out
}

/// Base64 inside text that decodes to text: blocks of lines of nothing but base64 (32
/// characters or more in all), and long base64 words inside a line.
/// Whether `b` holds `len` consecutive bytes of the class `set`. Looks at every `len`-th byte
/// and around it only where that byte is in the class: any run of `len` covers one of the
/// bytes looked at, and prose (words shorter than `len`) is crossed in strides.
fn has_run(b: &[u8], set: &[bool; 256], len: usize) -> bool {
    let is = |i: usize| set[usize::from(b[i])];
    let Some(mut p) = len.checked_sub(1) else {
        return true;
    };
    while p < b.len() {
        if !is(p) {
            p += len;
            continue;
        }
        // Back to the start of this run (no further than a whole run).
        let mut s = p;
        while s > 0 && p - s < len - 1 && is(s - 1) {
            s -= 1;
        }
        // Forward: does it reach `len` bytes from its start?
        let mut q = p + 1;
        while q < s + len && q < b.len() && is(q) {
            q += 1;
        }
        if q >= s + len {
            return true;
        }
        // b[q] ends the run: the next run that could be long enough covers q + len.
        p = q + len;
    }
    false
}

fn embedded_base64(text: &str) -> Vec<String> {
    use base64::Engine;
    // One tight pass first (a table lookup per byte): most text has no run of 16 base64
    // characters at all.
    static B64: [bool; 256] = {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let c = i as u8;
            t[i] = c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=';
            i += 1;
        }
        t
    };
    if !has_run(text.as_bytes(), &B64, 16) {
        return Vec::new();
    }
    let is_b64_line = |l: &str| {
        let l = l.trim();
        l.len() >= 16
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    };
    let mut out = Vec::new();
    let mut block = String::new();
    let mut flush = |block: &mut String| {
        if block.len() >= 32 {
            let engine = &base64::engine::general_purpose::STANDARD;
            let cleaned: String = block.trim_end_matches('=').to_string();
            let padded = format!("{cleaned}{}", "=".repeat((4 - cleaned.len() % 4) % 4));
            if let Ok(bytes) = engine.decode(padded.as_bytes()) {
                if let Ok(s) = String::from_utf8(bytes) {
                    if s.chars()
                        .filter(|c| c.is_control() && !c.is_whitespace())
                        .count()
                        * 10
                        < s.chars().count().max(1)
                    {
                        out.push(s);
                    }
                }
            }
        }
        block.clear();
    };
    for line in text.lines() {
        if is_b64_line(line) {
            block.push_str(line.trim());
        } else {
            // A long base64 word inside a line of prose (a pasted value).
            for word in line.split_whitespace() {
                if word.len() >= 32 && is_b64_line(word) {
                    let mut w = word.to_string();
                    flush(&mut w);
                }
            }
            flush(&mut block);
        }
    }
    flush(&mut block);
    out
}

/// Whether `b` holds `data:` in any letter case.
fn has_data_scheme(b: &[u8]) -> bool {
    memchr::memchr_iter(b':', b).any(|i| {
        i >= 4
            && b.get(i - 4..i)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"data"))
    })
}

/// The bytes of every `data:` URI in `text` (`data:[type][;base64],payload`): base64 or
/// percent-encoded, up to the first space, quote, `)` or `>`.
fn data_uris(text: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(k) = lower.get(from..).and_then(|t| t.find("data:")) {
        let at = from + k + 5;
        from = at;
        let rest = &lower.as_bytes()[at..];
        // The media type and its parameters run to the comma (before the URI's end).
        let Some(comma) = rest
            .iter()
            .take_while(|c| !(c.is_ascii_whitespace() || matches!(c, b'"' | b'\'' | b')' | b'>')))
            .position(|c| *c == b',')
        else {
            continue;
        };
        let head = lower.get(at..at + comma).unwrap_or_default();
        let start = at + comma + 1;
        let end = text.as_bytes()[start..]
            .iter()
            .position(|c| c.is_ascii_whitespace() || matches!(c, b'"' | b'\'' | b')' | b'>'))
            .map_or(text.len(), |p| start + p);
        let payload = text.get(start..end).unwrap_or_default();
        let bytes = if head.ends_with(";base64") {
            let cleaned = payload.trim_end_matches('=');
            let padded = format!("{cleaned}{}", "=".repeat((4 - cleaned.len() % 4) % 4));
            base64::engine::general_purpose::STANDARD
                .decode(padded.as_bytes())
                .ok()
        } else {
            Some(percent_decode(payload))
        };
        if let Some(b) = bytes.filter(|b| !b.is_empty()) {
            out.push(b);
        }
        from = end.max(at);
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Runs of 9 to 19 single digits separated by `,`, `;` or `|` (optionally quoted, in brackets
/// or not): the digits joined, so a card number written `[4,1,1,1,…]` is read as one.
fn digit_lists(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let mut digits = String::new();
        let mut j = i;
        loop {
            // One digit, optionally quoted.
            if b.get(j) == Some(&b'"') {
                j += 1;
            }
            let Some(d) = b.get(j).filter(|c| c.is_ascii_digit()) else {
                break;
            };
            if b.get(j + 1).is_some_and(u8::is_ascii_digit) {
                break;
            }
            digits.push(*d as char);
            j += 1;
            if b.get(j) == Some(&b'"') {
                j += 1;
            }
            // A separator (with spaces around it) before the next digit.
            let mut k = j;
            while b.get(k) == Some(&b' ') {
                k += 1;
            }
            if !matches!(b.get(k), Some(b',' | b';' | b'|')) {
                break;
            }
            k += 1;
            while b.get(k) == Some(&b' ') {
                k += 1;
            }
            j = k;
        }
        if (9..=19).contains(&digits.len()) {
            out.push(digits);
        }
        i = j.max(i + 1);
    }
    out
}

#[cfg(test)]
mod list_tests {
    #[test]
    fn digit_lists_data_uris_and_their_look_alikes() {
        assert_eq!(
            super::digit_lists("{\"pan\":[4,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}"),
            vec!["4111111111111111".to_string()]
        );
        assert_eq!(
            super::digit_lists("[\"4\", \"1\", \"1\", \"1\", \"1\", \"1\", \"1\", \"1\", \"1\"]"),
            vec!["411111111".to_string()]
        );
        assert!(
            super::digit_lists("1,234,567 and 3, 4, 5 and [10,20,30,40,50,60,70,80,90]").is_empty()
        );
        let uris = super::data_uris(
            "<img src=\"DaTa:text/plain;base64,Q2FyZCA0MTExIDExMTEgMTExMSAxMTEx\"> and data:,SSN%20078-05-1120)",
        );
        assert_eq!(
            uris,
            vec![
                b"Card 4111 1111 1111 1111".to_vec(),
                b"SSN 078-05-1120".to_vec()
            ]
        );
    }
}

/// The preamble and epilogue of a multipart body (`boundary` without its dashes).
fn outside_parts(body: &[u8], boundary: &str) -> String {
    let delimiter = format!("--{boundary}");
    let first = memchr::memmem::find(body, delimiter.as_bytes()).unwrap_or(body.len());
    let close = format!("--{boundary}--");
    let last = memchr::memmem::rfind(body, close.as_bytes())
        .map(|i| i + close.len())
        .unwrap_or(body.len());
    let mut text = String::from_utf8_lossy(body.get(..first).unwrap_or_default()).into_owned();
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(
        body.get(last..).unwrap_or_default(),
    ));
    text
}

/// Kinds of file we know how to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Pdf,
    Office,
    Zip,
    Message,
    Encrypted,
    /// A tar archive (POSIX ustar).
    Tar,
    /// An OLE compound file (legacy .doc/.xls/.ppt, Outlook .msg).
    Ole,
    /// A document format we cannot read (legacy binary Office): reported, never passed silently.
    Unsupported,
    Other,
}

fn kind(ctype: &str, name: &str) -> Kind {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match (ctype, ext) {
        (_, "pdf") | ("application/pdf", _) => Kind::Pdf,
        (_, "docx" | "xlsx" | "pptx" | "docm" | "xlsm" | "pptm" | "odt" | "ods" | "odp") => {
            Kind::Office
        }
        (_, "doc" | "xls" | "ppt" | "msg" | "pub" | "wpd")
        | (
            "application/msword" | "application/vnd.ms-excel" | "application/vnd.ms-powerpoint",
            _,
        ) => Kind::Unsupported,
        (c, _) if c.contains("openxmlformats-officedocument") => Kind::Office,
        (_, "zip") | ("application/zip" | "application/x-zip-compressed", _) => Kind::Zip,
        (_, "eml") | ("message/rfc822", _) => Kind::Message,
        (_, "p7m" | "p7s" | "gpg" | "pgp" | "asc")
        | (
            "application/pkcs7-mime" | "application/x-pkcs7-mime" | "application/pgp-encrypted",
            _,
        ) => Kind::Encrypted,
        (
            _,
            "txt" | "csv" | "tsv" | "htm" | "html" | "xml" | "json" | "hl7" | "log" | "md" | "rtf",
        )
        | ("text/csv" | "application/csv" | "application/json" | "application/xml", _) => {
            Kind::Text
        }
        _ => Kind::Other,
    }
}

/// What the first bytes of a file say it is, when they say it clearly.
fn sniff(bytes: &[u8]) -> Option<Kind> {
    let head = bytes.get(..bytes.len().min(1024)).unwrap_or_default();
    if memchr::memmem::find(head, b"%PDF-").is_some() {
        return Some(Kind::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        // An Office or OpenDocument file is a zip with its own table of contents.
        let office = memchr::memmem::find(bytes, b"[Content_Types].xml").is_some()
            || bytes.get(30..38) == Some(b"mimetype");
        return Some(if office { Kind::Office } else { Kind::Zip });
    }
    if bytes.get(257..262) == Some(b"ustar") {
        return Some(Kind::Tar);
    }
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Some(Kind::Ole);
    }
    if bytes.starts_with(b"From ")
        || bytes.starts_with(b"Received: ")
        || bytes.starts_with(b"Return-Path:")
    {
        return Some(Kind::Message);
    }
    // Text under any label (a CSV sent as application/octet-stream with a made-up name): no
    // NUL byte, and valid UTF-8 or a UTF-16 byte-order mark.
    let sample = bytes.get(..bytes.len().min(4096)).unwrap_or_default();
    let utf16 = sample.starts_with(&[0xFF, 0xFE]) || sample.starts_with(&[0xFE, 0xFF]);
    let utf8 = !sample.contains(&0)
        && match std::str::from_utf8(sample) {
            Ok(_) => true,
            // A multi-byte character cut by the sample's end.
            Err(e) => e.error_len().is_none(),
        };
    if !sample.is_empty() && (utf16 || utf8) {
        return Some(Kind::Text);
    }
    None
}

/// A gzip file: its content, read as a file of the same name without `.gz`, within the
/// expansion limits.
/// A single compressed file (not an archive): gzip, bzip2 or xz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compressed {
    Gzip,
    Bzip2,
    Xz,
}

impl Compressed {
    /// By the bytes: the format's magic number.
    fn sniff(bytes: &[u8]) -> Option<Compressed> {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            Some(Compressed::Gzip)
        } else if bytes.len() >= 10
            && bytes.starts_with(b"BZh")
            && (b'1'..=b'9').contains(&bytes[3])
            && (bytes[4..10] == *b"1AY&SY" || bytes[4..10] == [0x17, 0x72, 0x45, 0x38, 0x50, 0x90])
        {
            Some(Compressed::Bzip2)
        } else if bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Compressed::Xz)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compressed::Gzip => "gzip",
            Compressed::Bzip2 => "bzip2",
            Compressed::Xz => "xz",
        }
    }

    fn reader<'a>(self, bytes: &'a [u8]) -> Box<dyn std::io::Read + 'a> {
        match self {
            Compressed::Gzip => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
            Compressed::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(bytes)),
            Compressed::Xz => Box::new(lzma_rust2::XzReader::new(bytes, true)),
        }
    }
}

/// Compressed formats we do not decompress, by their magic number: a file in one of them is
/// reported as a limit (the policy's `on_limit`, quarantine by default), never passed as
/// harmless bytes.
fn unsupported_compression(bytes: &[u8]) -> Option<&'static str> {
    const MAGIC: &[(&[u8], &str)] = &[
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c], "7-Zip"),
        (b"Rar!\x1a\x07", "RAR"),
        (b"LZIP", "lzip"),
        (&[0x5d, 0x00, 0x00], "lzma"),
        (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
    ];
    MAGIC
        .iter()
        .find(|(m, _)| bytes.starts_with(m))
        .map(|(_, n)| *n)
}

fn decompress(
    format: Compressed,
    bytes: &[u8],
    name: &str,
    depth: usize,
    budget: &mut Budget<'_>,
    out: &mut Extracted,
) {
    use std::io::Read;
    let location = Location::Attachment(name.to_string());
    if too_deep(depth, budget, out) {
        return;
    }
    let cap = budget.room().min(
        bytes
            .len()
            .saturating_mul(budget.limits().max_ratio as usize),
    );
    let mut inner = Vec::new();
    let read = format
        .reader(bytes)
        .take(cap as u64 + 1)
        .read_to_end(&mut inner);
    if read.is_err() && inner.is_empty() {
        out.notes.push(Note::Unreadable {
            location,
            why: format!("broken {} data", format.name()),
        });
        return;
    }
    if inner.len() > cap {
        budget.stop(out, format!("{name}: expands past the limits"));
        return;
    }
    // `data.csv.gz` holds `data.csv`; `x.tgz` (and .tbz2, .txz) a tar.
    let lower = name.to_ascii_lowercase();
    let stem = |suffixes: &[&str]| {
        suffixes
            .iter()
            .find(|s| lower.ends_with(*s))
            .and_then(|s| name.get(..name.len() - s.len()))
    };
    let inner_name = stem(&[".gz", ".bz2", ".xz"])
        .or_else(|| stem(&[".tgz", ".tbz2", ".txz"]).map(|_| "archive.tar"))
        .unwrap_or(name);
    file(&inner, "", inner_name, depth + 1, budget, out);
}

/// A POSIX tar archive: each regular file read as a file (`archive.tar/inner.csv`).
fn untar(bytes: &[u8], name: &str, depth: usize, budget: &mut Budget<'_>, out: &mut Extracted) {
    let mut at = 0usize;
    let mut entries = 0usize;
    while let Some(header) = bytes.get(at..at + 512) {
        if header.iter().all(|b| *b == 0) || !budget.in_time(out) {
            return;
        }
        entries += 1;
        if entries > budget.limits().max_entries {
            budget.stop(
                out,
                format!("{name}: more than {} entries", budget.limits().max_entries),
            );
            return;
        }
        let field = |r: std::ops::Range<usize>| header.get(r).unwrap_or_default();
        let text = |r| {
            let f = field(r);
            let end = f.iter().position(|b| *b == 0).unwrap_or(f.len());
            String::from_utf8_lossy(f.get(..end).unwrap_or_default()).into_owned()
        };
        let size = usize::from_str_radix(text(124..136).trim(), 8).unwrap_or(0);
        let entry = format!("{}{}", text(345..500), text(0..100));
        let start = at + 512;
        let Some(data) = bytes.get(start..start.saturating_add(size)) else {
            out.notes.push(Note::Unreadable {
                location: Location::Attachment(name.to_string()),
                why: "truncated tar archive".into(),
            });
            return;
        };
        if matches!(field(156..157), [b'0'] | [0]) && !data.is_empty() {
            file(data, "", &format!("{name}/{entry}"), depth, budget, out);
        }
        at = start + size.div_ceil(512) * 512;
    }
}

/// Whether one more level of nesting (an archive, an attached message) passes the depth limit;
/// if so, inspection stops with a note.
pub(crate) fn too_deep(depth: usize, budget: &mut Budget<'_>, out: &mut Extracted) -> bool {
    let max = budget.limits().max_depth;
    if depth + 1 > max {
        budget.stop(out, format!("nesting deeper than {max}"));
        return true;
    }
    false
}

/// The text of a document, or the note that says why there is none.
fn document(
    r: Result<String, office::Failure>,
    location: Location,
    budget: &mut Budget<'_>,
    out: &mut Extracted,
) {
    match r {
        Ok(t) => push(out, budget, location, t),
        Err(office::Failure::Encrypted) => out.notes.push(Note::Encrypted { location }),
        Err(office::Failure::Broken(why)) => out.notes.push(Note::Unreadable { location, why }),
        Err(office::Failure::Budget) => {}
        Err(office::Failure::Unsupported(what)) => out.notes.push(Note::Limit { what }),
    }
}

/// Reads one attached file (or archive entry).
pub(crate) fn file(
    bytes: &[u8],
    ctype: &str,
    name: &str,
    depth: usize,
    budget: &mut Budget<'_>,
    out: &mut Extracted,
) {
    let location = Location::Attachment(name.to_string());
    // The bytes say what a file is; the label and the name are the sender's word.
    if let Some(format) = Compressed::sniff(bytes) {
        decompress(format, bytes, name, depth, budget, out);
        return;
    }
    if let Some(format) = unsupported_compression(bytes) {
        out.notes.push(Note::Limit {
            what: format!("{name}: compressed with {format}, which is not inspected"),
        });
        return;
    }
    let kind = match (sniff(bytes), kind(ctype, name)) {
        // Armoured OpenPGP and PEM S/MIME are text too: an encrypted label keeps its note (the
        // policy's `on_encrypted`), rather than passing as text with nothing readable found.
        (Some(Kind::Text), Kind::Encrypted) => Kind::Encrypted,
        (Some(sniffed), _) => sniffed,
        // EBCDIC text under a binary or made-up label (a mainframe export): text.
        (None, Kind::Other) if ebcdic::looks_ebcdic(bytes) => Kind::Text,
        (None, labelled) => labelled,
    };
    match kind {
        Kind::Text if bytes.starts_with(b"{\\rtf") => {
            push(out, budget, location, rtf::rtf_to_text(bytes));
        }
        Kind::Text => {
            let text = decode_text(bytes);
            let text = if name.to_ascii_lowercase().ends_with(".htm")
                || name.to_ascii_lowercase().ends_with(".html")
            {
                if let Some(attrs) = html::html_attribute_text(&text) {
                    push(out, budget, location.clone(), attrs);
                }
                html_to_text(&text)
            } else {
                text
            };
            push(out, budget, location, text);
        }
        Kind::Pdf => match pdf::text(bytes, budget, out) {
            // No text but images: a scan. Without OCR it is not read; the policy decides
            // (`on_unreadable`).
            Ok(t)
                if t.trim().is_empty()
                    && (memchr::memmem::find(bytes, b"/Subtype /Image").is_some()
                        || memchr::memmem::find(bytes, b"/Subtype/Image").is_some()) =>
            {
                out.notes.push(Note::Unreadable {
                    location,
                    why: "PDF of images only (a scan?): no text to inspect, no OCR".into(),
                })
            }
            Ok(t) => push(out, budget, location, t),
            Err(pdf::Failure::Encrypted) => out.notes.push(Note::Encrypted { location }),
            Err(pdf::Failure::Broken(why)) => out.notes.push(Note::Unreadable { location, why }),
            Err(pdf::Failure::Budget) => {}
        },
        Kind::Office => {
            let r = office::document_text(bytes, name, depth, budget, out);
            document(r, location, budget, out);
        }
        Kind::Zip => {
            if too_deep(depth, budget, out) {
                return;
            }
            if let Err(f) = office::archive(bytes, name, depth + 1, budget, out) {
                match f {
                    office::Failure::Encrypted => out.notes.push(Note::Encrypted { location }),
                    office::Failure::Broken(why) => {
                        out.notes.push(Note::Unreadable { location, why })
                    }
                    office::Failure::Budget => {}
                    office::Failure::Unsupported(what) => out.notes.push(Note::Limit { what }),
                }
            }
        }
        Kind::Message => {
            if too_deep(depth, budget, out) {
                return;
            }
            message(bytes, depth + 1, name, budget, out);
        }
        Kind::Encrypted => out.notes.push(Note::Encrypted { location }),
        Kind::Ole => {
            let r = ole::ole_text(bytes, budget, out);
            document(r, location, budget, out);
        }
        Kind::Tar => {
            if too_deep(depth, budget, out) {
                return;
            }
            untar(bytes, name, depth + 1, budget, out);
        }
        Kind::Unsupported => out.notes.push(Note::Unreadable {
            location,
            why: "legacy binary document format is not inspected".into(),
        }),
        Kind::Other => {}
    }
}

/// A part's body with its transfer encoding undone, before any charset conversion.
fn transfer_decoded(
    msg: &mail_parser::Message<'_>,
    part: &mail_parser::MessagePart<'_>,
) -> Option<Vec<u8>> {
    let start = usize::try_from(part.offset_body).ok()?;
    let end = usize::try_from(part.offset_end).ok()?;
    let raw = msg.raw_message().get(start..end)?;
    match part.encoding {
        mail_parser::Encoding::Base64 => mail_parser::decoders::base64::base64_decode(raw),
        mail_parser::Encoding::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(raw)
        }
        mail_parser::Encoding::None => Some(raw.to_vec()),
    }
}

/// Text from bytes: UTF-8 when valid (with or without BOM), UTF-16 with a BOM, EBCDIC when
/// the bytes have its shape, else Windows-1252 (what most legacy files are).
pub(crate) fn decode_text(bytes: &[u8]) -> String {
    if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        return enc
            .decode_without_bom_handling(&bytes[bom..])
            .0
            .into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) if ebcdic::looks_ebcdic(bytes) => ebcdic::decode(bytes),
        Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_gate_agrees_with_counting_every_byte() {
        let mut set = [false; 256];
        for c in b'a'..=b'z' {
            set[usize::from(c)] = true;
        }
        let naive = |b: &[u8], len: usize| {
            let mut run = 0;
            b.iter().any(|c| {
                run = if set[usize::from(*c)] { run + 1 } else { 0 };
                run >= len
            })
        };
        // Every string over {a, ' '} up to 14 bytes, and longer mixes, for runs of 1 to 6.
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for n in 0..=14u32 {
            for bits in 0..(1u32 << n) {
                cases.push(
                    (0..n)
                        .map(|i| if bits >> i & 1 == 1 { b'a' } else { b' ' })
                        .collect(),
                );
            }
        }
        let mut x = 7u32;
        for _ in 0..2000 {
            let len = 20 + (x % 200) as usize;
            cases.push(
                (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        if (x >> 16) % 9 == 0 {
                            b' '
                        } else {
                            b'a'
                        }
                    })
                    .collect(),
            );
        }
        for c in &cases {
            for len in [1, 2, 3, 5, 6, 16] {
                assert_eq!(
                    has_run(c, &set, len),
                    naive(c, len),
                    "{:?} {len}",
                    String::from_utf8_lossy(c)
                );
            }
        }
    }

    #[test]
    fn ebcdic_bodies_and_files_are_read_whatever_their_label() {
        // "SSN 078-05-1120, card 4111 1111 1111 1111" in CP037 (Python's codec wrote it).
        let ebcdic = ebcdic::tests::sample();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&ebcdic);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for (ctype, cte, body) in [
            ("text/plain; charset=ibm037", "8bit", ebcdic.clone()),
            ("text/plain; charset=utf-8", "8bit", ebcdic.clone()),
            (
                "text/plain; charset=ebcdic-cp-us",
                "base64",
                b64.clone().into_bytes(),
            ),
            (
                "application/octet-stream; name=report.dat",
                "base64",
                b64.clone().into_bytes(),
            ),
            (
                "text/plain; name=report.txt",
                "base64",
                b64.clone().into_bytes(),
            ),
        ] {
            let mut m = format!(
                "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                 --b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n\
                 Content-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
            )
            .into_bytes();
            m.extend_from_slice(&body);
            m.extend_from_slice(b"\r\n--b--\r\n");
            cases.push(m);
        }
        for raw in &cases {
            let x = extract(raw, &Limits::default());
            assert!(
                x.segments
                    .iter()
                    .any(|s| s.text.contains("SSN 078-05-1120, card 4111 1111 1111 1111")),
                "{}: {:?}",
                String::from_utf8_lossy(&raw[..160]),
                x.segments
            );
        }
    }

    #[test]
    fn subject_bodies_and_charsets() {
        let raw = b"Subject: =?utf-8?q?Patient_r=C3=A9sum=C3=A9?=\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
Caf=E9 SSN 078-05-1120\r\n--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n\
PHA+Q2FyZCA0MTExJm5ic3A7MTExMSAxMTExIDExMTE8L3A+\r\n--b--\r\n";
        let x = extract(raw, &Limits::default());
        let texts: Vec<_> = x
            .segments
            .iter()
            .map(|s| (s.location.clone(), s.text.clone()))
            .collect();
        assert_eq!(texts[0], (Location::Subject, "Patient résumé".to_string()));
        assert!(texts[1].1.contains("Café SSN 078-05-1120"), "{texts:?}");
        assert!(texts[2].1.contains("Card 4111 1111 1111 1111"), "{texts:?}");
    }

    #[test]
    fn text_decoding() {
        assert_eq!(decode_text(b"\xef\xbb\xbfhi"), "hi");
        assert_eq!(decode_text(b"caf\xe9"), "café");
        assert_eq!(decode_text(b"\xff\xfeh\x00i\x00"), "hi");
    }
}
