//! The content-inspection hook: what the DLP crate fills in. Until then the relay passes
//! everything through ([`PassThrough`]); embedders can plug their own.

use postern_router::{ContentAction, Envelope};

/// Looks at an outgoing message before the router decides how it leaves.
pub trait ContentInspector: Send + Sync + std::fmt::Debug {
    /// The verdict for the copy that would leave in clear (`None`: not inspected).
    fn inspect(&self, envelope: &Envelope, message: &[u8]) -> Option<ContentAction>;
}

/// Inspects nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough;

impl ContentInspector for PassThrough {
    fn inspect(&self, _: &Envelope, _: &[u8]) -> Option<ContentAction> {
        None
    }
}
