//! Direct delivery notifications in the relay. Receiving: once an opened message from a
//! Direct partner reached our mail server, each recipient's `processed` MDN (made by
//! `postern_router::mdn`) is queued as our own outbound mail from that recipient, so it is
//! wrapped, signed and encrypted to the partner like any Direct message. Sending: each Direct
//! message handed to a partner is tracked per recipient in the database until its
//! notifications come back; duplicates are not passed on, and a sender whose message got none
//! in time is told by a DSN.

use std::sync::Arc;
use std::time::Duration;

use postern_core::Address;
use tokio::sync::watch;

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

/// After a sealed copy reached a Direct partner: each of its recipients there is tracked until
/// their notifications come back or the deadline passes (see [`sweep`]). Mail from the null
/// sender is not tracked (nobody to tell), nor a message without a Message-ID (nothing for a
/// notification to name).
pub(crate) async fn track_sent(shared: &Shared, entry: &Entry, idx: &[usize], original: &[u8]) {
    let Some(sender) = entry.mail_from.as_deref().filter(|s| !s.is_empty()) else {
        return;
    };
    let dir = shared.directory.current();
    let rcpts: Vec<String> = idx
        .iter()
        .filter_map(|&i| entry.recipients.get(i))
        .filter(|r| r.state == RcptState::Delivered)
        .filter(|r| {
            Address::new(&r.address).is_ok_and(|a| {
                dir.partner_for(a.domain())
                    .is_some_and(|p| p.profile == postern_router::PartnerProfile::Direct)
            })
        })
        .map(|r| r.address.clone())
        .collect();
    if rcpts.is_empty() {
        return;
    }
    let Some(message_id) = message_id(original) else {
        tracing::warn!(queue_id = %entry.id, "Direct message without a Message-ID: its notifications cannot be tracked");
        return;
    };
    let reliable = postern_router::mdn::wants_reliable(original);
    let d = &shared.settings.direct;
    let wait = if reliable {
        d.reliable_timeout
    } else {
        d.timeout
    };
    let now = (unix_ms() / 1000) as i64;
    let deadline = now.saturating_add(wait.as_secs() as i64);
    if let Err(e) = shared
        .tracking
        .track(&message_id, sender, &rcpts, reliable, now, deadline)
        .await
    {
        // Delivered all the same; only the sender's warning at the deadline is lost.
        tracing::error!(queue_id = %entry.id, error = %e, "could not record a Direct message for tracking");
    }
}

/// The message's Message-ID, one line, bounded; `None` when it has none.
fn message_id(message: &[u8]) -> Option<String> {
    let view = postern_core::MessageView::parse(message).ok()?;
    let id = postern_core::display_text(view.header("message-id")?.trim(), 250);
    (!id.is_empty()).then_some(id)
}

/// What to do with a message from a Direct partner that may be a notification about ours.
pub(crate) enum Received {
    /// Deliver it as it is (not a notification we track, or the first of its kind).
    Deliver,
    /// Deliver it with this result field in front (a notification that does not count).
    Tag(&'static str),
    /// Not passed on (a duplicate, or `processed` while those are not delivered).
    Suppress(&'static str),
    /// The tracking store failed: try again later.
    Retry(String),
}

/// Records a partner's notification about one of our Direct messages. It counts only when it
/// comes from a Direct partner, reports on a recipient of that partner's own domain, and names
/// a message we sent to that recipient; each kind counts once per recipient.
pub(crate) async fn received(
    shared: &Shared,
    mail_from: Option<&Address>,
    delivered: &[u8],
) -> Received {
    use postern_router::mdn::Disposition;
    use postern_store::{Notice, Noticed};
    let Some(sender) = mail_from else {
        return Received::Deliver;
    };
    let direct = shared
        .directory
        .current()
        .partner_for(sender.domain())
        .is_some_and(|p| p.profile == postern_router::PartnerProfile::Direct);
    let Some(report) = direct
        .then(|| postern_router::mdn::read(delivered))
        .flatten()
    else {
        return Received::Deliver;
    };
    let notice = match report.disposition {
        Disposition::Processed => Notice::Processed,
        Disposition::Dispatched => Notice::Dispatched,
        Disposition::Failed => Notice::Failed,
        Disposition::Other => return Received::Deliver,
    };
    let same_domain =
        Address::new(&report.final_recipient).is_ok_and(|r| r.domain() == sender.domain());
    if !same_domain {
        return Received::Tag(
            "Postern-Notification: not counted (it reports on a recipient outside its sender's domain)\r\n",
        );
    }
    let now = (unix_ms() / 1000) as i64;
    match shared
        .tracking
        .notice(
            &report.original_message_id,
            &report.final_recipient,
            notice,
            now,
        )
        .await
    {
        Err(e) => Received::Retry(format!("tracking store: {e}")),
        Ok(Noticed::Unknown) => Received::Tag(
            "Postern-Notification: not counted (no message of ours to that recipient with that Message-ID)\r\n",
        ),
        Ok(Noticed::Again) => {
            shared.metrics.mdn_suppressed.inc();
            Received::Suppress("a notification already passed on (duplicate or replay)")
        }
        Ok(Noticed::First) => {
            shared.metrics.mdn_received.inc();
            if notice == Notice::Processed && !shared.settings.direct.deliver_processed {
                Received::Suppress("processed notification (direct.deliver_processed_mdns = false)")
            } else {
                Received::Deliver
            }
        }
    }
}

/// Tells senders whose Direct messages got no notification in time (a DSN each, 5.4.7), and
/// forgets finished rows past their retention. Every node may run it: each deadline is claimed
/// by one of them.
pub(crate) async fn sweep(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let d = shared.settings.direct.clone();
    let every = (d.timeout.min(d.reliable_timeout) / 2)
        .clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut last_purge = 0i64;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(every) => {}
        }
        let now = (unix_ms() / 1000) as i64;
        match shared.tracking.expire(now).await {
            Ok(late) => {
                for t in late {
                    queue_timeout_dsn(&shared, &t);
                }
            }
            Err(e) => tracing::error!(error = %e, "Direct tracking sweep failed; retrying"),
        }
        if now - last_purge >= 3600 {
            last_purge = now;
            let before = now.saturating_sub(d.retention.as_secs() as i64);
            if let Err(e) = shared.tracking.purge(before).await {
                tracing::error!(error = %e, "Direct tracking retention sweep failed; retrying");
            }
        }
    }
}

/// Queues the DSN that tells `t`'s sender no notification came in time.
fn queue_timeout_dsn(shared: &Shared, t: &postern_store::Tracked) {
    shared.metrics.tracking_timeouts.inc();
    let id = Spool::new_id();
    let now = unix_ms();
    let msg = crate::dsn::timed_out(&shared.settings.hostname, t, now / 1000, &id);
    let dsn = Entry::new(
        id.clone(),
        Origin::Bounce,
        "127.0.0.1",
        None,
        vec![Recipient::new(t.sender.clone())],
        msg.len() as u64,
    );
    match shared.spool.accept(&dsn, &msg) {
        Ok(()) => {
            shared.metrics.queue_depth.inc();
            shared.scheduler.submit(&id, now);
            tracing::info!(dsn_id = %id, "no Direct notification in time: sender told");
        }
        // The row is already claimed: logged, as a spool that cannot take a DSN is an outage
        // the operator sees anyway.
        Err(e) => {
            tracing::error!(error = %e, "could not queue a Direct timeout notice");
        }
    }
}
