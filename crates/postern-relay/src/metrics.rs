//! Prometheus metrics: lock-free counters and histograms, rendered in the text exposition
//! format (served by [`crate::status`]).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use postern_core::SignatureVerdict;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one away.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let c = self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {n}");
    }
}

/// Everything the relay counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open SMTP sessions.
    pub connections: Gauge,
    /// Messages accepted into the spool.
    pub received: Counter,
    /// Messages refused at DATA (size, bare LF).
    pub rejected: Counter,
    /// Recipients delivered sealed.
    pub delivered_sealed: Counter,
    /// Recipients delivered in clear (or user-encrypted pass-through).
    pub delivered_plain: Counter,
    /// Recipients delivered inbound (opened or plain) to our mail server.
    pub delivered_inbound: Counter,
    /// Recipients whose message was stored in the portal (and notified).
    pub delivered_portal: Counter,
    /// Recipients bounced.
    pub bounced: Counter,
    /// Recipients held (quarantine, portal).
    pub held: Counter,
    /// Recipients deferred for a retry.
    pub deferred: Counter,
    /// Delivery attempts (SMTP transactions or files written).
    pub delivery_attempts: Counter,
    /// Messages in the spool.
    pub queue_depth: Gauge,
    /// Time to route and seal one outbound message.
    pub seal_latency: Histogram,
    /// Time to open one inbound message.
    pub open_latency: Histogram,
    /// Panics contained while processing a message (each one is a bug to report).
    pub panics: Counter,
    /// Direct `processed` notifications queued (one per recipient of a Direct message).
    pub mdn_processed: Counter,
    /// Direct `dispatched` notifications queued.
    pub mdn_dispatched: Counter,
    /// Direct `failed` notifications queued.
    pub mdn_failed: Counter,
    /// Partners' notifications about our Direct messages that counted (first of their kind).
    pub mdn_received: Counter,
    /// Duplicate or replayed notifications not passed on.
    pub mdn_suppressed: Counter,
    /// Direct recipients whose notifications did not come in time (their sender was told).
    pub tracking_timeouts: Counter,
    /// Inbound messages delivered, by the signature verdict stated on them (in the order of
    /// [`SignatureVerdict::ALL`]).
    inbound_signatures: [Counter; SignatureVerdict::ALL.len()],
}

impl Metrics {
    /// The counter of inbound messages delivered with this verdict.
    pub fn inbound_signature(&self, verdict: SignatureVerdict) -> &Counter {
        // A match, not a search: a verdict added to the type must be placed here to compile.
        let i = match verdict {
            SignatureVerdict::Valid => 0,
            SignatureVerdict::Weak => 1,
            SignatureVerdict::Partial => 2,
            SignatureVerdict::Untrusted => 3,
            SignatureVerdict::Refused => 4,
            SignatureVerdict::Invalid => 5,
            SignatureVerdict::Absent => 6,
        };
        &self.inbound_signatures[i]
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "postern_smtp_connections",
            "Open SMTP sessions.",
            self.connections.get(),
        );
        gauge(
            "postern_queue_depth",
            "Messages in the spool.",
            self.queue_depth.get(),
        );
        let _ = writeln!(
            out,
            "# HELP postern_messages_received_total Messages accepted into the spool.\n# TYPE postern_messages_received_total counter\npostern_messages_received_total {}",
            self.received.get()
        );
        let _ = writeln!(
            out,
            "# HELP postern_notifications_sent_total Delivery notifications queued, by type.\n# TYPE postern_notifications_sent_total counter\npostern_notifications_sent_total{{type=\"processed\"}} {}\npostern_notifications_sent_total{{type=\"dispatched\"}} {}\npostern_notifications_sent_total{{type=\"failed\"}} {}",
            self.mdn_processed.get(),
            self.mdn_dispatched.get(),
            self.mdn_failed.get()
        );
        let _ = writeln!(
            out,
            "# HELP postern_notifications_received_total Partners' delivery notifications about our Direct messages, by outcome.\n# TYPE postern_notifications_received_total counter\npostern_notifications_received_total{{outcome=\"counted\"}} {}\npostern_notifications_received_total{{outcome=\"suppressed\"}} {}",
            self.mdn_received.get(),
            self.mdn_suppressed.get()
        );
        let _ = writeln!(
            out,
            "# HELP postern_direct_tracking_timeouts_total Direct recipients whose notifications did not come in time.\n# TYPE postern_direct_tracking_timeouts_total counter\npostern_direct_tracking_timeouts_total {}",
            self.tracking_timeouts.get()
        );
        let _ = writeln!(
            out,
            "# HELP postern_messages_rejected_total Messages refused at end of DATA.\n# TYPE postern_messages_rejected_total counter\npostern_messages_rejected_total {}",
            self.rejected.get()
        );
        let _ = writeln!(
            out,
            "# HELP postern_recipients_total Recipients by disposition.\n# TYPE postern_recipients_total counter"
        );
        for (label, c) in [
            ("delivered_sealed", &self.delivered_sealed),
            ("delivered_plain", &self.delivered_plain),
            ("delivered_inbound", &self.delivered_inbound),
            ("delivered_portal", &self.delivered_portal),
            ("bounced", &self.bounced),
            ("held", &self.held),
            ("deferred", &self.deferred),
        ] {
            let _ = writeln!(
                out,
                "postern_recipients_total{{disposition=\"{label}\"}} {}",
                c.get()
            );
        }
        let _ = writeln!(
            out,
            "# HELP postern_inbound_signatures_total Inbound messages delivered, by the signature verdict stated on them.\n# TYPE postern_inbound_signatures_total counter"
        );
        for v in SignatureVerdict::ALL {
            let _ = writeln!(
                out,
                "postern_inbound_signatures_total{{verdict=\"{v}\"}} {}",
                self.inbound_signature(v).get()
            );
        }
        let _ = writeln!(
            out,
            "# HELP postern_delivery_attempts_total Delivery attempts.\n# TYPE postern_delivery_attempts_total counter\npostern_delivery_attempts_total {}",
            self.delivery_attempts.get()
        );
        let _ = writeln!(
            out,
            "# HELP postern_processing_panics_total Internal errors contained while processing a message (alert on any).\n# TYPE postern_processing_panics_total counter\npostern_processing_panics_total {}",
            self.panics.get()
        );
        self.seal_latency.render(
            "postern_seal_seconds",
            "Routing and sealing time per outbound message.",
            &mut out,
        );
        self.open_latency.render(
            "postern_open_seconds",
            "Opening time per inbound message.",
            &mut out,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verdict_has_its_own_counter_and_line() {
        let m = Metrics::default();
        for (n, v) in SignatureVerdict::ALL.into_iter().enumerate() {
            m.inbound_signature(v).add(n as u64 + 1);
        }
        let text = m.render();
        for (n, v) in SignatureVerdict::ALL.into_iter().enumerate() {
            let line = format!(
                "postern_inbound_signatures_total{{verdict=\"{v}\"}} {}",
                n + 1
            );
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
