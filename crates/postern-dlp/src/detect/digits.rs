//! Digit runs, found eight bytes at a time: most mail is letters, and a word with no digit in
//! it is skipped with one 64-bit test instead of eight comparisons.

/// Whether any byte of `w` is an ASCII digit (SWAR: bytes 0x30..=0x39).
#[inline]
fn has_digit(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // x = b - 0x30 per byte (wrapping inside the byte is prevented by the high-bit mask
    // below): a byte is a digit iff b >= 0x30 and b - 0x30 < 10.
    let x = w ^ (0x30 * ONES); // digits become 0x00..=0x09; other bytes >= 0x0a or high bit set
                               // "has a byte less than 10": (x - 10) & !x & HIGH, exact for bytes < 0x80.
    ((x.wrapping_sub(10 * ONES)) & !x & HIGH) != 0
}

/// Start of the next digit at or after `from`.
fn next_digit(b: &[u8], mut from: usize) -> Option<usize> {
    while from + 8 <= b.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[from..from + 8]);
        if has_digit(u64::from_le_bytes(w)) {
            break;
        }
        from += 8;
    }
    b[from..]
        .iter()
        .position(u8::is_ascii_digit)
        .map(|i| from + i)
}

/// Bytes that may stand between the groups of a number as people write and paste them:
/// spaces (one or more), tabs, line breaks (one group per line), dashes, dots and slashes.
pub fn is_separator(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.' | b'/' | b'\t' | b'\r' | b'\n')
}

/// At most this many separator bytes between two groups (`" - "`, `"\r\n"`, a double space).
pub const MAX_SEPARATOR: usize = 3;

/// Maximal runs of digits with short separators between digits: `[0-9]([sep]{0,3}[0-9])*`,
/// as (start, end) byte offsets.
pub fn runs(b: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let s = next_digit(b, at)?;
        let mut e = s + 1;
        loop {
            match b.get(e) {
                Some(c) if c.is_ascii_digit() => e += 1,
                Some(c) if is_separator(*c) => {
                    let n = b
                        .get(e..)
                        .unwrap_or_default()
                        .iter()
                        .take(MAX_SEPARATOR + 1)
                        .take_while(|c| is_separator(**c))
                        .count();
                    if n <= MAX_SEPARATOR && b.get(e + n).is_some_and(u8::is_ascii_digit) {
                        e += n + 1;
                    } else {
                        break;
                    }
                }
                _ => break,
            }
        }
        at = e;
        Some((s, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swar_matches_the_simple_test() {
        for b in 0..=255u8 {
            let w = u64::from_le_bytes([b'a', b, b'z', 0xff, 0x80, b'/', b':', b' ']);
            assert_eq!(has_digit(w), b.is_ascii_digit(), "{b}");
        }
    }

    #[test]
    fn runs_with_separators() {
        let t =
            b"card 4111 1111-1111 1111, call 555 1234 -- x9 and 12  34 end7 and 1 2\r\n3 4    5";
        let got: Vec<&str> = runs(t)
            .map(|(s, e)| std::str::from_utf8(&t[s..e]).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "4111 1111-1111 1111",
                "555 1234",
                "9",
                "12  34",
                "7",
                "1 2\r\n3 4",
                "5"
            ]
        );
    }
}
