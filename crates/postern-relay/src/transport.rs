//! Handing a message to its next hop: SMTP, or a file per message in a directory (the demo's
//! outbox and inbox, so a newcomer can see what left without running a second server).

use postern_core::{EnhancedStatus, StatusClass};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::config::NextHop;
use crate::mx::{MxResolver, Route};
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
    /// Header fields put on top as it is sent (our DKIM signature); empty for none.
    pub prefix: &'a [u8],
    /// The message.
    pub data: &'a [u8],
    /// Policy requires a verified TLS connection for this copy.
    pub tls_required: bool,
    /// Per-reply timeout.
    pub wait: Duration,
    /// TLS connectors.
    pub tls: &'a TlsContext,
    /// Connection limits per destination.
    pub destinations: &'a Destinations,
    /// Open connections to reuse.
    pub pool: &'a client::ConnectionPool,
}

/// A bound on simultaneous connections per destination, so a burst for one big provider
/// cannot take every worker nor look like an attack to it.
#[derive(Debug)]
pub struct Destinations {
    limit: usize,
    open:
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Semaphore>>>,
}

impl Destinations {
    /// At most `limit` connections per destination (at least one).
    pub fn new(limit: usize) -> Self {
        Destinations {
            limit: limit.max(1),
            open: Default::default(),
        }
    }

    /// Waits for a connection slot to `dest`; the slot is freed when the permit drops.
    pub async fn slot(&self, dest: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let sem = {
            let mut map = self.open.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(dest.to_ascii_lowercase())
                .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(self.limit)))
                .clone()
        };
        sem.acquire_owned().await.ok()
    }
}

impl<'a> Handover<'a> {
    fn envelope(&self, rcpts: &'a [String]) -> client::Envelope<'a> {
        client::Envelope {
            helo: self.helo,
            mail_from: self.mail_from,
            rcpts,
            prefix: self.prefix,
            data: self.data,
            wait: self.wait,
        }
    }

    fn policy(&self) -> TlsPolicy {
        if self.tls_required {
            TlsPolicy::Verified
        } else {
            TlsPolicy::Opportunistic
        }
    }
}

/// Delivers one copy; one outcome per recipient, in order.
pub async fn deliver(hop: &NextHop, mx: Option<&MxResolver>, h: &Handover<'_>) -> Vec<Outcome> {
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
            let policy = h.policy();
            let _slot = h.destinations.slot(addr).await;
            client::send(addr, &h.envelope(h.rcpts), h.tls, policy, h.pool).await
        }
        NextHop::Mx { port } => match mx {
            Some(r) => deliver_mx(r, *port, h).await,
            None => vec![Outcome::Temporary("no MX resolver configured".into()); h.rcpts.len()],
        },
    }
}

fn write_file(dir: &Path, h: &Handover<'_>) -> std::io::Result<()> {
    crate::util::private_dir(dir)?;
    let tmp = dir.join(format!(".{}.tmp", h.tag));
    let path = dir.join(format!("{}.eml", h.tag));
    let mut f = crate::util::private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    // What a local delivery agent adds: the envelope, as header fields on top.
    write!(
        f,
        "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
        h.mail_from.unwrap_or(""),
        h.rcpts.join(", ")
    )?;
    f.write_all(h.prefix)?;
    f.write_all(h.data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Most MX hosts, and addresses per host, tried for one domain in one attempt.
const MAX_HOSTS: usize = 5;
const MAX_ADDRESSES: usize = 4;

/// Direct delivery: per recipient domain, its MX hosts in order of preference, each address in
/// turn, until one host answers about the recipients.
async fn deliver_mx(mx: &MxResolver, port: u16, h: &Handover<'_>) -> Vec<Outcome> {
    let mut out: Vec<Option<Outcome>> = vec![None; h.rcpts.len()];
    let mut domains: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, r) in h.rcpts.iter().enumerate() {
        let d = r
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        match domains.iter_mut().find(|(x, _)| *x == d) {
            Some((_, v)) => v.push(i),
            None => domains.push((d, vec![i])),
        }
    }
    for (domain, idx) in domains {
        let rcpts: Vec<String> = idx.iter().map(|i| h.rcpts[*i].clone()).collect();
        let _slot = h.destinations.slot(&domain).await;
        let result = match mx.route(&domain).await {
            Err(e) => vec![Outcome::Temporary(e); rcpts.len()],
            Ok(Route::NoSuchDomain) => {
                vec![
                    Outcome::permanent(
                        EnhancedStatus::new(StatusClass::Permanent, 1, 2),
                        format!("5.1.2 domain {domain} does not exist")
                    );
                    rcpts.len()
                ]
            }
            Ok(Route::NullMx) => {
                vec![
                    Outcome::permanent(
                        EnhancedStatus::new(StatusClass::Permanent, 1, 10),
                        format!("5.1.10 domain {domain} accepts no mail (null MX)")
                    );
                    rcpts.len()
                ]
            }
            Ok(Route::Hosts(hosts)) => {
                let env = h.envelope(&rcpts);
                let mut last = format!("no usable MX host for {domain}");
                let mut done = None;
                'hosts: for host in hosts.iter().take(MAX_HOSTS) {
                    let ips = match mx.addresses(host).await {
                        Ok(ips) => ips,
                        Err(e) => {
                            last = e;
                            continue;
                        }
                    };
                    for ip in ips.into_iter().take(MAX_ADDRESSES) {
                        let addr = std::net::SocketAddr::new(ip, port).to_string();
                        match client::attempt(&addr, host, &env, h.tls, h.policy(), h.pool).await {
                            Ok(v) => {
                                done = Some(v);
                                break 'hosts;
                            }
                            Err(e) => last = format!("{host} ({addr}): {e}"),
                        }
                    }
                }
                done.unwrap_or_else(|| vec![Outcome::Temporary(last); rcpts.len()])
            }
        };
        for (i, o) in idx.into_iter().zip(result) {
            out[i] = Some(o);
        }
    }
    out.into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::Temporary("not attempted".into())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn destinations_are_bounded_each_on_its_own() {
        let d = Destinations::new(1);
        let a = d.slot("mx.example:25").await;
        assert!(a.is_some());
        let wait = tokio::time::timeout(Duration::from_millis(50), d.slot("MX.example:25")).await;
        assert!(
            wait.is_err(),
            "a second connection to the same destination must wait"
        );
        assert!(d.slot("other.example:25").await.is_some());
        drop(a);
        assert!(d.slot("mx.example:25").await.is_some());
    }
}
