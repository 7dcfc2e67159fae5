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
}
