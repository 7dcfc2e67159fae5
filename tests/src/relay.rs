//! Helpers for relay tests over real TCP: Postfix's `smtp-sink` as the next hop, a private
//! Postfix instance in front, and a plain blocking SMTP client for sending and for abuse.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A free loopback port (bound and released; fine for tests on one machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `f` every 50 ms until it is true or `limit` passes; returns whether it became true.
pub fn wait_until(limit: Duration, f: impl FnMut() -> bool) -> bool {
    wait_until_every(limit, Duration::from_millis(50), f)
}

/// [`wait_until`], asking every `poll` (a load bench measures to the millisecond).
pub fn wait_until_every(limit: Duration, poll: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(poll);
    }
}

fn is_root() -> bool {
    // `id -u` rather than libc: the tests crate forbids unsafe code.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Waits (up to 10 s) until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16) {
    assert!(
        wait_until(Duration::from_secs(10), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "nothing listens on 127.0.0.1:{port}"
    );
}

/// Postfix's `smtp-sink`, dumping every message it accepts into a folder (or, for load
/// benches, only counting them).
pub struct SmtpSink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
    /// Messages received, from smtp-sink's own counter (`-c`), when it keeps no dumps.
    counted: Option<Arc<AtomicUsize>>,
}

impl SmtpSink {
    /// Starts a sink on a free port; `extra` are further smtp-sink options (e.g. `-f RCPT`).
    pub fn start(extra: &[&str]) -> SmtpSink {
        Self::start_on(free_port(), extra)
    }

    /// Starts a sink on `port`.
    pub fn start_on(port: u16, extra: &[&str]) -> SmtpSink {
        let dir = tempfile::tempdir().expect("tempdir");
        let template = format!("{}/%M%S.", dir.path().display());
        let mut args = extra.to_vec();
        args.extend(["-d", &template]);
        let child = spawn_sink(port, &args, Stdio::null());
        SmtpSink {
            port,
            dir,
            child,
            counted: None,
        }
    }

    /// Starts a sink that keeps nothing and counts the messages it has received (the ".",
    /// from smtp-sink's `-c` counters), for load benches: no file per message to write, and a
    /// count that is exact at once, where dumps are only counted once they have settled.
    /// [`SmtpSink::messages`] is empty for such a sink.
    pub fn counting() -> SmtpSink {
        let port = free_port();
        let mut child = spawn_sink(port, &["-c"], Stdio::piped());
        let out = child.stdout.take().expect("piped stdout");
        let counted = Arc::new(AtomicUsize::new(0));
        let c = counted.clone();
        // smtp-sink rewrites one line, `sess=N quit=N mesg=N` ended by CR, at every change.
        std::thread::spawn(move || {
            for rec in BufReader::new(out).split(b'\r').map_while(|r| r.ok()) {
                let text = String::from_utf8_lossy(&rec);
                if let Some(n) = text
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("mesg="))
                    .and_then(|n| n.parse().ok())
                {
                    c.store(n, Ordering::Release);
                }
            }
        });
        SmtpSink {
            port,
            dir: tempfile::tempdir().expect("tempdir"),
            child,
            counted: Some(counted),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How many messages arrived so far (cheap: counts files, reads none).
    pub fn count(&self) -> usize {
        if let Some(c) = &self.counted {
            return c.load(Ordering::Acquire);
        }
        self.complete_files().len()
    }

    /// Dump files smtp-sink has finished: it writes a dump as the transaction goes, so a file
    /// still changing in the last 300 ms may be a message half received.
    fn complete_files(&self) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(self.dir.path()) else {
            return Vec::new();
        };
        let now = std::time::SystemTime::now();
        let mut paths: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age >= Duration::from_millis(300))
            })
            .map(|e| e.path())
            .collect();
        paths.sort();
        paths
    }

    /// Every message received so far: (envelope recipients, message without the sink's own
    /// `X-*-Args`/`X-Client-*` lines and `Received` field).
    pub fn messages(&self) -> Vec<(Vec<String>, Vec<u8>)> {
        let mut out = Vec::new();
        for p in self.complete_files() {
            let Ok(raw) = std::fs::read(&p) else { continue };
            out.push(split_dump(&raw));
        }
        out
    }
}

/// Splits an smtp-sink dump into its recipients and the message as the sink got it.
fn split_dump(raw: &[u8]) -> (Vec<String>, Vec<u8>) {
    let mut rcpts = Vec::new();
    let mut rest = raw;
    loop {
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        let text = String::from_utf8_lossy(line);
        if let Some(r) = text.strip_prefix("X-Rcpt-Args: ") {
            let r = r.trim();
            let r = r.split_whitespace().next().unwrap_or("");
            rcpts.push(r.trim_matches(['<', '>']).to_string());
        } else if !(text.starts_with("X-Client-")
            || text.starts_with("X-Helo-Args")
            || text.starts_with("X-Mail-Args"))
        {
            break;
        }
        rest = &rest[end..];
    }
    // The sink's own Received field (two or three lines) comes next.
    if rest.starts_with(b"Received: ") {
        let mut i = rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        while i < rest.len() && (rest[i] == b' ' || rest[i] == b'\t') {
            i += rest[i..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(rest.len() - i, |j| j + 1);
        }
        rest = &rest[i..];
    }
    (rcpts, rest.to_vec())
}

/// Starts smtp-sink on 127.0.0.1:`port` with `args` and waits until it listens.
fn spawn_sink(port: u16, args: &[&str], stdout: Stdio) -> Child {
    let mut cmd = Command::new("smtp-sink");
    if is_root() {
        cmd.args(["-u", "root"]);
    }
    cmd.args(args)
        .args([&format!("127.0.0.1:{port}"), "256"])
        .stdout(stdout)
        .stderr(Stdio::null());
    let child = cmd
        .spawn()
        .expect("smtp-sink (Debian package postfix) must be installed: bash scripts/test does it");
    wait_for_port(port);
    child
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Postfix instance on loopback (needs root, as Postfix's master does), relaying
/// everything it receives to `relayhost`.
pub struct Postfix {
    /// Its SMTP port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Postfix {
    /// Configures and starts an instance that relays all mail to `127.0.0.1:relay_port`.
    pub fn start(relay_port: u16) -> Postfix {
        Self::start_with(relay_port, "")
    }

    /// As [`Postfix::start`], with further `main.cf` lines (later lines win in Postfix).
    pub fn start_with(relay_port: u16, extra_main_cf: &str) -> Postfix {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let port = free_port();
        for sub in ["conf", "queue", "data"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        let status = Command::new("chown")
            .args(["postfix", &d.join("data").display().to_string()])
            .status()
            .expect("chown");
        assert!(
            status.success(),
            "chown postfix: is the postfix package installed?"
        );
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {d}/queue\n\
             data_directory = {d}/data\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             myhostname = postfix.localhost\n\
             mydestination =\n\
             relayhost = [127.0.0.1]:{relay_port}\n\
             mynetworks = 127.0.0.0/8\n\
             smtpd_relay_restrictions = permit_mynetworks, reject\n\
             maillog_file = {d}/maillog\n\
             maillog_file_prefixes = {d}\n\
             alias_maps =\n\
             alias_database =\n\
             message_size_limit = 52428800\n\
             default_process_limit = 50\n\
             smtp_destination_concurrency_limit = 20\n\
             default_destination_concurrency_limit = 20\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = 1s\n\
             maximal_backoff_time = 2s\n\
             smtp_tls_loglevel = 1\n\
             smtpd_tls_loglevel = 1\n\
             smtp_tls_security_level = may\n\
             {extra_main_cf}\n",
            d = d.display()
        );
        std::fs::write(d.join("conf/main.cf"), main_cf).expect("main.cf");
        // Everything unchrooted: the queue is a temporary folder, not a chroot jail.
        let master_cf = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n\
             pickup unix n - n 60 1 pickup\n\
             tlsmgr unix - - n 1000? 1 tlsmgr\n\
             cleanup unix n - n - 0 cleanup\n\
             qmgr unix n - n 300 1 qmgr\n\
             rewrite unix - - n - - trivial-rewrite\n\
             bounce unix - - n - 0 bounce\n\
             defer unix - - n - 0 bounce\n\
             trace unix - - n - 0 bounce\n\
             verify unix - - n - 1 verify\n\
             flush unix n - n 1000? 0 flush\n\
             proxymap unix - - n - - proxymap\n\
             proxywrite unix - - n - 1 proxymap\n\
             smtp unix - - n - - smtp\n\
             relay unix - - n - - smtp\n\
             showq unix n - n - - showq\n\
             error unix - - n - - error\n\
             retry unix - - n - - error\n\
             discard unix - - n - - discard\n\
             anvil unix - - n - 1 anvil\n\
             scache unix - - n - 1 scache\n\
             postlog unix-dgram n - n - 1 postlogd\n"
        );
        std::fs::write(d.join("conf/master.cf"), master_cf).expect("master.cf");
        let out = Command::new("postfix")
            .args(["-c", &d.join("conf").display().to_string(), "start"])
            .output()
            .expect(
                "postfix (Debian package postfix) must be installed: bash scripts/test does it",
            );
        assert!(
            out.status.success(),
            "postfix start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        wait_for_port(port);
        Postfix { port, dir }
    }

    /// Postfix's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// The configuration folder (for `postfix -c`).
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .args(["-c", &self.conf().display().to_string(), "stop"])
            .output();
    }
}

/// A blocking SMTP client session, line by line (for tests that check each reply).
pub struct Client {
    r: BufReader<TcpStream>,
}

impl Client {
    /// Connects and reads the greeting; returns it too.
    pub fn connect(addr: &str) -> std::io::Result<(Client, String)> {
        Client::with_stream(TcpStream::connect(addr)?)
    }

    /// Connects from the local address `source` (another client, as the server counts them).
    pub fn connect_from(addr: &str, source: std::net::IpAddr) -> std::io::Result<Client> {
        Client::with_stream(crate::http::connect_from(addr, source)?).map(|(c, _)| c)
    }

    fn with_stream(s: TcpStream) -> std::io::Result<(Client, String)> {
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut c = Client {
            r: BufReader::new(s),
        };
        let g = c.reply()?;
        Ok((c, g))
    }

    /// Sends raw bytes.
    pub fn raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.r.get_mut().write_all(bytes)
    }

    /// Reads one (multi-line) reply; its lines joined with '\n'.
    pub fn reply(&mut self) -> std::io::Result<String> {
        let mut all = String::new();
        loop {
            let mut l = String::new();
            if self.r.read_line(&mut l)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("closed after {all:?}"),
                ));
            }
            all.push_str(l.trim_end());
            if l.as_bytes().get(3) != Some(&b'-') {
                return Ok(all);
            }
            all.push('\n');
        }
    }

    /// Sends a command line and reads the reply.
    pub fn cmd(&mut self, line: &str) -> std::io::Result<String> {
        self.raw(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// One whole transaction; returns the reply to the end of DATA (or the first failure).
    pub fn send(&mut self, from: &str, rcpts: &[&str], data: &[u8]) -> std::io::Result<String> {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"))?;
        if !r.starts_with('2') {
            return Ok(r);
        }
        for to in rcpts {
            let r = self.cmd(&format!("RCPT TO:<{to}>"))?;
            if !r.starts_with('2') {
                return Ok(r);
            }
        }
        let r = self.cmd("DATA")?;
        if !r.starts_with("354") {
            return Ok(r);
        }
        let mut body = Vec::with_capacity(data.len() + 8);
        for line in data.split_inclusive(|b| *b == b'\n') {
            if line.starts_with(b".") {
                body.push(b'.');
            }
            body.extend_from_slice(line);
        }
        if !body.ends_with(b"\r\n") {
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b".\r\n");
        self.raw(&body)?;
        self.reply()
    }
}

/// Connects, says EHLO, sends one message and quits; returns the end-of-DATA reply.
pub fn send_mail(addr: &str, from: &str, rcpts: &[&str], data: &[u8]) -> std::io::Result<String> {
    let (mut c, _) = Client::connect(addr)?;
    c.cmd("EHLO test.localhost")?;
    let r = c.send(from, rcpts, data)?;
    let _ = c.cmd("QUIT");
    Ok(r)
}

/// A CRLF test message with a Message-ID, for tests that track messages one by one.
pub fn tracked_message(id: &str, to: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Dr Ada <ada@clinic.example>\r\nTo: {to}\r\nSubject: lab results {id}\r\n\
         Message-ID: <{id}@clinic.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The Message-ID of a message (without angle brackets), if any.
pub fn message_id(msg: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(msg);
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("message-id:") {
            let start = line.len() - v.len();
            let value = line.get(start..).unwrap_or_default();
            return Some(value.trim().trim_matches(['<', '>']).to_string());
        }
    }
    None
}

/// Writes a partner directory TOML into `dir` and returns its path.
pub fn write_directory(dir: &Path, toml: &str) -> PathBuf {
    let p = dir.join("directory.toml");
    std::fs::write(&p, toml).expect("write directory");
    p
}

/// A loopback-only relay configuration for tests: both listeners on 127.0.0.1 (a free port
/// each), the spool under `dir/data`, the directory at `dir/directory.toml`, a retry every
/// second for an hour, no metrics endpoint.
pub fn test_config(dir: &Path, outbound: &str, inbound: &str) -> postern_relay::RelayConfig {
    use postern_relay::config::{ListenerConfig, NextHopConfig, RetryConfig};
    postern_relay::RelayConfig {
        data_dir: dir.join("data"),
        directory: dir.join("directory.toml"),
        internal: ListenerConfig {
            listen: "127.0.0.1:0".into(),
            networks: vec!["127.0.0.0/8".into()],
            proxy_from: Vec::new(),
        },
        public: ListenerConfig {
            listen: "127.0.0.1:0".into(),
            networks: vec!["127.0.0.0/8".into()],
            proxy_from: Vec::new(),
        },
        outbound: NextHopConfig {
            relayhost: outbound.into(),
            verify_recipients: None,
        },
        inbound: NextHopConfig {
            relayhost: inbound.into(),
            verify_recipients: None,
        },
        retry: RetryConfig {
            schedule: vec!["1s".into()],
            give_up_after: "1h".into(),
        },
        metrics: String::new(),
        ..postern_relay::RelayConfig::default()
    }
}

/// A multi-threaded runtime for a relay running inside a test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Writes the directory most relay tests use: our domain `clinic.example` and one required
/// S/MIME partner, `smime-partner.test`, with `partner_cert`, declared its gateway key (it signs
/// for the whole domain), by the fingerprint line `openssl x509 -fingerprint -sha256` prints.
pub fn smime_partner_directory(dir: &Path, partner_cert: &Path) -> PathBuf {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(partner_cert)
        .output()
        .expect("openssl");
    let fingerprint = String::from_utf8_lossy(&out.stdout).trim().to_string();
    write_directory(
        dir,
        &format!(
            "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"smime-partner.test\"\n\
             standards = [\"smime\"]\npolicy = \"required\"\nsmime_certificates = [\"{}\"]\n\
             gateway_keys = [\"{fingerprint}\"]\n",
            partner_cert.display()
        ),
    )
}

/// Submits one tracked message from ada@clinic.example and checks the 250.
pub fn submit(addr: &str, id: &str, to: &str, body: &str) {
    let m = tracked_message(id, to, body);
    let r = send_mail(addr, "ada@clinic.example", &[to], &m).expect("an SMTP session");
    assert!(r.starts_with("250"), "{id}: {r}");
}
