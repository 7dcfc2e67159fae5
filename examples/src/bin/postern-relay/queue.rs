//! `postern-relay queue`: look at and act on a relay's spool, while it runs. The commands work
//! on the spool files directly; a running relay notices `flush` and `release` within a second.

use std::path::PathBuf;

use postern_relay::spool::{Entry, HoldKind, RcptState, Spool};
use postern_relay::RelayConfig;

#[derive(clap::Args)]
pub struct QueueArgs {
    /// The relay configuration whose spool to use.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The data directory (without --config; the demo default is ./postern-data).
    #[arg(long, global = true, default_value = "postern-data")]
    data_dir: PathBuf,
    #[command(subcommand)]
    action: QueueAction,
}

#[derive(clap::Subcommand)]
enum QueueAction {
    /// One line per message: ID, age, size, sender and each recipient's state.
    List,
    /// Envelope, per-recipient state and the message's header fields (never the body).
    Show {
        /// Queue ID.
        id: String,
    },
    /// Retry everything now.
    Flush,
    /// Stop taking mail (new connections get 421, `/healthz` fails) while the queue is
    /// delivered, before maintenance; `--cancel` takes mail again. A restart ends it.
    Drain {
        /// Take mail again.
        #[arg(long)]
        cancel: bool,
    },
    /// Remove a message from the spool (no bounce is sent).
    Delete {
        /// Queue ID.
        id: String,
    },
    /// Send on recipients held for the portal, as if content inspection had passed (quarantined
    /// messages are released with `postern-relay quarantine release`).
    Release {
        /// Queue ID.
        id: String,
    },
}

fn state(r: &RcptState) -> String {
    match r {
        RcptState::Pending => "pending".into(),
        RcptState::Delivered => "delivered".into(),
        RcptState::Bounced { status, .. } => format!("bounced {status}"),
        RcptState::Held { kind, .. } => format!("held ({kind})"),
        RcptState::Quarantined { id } => format!("quarantined {id}"),
    }
}

fn line(e: &Entry, now: u64) -> String {
    let rcpts: Vec<String> = e
        .recipients
        .iter()
        .map(|r| format!("{} [{}]", r.address, state(&r.state)))
        .collect();
    format!(
        "{}  {:>6}  {:>8}  <{}>  {}",
        e.id,
        age(now.saturating_sub(e.received_at)),
        e.size,
        e.mail_from.as_deref().unwrap_or(""),
        rcpts.join(", ")
    )
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Runs one queue command; returns the process exit status (0 done, 1 not found).
pub fn run(args: QueueArgs) -> Result<bool, String> {
    let data_dir = match &args.config {
        Some(p) => RelayConfig::load(p).map_err(|e| e.to_string())?.data_dir,
        None => args.data_dir.clone(),
    };
    let root = data_dir.join("spool");
    if !root.join("queue").is_dir() {
        return Err(format!("no spool at {}", root.display()));
    }
    let spool = Spool::open_existing(&root);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let get = |id: &str| -> Result<Entry, String> {
        spool
            .entry(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{id}: not in the queue"))
    };
    match args.action {
        QueueAction::List => {
            let (entries, bad) = spool.list().map_err(|e| e.to_string())?;
            for e in &entries {
                say!("{}", line(e, now));
            }
            for b in bad {
                eprintln!("postern-relay: unreadable entry: {b}");
            }
            say!("{} messages", entries.len());
        }
        QueueAction::Show { id } => {
            let e = get(&id)?;
            say!("{}", line(&e, now));
            say!(
                "origin: {:?}; client {}; attempts {}",
                e.origin,
                e.client,
                e.attempts
            );
            for r in &e.recipients {
                let why = match &r.state {
                    RcptState::Bounced { reason, .. } | RcptState::Held { reason, .. } => {
                        reason.clone()
                    }
                    _ => r.last_error.clone().unwrap_or_default(),
                };
                say!("  {} {}: {}", r.address, state(&r.state), why);
            }
            let data = spool.data(&id).map_err(|e| e.to_string())?;
            let view = postern_core::MessageView::parse(&data).map_err(|e| e.to_string())?;
            for name in ["From", "To", "Cc", "Subject", "Date", "Message-ID"] {
                if let Some(v) = view.header(name) {
                    say!("{name}: {v}");
                }
            }
        }
        QueueAction::Flush => {
            spool.request_flush().map_err(|e| e.to_string())?;
            say!("flush requested");
        }
        QueueAction::Drain { cancel } => {
            spool.request_drain(!cancel).map_err(|e| e.to_string())?;
            say!(
                "{}",
                if cancel {
                    "drain cancelled: taking mail again within a second"
                } else {
                    "draining within a second: new connections get 421, /healthz fails; `queue list` shows what is left"
                }
            );
        }
        QueueAction::Delete { id } => {
            get(&id)?;
            spool.remove(&id).map_err(|e| e.to_string())?;
            say!("{id}: deleted");
        }
        QueueAction::Release { id } => {
            let mut e = get(&id)?;
            let mut n = 0;
            let mut after_error = false;
            for r in e.recipients.iter_mut() {
                if let RcptState::Held { kind, .. } = &r.state {
                    after_error |= *kind == HoldKind::Error;
                    r.state = RcptState::Pending;
                    n += 1;
                }
            }
            if n == 0 {
                return Err(format!("{id}: no held recipients"));
            }
            // A release is an administrator's yes to what was held for review (the portal), so
            // inspection is not run again. A message held after an internal error was never
            // decided on: it is retried, inspection included.
            e.released = !after_error;
            e.next_attempt = 0;
            spool.update(&e).map_err(|e| e.to_string())?;
            spool.request_flush().map_err(|e| e.to_string())?;
            say!("{id}: {n} recipients released");
        }
    }
    Ok(true)
}
