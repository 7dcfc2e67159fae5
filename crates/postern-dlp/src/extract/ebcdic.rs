//! EBCDIC text (IBM mainframe reports and exports, code page 037 and its relatives): found by
//! its bytes whatever the label says, and read as the text it is. Letters, digits, space and
//! the usual punctuation sit at the same places in CP037, CP500, CP1047 and CP1140, so one
//! table reads all of them well enough to find identifiers.

/// IBM code page 037 to Unicode: every byte maps to U+0000..=U+00FF (the table of Python's
/// `cp037` codec; a bijection).
const CP037: [u8; 256] = [
    0x00, 0x01, 0x02, 0x03, 0x9C, 0x09, 0x86, 0x7F, 0x97, 0x8D, 0x8E, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F,
    0x10, 0x11, 0x12, 0x13, 0x9D, 0x85, 0x08, 0x87, 0x18, 0x19, 0x92, 0x8F, 0x1C, 0x1D, 0x1E, 0x1F,
    0x80, 0x81, 0x82, 0x83, 0x84, 0x0A, 0x17, 0x1B, 0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x05, 0x06, 0x07,
    0x90, 0x91, 0x16, 0x93, 0x94, 0x95, 0x96, 0x04, 0x98, 0x99, 0x9A, 0x9B, 0x14, 0x15, 0x9E, 0x1A,
    0x20, 0xA0, 0xE2, 0xE4, 0xE0, 0xE1, 0xE3, 0xE5, 0xE7, 0xF1, 0xA2, 0x2E, 0x3C, 0x28, 0x2B, 0x7C,
    0x26, 0xE9, 0xEA, 0xEB, 0xE8, 0xED, 0xEE, 0xEF, 0xEC, 0xDF, 0x21, 0x24, 0x2A, 0x29, 0x3B, 0xAC,
    0x2D, 0x2F, 0xC2, 0xC4, 0xC0, 0xC1, 0xC3, 0xC5, 0xC7, 0xD1, 0xA6, 0x2C, 0x25, 0x5F, 0x3E, 0x3F,
    0xF8, 0xC9, 0xCA, 0xCB, 0xC8, 0xCD, 0xCE, 0xCF, 0xCC, 0x60, 0x3A, 0x23, 0x40, 0x27, 0x3D, 0x22,
    0xD8, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0xAB, 0xBB, 0xF0, 0xFD, 0xFE, 0xB1,
    0xB0, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F, 0x70, 0x71, 0x72, 0xAA, 0xBA, 0xE6, 0xB8, 0xC6, 0xA4,
    0xB5, 0x7E, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0xA1, 0xBF, 0xD0, 0xDD, 0xDE, 0xAE,
    0x5E, 0xA3, 0xA5, 0xB7, 0xA9, 0xA7, 0xB6, 0xBC, 0xBD, 0xBE, 0x5B, 0x5D, 0xAF, 0xA8, 0xB4, 0xD7,
    0x7B, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0xAD, 0xF4, 0xF6, 0xF2, 0xF3, 0xF5,
    0x7D, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E, 0x4F, 0x50, 0x51, 0x52, 0xB9, 0xFB, 0xFC, 0xF9, 0xFA, 0xFF,
    0x5C, 0xF7, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0xB2, 0xD4, 0xD6, 0xD2, 0xD3, 0xD5,
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0xB3, 0xDB, 0xDC, 0xD9, 0xDA, 0x9F,
];

/// Whether `bytes` look like EBCDIC text: not UTF-8, an EBCDIC space (0x40) for at least one
/// byte in twelve, and most bytes EBCDIC letters, digits or spaces. ASCII or Latin-1 text has
/// few bytes above 0x80 and few `@`; binary data has no such shape.
pub(crate) fn looks_ebcdic(bytes: &[u8]) -> bool {
    let sample = bytes.get(..bytes.len().min(4096)).unwrap_or_default();
    if sample.len() < 16 || std::str::from_utf8(sample).is_ok() {
        return false;
    }
    let spaces = sample.iter().filter(|b| **b == 0x40).count();
    let text = sample
        .iter()
        .filter(|b| {
            matches!(
                b,
                0x40 | 0x4B | 0x60 | 0x61 | 0x6B | 0x7A | 0x15 | 0x25 | 0x0D | 0x05
                    | 0x81..=0x89
                    | 0x91..=0x99
                    | 0xA2..=0xA9
                    | 0xC1..=0xC9
                    | 0xD1..=0xD9
                    | 0xE2..=0xE9
                    | 0xF0..=0xF9
            )
        })
        .count();
    spaces * 12 >= sample.len() && text * 10 >= sample.len() * 8
}

/// EBCDIC bytes as text (the EBCDIC newline, NEL, as a line break).
pub(crate) fn decode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| match CP037[usize::from(*b)] {
            0x85 => '\n',
            c => char::from(c),
        })
        .collect()
}

/// Whether a charset label names an EBCDIC code page.
pub(crate) fn is_ebcdic_label(charset: &str) -> bool {
    let c = charset.to_ascii_lowercase();
    // `ibm037`, `ibm-1047`, `cp500`, `cp01140`: the code page number after the prefix.
    let number = c
        .strip_prefix("ibm")
        .or_else(|| c.strip_prefix("cp"))
        .map(|rest| rest.trim_start_matches(['-', '0']));
    c.contains("ebcdic")
        || number.is_some_and(|n| {
            [
                "37", "500", "1047", "1140", "1148", "273", "277", "278", "280", "284", "285",
                "297",
            ]
            .contains(&n)
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `'SSN 078-05-1120, card 4111 1111 1111 1111'.encode('cp037')`, made with Python 3's
    /// codec (an implementation independent of this table's use here).
    const SAMPLE: &str =
        "e2e2d540f0f7f860f0f560f1f1f2f06b408381998440f4f1f1f140f1f1f1f140f1f1f1f140f1f1f1f1";

    /// [`SAMPLE`] as bytes.
    pub(crate) fn sample() -> Vec<u8> {
        SAMPLE
            .as_bytes()
            .chunks(2)
            .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn reads_what_python_wrote() {
        let b = sample();
        assert!(looks_ebcdic(&b));
        assert_eq!(decode(&b), "SSN 078-05-1120, card 4111 1111 1111 1111");
    }

    #[test]
    fn other_text_and_binary_are_not_taken_for_ebcdic() {
        let latin1 = "Caf\u{e9} au lait, r\u{e9}sum\u{e9} \u{e0} la carte: 4111 1111 1111 1111"
            .chars()
            .map(|c| c as u8)
            .collect::<Vec<u8>>();
        let random: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for b in [
            b"plain ASCII text with an SSN 078-05-1120 in it".to_vec(),
            "UTF-8 r\u{e9}sum\u{e9} 078-05-1120".as_bytes().to_vec(),
            latin1,
            random,
            vec![0x40; 8],
        ] {
            assert!(!looks_ebcdic(&b), "{b:?}");
        }
    }

    #[test]
    fn labels() {
        for l in [
            "IBM037",
            "cp037",
            "ibm-1047",
            "CP500",
            "ebcdic-cp-us",
            "IBM1140",
        ] {
            assert!(is_ebcdic_label(l), "{l}");
        }
        for l in ["utf-8", "iso-8859-1", "cp1252", "ibm850", "cp437"] {
            assert!(!is_ebcdic_label(l), "{l}");
        }
    }
}
