//! The secure web portal inside the relay: postern-portal's service and pages, with the relay
//! as its outbox (notifications, codes, receipts and replies are spooled, fsynced and delivered
//! like any other message) and its quarantine behind the administrator's pages.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use postern_portal::{
    AdminDesk, Db, DeskError, MailKind, MasterKey, Outbox, OutboxError, OutgoingMail, Portal,
    QuarantineLine,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Users;
use crate::config::{ConfigError, RelayConfig};
use crate::shared::{Shared, StartError};
use crate::spool::{Entry, Origin, Recipient, Spool};
use crate::util::unix_ms;
use postern_store::password::Hasher;
use postern_store::QuarantineError;

/// The queue's portal delivery, into postern-portal.
#[derive(Debug)]
struct Inbox(Arc<Portal>);

#[async_trait]
impl crate::shared::PortalInbox for Inbox {
    async fn deliver(
        &self,
        sender: Option<&str>,
        recipient: &str,
        message: &[u8],
        queue_id: &str,
        days: Option<u32>,
    ) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
        let to = [recipient.to_string()];
        let days = days.map(i64::from);
        Ok(self.0.deliver(sender, &to, message, queue_id, days).await?)
    }
}

/// The portal's mail enters the spool as `Origin::Portal`: delivered as written (it carries no
/// PHI, except a reply, which only goes to our own mail server).
#[derive(Debug)]
struct SpoolOutbox {
    shared: Weak<Shared>,
}

#[async_trait]
impl Outbox for SpoolOutbox {
    async fn submit(&self, mail: OutgoingMail) -> Result<(), OutboxError> {
        let shared = self.shared.upgrade().ok_or(OutboxError::Stopping)?;
        let id = Spool::new_id();
        // Only what carries no PHI (notifications, codes) goes out as written. A reply, a read
        // receipt or a sender notice names a subject or carries the recipient's text: to our
        // own mail server it is delivered as written; to anyone else (an envelope sender that
        // was not ours, set by whoever submitted the original) it takes the whole outbound
        // path — inspection, and sealing for partners — like mail from our own users.
        let dir = shared.directory.current();
        let all_ours = mail.rcpt_to.iter().all(|r| {
            postern_core::Address::new(r)
                .map(|a| dir.is_ours(a.domain()))
                .unwrap_or(false)
        });
        let origin = match mail.kind {
            MailKind::Notification | MailKind::Code => Origin::Portal,
            _ if all_ours => Origin::Portal,
            _ => Origin::Internal,
        };
        let entry = Entry::new(
            id.clone(),
            origin,
            "portal",
            mail.mail_from,
            mail.rcpt_to.into_iter().map(Recipient::new).collect(),
            mail.data.len() as u64,
        );
        let spool = shared.spool.clone();
        let data = mail.data;
        // Two fsyncs: not on an async worker.
        tokio::task::spawn_blocking(move || spool.accept(&entry, &data))
            .await
            .map_err(std::io::Error::other)??;
        shared.metrics.queue_depth.inc();
        shared.scheduler.submit(&id, unix_ms());
        tracing::info!(queue_id = %id, kind = ?mail.kind, origin = ?origin, "portal mail queued");
        Ok(())
    }
}

/// The administrator's desk: sign-in against the admins file, quarantine review through the
/// same library calls as the CLI.
#[derive(Debug)]
struct RelayDesk {
    users: Users,
    shared: Weak<Shared>,
}

#[async_trait]
impl AdminDesk for RelayDesk {
    fn check_password(&self, hasher: &mut Hasher, user: &str, password: &str) -> bool {
        self.users.verify(hasher, user, password.as_bytes())
    }

    fn is_admin(&self, user: &str) -> bool {
        self.users.contains(user)
    }

    async fn quarantine(&self) -> Result<Vec<QuarantineLine>, DeskError> {
        let shared = self.shared()?;
        let held = shared.quarantine.list(None).await.map_err(desk_error)?;
        Ok(held
            .into_iter()
            .map(|h| QuarantineLine {
                id: h.id,
                created_at: h.created_at as i64,
                sender: h.sender.unwrap_or_else(|| "<>".into()),
                recipients: h.recipients,
                reason: h.reason,
                verdict: h.verdict.as_ref().map(verdict_words).unwrap_or_default(),
                state: h.state,
            })
            .collect())
    }

    async fn decide(
        &self,
        id: &str,
        release: bool,
        actor: &str,
        reason: &str,
    ) -> Result<(), DeskError> {
        let shared = self.shared()?;
        let r = if release {
            crate::review::release(&shared.quarantine, &shared.spool, id, actor, reason)
                .await
                .map(|_| ())
        } else {
            crate::review::reject(
                &shared.quarantine,
                &shared.spool,
                &shared.settings.hostname,
                id,
                actor,
                reason,
            )
            .await
            .map(|_| ())
        };
        r.map_err(|e| match e {
            crate::review::ReviewError::Quarantine(q) => desk_error(q),
            e => DeskError::Unavailable(e.to_string()),
        })
    }
}

impl RelayDesk {
    fn shared(&self) -> Result<Arc<Shared>, DeskError> {
        self.shared
            .upgrade()
            .ok_or_else(|| DeskError::Unavailable("the relay is stopping".into()))
    }
}

/// The quarantine's answer as the desk's.
fn desk_error(e: QuarantineError) -> DeskError {
    match e {
        QuarantineError::NotFound(id) => DeskError::NotFound(id),
        QuarantineError::Decided { id, state } => DeskError::Decided { id, state },
        e => DeskError::Unavailable(e.to_string()),
    }
}

/// The inspection verdict in words: action, reasons and the masked samples (postern-dlp never
/// reports whole values, so nothing here is a number in clear).
fn verdict_words(v: &serde_json::Value) -> String {
    let samples: Vec<&str> = v
        .get("hits")
        .and_then(|h| h.as_array())
        .into_iter()
        .flatten()
        .filter_map(|h| h.get("samples").and_then(|s| s.as_array()))
        .flatten()
        .filter_map(|s| s.as_str())
        .collect();
    let mut out = v
        .get("action")
        .and_then(|a| a.as_str())
        .unwrap_or("")
        .to_string();
    for r in v
        .get("reasons")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str())
    {
        out.push_str("; ");
        out.push_str(r);
    }
    if !samples.is_empty() {
        out.push_str("; e.g. ");
        out.push_str(&samples.join(", "));
    }
    out
}

fn config_err(message: String) -> StartError {
    ConfigError::Value {
        field: "portal",
        message,
    }
    .into()
}

/// Checks the `[portal]` settings without starting anything: the address, and plain HTTP only
/// on loopback.
pub(crate) fn validate(cfg: &RelayConfig) -> Result<Option<SocketAddr>, StartError> {
    let settings = &cfg.portal;
    if settings.listen.is_empty() {
        return Ok(None);
    }
    settings.check().map_err(config_err)?;
    let addr: SocketAddr = settings
        .listen
        .parse()
        .map_err(|_| config_err(format!("listen {:?}: expected IP:PORT", settings.listen)))?;
    if settings.plain_http && !addr.ip().is_loopback() {
        return Err(config_err(
            "plain_http is only allowed on a loopback address (terminate TLS in front of it, \
             or let the portal serve TLS)"
                .into(),
        ));
    }
    if !settings.admins.as_os_str().is_empty() {
        Users::load(&settings.admins).map_err(|e| {
            StartError::Config(ConfigError::Value {
                field: "portal.admins",
                message: e.to_string(),
            })
        })?;
    }
    Ok(Some(addr))
}

/// Starts the portal if the configuration has one: returns its address and tasks.
pub(crate) async fn start(
    cfg: &RelayConfig,
    shared: &Arc<Shared>,
    db: Db,
    first_start: bool,
    stop: watch::Receiver<bool>,
) -> Result<Option<(SocketAddr, Vec<JoinHandle<()>>)>, StartError> {
    let Some(addr) = validate(cfg)? else {
        return Ok(None);
    };
    let mut settings = cfg.portal.clone();
    if settings.from.is_empty() {
        settings.from = format!("secure-mail@{}", cfg.hostname);
    }
    // Made only while no portal message depends on it (first start, or the portal switched
    // on later); with PostgreSQL never: every node must share the same key.
    let unused = cfg.database.is_empty()
        && !postern_store::portal::holds_messages(&db)
            .await
            .map_err(|e| StartError::Quarantine(format!("portal database: {e}")))?;
    let key = postern_store::keyfile::load_or_create(
        postern_store::KeyRole::Portal,
        &cfg.portal_key(),
        first_start || unused,
    )
    .map_err(|e| StartError::Quarantine(e.to_string()))?;
    db.check_key("portal", key.as_ref())
        .await
        .map_err(|e| StartError::Quarantine(e.to_string()))?;
    let master = MasterKey::new(&key).map_err(|e| StartError::Quarantine(e.to_string()))?;
    let std_listener = std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind {
        addr: settings.listen.clone(),
        source,
    })?;
    let local = std_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: settings.listen.clone(),
            source,
        })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|source| StartError::Bind {
            addr: settings.listen.clone(),
            source,
        })?;
    let listener = TcpListener::from_std(std_listener).map_err(|source| StartError::Bind {
        addr: settings.listen.clone(),
        source,
    })?;
    let base_url = if settings.base_url.is_empty() {
        format!(
            "{}://{local}",
            if settings.plain_http { "http" } else { "https" }
        )
    } else {
        settings.base_url.clone()
    };
    let admins = if settings.admins.as_os_str().is_empty() {
        None
    } else {
        Some(Users::load(&settings.admins).map_err(|e| {
            StartError::Config(ConfigError::Value {
                field: "portal.admins",
                message: e.to_string(),
            })
        })?)
    };
    let plain = settings.plain_http;
    let mut portal = Portal::new(
        db,
        master,
        settings,
        base_url.clone(),
        !plain,
        Arc::new(SpoolOutbox {
            shared: Arc::downgrade(shared),
        }),
    );
    // Answers from the portal go only to our own addresses (the directory of the moment).
    let weak = Arc::downgrade(shared);
    portal = portal.with_our_addresses(move |address| {
        weak.upgrade().is_some_and(|s| {
            postern_core::Address::new(address)
                .is_ok_and(|a| s.directory.current().is_ours(a.domain()))
        })
    });
    if let Some(users) = admins {
        portal = portal.with_admin(Arc::new(RelayDesk {
            users,
            shared: Arc::downgrade(shared),
        }));
    }
    let portal = Arc::new(portal);
    let _ = shared.portal.set(Arc::new(Inbox(portal.clone())));
    let app = postern_portal::web::router(portal.clone());
    let limits = postern_portal::serve::ServeLimits::from(&portal.settings);
    let tls = (!plain).then(|| shared.settings.tls.acceptor.clone());
    let mut stop_serve = stop.clone();
    let shutdown = async move {
        let _ = stop_serve.wait_for(|s| *s).await;
    };
    let mut tasks = vec![tokio::spawn(postern_portal::serve::serve(
        listener, app, tls, limits, shutdown,
    ))];
    // Expiry: keys of messages past their date are destroyed within a minute.
    let mut stop_expiry = stop;
    tasks.push(tokio::spawn(async move {
        loop {
            match portal.expire().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "portal messages expired"),
                Err(e) => tracing::error!(error = %e, "portal expiry failed; retrying"),
            }
            tokio::select! {
                _ = stop_expiry.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
        }
    }));
    tracing::info!(%base_url, "portal listening");
    Ok(Some((local, tasks)))
}
