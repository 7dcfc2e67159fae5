//! What the two SMTP embedding examples do with a plan (shared through `#[path]`): the reply to
//! DATA is the gateway's verdict for the whole transaction — the first hold (4xx) or refusal
//! (5xx) decides; otherwise every copy is written to the outbox and fsynced before the 250.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use postern_core::SmtpReply;
use postern_router::{Disposition, Plan};

/// Stores the plan's copies in `out` (the message as received for our own recipients and the
/// quarantine) and gives the reply to DATA.
pub fn answer(
    out: &Path,
    accepted: &AtomicUsize,
    plan: &Plan,
    data: &[u8],
) -> std::io::Result<SmtpReply> {
    for d in &plan.dispositions {
        if let Disposition::Hold { reason, .. } | Disposition::Bounce { reason, .. } = d {
            return Ok(reason.smtp_reply());
        }
    }
    let n = accepted.fetch_add(1, Ordering::SeqCst) + 1;
    for (i, d) in plan.dispositions.iter().enumerate() {
        let (kind, bytes): (String, &[u8]) = match d {
            Disposition::Deliver {
                message, sealed, ..
            } => match sealed {
                Some(s) => (format!("sealed-{s}"), message),
                None => ("plain".into(), message),
            },
            Disposition::Local { .. } => ("local".into(), data),
            Disposition::Portal { message, .. } => ("portal".into(), message),
            Disposition::Quarantine { .. } => ("quarantine".into(), data),
            // Answered above: nothing of this transaction was stored.
            Disposition::Hold { .. } | Disposition::Bounce { .. } => continue,
        };
        let to: Vec<String> = d.recipients().iter().map(|a| a.to_string()).collect();
        let path = out.join(format!("{n}-{}-{kind}.eml", i + 1));
        let mut f = std::fs::File::create(&path)?;
        std::io::Write::write_all(
            &mut f,
            format!("X-Envelope-To: {}\r\n", to.join(", ")).as_bytes(),
        )?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?; // durable before the 250
    }
    // The new names too: a crash after the 250 must not lose the directory entries.
    std::fs::File::open(out)?.sync_all()?;
    Ok(SmtpReply {
        code: 250,
        enhanced: postern_core::EnhancedStatus::OK,
        text: format!("accepted as {n}"),
    })
}
