//! Zip containers: Office Open XML documents (DOCX, XLSX, PPTX: text from their XML parts) and
//! plain zip archives (each entry read as the file it is). Every entry is bounded by the
//! budget and by a ratio of expanded to compressed size, so a zip bomb stops at its first
//! greedy entry.

use std::io::{Cursor, Read};

use super::html::html_to_text;
use super::{Budget, Extracted};

/// Why a container gave no text.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Password-protected.
    Encrypted,
    /// Not a readable zip.
    Broken(String),
    /// A limit stopped it (already noted).
    Budget,
    /// An entry compressed with a method we do not decompress (named): not inspected, so the
    /// policy's `on_limit` decides (quarantine by default), never passed as harmless.
    Unsupported(String),
}

/// Reads one entry of the archive `bytes`, at most the budget and the ratio allow.
fn read_entry(
    bytes: &[u8],
    entry: &mut zip::read::ZipFile<'_, Cursor<&[u8]>>,
    budget: &mut Budget<'_>,
    out: &mut Extracted,
) -> Result<Vec<u8>, Failure> {
    if entry.encrypted() {
        return Err(Failure::Encrypted);
    }
    use zip::CompressionMethod as M;
    let method = entry.compression();
    if !matches!(method, M::Stored | M::Deflated | M::Bzip2 | M::Lzma | M::Xz) {
        return Err(Failure::Unsupported(format!(
            "archive entry {} is compressed with {method:?}, which is not inspected",
            entry_name(entry)
        )));
    }
    let declared = entry.size();
    let compressed = entry.compressed_size().max(1);
    let ratio = budget.limits().max_ratio;
    // Small entries may compress very well legitimately; the ratio matters for big ones.
    let allowed_by_ratio = compressed.saturating_mul(ratio).max(1 << 20);
    let cap = (budget.room() as u64).min(allowed_by_ratio);
    if declared > cap {
        let what = if declared > allowed_by_ratio {
            format!("archive entry {} expands over {ratio}x", entry_name(entry))
        } else {
            "more content than the size limit".to_string()
        };
        out.notes.push(super::Note::Limit { what });
        return Err(Failure::Budget);
    }
    // The declared size can lie: read one byte past the cap to notice.
    let deflated = entry
        .data_start()
        .filter(|_| entry.compression() == zip::CompressionMethod::Deflated)
        .and_then(|at| {
            let at = usize::try_from(at).ok()?;
            let len = usize::try_from(entry.compressed_size()).ok()?;
            bytes.get(at..at.checked_add(len)?)
        });
    let buf = if let Some(raw) = deflated {
        // The common case, inflated here with the thread's decompressor (see `inflate`).
        let limit = usize::try_from(cap + 1).unwrap_or(usize::MAX);
        let got = super::inflate::inflate(raw, false, limit);
        if !got.complete && got.data.len() < limit {
            return Err(Failure::Broken(format!(
                "reading {}: broken deflate data",
                entry_name(entry)
            )));
        }
        got.data
    } else {
        let mut buf = Vec::with_capacity(declared.min(cap) as usize);
        entry
            .take(cap + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Failure::Broken(format!("reading {}: {e}", entry_name(entry))))?;
        buf
    };
    if buf.len() as u64 > cap {
        out.notes.push(super::Note::Limit {
            what: format!(
                "archive entry {} expands beyond its limit",
                entry_name(entry)
            ),
        });
        return Err(Failure::Budget);
    }
    if !budget.take(buf.len(), out) {
        return Err(Failure::Budget);
    }
    Ok(buf)
}

fn entry_name(e: &zip::read::ZipFile<'_, Cursor<&[u8]>>) -> String {
    e.name()
        .map(|n| n.into_owned())
        .unwrap_or_else(|_| "(unnamed)".into())
}

/// Entry `i`, or why not: password-protected entries are reported as such (the zip crate
/// refuses to open them without a password, which is exactly what we want to know).
fn entry_at<'z, 'b>(
    zip: &'z mut zip::ZipArchive<Cursor<&'b [u8]>>,
    i: usize,
) -> Result<zip::read::ZipFile<'z, Cursor<&'b [u8]>>, Failure> {
    let encrypted = zip
        .by_index_raw(i)
        .map(|e| e.encrypted())
        .map_err(|e| Failure::Broken(format!("zip entry {i}: {e}")))?;
    if encrypted {
        return Err(Failure::Encrypted);
    }
    zip.by_index(i).map_err(|e| match e {
        zip::result::ZipError::UnsupportedArchive(m)
            if m == zip::result::ZipError::PASSWORD_REQUIRED =>
        {
            Failure::Encrypted
        }
        e => Failure::Broken(format!("zip entry {i}: {e}")),
    })
}

fn open(bytes: &[u8]) -> Result<zip::ZipArchive<Cursor<&[u8]>>, Failure> {
    zip::ZipArchive::new(Cursor::new(bytes))
        .or_else(|e| match zip_end(bytes) {
            // Trailing data confuses some readers: the archive itself ends earlier.
            Some(end) if end < bytes.len() => {
                zip::ZipArchive::new(Cursor::new(bytes.get(..end).unwrap_or_default()))
            }
            _ => Err(e),
        })
        .map_err(|e| Failure::Broken(format!("zip: {e}")))
}

/// Where a zip archive really ends: after its end-of-central-directory record and comment.
/// Anything after that is more data (appended to hide it) and is read on its own.
pub(crate) fn zip_end(bytes: &[u8]) -> Option<usize> {
    let at = memchr::memmem::rfind(bytes, b"PK\x05\x06")?;
    let comment = bytes.get(at + 20..at + 22)?;
    let end = at + 22 + usize::from(u16::from_le_bytes([comment[0], comment[1]]));
    (end <= bytes.len()).then_some(end)
}

/// The XML parts of an Office document that hold what a reader sees.
fn is_text_part(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with(".xml")
        && (n == "word/document.xml"
            || n.starts_with("word/header")
            || n.starts_with("word/footer")
            || n == "word/footnotes.xml"
            || n == "word/comments.xml"
            || n == "xl/sharedstrings.xml"
            || n.starts_with("xl/worksheets/sheet")
            || n.starts_with("ppt/slides/slide")
            || n.starts_with("ppt/notesslides/")
            || n == "content.xml")
}

/// Objects embedded in an Office document.
fn is_embedded(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("word/embeddings/")
        || n.starts_with("xl/embeddings/")
        || n.starts_with("ppt/embeddings/")
        || n.starts_with("object")
}

/// The text of a DOCX, XLSX or PPTX.
pub(crate) fn document_text(
    bytes: &[u8],
    name: &str,
    depth: usize,
    budget: &mut Budget<'_>,
    out: &mut Extracted,
) -> Result<String, Failure> {
    // A password-protected Office file is not a zip at all but an OLE compound file.
    if bytes.starts_with(&[0xd0, 0xcf, 0x11, 0xe0]) {
        return Err(Failure::Encrypted);
    }
    let mut zip = open(bytes)?;
    let mut text = String::new();
    let n = zip.len().min(budget.limits().max_entries);
    for i in 0..n {
        if !budget.in_time(out) {
            return Err(Failure::Budget);
        }
        let mut entry = entry_at(&mut zip, i)?;
        let entry_path = entry_name(&entry);
        // Objects embedded in the document (a spreadsheet in a letter, an attached file):
        // each read as the file it is.
        if is_embedded(&entry_path) && !entry.is_dir() {
            if super::too_deep(depth, budget, out) {
                return Err(Failure::Budget);
            }
            let data = read_entry(bytes, &mut entry, budget, out)?;
            drop(entry);
            super::file(
                &data,
                "",
                &format!("{name}/{entry_path}"),
                depth + 1,
                budget,
                out,
            );
            continue;
        }
        if !is_text_part(&entry_path) {
            continue;
        }
        let xml = read_entry(bytes, &mut entry, budget, out)?;
        text.push_str(&html_to_text(&String::from_utf8_lossy(&xml)));
        text.push('\n');
    }
    Ok(text)
}

/// Every entry of a zip archive, each read as the file it is.
pub(crate) fn archive(
    bytes: &[u8],
    name: &str,
    depth: usize,
    budget: &mut Budget<'_>,
    out: &mut Extracted,
) -> Result<(), Failure> {
    // Data appended after the archive is read as a file of its own.
    if let Some(end) = zip_end(bytes).filter(|e| *e < bytes.len()) {
        let trailing = bytes.get(end..).unwrap_or_default();
        if trailing.iter().any(|b| !b.is_ascii_whitespace()) {
            super::file(
                trailing,
                "",
                &format!("{name}/(after the archive)"),
                depth,
                budget,
                out,
            );
        }
    }
    let mut zip = open(bytes)?;
    if zip.len() > budget.limits().max_entries {
        out.notes.push(super::Note::Limit {
            what: format!("{name} has {} entries", zip.len()),
        });
    }
    let n = zip.len().min(budget.limits().max_entries);
    for i in 0..n {
        if !budget.in_time(out) {
            return Err(Failure::Budget);
        }
        let raw_name = zip
            .by_index_raw(i)
            .map(|e| entry_name(&e))
            .unwrap_or_else(|_| format!("entry{i}"));
        let inner = format!("{name}/{raw_name}");
        let mut entry = match entry_at(&mut zip, i) {
            Ok(e) => e,
            Err(Failure::Encrypted) => {
                out.notes.push(super::Note::Encrypted {
                    location: super::Location::Attachment(inner),
                });
                continue;
            }
            Err(f) => return Err(f),
        };
        if entry.is_dir() {
            continue;
        }
        match read_entry(bytes, &mut entry, budget, out) {
            Ok(data) => super::file(&data, "", &inner, depth, budget, out),
            Err(Failure::Budget) => return Err(Failure::Budget),
            Err(Failure::Encrypted) => out.notes.push(super::Note::Encrypted {
                location: super::Location::Attachment(inner),
            }),
            Err(Failure::Broken(why)) => out.notes.push(super::Note::Unreadable {
                location: super::Location::Attachment(inner),
                why,
            }),
            Err(Failure::Unsupported(what)) => out.notes.push(super::Note::Limit { what }),
        }
    }
    Ok(())
}
