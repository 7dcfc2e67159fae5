//! One storage layer for both databases: SQLite (embedded, the default) and PostgreSQL (a
//! `database = "postgres://…"` line), through sqlx's `Any` driver, so every query is written
//! once. Queries use `$1`-style parameters, in order of first use, which both accept.
//!
//! Migrations are numbered scripts with one text per database (their types differ: `BLOB` and
//! `BYTEA`); each runs once, in a transaction, and is recorded in `postern_schema`.

use std::path::Path;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A key file the database needs cannot be read.
    #[error(transparent)]
    KeyFile(#[from] crate::keyfile::KeyFileError),
    /// The URL names PostgreSQL, and this build has no PostgreSQL driver (feature `postgres`).
    #[error("database URL {0:?}: this build has no PostgreSQL support (built without the postgres feature)")]
    NoPostgres(String),
    /// The URL names a database we do not speak.
    #[error("database URL {0:?}: expected sqlite:… or postgres://…")]
    Url(String),
    /// A key file is not the one this database's data was stored under.
    #[error("{name} key does not match the key this database's data was stored under (key check value {given}, the database expects {stored}): restore the right key file; a new key cannot read what the old one protects")]
    KeyMismatch {
        /// Which key.
        name: String,
        /// The value recorded in the database.
        stored: String,
        /// The value of the key given.
        given: String,
    },
}

/// A key that must never be printed.
#[derive(Clone)]
struct SecretKey(zeroize::Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, embedded.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A pool on one database, migrated to the current schema.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// The key of the audit chain's HMAC (kept outside the database; see [`Db::with_audit_key`]).
    audit_key: Option<SecretKey>,
}

/// One schema change: a version and its script for each database.
struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

/// The schema, oldest first. Append only: a shipped migration is never edited.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("../migrations/0001_portal.sqlite.sql"),
        postgres: include_str!("../migrations/0001_portal.postgres.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("../migrations/0002_quarantine.sqlite.sql"),
        postgres: include_str!("../migrations/0002_quarantine.postgres.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("../migrations/0003_sender_revoke.sqlite.sql"),
        postgres: include_str!("../migrations/0003_sender_revoke.postgres.sql"),
    },
    Migration {
        version: 4,
        sqlite: include_str!("../migrations/0004_harvest.sqlite.sql"),
        postgres: include_str!("../migrations/0004_harvest.postgres.sql"),
    },
    Migration {
        version: 5,
        sqlite: include_str!("../migrations/0005_locks_retention.sqlite.sql"),
        postgres: include_str!("../migrations/0005_locks_retention.postgres.sql"),
    },
    Migration {
        version: 6,
        sqlite: include_str!("../migrations/0006_key_check.sql"),
        postgres: include_str!("../migrations/0006_key_check.sql"),
    },
    Migration {
        version: 7,
        sqlite: include_str!("../migrations/0007_reason_code.sql"),
        postgres: include_str!("../migrations/0007_reason_code.sql"),
    },
    Migration {
        version: 8,
        sqlite: include_str!("../migrations/0008_direct_tracking.sql"),
        postgres: include_str!("../migrations/0008_direct_tracking.sql"),
    },
];

/// A key check value: the first 8 bytes of HMAC-SHA256(key, a fixed text), hex. It tells keys
/// apart without revealing them.
pub fn key_check_value(key: &[u8]) -> String {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&k, b"postern key check value v1");
    crate::hex(&tag.as_ref()[..8])
}

impl Db {
    /// Opens the SQLite database file at `path` (made 0600 before SQLite creates its WAL files,
    /// which take the database file's mode).
    pub async fn sqlite(path: &Path) -> Result<Db, DbError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path);
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Db::connect(&url).await
    }

    /// Opens the database at `url` (`sqlite://PATH?mode=rwc`, `postgres://…`) and migrates it.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if cfg!(not(feature = "postgres")) {
                return Err(DbError::NoPostgres(redact(url)));
            }
            Backend::Postgres
        } else {
            return Err(DbError::Url(redact(url)));
        };
        let mut opts = AnyPoolOptions::new().max_connections(8);
        if backend == Backend::Sqlite {
            opts = opts.after_connect(|conn, _| {
                Box::pin(async move {
                    // Stored portal mail and audit rows must survive a crash like spooled mail.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    // Destroyed content (a revoked message's wrapped key and ciphertext, a
                    // purged quarantine entry) is overwritten with zeros in the pages that held
                    // it, not only unlinked from the b-tree; [`Db::scrub`] then clears the WAL.
                    conn.execute("PRAGMA secure_delete = ON").await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect(url).await?;
        let db = Db {
            pool,
            backend,
            audit_key: None,
        };
        db.migrate().await?;
        Ok(db)
    }

    /// The same database, with the key that authenticates the audit chain: every row appended
    /// through it is chained by HMAC-SHA256 under `key` (see [`crate::audit`]). The key must live
    /// outside the database, or whoever can rewrite the table can rewrite the chain.
    pub fn with_audit_key(mut self, key: [u8; 32]) -> Db {
        self.audit_key = Some(SecretKey(zeroize::Zeroizing::new(key)));
        self
    }

    /// The audit chain's key, if set.
    pub fn audit_key(&self) -> Option<&[u8; 32]> {
        self.audit_key.as_ref().map(|k| &*k.0)
    }

    /// Checks that `key` is the key this database's data named `name` was stored under: the
    /// first time, its key check value (an HMAC of a fixed text, which does not reveal the key)
    /// is recorded; after that a different key is refused with [`DbError::KeyMismatch`]. A
    /// replaced `portal.key` once let the portal start, email codes, and then fail every page.
    pub async fn check_key(&self, name: &str, key: &[u8]) -> Result<(), DbError> {
        let kcv = key_check_value(key);
        sqlx::query(
            "INSERT INTO key_check (name, kcv) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(&kcv)
        .execute(&self.pool)
        .await?;
        let stored: String = sqlx::query("SELECT kcv FROM key_check WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        if stored == kcv {
            Ok(())
        } else {
            Err(DbError::KeyMismatch {
                name: name.into(),
                stored,
                given: kcv,
            })
        }
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The database behind it.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// After content was destroyed: on SQLite, copies the WAL into the database and cuts it to
    /// nothing, so the frames that still held the content before its destruction are gone from
    /// the disk's files (with `secure_delete`, the database pages hold zeros where it was). A
    /// reader still busy keeps the WAL; the next scrub, or the next automatic checkpoint, ends
    /// it. PostgreSQL keeps dead row versions until VACUUM (ARCHITECTURE.md says what an
    /// operator runs); nothing is done here.
    pub async fn scrub(&self) -> Result<(), DbError> {
        if self.backend != Backend::Sqlite {
            return Ok(());
        }
        for _ in 0..5 {
            let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await?;
            // (busy, frames in the WAL, frames checkpointed): busy 0 means the WAL is empty now.
            if row.try_get::<i64, _>(0)? == 0 {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tracing::warn!("the WAL could not be emptied after destroying content (a reader held it); the next checkpoint will");
        Ok(())
    }

    /// Whether the database answers (a health check: `SELECT 1`).
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool (SQLite: checkpoints the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // Several nodes may start at once on one database: one migrates, the others wait
            // (CREATE TABLE IF NOT EXISTS alone races in PostgreSQL). Released at commit.
            tx.execute("SELECT pg_advisory_xact_lock(7305726275)")
                .await?;
        }
        tx.execute(
            "CREATE TABLE IF NOT EXISTS postern_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await?;
        let done: Vec<i64> = sqlx::query("SELECT version FROM postern_schema")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r: &AnyRow| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
            let script = match self.backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            sqlx::raw_sql(script).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO postern_schema (version, applied_at) VALUES ($1, $2)")
                .bind(m.version)
                .bind(crate::now())
                .execute(&mut *tx)
                .await?;
            tracing::info!(version = m.version, "database migrated");
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let (head, tail) = url.split_at(at);
            match head.get(s + 3..).and_then(|creds| creds.find(':')) {
                Some(colon) => format!("{}:***{tail}", head.get(..s + 3 + colon).unwrap_or("")),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is a failure report
mod tests {
    use super::*;

    /// Without the postgres feature a PostgreSQL URL is a clear error, not a driver panic or a
    /// silent SQLite file.
    #[cfg(not(feature = "postgres"))]
    #[tokio::test]
    async fn a_build_without_postgres_says_so() {
        let e = Db::connect("postgres://postern:secret@127.0.0.1/postern")
            .await
            .unwrap_err();
        assert!(matches!(e, DbError::NoPostgres(_)), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn passwords_do_not_appear_in_url_errors() {
        assert_eq!(redact("mysql://u:secret@h/db"), "mysql://u:***@h/db");
        assert_eq!(redact("nothing"), "nothing");
    }
}
