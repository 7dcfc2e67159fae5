//! Direct delivery tracking, the sending side (the Direct Project's delivery-notification
//! guide): every Direct message we hand to a HISP is recorded per recipient until its
//! notifications come back — `processed` (and `dispatched` when the sender asked for timely
//! and reliable delivery), or a failure — or its deadline passes, when the sender is told.
//!
//! The rows hold Message-IDs and addresses only, never content. Every change is one
//! conditional statement, so two nodes sharing the database never both count the same
//! notification first, nor both report the same deadline.

use sqlx::Row;

use crate::db::{Db, DbError};

/// What a notification from the recipient's side says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// `processed`: its HISP accepted it.
    Processed,
    /// `dispatched`: delivered to the recipient's own system (timely and reliable).
    Dispatched,
    /// `failed` (an MDN), or a DSN: it will not arrive.
    Failed,
}

/// What recording a notification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noticed {
    /// No message of ours to that recipient with that Message-ID: not one we wait for.
    Unknown,
    /// The first of its kind for that recipient: pass it on to the sender.
    First,
    /// That recipient's notification of this kind came before (a duplicate or a replay).
    Again,
}

/// Where one recipient of a tracked message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackState {
    /// Waiting for its notifications.
    Pending,
    /// Every notification it needs has come.
    Complete,
    /// A failure was reported.
    Failed,
    /// Its deadline passed first (the sender was told).
    TimedOut,
}

crate::stored_words!(TrackState { Pending => "pending", Complete => "complete", Failed => "failed", TimedOut => "timed-out" });

/// One recipient of a tracked message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// The message's Message-ID, as its field has it (`<…>`).
    pub message_id: String,
    /// The recipient.
    pub recipient: String,
    /// Our user who sent it.
    pub sender: String,
    /// Timely and reliable delivery was asked for (`dispatched` needed too).
    pub reliable: bool,
    /// Where it stands.
    pub state: TrackState,
    /// When it was handed over (seconds since the epoch).
    pub sent_at: i64,
    /// When it times out.
    pub deadline: i64,
}

/// The Direct tracking rows, in the gateway's database.
#[derive(Debug, Clone)]
pub struct TrackingStore {
    db: Db,
}

impl TrackingStore {
    /// Over the gateway's database (already migrated).
    pub fn new(db: Db) -> Self {
        TrackingStore { db }
    }

    /// Records a message handed to a HISP for `recipients`; each waits until `deadline`. A
    /// message recorded before (a retry that reached another recipient) keeps its rows.
    pub async fn track(
        &self,
        message_id: &str,
        sender: &str,
        recipients: &[String],
        reliable: bool,
        sent_at: i64,
        deadline: i64,
    ) -> Result<(), DbError> {
        for r in recipients {
            sqlx::query(
                "INSERT INTO direct_tracking (message_id, recipient, sender, reliable, sent_at, \
                 deadline, state) VALUES ($1, $2, $3, $4, $5, $6, 'pending') \
                 ON CONFLICT (message_id, recipient) DO NOTHING",
            )
            .bind(message_id)
            .bind(r.to_ascii_lowercase())
            .bind(sender)
            .bind(i64::from(reliable))
            .bind(sent_at)
            .bind(deadline)
            .execute(self.db.pool())
            .await?;
        }
        Ok(())
    }

    /// Records a notification about `message_id` for `recipient`.
    pub async fn notice(
        &self,
        message_id: &str,
        recipient: &str,
        notice: Notice,
        now: i64,
    ) -> Result<Noticed, DbError> {
        let recipient = recipient.to_ascii_lowercase();
        // Each is counted once: the condition on the column it sets makes a second (or a
        // concurrent) one change nothing. A late notification after a timeout is still
        // recorded and passed on; the state stays as the sender was told.
        let sql = match notice {
            Notice::Processed => {
                "UPDATE direct_tracking SET processed_at = $3, state = CASE \
                 WHEN state = 'pending' AND (reliable = 0 OR dispatched_at IS NOT NULL) \
                 THEN 'complete' ELSE state END \
                 WHERE message_id = $1 AND recipient = $2 AND processed_at IS NULL"
            }
            Notice::Dispatched => {
                "UPDATE direct_tracking SET dispatched_at = $3, state = CASE \
                 WHEN state = 'pending' AND processed_at IS NOT NULL THEN 'complete' \
                 ELSE state END \
                 WHERE message_id = $1 AND recipient = $2 AND dispatched_at IS NULL"
            }
            Notice::Failed => {
                "UPDATE direct_tracking SET failed_at = $3, state = CASE \
                 WHEN state IN ('pending', 'complete') THEN 'failed' ELSE state END \
                 WHERE message_id = $1 AND recipient = $2 AND failed_at IS NULL"
            }
        };
        let changed = sqlx::query(sql)
            .bind(message_id)
            .bind(&recipient)
            .bind(now)
            .execute(self.db.pool())
            .await?
            .rows_affected();
        if changed > 0 {
            return Ok(Noticed::First);
        }
        let known = sqlx::query(
            "SELECT 1 AS one FROM direct_tracking WHERE message_id = $1 AND recipient = $2",
        )
        .bind(message_id)
        .bind(&recipient)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(if known.is_some() {
            Noticed::Again
        } else {
            Noticed::Unknown
        })
    }

    /// Claims every recipient still pending at its deadline (`now` or before) and marks it
    /// timed out: each is returned to exactly one caller, whichever node asks first, to tell
    /// its sender.
    pub async fn expire(&self, now: i64) -> Result<Vec<Tracked>, DbError> {
        let rows = sqlx::query(
            "UPDATE direct_tracking SET state = 'timed-out' \
             WHERE state = 'pending' AND deadline <= $1 \
             RETURNING message_id, recipient, sender, reliable, state, sent_at, deadline",
        )
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(tracked).collect()
    }

    /// The recipients of one message, or of every message when `message_id` is `None`.
    pub async fn list(&self, message_id: Option<&str>) -> Result<Vec<Tracked>, DbError> {
        let rows = sqlx::query(
            "SELECT message_id, recipient, sender, reliable, state, sent_at, deadline \
             FROM direct_tracking WHERE ($1 = '' OR message_id = $1) \
             ORDER BY sent_at, message_id, recipient",
        )
        .bind(message_id.unwrap_or(""))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(tracked).collect()
    }

    /// Forgets rows no longer pending that were sent before `before`; returns how many.
    pub async fn purge(&self, before: i64) -> Result<u64, DbError> {
        Ok(
            sqlx::query("DELETE FROM direct_tracking WHERE state <> 'pending' AND sent_at < $1")
                .bind(before)
                .execute(self.db.pool())
                .await?
                .rows_affected(),
        )
    }
}

fn tracked(r: &sqlx::any::AnyRow) -> Result<Tracked, DbError> {
    Ok(Tracked {
        message_id: r.try_get("message_id")?,
        recipient: r.try_get("recipient")?,
        sender: r.try_get("sender")?,
        reliable: r.try_get::<i64, _>("reliable")? != 0,
        state: crate::word(r, "state")?,
        sent_at: r.try_get("sent_at")?,
        deadline: r.try_get("deadline")?,
    })
}
