//! Text from strangers made safe to show: on a terminal, in a text log line.

use std::borrow::Cow;
use std::fmt;

/// `s` with every control character (C0, DEL, C1, and line breaks) and every invisible
/// direction or zero-width format character written as a `\u{…}` escape, so a Subject with
/// terminal escape sequences, or an SMTP user name with a CR LF in it, can neither drive a
/// terminal nor forge a log line. Borrowed when nothing needed escaping.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Unicode format characters (general category Cf, Unicode 15.1): bidi controls (U+202E makes
/// `photo\u{202e}gpj.scr` show as `photorcs.jpg`), zero-width characters, invisible operators,
/// tag characters. They change how text looks without being seen.
pub fn is_format(c: char) -> bool {
    matches!(c,
        '\u{ad}'
        | '\u{600}'..='\u{605}'
        | '\u{61c}'
        | '\u{6dd}'
        | '\u{70f}'
        | '\u{890}'..='\u{891}'
        | '\u{8e2}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{110bd}'
        | '\u{110cd}'
        | '\u{13430}'..='\u{1343f}'
        | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0001}'
        | '\u{e0020}'..='\u{e007f}')
}

/// A name or phrase taken from mail, made fit to show a person or to write into a header we
/// make (a file name, a display name, a subject): one line, no control or format characters
/// (dropped, not escaped: a reader should see the text, not our escapes), runs of white space
/// as one space, at most `max` characters (an ellipsis marks a cut).
pub fn display_text(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .filter(|c| !is_format(*c))
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if out.chars().count() > max {
        out = out.chars().take(max).collect::<String>() + "…";
    }
    out
}

/// [`printable`] for `Display` (e.g. a `tracing` field: `user = %Printable(&name)`).
#[derive(Debug, Clone, Copy)]
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&printable(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_invisible_direction_marks_are_escaped() {
        assert!(matches!(printable("Grüße, lab"), Cow::Borrowed(_)));
        assert_eq!(printable("a\r\nb"), "a\\u{d}\\u{a}b");
        assert_eq!(printable("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(printable("x\u{202e}y\u{0}"), "x\\u{202e}y\\u{0}");
        assert_eq!(Printable("a\tb").to_string(), "a\\u{9}b");
        assert_eq!(printable("a\u{2066}b\u{e0041}"), "a\\u{2066}b\\u{e0041}");
    }

    #[test]
    fn display_text_drops_format_characters_and_keeps_one_line() {
        assert_eq!(display_text("photo\u{202e}gpj.scr", 100), "photogpj.scr");
        assert_eq!(
            display_text("in\u{200b}voice\u{feff}.pdf", 100),
            "invoice.pdf"
        );
        assert_eq!(
            display_text("IT desk\r\nBcc: x@y\t now", 100),
            "IT desk Bcc: x@y now"
        );
        assert_eq!(display_text("abcdef", 3), "abc…");
        assert_eq!(display_text("Grüße \u{1F600}", 100), "Grüße \u{1F600}");
    }
}
