//! Handing a message to its next hop: SMTP, or a file per message in a directory (the demo's
//! outbox and inbox, so a newcomer can see what left without running a second server).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::config::NextHop;
use crate::smtp::client::{self, Outcome, TlsPolicy};
use crate::smtp::tls::TlsContext;

/// One copy to hand over.
#[derive(Debug)]
pub struct Handover<'a> {
    /// Our name for EHLO.
    pub helo: &'a str,
    /// A file name stem unique to this copy (queue ID, attempt and copy number).
    pub tag: &'a str,
    /// Reverse path (`None`: null sender).
    pub mail_from: Option<&'a str>,
    /// Envelope recipients of this copy.
    pub rcpts: &'a [String],
    /// The message.
    pub data: &'a [u8],
    /// Policy requires a verified TLS connection for this copy.
    pub tls_required: bool,
    /// Per-reply timeout.
    pub wait: Duration,
    /// TLS connectors.
    pub tls: &'a TlsContext,
}

/// Delivers one copy; one outcome per recipient, in order.
pub async fn deliver(hop: &NextHop, h: &Handover<'_>) -> Vec<Outcome> {
    match hop {
        NextHop::Directory(dir) => {
            let r = write_file(dir, h);
            let o = match r {
                Ok(()) => Outcome::Delivered,
                Err(e) => Outcome::Temporary(format!("writing to {}: {e}", dir.display())),
            };
            vec![o; h.rcpts.len()]
        }
        NextHop::Smtp(addr) => {
            // A copy that may only travel over verified TLS waits rather than go out in clear.
            let policy = if h.tls_required {
                TlsPolicy::Verified
            } else {
                TlsPolicy::Opportunistic
            };
            client::send(
                addr,
                h.helo,
                h.mail_from,
                h.rcpts,
                h.data,
                h.wait,
                h.tls,
                policy,
            )
            .await
        }
    }
}

fn write_file(dir: &Path, h: &Handover<'_>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", h.tag));
    let path = dir.join(format!("{}.eml", h.tag));
    let mut f = std::fs::File::create(&tmp)?;
    // What a local delivery agent adds: the envelope, as header fields on top.
    write!(
        f,
        "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
        h.mail_from.unwrap_or(""),
        h.rcpts.join(", ")
    )?;
    f.write_all(h.data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}
