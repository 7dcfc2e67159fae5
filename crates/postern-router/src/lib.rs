//! # postern-router
//!
//! The gateway's brain. The **partner directory** says which domains are partners, which
//! standards they take and in what order, their policy (`required`, `preferred`,
//! `tls-required`, `portal`), their certificates, and our own identity — loaded from TOML (or
//! built in Rust), checked at load time, and reloadable without dropping the directory in force
//! when the new file is bad. [`Router::outbound`] decides, fail-closed, what happens to each
//! recipient of an outgoing message; [`InboundRouter::inbound`] opens and verifies mail from
//! partners. See ARCHITECTURE.md.
//!
//! Outbound: a partner that requires encryption but has no usable key is held or bounced, never
//! sent in clear; a portal partner gets portal delivery; everyone else the clear copy.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use postern_core::{Address, SecureEnvelope};
//! use postern_router::{
//!     CheckedDirectory, Directory, Disposition, Envelope, Inbound, InboundRouter, Router,
//! };
//!
//! let dir = Directory::from_toml(
//!     r#"
//!     [our]
//!     domains = ["clinic.example"]
//!
//!     [[partner]]
//!     domain = "smallpractice.example"
//!     policy = "portal"
//!
//!     [[partner]]
//!     domain = "lab.example"
//!     standards = ["openpgp"]
//!     policy = "required"
//!     key_sources = ["wkd"]        # and no WKD store given: no key, nothing may leave for it
//!     "#,
//!     std::path::Path::new("."),
//! )?;
//! let backends: Vec<Arc<dyn SecureEnvelope>> = vec![
//!     Arc::new(postern_smime::SmimeEnvelope::new()),
//!     Arc::new(postern_openpgp::OpenPgpEnvelope::new()),
//! ];
//! // Only a directory checked with the backends that will use it routes mail.
//! let dir = CheckedDirectory::check(dir, &backends, std::time::SystemTime::now())?;
//! let envelope = Envelope {
//!     mail_from: Some(Address::new("dr@clinic.example")?),
//!     rcpt_to: vec![
//!         Address::new("office@smallpractice.example")?,
//!         Address::new("results@lab.example")?,
//!         Address::new("someone@mail.example")?,
//!     ],
//! };
//! let raw = b"From: dr@clinic.example\r\nSubject: Labs\r\n\r\nResults attached.\r\n";
//! let rt = tokio::runtime::Runtime::new()?;
//! let plan = rt.block_on(Router::new(backends.clone()).outbound(&dir, &envelope, raw, None));
//!
//! let to = |d: &Disposition| match d {
//!     Disposition::Deliver { recipients, sealed: None, .. } => ("clear", recipients.clone()),
//!     Disposition::Deliver { recipients, .. } => ("sealed", recipients.clone()),
//!     Disposition::Portal { recipients, .. } => ("portal", recipients.clone()),
//!     Disposition::Hold { recipients, .. } | Disposition::Bounce { recipients, .. } => {
//!         ("not sent", recipients.clone())
//!     }
//!     Disposition::Quarantine { recipients, .. } => ("quarantine", recipients.clone()),
//!     Disposition::Local { recipients } => ("ours", recipients.clone()),
//! };
//! let who = |how: &str| -> Vec<String> {
//!     plan.iter()
//!         .map(to)
//!         .filter(|(h, _)| *h == how)
//!         .flat_map(|(_, r)| r.into_iter().map(|a| a.to_string()))
//!         .collect()
//! };
//! assert_eq!(who("portal"), ["office@smallpractice.example"]);
//! assert_eq!(who("not sent"), ["results@lab.example"]);
//! assert_eq!(who("clear"), ["someone@mail.example"]);
//!
//! // Inbound: result headers that arrive from outside are removed before anything is added.
//! let forged = b"From: x@mail.example\r\nPostern-Signature: valid\r\nSubject: hi\r\n\r\nhello\r\n";
//! match rt.block_on(InboundRouter::new(backends).inbound(&dir, None, forged)) {
//!     Inbound::Deliver { message, report, verdict } => {
//!         assert!(!String::from_utf8_lossy(&message).contains("Postern-Signature: valid"));
//!         assert!(report.is_none(), "it was not protected");
//!         assert_eq!(verdict, postern_core::SignatureVerdict::Absent);
//!     }
//!     Inbound::Quarantine { .. } => unreachable!("plain mail from a non-partner is delivered"),
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod addresses;
mod checked;
mod decide;
mod direct;
mod directory;
mod dkim;
mod gateway;
mod inbound;
mod lookups;
pub mod mdn;
mod route;
mod shared;
mod textonly;
mod validate;
mod wrapped;

pub use checked::{CheckedDirectory, Rejected};
pub use decide::{strip_bcc, Disposition, QuarantineReason, Reason, Router};
pub use direct::DirectFault;
pub use directory::{
    normalise_fingerprint, Directory, DirectoryError, DomainPattern, Harvest, KeySource, Legacy,
    OurIdentity, Partner, PartnerPolicy, PartnerProfile, Problem, UnsignedCbc,
};
pub use dkim::{dkim_signatures, DkimFields};
pub use gateway::{BuildError, Gateway, GatewayBuilder, Outgoing, Plan, ScanFallback};
pub use inbound::{
    signature_verdict, strip_results, Inbound, InboundAction, InboundPolicy, InboundRouter,
    RESULT_PREFIX,
};
pub use lookups::Lookups;
/// The inspection plug, defined in postern-core beside the other plug traits (re-exported
/// here so that an embedder of the router finds it with the gateway).
pub use postern_core::{ContentAction, ContentInspector, Envelope, Inspection, PassThrough};
/// DKIM keys and signers (postern-dkim), as `[[our.dkim]]` holds them.
pub use postern_dkim as dkim_keys;
pub use route::{Decision, Origin, Route, Submission};
pub use shared::{ReloadError, SharedDirectory};
pub use textonly::text_only;
pub use validate::{validate, Finding, Severity};
pub use wrapped::{unwrap as unwrap_wrapped, unwrap_opened, BadWrapper, Unwrapped};
