//! OpenPGP armour that is not encrypted: a `BEGIN PGP MESSAGE` block holding a literal data
//! packet (possibly compressed) is plain text anyone can read, dressed up to look protected.
//! Its content is taken out for inspection. Encrypted messages (a PKESK/SKESK packet first)
//! are left alone: they are what they say.

/// The literal contents of every unencrypted armoured OpenPGP message in `text`, at most
/// `room` bytes in all (compressed packets expand: the inspection budget bounds them).
pub fn unencrypted_armour(text: &str, room: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut left = room as u64;
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN PGP MESSAGE-----") {
        let block = rest.get(start..).unwrap_or_default();
        let end = block
            .find("-----END PGP MESSAGE-----")
            .unwrap_or(block.len());
        if let Some(data) = dearmour(block.get(..end).unwrap_or_default()) {
            if let Some(literal) = literal(&data, 0, left) {
                left = left.saturating_sub(literal.len() as u64);
                out.push(literal);
            }
        }
        if left == 0 {
            break;
        }
        rest = block.get(end.max(1)..).unwrap_or_default();
    }
    out
}

/// The base64 body of an armour block (headers and the CRC line skipped).
fn dearmour(block: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let mut lines = block.lines().skip(1);
    // Armour headers end at the first empty line (if there are any).
    let mut body = String::new();
    let mut in_headers = true;
    for line in lines.by_ref() {
        let l = line.trim();
        if in_headers {
            if l.is_empty() {
                in_headers = false;
                continue;
            }
            if l.contains(": ") {
                continue;
            }
            in_headers = false;
        }
        if l.starts_with('=') || l.starts_with("-----") {
            break;
        }
        body.push_str(l);
    }
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .ok()
}

/// One packet header: (tag, body start, body length); partial lengths are not followed.
fn header(data: &[u8]) -> Option<(u8, usize, usize)> {
    let first = *data.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    if first & 0x40 != 0 {
        // New format.
        let tag = first & 0x3f;
        let l0 = *data.get(1)? as usize;
        let (len, hdr) = match l0 {
            0..=191 => (l0, 2),
            192..=223 => (((l0 - 192) << 8) + *data.get(2)? as usize + 192, 3),
            255 => {
                let b = data.get(2..6)?;
                (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize, 6)
            }
            // A partial body length: take the rest (good enough to read a literal).
            _ => (data.len().saturating_sub(2), 2),
        };
        Some((tag, hdr, len.min(data.len().saturating_sub(hdr))))
    } else {
        // Old format.
        let tag = (first >> 2) & 0x0f;
        let (len, hdr) = match first & 3 {
            0 => (*data.get(1)? as usize, 2),
            1 => (
                u16::from_be_bytes([*data.get(1)?, *data.get(2)?]) as usize,
                3,
            ),
            2 => {
                let b = data.get(1..5)?;
                (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize, 5)
            }
            _ => (data.len().saturating_sub(1), 1),
        };
        Some((tag, hdr, len.min(data.len().saturating_sub(hdr))))
    }
}

/// The content of the literal data packet in `data`, looking through compressed packets and
/// past one-pass signatures; `None` when the message is encrypted or is something else.
fn literal(data: &[u8], depth: usize, max: u64) -> Option<Vec<u8>> {
    if depth > 4 {
        return None;
    }
    let mut at = 0;
    while at < data.len() {
        let (tag, hdr, len) = header(data.get(at..)?)?;
        let body = data.get(at + hdr..at + hdr + len)?;
        match tag {
            // Encrypted containers (SED, SEIPD, AED): encrypted, as they claim, when their
            // body looks like ciphertext; a container whose body is readable text (a forged
            // "encryption" to slip content past inspection) is read as the text it is.
            9 | 18 | 20 => {
                // SEIPD v1 and SED: the content starts after the version octet (or at once).
                let content = body.get(usize::from(tag == 18)..)?;
                // Packets in the clear (a literal, or a compressed one, whose deflate output
                // passes any randomness test) are read as such.
                if let Some(text) = literal(content, depth + 1, max) {
                    return Some(text);
                }
                let head = content.get(..content.len().min(4096))?;
                if postern_core::looks_random(head) {
                    return None;
                }
                let cap = usize::try_from(max)
                    .unwrap_or(usize::MAX)
                    .min(content.len());
                return Some(content.get(..cap)?.to_vec());
            }
            // PKESK, SKESK: key packets before a container; go on to it.
            1 | 3 => at += hdr + len,
            // Literal data: format, file name, date, then the content.
            11 => {
                let name_len = *body.get(1)? as usize;
                return body.get(2 + name_len + 4..).map(<[u8]>::to_vec);
            }
            // Compressed data: 1 = ZIP (raw deflate), 2 = ZLIB, 0 = none.
            8 => {
                let payload = body.get(1..)?;
                let (inner, ok) = match body.first()? {
                    0 => (payload.to_vec(), true),
                    // What came out before a fault is read too: more text, never less.
                    z @ (1 | 2) => {
                        let limit = usize::try_from(max).unwrap_or(usize::MAX);
                        let got = super::inflate::inflate(payload, *z == 2, limit);
                        let ok = got.complete || !got.data.is_empty();
                        (got.data, ok)
                    }
                    _ => (Vec::new(), false),
                };
                return if ok {
                    literal(&inner, depth + 1, max)
                } else {
                    None
                };
            }
            // One-pass signature, signature, marker: go on to the next packet.
            _ => at += hdr + len,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_packet_in_armour_is_read_and_encrypted_ones_are_not() {
        use base64::Engine;
        let content = b"Patient SSN 078-05-1120";
        let mut packet = vec![0xCB, (6 + content.len()) as u8, b'b', 0, 0, 0, 0, 0];
        packet.extend_from_slice(content);
        let armour = |data: &[u8]| {
            format!(
                "hello\n-----BEGIN PGP MESSAGE-----\nComment: x\n\n{}\n=abcd\n-----END PGP MESSAGE-----\n",
                base64::engine::general_purpose::STANDARD.encode(data)
            )
        };
        assert_eq!(
            unencrypted_armour(&armour(&packet), 1 << 20),
            vec![content.to_vec()]
        );
        // A key packet, then a SEIPD v1 container whose body looks like ciphertext: not read.
        let random: Vec<u8> = (0u32..200)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut encrypted = vec![0xC1, 0x02, 0x03, 0x00, 0xD2, random.len() as u8 + 1, 0x01];
        encrypted.extend_from_slice(&random);
        assert!(unencrypted_armour(&armour(&encrypted), 1 << 20).is_empty());
        // The same shape with readable text as the container's body: read as text.
        let text = b"Patient SSN 078-05-1120, DOB 1961-04-02, please see the attached results.";
        let mut forged = vec![0xC1, 0x02, 0x03, 0x00, 0xD2, text.len() as u8 + 1, 0x01];
        forged.extend_from_slice(text);
        assert_eq!(
            unencrypted_armour(&armour(&forged), 1 << 20),
            vec![text.to_vec()]
        );
        for junk in [
            "-----BEGIN PGP MESSAGE-----",
            "-----BEGIN PGP MESSAGE-----\n\n!!!\n",
        ] {
            assert!(unencrypted_armour(junk, 1 << 20).is_empty());
        }
        // A compressed packet expands only as far as the budget allows.
        let zeros = vec![0u8; 4 << 20];
        let mut inner = vec![0xCB, 0xFF];
        inner.extend_from_slice(&(zeros.len() as u32 + 6).to_be_bytes());
        inner.extend_from_slice(&[b'b', 0, 0, 0, 0, 0]);
        inner.extend_from_slice(&zeros);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &inner).unwrap();
        let compressed = z.finish().unwrap();
        let mut packet = vec![0xC8, 0xFF];
        packet.extend_from_slice(&(compressed.len() as u32 + 1).to_be_bytes());
        packet.push(2);
        packet.extend_from_slice(&compressed);
        let got = unencrypted_armour(&armour(&packet), 1000);
        assert!(got.iter().map(Vec::len).sum::<usize>() <= 1000, "bounded");
    }
}
