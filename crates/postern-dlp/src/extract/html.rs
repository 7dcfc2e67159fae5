//! HTML (and the XML of office files) reduced to the text a reader sees: tags become spaces or
//! line breaks, scripts, styles and comments go, character references are decoded.

/// Elements whose end starts a new line (so table cells and paragraphs do not run together).
const BLOCK: &[&str] = &[
    "p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "w:p",
    "a:p", "row", "si", "w:br", "w:tab",
];

/// Inline elements: they never split a word (`4<b></b>111` is `4111` to a reader). Sorted,
/// for a binary search per tag.
const INLINE: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "del", "em", "font", "i", "ins", "kbd",
    "label", "mark", "o:p", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup",
    "tt", "u", "var", "wbr",
];

/// Converts HTML (or office XML) to plain text: all of it, hidden elements included (what they
/// hold still leaves with the message).
pub fn html_to_text(html: &str) -> String {
    convert(html, false).0
}

/// The text a reader sees when it differs from [`html_to_text`]: hidden elements
/// (`display:none`, `visibility:hidden`, `hidden`) left out, so a hidden digit slipped into a
/// number cannot break it. `None` when nothing is hidden.
pub fn html_visible_text(html: &str) -> Option<String> {
    // Most HTML hides nothing: look for the words first, convert a second time only then.
    static WORDS: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 4]> =
        std::sync::LazyLock::new(|| {
            ["idden", "IDDEN", "isplay", "ISPLAY"].map(memchr::memmem::Finder::new)
        });
    let b = html.as_bytes();
    let may_hide = WORDS.iter().any(|f| f.find(b).is_some());
    if !may_hide {
        return None;
    }
    let (text, hidden) = convert(html, true);
    hidden.then_some(text)
}

/// Attributes whose values a person sees (a tooltip, an image's alternative text, a form's
/// prefilled value, a label) or a program reads back (`content` of a meta element).
const SHOWN_ATTRIBUTES: &[&str] = &[
    "alt",
    "title",
    "value",
    "placeholder",
    "aria-label",
    "label",
    "content",
    "summary",
];

/// The text held in attributes rather than between tags, one value a line: the values of
/// [`SHOWN_ATTRIBUTES`] (a hidden form input's `value` too: it leaves with the message) and
/// every `data:` URI (an image or a link whose bytes are inline). `None` when there is none.
/// Character references in the values are decoded as in text.
pub fn html_attribute_text(html: &str) -> Option<String> {
    let b = html.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while let Some(lt) = memchr::memchr(b'<', &b[i..]) {
        let start = i + lt + 1;
        if b.get(start)
            .is_some_and(|c| matches!(c, b'/' | b'!' | b'?'))
        {
            i = start;
            continue;
        }
        // The tag ends at the first `>` outside quotes.
        let mut j = start;
        let mut quote = 0u8;
        while j < b.len() {
            match (quote, b[j]) {
                (0, b'"' | b'\'') => quote = b[j],
                (q, c) if q != 0 && c == q => quote = 0,
                (0, b'>') => break,
                _ => {}
            }
            j += 1;
        }
        let tag = html.get(start..j).unwrap_or_default();
        for (name, value) in attributes(tag) {
            let shown = SHOWN_ATTRIBUTES
                .iter()
                .any(|a| name.eq_ignore_ascii_case(a));
            let data_uri = value
                .trim_start()
                .get(..5)
                .is_some_and(|p| p.eq_ignore_ascii_case("data:"));
            if (shown || data_uri) && !value.trim().is_empty() {
                out.push_str(&convert(value, false).0);
                out.push('\n');
            }
        }
        i = j.max(start);
    }
    (!out.trim().is_empty()).then_some(out)
}

/// The `name=value` pairs of an opening tag (after its element name): quoted or bare values.
fn attributes(tag: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let b = tag.as_bytes();
    // Skip the element name.
    let mut i = b
        .iter()
        .position(|c| c.is_ascii_whitespace() || *c == b'/')
        .unwrap_or(b.len());
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'/') {
            i += 1;
        }
        let name = tag.get(name_start..i).unwrap_or_default();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            if name.is_empty() {
                i += 1;
            }
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let (value, next) = match b.get(i) {
            Some(q @ (b'"' | b'\'')) => {
                let end = memchr::memchr(*q, &b[i + 1..]).map_or(b.len(), |k| i + 1 + k);
                (tag.get(i + 1..end).unwrap_or_default(), end + 1)
            }
            Some(_) => {
                let end = b[i..]
                    .iter()
                    .position(|c| c.is_ascii_whitespace())
                    .map_or(b.len(), |k| i + k);
                (tag.get(i..end).unwrap_or_default(), end)
            }
            None => ("", i),
        };
        if !name.is_empty() {
            out.push((name, value));
        }
        i = next;
    }
    out
}

/// Is this opening tag's element hidden from the reader?
fn is_hidden(tag: &str) -> bool {
    let t: String = tag
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    t.contains("display:none")
        || t.contains("visibility:hidden")
        || tag
            .to_ascii_lowercase()
            .split(|c: char| c.is_whitespace() || c == '/')
            .skip(1)
            .any(|a| a == "hidden" || a.starts_with("hidden="))
}

fn convert(html: &str, drop_hidden: bool) -> (String, bool) {
    let mut hidden = false;
    let mut out = String::with_capacity(html.len() / 2);
    let b = html.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => {
                if b[i..].starts_with(b"<!--") {
                    i = find(html, i + 4, "-->").map_or(b.len(), |j| j + 3);
                    continue;
                }
                let (tag, end) = match memchr::memchr(b'>', &b[i..]) {
                    // `<` and `>` are ASCII, so these are character boundaries.
                    Some(j) => (html.get(i + 1..i + j).unwrap_or_default(), i + j + 1),
                    None => (html.get(i + 1..).unwrap_or_default(), b.len()),
                };
                let raw_name = {
                    let t = tag.trim_start_matches('/');
                    let end = t
                        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
                        .unwrap_or(t.len());
                    t.get(..end).unwrap_or_default()
                };
                // Lower case on the stack: a tag is the commonest thing in HTML, and every
                // name we compare against is short ASCII.
                let mut stack = [0u8; 16];
                let long;
                let name: &str = match stack.get_mut(..raw_name.len()) {
                    Some(buf) if raw_name.is_ascii() => {
                        buf.copy_from_slice(raw_name.as_bytes());
                        buf.make_ascii_lowercase();
                        std::str::from_utf8(buf).unwrap_or_default()
                    }
                    _ => {
                        long = raw_name.to_ascii_lowercase();
                        &long
                    }
                };
                if drop_hidden
                    && !tag.starts_with('/')
                    && !tag.ends_with('/')
                    && !name.is_empty()
                    && is_hidden(tag)
                {
                    hidden = true;
                    i = matching_close(html, end, name).unwrap_or(b.len());
                    continue;
                }
                if !tag.starts_with('/') && (name == "script" || name == "style") {
                    let close = format!("</{name}");
                    i = find_ci(html, end, &close).map_or(b.len(), |j| {
                        memchr::memchr(b'>', &b[j..]).map_or(b.len(), |k| j + k + 1)
                    });
                    out.push(' ');
                    continue;
                }
                if BLOCK.contains(&name) {
                    out.push('\n');
                } else if name == "td" || name == "th" || name == "c" || name == "w:tc" {
                    out.push('\t');
                } else if !out.ends_with(' ') {
                    // Inline tags split words only where the source had a space; office XML
                    // splits runs mid-word, so nothing is added for closing inline tags.
                    if !tag.starts_with('/')
                        && !name.contains(':')
                        && name != "t"
                        && name != "v"
                        && INLINE.binary_search(&name).is_err()
                    {
                        out.push(' ');
                    }
                }
                i = end;
            }
            b'&' => {
                let semi = b[i..]
                    .iter()
                    .take(12)
                    .position(|c| *c == b';')
                    .map(|j| i + j);
                match semi.and_then(|j| html.get(i + 1..j).and_then(entity).map(|c| (c, j))) {
                    Some((c, j)) => {
                        out.push(c);
                        i = j + 1;
                    }
                    None => match unterminated_entity(html.get(i + 1..).unwrap_or_default()) {
                        // Browsers read `&nbsp` and `&#160` without the semicolon too.
                        Some((c, len)) => {
                            out.push(c);
                            i += 1 + len;
                        }
                        None => {
                            out.push('&');
                            i += 1;
                        }
                    },
                }
            }
            _ => {
                let next = b[i..]
                    .iter()
                    .position(|c| *c == b'<' || *c == b'&')
                    .map_or(b.len(), |j| i + j);
                out.push_str(html.get(i..next).unwrap_or_default());
                i = next;
            }
        }
    }
    (out, hidden)
}

/// Where the element opened just before `from` closes (`</name`, nested same-name elements
/// counted), as the offset after that closing tag.
fn matching_close(html: &str, from: usize, name: &str) -> Option<usize> {
    let open = format!("<{name}");
    let close = format!("</{name}");
    let mut depth = 1usize;
    let mut at = from;
    // Each search moves forward from where the last one ended, so thousands of nested opens
    // cost one pass, not one pass each.
    let mut next_close = find_ci(html, at, &close)?;
    let mut next_open = find_ci(html, at, &open);
    loop {
        match next_open {
            Some(o) if o < next_close => {
                depth += 1;
                at = o + open.len();
                next_open = find_ci(html, at, &open);
            }
            _ => {
                depth -= 1;
                let gt = html.get(next_close..)?.find('>')? + next_close + 1;
                if depth == 0 {
                    return Some(gt);
                }
                at = gt;
                next_close = find_ci(html, at, &close)?;
                if next_open.is_some_and(|o| o < at) {
                    next_open = find_ci(html, at, &open);
                }
            }
        }
    }
}

/// A character reference written without its semicolon (`&nbsp`, `&amp`, `&#160`, `&#xA0`),
/// as browsers accept them: the character and how many bytes after `&` it took.
fn unterminated_entity(rest: &str) -> Option<(char, usize)> {
    if let Some(num) = rest.strip_prefix('#') {
        let (hex, digits) = match num.strip_prefix(['x', 'X']) {
            Some(h) => (true, h),
            None => (false, num),
        };
        let len = digits
            .chars()
            .take_while(|c| {
                if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            })
            .count()
            .min(8);
        let code = u32::from_str_radix(digits.get(..len)?, if hex { 16 } else { 10 }).ok()?;
        return char::from_u32(code).map(|c| (c, 1 + usize::from(hex) + len));
    }
    [
        ("nbsp", ' '),
        ("amp", '&'),
        ("shy", '\u{AD}'),
        ("lt", '<'),
        ("gt", '>'),
        ("quot", '"'),
    ]
    .into_iter()
    .find(|(n, _)| rest.starts_with(n))
    .map(|(n, c)| (c, n.len()))
}

fn find(s: &str, from: usize, pat: &str) -> Option<usize> {
    s.get(from..)?.find(pat).map(|j| from + j)
}

fn find_ci(s: &str, from: usize, pat: &str) -> Option<usize> {
    let hay = s.get(from..)?.as_bytes();
    let p = pat.as_bytes();
    hay.windows(p.len())
        .position(|w| w.eq_ignore_ascii_case(p))
        .map(|j| from + j)
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hyphen" => '-',
        "shy" => '\u{AD}',
        "zwsp" | "ZeroWidthSpace" => '\u{200B}',
        "zwj" => '\u{200D}',
        "zwnj" => '\u{200C}',
        "minus" => '\u{2212}',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_entities_scripts() {
        let t = html_to_text(
            "<html><style>p{x:1}</style><script>var s='123-45-6789'</script><p>SSN&nbsp;078&#45;05&#x2d;1120</p><!-- 4111111111111111 --><table><tr><td>a</td><td>b</td></tr></table>",
        );
        assert!(t.contains("SSN 078-05-1120"), "{t:?}");
        assert!(!t.contains("123-45-6789"), "{t:?}");
        assert!(!t.contains("4111"), "{t:?}");
        assert!(
            t.contains("a\tb") || t.contains("a \tb") || t.contains("\ta\t"),
            "{t:?}"
        );
    }

    #[test]
    fn office_runs_join_without_spaces() {
        let t = html_to_text(
            "<w:p><w:r><w:t>SSN 078-0</w:t></w:r><w:r><w:t>5-1120</w:t></w:r></w:p><w:p><w:r><w:t>next</w:t></w:r></w:p>",
        );
        assert!(t.contains("SSN 078-05-1120"), "{t:?}");
        assert!(t.contains("\nnext"), "{t:?}");
    }

    #[test]
    fn hidden_elements_end_at_their_own_close_and_deep_nesting_is_linear() {
        let t = html_visible_text(
            "<p>a</p><div hidden><div>x</div><div>y</div></div><p>b</p><span>c</span>",
        )
        .unwrap();
        assert!(
            t.contains('a') && t.contains('b') && t.contains('c'),
            "{t:?}"
        );
        assert!(!t.contains('x') && !t.contains('y'), "{t:?}");
        let deep = format!(
            "<div style=\"display:none\">{}{}</div>after",
            "<div>".repeat(50_000),
            "</div>".repeat(50_000)
        );
        // (The old search was quadratic here: minutes instead of milliseconds.)
        let t = html_visible_text(&deep).unwrap();
        assert!(t.contains("after"), "{t:?}");
    }

    #[test]
    fn inline_list_is_sorted_for_its_binary_search() {
        assert!(INLINE.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn broken_markup_does_not_panic() {
        for s in [
            "<",
            "&",
            "<p",
            "&#xffffffff;",
            "<script>",
            "<!--",
            "a<b>c&d;e",
        ] {
            let _ = html_to_text(s);
        }
    }
}
