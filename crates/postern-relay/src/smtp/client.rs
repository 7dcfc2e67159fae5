//! The SMTP client side: one transaction to a next hop, with a result per recipient.

use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::lines::{read_line, trim_eol, Line};

/// What the next hop said about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (2xx after DATA).
    Delivered,
    /// Try again later (4xx, or no answer).
    Temporary(String),
    /// Will never work (5xx).
    Permanent(String),
}

/// One reply: code and text lines joined.
#[derive(Debug, Clone)]
struct Reply {
    code: u16,
    text: String,
}

impl Reply {
    fn outcome(&self, what: &str) -> Outcome {
        let t = format!("{what}: {} {}", self.code, self.text);
        if self.code >= 500 {
            Outcome::Permanent(t)
        } else {
            Outcome::Temporary(t)
        }
    }
}

/// Why a transaction could not even start (every recipient is temporary then).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Trouble(String);

/// Sends one message to `addr` (`HOST:PORT`). Returns one outcome per recipient, in order.
/// `data` is sent with CRLF line ends and dot-stuffing.
pub async fn send(
    addr: &str,
    helo: &str,
    mail_from: Option<&str>,
    rcpts: &[String],
    data: &[u8],
    wait: Duration,
) -> Vec<Outcome> {
    match transaction(addr, helo, mail_from, rcpts, data, wait).await {
        Ok(v) => v,
        Err(Trouble(why)) => vec![Outcome::Temporary(why); rcpts.len()],
    }
}

async fn transaction(
    addr: &str,
    helo: &str,
    mail_from: Option<&str>,
    rcpts: &[String],
    data: &[u8],
    wait: Duration,
) -> Result<Vec<Outcome>, Trouble> {
    let sock = timeout(wait, TcpStream::connect(addr))
        .await
        .map_err(|_| Trouble(format!("connect to {addr}: timed out")))?
        .map_err(|e| Trouble(format!("connect to {addr}: {e}")))?;
    let _ = sock.set_nodelay(true);
    let mut c = Client {
        io: BufReader::new(sock),
        wait,
    };
    let greeting = c.reply().await?;
    if greeting.code != 220 {
        return Ok(vec![greeting.outcome("greeting"); rcpts.len()]);
    }
    let ehlo = c.command(&format!("EHLO {helo}")).await?;
    let eightbit = ehlo.text.to_ascii_uppercase().contains("8BITMIME");
    if ehlo.code != 250 {
        let helo_reply = c.command(&format!("HELO {helo}")).await?;
        if helo_reply.code != 250 {
            return Ok(vec![helo_reply.outcome("HELO"); rcpts.len()]);
        }
    }
    // 8-bit data goes to a hop without 8BITMIME as it is: refusing would bounce mail that
    // almost every real server takes, and converting would break signatures.
    let body = if eightbit && data.iter().any(|b| *b >= 0x80) {
        " BODY=8BITMIME"
    } else {
        ""
    };
    let from = c
        .command(&format!("MAIL FROM:<{}>{body}", mail_from.unwrap_or("")))
        .await?;
    if from.code != 250 {
        let o = from.outcome("MAIL FROM");
        c.quit().await;
        return Ok(vec![o; rcpts.len()]);
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
        c.quit().await;
        return Ok(out.into_iter().flatten().collect());
    }
    let go = c.command("DATA").await?;
    if go.code != 354 {
        let o = go.outcome("DATA");
        c.quit().await;
        return Ok(out.into_iter().map(|x| x.unwrap_or(o.clone())).collect());
    }
    c.write(&stuffed(data)).await?;
    let done = c.reply().await?;
    let o = if done.code / 100 == 2 {
        Outcome::Delivered
    } else {
        done.outcome("end of DATA")
    };
    c.quit().await;
    Ok(out.into_iter().map(|x| x.unwrap_or(o.clone())).collect())
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
    io: BufReader<TcpStream>,
    wait: Duration,
}

impl Client {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Trouble> {
        timeout(self.wait, self.io.get_mut().write_all(bytes))
            .await
            .map_err(|_| Trouble("timed out sending".into()))?
            .map_err(|e| Trouble(format!("sending: {e}")))
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
        let mut buf = Vec::new();
        for _ in 0..100 {
            let got = timeout(self.wait, read_line(&mut self.io, &mut buf, 4096))
                .await
                .map_err(|_| Trouble("timed out waiting for a reply".into()))?
                .map_err(|e| Trouble(format!("reading a reply: {e}")))?;
            if got != Line::Complete {
                return Err(Trouble("connection closed or reply line too long".into()));
            }
            let l = trim_eol(&buf);
            let code = std::str::from_utf8(l.get(..3).unwrap_or_default())
                .ok()
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| Trouble("not an SMTP reply".into()))?;
            let rest = String::from_utf8_lossy(l.get(4..).unwrap_or_default());
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(rest.trim());
            if l.get(3) != Some(&b'-') {
                return Ok(Reply { code, text });
            }
        }
        Err(Trouble("reply too long".into()))
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
