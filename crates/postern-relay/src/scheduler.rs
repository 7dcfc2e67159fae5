//! Which spooled message is worked on next. The spool is the truth; this is only an in-memory
//! timetable of queue IDs, rebuilt from the spool at start-up, so losing it loses nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use crate::util::unix_ms;

#[derive(Default)]
struct Table {
    /// (due time in Unix ms, queue ID).
    due: BTreeSet<(u64, String)>,
    /// Each ID's current due time, so a resubmission replaces the old slot.
    at: HashMap<String, u64>,
    /// IDs a worker is processing now (never two workers on one message).
    running: HashSet<String>,
    /// IDs resubmitted while running: put back when the worker finishes.
    again: HashMap<String, u64>,
}

/// The timetable shared by the listeners and the workers.
#[derive(Default)]
pub struct Scheduler {
    table: Mutex<Table>,
    wake: Notify,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scheduler")
    }
}

impl Scheduler {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // The table holds no invariant a panicking holder could break halfway that matters
        // more than keeping mail moving.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Schedules `id` at `at_ms` (replacing an earlier slot).
    pub fn submit(&self, id: &str, at_ms: u64) {
        {
            let mut t = self.table();
            if t.running.contains(id) {
                t.again.insert(id.to_string(), at_ms);
                return;
            }
            if let Some(old) = t.at.insert(id.to_string(), at_ms) {
                t.due.remove(&(old, id.to_string()));
            }
            t.due.insert((at_ms, id.to_string()));
        }
        self.wake.notify_one();
    }

    /// How many messages are scheduled or running.
    pub fn len(&self) -> usize {
        let t = self.table();
        t.at.len() + t.running.len()
    }

    /// Whether nothing is scheduled or running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the next due message and marks it running. Returns `None` when woken with
    /// nothing due (the caller checks for shutdown and calls again).
    pub async fn next(&self) -> Option<String> {
        let wait = {
            let mut t = self.table();
            let now = unix_ms();
            match t.due.first().cloned() {
                Some((at, id)) if at <= now => {
                    t.due.remove(&(at, id.clone()));
                    t.at.remove(&id);
                    t.running.insert(id.clone());
                    return Some(id);
                }
                Some((at, _)) => Duration::from_millis((at - now).min(1000)),
                None => Duration::from_secs(1),
            }
        };
        let _ = tokio::time::timeout(wait, self.wake.notified()).await;
        None
    }

    /// A worker is done with `id`; `next_ms` reschedules it (`None`: it left the spool or is
    /// held). A resubmission that came in while it ran wins if earlier.
    pub fn finish(&self, id: &str, next_ms: Option<u64>) {
        let again = {
            let mut t = self.table();
            t.running.remove(id);
            let again = t.again.remove(id);
            match (next_ms, again) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        if let Some(at) = again {
            self.submit(id, at);
        }
    }

    /// Makes everything scheduled due now (`queue flush`).
    pub fn flush(&self) {
        {
            let mut t = self.table();
            let now = unix_ms();
            let ids: Vec<String> = t.at.keys().cloned().collect();
            t.due.clear();
            for id in ids {
                t.at.insert(id.clone(), now);
                t.due.insert((now, id));
            }
        }
        self.wake.notify_waiters();
    }

    /// Wakes every waiting worker (shutdown).
    pub fn wake_all(&self) {
        self.wake.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn due_order_and_no_double_processing() {
        let s = Scheduler::default();
        let now = unix_ms();
        s.submit("B", now);
        s.submit("A", now - 10);
        s.submit("C", now + 60_000);
        assert_eq!(s.next().await.as_deref(), Some("A"));
        assert_eq!(s.next().await.as_deref(), Some("B"));
        // C is not due; a resubmission of running A is deferred until A finishes.
        s.submit("A", now);
        assert_eq!(s.next().await, None);
        s.finish("A", None);
        assert_eq!(s.next().await.as_deref(), Some("A"));
        s.flush();
        assert_eq!(s.next().await.as_deref(), Some("C"));
        assert_eq!(s.len(), 3);
    }
}
