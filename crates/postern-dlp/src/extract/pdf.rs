//! Text from PDF files, enough for inspection: content streams (raw or FlateDecode) are
//! scanned for the text-showing operators (`Tj`, `TJ`, `'`, `"`), literal and hex strings are
//! decoded, and ToUnicode CMaps (what Word and LibreOffice embed for subset fonts) map glyph
//! codes back to characters. No layout, no rendering; an encrypted PDF is reported as such.
//! Known gap: CMaps are merged document-wide, so two subset fonts that reuse a code for
//! different characters can garble each other's text.

use std::collections::HashMap;

use super::{Budget, Extracted};

/// Why a PDF gave no text.
#[derive(Debug)]
pub(crate) enum Failure {
    /// It has an /Encrypt dictionary.
    Encrypted,
    /// Not a PDF we can read.
    Broken(String),
    /// A limit stopped it (already noted).
    Budget,
}

/// The text of a PDF.
pub(crate) fn text(
    bytes: &[u8],
    budget: &mut Budget<'_>,
    out: &mut Extracted,
) -> Result<String, Failure> {
    let head = &bytes[..bytes.len().min(1024)];
    if memchr::memmem::find(head, b"%PDF-").is_none() {
        return Err(Failure::Broken("no %PDF- header".into()));
    }
    if memchr::memmem::find(bytes, b"/Encrypt").is_some() {
        return Err(Failure::Encrypted);
    }
    let mut contents: Vec<Vec<u8>> = Vec::new();
    let mut cmap: HashMap<u32, String> = HashMap::new();
    let mut at = 0;
    while let Some(s) = memchr::memmem::find(&bytes[at..], b"stream") {
        if !budget.in_time(out) {
            return Err(Failure::Budget);
        }
        let kw = at + s;
        at = kw + 6;
        // "endstream" also contains "stream": only a keyword followed by EOL opens one.
        let start = match bytes.get(at..at + 2) {
            Some([b'\r', b'\n']) => at + 2,
            Some([b'\n', _]) | Some([b'\r', _]) => at + 1,
            _ => continue,
        };
        if kw >= 3 && &bytes[kw - 3..kw] == b"end" {
            continue;
        }
        let Some(len) = memchr::memmem::find(&bytes[start..], b"endstream") else {
            break;
        };
        let data = &bytes[start..start + len];
        at = start + len + 9;
        let dict_start = memchr::memmem::rfind(&bytes[kw.saturating_sub(2048)..kw], b"obj")
            .map_or(kw.saturating_sub(2048), |i| kw.saturating_sub(2048) + i);
        let dict = &bytes[dict_start..kw];
        if memchr::memmem::find(dict, b"/Image").is_some()
            || memchr::memmem::find(dict, b"/DCTDecode").is_some()
            || memchr::memmem::find(dict, b"/FontFile").is_some()
        {
            continue;
        }
        let decoded = if memchr::memmem::find(dict, b"/FlateDecode").is_some() {
            let room = budget.room();
            let got = super::inflate::inflate(data, true, room.saturating_add(1));
            let buf = got.data;
            if !got.complete && buf.is_empty() {
                continue;
            }
            if buf.len() > room {
                budget.take(buf.len(), out);
                return Err(Failure::Budget);
            }
            buf
        } else if memchr::memmem::find(dict, b"/Filter").is_some() {
            continue;
        } else {
            data.to_vec()
        };
        if !budget.take(decoded.len(), out) {
            return Err(Failure::Budget);
        }
        if memchr::memmem::find(&decoded, b"beginbfchar").is_some()
            || memchr::memmem::find(&decoded, b"beginbfrange").is_some()
        {
            read_cmap(&decoded, &mut cmap);
        } else if memchr::memmem::find(&decoded, b"BT").is_some() {
            contents.push(decoded);
        }
    }
    let mut text = String::new();
    for c in &contents {
        show_text(c, &cmap, &mut text);
        text.push('\n');
    }
    Ok(text)
}

/// A PDF token we care about.
enum Tok {
    Str(Vec<u8>, bool),
    Num(f64),
    Op(Vec<u8>),
    ArrayStart,
    ArrayEnd,
}

fn tokens(c: &[u8]) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let b = c[i];
        match b {
            b'(' => {
                let (s, next) = literal(c, i + 1);
                out.push(Tok::Str(s, false));
                i = next;
            }
            b'<' if c.get(i + 1) == Some(&b'<') => i += 2,
            b'>' if c.get(i + 1) == Some(&b'>') => i += 2,
            b'<' => {
                let end = memchr::memchr(b'>', &c[i..]).map_or(c.len(), |j| i + j);
                let hex: Vec<u8> = c[i + 1..end]
                    .iter()
                    .copied()
                    .filter(u8::is_ascii_hexdigit)
                    .collect();
                let mut bytes = Vec::with_capacity(hex.len() / 2 + 1);
                for pair in hex.chunks(2) {
                    let hi = (pair[0] as char).to_digit(16).unwrap_or(0);
                    let lo = pair
                        .get(1)
                        .and_then(|x| (*x as char).to_digit(16))
                        .unwrap_or(0);
                    bytes.push((hi * 16 + lo) as u8);
                }
                out.push(Tok::Str(bytes, true));
                i = end + 1;
            }
            b'[' => {
                out.push(Tok::ArrayStart);
                i += 1;
            }
            b']' => {
                out.push(Tok::ArrayEnd);
                i += 1;
            }
            b'%' => i = memchr::memchr2(b'\n', b'\r', &c[i..]).map_or(c.len(), |j| i + j),
            b'/' => {
                i += 1;
                while i < c.len() && !is_delim(c[i]) {
                    i += 1;
                }
            }
            _ if b.is_ascii_whitespace() => i += 1,
            _ => {
                let start = i;
                while i < c.len() && !is_delim(c[i]) {
                    i += 1;
                }
                if i == start {
                    i += 1;
                    continue;
                }
                let word = &c[start..i];
                match std::str::from_utf8(word)
                    .ok()
                    .and_then(|w| w.parse::<f64>().ok())
                {
                    Some(n) => out.push(Tok::Num(n)),
                    None => out.push(Tok::Op(word.to_vec())),
                }
            }
        }
    }
    out
}

fn is_delim(b: u8) -> bool {
    b.is_ascii_whitespace() || b"()<>[]{}/%".contains(&b)
}

/// A literal string from just after its `(`; returns it and the index after its `)`.
fn literal(c: &[u8], mut i: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut depth = 1;
    while i < c.len() {
        let b = c[i];
        i += 1;
        match b {
            b'\\' => {
                let Some(&e) = c.get(i) else { break };
                i += 1;
                match e {
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'\r' | b'\n' => {}
                    b'0'..=b'7' => {
                        let mut v = u32::from(e - b'0');
                        for _ in 0..2 {
                            match c.get(i) {
                                Some(d @ b'0'..=b'7') => {
                                    v = v * 8 + u32::from(d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push((v & 0xff) as u8);
                    }
                    other => out.push(other),
                }
            }
            b'(' => {
                depth += 1;
                out.push(b);
            }
            b')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
                out.push(b);
            }
            _ => out.push(b),
        }
    }
    (out, i)
}

fn decode(s: &[u8], hex: bool, cmap: &HashMap<u32, String>) -> String {
    if hex && !cmap.is_empty() {
        let mut out = String::new();
        for pair in s.chunks(2) {
            let code = pair.iter().fold(0u32, |a, b| a << 8 | u32::from(*b));
            match cmap.get(&code) {
                Some(t) => out.push_str(t),
                None => out.push('\u{fffd}'),
            }
        }
        return out;
    }
    if !cmap.is_empty() && s.len() % 2 == 0 && s.first() == Some(&0) {
        return decode(s, true, cmap);
    }
    // PDFDocEncoding is Latin-1 for the characters that matter here.
    s.iter().map(|b| *b as char).collect()
}

/// Appends the text shown by one content stream.
fn show_text(c: &[u8], cmap: &HashMap<u32, String>, out: &mut String) {
    let mut pending: Vec<(Vec<u8>, bool, f64)> = Vec::new();
    let mut in_array = false;
    let mut gap = 0.0;
    for t in tokens(c) {
        match t {
            Tok::Str(s, hex) => {
                pending.push((s, hex, gap));
                gap = 0.0;
            }
            Tok::Num(n) if in_array => gap = n,
            Tok::Num(_) => {}
            Tok::ArrayStart => in_array = true,
            Tok::ArrayEnd => in_array = false,
            Tok::Op(op) => match op.as_slice() {
                b"Tj" | b"TJ" | b"'" | b"\"" => {
                    if op != b"Tj" && op != b"TJ" {
                        out.push('\n');
                    }
                    for (s, hex, g) in pending.drain(..) {
                        // A large negative adjustment in a TJ array is a word space.
                        if g < -200.0 {
                            out.push(' ');
                        }
                        out.push_str(&decode(&s, hex, cmap));
                    }
                }
                b"Td" | b"TD" | b"T*" | b"Tm" => {
                    pending.clear();
                    if !out.ends_with(['\n', ' ']) {
                        out.push(' ');
                    }
                }
                b"ET" => {
                    pending.clear();
                    out.push('\n');
                }
                _ => pending.clear(),
            },
        }
    }
}

/// Reads `bfchar` and `bfrange` mappings of a ToUnicode CMap into `map` (first one wins).
fn read_cmap(c: &[u8], map: &mut HashMap<u32, String>) {
    let toks = tokens(c);
    let mut i = 0;
    let code = |b: &[u8]| b.iter().fold(0u32, |a, x| a << 8 | u32::from(*x));
    let utf16 = |b: &[u8]| {
        let units: Vec<u16> = b
            .chunks(2)
            .map(|p| u16::from(p[0]) << 8 | u16::from(*p.get(1).unwrap_or(&0)))
            .collect();
        String::from_utf16_lossy(&units)
    };
    let mut mode = 0u8;
    while i < toks.len() {
        match &toks[i] {
            Tok::Op(op) if op == b"beginbfchar" => mode = 1,
            Tok::Op(op) if op == b"beginbfrange" => mode = 2,
            Tok::Op(op) if op == b"endbfchar" || op == b"endbfrange" => mode = 0,
            Tok::Str(src, true) if mode == 1 => {
                if let Some(Tok::Str(dst, true)) = toks.get(i + 1) {
                    map.entry(code(src)).or_insert_with(|| utf16(dst));
                    i += 1;
                }
            }
            Tok::Str(lo, true) if mode == 2 => {
                if let (Some(Tok::Str(hi, true)), Some(Tok::Str(dst, true))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    let (lo, hi) = (code(lo), code(hi));
                    let base = utf16(dst);
                    let first = base.chars().last().map_or(0, u32::from);
                    let stem: String = base
                        .chars()
                        .take(base.chars().count().saturating_sub(1))
                        .collect();
                    // Bounded, and without overflow for hostile four-byte codes.
                    for (k, c) in (lo..=hi.min(lo.saturating_add(1024))).enumerate() {
                        if let Some(ch) = char::from_u32(first.saturating_add(k as u32)) {
                            map.entry(c).or_insert_with(|| format!("{stem}{ch}"));
                        }
                    }
                    i += 2;
                }
            }
            _ => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Limits;

    /// A one-page PDF with `content` as its (optionally compressed) content stream.
    pub(crate) fn pdf(content: &str, compress: bool) -> Vec<u8> {
        let body: Vec<u8> = if compress {
            use std::io::Write;
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(content.as_bytes()).unwrap();
            e.finish().unwrap()
        } else {
            content.as_bytes().to_vec()
        };
        let filter = if compress {
            " /Filter /FlateDecode"
        } else {
            ""
        };
        let mut out = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n".to_vec();
        out.extend_from_slice(
            format!("4 0 obj << /Length {}{filter} >>\nstream\n", body.len()).as_bytes(),
        );
        out.extend_from_slice(&body);
        out.extend_from_slice(b"\nendstream\nendobj\ntrailer << /Root 1 0 R >>\n%%EOF\n");
        out
    }

    fn run(bytes: &[u8]) -> String {
        let limits = Limits::default();
        let mut b = Budget::new(&limits);
        let mut x = Extracted::default();
        text(bytes, &mut b, &mut x).unwrap()
    }

    #[test]
    fn literal_hex_tj_and_compression() {
        let c = "BT /F1 12 Tf 72 700 Td (Patient SSN: 078-05-1120) Tj 0 -14 Td [(Card 4111 ) -50 (1111) -300 (1111 1111 1111)] TJ ET";
        for compress in [false, true] {
            let t = run(&pdf(c, compress));
            assert!(t.contains("Patient SSN: 078-05-1120"), "{t:?}");
            assert!(t.contains("Card 4111 1111 1111 1111 1111"), "{t:?}");
        }
        let t = run(&pdf("BT <4869> Tj (\\(a\\)\\101) Tj ET", false));
        assert!(t.contains("Hi(a)A"), "{t:?}");
    }

    #[test]
    fn tounicode_maps_glyph_codes() {
        let cmap = "/CIDInit /ProcSet findresource begin 12 dict begin begincmap 2 beginbfchar <0001> <0053> <0002> <0053> endbfchar 1 beginbfrange <0003> <000C> <0030> endbfrange endcmap";
        let mut doc = pdf("BT /F1 12 Tf <000100020003000400050006> Tj ET", false);
        let extra = format!(
            "5 0 obj << /Length {} >>\nstream\n{cmap}\nendstream\nendobj\n",
            cmap.len()
        );
        doc.extend_from_slice(extra.as_bytes());
        let t = run(&doc);
        assert!(t.contains("SS0123"), "{t:?}");
    }

    #[test]
    fn hostile_cmap_ranges_do_not_overflow() {
        let mut map = HashMap::new();
        read_cmap(
            b"1 beginbfrange <FFFFFFFF> <FFFFFFFF> <DBFFDFFF> <FFFFFC00> <FFFFFFFF> <0041> endbfrange",
            &mut map,
        );
        assert!(map.len() <= 1025);
    }

    #[test]
    fn encrypted_and_garbage() {
        let limits = Limits::default();
        let mut b = Budget::new(&limits);
        let mut x = Extracted::default();
        assert!(matches!(
            text(b"%PDF-1.7\ntrailer << /Encrypt 5 0 R >>", &mut b, &mut x),
            Err(Failure::Encrypted)
        ));
        assert!(matches!(
            text(b"garbage", &mut b, &mut x),
            Err(Failure::Broken(_))
        ));
        let _ = text(b"%PDF-1.4\nstream\n(((((\\", &mut b, &mut x);
        let _ = text(
            b"%PDF-1.4\n<< /Filter /FlateDecode >> stream\nnot zlib\nendstream",
            &mut b,
            &mut x,
        );
    }
}
