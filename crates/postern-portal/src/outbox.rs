//! How the portal sends mail: through the gateway's own outbound path (the relay spools it,
//! fsynced, and delivers it with retries), never by a side channel of its own.

use async_trait::async_trait;

/// What kind of mail the portal writes (the relay logs and counts them; none carries PHI
/// except a reply, which goes only to our own mail server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// "You have a secure message": link, reference, expiry.
    Notification,
    /// The one-time code.
    Code,
    /// A recipient's reply, to our sender (inbound to our mail server).
    Reply,
    /// "Your message was opened", to our sender.
    ReadReceipt,
    /// "Your message went through the portal" with the withdrawal link, to our sender.
    SenderNotice,
}

/// One message to queue.
#[derive(Debug)]
pub struct OutgoingMail {
    /// What it is.
    pub kind: MailKind,
    /// Envelope sender (`None`: the null sender).
    pub mail_from: Option<String>,
    /// Envelope recipients.
    pub rcpt_to: Vec<String>,
    /// The message.
    pub data: Vec<u8>,
}

/// Why the outbox did not queue a message (it was not queued: the caller may try again).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The gateway is stopping and queues nothing more.
    #[error("the gateway is stopping")]
    Stopping,
    /// Writing it durably failed.
    #[error("not queued: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the portal's mail goes.
#[async_trait]
pub trait Outbox: Send + Sync + std::fmt::Debug {
    /// Queues `mail`; `Ok` only once it is durably queued.
    async fn submit(&self, mail: OutgoingMail) -> Result<(), OutboxError>;
}

/// An outbox that keeps what it is given (tests, and embedders that collect mail themselves).
#[derive(Debug, Default)]
pub struct MemoryOutbox(pub std::sync::Mutex<Vec<OutgoingMail>>);

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn submit(&self, mail: OutgoingMail) -> Result<(), OutboxError> {
        // A poisoned lock only means another test thread panicked; the list is still whole.
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(mail);
        Ok(())
    }
}
