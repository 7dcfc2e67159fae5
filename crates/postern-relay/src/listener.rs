//! The listeners' SMTP sessions: one per connection, for both listener roles. The reply to the
//! end of DATA is 250 only after the spool has the message durably.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::time::{timeout_at, Instant};

use postern_core::Address;

use crate::auth::AuthOutcome;
use crate::shared::Shared;
use crate::smtp::client::Probe;
use crate::smtp::command::{self, Command};
use crate::smtp::lines::{read_line, trim_eol, Line};
use crate::smtp::Io;
use crate::spool::{Entry, Origin, Recipient, Spool};
use crate::util::{rfc5322_date, unix_ms};

/// Which side of the gateway a listener faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Our mail server submits outbound mail here (any recipient; only from our networks).
    Internal,
    /// The internet delivers here (only recipients in our domains: never an open relay).
    Public,
}

/// The longest command line we read (RFC 5321 §4.5.3.1.4 says 512; extensions add parameters).
const MAX_COMMAND: usize = 2048;

struct Transaction {
    mail_from: Option<String>,
    envid: Option<String>,
    ret: Option<String>,
    rcpts: Vec<Recipient>,
}

/// Runs one SMTP session to its end. Errors on the socket end the session quietly: the client
/// went away, and nothing it sent was acknowledged unless it is on disk.
pub async fn session(stream: Box<dyn Io>, peer: SocketAddr, role: Role, shared: Arc<Shared>) {
    let metrics = shared.metrics.clone();
    metrics.connections.inc();
    let r = run(stream, peer, role, &shared).await;
    if let Err(e) = r {
        tracing::debug!(%peer, error = %e, "session ended");
    }
    metrics.connections.dec();
}

struct Conn {
    io: BufReader<Box<dyn Io>>,
    out: Vec<u8>,
}

impl Conn {
    fn reply(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// Sends queued replies, but only when the client has nothing more pipelined (RFC 2920).
    async fn flush_if_idle(&mut self) -> std::io::Result<()> {
        if self.io.buffer().is_empty() {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.io.get_mut().write_all(&self.out).await?;
            self.io.get_mut().flush().await?;
            self.out.clear();
        }
        Ok(())
    }
}

/// What a command left the session to do.
enum Next {
    /// Read the next command.
    Go,
    /// Read the next command; this one counts towards the error limit.
    Failed,
    /// Send the replies queued and close.
    Close,
    /// Close without another word (the client went away).
    Drop,
    /// Start TLS on the connection ([`Session::starttls`] takes the connection over).
    StartTls,
}

/// One connection's SMTP state between commands.
struct Session<'s> {
    shared: &'s Shared,
    role: Role,
    peer: SocketAddr,
    helo: Option<String>,
    tx: Option<Transaction>,
    tls: bool,
    authenticated: Option<String>,
    /// Who may authenticate here (the internal listener only).
    users: Option<Arc<crate::auth::Users>>,
}

async fn run(
    stream: Box<dyn Io>,
    peer: SocketAddr,
    role: Role,
    shared: &Shared,
) -> std::io::Result<()> {
    let cfg = &shared.settings;
    let mut c = Conn {
        io: BufReader::new(stream),
        out: Vec::new(),
    };
    let networks = match role {
        Role::Internal => &cfg.internal_networks,
        Role::Public => &cfg.public_networks,
    };
    if !networks.iter().any(|n| n.contains(peer.ip())) {
        c.reply(&format!(
            "554 5.7.1 {} does not accept mail from {}",
            cfg.hostname,
            peer.ip()
        ));
        return c.flush().await;
    }
    c.reply(&format!("220 {} ESMTP Postern", cfg.hostname));
    let mut s = Session {
        shared,
        role,
        peer,
        helo: None,
        tx: None,
        tls: false,
        authenticated: None,
        users: match role {
            Role::Internal => cfg.users.clone(),
            Role::Public => None,
        },
    };
    let command_timeout = Duration::from_secs(cfg.limits.command_timeout_secs);
    let mut errors = 0usize;
    let mut line = Vec::with_capacity(256);
    loop {
        c.flush_if_idle().await?;
        let deadline = Instant::now() + command_timeout;
        let got = match timeout_at(deadline, read_line(&mut c.io, &mut line, MAX_COMMAND)).await {
            Ok(r) => r?,
            Err(_) => {
                c.reply("421 4.4.2 timeout waiting for a command, closing");
                return c.flush().await;
            }
        };
        let cmd = match got {
            Line::Eof => return Ok(()),
            Line::TooLong => Command::Syntax("5.5.2 line too long"),
            Line::Complete => command::parse(trim_eol(&line)),
        };
        match s.command(&mut c, cmd).await? {
            Next::Go => {}
            Next::Failed => {
                errors += 1;
                if errors >= cfg.limits.max_errors {
                    c.reply("421 4.7.0 too many errors, closing");
                    return c.flush().await;
                }
            }
            Next::Close => return c.flush().await,
            Next::Drop => return Ok(()),
            Next::StartTls => match s.starttls(c).await? {
                Some(secure) => c = secure,
                // The handshake failed or timed out: nothing more to say in clear.
                None => return Ok(()),
            },
        }
    }
}

impl Session<'_> {
    /// Answers one command.
    async fn command(&mut self, c: &mut Conn, cmd: Command) -> std::io::Result<Next> {
        let cfg = &self.shared.settings;
        Ok(match cmd {
            Command::Ehlo(name) => {
                self.helo = Some(name);
                self.tx = None;
                c.reply(&format!("250-{} greets you", cfg.hostname));
                c.reply("250-PIPELINING");
                c.reply(&format!("250-SIZE {}", cfg.limits.max_message_size));
                c.reply("250-8BITMIME");
                c.reply("250-SMTPUTF8");
                c.reply("250-DSN");
                if !self.tls {
                    c.reply("250-STARTTLS");
                } else if self.users.is_some() {
                    c.reply("250-AUTH PLAIN LOGIN");
                }
                c.reply("250 ENHANCEDSTATUSCODES");
                Next::Go
            }
            Command::Helo(name) => {
                self.helo = Some(name);
                self.tx = None;
                c.reply(&format!("250 {}", cfg.hostname));
                Next::Go
            }
            Command::Mail(from, params) => self.mail(c, from, &params),
            Command::Rcpt(to, params) => self.rcpt(c, &to, &params).await?,
            Command::Data => self.data(c).await?,
            Command::Rset => {
                self.tx = None;
                c.reply("250 2.0.0 ok");
                Next::Go
            }
            Command::Noop => {
                c.reply("250 2.0.0 ok");
                Next::Go
            }
            Command::Quit => {
                c.reply("221 2.0.0 bye");
                Next::Close
            }
            Command::Vrfy => {
                c.reply("252 2.5.2 cannot verify, but will try delivery");
                Next::Go
            }
            Command::Help => {
                c.reply("214 2.0.0 see RFC 5321");
                Next::Go
            }
            Command::StartTls if self.tls => {
                c.reply("503 5.5.1 TLS already active");
                Next::Failed
            }
            Command::StartTls => Next::StartTls,
            Command::Auth(args) => self.auth(c, &args).await?,
            Command::Bdat => {
                c.reply("502 5.5.1 not offered here");
                Next::Failed
            }
            Command::Unknown(_) => {
                c.reply("500 5.5.2 unknown command");
                Next::Failed
            }
            Command::Syntax(msg) => {
                c.reply(&format!("501 {msg}"));
                Next::Failed
            }
        })
    }

    fn mail(
        &mut self,
        c: &mut Conn,
        from: Option<String>,
        params: &[(String, Option<String>)],
    ) -> Next {
        let cfg = &self.shared.settings;
        let refusal =
            if self.role == Role::Internal && cfg.auth_required && self.authenticated.is_none() {
                "530 5.7.0 authentication required".to_string()
            } else if self.helo.is_none() {
                "503 5.5.1 say EHLO first".to_string()
            } else if self.tx.is_some() {
                "503 5.5.1 nested MAIL command".to_string()
            } else {
                match mail(from, params, cfg.limits.max_message_size) {
                    Ok(t) => {
                        self.tx = Some(t);
                        c.reply("250 2.1.0 sender ok");
                        return Next::Go;
                    }
                    Err(reply) => reply,
                }
            };
        c.reply(&refusal);
        Next::Failed
    }

    async fn rcpt(
        &mut self,
        c: &mut Conn,
        to: &str,
        params: &[(String, Option<String>)],
    ) -> std::io::Result<Next> {
        let max = self.shared.settings.limits.max_recipients;
        let Some(t) = self.tx.as_mut() else {
            c.reply("503 5.5.1 need MAIL before RCPT");
            return Ok(Next::Failed);
        };
        if t.rcpts.len() >= max {
            c.reply("452 4.5.3 too many recipients");
            return Ok(Next::Go);
        }
        let r = match rcpt(to, params, self.role, self.shared) {
            Ok(r) => r,
            Err(reply) => {
                c.reply(&reply);
                return Ok(Next::Failed);
            }
        };
        Ok(
            match verified(self.shared, self.role, self.peer.ip(), to).await {
                Ok(()) => {
                    t.rcpts.push(r);
                    c.reply("250 2.1.5 recipient ok");
                    Next::Go
                }
                Err(Refused) => {
                    tracing::warn!(peer = %self.peer, "too many unknown recipients: disconnected");
                    c.reply("421 4.7.0 too many unknown recipients, try again later");
                    Next::Close
                }
                Err(Reply(reply)) => {
                    c.reply(&reply);
                    Next::Failed
                }
            },
        )
    }

    async fn data(&mut self, c: &mut Conn) -> std::io::Result<Next> {
        let shared = self.shared;
        let limits = &shared.settings.limits;
        let t = match self.tx.take() {
            Some(t) if !t.rcpts.is_empty() => t,
            Some(t) => {
                self.tx = Some(t);
                c.reply("554 5.5.1 no valid recipients");
                return Ok(Next::Failed);
            }
            None => {
                c.reply("503 5.5.1 need MAIL and RCPT before DATA");
                return Ok(Next::Failed);
            }
        };
        c.reply("354 end data with <CR><LF>.<CR><LF>");
        c.flush().await?;
        let data_deadline = Instant::now() + Duration::from_secs(limits.data_timeout_secs);
        // The message is read behind its trace field: stored as it was read.
        let id = Spool::new_id();
        let hello = self.helo.as_deref().unwrap_or("unknown");
        let start = trace_field(shared, self.peer, hello, self.tls, &id);
        let read = read_data(&mut c.io, limits.max_message_size, start);
        let body = match timeout_at(data_deadline, read).await {
            Ok(r) => r?,
            Err(_) => {
                c.reply("421 4.4.2 timeout during DATA, closing");
                return Ok(Next::Close);
            }
        };
        Ok(match body {
            Data::Eof => Next::Drop,
            Data::TooBig => {
                shared.metrics.rejected.inc();
                c.reply("552 5.3.4 message exceeds the size limit");
                Next::Go
            }
            Data::BareLf => {
                shared.metrics.rejected.inc();
                c.reply(
                    "521 5.5.2 bare CR, or bare LF next to the end of data, is not \
                     allowed (SMTP smuggling), closing",
                );
                Next::Close
            }
            Data::Message(bytes) => {
                let reply = store(shared, self.role, self.peer, t, id, bytes).await;
                c.reply(&reply);
                Next::Go
            }
        })
    }

    /// Says yes to STARTTLS and runs the handshake: the connection inside TLS, or `None`
    /// when the handshake failed or timed out.
    async fn starttls(&mut self, mut c: Conn) -> std::io::Result<Option<Conn>> {
        let cfg = &self.shared.settings;
        c.reply("220 2.0.0 ready to start TLS");
        c.flush().await?;
        // into_inner drops whatever the client pipelined after STARTTLS: those bytes came in
        // clear and must not be read as commands inside TLS (CVE-2011-0411).
        let plain = c.io.into_inner();
        let wait = Duration::from_secs(cfg.limits.command_timeout_secs);
        let stream = match tokio::time::timeout(wait, cfg.tls.acceptor.accept(plain)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                return Ok(None);
            }
            Err(_) => return Ok(None),
        };
        // RFC 3207 §4.2: the session starts again.
        self.tls = true;
        self.helo = None;
        self.tx = None;
        self.authenticated = None;
        Ok(Some(Conn {
            io: BufReader::new(Box::new(stream)),
            out: Vec::new(),
        }))
    }

    async fn auth(&mut self, c: &mut Conn, args: &str) -> std::io::Result<Next> {
        let cfg = &self.shared.settings;
        let peer = self.peer;
        let Some(users) = self.users.clone() else {
            c.reply("502 5.5.1 not offered here");
            return Ok(Next::Failed);
        };
        if !self.tls {
            c.reply("538 5.7.11 encryption required: say STARTTLS first");
            return Ok(Next::Failed);
        }
        if self.authenticated.is_some() || self.tx.is_some() || self.helo.is_none() {
            c.reply("503 5.5.1 AUTH not allowed now");
            return Ok(Next::Failed);
        }
        let wait = Duration::from_secs(cfg.limits.command_timeout_secs);
        let (user, password) = match auth_exchange(c, args, wait).await? {
            Ok(given) => given,
            Err(reply) => {
                c.reply(reply);
                return Ok(Next::Failed);
            }
        };
        let shown = postern_core::Printable(&user);
        Ok(
            match cfg
                .auth_limiter
                .check(&users, &user, peer.ip(), password)
                .await
            {
                AuthOutcome::Ok => {
                    tracing::info!(%peer, user = %shown, "authenticated");
                    self.authenticated = Some(user);
                    c.reply("235 2.7.0 authentication successful");
                    Next::Go
                }
                AuthOutcome::Busy => {
                    tracing::warn!(%peer, "authentication refused: too many password checks at once");
                    c.reply("454 4.7.0 temporary authentication failure, try again shortly");
                    Next::Failed
                }
                AuthOutcome::Locked => {
                    tracing::warn!(%peer, user = %shown, "authentication refused: locked after repeated failures");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    c.reply("454 4.7.0 too many failed attempts, try again later");
                    Next::Failed
                }
                AuthOutcome::Wrong => {
                    tracing::warn!(%peer, user = %shown, "authentication failed");
                    // A pause per failure makes guessing slow without holding a thread.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    c.reply("535 5.7.8 authentication credentials invalid");
                    Next::Failed
                }
            },
        )
    }
}

fn mail(
    from: Option<String>,
    params: &[(String, Option<String>)],
    max: usize,
) -> Result<Transaction, String> {
    let mut t = Transaction {
        mail_from: None,
        envid: None,
        ret: None,
        rcpts: Vec::new(),
    };
    if let Some(f) = from {
        if !command::is_mailbox(&f) {
            return Err("553 5.1.7 sender address syntax is not valid (RFC 5321 4.1.2)".into());
        }
        Address::new(&f).map_err(|_| "553 5.1.7 sender address is not valid".to_string())?;
        t.mail_from = Some(f);
    }
    for (k, v) in params {
        match (k.as_str(), v.as_deref()) {
            ("SIZE", Some(n)) => match n.parse::<usize>() {
                Ok(n) if n > max => return Err("552 5.3.4 message exceeds the size limit".into()),
                Ok(_) => {}
                Err(_) => return Err("501 5.5.4 bad SIZE value".into()),
            },
            ("BODY", Some(b))
                if b.eq_ignore_ascii_case("7BIT") || b.eq_ignore_ascii_case("8BITMIME") => {}
            ("SMTPUTF8", None) => {}
            ("RET", Some(r))
                if r.eq_ignore_ascii_case("FULL") || r.eq_ignore_ascii_case("HDRS") =>
            {
                t.ret = Some(r.to_ascii_uppercase());
            }
            ("ENVID", Some(e)) if e.len() <= 100 && command::is_xtext(e) => {
                t.envid = Some(e.to_string())
            }
            _ => return Err(format!("555 5.5.4 unsupported parameter {k}")),
        }
    }
    Ok(t)
}

fn rcpt(
    to: &str,
    params: &[(String, Option<String>)],
    role: Role,
    shared: &Shared,
) -> Result<Recipient, String> {
    if !command::is_mailbox(to) {
        return Err("553 5.1.3 recipient address syntax is not valid (RFC 5321 4.1.2)".into());
    }
    let addr = Address::new(to).map_err(|_| "553 5.1.3 recipient address is not valid")?;
    if role == Role::Public && !shared.directory.current().is_ours(addr.domain()) {
        return Err("550 5.7.1 relaying denied".into());
    }
    let mut r = Recipient::new(to.to_string());
    for (k, v) in params {
        match (k.as_str(), v.as_deref()) {
            ("NOTIFY", Some(n)) if n.len() <= 40 => r.notify = Some(n.to_ascii_uppercase()),
            ("ORCPT", Some(o)) if o.len() <= 500 && command::is_xtext(o) => {
                r.orcpt = Some(o.to_string())
            }
            _ => return Err(format!("555 5.5.4 unsupported parameter {k}")),
        }
    }
    Ok(r)
}

/// Why a recipient was not taken.
enum NotTaken {
    /// Say this and go on.
    Reply(String),
    /// The client asked about too many unknown recipients: 421 and close.
    Refused,
}
use NotTaken::{Refused, Reply};

/// On the public listener, asks our mail server whether it takes `to` (when configured), within
/// the client's allowance of unknown-recipient answers ([`crate::smtp::probes`]).
async fn verified(
    shared: &Shared,
    role: Role,
    ip: std::net::IpAddr,
    to: &str,
) -> Result<(), NotTaken> {
    let (Role::Public, Some(v)) = (role, &shared.settings.verifier) else {
        return Ok(());
    };
    let unknown = &shared.settings.unknown_recipients;
    if unknown.refused(ip) {
        return Err(Refused);
    }
    let s = &shared.settings;
    let wait = s.delivery_timeout.min(Duration::from_secs(30));
    match v.check(to, &s.hostname, wait, &s.tls).await {
        Probe::Accepted => Ok(()),
        Probe::Rejected(_) => match unknown.unknown(ip) {
            crate::smtp::probes::Probe::Answer => {
                Err(Reply("550 5.1.1 recipient unknown here".into()))
            }
            crate::smtp::probes::Probe::Slow(pause) => {
                tokio::time::sleep(pause).await;
                Err(Reply("550 5.1.1 recipient unknown here".into()))
            }
            crate::smtp::probes::Probe::Refuse => Err(Refused),
        },
        Probe::Unknown(why) => {
            tracing::warn!(error = %postern_core::Printable(&why), "recipient verification failed; deferring");
            Err(Reply(
                "450 4.1.1 recipient cannot be verified now, try again later".into(),
            ))
        }
    }
}

enum Data {
    Message(Vec<u8>),
    TooBig,
    BareLf,
    Eof,
}

/// Reads DATA up to the lone "." line: dot-unstuffed, every line ending CRLF. Past the size
/// limit the rest is read and dropped so the session can go on.
///
/// Lines ending in a bare LF are taken as if they ended in CRLF (what many clients send, `curl
/// --upload-file` among them; Postfix 3.9's `smtpd_forbid_bare_newline = normalize`). What makes
/// SMTP smuggling possible stays refused: the end of data is only `<CR><LF>.<CR><LF>`, and a "."
/// line with a bare LF on either side of it, or a bare CR anywhere, ends the session, since
/// another server may read such a line as the end of the message and the rest as new commands.
///
/// The message is appended to `msg` (what goes before it: the trace field); `max` bounds what
/// is appended.
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
    mut msg: Vec<u8>,
) -> std::io::Result<Data> {
    let max = max.saturating_add(msg.len());
    let mut line = Vec::with_capacity(1024);
    let mut too_big = false;
    // The 354 came after a CRLF-terminated DATA command.
    let mut after_crlf = true;
    loop {
        let room = if too_big {
            1 << 16
        } else {
            max + 3 - msg.len()
        };
        match read_line(r, &mut line, room.max(1 << 16)).await? {
            Line::Eof => return Ok(Data::Eof),
            Line::TooLong => too_big = true,
            Line::Complete => {
                let crlf = line.ends_with(b"\r\n");
                let text = line
                    .strip_suffix(b"\r\n")
                    .or_else(|| line.strip_suffix(b"\n"))
                    .unwrap_or(&line);
                if memchr::memchr(b'\r', text).is_some() {
                    return Ok(Data::BareLf);
                }
                if text == b"." {
                    if !crlf || !after_crlf {
                        return Ok(Data::BareLf);
                    }
                    return Ok(if too_big {
                        Data::TooBig
                    } else {
                        Data::Message(msg)
                    });
                }
                after_crlf = crlf;
                if too_big {
                    continue;
                }
                let content = text.strip_prefix(b".").unwrap_or(text);
                msg.extend_from_slice(content);
                msg.extend_from_slice(b"\r\n");
                if msg.len() > max {
                    too_big = true;
                    msg = Vec::new();
                }
            }
        }
    }
}

/// Our `Received` field for message `id`, in a buffer with room for a typical message behind
/// it (the buffer grows for larger ones).
fn trace_field(shared: &Shared, peer: SocketAddr, helo: &str, tls: bool, id: &str) -> Vec<u8> {
    let helo: String = helo
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect();
    let field = format!(
        "Received: from {helo} ({ip})\r\n\tby {host} (Postern) with {proto} id {id};\r\n\t{date}\r\n",
        proto = if tls { "ESMTPS" } else { "ESMTP" },
        ip = peer.ip(),
        host = shared.settings.hostname,
        date = rfc5322_date(unix_ms() / 1000),
    );
    let mut buf = Vec::with_capacity(field.len() + 16 * 1024);
    buf.extend_from_slice(field.as_bytes());
    buf
}

/// Spools the message (its trace field first) and returns the reply for the end of DATA.
async fn store(
    shared: &Shared,
    role: Role,
    peer: SocketAddr,
    t: Transaction,
    id: String,
    data: Vec<u8>,
) -> String {
    let now = unix_ms();
    let origin = match role {
        Role::Internal => Origin::Internal,
        Role::Public => Origin::Public,
    };
    let mut entry = Entry::new(
        id.clone(),
        origin,
        &peer.ip().to_string(),
        t.mail_from,
        t.rcpts,
        data.len() as u64,
    );
    entry.envid = t.envid;
    entry.ret = t.ret;
    let spool = shared.spool.clone();
    let size = data.len();
    let stored = tokio::task::spawn_blocking(move || spool.accept(&entry, &data)).await;
    match stored {
        Ok(Ok(())) => {
            shared.metrics.received.inc();
            shared.metrics.queue_depth.inc();
            tracing::info!(queue_id = %id, client = %peer.ip(), size, role = ?role, "accepted");
            shared.scheduler.submit(&id, now);
            format!("250 2.0.0 Ok: queued as {id}")
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "spool write failed; message refused with 451");
            "451 4.3.0 cannot store the message now, try again later".into()
        }
        Err(_) => "451 4.3.0 cannot store the message now, try again later".into(),
    }
}

/// Runs the AUTH PLAIN or LOGIN exchange; returns the user and password, or the reply for a
/// malformed or cancelled exchange.
async fn auth_exchange(
    c: &mut Conn,
    args: &str,
    wait: Duration,
) -> std::io::Result<Result<(String, Vec<u8>), &'static str>> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut parts = args.split_ascii_whitespace();
    let mech = parts.next().unwrap_or("").to_ascii_uppercase();
    let initial = parts.next().map(str::to_string);
    let mut line = Vec::new();
    // Reads one client response line after a 334 challenge; "*" cancels (RFC 4954 §4).
    let mut ask = async |c: &mut Conn, challenge: &str| -> std::io::Result<Option<Vec<u8>>> {
        c.reply(&format!("334 {challenge}"));
        c.flush().await?;
        let got = match timeout_at(
            Instant::now() + wait,
            read_line(&mut c.io, &mut line, MAX_COMMAND),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => return Ok(None),
        };
        if got != Line::Complete {
            return Ok(None);
        }
        let l = trim_eol(&line);
        if l == b"*" {
            return Ok(None);
        }
        Ok(b64.decode(l).ok())
    };
    match mech.as_str() {
        "PLAIN" => {
            let resp = match initial {
                Some(i) if i == "=" => Some(Vec::new()),
                Some(i) => b64.decode(i.as_bytes()).ok(),
                None => ask(c, "").await?,
            };
            let Some(resp) = resp else {
                return Ok(Err("501 5.5.2 cancelled or not base64"));
            };
            let mut f = resp.split(|b| *b == 0);
            let (_authzid, user, pass) = (f.next(), f.next(), f.next());
            match (user, pass, f.next()) {
                (Some(u), Some(p), None) => match std::str::from_utf8(u) {
                    Ok(u) if !u.is_empty() => Ok(Ok((u.to_string(), p.to_vec()))),
                    _ => Ok(Err("501 5.5.2 malformed PLAIN response")),
                },
                _ => Ok(Err("501 5.5.2 malformed PLAIN response")),
            }
        }
        "LOGIN" => {
            let user = match initial {
                Some(i) => b64.decode(i.as_bytes()).ok(),
                None => ask(c, "VXNlcm5hbWU6").await?,
            };
            let Some(user) = user.and_then(|u| String::from_utf8(u).ok()) else {
                return Ok(Err("501 5.5.2 cancelled or not base64"));
            };
            let Some(pass) = ask(c, "UGFzc3dvcmQ6").await? else {
                return Ok(Err("501 5.5.2 cancelled or not base64"));
            };
            Ok(Ok((user, pass)))
        }
        _ => Ok(Err("504 5.5.4 unrecognized authentication mechanism")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(input: &[u8]) -> Data {
        data_behind(b"", input, 1 << 20)
    }

    /// DATA read behind `prefix`, at most `max` bytes of message.
    fn data_behind(prefix: &[u8], input: &[u8], max: usize) -> Data {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut r = input;
        rt.block_on(read_data(&mut r, max, prefix.to_vec()))
            .unwrap()
    }

    #[test]
    fn the_message_is_read_behind_its_trace_field_and_only_the_message_counts_to_the_limit() {
        let field = b"Received: x\r\n";
        let Data::Message(m) = data_behind(field, b"ab\r\ncd\r\n.\r\n", 8) else {
            panic!("eight bytes fit a limit of eight");
        };
        assert_eq!(m, b"Received: x\r\nab\r\ncd\r\n");
        assert!(matches!(
            data_behind(field, b"ab\r\ncde\r\n.\r\n", 8),
            Data::TooBig
        ));
    }

    #[test]
    fn bare_lf_lines_are_normalised_and_only_crlf_dot_crlf_ends_data() {
        // What `curl --upload-file` sends for a file with LF line ends.
        let Data::Message(m) = data(b"Subject: x\n\nline one\n..dot\nend\n\r\n.\r\n") else {
            panic!("LF lines are accepted");
        };
        assert_eq!(m, b"Subject: x\r\n\r\nline one\r\n.dot\r\nend\r\n\r\n");
        let Data::Message(m) = data(b"a\r\n.\r\n") else {
            panic!()
        };
        assert_eq!(m, b"a\r\n");
    }

    #[test]
    fn smuggling_variants_end_the_session() {
        for input in [
            &b"a\n.\nMAIL FROM:<e@x.test>\r\n.\r\n"[..],
            b"a\n.\r\nMAIL FROM:<e@x.test>\r\n.\r\n",
            b"a\r\n.\nMAIL FROM:<e@x.test>\r\n.\r\n",
            b"a\r.\r\nMAIL FROM:<e@x.test>\r\n.\r\n",
            b"a\r\n.\r\r\nMAIL FROM:<e@x.test>\r\n.\r\n",
            b"a\rb\r\n.\r\n",
        ] {
            assert!(
                matches!(data(input), Data::BareLf),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
