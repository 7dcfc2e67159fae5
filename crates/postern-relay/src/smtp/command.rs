//! SMTP command lines (RFC 5321 §4.1) and the ESMTP parameters we keep (SIZE, BODY, SMTPUTF8,
//! RFC 3461 DSN parameters). Parsing is strict about structure and lenient about case.

/// ESMTP parameters, keyword upper-cased: `SIZE=100` → `("SIZE", Some("100"))`.
pub type Params = Vec<(String, Option<String>)>;

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// EHLO with the client's name.
    Ehlo(String),
    /// HELO with the client's name.
    Helo(String),
    /// MAIL FROM: the path (`None`: the null path `<>`) and parameters.
    Mail(Option<String>, Params),
    /// RCPT TO: the path and parameters.
    Rcpt(String, Params),
    /// DATA.
    Data,
    /// RSET.
    Rset,
    /// NOOP.
    Noop,
    /// QUIT.
    Quit,
    /// VRFY (answered 252, never verified: no address harvesting).
    Vrfy,
    /// HELP.
    Help,
    /// STARTTLS.
    StartTls,
    /// AUTH with its arguments (mechanism and optional initial response).
    Auth(String),
    /// BDAT (not offered).
    Bdat,
    /// A verb we do not know.
    Unknown(String),
    /// A known verb with bad syntax (the message says what is wrong).
    Syntax(&'static str),
}

/// Parses one command line (without CRLF).
pub fn parse(line: &[u8]) -> Command {
    let Ok(line) = std::str::from_utf8(line) else {
        return Command::Syntax("5.5.2 command is not UTF-8");
    };
    let line = line.trim_end_matches([' ', '\t']);
    let (verb, rest) = match line.split_once(' ') {
        Some((verb, rest)) => (verb, rest.trim_start()),
        None => (line, ""),
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" | "HELO" if rest.is_empty() => Command::Syntax("5.5.4 a domain name is needed"),
        "EHLO" => Command::Ehlo(rest.to_string()),
        "HELO" => Command::Helo(rest.to_string()),
        "MAIL" => match path_arg(rest, "FROM:") {
            Some((path, params)) => Command::Mail((!path.is_empty()).then_some(path), params),
            None => Command::Syntax("5.5.4 syntax: MAIL FROM:<address>"),
        },
        "RCPT" => match path_arg(rest, "TO:") {
            Some((path, params)) if !path.is_empty() => Command::Rcpt(path, params),
            _ => Command::Syntax("5.5.4 syntax: RCPT TO:<address>"),
        },
        "DATA" if rest.is_empty() => Command::Data,
        "RSET" if rest.is_empty() => Command::Rset,
        "NOOP" => Command::Noop,
        "QUIT" if rest.is_empty() => Command::Quit,
        "VRFY" | "EXPN" => Command::Vrfy,
        "HELP" => Command::Help,
        "STARTTLS" if rest.is_empty() => Command::StartTls,
        "AUTH" => Command::Auth(rest.to_string()),
        "BDAT" => Command::Bdat,
        "DATA" | "RSET" | "QUIT" | "STARTTLS" => {
            Command::Syntax("5.5.4 this command takes no arguments")
        }
        _ => Command::Unknown(verb.chars().take(16).collect()),
    }
}

/// `FROM:<path> PARAM=VALUE ...` → (path, params). Tolerates a space after the colon.
fn path_arg(rest: &str, keyword: &str) -> Option<(String, Params)> {
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest.get(keyword.len()..)?.trim_start();
    let rest = rest.strip_prefix('<')?;
    let (path, after) = rest.split_once('>')?;
    // A source route (`@a,@b:user@c`) is obsolete; keep the mailbox (RFC 5321 §4.1.2).
    let path = match path.rsplit_once(':') {
        Some((_, mailbox)) if path.starts_with('@') => mailbox,
        _ => path,
    };
    if path.contains(['<', '>', ' ', '\t']) {
        return None;
    }
    let mut params = Vec::new();
    for p in after.split_ascii_whitespace() {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (p, None),
        };
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return None;
        }
        params.push((k.to_ascii_uppercase(), v));
    }
    Some((path.to_string(), params))
}

/// Is `path` a Mailbox as RFC 5321 §4.1.2 defines it (with RFC 6531's UTF-8 where SMTPUTF8
/// allows it)? `Local-part "@" (Domain / address-literal)`: a dot-string of atext or a quoted
/// string, and a domain of letter-digit-hyphen labels (or U-labels), or a bracketed literal.
/// Nothing else reaches the spool, a next hop or a DSN: a trailing CR, VT or FF, a space or a
/// control character is a syntax error, not something to trim.
pub fn is_mailbox(path: &str) -> bool {
    let Some((local, domain)) = path.rsplit_once('@') else {
        return false;
    };
    local_part_ok(local) && domain_ok(domain) && path.len() <= 320
}

fn local_part_ok(local: &str) -> bool {
    if local.is_empty() || local.len() > 64 {
        return false;
    }
    if let Some(q) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        let mut chars = q.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(n) if (' '..='~').contains(&n) => {}
                    _ => return false,
                },
                '"' => return false,
                ' '..='~' => {}
                c if !c.is_ascii() && !c.is_control() => {}
                _ => return false,
            }
        }
        return true;
    }
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~".contains(c)
            || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
    };
    local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(atext))
}

fn domain_ok(domain: &str) -> bool {
    if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return !lit.is_empty()
            && lit
                .bytes()
                .all(|b| (33..=126).contains(&b) && !b"[]\\".contains(&b));
    }
    !domain.is_empty()
        && domain.len() <= 255
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || c == '-'
                        || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
                })
        })
}

/// Is `v` xtext as RFC 3461 §4 defines it (ENVID, ORCPT: printable ASCII but `+` and `=`,
/// with `+XX` hex escapes)? These values are copied into DSNs.
pub fn is_xtext(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                if !(b.len() > i + 2
                    && b[i + 1].is_ascii_hexdigit()
                    && b[i + 2].is_ascii_hexdigit())
                {
                    return false;
                }
                i += 3;
            }
            b'=' => return false,
            33..=126 => i += 1,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse(b"ehlo client.example"),
            Command::Ehlo("client.example".into())
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b.example> SIZE=100 body=8BITMIME"),
            Command::Mail(
                Some("a@b.example".into()),
                vec![
                    ("SIZE".into(), Some("100".into())),
                    ("BODY".into(), Some("8BITMIME".into()))
                ]
            )
        );
        assert_eq!(parse(b"MAIL FROM:<>"), Command::Mail(None, vec![]));
        assert_eq!(
            parse(b"mail from: <a@b.example>"),
            Command::Mail(Some("a@b.example".into()), vec![])
        );
        assert_eq!(
            parse(b"RCPT TO:<@relay.example:c@d.example> NOTIFY=FAILURE,DELAY"),
            Command::Rcpt(
                "c@d.example".into(),
                vec![("NOTIFY".into(), Some("FAILURE,DELAY".into()))]
            )
        );
        assert!(matches!(parse(b"RCPT TO:<>"), Command::Syntax(_)));
        assert!(matches!(parse(b"RCPT TO:c@d"), Command::Syntax(_)));
        assert!(matches!(parse(b"MAIL FROM:<a b@c>"), Command::Syntax(_)));
        assert!(matches!(parse(b"DATA x"), Command::Syntax(_)));
        assert!(matches!(parse(b"\xff\xfe"), Command::Syntax(_)));
        assert_eq!(parse(b"xyzzy"), Command::Unknown("xyzzy".into()));
        assert_eq!(parse(b"QUIT"), Command::Quit);
    }

    /// Issue 14.8: control characters never pass as part of an address.
    #[test]
    fn mailbox_syntax_is_rfc5321_and_controls_are_refused() {
        for ok in [
            "a@b.example",
            "first.last+tag@sub.b-c.example",
            "\"john doe\"@b.example",
            "jörg@bücher.example",
            "a@[127.0.0.1]",
            "a@[IPv6:::1]",
            "o'neil@b.example",
        ] {
            assert!(is_mailbox(ok), "{ok}");
        }
        for bad in [
            "a@b.example\r",
            "a@b.example\x0b",
            "a@b.example\x0c",
            "a\r@b.example",
            "a\x00@b.example",
            "a b@b.example",
            ".a@b.example",
            "a..b@b.example",
            "a@-b.example",
            "a@b..example",
            "a@",
            "@b.example",
            "ab.example",
            "\"a\rb\"@b.example",
            "a@[1.2.3.4\r]",
            "a@b.example\u{2028}",
        ] {
            assert!(!is_mailbox(bad), "{bad:?}");
        }
        assert!(is_xtext("rfc822;a@b.example"));
        assert!(is_xtext("abc+2Bdef"));
        assert!(!is_xtext("rfc822;a@b.example\r"));
        assert!(!is_xtext("a=b"));
        assert!(!is_xtext("a+2"));
        assert!(!is_xtext("a b"));
    }
}
