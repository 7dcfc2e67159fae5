//! The SMTP client side: one transaction to a next hop, with a result per recipient.

use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use tokio_rustls::rustls::pki_types::ServerName;

use super::lines::{read_line, trim_eol, Line};
use super::server::Io;
use super::tls::{server_name, TlsContext};

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
        status: String,
        /// What was said, for the DSN's diagnostic and the log.
        text: String,
    },
}

impl Outcome {
    /// A permanent failure with this status.
    pub fn permanent(status: &str, text: impl Into<String>) -> Self {
        Outcome::Permanent {
            status: status.into(),
            text: text.into(),
        }
    }
}

/// The enhanced status code (RFC 2034) at the start of a reply text, if it has one of the
/// reply's class; the DSN reports it as permanent whatever its class said.
fn enhanced_status(code: u16, text: &str) -> Option<String> {
    let word = text.split_whitespace().next()?;
    let p: Vec<&str> = word.split('.').collect();
    let class = char::from_digit(u32::from(code / 100), 10)?.to_string();
    let ok = p.len() == 3
        && p[0] == class
        && p[1..]
            .iter()
            .all(|x| !x.is_empty() && x.len() <= 3 && x.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| format!("5.{}.{}", p[1], p[2]))
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
                status: enhanced_status(self.code, &self.text).unwrap_or_else(|| "5.0.0".into()),
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
    /// The message (sent with CRLF line ends and dot-stuffing).
    pub data: &'a [u8],
    /// Per-reply timeout.
    pub wait: Duration,
}

/// Open connections kept between transactions, per destination and TLS mode, so a burst of
/// mail to one next hop does not pay a TCP and TLS handshake per message (as Postfix's scache).
/// A connection is reused only after a complete transaction and a successful RSET.
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
}

struct Transaction<'a> {
    addr: &'a str,
    name: &'a str,
    helo: &'a str,
    mail_from: Option<&'a str>,
    rcpts: &'a [String],
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
        // A pooled connection first; if the hop closed it meanwhile, RSET fails: open anew.
        let mut session = None;
        if let Some(mut s) = pool.take(&key) {
            if matches!(s.c.command("RSET").await, Ok(r) if r.code == 250) {
                session = Some(s);
            }
        }
        let mut s = match session {
            Some(s) => s,
            None => match self.open(tls).await? {
                Ok(s) => s,
                Err(outcomes) => return Ok(outcomes),
            },
        };
        let outcomes = self.transact(&mut s).await?;
        pool.put(key, s);
        Ok(outcomes)
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
        let eightbit = ehlo.has_keyword("8BITMIME");
        let smtputf8 = ehlo.has_keyword("SMTPUTF8");
        Ok(Ok(Session {
            c,
            eightbit,
            smtputf8,
        }))
    }

    /// MAIL, RCPT, DATA on an open session; it ends ready for the next transaction.
    async fn transact(&self, s: &mut Session) -> Result<Vec<Outcome>, Trouble> {
        let rcpts = self.rcpts;
        let c = &mut s.c;
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
                    "5.6.7",
                    "553 5.6.7 the next hop does not support SMTPUTF8 and an address is not ASCII"
                );
                rcpts.len()
            ]);
        }
        let utf8 = if needs_utf8 { " SMTPUTF8" } else { "" };
        let from = c
            .command(&format!(
                "MAIL FROM:<{}>{body}{utf8}",
                self.mail_from.unwrap_or("")
            ))
            .await?;
        if from.code != 250 {
            return Ok(vec![from.outcome("MAIL FROM"); rcpts.len()]);
        }
        let mut out = Vec::with_capacity(rcpts.len());
        let mut accepted = 0;
        for r in rcpts {
            let rep = c.command(&format!("RCPT TO:<{r}>")).await?;
            if rep.code / 100 == 2 {
                accepted += 1;
                out.push(None);
            } else {
                out.push(Some(rep.outcome("RCPT TO")));
            }
        }
        if accepted == 0 {
            return Ok(out.into_iter().flatten().collect());
        }
        let go = c.command("DATA").await?;
        if go.code != 354 {
            let o = go.outcome("DATA");
            return Ok(out.into_iter().map(|x| x.unwrap_or(o.clone())).collect());
        }
        c.write(&stuffed(self.data)).await?;
        let done = c.reply().await?;
        let o = if done.code / 100 == 2 {
            Outcome::Delivered
        } else {
            done.outcome("end of DATA")
        };
        Ok(out.into_iter().map(|x| x.unwrap_or(o.clone())).collect())
    }
}

/// CRLF line ends, leading dots doubled, and the final `.` line.
fn stuffed(data: &[u8]) -> Vec<u8> {
    let data = postern_core::mime::crlf(data);
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 5);
    let mut at_line_start = true;
    for &b in data.iter() {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
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
    }
}

#[cfg(test)]
mod status_tests {
    use super::enhanced_status;

    #[test]
    fn the_status_is_read_from_the_start_of_the_reply_only() {
        assert_eq!(
            enhanced_status(550, "5.1.1 no such user").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            enhanced_status(554, "5.7.1 relay denied").as_deref(),
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
