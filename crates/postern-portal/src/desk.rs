//! What the administrator's pages need from the gateway they run in ([`AdminDesk`]): the
//! portal knows nothing of the quarantine's storage or of how a release is sent, only these
//! calls, which the embedding gateway answers (postern-relay with the same library calls its
//! CLI makes).

use async_trait::async_trait;
use postern_store::password::Hasher;
use postern_store::HeldState;

/// One quarantined message as the review page shows it (masked values only).
#[derive(Debug, Clone)]
pub struct QuarantineLine {
    /// Quarantine ID.
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Envelope sender.
    pub sender: String,
    /// Recipients.
    pub recipients: Vec<String>,
    /// Why it is held.
    pub reason: String,
    /// The inspection verdict in words (masked).
    pub verdict: String,
    /// Held, released or rejected.
    pub state: HeldState,
}

/// Why the desk could not do what an administrator asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeskError {
    /// No such quarantine entry.
    #[error("{0}: not in the quarantine")]
    NotFound(String),
    /// The entry was decided already (by another administrator, the CLI or another node).
    #[error("{id}: already {state}")]
    Decided {
        /// The entry.
        id: String,
        /// What it was decided.
        state: HeldState,
    },
    /// The gateway could not do it now (stopping, its database or spool failing); the reason
    /// is logged, not shown.
    #[error("not possible now: {0}")]
    Unavailable(String),
}

/// What the administrator pages need from the gateway they run in.
#[async_trait]
pub trait AdminDesk: Send + Sync + std::fmt::Debug {
    /// Checks an administrator's password with `hasher` (called on a hashing thread, within the
    /// process's password budget). An unknown name must cost what a wrong password costs.
    fn check_password(&self, hasher: &mut Hasher, user: &str, password: &str) -> bool;
    /// Whether `user` is an administrator (the sign-in lock counts only on real names, so made-up
    /// ones cannot fill the lock table).
    fn is_admin(&self, user: &str) -> bool;
    /// Quarantined messages, newest first.
    async fn quarantine(&self) -> Result<Vec<QuarantineLine>, DeskError>;
    /// Releases (`release`) or rejects a quarantined message, as `actor`, for `reason`.
    async fn decide(
        &self,
        id: &str,
        release: bool,
        actor: &str,
        reason: &str,
    ) -> Result<(), DeskError>;
}
