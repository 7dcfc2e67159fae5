//! Legacy Office files (.doc, .xls, .ppt) and Outlook .msg files: OLE compound files. Their
//! text sits in binary streams in 8-bit (Windows-1252) or UTF-16LE form; each stream's runs of
//! readable characters are taken, as `strings` would, which finds document text, cell strings
//! and message bodies without parsing every format's record structure. Numbers stored only as
//! binary cell values are not found (a card or SSN in a spreadsheet is almost always text).

use std::io::{Cursor, Read};

use super::office::Failure;
use super::{Budget, Extracted};

/// Runs shorter than this are noise.
const MIN_RUN: usize = 4;

/// The readable text of every stream of a compound file.
pub(crate) fn ole_text(
    bytes: &[u8],
    budget: &mut Budget<'_>,
    out: &mut Extracted,
) -> Result<String, Failure> {
    // The parser is not ours and the input is a stranger's: a panic is an unreadable file.
    let opened = std::panic::catch_unwind(|| cfb::CompoundFile::open(Cursor::new(bytes)))
        .map_err(|_| Failure::Broken("compound file: the parser failed".into()))?;
    let mut cf = opened.map_err(|e| Failure::Broken(format!("compound file: {e}")))?;
    let streams: Vec<(std::path::PathBuf, u64)> = cf
        .walk()
        .filter(|e| e.is_stream())
        .map(|e| (e.path().to_path_buf(), e.len()))
        .collect();
    // A password-protected Office file is an OLE container around the encrypted package.
    if streams
        .iter()
        .any(|(p, _)| p.ends_with("EncryptedPackage") || p.ends_with("EncryptionInfo"))
    {
        return Err(Failure::Encrypted);
    }
    let mut text = String::new();
    for (path, len) in streams.into_iter().take(budget.limits().max_entries) {
        if !budget.in_time(out) {
            return Err(Failure::Budget);
        }
        let cap = (budget.room() as u64).min(len);
        let mut data = Vec::with_capacity(cap as usize);
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            cf.open_stream(&path)
                .and_then(|s| s.take(cap).read_to_end(&mut data))
        }));
        if !matches!(read, Ok(Ok(_))) || !budget.take(data.len(), out) {
            continue;
        }
        strings(&data, &mut text);
    }
    Ok(text)
}

/// Appends the runs of readable 8-bit and UTF-16LE characters in `data`, one per line.
fn strings(data: &[u8], out: &mut String) {
    let readable = |b: u8| (0x20..0x7f).contains(&b) || b == b'\t' || b >= 0xa0;
    // 8-bit runs.
    let mut run = Vec::new();
    for &b in data {
        if readable(b) {
            run.push(b);
        } else {
            flush8(&mut run, out);
        }
    }
    flush8(&mut run, out);
    // UTF-16LE runs, at both alignments.
    for start in 0..2 {
        let mut run = String::new();
        for pair in data.get(start..).unwrap_or_default().chunks_exact(2) {
            let u = u16::from_le_bytes([pair[0], pair[1]]);
            match char::from_u32(u32::from(u)) {
                Some(c) if (u < 0x80 && readable(u as u8)) || (u >= 0xa0 && !c.is_control()) => {
                    run.push(c)
                }
                _ => flush16(&mut run, out),
            }
        }
        flush16(&mut run, out);
    }
}

fn flush8(run: &mut Vec<u8>, out: &mut String) {
    if run.len() >= MIN_RUN {
        let (s, _, _) = encoding_rs::WINDOWS_1252.decode(run);
        out.push_str(&s);
        out.push('\n');
    }
    run.clear();
}

fn flush16(run: &mut String, out: &mut String) {
    if run.chars().count() >= MIN_RUN {
        out.push_str(run);
        out.push('\n');
    }
    run.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_in_both_encodings() {
        let mut data = b"\x00\x01SSN 078-05-1120\x00\x02".to_vec();
        data.extend(
            "Card 4111 1111 1111 1111"
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        );
        let mut out = String::new();
        strings(&data, &mut out);
        assert!(out.contains("SSN 078-05-1120"), "{out:?}");
        assert!(out.contains("Card 4111 1111 1111 1111"), "{out:?}");
    }
}
