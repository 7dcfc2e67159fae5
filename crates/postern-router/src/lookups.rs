//! Partner keys looked up ahead of sealing: the I/O half of an outgoing message's decision.
//!
//! Finding a partner's keys may wait on the network (WKD, DNS, LDAP, a revocation responder);
//! sealing and inspection only compute. [`crate::Gateway::look_up`] does the first, on the
//! caller's async runtime; [`crate::Gateway::outbound_with`] does the second, synchronously,
//! on whatever thread the caller gives it (a thread pool of its own, a session thread), with
//! what was found and without any I/O of its own.
//!
//! What was found is bound to the checked directory it was found for and to the recipients
//! of each partner group: with another directory (reloaded meanwhile: its entries may have
//! other keys or other partners at the same place) or other recipients, nothing here is used
//! and the copy waits (a temporary failure), never sealed to keys found for someone else.

use postern_core::{Address, Error, Standard};

/// The keys for every partner group of one outgoing message, by partner entry and standard,
/// or why there are none (a source that is down, no key anywhere, a revoked certificate).
#[derive(Debug, Clone, Default)]
pub struct Lookups {
    /// The generation of the checked directory they were looked up in (0: none).
    pub(crate) directory: u64,
    pub(crate) entries: Vec<LookedUp>,
}

/// One partner group's certificates for one standard.
#[derive(Debug, Clone)]
pub(crate) struct LookedUp {
    /// The partner's index in the directory.
    pub(crate) partner: usize,
    pub(crate) standard: Standard,
    /// The group's recipients, in envelope order.
    pub(crate) recipients: Vec<Address>,
    /// The certificates to seal to (never empty when `Ok`), revocation checked.
    pub(crate) certificates: Result<Vec<Vec<u8>>, Error>,
}

impl Lookups {
    /// How many (partner, standard) pairs were looked up.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was looked up (no partner group that may be sealed to).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The certificates found for `partner`'s group of `recipients` in `standard`, looked up in
    /// the directory of `generation`. Anything else — another directory, other recipients, a
    /// standard not looked up — is a temporary failure: the copy waits for a fresh lookup.
    pub(crate) fn certificates(
        &self,
        generation: u64,
        partner: usize,
        standard: Standard,
        recipients: &[Address],
    ) -> Result<Vec<Vec<u8>>, Error> {
        if self.directory != generation {
            return Err(Error::Unavailable(
                "partner keys were looked up in another directory (reloaded since): look them up \
                 again"
                    .into(),
            ));
        }
        self.entries
            .iter()
            .find(|e| e.partner == partner && e.standard == standard && e.recipients == recipients)
            .map(|e| e.certificates.clone())
            .unwrap_or_else(|| {
                Err(Error::Unavailable(format!(
                    "no {standard} keys were looked up for these recipients"
                )))
            })
    }
}
