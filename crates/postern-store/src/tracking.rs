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

/// What a notification would do, looked at before it is delivered (see
/// [`TrackingStore::peek`]): it is counted only once it has reached our user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peeked {
    /// No message of ours to that recipient with that Message-ID.
    Unknown,
    /// Its kind was counted for that recipient before: a duplicate or a replay.
    Counted,
    /// Not counted yet: `sender` is our user who sent the message.
    Open {
        /// Our user who sent the message (whom the notification should reach).
        sender: String,
    },
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

    /// What recording a notification would find, without recording it: the caller delivers
    /// it first and then calls [`TrackingStore::notice`], so a delivery that is retried
    /// never finds its own notification already counted.
    pub async fn peek(
        &self,
        message_id: &str,
        recipient: &str,
        notice: Notice,
    ) -> Result<Peeked, DbError> {
        let row = sqlx::query(
            "SELECT sender, processed_at, dispatched_at, failed_at FROM direct_tracking \
             WHERE message_id = $1 AND recipient = $2",
        )
        .bind(message_id)
        .bind(recipient.to_ascii_lowercase())
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            return Ok(Peeked::Unknown);
        };
        let column = match notice {
            Notice::Processed => "processed_at",
            Notice::Dispatched => "dispatched_at",
            Notice::Failed => "failed_at",
        };
        Ok(if row.try_get::<Option<i64>, _>(column)?.is_some() {
            Peeked::Counted
        } else {
            Peeked::Open {
                sender: row.try_get("sender")?,
            }
        })
    }

    /// Forgets `recipients` of `message_id` that no notification has touched (the handover
    /// to them failed after they were recorded).
    pub async fn untrack(&self, message_id: &str, recipients: &[String]) -> Result<(), DbError> {
        for r in recipients {
            sqlx::query(
                "DELETE FROM direct_tracking WHERE message_id = $1 AND recipient = $2 \
                 AND state = 'pending' AND processed_at IS NULL AND dispatched_at IS NULL \
                 AND failed_at IS NULL",
            )
            .bind(message_id)
            .bind(r.to_ascii_lowercase())
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
        // Nothing changed: either this kind was counted (by us or another node), or there is
        // no such row. Told apart by the row itself.
        Ok(match self.peek(message_id, &recipient, notice).await? {
            Peeked::Unknown => Noticed::Unknown,
            Peeked::Counted | Peeked::Open { .. } => Noticed::Again,
        })
    }

    /// Claims every recipient still pending at its deadline (`now` or before) and marks it
    /// timed out: each is returned to exactly one caller, whichever node asks first, to tell
    /// its sender.
    /// At most `limit` a call, oldest deadline first, so a backlog after an outage is worked
    /// off a batch at a time.
    pub async fn expire(&self, now: i64, limit: i64) -> Result<Vec<Tracked>, DbError> {
        // The outer `state = 'pending'` is checked again on each row once it is locked: two
        // nodes choosing the same rows never both claim one.
        let rows = sqlx::query(
            "UPDATE direct_tracking SET state = 'timed-out' \
             WHERE state = 'pending' AND (message_id, recipient) IN \
             (SELECT message_id, recipient FROM direct_tracking \
              WHERE state = 'pending' AND deadline <= $1 ORDER BY deadline LIMIT $2) \
             RETURNING message_id, recipient, sender, reliable, state, sent_at, deadline",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(tracked).collect()
    }

    /// Gives a claimed deadline back (its sender could not be told now): the next sweep
    /// claims it again.
    pub async fn unclaim(&self, message_id: &str, recipient: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE direct_tracking SET state = 'pending' \
             WHERE message_id = $1 AND recipient = $2 AND state = 'timed-out'",
        )
        .bind(message_id)
        .bind(recipient.to_ascii_lowercase())
        .execute(self.db.pool())
        .await?;
        Ok(())
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
