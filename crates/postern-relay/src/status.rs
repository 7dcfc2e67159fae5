//! The status endpoint beside the listeners (loopback by default): `/metrics` for Prometheus and
//! `/healthz` for load balancers — 200 while this node should get mail, 503 while it drains or
//! cannot do its work (spool not writable, database not answering), with one line per check.
//! Unauthenticated, so bounded: a few connections at once, small requests, short waits.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::shared::Shared;

/// Connections served at once, and from one client.
const CONNECTIONS: usize = 32;
const PER_CLIENT: usize = 8;
/// Longest wait for a request, and for each check.
const WAIT: Duration = Duration::from_secs(5);

/// Serves `/metrics` and `/healthz` until the relay is gone.
pub async fn serve(listener: TcpListener, shared: Weak<Shared>) {
    let slots = postern_core::ConnectionSlots::new(CONNECTIONS, PER_CLIENT, 64);
    loop {
        let Ok((mut sock, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Some(slot) = slots.take(peer.ip()) else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut buf = [0u8; 2048];
            let read = tokio::time::timeout(WAIT, async {
                let mut n = 0;
                while n < buf.len() {
                    let m = sock.read(&mut buf[n..]).await?;
                    if m == 0 {
                        break;
                    }
                    n += m;
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Ok::<usize, std::io::Error>(n)
            })
            .await;
            let Ok(Ok(n)) = read else { return };
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let (status, body) = if buf[..n].starts_with(b"GET /metrics ") {
                ("200 OK", shared.metrics.render())
            } else if buf[..n].starts_with(b"GET /healthz ") {
                let (ok, text) = health(&shared).await;
                (
                    if ok {
                        "200 OK"
                    } else {
                        "503 Service Unavailable"
                    },
                    text,
                )
            } else {
                ("404 Not Found", "not found\n".to_string())
            };
            drop(shared);
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::time::timeout(WAIT, sock.write_all(resp.as_bytes())).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Whether this node should get mail, and one line per check: draining, spool writable,
/// database answering, the directory in force, the queue.
pub async fn health(shared: &Shared) -> (bool, String) {
    let mut ok = true;
    let mut out = String::new();
    let draining = shared.draining.load(Ordering::SeqCst);
    ok &= !draining;
    out.push_str(if draining {
        "intake: draining (new connections get 421)\n"
    } else {
        "intake: accepting\n"
    });
    let spool = shared.spool.root().to_path_buf();
    let probe = tokio::task::spawn_blocking(move || writable(&spool));
    match tokio::time::timeout(WAIT, probe).await {
        Ok(Ok(Ok(()))) => out.push_str("spool: writable\n"),
        Ok(Ok(Err(e))) => {
            ok = false;
            out.push_str(&format!("spool: not writable ({e})\n"));
        }
        _ => {
            ok = false;
            out.push_str("spool: no answer in time\n");
        }
    }
    match tokio::time::timeout(WAIT, shared.db.ping()).await {
        Ok(Ok(())) => out.push_str("database: answering\n"),
        Ok(Err(e)) => {
            ok = false;
            // The details (host and user names) go to the log, not to whoever asks.
            tracing::warn!(error = %e, "health check: the database does not answer");
            out.push_str("database: not answering (see the log)\n");
        }
        Err(_) => {
            ok = false;
            out.push_str("database: no answer in time\n");
        }
    }
    let dir = shared.directory.current();
    out.push_str(&format!(
        "directory: {} partners, {} warnings\n",
        dir.partners.len(),
        dir.warnings().len()
    ));
    out.push_str(&format!("queue: {}\n", shared.metrics.queue_depth.get()));
    out.insert_str(0, if ok { "ok\n" } else { "failing\n" });
    (ok, out)
}

/// Writes, syncs and removes a small file where the spool keeps messages.
fn writable(root: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    // A name of its own per probe: two checks at once must not remove each other's file.
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = root.join(format!(".healthz-{}-{n}", std::process::id()));
    let mut f = std::fs::File::create(&p)?;
    f.write_all(b"ok")?;
    f.sync_all()?;
    std::fs::remove_file(p)
}
