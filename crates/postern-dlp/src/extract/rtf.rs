//! RTF reduced to its text: control words and groups go, `\'hh` escapes (Windows-1252 bytes)
//! and `\uN` escapes (Unicode, with their fallback character skipped) become characters, and
//! `\par`, `\line`, `\tab`, `\cell` become line breaks or tabs — so a number written as
//! `\'34\'31\'31\'31` reads as `4111`.

/// Groups whose content is not text a reader sees.
const SKIPPED: &[&str] = &[
    "fonttbl",
    "colortbl",
    "stylesheet",
    "info",
    "pict",
    "object",
    "*",
];

/// The text of an RTF document (lenient: broken RTF gives what could be read).
pub fn rtf_to_text(rtf: &[u8]) -> String {
    let mut out = Vec::with_capacity(rtf.len() / 2);
    let mut i = 0;
    // Depth at which a skipped group started (its content is dropped until it closes).
    let mut depth = 0usize;
    let mut skip_from: Option<usize> = None;
    let mut skip_next_chars = 0usize;
    while i < rtf.len() {
        let c = rtf[i];
        match c {
            b'{' => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                if skip_from == Some(depth) {
                    skip_from = None;
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'\\' => {
                let rest = rtf.get(i + 1..).unwrap_or_default();
                match rest.first() {
                    Some(b'\'') => {
                        let hex = rest.get(1..3).unwrap_or_default();
                        let byte = std::str::from_utf8(hex)
                            .ok()
                            .and_then(|h| u8::from_str_radix(h, 16).ok());
                        if let (Some(b), None) = (byte, skip_from) {
                            if skip_next_chars > 0 {
                                skip_next_chars -= 1;
                            } else {
                                let one = [b];
                                let (s, _, _) = encoding_rs::WINDOWS_1252.decode(&one);
                                out.extend_from_slice(s.as_bytes());
                            }
                        }
                        i += 4;
                    }
                    Some(b) if b.is_ascii_alphabetic() => {
                        let word_len = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
                        let word = std::str::from_utf8(rest.get(..word_len).unwrap_or_default())
                            .unwrap_or_default();
                        let after = rest.get(word_len..).unwrap_or_default();
                        let num_len = after
                            .iter()
                            .enumerate()
                            .take_while(|(k, b)| b.is_ascii_digit() || (*k == 0 && **b == b'-'))
                            .count();
                        let num: Option<i32> =
                            std::str::from_utf8(after.get(..num_len).unwrap_or_default())
                                .ok()
                                .and_then(|n| n.parse().ok());
                        let mut used = 1 + word_len + num_len;
                        if rtf.get(i + used) == Some(&b' ') {
                            used += 1;
                        }
                        if skip_from.is_none() {
                            if SKIPPED.contains(&word) {
                                skip_from = Some(depth);
                            } else {
                                match word {
                                    "par" | "line" | "row" | "sect" | "page" => out.push(b'\n'),
                                    "tab" | "cell" => out.push(b'\t'),
                                    "u" => {
                                        if let Some(ch) = num
                                            .map(|n| if n < 0 { n + 65536 } else { n })
                                            .and_then(|n| char::from_u32(n as u32))
                                        {
                                            let mut buf = [0u8; 4];
                                            out.extend_from_slice(
                                                ch.encode_utf8(&mut buf).as_bytes(),
                                            );
                                            skip_next_chars = 1;
                                        }
                                    }
                                    _ => {}
                                }
                            }
                        }
                        i += used;
                    }
                    Some(b'*') => {
                        if skip_from.is_none() {
                            skip_from = Some(depth);
                        }
                        i += 2;
                    }
                    Some(b) => {
                        // An escaped symbol (`\\`, `\{`, `\}`, `\~` for a no-break space).
                        if skip_from.is_none() {
                            out.push(if *b == b'~' { b' ' } else { *b });
                        }
                        i += 2;
                    }
                    None => i += 1,
                }
            }
            b'\r' | b'\n' => i += 1,
            _ => {
                if skip_from.is_none() {
                    if skip_next_chars > 0 {
                        skip_next_chars -= 1;
                    } else {
                        out.push(c);
                    }
                }
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_text() {
        let rtf = br"{\rtf1\ansi{\fonttbl{\f0 Arial;}}\f0\fs20 SSN \'30\'37\'38-05-1120\par Card \u52?111 1111 1111 1111\tab end}";
        let t = rtf_to_text(rtf);
        assert!(t.contains("SSN 078-05-1120"), "{t:?}");
        assert!(t.contains("Card 4111 1111 1111 1111"), "{t:?}");
        assert!(!t.contains("Arial"), "{t:?}");
        for broken in [&b"{\\"[..], b"\\'", b"\\u-", b"}}}{", b"\\'zz"] {
            let _ = rtf_to_text(broken);
        }
    }
}
