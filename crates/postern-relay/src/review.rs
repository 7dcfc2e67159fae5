//! Quarantine review as a library: release and reject, shared by the CLI
//! (`postern-relay quarantine`) and the administrator's web pages, so both do exactly the same
//! thing — spool first, then record the decision (a crash in between can only send twice).

use crate::quarantine::{HeldOrigin, HeldState, Quarantine, QuarantineError};
use crate::spool::{Entry, Origin, Recipient, Spool};

/// What went wrong deciding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReviewError {
    /// The quarantine store.
    #[error(transparent)]
    Quarantine(#[from] QuarantineError),
    /// The spool.
    #[error("spool: {0}")]
    Spool(#[from] std::io::Error),
}

/// Sends a held message on as if it had passed inspection; returns its new queue ID. The
/// running relay picks it up within a second.
pub async fn release(
    q: &Quarantine,
    spool: &Spool,
    id: &str,
    actor: &str,
    reason: &str,
) -> Result<String, ReviewError> {
    let h = q.get(id).await?;
    if h.state != HeldState::Held {
        return Err(QuarantineError::Decided {
            id: id.into(),
            state: h.state,
        }
        .into());
    }
    let data = q.message(id, actor, "release").await?;
    let origin = match h.origin {
        HeldOrigin::Public => Origin::Public,
        HeldOrigin::Internal => Origin::Internal,
    };
    let rcpts = h.recipients.iter().cloned().map(Recipient::new).collect();
    let mut entry = Entry::new(
        Spool::new_id(),
        origin,
        "quarantine",
        h.sender.clone(),
        rcpts,
        data.len() as u64,
    );
    entry.released = true;
    spool.accept(&entry, &data)?;
    q.decide(id, HeldState::Released, actor, reason).await?;
    spool.request_flush()?;
    Ok(entry.id)
}

/// Returns a held message to its sender with `reason` (a DSN with its header section only);
/// returns the DSN's queue ID (`None`: the null sender gets none).
pub async fn reject(
    q: &Quarantine,
    spool: &Spool,
    hostname: &str,
    id: &str,
    actor: &str,
    reason: &str,
) -> Result<Option<String>, ReviewError> {
    let h = q.get(id).await?;
    if h.state != HeldState::Held {
        return Err(QuarantineError::Decided {
            id: id.into(),
            state: h.state,
        }
        .into());
    }
    let data = q.message(id, actor, "reject").await?;
    let mut dsn_id = None;
    if let Some(sender) = &h.sender {
        let rcpts = h.recipients.iter().cloned().map(Recipient::new).collect();
        let mut original = Entry::new(
            id.to_string(),
            Origin::Internal,
            "quarantine",
            Some(sender.clone()),
            rcpts,
            data.len() as u64,
        );
        original.received_at = h.created_at;
        let failures: Vec<crate::dsn::Failure<'_>> = original
            .recipients
            .iter()
            .map(|r| crate::dsn::Failure {
                rcpt: r,
                status: postern_core::EnhancedStatus::REFUSED,
                reason,
            })
            .collect();
        let new_id = Spool::new_id();
        let now = crate::util::unix_ms() / 1000;
        let msg = crate::dsn::build(hostname, &original, &failures, &data, now, &new_id);
        let dsn = Entry::new(
            new_id.clone(),
            Origin::Bounce,
            "quarantine",
            None,
            vec![Recipient::new(sender.clone())],
            msg.len() as u64,
        );
        spool.accept(&dsn, &msg)?;
        spool.request_flush()?;
        dsn_id = Some(new_id);
    }
    q.decide(id, HeldState::Rejected, actor, reason).await?;
    Ok(dsn_id)
}
