//! The malware-scanning plug: a virus scanner (clamd, or an embedder's own) looks at every
//! message as our users will see it — after decryption for sealed mail from outside, before
//! sealing for mail that leaves, where nobody else can scan it any more.

use std::fmt;

/// What a scanner found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanVerdict {
    /// Nothing.
    Clean,
    /// Malware, by the scanner's name for it.
    Infected {
        /// The signature that matched (safe to log and show: a name, not content).
        signature: String,
    },
    /// The scanner could not answer (down, timed out, a reply it does not understand): the
    /// gateway defers or passes as its policy says.
    Unavailable {
        /// Why, safe to log.
        why: String,
    },
    /// The scanner answered that it cannot scan this message (over its size limit): trying
    /// again would fail the same way, so the message is held for review rather than retried
    /// until it expires or, under a "pass" policy, let through unscanned.
    Unscannable {
        /// Why, safe to log.
        why: String,
    },
}

/// Scans one message. Called off the async workers; may block for as long as the scan takes
/// (an implementation bounds its own waiting and answers [`ScanVerdict::Unavailable`]).
pub trait MalwareScanner: Send + Sync + fmt::Debug {
    /// Its name in results and logs (`clamd`).
    fn name(&self) -> &str;
    /// The verdict on `message`.
    fn scan(&self, message: &[u8]) -> ScanVerdict;
}
