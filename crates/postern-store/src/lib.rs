//! # postern-store
//!
//! The gateway's database layer, shared by the relay, the portal and any embedder that keeps
//! state: one pool over SQLite (embedded, the default) or PostgreSQL (several nodes) with every
//! migration of the gateway, the hash-chained audit log, the quarantine, the harvested-key
//! store and the portal's message store, and the key files that protect what is stored.
//! Neither the relay nor the portal owns another's tables: both open this crate's [`Db`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use postern_store::{keyfile, quarantine::{HeldOrigin, Quarantine}, Db};
//! let db = Db::sqlite(std::path::Path::new("gateway.sqlite")).await?;
//! let key = keyfile::load_or_create(keyfile::KeyRole::Quarantine, "quarantine.key".as_ref(), true)?;
//! let q = Quarantine::new(db, *key)?;
//! let id = q
//!     .hold(HeldOrigin::Internal, Some("a@hospital.example"), &["b@elsewhere.example".into()],
//!           postern_store::HoldReason { code: postern_core::HoldCode::Content, text: "card number" },
//!           None, b"Subject: x\r\n\r\n4111 1111 1111 1111\r\n")
//!     .await?;
//! println!("held as {id}");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod audit;
pub mod db;
pub mod harvest;
pub mod keyfile;
pub mod password;
pub mod portal;
pub mod quarantine;
pub mod seal;
pub mod tracking;

pub use audit::{Action, AuditLog, AuditRecord, ChainError};
pub use db::{Backend, Db, DbError};
pub use harvest::{HarvestState, HarvestStore, Harvested};
pub use keyfile::{KeyFileError, KeyRole};
pub use quarantine::{Held, HeldOrigin, HeldState, HoldReason, Quarantine, QuarantineError};
pub use seal::MasterKey;
pub use tracking::{Notice, Noticed, Peeked, TrackState, Tracked, TrackingStore};

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A new identifier, unique across processes and ordered by time: milliseconds, a per-process
/// counter and 24 random bits, in upper-case hex (the spool's queue IDs and quarantine IDs).
pub fn new_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut r = [0u8; 3];
    // A failed RNG still leaves time and counter, which are unique within this process.
    let _ = aws_lc_rs::rand::fill(&mut r);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xfff;
    format!("{ms:011X}{c:03X}{:02X}{:02X}{:02X}", r[0], r[1], r[2])
}

/// Lower-case hex of `b` (digests, key check values).
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A stored word read back as its type: a value this version does not know is an error, not a
/// guess.
pub(crate) fn word<T: std::str::FromStr<Err = String>>(
    row: &sqlx::any::AnyRow,
    col: &str,
) -> Result<T, sqlx::Error> {
    use sqlx::Row;
    let s: String = row.try_get(col)?;
    s.parse().map_err(|e: String| sqlx::Error::ColumnDecode {
        index: col.into(),
        source: e.into(),
    })
}

/// The words stored in the database (and shown), both ways.
macro_rules! stored_words {
    ($t:ty { $($v:ident => $w:literal),+ $(,)? }) => {
        impl $t {
            /// As stored.
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $w),+ }
            }
        }
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($w => Ok(<$t>::$v),)+ other => Err(format!("unknown value {other:?}")) }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}
pub(crate) use stored_words;
