//! The quarantine store: messages held for review, in the gateway's database (postern-portal's
//! storage layer: embedded SQLite by default, PostgreSQL for several nodes). Each message is
//! stored encrypted with AES-256-GCM under the gateway's quarantine key (the queue ID is the
//! associated data, so a ciphertext cannot be moved to another row); envelope, reason and
//! verdict are stored beside it in clear (they hold masked values only). Every decision and
//! every read of a message goes to the hash-chained audit log: who, when, what, why.

use crate::audit::{Action, AuditLog};
use crate::db::{Db, DbError};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use postern_core::HoldCode;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// The database.
    #[error("quarantine database: {0}")]
    Db(#[from] DbError),
    /// The key file.
    #[error(transparent)]
    Key(#[from] crate::keyfile::KeyFileError),
    /// Encryption or decryption failed (wrong key, or the row was tampered with).
    #[error("quarantined message {0} cannot be decrypted with this key")]
    Crypto(String),
    /// No such entry.
    #[error("{0}: not in the quarantine")]
    NotFound(String),
    /// The entry was decided and its content destroyed at the end of the retention period.
    #[error("{0}: its content was destroyed at the end of the retention period")]
    Destroyed(String),
    /// The entry was already decided.
    #[error("{id}: already {state}")]
    Decided {
        /// The entry.
        id: String,
        /// Its state.
        state: HeldState,
    },
}

/// Where a held message was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeldOrigin {
    /// From our mail server, going out.
    Internal,
    /// From the internet, for our users.
    Public,
}

/// Where a held message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeldState {
    /// Waiting for an administrator.
    Held,
    /// Sent on by an administrator.
    Released,
    /// Returned to its sender by an administrator.
    Rejected,
}

crate::stored_words!(HeldOrigin { Internal => "internal", Public => "public" });
crate::stored_words!(HeldState { Held => "held", Released => "released", Rejected => "rejected" });

/// One quarantined message (without its content).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// Quarantine ID.
    pub id: String,
    /// Unix seconds when it was held.
    pub created_at: u64,
    /// Outbound (`internal`) or inbound (`public`).
    pub origin: HeldOrigin,
    /// MAIL FROM (`None`: null sender).
    pub sender: Option<String>,
    /// The recipients it was held for.
    pub recipients: Vec<String>,
    /// Why, in words.
    pub reason: String,
    /// Why, as a kind (`None`: held before kinds were recorded, or a kind this build does not
    /// know, written by a newer node).
    pub code: Option<HoldCode>,
    /// The inspection verdict (JSON, masked values only), if any.
    pub verdict: Option<serde_json::Value>,
    /// Message size.
    pub size: u64,
    /// Waiting, released or rejected.
    pub state: HeldState,
}

/// Why a message is held: its kind, and the sentence shown for it (safe to show: detectors,
/// counts, names — never content).
#[derive(Debug, Clone, Copy)]
pub struct HoldReason<'a> {
    /// The kind.
    pub code: HoldCode,
    /// The sentence.
    pub text: &'a str,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// Unix seconds.
    pub at: u64,
    /// Who (an operator name, or `postern-relay` for the gateway itself).
    pub actor: String,
    /// `held`, `viewed`, `released`, `rejected`.
    pub action: String,
    /// The quarantine entry.
    pub id: String,
    /// Why.
    pub reason: String,
}

impl From<sqlx::Error> for QuarantineError {
    fn from(e: sqlx::Error) -> Self {
        QuarantineError::Db(DbError::Sql(e))
    }
}

/// The store.
pub struct Quarantine {
    db: Db,
    audit: AuditLog,
    key: LessSafeKey,
}

impl std::fmt::Debug for Quarantine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quarantine").finish_non_exhaustive()
    }
}

fn held_from(row: &AnyRow) -> Result<Held, sqlx::Error> {
    let recipients: String = row.try_get("recipients")?;
    let verdict: Option<String> = row.try_get("verdict")?;
    use crate::word;
    Ok(Held {
        id: row.try_get("id")?,
        created_at: row.try_get::<i64, _>("created_at")? as u64,
        origin: word(row, "origin")?,
        sender: row.try_get("sender")?,
        recipients: serde_json::from_str(&recipients).unwrap_or_default(),
        reason: row.try_get("reason")?,
        code: row
            .try_get::<Option<String>, _>("reason_code")?
            .and_then(|c| c.parse().ok()),
        verdict: verdict.and_then(|v| serde_json::from_str(&v).ok()),
        size: row.try_get::<i64, _>("size")? as u64,
        state: word(row, "state")?,
    })
}

impl Quarantine {
    /// The store in `db` (migrated by [`Db`]), with `key` for the messages.
    pub fn new(db: Db, key: [u8; 32]) -> Result<Self, QuarantineError> {
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &key)
                .map_err(|_| QuarantineError::Crypto("key".into()))?,
        );
        Ok(Quarantine {
            audit: AuditLog::new(db.clone()),
            db,
            key,
        })
    }

    /// Holds a message. Returns its quarantine ID.
    pub async fn hold(
        &self,
        origin: HeldOrigin,
        sender: Option<&str>,
        recipients: &[String],
        reason: HoldReason<'_>,
        verdict: Option<&serde_json::Value>,
        message: &[u8],
    ) -> Result<String, QuarantineError> {
        let id = format!("Q{}", crate::new_id());
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| QuarantineError::Crypto(id.clone()))?;
        let mut sealed = message.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| QuarantineError::Crypto(id.clone()))?;
        let now = crate::now();
        sqlx::query(
            "INSERT INTO quarantine (id, created_at, origin, sender, recipients, reason, reason_code, verdict, size, nonce, message, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'held')",
        )
        .bind(&id)
        .bind(now)
        .bind(origin.as_str())
        .bind(sender)
        .bind(serde_json::to_string(recipients).unwrap_or_default())
        .bind(reason.text)
        .bind(reason.code.as_str())
        .bind(verdict.map(|v| v.to_string()))
        .bind(message.len() as i64)
        .bind(nonce.to_vec())
        .bind(sealed)
        .execute(self.db.pool())
        .await?;
        self.audit
            .append("postern-relay", Action::Held, &id, None, reason.text)
            .await?;
        Ok(id)
    }

    /// Entries, newest first (`state`: only those in it).
    pub async fn list(&self, state: Option<HeldState>) -> Result<Vec<Held>, QuarantineError> {
        let rows = sqlx::query(
            "SELECT id, created_at, origin, sender, recipients, reason, reason_code, verdict, size, state
             FROM quarantine WHERE state = $1 OR $2 = 1 ORDER BY created_at DESC, id DESC",
        )
        .bind(state.map_or("", HeldState::as_str))
        .bind(state.is_none() as i64)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(held_from).collect::<Result<_, _>>()?)
    }

    /// One entry.
    pub async fn get(&self, id: &str) -> Result<Held, QuarantineError> {
        let row = sqlx::query(
            "SELECT id, created_at, origin, sender, recipients, reason, reason_code, verdict, size, state
             FROM quarantine WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| QuarantineError::NotFound(id.into()))?;
        Ok(held_from(&row)?)
    }

    /// The message, decrypted; the read is audited under `actor`.
    pub async fn message(
        &self,
        id: &str,
        actor: &str,
        why: &str,
    ) -> Result<Vec<u8>, QuarantineError> {
        let row = sqlx::query("SELECT nonce, message FROM quarantine WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or_else(|| QuarantineError::NotFound(id.into()))?;
        let nonce: Vec<u8> = row.try_get("nonce")?;
        let mut data: Vec<u8> = row.try_get("message")?;
        if nonce.is_empty() {
            return Err(QuarantineError::Destroyed(id.into()));
        }
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| QuarantineError::Crypto(id.into()))?;
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.as_bytes()),
                &mut data,
            )
            .map_err(|_| QuarantineError::Crypto(id.into()))?
            .to_vec();
        self.audit
            .append(actor, Action::Viewed, id, None, why)
            .await?;
        Ok(plain)
    }

    /// Marks an entry released or rejected (once), with the audit record. `Held` is not a
    /// decision and is refused.
    pub async fn decide(
        &self,
        id: &str,
        state: HeldState,
        actor: &str,
        reason: &str,
    ) -> Result<(), QuarantineError> {
        let action = match state {
            HeldState::Released => Action::Released,
            HeldState::Rejected => Action::Rejected,
            HeldState::Held => {
                return Err(QuarantineError::Decided {
                    id: id.into(),
                    state,
                })
            }
        };
        let done = sqlx::query(
            "UPDATE quarantine SET state = $1, decided_at = $2 WHERE id = $3 AND state = 'held'",
        )
        .bind(state.as_str())
        .bind(crate::now())
        .bind(id)
        .execute(self.db.pool())
        .await?;
        if done.rows_affected() == 0 {
            let held = self.get(id).await?;
            return Err(QuarantineError::Decided {
                id: id.into(),
                state: held.state,
            });
        }
        self.audit.append(actor, action, id, None, reason).await?;
        Ok(())
    }

    /// Destroys the content of every entry released or rejected at least `retention` ago (the
    /// row, its decision and its audit trail stay; the message and its nonce become empty),
    /// audits each, and clears the database's copies of the pages ([`Db::scrub`]). Entries
    /// decided before decisions were dated count from when they were held. Returns how many.
    pub async fn purge_decided(
        &self,
        retention: std::time::Duration,
    ) -> Result<usize, QuarantineError> {
        // Saturating: a retention too long to count must never wrap into "destroy now".
        let before =
            (crate::now()).saturating_sub(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX));
        let rows = sqlx::query(
            "SELECT id FROM quarantine
             WHERE state <> 'held' AND COALESCE(decided_at, created_at) <= $1 AND length(nonce) > 0",
        )
        .bind(before)
        .fetch_all(self.db.pool())
        .await?;
        let mut n = 0;
        for r in rows {
            let id: String = r.try_get(0)?;
            let done = sqlx::query(
                "UPDATE quarantine SET message = $1, nonce = $2 WHERE id = $3 AND length(nonce) > 0",
            )
            .bind(Vec::<u8>::new())
            .bind(Vec::<u8>::new())
            .bind(&id)
            .execute(self.db.pool())
            .await?;
            if done.rows_affected() == 1 {
                let days = retention.as_secs() / 86_400;
                self.audit
                    .append(
                        "postern-relay",
                        Action::Purged,
                        &id,
                        None,
                        &format!("content destroyed {days} days after the decision"),
                    )
                    .await?;
                n += 1;
            }
        }
        if n > 0 {
            self.db.scrub().await?;
        }
        Ok(n)
    }

    /// The audit trail (of one entry, or all), oldest first.
    pub async fn audit_log(&self, id: Option<&str>) -> Result<Vec<Audit>, QuarantineError> {
        Ok(self
            .audit
            .list(id)
            .await?
            .into_iter()
            .filter(|r| id.is_some() || r.object.starts_with('Q'))
            .map(|r| Audit {
                at: r.at as u64,
                actor: r.actor,
                action: r.action,
                id: r.object,
                reason: r.detail,
            })
            .collect())
    }

    /// Closes the pool (flushes the WAL).
    pub async fn close(&self) {
        self.db.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: HoldReason<'static> = HoldReason {
        code: HoldCode::Content,
        text: "card",
    };

    /// A decided entry is readable for the retention period, then its content is gone from the
    /// database files (the held message, encrypted, cannot be found in them) and audited; a
    /// held entry is never purged.
    #[tokio::test]
    async fn decided_entries_lose_their_content_after_the_retention_period() {
        let d = tempfile::tempdir().unwrap();
        let key = *crate::keyfile::load_or_create(
            crate::keyfile::KeyRole::Quarantine,
            &d.path().join("q.key"),
            true,
        )
        .unwrap();
        let db = Db::sqlite(&d.path().join("q.sqlite")).await.unwrap();
        let q = Quarantine::new(db.clone(), key).unwrap();
        let msg = b"Subject: x\r\n\r\nCard 4111 1111 1111 1111\r\n";
        let to = ["b@gmail.test".to_string()];
        let decided = q
            .hold(HeldOrigin::Internal, None, &to, CARD, None, msg)
            .await
            .unwrap();
        let held = q
            .hold(HeldOrigin::Internal, None, &to, CARD, None, msg)
            .await
            .unwrap();
        let row = sqlx::query("SELECT message FROM quarantine WHERE id = $1")
            .bind(&decided)
            .fetch_one(db.pool())
            .await
            .unwrap();
        let sealed: Vec<u8> = row.try_get(0).unwrap();
        q.decide(&decided, HeldState::Rejected, "alice", "no")
            .await
            .unwrap();
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(
            q.purge_decided(30 * day).await.unwrap(),
            0,
            "within retention"
        );
        assert_eq!(q.message(&decided, "alice", "again").await.unwrap(), msg);
        // The decision, moved 31 days into the past.
        sqlx::query("UPDATE quarantine SET decided_at = decided_at - $1")
            .bind(31 * 86_400i64)
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(
            q.purge_decided(std::time::Duration::from_secs(u64::MAX))
                .await
                .unwrap(),
            0,
            "a retention past counting destroys nothing"
        );
        assert_eq!(q.purge_decided(30 * day).await.unwrap(), 1);
        assert!(matches!(
            q.message(&decided, "alice", "after").await,
            Err(QuarantineError::Destroyed(_))
        ));
        assert_eq!(
            q.message(&held, "alice", "held").await.unwrap(),
            msg,
            "held stays"
        );
        let actions: Vec<String> = q
            .audit_log(Some(&decided))
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.action)
            .collect();
        assert_eq!(actions.last().map(String::as_str), Some("purged"));
        for f in std::fs::read_dir(d.path()).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            assert!(
                !bytes
                    .windows(32)
                    .any(|w| w == &sealed[..32] || w == &sealed[sealed.len() - 32..]),
                "the purged ciphertext is still on disk"
            );
        }
    }

    #[tokio::test]
    async fn hold_read_decide_audit_and_encryption_at_rest() {
        let d = tempfile::tempdir().unwrap();
        let key = *crate::keyfile::load_or_create(
            crate::keyfile::KeyRole::Quarantine,
            &d.path().join("q.key"),
            true,
        )
        .unwrap();
        assert_eq!(
            *crate::keyfile::load_or_create(
                crate::keyfile::KeyRole::Quarantine,
                &d.path().join("q.key"),
                false
            )
            .unwrap(),
            key
        );
        let db = d.path().join("q.sqlite");
        let q = Quarantine::new(Db::sqlite(&db).await.unwrap(), key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&db).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the quarantine database is private");
        }
        let msg = b"Subject: x\r\n\r\nSSN 078-05-1120\r\n";
        let verdict = serde_json::json!({"action": "quarantine"});
        let id = q
            .hold(
                HeldOrigin::Internal,
                Some("a@clinic.example"),
                &["b@gmail.test".into()],
                HoldReason {
                    code: HoldCode::Content,
                    text: "ssn x1",
                },
                Some(&verdict),
                msg,
            )
            .await
            .unwrap();
        let all = q.list(Some(HeldState::Held)).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].origin, all[0].state),
            (HeldOrigin::Internal, HeldState::Held)
        );
        assert_eq!(all[0].recipients, ["b@gmail.test"]);
        // The kind is kept beside the sentence; a row without one (held before kinds were
        // recorded) or with a kind this build does not know reads as none, never as another.
        assert_eq!(all[0].code, Some(HoldCode::Content));
        assert_eq!(all[0].reason, "ssn x1");
        for stored in [None, Some("a-kind-from-a-newer-node")] {
            sqlx::query("UPDATE quarantine SET reason_code = $1 WHERE id = $2")
                .bind(stored)
                .bind(&id)
                .execute(q.db.pool())
                .await
                .unwrap();
            assert_eq!(q.get(&id).await.unwrap().code, None, "{stored:?}");
        }
        sqlx::query("UPDATE quarantine SET reason_code = 'content' WHERE id = $1")
            .bind(&id)
            .execute(q.db.pool())
            .await
            .unwrap();
        assert_eq!(q.message(&id, "alice", "review").await.unwrap(), msg);
        assert!(
            matches!(
                q.decide(&id, HeldState::Held, "alice", "x").await,
                Err(QuarantineError::Decided { .. })
            ),
            "held is not a decision"
        );
        q.decide(&id, HeldState::Released, "alice", "false positive")
            .await
            .unwrap();
        assert!(matches!(
            q.decide(&id, HeldState::Rejected, "bob", "x").await,
            Err(QuarantineError::Decided {
                state: HeldState::Released,
                ..
            })
        ));
        assert!(q.list(Some(HeldState::Held)).await.unwrap().is_empty());
        let log = q.audit_log(Some(&id)).await.unwrap();
        let actions: Vec<&str> = log.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(actions, ["held", "viewed", "released"]);
        assert_eq!(log[2].actor, "alice");
        q.close().await;
        // At rest the body is not in the database file (nor its WAL).
        for f in std::fs::read_dir(d.path()).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            assert!(memchr::memmem::find(&bytes, b"078-05-1120").is_none());
        }
        // Another key cannot read it.
        let other = Quarantine::new(Db::sqlite(&db).await.unwrap(), [7u8; 32]).unwrap();
        assert!(matches!(
            other.message(&id, "eve", "x").await,
            Err(QuarantineError::Crypto(_))
        ));
    }
}
