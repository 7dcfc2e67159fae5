//! The portal's HTTP server, with the limits an unauthenticated listener needs: a cap on
//! connections in all and per client (an IPv4 address or an IPv6 network), a time limit on the
//! TLS handshake and on each request's header section, and an inactivity limit on every
//! connection. `axum::serve` has none of them: 450 silent connections once used up the
//! process's file descriptors and SMTP submission failed with them.
//!
//! A connection over a cap is accepted and closed at once (it holds no descriptor), and the cap
//! is logged at most once a minute. A kept-alive connection that neither reads nor writes for
//! [`ServeLimits::idle`] is closed; so is one whose request head takes longer than
//! [`ServeLimits::header`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::extract::ClientAddr;
use crate::limit::ConnectionSlots;
use crate::settings::PortalSettings;

/// The server's limits.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Connections at once.
    pub connections: usize,
    /// Connections at once from one client.
    pub per_client: usize,
    /// IPv6 clients are counted by this network prefix.
    pub v6_prefix: u8,
    /// Time for the TLS handshake.
    pub handshake: Duration,
    /// Time for a request's header section.
    pub header: Duration,
    /// Time a connection may neither read nor write.
    pub idle: Duration,
    /// Reverse proxies in front of the portal: their connections count in the total only.
    pub proxies: Vec<postern_core::Network>,
}

impl From<&PortalSettings> for ServeLimits {
    fn from(s: &PortalSettings) -> Self {
        ServeLimits {
            connections: s.max_connections,
            per_client: s.max_connections_per_client,
            v6_prefix: s.ipv6_client_prefix,
            handshake: Duration::from_secs(10),
            header: Duration::from_secs(s.header_timeout_secs),
            idle: Duration::from_secs(s.idle_connection_secs),
            proxies: s
                .trusted_proxies
                .iter()
                .filter_map(|n| postern_core::Network::parse(n).ok())
                .collect(),
        }
    }
}

/// Serves `app` on `listener` (TLS through `tls`, plain HTTP without) until `shutdown`
/// completes; then stops accepting, lets requests in flight finish (at most 10 s) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = ConnectionSlots::new(limits.connections, limits.per_client, limits.v6_prefix);
    let (closing, close) = watch::channel(false);
    let refused_log = Arc::new(AtomicI64::new(0));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((tcp, peer)) => match if limits.proxies.iter().any(|n| n.contains(peer.ip())) {
                    slots.take_within(peer.ip(), limits.connections)
                } else {
                    slots.take(peer.ip())
                } {
                    Some(slot) => {
                        let (app, tls, close) = (app.clone(), tls.clone(), close.clone());
                        let limits = limits.clone();
                        tokio::spawn(async move {
                            connection(tcp, peer, app, tls, limits, close).await;
                            drop(slot);
                        });
                    }
                    None => {
                        // Closed at once: a refused connection holds no descriptor.
                        drop(tcp);
                        let now = crate::now();
                        let last = refused_log.load(Ordering::Relaxed);
                        if now - last >= 60
                            && refused_log
                                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                                .is_ok()
                        {
                            tracing::warn!(%peer, total = limits.connections, per_client = limits.per_client, "portal connection cap reached; refusing connections (logged once a minute)");
                        }
                    }
                },
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "portal accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    drop(listener);
    let _ = closing.send(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while slots.in_use() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: ServeLimits,
    mut close: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match tls {
        None => Box::new(tcp),
        Some(acceptor) => {
            match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => Box::new(s),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, %peer, "portal TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "portal TLS handshake timed out");
                    return;
                }
            }
        }
    };
    // Requests being handled: the inactivity limit is for the connection, not for a handler
    // that takes its time (hyper keeps reading for EOF while one runs).
    let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let io = TokioIo::new(Idle::new(io, limits.idle, busy.clone()));
    let (begun, ended) = (busy.clone(), busy);
    let service = TowerToHyperService::new(
        app.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            begun.fetch_add(1, Ordering::SeqCst);
            req.extensions_mut().insert(ConnectInfo(ClientAddr(peer)));
            req
        })
        .map_response(move |resp| {
            ended.fetch_sub(1, Ordering::SeqCst);
            resp
        }),
    );
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header)
        .keep_alive(true);
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let closing = tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, %peer, "portal connection ended");
            }
            false
        }
        r = close.wait_for(|c| *c) => r.is_ok(),
    };
    if closing {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// A byte stream the server can run HTTP over.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A stream that fails once it has neither read nor written for `limit` while asked to: an idle
/// kept-alive connection, or a client that stopped reading its download, is let go.
struct Idle {
    inner: Box<dyn Io>,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Requests being handled on this connection (not idle while there are any).
    busy: Arc<std::sync::atomic::AtomicUsize>,
}

impl Idle {
    fn new(inner: Box<dyn Io>, limit: Duration, busy: Arc<std::sync::atomic::AtomicUsize>) -> Idle {
        Idle {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            busy,
        }
    }

    fn progress(&mut self) {
        self.deadline
            .as_mut()
            .reset(tokio::time::Instant::now() + self.limit);
    }

    /// On `Pending` from the stream: an error once the deadline has passed and no request is
    /// being handled (while one is, the deadline moves on).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.busy.load(Ordering::SeqCst) > 0 {
            self.progress();
            let _ = self.deadline.as_mut().poll(cx);
            return false;
        }
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle")
}

impl AsyncRead for Idle {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
            ready => {
                this.progress();
                ready
            }
        }
    }
}

impl AsyncWrite for Idle {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
            ready => {
                this.progress();
                ready
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }
}
