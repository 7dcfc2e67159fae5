//! Text made canonical before detection, so that how a number was typed or pasted does not
//! decide whether it is seen: every decimal digit of any script becomes its ASCII digit,
//! invisible characters (zero-width space, joiners, word joiner, BOM, soft hyphen) go, every
//! kind of space becomes a space and every kind of dash a hyphen-minus. A spreadsheet paste of
//! `4111 1111 1111 1111` with no-break spaces, an SSN typed with en dashes, digits in full width
//! or Arabic-Indic all reach the detectors as the plain form.
//!
//! ASCII text (almost all mail) is returned as it is, without a copy.

use std::borrow::Cow;

/// The first code point (digit zero) of each run of ten decimal digits (Unicode category Nd)
/// outside ASCII, in the scripts and symbol blocks mail is written in.
const DIGIT_ZEROS: &[u32] = &[
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16B50, 0x1D7CE, 0x1D7D8,
    0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// The ASCII digit a decimal digit of another script stands for.
fn ascii_digit(c: char) -> Option<char> {
    let cp = c as u32;
    DIGIT_ZEROS
        .iter()
        .find(|&&zero| cp >= zero && cp < zero + 10)
        .and_then(|zero| char::from_digit(cp - zero, 10))
}

/// What one character becomes: `None` drops it.
fn canonical(c: char) -> Option<char> {
    match c {
        // Invisible: zero-width space, non-joiner, joiner, word joiner, BOM, soft hyphen, and
        // the invisible operators.
        '\u{200B}'
        | '\u{200C}'
        | '\u{200D}'
        | '\u{2060}'
        | '\u{FEFF}'
        | '\u{00AD}'
        | '\u{2061}'..='\u{2064}'
        | '\u{180E}'
        | '\0' => None,
        // Spaces of every width, no-break ones included.
        '\u{00A0}'
        | '\u{1680}'
        | '\u{2000}'..='\u{200A}'
        | '\u{202F}'
        | '\u{205F}'
        | '\u{3000}' => Some(' '),
        // Dashes, hyphens and minus signs.
        '\u{2010}'..='\u{2015}'
        | '\u{2212}'
        | '\u{FE58}'
        | '\u{FE63}'
        | '\u{FF0D}'
        | '\u{2043}' => Some('-'),
        // Full-width punctuation a number may be written with.
        '\u{FF0E}' => Some('.'),
        '\u{FF0F}' => Some('/'),
        c if c.is_ascii() => Some(c),
        c => Some(ascii_digit(c).unwrap_or(c)),
    }
}

/// `text` in the canonical form the detectors read.
pub fn for_detection(text: &str) -> Cow<'_, str> {
    // (NULs — UTF-16 read as UTF-8 — are taken out by extraction, once per part, so the hot
    // path here is one ASCII test.)
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // Combining marks (and variation selectors, tags) after a digit or a separator are
        // dropped: "4\u{301}1\u{301}1…" shows the digits with accents, and a reader copies the
        // number. After a letter they stay (accented words are left alone).
        if is_combining(c)
            && out
                .chars()
                .next_back()
                .is_some_and(|p| p.is_ascii_digit() || matches!(p, ' ' | '-' | '.' | '/'))
        {
            continue;
        }
        if let Some(c) = canonical(c) {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Combining diacritical marks (all blocks), variation selectors and tag characters.
fn is_combining(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{E0100}'..='\u{E01EF}'
        | '\u{E0000}'..='\u{E007F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_digit_space_and_dash_form_becomes_plain() {
        assert!(matches!(
            for_detection("plain 078-05-1120"),
            Cow::Borrowed(_)
        ));
        assert_eq!(for_detection("078\u{2013}05\u{2014}1120"), "078-05-1120");
        assert_eq!(
            for_detection("4\u{301}1\u{308}1\u{20e3}1 1111 1111 1111"),
            "4111 1111 1111 1111"
        );
        assert_eq!(
            for_detection("caf\u{e9} re\u{301}sume\u{301}"),
            "caf\u{e9} re\u{301}sume\u{301}"
        );
        assert_eq!(
            for_detection("4111\u{00A0}1111\u{202F}1111 1111"),
            "4111 1111 1111 1111"
        );
        assert_eq!(
            for_detection("41\u{200B}11\u{00AD}1111\u{2060}11111111"),
            "4111111111111111"
        );
        assert_eq!(for_detection("\u{FF10}\u{FF17}\u{FF18}"), "078");
        assert_eq!(for_detection("\u{0660}\u{0667}\u{0668}"), "078");
        assert_eq!(for_detection("\u{06F0}\u{0967}\u{1D7D8}"), "010");
        assert_eq!(for_detection("Grüße, Dr. Ünal"), "Grüße, Dr. Ünal");
    }
}
