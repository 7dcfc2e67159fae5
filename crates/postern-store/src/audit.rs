//! The audit log: append-only, each row chained to the one before, so a row deleted or edited
//! in the database is found by [`AuditLog::verify`] (`postern-relay audit verify`).
//!
//! The chain is keyed: with an audit key on the [`Db`] ([`Db::with_audit_key`], a key kept
//! outside the database), each row's hash is an HMAC-SHA256 (`k1:` + hex). An unkeyed SHA-256
//! chain can be rewritten by whoever can write the table: delete a row, hash the rest again.
//! Rows from before the key are plain SHA-256 and still verify; once a keyed row is in the chain
//! an unkeyed row after it is a break (no downgrade).
//!
//! A chain, keyed or not, cannot show that its newest rows were cut off or that it was emptied.
//! So the newest (sequence, hash) is anchored outside the database ([`AuditLog::write_anchor`],
//! a file the relay rewrites every minute and a log line); [`AuditLog::verify_with_anchor`]
//! finds a chain that no longer reaches its anchor.

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
    /// A keyed row, and no key to check it with (or the wrong key).
    #[error("audit row {seq}: keyed, and the audit key given does not verify it")]
    Unverifiable {
        /// The row.
        seq: i64,
    },
    /// An unkeyed row after keyed ones: the chain was rewritten without the key.
    #[error("audit row {seq}: unkeyed after keyed rows (the chain was rewritten)")]
    Downgraded {
        /// The row.
        seq: i64,
    },
    /// The chain does not reach the anchor written outside the database: its newest rows
    /// were cut off, or the log was emptied or replaced.
    #[error("the audit log ends at row {newest}, but row {anchored} was anchored outside the database{}", if *.replaced { " with another hash (the log was replaced)" } else { " (rows were cut off or the log emptied)" })]
    Cut {
        /// The anchored row.
        anchored: i64,
        /// The newest row now.
        newest: i64,
        /// The anchored row is there but with another hash.
        replaced: bool,
    },
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

/// The prefix of a keyed row's hash.
const KEYED: &str = "k1:";

fn canonical(r: &AuditRecord) -> String {
    // JSON of the fields: unambiguous where plain concatenation is not.
    serde_json::json!([r.prev, r.seq, r.at, r.actor, r.action, r.object, r.client, r.detail])
        .to_string()
}

/// The row's hash: HMAC-SHA256 under `key` (`k1:` + hex), or the plain SHA-256 of rows written
/// without a key.
fn hash_of(r: &AuditRecord, key: Option<&[u8; 32]>) -> String {
    let canon = canonical(r);
    match key {
        Some(k) => {
            let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, k);
            format!(
                "{KEYED}{}",
                crate::hex(aws_lc_rs::hmac::sign(&k, canon.as_bytes()).as_ref())
            )
        }
        None => crate::hex(digest(&SHA256, canon.as_bytes()).as_ref()),
    }
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
        rec.hash = hash_of(&rec, self.db.audit_key());
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
    /// breaks. Keyed rows need the [`Db`]'s audit key.
    pub async fn verify(&self) -> Result<Result<(i64, String), ChainError>, DbError> {
        let rows = self.list(None).await?;
        let mut prev = (0i64, GENESIS.to_string());
        let mut keyed = false;
        for r in &rows {
            if r.hash.starts_with(KEYED) {
                keyed = true;
                let Some(key) = self.db.audit_key() else {
                    return Ok(Err(ChainError::Unverifiable { seq: r.seq }));
                };
                if hash_of(r, Some(key)) != r.hash {
                    // Without the right key an edited row and a wrong key look alike.
                    return Ok(Err(ChainError::Edited { seq: r.seq }));
                }
            } else if keyed {
                return Ok(Err(ChainError::Downgraded { seq: r.seq }));
            } else if hash_of(r, None) != r.hash {
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

    /// [`AuditLog::verify`], and that the chain still holds the row anchored in `anchor` (a
    /// file [`AuditLog::write_anchor`] wrote) with the same hash. A missing anchor file is
    /// not checked (the log is new, or nothing anchored yet).
    pub async fn verify_with_anchor(
        &self,
        anchor: &std::path::Path,
    ) -> Result<Result<(i64, String), ChainError>, DbError> {
        let verdict = self.verify().await?;
        let Ok((newest, _)) = &verdict else {
            return Ok(verdict);
        };
        let Some((seq, hash)) = read_anchor(anchor) else {
            return Ok(verdict);
        };
        if seq > *newest {
            return Ok(Err(ChainError::Cut {
                anchored: seq,
                newest: *newest,
                replaced: false,
            }));
        }
        if self.hash_at(seq).await?.as_deref() != Some(hash.as_str()) {
            return Ok(Err(ChainError::Cut {
                anchored: seq,
                newest: *newest,
                replaced: true,
            }));
        }
        Ok(verdict)
    }

    /// The hash of row `seq`, if there is one.
    async fn hash_at(&self, seq: i64) -> Result<Option<String>, DbError> {
        Ok(sqlx::query("SELECT hash FROM postern_audit WHERE seq = $1")
            .bind(seq)
            .fetch_optional(self.db.pool())
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?)
    }

    /// Writes the newest row's sequence and hash to `anchor` (written beside, fsynced, renamed
    /// over: never half a file) and logs them; returns them, or `None` for an empty log. Only
    /// moves forward: an anchor of a later row is not overwritten by an earlier one.
    pub async fn write_anchor(
        &self,
        anchor: &std::path::Path,
    ) -> Result<Option<(i64, String)>, DbError> {
        let Some(row) =
            sqlx::query("SELECT seq, hash FROM postern_audit ORDER BY seq DESC LIMIT 1")
                .fetch_optional(self.db.pool())
                .await?
        else {
            return Ok(None);
        };
        let (seq, hash): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
        if let Some((anchored, anchored_hash)) = read_anchor(anchor) {
            if anchored >= seq {
                return Ok(Some((seq, hash)));
            }
            // The chain must still hold the anchored row as anchored: if rows were cut and
            // the log grew past them again, moving the anchor on would erase the evidence.
            if self.hash_at(anchored).await?.as_deref() != Some(anchored_hash.as_str()) {
                tracing::error!(
                    anchored,
                    "the audit log no longer holds its anchored row: anchor kept; run `postern-relay audit verify`"
                );
                return Ok(Some((seq, hash)));
            }
        }
        let line = format!("{seq} {hash} {}\n", crate::now());
        let tmp = anchor.with_extension("tmp");
        let written = (|| -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(line.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, anchor)
        })();
        if let Err(e) = written {
            tracing::error!(error = %e, path = %anchor.display(), "audit anchor not written");
        }
        tracing::info!(target: "postern::audit", seq, hash = %hash, "audit anchor");
        Ok(Some((seq, hash)))
    }
}

/// The (sequence, hash) in an anchor file, if there is a well-formed one.
fn read_anchor(path: &std::path::Path) -> Option<(i64, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut parts = text.split_whitespace();
    let seq = parts.next()?.parse().ok()?;
    let hash = parts.next()?.to_string();
    Some((seq, hash))
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

    /// Rewrites rows `from..` as someone with write access to the table and without the key
    /// would: each hash recomputed (plain SHA-256, the only one they can make), chained on.
    async fn rehash_from(db: &Db, from: i64) {
        let rows = AuditLog::new(db.clone()).list(None).await.unwrap();
        let mut prev = rows
            .iter()
            .find(|r| r.seq == from - 1)
            .map_or(GENESIS.to_string(), |r| r.hash.clone());
        for (i, r) in rows.iter().filter(|r| r.seq >= from).enumerate() {
            let mut r = r.clone();
            let old_seq = r.seq;
            r.seq = from + i as i64;
            r.prev = prev;
            r.hash = hash_of(&r, None);
            sqlx::query("UPDATE postern_audit SET seq = $1, prev = $2, hash = $3 WHERE seq = $4")
                .bind(r.seq)
                .bind(&r.prev)
                .bind(&r.hash)
                .bind(old_seq)
                .execute(db.pool())
                .await
                .unwrap();
            prev = r.hash;
        }
    }

    #[tokio::test]
    async fn a_keyed_chain_cannot_be_rewritten_and_a_cut_tail_or_an_empty_log_is_found() {
        let d = tempfile::tempdir().unwrap();
        let plain = Db::sqlite(&d.path().join("a.sqlite")).await.unwrap();
        // Two rows from before the key, then keyed ones.
        for i in 0..2 {
            AuditLog::new(plain.clone())
                .append("a", Action::Opened, &format!("old{i}"), None, "")
                .await
                .unwrap();
        }
        let db = plain.clone().with_audit_key([7u8; 32]);
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
        assert_eq!(n, 7);
        assert!(newest.starts_with("k1:"));
        let anchor = d.path().join("audit.anchor");
        assert_eq!(log.write_anchor(&anchor).await.unwrap().unwrap().0, 7);
        assert!(log.verify_with_anchor(&anchor).await.unwrap().is_ok());
        // Without the key, or with another, keyed rows cannot be checked.
        assert_eq!(
            AuditLog::new(plain.clone()).verify().await.unwrap(),
            Err(ChainError::Unverifiable { seq: 3 })
        );
        assert_eq!(
            AuditLog::new(plain.clone().with_audit_key([8u8; 32]))
                .verify()
                .await
                .unwrap(),
            Err(ChainError::Edited { seq: 3 })
        );
        // Delete a row and hash the rest again, as an unkeyed chain allowed: found.
        sqlx::query("DELETE FROM postern_audit WHERE seq = 4")
            .execute(db.pool())
            .await
            .unwrap();
        rehash_from(&db, 4).await;
        assert_eq!(
            log.verify().await.unwrap(),
            Err(ChainError::Downgraded { seq: 4 })
        );
        // The newest rows cut off: the chain is whole, the anchor is not reached.
        let d2 = tempfile::tempdir().unwrap();
        let db = Db::sqlite(&d2.path().join("b.sqlite"))
            .await
            .unwrap()
            .with_audit_key([7u8; 32]);
        let log = AuditLog::new(db.clone());
        for i in 0..5 {
            log.append("x", Action::Opened, &format!("m{i}"), None, "")
                .await
                .unwrap();
        }
        let anchor = d2.path().join("audit.anchor");
        log.write_anchor(&anchor).await.unwrap();
        sqlx::query("DELETE FROM postern_audit WHERE seq >= 4")
            .execute(db.pool())
            .await
            .unwrap();
        assert!(
            log.verify().await.unwrap().is_ok(),
            "the cut chain alone looks whole"
        );
        assert_eq!(
            log.verify_with_anchor(&anchor).await.unwrap(),
            Err(ChainError::Cut {
                anchored: 5,
                newest: 3,
                replaced: false
            })
        );
        // The log grows past the cut again: the anchor is not moved on over the evidence.
        for i in 0..4 {
            log.append("x", Action::Opened, &format!("n{i}"), None, "")
                .await
                .unwrap();
        }
        log.write_anchor(&anchor).await.unwrap();
        assert!(matches!(
            log.verify_with_anchor(&anchor).await.unwrap(),
            Err(ChainError::Cut {
                anchored: 5,
                replaced: true,
                ..
            })
        ));
        // Emptied.
        sqlx::query("DELETE FROM postern_audit")
            .execute(db.pool())
            .await
            .unwrap();
        assert!(matches!(
            log.verify_with_anchor(&anchor).await.unwrap(),
            Err(ChainError::Cut {
                anchored: 5,
                newest: 0,
                ..
            })
        ));
    }

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
