//! The SMTP client side: one transaction to a next hop, with a result per recipient.

use postern_core::{EnhancedStatus, StatusClass};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use tokio_rustls::rustls::pki_types::ServerName;

use super::lines::{read_line, trim_eol, Line};
use super::tls::{server_name, TlsContext};
use super::Io;

/// What the next hop said about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (2xx after DATA).
    Delivered,
    /// Try again later (4xx, or no answer).
    Temporary(String),
    /// Will never work (5xx).
    Permanent {
        /// The RFC 3463 status for the DSN: the next hop's own (RFC 2034) when its reply
        /// carried one, else `5.0.0`.
        status: EnhancedStatus,
        /// What was said, for the DSN's diagnostic and the log.
        text: String,
    },
}

impl Outcome {
    /// A permanent failure with this status.
    pub fn permanent(status: EnhancedStatus, text: impl Into<String>) -> Self {
        Outcome::Permanent {
            status,
            text: text.into(),
        }
    }
}

/// The enhanced status code (RFC 2034) at the start of a reply text, if it has one of the
/// reply's class; the DSN reports it as permanent whatever its class said.
fn enhanced_status(code: u16, text: &str) -> Option<EnhancedStatus> {
    EnhancedStatus::from_reply(code, text).map(EnhancedStatus::as_permanent)
}

/// One reply: code and text lines joined.
#[derive(Debug, Clone)]
struct Reply {
    code: u16,
    text: String,
    lines: Vec<String>,
}

impl Reply {
    /// Whether an EHLO reply lists this extension keyword.
    fn has_keyword(&self, kw: &str) -> bool {
        self.lines.iter().any(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(kw))
        })
    }

    fn outcome(&self, what: &str) -> Outcome {
        let t = format!("{what}: {} {}", self.code, self.text);
        if self.code >= 500 {
            Outcome::Permanent {
                status: enhanced_status(self.code, &self.text).unwrap_or(EnhancedStatus::PERMANENT),
                text: t,
            }
        } else {
            Outcome::Temporary(t)
        }
    }
}

/// Why a transaction could not be completed (every recipient is temporary then).
#[derive(Debug, thiserror::Error)]
enum Trouble {
    /// The connection failed or the peer misbehaved.
    #[error("{0}")]
    Io(String),
    /// TLS could not be set up as the policy asks.
    #[error("{0}")]
    Tls(String),
    /// A pooled connection the hop had closed: try again on a new one.
    #[error("the pooled connection was closed by the next hop")]
    Stale,
}

/// How TLS is used towards a next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    /// STARTTLS when offered, any certificate; plaintext if not offered or if the handshake
    /// fails (then the transaction is tried once more without it), as Postfix's `may` does.
    Opportunistic,
    /// STARTTLS required and the certificate verified (chain and name). Anything else is a
    /// temporary failure: the copy waits, it never goes out in clear.
    Verified,
}

/// One message for one next hop.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// Our name for EHLO.
    pub helo: &'a str,
    /// Reverse path (`None`: null sender).
    pub mail_from: Option<&'a str>,
    /// Recipients.
    pub rcpts: &'a [String],
    /// Header fields put on top of the message as it is sent (our DKIM signature), CRLF-ended;
    /// empty for none. Sent ahead of `data` rather than copied into it.
    pub prefix: &'a [u8],
    /// The message (sent with CRLF line ends and dot-stuffing).
    pub data: &'a [u8],
    /// Per-reply timeout.
    pub wait: Duration,
}

/// Open connections kept between transactions, per destination and TLS mode, so a burst of
/// mail to one next hop does not pay a TCP and TLS handshake per message (as Postfix's scache).
/// A connection is kept only between transactions (after the reply to the message's end, or
/// after a successful RSET); one the hop closed meanwhile is noticed at the first reply of the
/// next transaction, before anything of it was accepted, and the message goes on a new one.
pub struct ConnectionPool {
    idle: std::sync::Mutex<std::collections::HashMap<String, Vec<(std::time::Instant, Session)>>>,
    per_destination: usize,
    max_idle: Duration,
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("per_destination", &self.per_destination)
            .finish_non_exhaustive()
    }
}

impl ConnectionPool {
    /// Keeps at most `per_destination` idle connections per destination, each for `max_idle`.
    pub fn new(per_destination: usize, max_idle: Duration) -> Self {
        ConnectionPool {
            idle: Default::default(),
            per_destination,
            max_idle,
        }
    }

    fn take(&self, key: &str) -> Option<Session> {
        let mut map = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.get_mut(key)?;
        while let Some((at, s)) = list.pop() {
            if at.elapsed() < self.max_idle {
                return Some(s);
            }
        }
        None
    }

    fn put(&self, key: String, s: Session) {
        let mut map = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.entry(key).or_default();
        list.retain(|(at, _)| at.elapsed() < self.max_idle);
        if list.len() < self.per_destination {
            list.push((std::time::Instant::now(), s));
        }
    }
}

/// Sends one message to `addr` (`HOST:PORT`); one outcome per recipient, in order. Trouble
/// before any reply about the recipients counts as temporary for all of them.
pub async fn send(
    addr: &str,
    env: &Envelope<'_>,
    tls: &TlsContext,
    policy: TlsPolicy,
    pool: &ConnectionPool,
) -> Vec<Outcome> {
    match attempt(addr, addr, env, tls, policy, pool).await {
        Ok(v) => v,
        Err(e) => vec![Outcome::Temporary(e); env.rcpts.len()],
    }
}

/// Like [`send`], but says when the host could not be used at all (`Err`: connection, protocol
/// or TLS trouble), so the caller can try the next MX. `tls_name` is the name the certificate
/// must match under [`TlsPolicy::Verified`] (the MX host name, not its address).
pub async fn attempt(
    addr: &str,
    tls_name: &str,
    env: &Envelope<'_>,
    tls: &TlsContext,
    policy: TlsPolicy,
    pool: &ConnectionPool,
) -> Result<Vec<Outcome>, String> {
    let t = Transaction {
        addr,
        name: tls_name,
        helo: env.helo,
        mail_from: env.mail_from,
        rcpts: env.rcpts,
        prefix: env.prefix,
        data: env.data,
        wait: env.wait,
    };
    let first = t.run(Some((tls, policy)), pool).await;
    let second = match first {
        Err(Trouble::Tls(why)) if policy == TlsPolicy::Opportunistic => {
            tracing::info!(next_hop = %addr, error = %why, "opportunistic TLS failed; sending without");
            t.run(None, pool).await
        }
        other => other,
    };
    second.map_err(|e| e.to_string())
}

/// What our mail server said about one recipient when asked without sending anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// It takes mail for this address.
    Accepted,
    /// It refused the address for good (5xx to RCPT TO).
    Rejected(String),
    /// It could not be asked, or answered 4xx: no verdict.
    Unknown(String),
}

/// Asks the SMTP server at `addr` whether it accepts `rcpt` (`MAIL FROM:<>`, `RCPT TO`, then
/// `RSET` and `QUIT`: no message is sent), as Postfix's `reject_unverified_recipient` does.
pub async fn probe_recipient(
    addr: &str,
    helo: &str,
    rcpt: &str,
    wait: Duration,
    tls: &TlsContext,
) -> Probe {
    let rcpts = [rcpt.to_string()];
    let t = Transaction {
        addr,
        name: addr,
        helo,
        mail_from: None,
        rcpts: &rcpts,
        prefix: b"",
        data: b"",
        wait,
    };
    let mut tried_tls = Some((tls, TlsPolicy::Opportunistic));
    loop {
        let session = match t.open(tried_tls).await {
            Ok(Ok(s)) => s,
            Ok(Err(refused)) => {
                return Probe::Unknown(format!("{:?}", refused.first()));
            }
            Err(Trouble::Tls(_)) if tried_tls.is_some() => {
                tried_tls = None;
                continue;
            }
            Err(e) => return Probe::Unknown(e.to_string()),
        };
        let mut c = session.c;
        let answer = async {
            let from = c.command("MAIL FROM:<>").await?;
            if from.code != 250 {
                return Ok::<_, Trouble>(Probe::Unknown(format!("MAIL FROM: {}", from.code)));
            }
            let r = c.command(&format!("RCPT TO:<{rcpt}>")).await?;
            Ok(match r.code / 100 {
                2 => Probe::Accepted,
                5 => Probe::Rejected(format!("{} {}", r.code, r.text)),
                _ => Probe::Unknown(format!("{} {}", r.code, r.text)),
            })
        }
        .await;
        let _ = c.command("RSET").await;
        c.quit().await;
        return answer.unwrap_or_else(|e| Probe::Unknown(e.to_string()));
    }
}

/// An open connection past EHLO (and STARTTLS), ready for MAIL FROM.
pub struct Session {
    c: Client,
    eightbit: bool,
    smtputf8: bool,
    /// The hop takes MAIL, RCPT and DATA in one go (RFC 2920).
    pipelining: bool,
    /// No transaction is open (the last one ended with the reply to the message's end).
    clean: bool,
}

struct Transaction<'a> {
    addr: &'a str,
    name: &'a str,
    helo: &'a str,
    mail_from: Option<&'a str>,
    rcpts: &'a [String],
    prefix: &'a [u8],
    data: &'a [u8],
    wait: Duration,
}

impl Transaction<'_> {
    fn pool_key(&self, tls: Option<(&TlsContext, TlsPolicy)>) -> String {
        let mode = match tls {
            Some((_, TlsPolicy::Verified)) => "verified",
            Some((_, TlsPolicy::Opportunistic)) => "opportunistic",
            None => "plain",
        };
        format!("{}|{}|{mode}", self.addr, self.name)
    }

    async fn run(
        &self,
        tls: Option<(&TlsContext, TlsPolicy)>,
        pool: &ConnectionPool,
    ) -> Result<Vec<Outcome>, Trouble> {
        let key = self.pool_key(tls);
        // A pooled connection first; if the hop closed it meanwhile, open anew.
        if let Some(mut s) = pool.take(&key) {
            match self.transact(&mut s, true).await {
                Err(Trouble::Stale) => {}
                Ok(outcomes) => {
                    Self::keep(s, key, pool).await;
                    return Ok(outcomes);
                }
                Err(e) => return Err(e),
            }
        }
        let mut s = match self.open(tls).await? {
            Ok(s) => s,
            Err(outcomes) => return Ok(outcomes),
        };
        let outcomes = self.transact(&mut s, false).await?;
        Self::keep(s, key, pool).await;
        Ok(outcomes)
    }

    /// Pools a session that is between transactions (RSET first if one is still open).
    async fn keep(mut s: Session, key: String, pool: &ConnectionPool) {
        if !s.clean {
            if !matches!(s.c.command("RSET").await, Ok(r) if r.code == 250) {
                return;
            }
            s.clean = true;
        }
        pool.put(key, s);
    }

    /// Connects, reads the greeting, says EHLO and does STARTTLS as the policy asks. `Ok(Err)`:
    /// the hop answered, but refused us (the outcome for every recipient).
    async fn open(
        &self,
        tls: Option<(&TlsContext, TlsPolicy)>,
    ) -> Result<Result<Session, Vec<Outcome>>, Trouble> {
        let (addr, rcpts, wait) = (self.addr, self.rcpts, self.wait);
        let sock = timeout(wait, TcpStream::connect(addr))
            .await
            .map_err(|_| Trouble::Io(format!("connect to {addr}: timed out")))?
            .map_err(|e| Trouble::Io(format!("connect to {addr}: {e}")))?;
        let _ = sock.set_nodelay(true);
        let mut c = Client {
            io: BufReader::new(Box::new(sock)),
            wait,
        };
        let greeting = c.reply().await?;
        if greeting.code != 220 {
            return Ok(Err(vec![greeting.outcome("greeting"); rcpts.len()]));
        }
        let mut ehlo = c.command(&format!("EHLO {}", self.helo)).await?;
        if ehlo.code != 250 {
            if matches!(tls, Some((_, TlsPolicy::Verified))) {
                return Err(Trouble::Tls(format!(
                    "{addr} does not speak ESMTP, and policy requires TLS"
                )));
            }
            let helo_reply = c.command(&format!("HELO {}", self.helo)).await?;
            if helo_reply.code != 250 {
                return Ok(Err(vec![helo_reply.outcome("HELO"); rcpts.len()]));
            }
        }
        if let Some((ctx, policy)) = tls {
            let offered = ehlo.code == 250 && ehlo.has_keyword("STARTTLS");
            if offered {
                let go = c.command("STARTTLS").await?;
                if go.code != 220 {
                    return Err(Trouble::Tls(format!(
                        "STARTTLS refused: {} {}",
                        go.code, go.text
                    )));
                }
                c = c.upgrade(ctx, policy, self.name).await?;
                ehlo = c.command(&format!("EHLO {}", self.helo)).await?;
                if ehlo.code != 250 {
                    return Ok(Err(vec![ehlo.outcome("EHLO after STARTTLS"); rcpts.len()]));
                }
            } else if policy == TlsPolicy::Verified {
                c.quit().await;
                return Err(Trouble::Tls(format!(
                    "{addr} does not offer STARTTLS, and policy requires TLS"
                )));
            }
        }
        Ok(Ok(Session {
            c,
            eightbit: ehlo.has_keyword("8BITMIME"),
            smtputf8: ehlo.has_keyword("SMTPUTF8"),
            pipelining: ehlo.has_keyword("PIPELINING"),
            clean: true,
        }))
    }

    /// MAIL, RCPT, DATA on an open session; it ends ready for the next transaction. On a
    /// `reused` session, no answer at all or a 421 to the first command means the hop closed it
    /// while it was idle ([`Trouble::Stale`]): nothing of this message was accepted.
    async fn transact(&self, s: &mut Session, reused: bool) -> Result<Vec<Outcome>, Trouble> {
        let rcpts = self.rcpts;
        // 8-bit data goes to a hop without 8BITMIME as it is: refusing would bounce mail that
        // almost every real server takes, and converting would break signatures.
        let body = if s.eightbit && self.data.iter().any(|b| *b >= 0x80) {
            " BODY=8BITMIME"
        } else {
            ""
        };
        // An address that is not ASCII needs SMTPUTF8 (RFC 6531); a hop without it cannot take
        // the message at all.
        let needs_utf8 =
            self.mail_from.is_some_and(|f| !f.is_ascii()) || rcpts.iter().any(|r| !r.is_ascii());
        if needs_utf8 && !s.smtputf8 {
            return Ok(vec![
                Outcome::permanent(
                    EnhancedStatus::new(StatusClass::Permanent, 6, 7),
                    "553 5.6.7 the next hop does not support SMTPUTF8 and an address is not ASCII"
                );
                rcpts.len()
            ]);
        }
        let utf8 = if needs_utf8 { " SMTPUTF8" } else { "" };
        let mail = format!(
            "MAIL FROM:<{}>{body}{utf8}\r\n",
            self.mail_from.unwrap_or("")
        );
        let c = &mut s.c;
        s.clean = false;
        let stale = |e: Trouble| if reused { Trouble::Stale } else { e };
        // With PIPELINING, MAIL, every RCPT and DATA go in one write and their replies are read
        // in order (RFC 2920): two round trips per message instead of three or more.
        let mut batch = mail.into_bytes();
        if s.pipelining {
            for r in rcpts {
                batch.extend_from_slice(format!("RCPT TO:<{r}>\r\n").as_bytes());
            }
            batch.extend_from_slice(b"DATA\r\n");
        }
        c.write(&batch).await.map_err(stale)?;
        let from = c.reply().await.map_err(stale)?;
        if reused && from.code == 421 {
            return Err(Trouble::Stale);
        }
        if from.code != 250 && !s.pipelining {
            // Nothing else was sent: no transaction is open.
            s.clean = true;
            return Ok(vec![from.outcome("MAIL FROM"); rcpts.len()]);
        }
        // Pipelined, every RCPT has a reply to read, whatever MAIL got.
        let mut out = Vec::with_capacity(rcpts.len());
        let mut accepted = 0;
        for r in rcpts {
            let rep = if s.pipelining {
                c.reply().await?
            } else {
                c.command(&format!("RCPT TO:<{r}>")).await?
            };
            out.push(if from.code != 250 {
                Some(from.outcome("MAIL FROM"))
            } else if rep.code / 100 == 2 {
                accepted += 1;
                None
            } else {
                Some(rep.outcome("RCPT TO"))
            });
        }
        let go = if s.pipelining {
            c.reply().await?
        } else if accepted == 0 {
            // MAIL is open with no recipient: RSET before the session is reused.
            return Ok(out.into_iter().flatten().collect());
        } else {
            c.command("DATA").await?
        };
        if accepted == 0 {
            // A hop that still says 354 gets an empty message, which ends the transaction
            // (RFC 2920 section 3.1); the outcomes stay those of MAIL and RCPT.
            if go.code == 354 {
                c.write(b".\r\n").await?;
                c.reply().await?;
                s.clean = true;
            }
            return Ok(out.into_iter().flatten().collect());
        }
        if go.code != 354 {
            let o = go.outcome("DATA");
            return Ok(out.into_iter().map(|x| x.unwrap_or(o.clone())).collect());
        }
        c.write_stuffed(&[self.prefix, self.data]).await?;
        let done = c.reply().await?;
        s.clean = true;
        let o = if done.code / 100 == 2 {
            Outcome::Delivered
        } else {
            done.outcome("end of DATA")
        };
        Ok(out.into_iter().map(|x| x.unwrap_or(o.clone())).collect())
    }
}

/// How much stuffed message is written at a time: the message is sent as it is stuffed, not
/// copied whole first (a 20 MB sealed message cost another 27 MB of resident memory here).
const STUFF_CHUNK: usize = 64 * 1024;

/// Dot-stuffing as the message goes out: leading dots doubled (RFC 5321 section 4.5.2),
/// fed a piece at a time.
#[derive(Debug)]
struct Stuffer {
    at_line_start: bool,
}

impl Stuffer {
    fn new() -> Self {
        Stuffer {
            at_line_start: true,
        }
    }

    /// Appends `data` (CRLF line ends), stuffed, to `out`.
    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            if self.at_line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            self.at_line_start = b == b'\n';
        }
    }

    /// The end: a line break if the message lacked a last one, and the final `.` line.
    fn finish(self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// CRLF line ends, leading dots doubled, and the final `.` line, whole (tests).
#[cfg(test)]
fn stuffed(data: &[u8]) -> Vec<u8> {
    let data = postern_core::mime::crlf(data);
    let mut out = Vec::new();
    let mut s = Stuffer::new();
    for piece in data.chunks(7) {
        s.feed(piece, &mut out);
    }
    s.finish(&mut out);
    out
}

struct Client {
    io: BufReader<Box<dyn Io>>,
    wait: Duration,
}

impl Client {
    /// Runs the TLS handshake over this connection (after the 220 to STARTTLS).
    async fn upgrade(
        self,
        ctx: &TlsContext,
        policy: TlsPolicy,
        addr: &str,
    ) -> Result<Client, Trouble> {
        let (connector, name) = match policy {
            TlsPolicy::Verified => (
                &ctx.verified,
                server_name(addr)
                    .ok_or_else(|| Trouble::Tls(format!("{addr}: no name to verify")))?,
            ),
            // Any name will do when nothing is verified.
            TlsPolicy::Opportunistic => (
                &ctx.opportunistic,
                server_name(addr)
                    .unwrap_or_else(|| ServerName::from(std::net::IpAddr::from([0, 0, 0, 0]))),
            ),
        };
        let wait = self.wait;
        let plain = self.io.into_inner();
        let tls = timeout(wait, connector.connect(name, plain))
            .await
            .map_err(|_| Trouble::Tls("TLS handshake timed out".into()))?
            .map_err(|e| Trouble::Tls(format!("TLS handshake with {addr}: {e}")))?;
        Ok(Client {
            io: BufReader::new(Box::new(tls)),
            wait,
        })
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Trouble> {
        timeout(self.wait, self.io.get_mut().write_all(bytes))
            .await
            .map_err(|_| Trouble::Io("timed out sending".into()))?
            .map_err(|e| Trouble::Io(format!("sending: {e}")))
    }

    /// Sends the message for DATA, its `parts` one after another: CRLF line ends, dot-stuffed
    /// and ended, a chunk at a time (each chunk within the wait, so a slow but moving hop is not
    /// cut off mid-message).
    async fn write_stuffed(&mut self, parts: &[&[u8]]) -> Result<(), Trouble> {
        let mut stuffer = Stuffer::new();
        let mut chunk = Vec::with_capacity(STUFF_CHUNK + STUFF_CHUNK / 8);
        for part in parts {
            let data = postern_core::mime::crlf(part);
            for piece in data.chunks(STUFF_CHUNK) {
                stuffer.feed(piece, &mut chunk);
                self.write(&chunk).await?;
                chunk.clear();
            }
        }
        stuffer.finish(&mut chunk);
        self.write(&chunk).await
    }

    async fn command(&mut self, line: &str) -> Result<Reply, Trouble> {
        let mut b = line.as_bytes().to_vec();
        b.extend_from_slice(b"\r\n");
        self.write(&b).await?;
        self.reply().await
    }

    /// Reads a (multi-line) reply; at most 100 lines of 4 KiB, so a hostile hop cannot stall us.
    async fn reply(&mut self) -> Result<Reply, Trouble> {
        let mut text = String::new();
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        for _ in 0..100 {
            let got = timeout(self.wait, read_line(&mut self.io, &mut buf, 4096))
                .await
                .map_err(|_| Trouble::Io("timed out waiting for a reply".into()))?
                .map_err(|e| Trouble::Io(format!("reading a reply: {e}")))?;
            if got != Line::Complete {
                return Err(Trouble::Io(
                    "connection closed or reply line too long".into(),
                ));
            }
            let l = trim_eol(&buf);
            let code = std::str::from_utf8(l.get(..3).unwrap_or_default())
                .ok()
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| Trouble::Io("not an SMTP reply".into()))?;
            let rest = String::from_utf8_lossy(l.get(4..).unwrap_or_default());
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(rest.trim());
            lines.push(rest.trim().to_string());
            if l.get(3) != Some(&b'-') {
                return Ok(Reply { code, text, lines });
            }
        }
        Err(Trouble::Io("reply too long".into()))
    }

    async fn quit(&mut self) {
        let _ = self.command("QUIT").await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(stuffed(b"a\n.b\n..c"), b"a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(stuffed(b".\r\n"), b"..\r\n.\r\n");
        // A line that starts at the edge of a piece (pieces of 7 bytes here).
        assert_eq!(stuffed(b"abcde\r\n.x"), b"abcde\r\n..x\r\n.\r\n");
        assert_eq!(stuffed(b""), b".\r\n");
    }
}

/// The client against scripted hops (unit tests; the relay tests run it against smtp-sink and
/// Postfix).
#[cfg(test)]
mod hop_tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// How a scripted hop behaves.
    #[derive(Clone, Copy, Default)]
    struct Hop {
        /// Offer PIPELINING, and then answer MAIL, RCPT and DATA only once DATA has arrived: a
        /// client that waits for each reply stalls.
        pipelining: bool,
        /// After this many messages on a connection, close it (with a 421 first, or silently).
        close_after: Option<(usize, bool)>,
        /// Refuse every MAIL FROM (550).
        refuse_mail: bool,
    }

    /// What the hop saw: per connection, every command line; and the messages it took.
    #[derive(Default)]
    struct Seen {
        connections: Vec<Vec<String>>,
        messages: Vec<Vec<u8>>,
    }

    async fn hop(h: Hop) -> (String, Arc<Mutex<Seen>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s2 = seen.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let seen = s2.clone();
                tokio::spawn(async move {
                    let n = {
                        let mut s = seen.lock().unwrap();
                        s.connections.push(Vec::new());
                        s.connections.len() - 1
                    };
                    let (r, mut w) = sock.into_split();
                    let mut r = tokio::io::BufReader::new(r);
                    w.write_all(b"220 hop\r\n").await.unwrap();
                    let (mut held, mut rcpts, mut done) = (String::new(), 0, 0);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let cmd = line.trim_end().to_string();
                        seen.lock().unwrap().connections[n].push(cmd.clone());
                        let verb = cmd.split([' ', ':']).next().unwrap_or("").to_uppercase();
                        let reply = match verb.as_str() {
                            "EHLO" if h.pipelining => "250-hop\r\n250 PIPELINING\r\n".into(),
                            "EHLO" => "250 hop\r\n".to_string(),
                            "MAIL" if h.refuse_mail => "550 5.7.1 not you\r\n".into(),
                            "MAIL" => "250 ok\r\n".into(),
                            "RCPT" if cmd.contains("<bad") => "550 5.1.1 no such user\r\n".into(),
                            // As Postfix does: no recipient without a sender.
                            "RCPT" if h.refuse_mail => "503 5.5.1 need MAIL\r\n".into(),
                            "RCPT" => {
                                rcpts += 1;
                                "250 ok\r\n".into()
                            }
                            // A lax hop: 354 even without a recipient.
                            "DATA" => "354 go\r\n".into(),
                            "RSET" => {
                                rcpts = 0;
                                "250 ok\r\n".into()
                            }
                            "QUIT" => "221 bye\r\n".into(),
                            _ => "500 what\r\n".into(),
                        };
                        if h.pipelining && matches!(verb.as_str(), "MAIL" | "RCPT") {
                            held.push_str(&reply);
                            continue;
                        }
                        let reply = std::mem::take(&mut held) + &reply;
                        w.write_all(reply.as_bytes()).await.unwrap();
                        if verb == "QUIT" {
                            return;
                        }
                        if verb != "DATA" {
                            continue;
                        }
                        let mut msg = Vec::new();
                        loop {
                            let mut l = Vec::new();
                            if r.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if l == b".\r\n" {
                                break;
                            }
                            msg.extend_from_slice(&l);
                        }
                        if rcpts > 0 {
                            seen.lock().unwrap().messages.push(msg);
                        }
                        rcpts = 0;
                        w.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                        done += 1;
                        if let Some((after, say)) = h.close_after {
                            if done >= after {
                                if say {
                                    let _ = w.write_all(b"421 4.4.2 idle\r\n").await;
                                }
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    async fn send_one(addr: &str, rcpts: &[&str], pool: &ConnectionPool) -> Vec<Outcome> {
        let rcpts: Vec<String> = rcpts.iter().map(|r| r.to_string()).collect();
        let env = Envelope {
            helo: "postern.localhost",
            mail_from: Some("ada@clinic.example"),
            rcpts: &rcpts,
            prefix: b"",
            data: b"Subject: t\r\n\r\nhello\r\n",
            wait: Duration::from_secs(2),
        };
        let tls = crate::smtp::tls::TlsContext::new(
            &crate::config::TlsConfig::default(),
            "postern.localhost",
        )
        .unwrap();
        send(addr, &env, &tls, TlsPolicy::Opportunistic, pool).await
    }

    fn pool() -> ConnectionPool {
        ConnectionPool::new(4, Duration::from_secs(60))
    }

    #[tokio::test]
    async fn commands_are_pipelined_to_a_hop_that_offers_it() {
        let (addr, seen) = hop(Hop {
            pipelining: true,
            ..Hop::default()
        })
        .await;
        let p = pool();
        for _ in 0..3 {
            let o = send_one(&addr, &["a@x.test", "bad@x.test", "b@x.test"], &p).await;
            assert_eq!(o[0], Outcome::Delivered);
            assert!(
                matches!(&o[1], Outcome::Permanent { status, .. } if status.to_string() == "5.1.1")
            );
            assert_eq!(o[2], Outcome::Delivered);
        }
        let s = seen.lock().unwrap();
        // One connection, no RSET between transactions that ended cleanly.
        assert_eq!(s.connections.len(), 1);
        assert!(!s.connections[0].iter().any(|c| c == "RSET"));
        assert_eq!(s.messages.len(), 3);
    }

    #[tokio::test]
    async fn without_recipients_a_lax_hop_gets_a_lone_dot_and_the_session_is_reset() {
        for pipelining in [true, false] {
            let (addr, seen) = hop(Hop {
                pipelining,
                ..Hop::default()
            })
            .await;
            let p = pool();
            let o = send_one(&addr, &["bad1@x.test", "bad2@x.test"], &p).await;
            assert!(
                o.iter().all(|o| matches!(o, Outcome::Permanent { .. })),
                "{o:?}"
            );
            assert_eq!(
                send_one(&addr, &["a@x.test"], &p).await,
                [Outcome::Delivered]
            );
            let s = seen.lock().unwrap();
            assert_eq!(s.connections.len(), 1);
            assert_eq!(s.messages.len(), 1, "nothing delivered for no recipient");
            if !pipelining {
                // MAIL was left open: RSET before the next transaction.
                assert!(s.connections[0].iter().any(|c| c == "RSET"));
            }
        }
    }

    #[tokio::test]
    async fn a_refused_sender_fails_every_recipient_with_the_reply_to_mail() {
        for pipelining in [true, false] {
            let (addr, seen) = hop(Hop {
                pipelining,
                refuse_mail: true,
                ..Hop::default()
            })
            .await;
            let p = pool();
            for _ in 0..2 {
                let o = send_one(&addr, &["a@x.test", "b@x.test"], &p).await;
                assert_eq!(o.len(), 2);
                for o in o {
                    assert!(
                        matches!(&o, Outcome::Permanent { status, text }
                            if *status == EnhancedStatus::REFUSED && text.starts_with("MAIL FROM")),
                        "{o:?}"
                    );
                }
            }
            let s = seen.lock().unwrap();
            assert!(s.messages.is_empty());
            // The session stayed usable: the second message went on the same connection.
            assert_eq!(s.connections.len(), 1);
        }
    }

    #[tokio::test]
    async fn a_pooled_connection_the_hop_closed_is_replaced_and_the_message_goes_once() {
        for pipelining in [true, false] {
            for say_421 in [true, false] {
                let (addr, seen) = hop(Hop {
                    pipelining,
                    close_after: Some((1, say_421)),
                    ..Hop::default()
                })
                .await;
                let p = pool();
                for _ in 0..3 {
                    assert_eq!(
                        send_one(&addr, &["a@x.test"], &p).await,
                        [Outcome::Delivered]
                    );
                }
                let s = seen.lock().unwrap();
                assert_eq!(s.messages.len(), 3);
                assert_eq!(s.connections.len(), 3);
            }
        }
    }
}

#[cfg(test)]
mod status_tests {
    use super::enhanced_status;

    #[test]
    fn the_status_is_read_from_the_start_of_the_reply_only() {
        assert_eq!(
            enhanced_status(550, "5.1.1 no such user")
                .map(|s| s.to_string())
                .as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            enhanced_status(554, "5.7.1 relay denied")
                .map(|s| s.to_string())
                .as_deref(),
            Some("5.7.1")
        );
        // A status of another class, or one further into the text, is not the reply's.
        assert_eq!(enhanced_status(550, "4.2.2 full"), None);
        assert_eq!(enhanced_status(550, "user 5.1.1 unknown"), None);
        assert_eq!(enhanced_status(550, "no code here 1.2"), None);
        assert_eq!(enhanced_status(550, "5.1234.1 x"), None);
        assert_eq!(enhanced_status(550, ""), None);
    }
}
