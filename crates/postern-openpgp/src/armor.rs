//! ASCII armor for OpenPGP messages (RFC 9580 §6) on the mail path: written straight into the
//! message buffer with CRLF line endings, and read back on a fast path that takes only the
//! usual shape.
//!
//! Why our own: sequoia's armor writer and reader are general (any kind, any line ending,
//! streaming with lookahead) and cost more than the encryption itself for mail-sized messages —
//! about 60 % of decrypting 1 MiB (its base64 filter copies the text into a fresh buffer a
//! line at a time) and 15 % of sealing 10 KiB. Here a message is armored into the buffer that
//! becomes the `multipart/encrypted` part, and dearmored with one base64 pass. Anything the
//! fast reader does not take (armor headers it does not know, an odd line, a CRC that does not
//! match) goes to sequoia's lenient reader, so no message readable before is refused now.

use std::io::{self, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

const BEGIN: &[u8] = b"-----BEGIN PGP MESSAGE-----";
const END: &[u8] = b"-----END PGP MESSAGE-----";
/// Bytes of binary data per armor line: 64 base64 characters, as GnuPG and sequoia write.
const LINE_BYTES: usize = 48;

/// The CRC-24 of RFC 9580 §6.1.1, computed eight bytes at a time ("slicing-by-8"): the armor
/// checksum is optional in RFC 9580 but older implementations check it, so it is written.
pub(crate) struct Crc24(u32);

/// Eight lookup tables for the CRC kept in the top 24 bits of a `u32`, made at compile time.
const TABLES: [[u32; 256]; 8] = {
    const POLY: u32 = 0x0086_4CFB << 8;
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ POLY
            } else {
                c << 1
            };
            bit += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev << 8) ^ t[0][(prev >> 24) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

impl Crc24 {
    pub(crate) fn new() -> Self {
        Crc24(0x00B7_04CE << 8)
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        let t = &TABLES;
        let mut crc = self.0;
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let hi = crc ^ u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            crc = t[7][(hi >> 24) as usize]
                ^ t[6][(hi >> 16) as usize & 0xff]
                ^ t[5][(hi >> 8) as usize & 0xff]
                ^ t[4][hi as usize & 0xff]
                ^ t[3][c[4] as usize]
                ^ t[2][c[5] as usize]
                ^ t[1][c[6] as usize]
                ^ t[0][c[7] as usize];
        }
        for &b in chunks.remainder() {
            crc = (crc << 8) ^ t[0][((crc >> 24) as u8 ^ b) as usize];
        }
        self.0 = crc;
    }

    pub(crate) fn value(&self) -> u32 {
        self.0 >> 8
    }
}

/// Armors what is written to it into the end of a buffer, CRLF line endings, 64 characters a
/// line, the CRC-24 line and the end line written by [`ArmorWriter::finish`]. With a sink, the
/// buffer is handed on whenever it holds [`SPILL`] bytes, so the armored whole never exists.
pub(crate) struct ArmorWriter<'a, 's> {
    out: &'a mut Vec<u8>,
    sink: Option<&'s mut (dyn Write + Send + Sync)>,
    /// The start of the line not yet complete (fewer than [`LINE_BYTES`] bytes).
    pending: [u8; LINE_BYTES],
    filled: usize,
    crc: Crc24,
}

/// How much armor a sink is handed at a time.
pub(crate) const SPILL: usize = 256 * 1024;

impl<'a, 's> ArmorWriter<'a, 's> {
    /// Starts an armored `PGP MESSAGE` at the end of `out`.
    #[cfg(test)]
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Self::streaming(out, None)
    }

    /// Starts an armored `PGP MESSAGE` at the end of `out`, which (what it already holds
    /// first) goes on to `sink` as it fills.
    pub(crate) fn streaming(
        out: &'a mut Vec<u8>,
        sink: Option<&'s mut (dyn Write + Send + Sync)>,
    ) -> Self {
        out.extend_from_slice(BEGIN);
        out.extend_from_slice(b"\r\n\r\n");
        ArmorWriter {
            out,
            sink,
            pending: [0; LINE_BYTES],
            filled: 0,
            crc: Crc24::new(),
        }
    }

    /// Hands the buffer on once it holds `at` bytes or more (with a sink).
    fn spill(&mut self, at: usize) -> io::Result<()> {
        if let Some(sink) = self.sink.as_mut() {
            if self.out.len() >= at {
                sink.write_all(self.out)?;
                self.out.clear();
            }
        }
        Ok(())
    }

    fn line(out: &mut Vec<u8>, bytes: &[u8]) {
        let at = out.len();
        let chars = bytes.len().div_ceil(3) * 4;
        out.resize(at + chars, 0);
        // Sized above for exactly this encoding: it cannot be too short.
        let _ = STANDARD.encode_slice(bytes, &mut out[at..]);
        out.extend_from_slice(b"\r\n");
    }

    /// Writes the last line, the checksum and the end line (left in the buffer for the caller
    /// to hand on with whatever follows).
    pub(crate) fn finish(self) {
        if self.filled > 0 {
            Self::line(self.out, &self.pending[..self.filled]);
        }
        let crc = self.crc.value().to_be_bytes();
        self.out.push(b'=');
        let at = self.out.len();
        self.out.resize(at + 4, 0);
        let _ = STANDARD.encode_slice(&crc[1..], &mut self.out[at..]);
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(END);
        self.out.extend_from_slice(b"\r\n");
    }
}

impl Write for ArmorWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.crc.update(buf);
        let mut rest = buf;
        if self.filled > 0 {
            let n = (LINE_BYTES - self.filled).min(rest.len());
            self.pending[self.filled..self.filled + n].copy_from_slice(&rest[..n]);
            self.filled += n;
            rest = &rest[n..];
            if self.filled < LINE_BYTES {
                return Ok(buf.len());
            }
            Self::line(self.out, &self.pending);
            self.filled = 0;
        }
        let mut lines = rest.chunks_exact(LINE_BYTES);
        if self.sink.is_none() {
            self.out
                .reserve(rest.len() / LINE_BYTES * (LINE_BYTES / 3 * 4 + 2));
        }
        for l in &mut lines {
            Self::line(self.out, l);
            // sequoia hands over megabytes at once: they go on as they are encoded.
            self.spill(SPILL)?;
        }
        let tail = lines.remainder();
        self.pending[..tail.len()].copy_from_slice(tail);
        self.filled = tail.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The binary message inside an armored `PGP MESSAGE` of the usual shape — begin line, no armor
/// headers or only `Version`/`Comment`/`Charset`, base64 lines, an optional CRC-24 line that
/// matches, the end line — or `None` for anything else (left to sequoia's reader).
pub(crate) fn dearmor(text: &[u8]) -> Option<Vec<u8>> {
    let mut b64 = Vec::with_capacity(text.len());
    let crc_line = walk(text, |l| {
        b64.extend_from_slice(l);
        Some(())
    })?;
    finish(&b64, crc_line)
}

/// Walks an armored `PGP MESSAGE` of the usual shape (see [`dearmor`]), handing each base64
/// line (trimmed) to `line`. Returns the CRC line if there is one; `None` when the shape is not
/// the usual one or `line` refuses a line.
fn walk<'t>(
    text: &'t [u8],
    mut line: impl FnMut(&'t [u8]) -> Option<()>,
) -> Option<Option<&'t [u8]>> {
    let start = memchr::memmem::find(text, BEGIN)?;
    // Only whitespace before the armor: anything else is for the lenient reader to judge.
    if text[..start].iter().any(|b| !b.is_ascii_whitespace()) {
        return None;
    }
    let mut lines = text[start + BEGIN.len()..].split(|&b| b == b'\n');
    if !trim(lines.next()?).is_empty() {
        return None;
    }
    // Armor headers until the blank line.
    loop {
        let l = trim(lines.next()?);
        if l.is_empty() {
            break;
        }
        let known = [&b"Version: "[..], b"Comment: ", b"Charset: ", b"Hash: "];
        if !known.iter().any(|k| l.starts_with(k)) {
            return None;
        }
    }
    for l in lines.by_ref() {
        let l = trim(l);
        if l.starts_with(b"=") && l.len() == 5 {
            return (trim(lines.next()?) == END).then_some(Some(l));
        }
        if l.starts_with(b"-----") {
            return (l == END).then_some(None);
        }
        line(l)?;
    }
    None
}

/// Base64 is decoded in blocks of this many characters (a multiple of 4).
const BLOCK: usize = 64 * 1024;

/// Where the base64 of an armored message lies, once [`check_in_place`] has found it sound.
pub(crate) struct InPlace {
    /// From the first base64 line to the end of the last, in the buffer.
    lines: std::ops::Range<usize>,
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Checks, reading only, that the armored message at `at` in `buf` is one [`dearmor`] decodes,
/// written the plain way (base64 characters only, padding only at the very end), with a
/// checksum that matches: then [`decode_in_place`] turns it into exactly what `dearmor`
/// gives, inside `buf`. `None`: leave it to `dearmor` and sequoia.
pub(crate) fn check_in_place(buf: &[u8], at: std::ops::Range<usize>) -> Option<InPlace> {
    let text = buf.get(at.clone())?;
    let base = text.as_ptr() as usize;
    let mut first = None;
    let mut last = 0;
    let mut padded = false;
    let mut pending: Vec<u8> = Vec::with_capacity(BLOCK + 128);
    let mut scratch = vec![0u8; BLOCK / 4 * 3 + 3];
    let mut crc = Crc24::new();
    let crc_line = walk(text, |l| {
        let offset = l.as_ptr() as usize - base;
        first.get_or_insert(offset);
        last = offset + l.len();
        if l.is_empty() {
            return Some(());
        }
        let data = l.strip_suffix(b"==").or_else(|| l.strip_suffix(b"="));
        if padded || !data.unwrap_or(l).iter().copied().all(is_base64) {
            return None;
        }
        padded = data.is_some();
        pending.extend_from_slice(l);
        if pending.len() >= BLOCK {
            let n = STANDARD
                .decode_slice(&pending[..BLOCK], &mut scratch)
                .ok()?;
            crc.update(&scratch[..n]);
            pending.drain(..BLOCK);
        }
        Some(())
    })?;
    let n = STANDARD.decode_slice(&pending, &mut scratch).ok()?;
    crc.update(&scratch[..n]);
    if let Some(line) = crc_line {
        let mut want = [0u8; 3];
        if STANDARD.decode_slice(&line[1..], &mut want).ok()? != 3
            || crc.value().to_be_bytes()[1..] != want
        {
            return None;
        }
    }
    let first = first?;
    Some(InPlace {
        lines: at.start + first..at.start + last,
    })
}

/// Decodes what [`check_in_place`] found into the front of `buf`, which then holds the binary
/// message only. The text between the lines is blanks and line breaks (checked), so keeping the
/// base64 characters is the text `dearmor` decodes, cut into the same blocks.
pub(crate) fn decode_in_place(buf: &mut Vec<u8>, found: InPlace) -> Option<usize> {
    let mut text = 0;
    for at in found.lines {
        let b = buf[at];
        if is_base64(b) || b == b'=' {
            buf[text] = b;
            text += 1;
        }
    }
    let mut scratch = vec![0u8; BLOCK / 4 * 3 + 3];
    let (mut read, mut written) = (0, 0);
    while read < text {
        let take = (text - read).min(BLOCK);
        let n = STANDARD
            .decode_slice(&buf[read..read + take], &mut scratch)
            .ok()?;
        buf[written..written + n].copy_from_slice(&scratch[..n]);
        written += n;
        read += take;
    }
    buf.truncate(written);
    Some(written)
}

fn finish(b64: &[u8], crc_line: Option<&[u8]>) -> Option<Vec<u8>> {
    let data = STANDARD.decode(b64).ok()?;
    if let Some(line) = crc_line {
        let mut want = [0u8; 3];
        if STANDARD.decode_slice(&line[1..], &mut want).ok()? != 3 {
            return None;
        }
        let mut crc = Crc24::new();
        crc.update(&data);
        if crc.value().to_be_bytes()[1..] != want {
            return None;
        }
    }
    Some(data)
}

/// A line without its CR and trailing blanks.
fn trim(l: &[u8]) -> &[u8] {
    let end = l
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    &l[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use sequoia_openpgp as openpgp;
    use std::io::Read;

    fn ours(data: &[u8], writes: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = ArmorWriter::new(&mut out);
        for piece in data.chunks(writes.max(1)) {
            w.write_all(piece).unwrap();
        }
        w.finish();
        out
    }

    fn sequoias(data: &[u8]) -> Vec<u8> {
        let mut w = openpgp::armor::Writer::new(Vec::new(), openpgp::armor::Kind::Message).unwrap();
        w.write_all(data).unwrap();
        let lf = w.finalize().unwrap();
        postern_core::mime::to_crlf(&lf)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 131 + i / 7) as u8).collect()
    }

    #[test]
    fn the_checksum_is_rfc_9580s() {
        // RFC 9580 §6.1.1's initial value and polynomial, against sequoia's byte-wise table
        // through its armor: equal for every length around the 8-byte stride.
        // (From one byte: sequoia writes nothing at all for no data.)
        for n in 1..40 {
            let d = data(n);
            assert_eq!(ours(&d, 7), sequoias(&d), "length {n}");
        }
    }

    #[test]
    fn armor_is_byte_for_byte_sequoias_with_crlf() {
        for n in [1, 47, 48, 49, 95, 96, 97, 1000, 10_240, 70_001] {
            let d = data(n);
            for writes in [1, 5, 48, 4096, n] {
                assert_eq!(
                    ours(&d, writes),
                    sequoias(&d),
                    "length {n}, writes of {writes}"
                );
            }
        }
    }

    #[test]
    fn sequoia_reads_our_armor_and_we_read_sequoias() {
        for n in [1, 2, 3, 100, 4097] {
            let d = data(n);
            let mut back = Vec::new();
            openpgp::armor::Reader::from_bytes(&ours(&d, 11), None)
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, d);
            let lf = {
                let mut w =
                    openpgp::armor::Writer::new(Vec::new(), openpgp::armor::Kind::Message).unwrap();
                w.write_all(&d).unwrap();
                w.finalize().unwrap()
            };
            assert_eq!(dearmor(&lf).as_deref(), Some(&d[..]), "LF, length {n}");
            assert_eq!(dearmor(&sequoias(&d)).as_deref(), Some(&d[..]), "CRLF");
        }
    }

    /// Whatever the fast reader takes, sequoia's reader reads the same way: one byte of a good
    /// armor changed at every position, to every character that matters to the syntax.
    #[test]
    fn the_fast_reader_never_disagrees_with_sequoia() {
        let good = ours(&data(100), 100);
        let mut taken = 0;
        for i in 0..good.len() {
            for b in [b'\r', b'\n', b'=', b'-', b' ', b'A', b'*', b'+', 0, 0xff] {
                let mut m = good.clone();
                m[i] = b;
                let Some(fast) = dearmor(&m) else { continue };
                taken += 1;
                let mut theirs = Vec::new();
                openpgp::armor::Reader::from_bytes(&m, None)
                    .read_to_end(&mut theirs)
                    .unwrap_or_else(|e| panic!("we took what sequoia refuses ({e}) at {i}"));
                assert_eq!(fast, theirs, "byte {i} set to {b}");
            }
        }
        assert!(taken > 50, "only {taken} variants were taken");
    }

    /// What dearmoring in place takes it reads exactly as `dearmor` reads it: one byte changed
    /// at every position of a good armor (more than one base64 block long, with the usual
    /// extras around it), to every character that matters; and it takes the good one.
    #[test]
    fn dearmoring_in_place_agrees_with_dearmor() {
        let in_place = |text: &[u8]| {
            let mut buf = b"Content-Type: x\r\n\r\n".to_vec();
            let at = buf.len();
            buf.extend_from_slice(text);
            buf.extend_from_slice(b"\r\n--boundary--\r\n");
            let found = check_in_place(&buf, at..at + text.len())?;
            let n = decode_in_place(&mut buf, found).expect("checked text decodes");
            assert_eq!(buf.len(), n);
            Some(buf)
        };
        let big = ours(&data(100_000), 4096);
        assert!(big.len() > BLOCK);
        assert_eq!(in_place(&big), Some(data(100_000)));
        let good = String::from_utf8(ours(&data(300), 300)).unwrap();
        let no_crc: String = good
            .lines()
            .filter(|l| !l.starts_with('='))
            .map(|l| format!("{l}\n"))
            .collect();
        let with_version = good.replacen("\r\n\r\n", "\r\nVersion: 1\r\n\r\n", 1);
        let mut taken = 0;
        for text in [good, no_crc, with_version] {
            let text = text.into_bytes();
            assert_eq!(in_place(&text), Some(data(300)));
            for i in 0..text.len() {
                for b in [
                    b'\r', b'\n', b'=', b'-', b' ', b'\t', b'A', b'*', b'+', 0, 0xff,
                ] {
                    let mut m = text.clone();
                    m[i] = b;
                    if let Some(ours) = in_place(&m) {
                        taken += 1;
                        assert_eq!(Some(ours), dearmor(&m), "byte {i} set to {b}");
                    }
                }
            }
        }
        assert!(taken > 300, "only {taken} variants were taken");
        // Padding inside, a line with a blank inside, a checksum that does not match.
        let good = String::from_utf8(ours(&data(300), 300)).unwrap();
        let first = good.find("\r\n\r\n").unwrap() + 4;
        for odd in [
            good.replacen(good.get(first..first + 4).unwrap(), "QQ==", 1),
            good.replacen(good.get(first..first + 4).unwrap(), "QQ Q", 1),
            {
                let crc_at = good.find("\r\n=").unwrap() + 3;
                let mut b = good.clone().into_bytes();
                b[crc_at] = if b[crc_at] == b'A' { b'B' } else { b'A' };
                String::from_utf8(b).unwrap()
            },
        ] {
            assert_eq!(in_place(odd.as_bytes()), None, "{odd}");
        }
    }

    #[test]
    fn the_fast_reader_leaves_unusual_armor_to_sequoia() {
        let good = String::from_utf8(ours(&data(200), 200)).unwrap();
        assert!(dearmor(good.as_bytes()).is_some());
        let no_crc: String = good
            .lines()
            .filter(|l| !l.starts_with('='))
            .map(|l| format!("{l}\r\n"))
            .collect();
        assert_eq!(
            dearmor(no_crc.as_bytes()),
            Some(data(200)),
            "CRC is optional"
        );
        let with_version = good.replacen("\r\n\r\n", "\r\nVersion: GnuPG v2\r\n\r\n", 1);
        assert_eq!(dearmor(with_version.as_bytes()), Some(data(200)));
        let crc_at = good.find("\r\n=").unwrap() + 3;
        let mut bad_crc = good.clone().into_bytes();
        bad_crc[crc_at] = if bad_crc[crc_at] == b'A' { b'B' } else { b'A' };
        for odd in [
            bad_crc,
            good.replacen("\r\n\r\n", "\r\nX-Unknown: 1\r\n\r\n", 1)
                .into_bytes(),
            good.replacen("\r\n\r\n", "\r\n", 1).into_bytes(),
            good.replace("-----END PGP MESSAGE-----", "").into_bytes(),
            good.replace("-----END PGP MESSAGE-----", "-----END PGP SIGNATURE-----")
                .into_bytes(),
            format!("text first\r\n{good}").into_bytes(),
            {
                let mut b = good.clone().into_bytes();
                b[good.find("\r\n\r\n").unwrap() + 6] = b'*';
                b
            },
            BEGIN.to_vec(),
            Vec::new(),
        ] {
            assert_eq!(dearmor(&odd), None, "{}", String::from_utf8_lossy(&odd));
        }
    }
}
