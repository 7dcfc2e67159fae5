//! Direct delivery notifications from the relay: once an opened message from a Direct partner
//! reached our mail server, each recipient's `processed` MDN (made by `postern_router::mdn`)
//! is queued as our own outbound mail from that recipient, so it is wrapped, signed and
//! encrypted to the partner like any Direct message.

use postern_core::Address;

use crate::shared::Shared;
use crate::spool::{Entry, Origin, RcptState, Recipient, Spool};
use crate::util::{rfc5322_date, unix_ms};

/// Queues the processed MDNs for `entry`'s recipients at `idx` that `delivered` (the opened
/// message as delivered) has just reached. Each is written to the spool durably before it
/// counts; a spool that cannot take one is logged, and the delivery stands.
pub(crate) fn queue_processed(shared: &Shared, entry: &Entry, idx: &[usize], delivered: &[u8]) {
    let rcpts: Vec<Address> = idx
        .iter()
        .filter_map(|&i| entry.recipients.get(i))
        .filter(|r| r.state == RcptState::Delivered)
        .filter_map(|r| Address::new(&r.address).ok())
        .collect();
    if rcpts.is_empty() {
        return;
    }
    let dir = shared.directory.current();
    let mail_from = entry
        .mail_from
        .as_deref()
        .and_then(|a| Address::new(a).ok());
    let now = unix_ms();
    let date = rfc5322_date(now / 1000);
    let unique = Spool::new_id();
    let stamp = postern_router::mdn::Stamp {
        date: &date,
        unique: &unique,
        hostname: &shared.settings.hostname,
    };
    for n in postern_router::mdn::processed(&dir, mail_from.as_ref(), delivered, &rcpts, &stamp) {
        let id = Spool::new_id();
        let mdn = Entry::new(
            id.clone(),
            Origin::Internal,
            "127.0.0.1",
            Some(n.from.to_string()),
            vec![Recipient::new(n.to.to_string())],
            n.message.len() as u64,
        );
        match shared.spool.accept(&mdn, &n.message) {
            Ok(()) => {
                shared.metrics.mdn_processed.inc();
                shared.metrics.queue_depth.inc();
                shared.scheduler.submit(&id, now);
                tracing::info!(queue_id = %entry.id, mdn_id = %id, "processed notification queued");
            }
            Err(e) => {
                tracing::error!(queue_id = %entry.id, error = %e, "could not queue a processed notification");
            }
        }
    }
}
