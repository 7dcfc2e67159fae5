//! `postern-relay quarantine`: review held messages. Release sends a message on as if it had
//! passed inspection (through the running relay's spool); reject returns it to the sender with
//! the reason. Every action, and every read of a message, goes to the audit log.

use std::path::PathBuf;

use postern_relay::quarantine::Quarantine;
use postern_relay::spool::Spool;
use postern_relay::RelayConfig;
use postern_store::keyfile::{self, KeyRole};

#[derive(clap::Args)]
pub struct QuarantineArgs {
    /// The relay configuration.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The data directory (without --config; the demo default is ./postern-data).
    #[arg(long, global = true, default_value = "postern-data")]
    data_dir: PathBuf,
    /// Who is acting, for the audit log (default: $USER).
    #[arg(long, global = true)]
    actor: Option<String>,
    #[command(subcommand)]
    action: QAction,
}

#[derive(clap::Subcommand)]
enum QAction {
    /// Held messages: ID, age, sender, recipients, reason.
    List {
        /// Also released and rejected ones.
        #[arg(long)]
        all: bool,
    },
    /// One message: envelope, reason, verdict (masked), header fields; --message prints it all.
    Show {
        /// Quarantine ID.
        id: String,
        /// Print the whole message (audited as a view).
        #[arg(long)]
        message: bool,
    },
    /// Send it on as if it had passed.
    Release {
        /// Quarantine ID.
        id: String,
        /// Why (for the audit log).
        #[arg(long, default_value = "released after review")]
        reason: String,
    },
    /// Return it to the sender with a reason.
    Reject {
        /// Quarantine ID.
        id: String,
        /// Why (goes into the bounce and the audit log).
        #[arg(
            long,
            default_value = "rejected after review: protected information may not be sent unencrypted"
        )]
        reason: String,
    },
    /// The audit log (of one message, or all).
    Audit {
        /// Quarantine ID.
        id: Option<String>,
    },
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub async fn run(args: QuarantineArgs) -> Result<bool, String> {
    let cfg = match &args.config {
        Some(p) => RelayConfig::load(p).map_err(|e| e.to_string())?,
        None => RelayConfig {
            data_dir: args.data_dir.clone(),
            ..RelayConfig::default()
        },
    };
    if cfg.first_start() {
        return Err(format!("no quarantine at {}", cfg.sqlite_db().display()));
    }
    let key = keyfile::load_or_create(KeyRole::Quarantine, &cfg.quarantine_key(), false)
        .map_err(|e| e.to_string())?;
    let db = cfg.open_database().await.map_err(|e| e.to_string())?;
    let q = Quarantine::new(db, *key).map_err(|e| e.to_string())?;
    let actor = args
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    let result = act(&q, &cfg, &actor, args.action).await;
    q.close().await;
    result
}

async fn act(
    q: &Quarantine,
    cfg: &RelayConfig,
    actor: &str,
    action: QAction,
) -> Result<bool, String> {
    let spool = || Spool::open_existing(&cfg.data_dir.join("spool"));
    match action {
        QAction::List { all } => {
            let held = q
                .list(if all {
                    None
                } else {
                    Some(postern_relay::quarantine::HeldState::Held)
                })
                .await
                .map_err(|e| e.to_string())?;
            for h in &held {
                say!(
                    "{}  {:>6}s  {:<9} <{}>  {}  {}",
                    h.id,
                    now().saturating_sub(h.created_at),
                    h.state,
                    postern_core::Printable(h.sender.as_deref().unwrap_or("")),
                    postern_core::Printable(&h.recipients.join(",")),
                    postern_core::Printable(&h.reason)
                );
            }
            say!("{} messages", held.len());
        }
        QAction::Show { id, message } => {
            let h = q.get(&id).await.map_err(|e| e.to_string())?;
            say!("id: {}\nstate: {}\norigin: {}", h.id, h.state, h.origin);
            say!(
                "from: <{}>\nto: {}",
                postern_core::Printable(h.sender.as_deref().unwrap_or("")),
                postern_core::Printable(&h.recipients.join(", "))
            );
            say!("reason: {}", postern_core::Printable(&h.reason));
            if let Some(code) = h.code {
                say!("kind: {code}");
            }
            if let Some(v) = &h.verdict {
                say!("verdict: {v}");
            }
            let data = q
                .message(&id, actor, if message { "show --message" } else { "show" })
                .await
                .map_err(|e| e.to_string())?;
            if message {
                use std::io::{IsTerminal, Write};
                let mut out = std::io::stdout();
                // Piped to a file or a tool: the message as it is. On a terminal: an outside
                // sender's escape sequences must not drive it, so every control character
                // but line breaks and tabs is shown as an escape.
                if out.is_terminal() {
                    out.write_all(terminal_safe(&data).as_bytes())
                } else {
                    out.write_all(&data)
                }
                .map_err(|e| e.to_string())?;
            } else if let Ok(view) = postern_core::MessageView::parse(&data) {
                for name in ["From", "To", "Cc", "Subject", "Date", "Message-ID"] {
                    if let Some(v) = view.header(name) {
                        say!("{name}: {}", postern_core::Printable(&v));
                    }
                }
            }
        }
        QAction::Release { id, reason } => {
            let qid = postern_relay::review::release(q, &spool(), &id, actor, &reason)
                .await
                .map_err(|e| e.to_string())?;
            say!("{id}: released as queue ID {qid}");
        }
        QAction::Reject { id, reason } => {
            let dsn =
                postern_relay::review::reject(q, &spool(), &cfg.hostname, &id, actor, &reason)
                    .await
                    .map_err(|e| e.to_string())?;
            if let Some(dsn_id) = dsn {
                say!("{id}: bounce queued as {dsn_id}");
            }
            say!("{id}: rejected");
        }
        QAction::Audit { id } => {
            for a in q
                .audit_log(id.as_deref())
                .await
                .map_err(|e| e.to_string())?
            {
                say!(
                    "{}  {:<14} {:<8} {}  {}",
                    a.at,
                    a.actor,
                    a.action,
                    a.id,
                    a.reason
                );
            }
        }
    }
    Ok(true)
}

/// A message for a terminal: each line through [`postern_core::printable`] (so ESC, CR, other
/// controls and invisible direction marks become `\u{..}` escapes), joined by plain newlines.
fn terminal_safe(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b.strip_suffix('\r').unwrap_or(b), "\n"),
            None => (line, ""),
        };
        for (i, part) in body.split('\t').enumerate() {
            if i > 0 {
                out.push('\t');
            }
            out.push_str(&postern_core::printable(part));
        }
        out.push_str(nl);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_message_for_a_terminal_keeps_lines_and_tabs_and_escapes_the_rest() {
        let shown =
            super::terminal_safe(b"Subject: \x1b]0;pwned\x07hi\r\n\r\nA\tB \x1b[2J\xff\r\n");
        assert_eq!(
            shown,
            "Subject: \\u{1b}]0;pwned\\u{7}hi\n\nA\tB \\u{1b}[2J\u{fffd}\n"
        );
        assert!(!shown.contains('\x1b'));
    }
}
