//! ClamAV's daemon as a [`MalwareScanner`]. Synchronous on purpose: the gateway calls scanners
//! off its async workers, and a scan is one request and one short answer.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use postern_core::{MalwareScanner, ScanVerdict};

/// Bytes per INSTREAM chunk.
const CHUNK: usize = 64 * 1024;
/// The longest answer read (clamd's is one line: `stream: NAME FOUND`).
const MAX_REPLY: usize = 4096;

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddress {
    /// `host:port` (clamd's `TCPSocket`, on loopback).
    Tcp(String),
    /// A Unix socket path (clamd's `LocalSocket`).
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

impl ClamdAddress {
    /// A path (starting with `/`) is a Unix socket; anything else `host:port`.
    pub fn parse(s: &str) -> ClamdAddress {
        #[cfg(unix)]
        if s.starts_with('/') {
            return ClamdAddress::Unix(s.into());
        }
        ClamdAddress::Tcp(s.to_string())
    }
}

/// A clamd client.
#[derive(Debug, Clone)]
pub struct Clamd {
    address: ClamdAddress,
    timeout: Duration,
}

impl Clamd {
    /// clamd at `address`; each connect, write and read waits at most `timeout`.
    pub fn new(address: ClamdAddress, timeout: Duration) -> Clamd {
        Clamd { address, timeout }
    }

    fn ask(&self, message: &[u8]) -> std::io::Result<Vec<u8>> {
        match &self.address {
            ClamdAddress::Tcp(a) => {
                let addr = std::net::ToSocketAddrs::to_socket_addrs(a.as_str())?
                    .next()
                    .ok_or_else(|| std::io::Error::other("no address"))?;
                let s = TcpStream::connect_timeout(&addr, self.timeout)?;
                s.set_read_timeout(Some(self.timeout))?;
                s.set_write_timeout(Some(self.timeout))?;
                instream(s, message)
            }
            #[cfg(unix)]
            ClamdAddress::Unix(p) => {
                let s = std::os::unix::net::UnixStream::connect(p)?;
                s.set_read_timeout(Some(self.timeout))?;
                s.set_write_timeout(Some(self.timeout))?;
                instream(s, message)
            }
        }
    }
}

/// One `zINSTREAM` exchange: length-prefixed chunks, a zero length, then the answer up to its
/// NUL (or the connection's end), at most [`MAX_REPLY`] bytes.
fn instream<S: Read + Write>(mut s: S, message: &[u8]) -> std::io::Result<Vec<u8>> {
    let sent = (|| {
        s.write_all(b"zINSTREAM\0")?;
        for chunk in message.chunks(CHUNK) {
            let len = u32::try_from(chunk.len()).map_err(std::io::Error::other)?;
            s.write_all(&len.to_be_bytes())?;
            s.write_all(chunk)?;
        }
        s.write_all(&0u32.to_be_bytes())?;
        s.flush()
    })();
    // clamd answers a stream over its limit and closes mid-send: its answer says why.
    let mut reply = Vec::new();
    if let Err(e) = sent {
        let mut buf = [0u8; 512];
        return match s.read(&mut buf) {
            Ok(n) if n > 0 => Ok(buf.get(..n).unwrap_or_default().to_vec()),
            _ => Err(e),
        };
    }
    let mut buf = [0u8; 512];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(buf.get(..n).unwrap_or_default());
        if reply.contains(&0) || reply.len() >= MAX_REPLY {
            break;
        }
    }
    Ok(reply)
}

/// clamd's answer as a verdict: `stream: OK`, `stream: NAME FOUND`, anything else (an
/// `ERROR`, a size limit, nothing) unavailable.
pub fn verdict(reply: &[u8]) -> ScanVerdict {
    let end = reply.iter().position(|b| *b == 0).unwrap_or(reply.len());
    let text = String::from_utf8_lossy(reply.get(..end).unwrap_or_default());
    let text = text.trim();
    // clamd's answer to a stream over its StreamMaxLength: "INSTREAM size limit exceeded.
    // ERROR" (no "stream:"). Trying again would fail the same way.
    if text.contains("size limit exceeded") {
        return ScanVerdict::Unscannable {
            why: printable(text),
        };
    }
    let Some(rest) = text.strip_prefix("stream:") else {
        return ScanVerdict::Unavailable {
            why: format!("clamd answered {:?}", printable(text)),
        };
    };
    let rest = rest.trim();
    if rest == "OK" {
        return ScanVerdict::Clean;
    }
    if let Some(name) = rest.strip_suffix(" FOUND") {
        return ScanVerdict::Infected {
            signature: printable(name.trim()),
        };
    }
    ScanVerdict::Unavailable {
        why: format!("clamd answered {:?}", printable(rest)),
    }
}

/// What clamd said, bounded and without control characters, for logs and headers (the one
/// sanitiser for text from outside).
fn printable(s: &str) -> String {
    postern_core::display_text(s, 200)
}

impl MalwareScanner for Clamd {
    fn name(&self) -> &str {
        "clamd"
    }

    fn scan(&self, message: &[u8]) -> ScanVerdict {
        match self.ask(message) {
            Ok(reply) => verdict(&reply),
            Err(e) => ScanVerdict::Unavailable {
                why: format!("clamd: {e}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_as_clamd_writes_them_and_anything_else_is_unavailable() {
        assert_eq!(verdict(b"stream: OK\0"), ScanVerdict::Clean);
        assert_eq!(
            verdict(b"stream: Win.Test.EICAR_HDB-1 FOUND\0"),
            ScanVerdict::Infected {
                signature: "Win.Test.EICAR_HDB-1".into()
            }
        );
        assert!(matches!(
            verdict(b"INSTREAM size limit exceeded. ERROR\0"),
            ScanVerdict::Unscannable { .. }
        ));
        for bad in [
            &b"stream: lstat() failed. ERROR\0"[..],
            b"",
            b"stream: \x1b[31m weird",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(verdict(bad), ScanVerdict::Unavailable { .. }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn nobody_listening_is_unavailable_at_once() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let c = Clamd::new(ClamdAddress::parse(&addr), Duration::from_secs(2));
        assert!(matches!(c.scan(b"x"), ScanVerdict::Unavailable { .. }));
    }

    /// A scanner that accepts and never answers: the wait ends at the timeout.
    #[test]
    fn a_silent_scanner_times_out() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let hold = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            std::thread::sleep(Duration::from_secs(3));
            drop(s);
        });
        let c = Clamd::new(ClamdAddress::parse(&addr), Duration::from_millis(300));
        let started = std::time::Instant::now();
        assert!(matches!(c.scan(b"x"), ScanVerdict::Unavailable { .. }));
        assert!(started.elapsed() < Duration::from_secs(3));
        hold.join().unwrap();
    }
}
