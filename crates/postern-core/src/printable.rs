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
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
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
    }
}
