//! # postern-router
//!
//! The gateway's brain. The **partner directory** says which domains are partners, which
//! standards they take and in what order, their policy (`required`, `preferred`,
//! `tls-required`, `portal`), their certificates, and our own identity — loaded from TOML (or
//! built in Rust), checked at load time, and reloadable without dropping the directory in force
//! when the new file is bad. [`Router::outbound`] decides, fail-closed, what happens to each
//! recipient of an outgoing message; [`InboundRouter::inbound`] opens and verifies mail from
//! partners. See ARCHITECTURE.md.
#![forbid(unsafe_code)]

mod decide;
mod directory;
mod inbound;
mod shared;
mod textonly;
mod validate;

pub use decide::{strip_bcc, ContentAction, Disposition, Envelope, Router};
pub use directory::{
    Directory, DirectoryError, DomainPattern, Legacy, OurIdentity, Partner, PartnerPolicy, Problem,
    UnsignedCbc,
};
pub use inbound::{
    strip_results, Inbound, InboundAction, InboundPolicy, InboundRouter, RESULT_PREFIX,
};
pub use shared::{ReloadError, SharedDirectory};
pub use textonly::text_only;
pub use validate::{validate, Finding, Severity};
