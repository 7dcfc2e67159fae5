//! # postern-portal
//!
//! Secure delivery for recipients who run no gateway: the message is stored encrypted (a fresh
//! AES-256-GCM key per message, wrapped by a master key), the recipient gets a notification
//! with an unguessable link and a reference code, proves the address with a one-time code sent
//! in a second email (or an optional password), and reads, downloads and answers the message
//! on server-rendered pages that need no JavaScript. Replies go to the original sender only.
//! Every event is in a hash-chained audit log.
//!
//! The portal is a library: [`Portal::deliver`] takes a message in, [`web::router`] is an
//! axum router, and the mail it writes leaves through an [`Outbox`] the embedding gateway
//! provides (postern-relay spools it like any other message).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use postern_portal::{Db, MasterKey, MemoryOutbox, Portal, PortalSettings};
//! let db = Db::sqlite(std::path::Path::new("portal.sqlite")).await?;
//! let outbox = Arc::new(MemoryOutbox::default());
//! let portal = Arc::new(Portal::new(
//!     db,
//!     MasterKey::new(&[7u8; 32])?,
//!     PortalSettings::default(),
//!     "http://127.0.0.1:2580".into(),
//!     false,
//!     outbox,
//! )
//! // Replies, read receipts and sender notices go only to addresses of ours.
//! .with_our_addresses(|a| a.ends_with("@hospital.example")));
//! portal
//!     .deliver(Some("dr.a@hospital.example"), &["office@practice.example".into()],
//!              b"From: dr.a@hospital.example\r\nSubject: Labs\r\n\r\nResults attached.\r\n",
//!              "Q1", None)
//!     .await?;
//! let app = postern_portal::web::router(portal);
//! # let _ = app; Ok(()) }
//! ```
#![forbid(unsafe_code)]

/// Implements [`crate::extract::CsrfForm`] for a form with a `csrf` field.
macro_rules! csrf_form {
    ($t:ty) => {
        impl $crate::extract::CsrfForm for $t {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        }
    };
}

pub mod admin;
pub mod desk;
mod extract;
mod layout;
pub mod letters;
pub mod limit;
pub mod outbox;
mod pages;
pub mod render;
pub mod serve;
pub mod service;
pub mod settings;
pub mod web;

// The storage the portal works on lives in postern-store (shared with the relay); its modules
// are re-exported under the names the portal has always had.
pub use postern_store::portal as store;
pub use postern_store::{audit, db, password, seal};

pub use audit::{Action, AuditLog, AuditRecord, ChainError};
pub use db::{Backend, Db, DbError};
pub use desk::{AdminDesk, DeskError, QuarantineLine};
pub use outbox::{MailKind, MemoryOutbox, Outbox, OutboxError, OutgoingMail};
pub use seal::MasterKey;
pub use service::{OurAddresses, Portal, PortalError};
pub use settings::PortalSettings;
pub use store::{MessageMeta, MessageState, Store, StoreError};

pub use postern_store::now;
