//! The Postern gateway in a thread-per-connection SMTP server with no async runtime:
//! mailin-embedded speaks SMTP on its own threads, and each message's decision runs on the
//! session's thread: `Gateway::look_up` finds the partners' keys (through
//! `postern_core::block_on`), then `Gateway::outbound_with` inspects and seals, synchronously
//! (the backends and the built-in DLP compute; no tokio anywhere in this program).
//!
//! ```text
//! cargo run -p postern-examples --example threaded_smtp -- directory.toml out/ [127.0.0.1:2526]
//! ```
//!
//! Like `embed_smtp`, a before-queue filter: the reply to DATA is the gateway's verdict, and
//! accepted copies are written to `out/` and fsynced before the 250.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use mailin_embedded::response::OK;
use mailin_embedded::{Handler, Response, Server};
use postern_core::Address;
use postern_router::{CheckedDirectory, Envelope, Gateway, Outgoing};

#[path = "outbox.rs"]
mod outbox;

const MAX_MESSAGE: usize = 25 << 20;
const MAX_RECIPIENTS: usize = 100;

/// What every session shares.
struct Shared {
    gateway: Gateway,
    directory: CheckedDirectory,
    out: PathBuf,
    accepted: AtomicUsize,
}

/// One session's transaction (mailin-embedded clones the handler for each connection).
#[derive(Clone)]
struct Filter {
    shared: Arc<Shared>,
    from: Option<Address>,
    rcpts: Vec<Address>,
    data: Vec<u8>,
    too_big: bool,
}

fn reply(code: u16, text: &str) -> Response {
    Response::custom(code, text.to_string())
}

/// The reply to the end of DATA. The transaction is over after it whatever it says (RFC 5321
/// section 4.1.1.4), but mailin stays in its data state after a reply it counts as an error,
/// and then reads the next commands as message text: the client's RSET went unanswered. So
/// this reply is not counted as one; its code still says 4xx or 5xx.
fn end_of_data(code: u16, text: &str) -> Response {
    let mut r = reply(code, text);
    r.is_error = false;
    r
}

impl Handler for Filter {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        (self.rcpts, self.data, self.too_big) = (Vec::new(), Vec::new(), false);
        if from.is_empty() {
            self.from = None;
            return OK;
        }
        match Address::new(from) {
            Ok(a) => {
                self.from = Some(a);
                OK
            }
            Err(_) => reply(501, "5.1.7 bad sender address"),
        }
    }

    fn rcpt(&mut self, to: &str) -> Response {
        match Address::new(to) {
            Ok(_) if self.rcpts.len() >= MAX_RECIPIENTS => reply(452, "4.5.3 too many recipients"),
            Ok(a) => {
                self.rcpts.push(a);
                OK
            }
            Err(_) => reply(501, "5.1.3 bad recipient address"),
        }
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        // Bounded: the rest of an oversized message is read and dropped.
        self.too_big |= self.data.len() + buf.len() > MAX_MESSAGE;
        if !self.too_big {
            self.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let data = std::mem::take(&mut self.data);
        if std::mem::take(&mut self.too_big) {
            return end_of_data(552, "5.3.4 message too big");
        }
        let envelope = Envelope {
            mail_from: self.from.take(),
            rcpt_to: std::mem::take(&mut self.rcpts),
        };
        let s = &self.shared;
        // The decision in its two halves, both on this session's thread, no runtime needed:
        // the partners' keys (the directory's here; a server with key sources that wait on
        // the network would look them up on its I/O runtime), then inspection and sealing,
        // which only compute.
        let keys = postern_core::block_on(s.gateway.look_up(&s.directory, &envelope));
        let plan = s
            .gateway
            .outbound_with(&s.directory, Outgoing::new(&envelope, &data), &keys);
        match outbox::answer(&s.out, &s.accepted, &plan, &data) {
            Ok(r) => end_of_data(r.code, &format!("{} {}", r.enhanced, r.text)),
            Err(e) => {
                eprintln!("cannot store: {e}");
                end_of_data(451, "4.3.0 cannot store the message now")
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [directory, out, rest @ ..] = args.as_slice() else {
        return Err("usage: threaded_smtp DIRECTORY.toml OUT-DIR [LISTEN]".into());
    };
    let gateway = Gateway::builder().build()?;
    let directory = gateway.load_directory(Path::new(directory))?;
    let filter = Filter {
        shared: Arc::new(Shared {
            gateway,
            directory,
            out: PathBuf::from(out),
            accepted: AtomicUsize::new(0),
        }),
        from: None,
        rcpts: Vec::new(),
        data: Vec::new(),
        too_big: false,
    };
    let listener =
        std::net::TcpListener::bind(rest.first().map_or("127.0.0.1:2526", |s| s.as_str()))?;
    println!("listening on {}", listener.local_addr()?);
    let mut server = Server::new(filter);
    server
        .with_name("localhost")
        .with_num_threads(8)
        .with_tcp_listener(listener);
    server.serve().map_err(|e| e.to_string().into())
}
