//! The time certificates are checked at. The gateway asks its clock rather than the system, so
//! results with reference material whose certificates have expired (the Direct Project's test
//! sets, published samples) can be reproduced at the time they were made, by the command line
//! (`--at`) and by an embedder's tests; in service the clock is the system's.

use std::fmt::Debug;
use std::time::SystemTime;

/// Where "now" comes from.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock stopped at one time: every check happens as of then.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub SystemTime);

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}
