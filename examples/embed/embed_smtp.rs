//! A minimal SMTP server on tokio that embeds the Postern gateway.
//!
//! ```text
//! cargo run -p postern-examples --example embed_smtp -- directory.toml out/ [127.0.0.1:2525]
//! ```
//!
//! It works as a before-queue filter: the reply to DATA is the gateway's verdict for the whole
//! transaction (a hold answers 4xx and the client retries; a refusal answers 5xx and the
//! client bounces), so it never owes anyone a DSN. Accepted copies are written to `out/` —
//! where a real MTA would queue them — and fsynced before the 250. The relay in
//! `postern-relay` is the full version: per-recipient outcomes, a durable spool, retries, DSNs.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use postern_core::Address;
use postern_router::{CheckedDirectory, Envelope, Gateway, Outgoing};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[path = "outbox.rs"]
mod outbox;

const MAX_LINE: u64 = 1000;
const MAX_MESSAGE: usize = 25 << 20;

struct Server {
    gateway: Gateway,
    directory: CheckedDirectory,
    out: PathBuf,
    accepted: AtomicUsize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [directory, out, rest @ ..] = args.as_slice() else {
        return Err("usage: embed_smtp DIRECTORY.toml OUT-DIR [LISTEN]".into());
    };
    // The defaults: S/MIME and OpenPGP, the built-in DLP policy on what leaves in clear.
    let gateway = Gateway::builder().build()?;
    // Loaded and checked with the gateway's backends: a partner entry holding another
    // domain's certificate refuses the start instead of being sealed to.
    let directory = gateway.load_directory(Path::new(directory))?;
    let server = Arc::new(Server {
        gateway,
        directory,
        out: PathBuf::from(out),
        accepted: AtomicUsize::new(0),
    });
    let listener = TcpListener::bind(rest.first().map_or("127.0.0.1:2525", |s| s.as_str())).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = session(stream, &server).await {
                eprintln!("session ended: {e}");
            }
        });
    }
}

async fn session(stream: TcpStream, server: &Server) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 localhost Postern embedding example\r\n")
        .await?;
    let mut from: Option<Option<Address>> = None;
    let mut rcpts: Vec<Address> = Vec::new();
    loop {
        let Some(line) = read_line(&mut r).await? else {
            return Ok(());
        };
        let line = String::from_utf8_lossy(&line);
        let cmd = line.trim_end();
        let verb = cmd.get(..4).unwrap_or(cmd).to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" | "HELO" => "250 localhost".to_string(),
            "MAIL" => match path(cmd, "MAIL FROM:") {
                Some("") => {
                    from = Some(None);
                    "250 2.1.0 ok".into()
                }
                Some(p) => match Address::new(p) {
                    Ok(a) => {
                        from = Some(Some(a));
                        "250 2.1.0 ok".into()
                    }
                    Err(_) => "501 5.1.7 bad sender address".into(),
                },
                None => "501 5.5.4 syntax: MAIL FROM:<address>".into(),
            },
            "RCPT" if from.is_none() => "503 5.5.1 MAIL first".into(),
            "RCPT" => match path(cmd, "RCPT TO:").map(Address::new) {
                Some(Ok(a)) if rcpts.len() < 100 => {
                    rcpts.push(a);
                    "250 2.1.5 ok".into()
                }
                Some(Ok(_)) => "452 4.5.3 too many recipients".into(),
                _ => "501 5.1.3 bad recipient address".into(),
            },
            "DATA" if rcpts.is_empty() => "503 5.5.1 RCPT first".into(),
            "DATA" => {
                w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let reply = match read_data(&mut r).await? {
                    Some(data) => {
                        let envelope = Envelope {
                            mail_from: from.clone().flatten(),
                            rcpt_to: std::mem::take(&mut rcpts),
                        };
                        let plan = server
                            .gateway
                            .outbound(&server.directory, Outgoing::new(&envelope, &data))
                            .await;
                        outbox::answer(&server.out, &server.accepted, &plan, &data)?.to_string()
                    }
                    None => "552 5.3.4 message too big".into(),
                };
                (from, rcpts) = (None, Vec::new());
                reply
            }
            "RSET" => {
                (from, rcpts) = (None, Vec::new());
                "250 2.0.0 ok".into()
            }
            "NOOP" => "250 2.0.0 ok".into(),
            "QUIT" => {
                w.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 command not implemented".into(),
        };
        w.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// The address between `<` and `>` after `prefix` (case-insensitive).
fn path<'a>(cmd: &'a str, prefix: &str) -> Option<&'a str> {
    let head = cmd.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = cmd.get(prefix.len()..)?.trim_start().strip_prefix('<')?;
    rest.split_once('>').map(|(p, _)| p)
}

/// One line, at most `MAX_LINE` bytes (a longer one is cut: no unbounded buffer).
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = r.take(MAX_LINE).read_until(b'\n', &mut line).await?;
    Ok((n > 0).then_some(line))
}

/// The message up to the lone dot, dot-unstuffed; `None` if it grew past `MAX_MESSAGE` (the
/// rest is read and dropped so the session stays in step).
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut too_big = false;
    // A line longer than MAX_LINE comes in pieces: only a piece that starts a line can be the
    // end mark or carry a stuffed dot.
    let mut line_start = true;
    loop {
        let Some(line) = read_line(r).await? else {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        };
        let starts = std::mem::replace(&mut line_start, line.ends_with(b"\n"));
        if starts && (line == b".\r\n" || line == b".\n") {
            return Ok((!too_big).then_some(data));
        }
        let line = match line.strip_prefix(b".") {
            Some(rest) if starts => rest,
            _ => &line,
        };
        too_big |= data.len() + line.len() > MAX_MESSAGE;
        if !too_big {
            data.extend_from_slice(line);
        }
    }
}
