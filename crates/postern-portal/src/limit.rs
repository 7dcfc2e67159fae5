//! Requests per client address per minute, for the sensitive paths (codes, sign-ins, replies):
//! a fixed one-minute window per address, forgotten when the window passes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// The limiter.
#[derive(Debug)]
pub struct Limiter {
    per_minute: u32,
    seen: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

impl Limiter {
    /// At most `per_minute` per address.
    pub fn new(per_minute: u32) -> Limiter {
        Limiter {
            per_minute,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request; false when the address is over its limit.
    pub fn allow(&self, client: IpAddr) -> bool {
        let minute = crate::now() / 60;
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.len() > 100_000 {
            seen.retain(|_, (m, _)| *m == minute);
        }
        let e = seen.entry(client).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        e.1 += 1;
        e.1 <= self.per_minute
    }
}
