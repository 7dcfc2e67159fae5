//! The audit log: append-only, each row chained to the one before by a SHA-256 hash, so a row
//! deleted or edited in the database is found by [`AuditLog::verify`]
//! (`postern-relay audit verify`). The newest hash is what an operator anchors elsewhere (a
//! ticket, a syslog server) to detect the log being cut short as well.

use std::net::IpAddr;

use aws_lc_rs::digest::{digest, SHA256};
use serde::Serialize;
use sqlx::Row;
use tokio::sync::Mutex;

use crate::db::{Db, DbError};

/// The hash before the first row.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Position in the chain (1, 2, …).
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who: an address, an administrator, or `postern` for the gateway itself.
    pub actor: String,
    /// What happened (see [`Action`]).
    pub action: String,
    /// What it happened to (a portal message ID, a quarantine ID, an address).
    pub object: String,
    /// The client address, or `-`.
    pub client: String,
    /// More, in words (never message content).
    pub detail: String,
    /// The previous row's hash.
    pub prev: String,
    /// This row's hash.
    pub hash: String,
}

/// The events the portal records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A message was stored for a recipient.
    Stored,
    /// The notification was sent.
    Notified,
    /// A one-time code was sent.
    CodeSent,
    /// A wrong one-time code or password was entered.
    CodeFailed,
    /// Too many wrong codes: the link is locked for a while.
    Locked,
    /// The recipient proved the address (code or password).
    SignedIn,
    /// The recipient set a password.
    PasswordSet,
    /// The message was opened (first and later reads).
    Opened,
    /// An attachment or the whole message was downloaded.
    Downloaded,
    /// The recipient replied.
    Replied,
    /// The sender or an administrator revoked the message.
    Revoked,
    /// The message expired and was deleted.
    Expired,
    /// An administrator signed in or failed to.
    AdminLogin,
    /// The gateway quarantined a message.
    Held,
    /// Someone read a quarantined message.
    Viewed,
    /// An administrator released a quarantined message.
    Released,
    /// An administrator rejected a quarantined message.
    Rejected,
    /// A partner's valid signature offered a certificate (harvest).
    KeyOffered,
    /// A harvested certificate was approved for use (by an administrator or automatically).
    KeyApproved,
    /// A harvested certificate was rejected.
    KeyRejected,
    /// The key a partner publishes for an address changed.
    KeyChanged,
    /// A decided quarantine entry's content was destroyed at the end of its retention period.
    Purged,
}

impl Action {
    /// The word stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Stored => "stored",
            Action::Notified => "notified",
            Action::CodeSent => "code-sent",
            Action::CodeFailed => "code-failed",
            Action::Locked => "locked",
            Action::SignedIn => "signed-in",
            Action::PasswordSet => "password-set",
            Action::Opened => "opened",
            Action::Downloaded => "downloaded",
            Action::Replied => "replied",
            Action::Revoked => "revoked",
            Action::Expired => "expired",
            Action::AdminLogin => "admin-login",
            Action::Held => "held",
            Action::Viewed => "viewed",
            Action::Released => "released",
            Action::Rejected => "rejected",
            Action::KeyOffered => "key-offered",
            Action::KeyApproved => "key-approved",
            Action::KeyRejected => "key-rejected",
            Action::KeyChanged => "key-changed",
            Action::Purged => "purged",
        }
    }
}

/// Where the chain is broken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainError {
    /// A row's hash does not match its content (edited).
    #[error("audit row {seq}: its content does not match its hash (edited)")]
    Edited {
        /// The row.
        seq: i64,
    },
    /// A row does not point at the row before it (a row removed or inserted).
    #[error("audit row {seq}: does not follow row {prev_seq} (a row was removed or inserted)")]
    Gap {
        /// The row.
        seq: i64,
        /// The row before it.
        prev_seq: i64,
    },
}

/// The chained log.
#[derive(Debug)]
pub struct AuditLog {
    db: Db,
    // One writer at a time in this process; across processes an advisory lock (PostgreSQL) or
    // the primary key on `seq` (a second writer of the same position fails and retries).
    writer: Mutex<()>,
}

fn hash_of(r: &AuditRecord) -> String {
    // JSON of the fields: unambiguous where plain concatenation is not.
    let canon =
        serde_json::json!([r.prev, r.seq, r.at, r.actor, r.action, r.object, r.client, r.detail])
            .to_string();
    hex(digest(&SHA256, canon.as_bytes()).as_ref())
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn record(r: &sqlx::any::AnyRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        object: r.try_get("object")?,
        client: r.try_get("client")?,
        detail: r.try_get("detail")?,
        prev: r.try_get("prev")?,
        hash: r.try_get("hash")?,
    })
}

impl AuditLog {
    /// The log in `db`.
    pub fn new(db: Db) -> AuditLog {
        AuditLog {
            db,
            writer: Mutex::new(()),
        }
    }

    /// Appends one event.
    pub async fn append(
        &self,
        actor: &str,
        action: Action,
        object: &str,
        client: Option<IpAddr>,
        detail: &str,
    ) -> Result<AuditRecord, DbError> {
        let _one = self.writer.lock().await;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.try_append(actor, action, object, client, detail).await {
                Ok(rec) => return Ok(rec),
                // Another writer (a CLI, another node) took this position: chain after it.
                Err(_) if tries < 10 => {
                    tokio::time::sleep(std::time::Duration::from_millis(5 * tries)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_append(
        &self,
        actor: &str,
        action: Action,
        object: &str,
        client: Option<IpAddr>,
        detail: &str,
    ) -> Result<AuditRecord, DbError> {
        let mut tx = self.db.pool().begin().await?;
        if self.db.backend() == crate::db::Backend::Postgres {
            // Nodes sharing the database append one at a time (released at commit).
            sqlx::query("SELECT pg_advisory_xact_lock(7305726276)")
                .execute(&mut *tx)
                .await?;
        }
        let last = sqlx::query("SELECT seq, hash FROM postern_audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (seq, prev) = match last {
            Some(r) => (r.try_get::<i64, _>(0)? + 1, r.try_get::<String, _>(1)?),
            None => (1, GENESIS.to_string()),
        };
        let mut rec = AuditRecord {
            seq,
            at: crate::now(),
            actor: clean(actor),
            action: action.as_str().into(),
            object: clean(object),
            client: client.map_or("-".into(), |c| c.to_string()),
            detail: clean(detail),
            prev,
            hash: String::new(),
        };
        rec.hash = hash_of(&rec);
        sqlx::query(
            "INSERT INTO postern_audit (seq, at, actor, action, object, client, detail, prev, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(rec.seq)
        .bind(rec.at)
        .bind(&rec.actor)
        .bind(&rec.action)
        .bind(&rec.object)
        .bind(&rec.client)
        .bind(&rec.detail)
        .bind(&rec.prev)
        .bind(&rec.hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rec)
    }

    /// The rows about `object` (or all), oldest first.
    pub async fn list(&self, object: Option<&str>) -> Result<Vec<AuditRecord>, DbError> {
        let rows = match object {
            Some(o) => {
                sqlx::query("SELECT * FROM postern_audit WHERE object = $1 ORDER BY seq")
                    .bind(o)
                    .fetch_all(self.db.pool())
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM postern_audit ORDER BY seq")
                    .fetch_all(self.db.pool())
                    .await?
            }
        };
        Ok(rows.iter().map(record).collect::<Result<_, _>>()?)
    }

    /// Checks the whole chain: returns the number of rows and the newest hash, or where it
    /// breaks.
    pub async fn verify(&self) -> Result<Result<(i64, String), ChainError>, DbError> {
        let rows = self.list(None).await?;
        let mut prev = (0i64, GENESIS.to_string());
        for r in &rows {
            if hash_of(r) != r.hash {
                return Ok(Err(ChainError::Edited { seq: r.seq }));
            }
            if r.prev != prev.1 || r.seq != prev.0 + 1 {
                return Ok(Err(ChainError::Gap {
                    seq: r.seq,
                    prev_seq: prev.0,
                }));
            }
            prev = (r.seq, r.hash.clone());
        }
        Ok(Ok(prev))
    }
}

/// Audit text is one line of printable characters (it ends up in terminals and web pages).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is a failure report
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_edited_or_removed_row_breaks_the_chain() {
        let d = tempfile::tempdir().unwrap();
        let db = Db::sqlite(&d.path().join("a.sqlite")).await.unwrap();
        let log = AuditLog::new(db.clone());
        for i in 0..5 {
            log.append(
                "x@y.example",
                Action::Opened,
                &format!("m{i}"),
                None,
                "read",
            )
            .await
            .unwrap();
        }
        let (n, newest) = log.verify().await.unwrap().unwrap();
        assert_eq!(n, 5);
        assert_eq!(newest, log.list(None).await.unwrap()[4].hash);

        sqlx::query("UPDATE postern_audit SET actor = 'someone-else' WHERE seq = 3")
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(
            log.verify().await.unwrap(),
            Err(ChainError::Edited { seq: 3 })
        );
        sqlx::query("UPDATE postern_audit SET actor = 'x@y.example' WHERE seq = 3")
            .execute(db.pool())
            .await
            .unwrap();
        assert!(log.verify().await.unwrap().is_ok());
        sqlx::query("DELETE FROM postern_audit WHERE seq = 2")
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(
            log.verify().await.unwrap(),
            Err(ChainError::Gap {
                seq: 3,
                prev_seq: 1
            })
        );
    }
}
