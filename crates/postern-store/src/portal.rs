//! What the portal keeps: messages (encrypted at rest, one row per recipient), one-time codes,
//! optional passwords, sessions. Secrets a visitor presents (link tokens, codes, session
//! cookies) are stored only as SHA-256 hashes and compared in constant time.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{digest, SHA256};
use base64::Engine;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{Db, DbError};
use crate::hex;
use crate::seal::{MasterKey, SealError};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Encryption at rest.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// No such message (or not this visitor's).
    #[error("no such message")]
    NotFound,
    /// The message was revoked or has expired: its key is gone.
    #[error("this message is no longer available ({0})")]
    Gone(MessageState),
    /// Too many codes asked for this link recently.
    #[error("too many codes were sent for this message; wait a few minutes")]
    TooManyCodes,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(DbError::Sql(e))
    }
}

/// Where a portal message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Readable.
    Active,
    /// Revoked by the sender or an administrator (key destroyed).
    Revoked,
    /// Past its expiry (key destroyed).
    Expired,
}

impl MessageState {
    fn as_str(self) -> &'static str {
        match self {
            MessageState::Active => "active",
            MessageState::Revoked => "revoked",
            MessageState::Expired => "expired",
        }
    }
    fn parse(s: &str) -> MessageState {
        match s {
            "active" => MessageState::Active,
            "revoked" => MessageState::Revoked,
            _ => MessageState::Expired,
        }
    }
}

impl std::fmt::Display for MessageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A portal message without its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// Portal message ID.
    pub id: String,
    /// The one address that may read it.
    pub recipient: String,
    /// Who sent it (our user), and the only address a reply goes to.
    pub sender: String,
    /// The sender's display name.
    pub sender_name: String,
    /// The short code shown in the notification and on the page.
    pub reference: String,
    /// Size of the stored message.
    pub size: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds after which it is deleted.
    pub expires_at: i64,
    /// Its state.
    pub state: MessageState,
    /// First opened (unix seconds).
    pub opened_at: Option<i64>,
    /// Tell the sender when it is first opened.
    pub read_receipt: bool,
    /// Wrong codes are locked out until then (unix seconds).
    pub locked_until: i64,
    /// The spool message it came from.
    pub queue_id: String,
}

/// A new message for one recipient.
#[derive(Debug)]
pub struct NewMessage<'a> {
    /// The recipient.
    pub recipient: &'a str,
    /// Our sender.
    pub sender: &'a str,
    /// The sender's display name.
    pub sender_name: &'a str,
    /// Its subject (stored encrypted).
    pub subject: &'a str,
    /// The whole message.
    pub message: &'a [u8],
    /// Seconds until it expires.
    pub lifetime: i64,
    /// Read receipt wanted.
    pub read_receipt: bool,
    /// The spool message.
    pub queue_id: &'a str,
}

/// What the notification needs: the link token exists only here, never in the database.
#[derive(Debug)]
pub struct Deposited {
    /// Portal message ID.
    pub id: String,
    /// The secret for the link (256 bits, base64url).
    pub token: String,
    /// The reference code.
    pub reference: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// The secret for the sender's withdrawal link (256 bits, base64url).
    pub revoke_token: String,
}

/// A signed-in (or not yet) visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the cookie.
    pub id_hash: String,
    /// The proven address, once proven.
    pub address: Option<String>,
    /// The message whose link started it.
    pub message_id: Option<String>,
    /// How the address was proven (`one-time code`, `password`).
    pub proof: Option<String>,
    /// The CSRF token for its forms.
    pub csrf: String,
    /// An administrator's session.
    pub admin: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub last_seen: i64,
}

/// How a code check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right, and now used up.
    Accepted,
    /// Wrong (or expired); `locked` when this failure locked the link.
    Wrong {
        /// This failure locked the link.
        locked: bool,
    },
    /// The link is locked until then (unix seconds); the code was not looked at.
    Locked(i64),
}

/// What a lock counts attempts on.
#[derive(Debug, Clone, Copy)]
pub enum LockOn<'a> {
    /// A portal message's link (codes): by message ID.
    Link(&'a str),
    /// A recipient's password, whichever form it is typed into (sign-in or a link): by
    /// address.
    Account(&'a str),
    /// An administrator's password: by user name.
    Admin(&'a str),
}

impl LockOn<'_> {
    /// Table, key column, failure column, lock column, and the key's value.
    fn columns(
        &self,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        String,
    ) {
        match self {
            LockOn::Link(id) => (
                "portal_message",
                "id",
                "failed_codes",
                "locked_until",
                id.to_string(),
            ),
            LockOn::Account(a) => (
                "portal_account",
                "address",
                "failed",
                "locked_until",
                a.to_ascii_lowercase(),
            ),
            LockOn::Admin(n) => (
                "admin_lock",
                "name",
                "failed",
                "locked_until",
                n.to_string(),
            ),
        }
    }
}

/// Whether an attempt may be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Check it; `locks` when this attempt used up the last try (if it fails, the lock holds).
    Allowed {
        /// This attempt set the lock.
        locks: bool,
    },
    /// Locked until then (unix seconds): do not check.
    Locked(i64),
}

/// Random bytes as base64url.
pub fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // aws-lc's generator fails only if the OS has no randomness; then nothing is safe.
    let _ = aws_lc_rs::rand::fill(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// SHA-256, hex.
pub fn sha256_hex(s: &[u8]) -> String {
    hex(digest(&SHA256, s).as_ref())
}

/// Constant-time equality of two strings.
pub fn same(a: &str, b: &str) -> bool {
    verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

fn random_from(alphabet: &[u8], n: usize) -> String {
    let mut b = vec![0u8; n * 2];
    let _ = aws_lc_rs::rand::fill(&mut b);
    // Two bytes per character: the bias of `% len` is below 0.05 % for these alphabets.
    b.chunks_exact(2)
        .map(|c| {
            let v = u16::from_le_bytes([c[0], c[1]]) as usize;
            alphabet.get(v % alphabet.len()).copied().unwrap_or(b'X') as char
        })
        .collect()
}

/// A reference like `K7FQ-2MXD`: no 0/O or 1/I to misread.
fn reference_code() -> String {
    let s = random_from(b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789", 8);
    format!("{}-{}", s.get(..4).unwrap_or(""), s.get(4..).unwrap_or(""))
}

fn meta(r: &AnyRow) -> Result<MessageMeta, sqlx::Error> {
    Ok(MessageMeta {
        id: r.try_get("id")?,
        recipient: r.try_get("recipient")?,
        sender: r.try_get("sender")?,
        sender_name: r.try_get("sender_name")?,
        reference: r.try_get("reference")?,
        size: r.try_get("size")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        state: MessageState::parse(&r.try_get::<String, _>("state")?),
        opened_at: r.try_get("opened_at")?,
        read_receipt: r.try_get::<i64, _>("read_receipt")? != 0,
        locked_until: r.try_get("locked_until")?,
        queue_id: r.try_get("queue_id")?,
    })
}

/// The columns [`meta`] reads (a macro, so queries stay `&'static str`).
macro_rules! meta_columns {
    () => {
        "id, recipient, sender, sender_name, reference, size, created_at, expires_at, \
         state, opened_at, read_receipt, locked_until, queue_id"
    };
}

fn session_of(r: &AnyRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id_hash: r.try_get("id_hash")?,
        address: r.try_get("address")?,
        message_id: r.try_get("message_id")?,
        proof: r.try_get("proof")?,
        csrf: r.try_get("csrf")?,
        admin: r.try_get::<i64, _>("admin")? != 0,
        created_at: r.try_get("created_at")?,
        last_seen: r.try_get("last_seen")?,
    })
}

/// The store.
#[derive(Debug)]
pub struct Store {
    db: Db,
    master: MasterKey,
}

/// Does `db` hold any portal message (whose master key must then not change)? Asked before
/// the master key is loaded, so without a [`Store`].
pub async fn holds_messages(db: &Db) -> Result<bool, DbError> {
    Ok(sqlx::query("SELECT id FROM portal_message LIMIT 1")
        .fetch_optional(db.pool())
        .await?
        .is_some())
}

impl Store {
    /// The store in `db`, with `master` for the message keys.
    pub fn new(db: Db, master: MasterKey) -> Store {
        Store { db, master }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stores a message for one recipient.
    pub async fn deposit(&self, m: &NewMessage<'_>) -> Result<Deposited, StoreError> {
        let id = format!("P{}", random_token(12));
        let token = random_token(32);
        let revoke_token = random_token(32);
        let reference = reference_code();
        let (key, wrapped) = self.master.new_message_key(&id)?;
        let subject = key.seal(&id, "subject", m.subject.as_bytes())?;
        let body = key.seal(&id, "body", m.message)?;
        let now = crate::now();
        let expires_at = now + m.lifetime;
        sqlx::query(
            "INSERT INTO portal_message (id, recipient, sender, sender_name, reference, token_hash,
                wrapped_key, subject, body, size, created_at, expires_at, state, read_receipt, queue_id,
                revoke_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'active', $13, $14, $15)",
        )
        .bind(&id)
        .bind(m.recipient.to_ascii_lowercase())
        .bind(m.sender)
        .bind(m.sender_name)
        .bind(&reference)
        .bind(sha256_hex(token.as_bytes()))
        .bind(wrapped)
        .bind(subject)
        .bind(body)
        .bind(m.message.len() as i64)
        .bind(now)
        .bind(expires_at)
        .bind(m.read_receipt as i64)
        .bind(m.queue_id)
        .bind(sha256_hex(revoke_token.as_bytes()))
        .execute(self.db.pool())
        .await?;
        Ok(Deposited {
            id,
            token,
            reference,
            expires_at,
            revoke_token,
        })
    }

    /// The message a link token opens (any state: the page says why it is gone).
    pub async fn by_token(&self, token: &str) -> Result<MessageMeta, StoreError> {
        self.meta_where(
            concat!(
                "SELECT ",
                meta_columns!(),
                " FROM portal_message WHERE token_hash = $1"
            ),
            &sha256_hex(token.as_bytes()),
        )
        .await
    }

    /// The message a sender's withdrawal link names.
    pub async fn by_revoke_token(&self, token: &str) -> Result<MessageMeta, StoreError> {
        self.meta_where(
            concat!(
                "SELECT ",
                meta_columns!(),
                " FROM portal_message WHERE revoke_hash = $1"
            ),
            &sha256_hex(token.as_bytes()),
        )
        .await
    }

    /// The one message `query` (with one parameter) finds.
    async fn meta_where(
        &self,
        query: &'static str,
        value: &str,
    ) -> Result<MessageMeta, StoreError> {
        let row = sqlx::query(query)
            .bind(value)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(meta(&row)?)
    }

    /// One message.
    pub async fn meta(&self, id: &str) -> Result<MessageMeta, StoreError> {
        self.meta_where(
            concat!(
                "SELECT ",
                meta_columns!(),
                " FROM portal_message WHERE id = $1"
            ),
            id,
        )
        .await
    }

    /// Every message, newest first (administration), optionally of one recipient.
    pub async fn list(&self, recipient: Option<&str>) -> Result<Vec<MessageMeta>, StoreError> {
        let rows = match recipient {
            Some(r) => {
                let q = concat!(
                    "SELECT ",
                    meta_columns!(),
                    " FROM portal_message WHERE recipient = $1 AND state = 'active'
                     ORDER BY created_at DESC, id"
                );
                sqlx::query(q)
                    .bind(r.to_ascii_lowercase())
                    .fetch_all(self.db.pool())
                    .await?
            }
            None => {
                let q = concat!(
                    "SELECT ",
                    meta_columns!(),
                    " FROM portal_message ORDER BY created_at DESC, id"
                );
                sqlx::query(q).fetch_all(self.db.pool()).await?
            }
        };
        let now = crate::now();
        Ok(rows
            .iter()
            .map(meta)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|m| recipient.is_none() || m.expires_at > now)
            .collect())
    }

    /// Subject and content of a readable message.
    pub async fn content(&self, id: &str) -> Result<(String, Vec<u8>), StoreError> {
        let row = sqlx::query(
            "SELECT state, expires_at, wrapped_key, subject, body FROM portal_message WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        let state = MessageState::parse(&row.try_get::<String, _>("state")?);
        if state != MessageState::Active {
            return Err(StoreError::Gone(state));
        }
        if row.try_get::<i64, _>("expires_at")? <= crate::now() {
            return Err(StoreError::Gone(MessageState::Expired));
        }
        let wrapped: Option<Vec<u8>> = row.try_get("wrapped_key")?;
        let subject: Option<Vec<u8>> = row.try_get("subject")?;
        let body: Option<Vec<u8>> = row.try_get("body")?;
        let (Some(wrapped), Some(subject), Some(body)) = (wrapped, subject, body) else {
            return Err(StoreError::Gone(MessageState::Revoked));
        };
        let key = self.master.unwrap_key(id, &wrapped)?;
        let subject = String::from_utf8_lossy(&key.open(id, "subject", &subject)?).into_owned();
        Ok((subject, key.open(id, "body", &body)?))
    }

    /// The subject alone (inbox lines).
    pub async fn subject(&self, id: &str) -> Result<String, StoreError> {
        Ok(self.content(id).await?.0)
    }

    /// Records the first opening; true when this was it.
    pub async fn mark_opened(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE portal_message SET opened_at = $1 WHERE id = $2 AND opened_at IS NULL",
        )
        .bind(crate::now())
        .bind(id)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Destroys the key and the ciphertext of a message; true if it was active.
    pub async fn destroy(&self, id: &str, state: MessageState) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE portal_message SET state = $1, wrapped_key = NULL, subject = NULL, body = NULL
             WHERE id = $2 AND state = 'active'",
        )
        .bind(state.as_str())
        .bind(id)
        .execute(self.db.pool())
        .await?;
        sqlx::query("DELETE FROM portal_code WHERE message_id = $1")
            .bind(id)
            .execute(self.db.pool())
            .await?;
        self.db.scrub().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Active messages past their expiry.
    pub async fn due_for_expiry(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM portal_message WHERE state = 'active' AND expires_at <= $1",
        )
        .bind(crate::now())
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?)
    }

    /// A new one-time code for `message_id` (replacing earlier ones), unless `max_recent` were
    /// sent within `window` seconds.
    pub async fn issue_code(
        &self,
        message_id: &str,
        lifetime: i64,
        max_recent: i64,
        window: i64,
    ) -> Result<String, StoreError> {
        let now = crate::now();
        let recent: i64 = sqlx::query(
            "SELECT COUNT(*) FROM portal_code WHERE message_id = $1 AND created_at > $2",
        )
        .bind(message_id)
        .bind(now - window)
        .fetch_one(self.db.pool())
        .await?
        .try_get(0)?;
        if recent >= max_recent {
            return Err(StoreError::TooManyCodes);
        }
        let code = random_from(b"0123456789", 8);
        let mut tx = self.db.pool().begin().await?;
        // Older codes stop working (rows stay until they age out of the resend window).
        sqlx::query("UPDATE portal_code SET used = 1 WHERE message_id = $1")
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO portal_code (id, message_id, code_hash, created_at, expires_at, used)
             VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(random_token(12))
        .bind(message_id)
        .bind(code_hash(message_id, &code))
        .bind(now)
        .bind(now + lifetime)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(code)
    }

    /// Checks a code for `message_id`; `max_failures` wrong ones lock the link for `lock`
    /// seconds.
    pub async fn check_code(
        &self,
        message_id: &str,
        code: &str,
        max_failures: i64,
        lock: i64,
    ) -> Result<CodeCheck, StoreError> {
        let now = crate::now();
        let locked = match self
            .begin_attempt(LockOn::Link(message_id), max_failures, lock)
            .await?
        {
            Attempt::Locked(until) => return Ok(CodeCheck::Locked(until)),
            Attempt::Allowed { locks } => locks,
        };
        let typed: String = code.chars().filter(char::is_ascii_digit).collect();
        let rows = sqlx::query(
            "SELECT id, code_hash FROM portal_code
             WHERE message_id = $1 AND used = 0 AND expires_at > $2",
        )
        .bind(message_id)
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        let want = code_hash(message_id, &typed);
        for r in &rows {
            let hash: String = r.try_get("code_hash")?;
            if same(&hash, &want) {
                let id: String = r.try_get("id")?;
                // Single use, even when two requests race: only one update finds it unused.
                let done =
                    sqlx::query("UPDATE portal_code SET used = 1 WHERE id = $1 AND used = 0")
                        .bind(id)
                        .execute(self.db.pool())
                        .await?;
                if done.rows_affected() == 1 {
                    self.attempt_succeeded(LockOn::Link(message_id)).await?;
                    return Ok(CodeCheck::Accepted);
                }
            }
        }
        Ok(CodeCheck::Wrong { locked })
    }

    /// Counts an attempt on `on` before its secret is checked, so parallel attempts cannot all
    /// pass a lock that is read before a slow check and written after it: the count and the
    /// decision are one statement. The attempt that reaches `max_failures` sets the lock (and
    /// is itself still checked: at most `max_failures` checks per lock period); a success
    /// ([`Store::attempt_succeeded`]) forgives the count. Nothing to count on (an address
    /// without a password, a name that is no administrator) is allowed and counts nothing.
    pub async fn begin_attempt(
        &self,
        on: LockOn<'_>,
        max_failures: i64,
        lock: i64,
    ) -> Result<Attempt, StoreError> {
        let now = crate::now();
        let (table, key, failed, until, value) = on.columns();
        if let LockOn::Admin(_) = on {
            sqlx::query(
                "INSERT INTO admin_lock (name, failed, locked_until) VALUES ($1, 0, 0)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&value)
            .execute(self.db.pool())
            .await?;
        }
        // Static table and column names only (LockOn::columns); the values are bound.
        let sql = format!(
            "UPDATE {table} SET
                {failed} = CASE WHEN {failed} + 1 >= $1 THEN 0 ELSE {failed} + 1 END,
                {until} = CASE WHEN {failed} + 1 >= $1 THEN $2 ELSE {until} END
             WHERE {key} = $3 AND {until} <= $4
             RETURNING {until}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(max_failures)
            .bind(now + lock)
            .bind(&value)
            .bind(now)
            .fetch_optional(self.db.pool())
            .await?;
        if let Some(r) = row {
            return Ok(Attempt::Allowed {
                locks: r.try_get::<i64, _>(0)? > now,
            });
        }
        let held = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {until} FROM {table} WHERE {key} = $1"
        )))
        .bind(&value)
        .fetch_optional(self.db.pool())
        .await?
        .map(|r| r.try_get::<i64, _>(0))
        .transpose()?;
        Ok(match held {
            Some(until) if until > now => Attempt::Locked(until),
            _ => Attempt::Allowed { locks: false },
        })
    }

    /// The secret was right: the count on `on` starts again, and a lock that attempt set ends.
    pub async fn attempt_succeeded(&self, on: LockOn<'_>) -> Result<(), StoreError> {
        let (table, key, failed, until, value) = on.columns();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET {failed} = 0, {until} = 0 WHERE {key} = $1"
        )))
        .bind(&value)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Sets (or replaces) the password hash of `address`.
    pub async fn set_password(&self, address: &str, hash: &str) -> Result<(), StoreError> {
        let a = address.to_ascii_lowercase();
        let mut tx = self.db.pool().begin().await?;
        sqlx::query("DELETE FROM portal_account WHERE address = $1")
            .bind(&a)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO portal_account (address, password_hash, created_at) VALUES ($1, $2, $3)",
        )
        .bind(&a)
        .bind(hash)
        .bind(crate::now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The password hash of `address`, if it set one.
    pub async fn password_hash(&self, address: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query("SELECT password_hash FROM portal_account WHERE address = $1")
                .bind(address.to_ascii_lowercase())
                .fetch_optional(self.db.pool())
                .await?
                .map(|r| r.try_get::<String, _>(0))
                .transpose()?,
        )
    }

    /// A new session; returns the cookie value and the session.
    pub async fn new_session(
        &self,
        message_id: Option<&str>,
        admin: bool,
    ) -> Result<(String, Session), StoreError> {
        let cookie = random_token(32);
        let now = crate::now();
        let s = Session {
            id_hash: sha256_hex(cookie.as_bytes()),
            address: None,
            message_id: message_id.map(str::to_string),
            proof: None,
            csrf: random_token(32),
            admin,
            created_at: now,
            last_seen: now,
        };
        sqlx::query(
            "INSERT INTO portal_session (id_hash, address, message_id, proof, csrf, admin, created_at, last_seen)
             VALUES ($1, NULL, $2, NULL, $3, $4, $5, $6)",
        )
        .bind(&s.id_hash)
        .bind(&s.message_id)
        .bind(&s.csrf)
        .bind(admin as i64)
        .bind(now)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok((cookie, s))
    }

    /// The live session behind a cookie (idle and absolute timeouts in seconds); touching it.
    pub async fn session(
        &self,
        cookie: &str,
        idle: i64,
        absolute: i64,
    ) -> Result<Option<Session>, StoreError> {
        let h = sha256_hex(cookie.as_bytes());
        let Some(row) = sqlx::query("SELECT * FROM portal_session WHERE id_hash = $1")
            .bind(&h)
            .fetch_optional(self.db.pool())
            .await?
        else {
            return Ok(None);
        };
        let s = session_of(&row)?;
        let now = crate::now();
        if now - s.last_seen > idle || now - s.created_at > absolute {
            self.end_session(&s.id_hash).await?;
            return Ok(None);
        }
        // Touched at most once a minute: the idle timeout needs no finer clock, and a write
        // (an fsync) on every page view is what made pages slow under load.
        if now - s.last_seen >= 60 {
            sqlx::query("UPDATE portal_session SET last_seen = $1 WHERE id_hash = $2")
                .bind(now)
                .bind(&h)
                .execute(self.db.pool())
                .await?;
        }
        Ok(Some(s))
    }

    /// Marks a session's address (or administrator name, with `admin`) proven. The session
    /// gets a new cookie and CSRF token (the old cookie, which may have been planted, stops
    /// working).
    pub async fn prove(
        &self,
        old: &Session,
        address: &str,
        proof: &str,
        admin: bool,
    ) -> Result<(String, Session), StoreError> {
        self.end_session(&old.id_hash).await?;
        let (cookie, mut s) = self.new_session(old.message_id.as_deref(), admin).await?;
        sqlx::query("UPDATE portal_session SET address = $1, proof = $2 WHERE id_hash = $3")
            .bind(address.to_ascii_lowercase())
            .bind(proof)
            .bind(&s.id_hash)
            .execute(self.db.pool())
            .await?;
        s.address = Some(address.to_ascii_lowercase());
        s.proof = Some(proof.into());
        Ok((cookie, s))
    }

    /// Ends a session.
    pub async fn end_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM portal_session WHERE id_hash = $1")
            .bind(id_hash)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Removes sessions idle or older than the limits, and codes past the resend window.
    pub async fn sweep(&self, idle: i64, absolute: i64, window: i64) -> Result<(), StoreError> {
        let now = crate::now();
        sqlx::query("DELETE FROM portal_session WHERE last_seen < $1 OR created_at < $2")
            .bind(now - idle)
            .bind(now - absolute)
            .execute(self.db.pool())
            .await?;
        sqlx::query("DELETE FROM portal_code WHERE created_at < $1")
            .bind(now - window.max(3600))
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}

/// Codes are short, so the hash is salted with the message: one table of hashes does not serve
/// every message.
fn code_hash(message_id: &str, code: &str) -> String {
    sha256_hex(format!("{message_id}\n{code}").as_bytes())
}
