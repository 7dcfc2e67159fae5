//! The "relaxed" canonicalizations of RFC 6376 §3.4.2 (header fields) and §3.4.4 (body).

use aws_lc_rs::digest;

/// A header field in relaxed form: the name in lower case, the value unfolded, runs of
/// whitespace made one space, whitespace at its ends removed; `name:value` with CRLF.
pub fn relaxed_header(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + value.len() + 3);
    out.extend(
        name.trim_end_matches([' ', '\t'])
            .bytes()
            .map(|b| b.to_ascii_lowercase()),
    );
    out.push(b':');
    let mut space = false;
    let mut started = false;
    for &b in value {
        match b {
            // Unfolding: the line break goes, the whitespace after it is a run like any other.
            b'\r' | b'\n' => {}
            b' ' | b'\t' => space = true,
            _ => {
                if space && started {
                    out.push(b' ');
                }
                space = false;
                started = true;
                out.push(b);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The SHA-256 of the body in relaxed form, without a copy of it: trailing whitespace of each
/// line removed, inner runs of whitespace made one space, empty lines at the end removed, and
/// (for a body that is not empty) a final CRLF. Lines end at LF (with or without CR).
pub fn relaxed_body_hash(body: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    // Empty lines are held back until a line with content follows: those at the end vanish.
    let mut pending_empty = 0usize;
    let mut line = Vec::new();
    let lines = body.split(|b| *b == b'\n');
    let count = body.split(|b| *b == b'\n').count();
    for (i, raw) in lines.enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // The piece after the last LF is a line only if it has something in it.
        if i + 1 == count && raw.is_empty() {
            break;
        }
        line.clear();
        let mut space = false;
        for &b in raw {
            if b == b' ' || b == b'\t' {
                space = true;
            } else {
                if space {
                    line.push(b' ');
                }
                space = false;
                line.push(b);
            }
        }
        if line.is_empty() {
            pending_empty += 1;
            continue;
        }
        for _ in 0..pending_empty {
            ctx.update(b"\r\n");
        }
        pending_empty = 0;
        ctx.update(&line);
        ctx.update(b"\r\n");
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, b).as_ref());
        out
    }

    /// RFC 6376 §3.4.5's example.
    #[test]
    fn the_rfc_example() {
        assert_eq!(relaxed_header("A", b" X\r\n"), b"a:X\r\n");
        assert_eq!(relaxed_header("B ", b" Y\t\r\n\tZ  \r\n"), b"b:Y Z\r\n");
        assert_eq!(
            relaxed_body_hash(b" C \r\nD \t E\r\n\r\n\r\n"),
            sha(b" C\r\nD E\r\n")
        );
    }

    #[test]
    fn empty_bodies_and_missing_final_line_breaks() {
        assert_eq!(relaxed_body_hash(b""), sha(b""));
        assert_eq!(relaxed_body_hash(b"\r\n\r\n"), sha(b""));
        assert_eq!(relaxed_body_hash(b"x"), sha(b"x\r\n"));
        assert_eq!(relaxed_body_hash(b"a\n\nb  \n"), sha(b"a\r\n\r\nb\r\n"));
    }
}
