//! The portal as a service: taking messages in (from the relay or any embedding MTA), sending
//! their notifications, revoking and expiring them. The web side is in [`crate::web`].

use std::net::IpAddr;
use std::sync::Arc;

use crate::audit::{Action, AuditLog};
use crate::db::{Db, DbError};
use crate::letters;
use crate::limit::Limiter;
use crate::outbox::{MailKind, Outbox, OutgoingMail};
use crate::seal::MasterKey;
use crate::settings::PortalSettings;
use crate::store::{MessageState, NewMessage, Store, StoreError};

/// The logo, if configured and usable (a bad one is logged and left out, not fatal).
fn load_logo(path: &std::path::Path) -> Option<(&'static str, Vec<u8>)> {
    if path.as_os_str().is_empty() {
        return None;
    }
    let ctype = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        _ => {
            tracing::warn!(path = %path.display(), "portal.logo: not .png, .jpg or .svg; no logo");
            return None;
        }
    };
    match std::fs::read(path) {
        Ok(b) if b.len() <= 256 * 1024 => Some((ctype, b)),
        Ok(_) => {
            tracing::warn!(path = %path.display(), "portal.logo: larger than 256 KiB; no logo");
            None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "portal.logo unreadable; no logo");
            None
        }
    }
}

/// What went wrong taking a message in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortalError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The outbox refused the notification (the message is stored; the caller retries).
    #[error("notification not queued: {0}")]
    Outbox(#[from] crate::outbox::OutboxError),
    /// A letter could not be written (an address or header the mail builder refused).
    #[error("letter not written: {0}")]
    Letter(std::io::Error),
    /// A recipient address the portal cannot serve.
    #[error("recipient {0:?} is not an address")]
    Recipient(String),
}

impl From<DbError> for PortalError {
    fn from(e: DbError) -> Self {
        PortalError::Store(StoreError::Db(e))
    }
}

/// Which addresses are our own organisation's: a reply, a read receipt or a sender notice may
/// go only to one of them (see [`Portal::with_our_addresses`]).
#[derive(Clone)]
pub struct OurAddresses(pub Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for OurAddresses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OurAddresses(..)")
    }
}

/// The portal: store, audit log, settings and the outbox its mail leaves through.
#[derive(Debug)]
pub struct Portal {
    /// Messages, codes, sessions.
    pub store: Store,
    /// The chained audit log.
    pub audit: AuditLog,
    /// Settings.
    pub settings: PortalSettings,
    /// The public address of the portal (links start with it).
    pub base_url: String,
    /// Cookies only over TLS (off only for plain HTTP on loopback).
    pub secure_cookies: bool,
    pub(crate) outbox: Arc<dyn Outbox>,
    pub(crate) limiter: Limiter,
    pub(crate) admin: Option<Arc<dyn crate::desk::AdminDesk>>,
    pub(crate) ours: Option<OurAddresses>,
    /// The logo's content type and bytes, read once at start.
    pub(crate) logo: Option<(&'static str, Vec<u8>)>,
}

impl Portal {
    /// A portal over `db`, with `master` wrapping the message keys.
    pub fn new(
        db: Db,
        master: MasterKey,
        settings: PortalSettings,
        base_url: String,
        secure_cookies: bool,
        outbox: Arc<dyn Outbox>,
    ) -> Portal {
        let limiter = Limiter::new(settings.per_client_per_minute, settings.ipv6_client_prefix);
        let logo = load_logo(&settings.logo);
        Portal {
            store: Store::new(db.clone(), master),
            audit: AuditLog::new(db),
            settings,
            base_url: base_url.trim_end_matches('/').to_string(),
            secure_cookies,
            outbox,
            limiter,
            admin: None,
            ours: None,
            logo,
        }
    }

    /// Says which addresses are ours. Whoever submits mail chooses its envelope sender and its
    /// From, so the portal answers (replies, read receipts, sender notices) only an address of
    /// our own: the From address when it is ours, else the envelope sender when it is ours;
    /// otherwise the message cannot be answered, and the reply page says so. Without this,
    /// no address is ours and no message can be answered.
    pub fn with_our_addresses(
        mut self,
        ours: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Portal {
        self.ours = Some(OurAddresses(Arc::new(ours)));
        self
    }

    /// Whether `address` is one of ours (see [`Portal::with_our_addresses`]).
    pub fn is_ours(&self, address: &str) -> bool {
        address.contains('@') && self.ours.as_ref().is_some_and(|o| (o.0)(address))
    }

    /// Enables the administrator pages, with `desk` for sign-in and the quarantine.
    pub fn with_admin(mut self, desk: Arc<dyn crate::desk::AdminDesk>) -> Portal {
        self.admin = Some(desk);
        self
    }

    /// Takes `message` in for each of `recipients` and queues their notifications. `sender` is
    /// the envelope sender (our user; the only address a reply may go to). `lifetime_days`
    /// overrides the default (a partner entry's setting). Returns the portal message IDs.
    pub async fn deliver(
        &self,
        sender: Option<&str>,
        recipients: &[String],
        message: &[u8],
        queue_id: &str,
        lifetime_days: Option<i64>,
    ) -> Result<Vec<String>, PortalError> {
        let parsed = postern_core::parse_headers(message);
        let from = parsed
            .as_ref()
            .and_then(|m| m.from())
            .and_then(|a| a.first());
        let from_addr = from.and_then(|a| a.address()).unwrap_or("");
        // Who answers reach: a vouched address of ours, or nobody ("" cannot be answered).
        let reply_to = if self.is_ours(from_addr) {
            from_addr
        } else {
            sender.filter(|s| self.is_ours(s)).unwrap_or("")
        };
        let sender = sender.unwrap_or(from_addr);
        let display = from
            .and_then(|a| a.name())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or("");
        // Stored as the pages show it: address first, the display name short and sanitised.
        let sender_name = letters::sender_label(sender, display);
        let display = letters::one_line(display, 40);
        let subject = parsed
            .as_ref()
            .and_then(|m| m.subject())
            .unwrap_or("")
            .to_string();
        let days = lifetime_days.unwrap_or(self.settings.lifetime_days).max(1);
        let mut ids = Vec::new();
        for r in recipients {
            if !r.contains('@') || r.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(PortalError::Recipient(r.clone()));
            }
            let d = self
                .store
                .deposit(&NewMessage {
                    recipient: r,
                    sender: reply_to,
                    sender_name: &sender_name,
                    subject: &subject,
                    message,
                    lifetime: days * 86_400,
                    read_receipt: self.settings.read_receipts,
                    queue_id,
                })
                .await?;
            self.audit
                .append(
                    sender,
                    Action::Stored,
                    &d.id,
                    None,
                    &format!(
                        "for {r}, queue {queue_id}, expires {}",
                        letters::day(d.expires_at)
                    ),
                )
                .await?;
            let note = letters::notification(
                &self.settings,
                &self.base_url,
                r,
                sender,
                &display,
                &subject,
                &d,
            )
            .map_err(PortalError::Letter)?;
            self.send(MailKind::Notification, None, r, note).await?;
            self.audit
                .append("postern", Action::Notified, &d.id, None, &format!("to {r}"))
                .await?;
            if self.settings.sender_notices && !reply_to.is_empty() {
                let notice = letters::sender_notice(
                    &self.settings,
                    &self.base_url,
                    reply_to,
                    r,
                    &subject,
                    &d,
                )
                .map_err(PortalError::Letter)?;
                self.send(MailKind::SenderNotice, None, reply_to, notice)
                    .await?;
            }
            ids.push(d.id);
        }
        Ok(ids)
    }

    /// Queues one message. Auto-generated mail goes from the null sender (RFC 3834: no
    /// bounces or auto-replies to it); a reply from the recipient's proven address.
    pub(crate) async fn send(
        &self,
        kind: MailKind,
        mail_from: Option<&str>,
        to: &str,
        data: Vec<u8>,
    ) -> Result<(), PortalError> {
        self.outbox
            .submit(OutgoingMail {
                kind,
                mail_from: mail_from.map(str::to_string),
                rcpt_to: vec![to.to_string()],
                data,
            })
            .await
            .map_err(PortalError::Outbox)
    }

    /// Revokes a message: its key and content are destroyed. `actor` is the sender or an
    /// administrator. False when it was not active.
    pub async fn revoke(
        &self,
        id: &str,
        actor: &str,
        client: Option<IpAddr>,
    ) -> Result<bool, PortalError> {
        let done = self.store.destroy(id, MessageState::Revoked).await?;
        if done {
            self.audit
                .append(actor, Action::Revoked, id, client, "key destroyed")
                .await?;
        }
        Ok(done)
    }

    /// Deletes every message past its expiry (key and content); returns how many.
    pub async fn expire(&self) -> Result<usize, PortalError> {
        let mut n = 0;
        for id in self.store.due_for_expiry().await? {
            if self.store.destroy(&id, MessageState::Expired).await? {
                self.audit
                    .append("postern", Action::Expired, &id, None, "key destroyed")
                    .await?;
                n += 1;
            }
        }
        let s = &self.settings;
        self.store
            .sweep(
                s.idle_timeout_secs,
                s.absolute_timeout_secs,
                s.code_window_secs,
            )
            .await?;
        Ok(n)
    }
}
