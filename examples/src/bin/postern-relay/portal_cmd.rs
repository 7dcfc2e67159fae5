//! `postern-relay portal` (messages: list, revoke, audit trail) and `postern-relay audit
//! verify` (the hash chain of the audit log), on the database of a (running) relay.

use std::path::PathBuf;
use std::sync::Arc;

use postern_portal::{Db, MasterKey, MemoryOutbox, Portal};
use postern_relay::RelayConfig;

#[derive(clap::Args)]
pub struct Where {
    /// The relay configuration.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The data directory (without --config; the demo default is ./postern-data).
    #[arg(long, global = true, default_value = "postern-data")]
    data_dir: PathBuf,
}

#[derive(clap::Args)]
pub struct PortalArgs {
    #[command(flatten)]
    at: Where,
    /// Who is acting, for the audit log (default: $USER).
    #[arg(long, global = true)]
    actor: Option<String>,
    #[command(subcommand)]
    action: PortalAction,
}

#[derive(clap::Subcommand)]
enum PortalAction {
    /// Portal messages: ID, reference, state, sender, recipient, expiry.
    List,
    /// Withdraw a message: its key is destroyed and the link stops working.
    Revoke {
        /// Portal message ID.
        id: String,
    },
    /// The audit trail of one message.
    Trail {
        /// Portal message ID.
        id: String,
    },
}

#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    at: Where,
    #[command(subcommand)]
    action: AuditAction,
}

#[derive(clap::Subcommand)]
enum AuditAction {
    /// Check the hash chain: exit 0 and the newest hash if intact, 1 where it breaks.
    Verify,
    /// Print the whole log.
    List,
}

pub(crate) fn config(at: &Where) -> Result<RelayConfig, String> {
    match &at.config {
        Some(p) => RelayConfig::load(p).map_err(|e| e.to_string()),
        None => Ok(RelayConfig {
            data_dir: at.data_dir.clone(),
            ..RelayConfig::default()
        }),
    }
}

pub(crate) async fn database(cfg: &RelayConfig) -> Result<Db, String> {
    if cfg.first_start() {
        return Err(format!("no database at {}", cfg.sqlite_db().display()));
    }
    cfg.open_database().await.map_err(|e| e.to_string())
}

pub async fn portal(args: PortalArgs) -> Result<bool, String> {
    let cfg = config(&args.at)?;
    let db = database(&cfg).await?;
    let key = postern_store::keyfile::load_or_create(
        postern_store::KeyRole::Portal,
        &cfg.portal_key(),
        false,
    )
    .map_err(|e| e.to_string())?;
    let portal = Portal::new(
        db.clone(),
        MasterKey::new(&key).map_err(|e| e.to_string())?,
        cfg.portal.clone(),
        String::new(),
        true,
        Arc::new(MemoryOutbox::default()),
    );
    let actor = args
        .actor
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    let result = match args.action {
        PortalAction::List => {
            let all = portal.store.list(None).await.map_err(|e| e.to_string())?;
            for m in &all {
                say!(
                    "{}  {}  {:<7}  <{}> -> <{}>  expires {}{}",
                    m.id,
                    m.reference,
                    m.state,
                    m.sender,
                    m.recipient,
                    postern_portal::letters::day(m.expires_at),
                    if m.opened_at.is_some() {
                        "  opened"
                    } else {
                        ""
                    }
                );
            }
            say!("{} messages", all.len());
            true
        }
        PortalAction::Revoke { id } => {
            if portal
                .revoke(&id, &actor, None)
                .await
                .map_err(|e| e.to_string())?
            {
                say!("{id}: revoked (key destroyed)");
                true
            } else {
                say!("{id}: not an active portal message");
                false
            }
        }
        PortalAction::Trail { id } => {
            print_rows(
                &portal
                    .audit
                    .list(Some(&id))
                    .await
                    .map_err(|e| e.to_string())?,
            );
            true
        }
    };
    db.close().await;
    Ok(result)
}

fn print_rows(rows: &[postern_portal::AuditRecord]) {
    for a in rows {
        say!(
            "{:>6}  {}  {:<12} {:<24} {:<16} {}  {}",
            a.seq,
            postern_portal::letters::moment(a.at),
            a.action,
            a.actor,
            a.client,
            a.object,
            a.detail
        );
    }
}

pub async fn audit(args: AuditArgs) -> Result<bool, String> {
    let cfg = config(&args.at)?;
    let db = database(&cfg).await?;
    let log = postern_store::AuditLog::new(db.clone());
    let ok = match args.action {
        AuditAction::Verify => match log
            .verify_with_anchor(&cfg.audit_anchor())
            .await
            .map_err(|e| e.to_string())?
        {
            Ok((rows, newest)) => {
                say!("audit log intact: {rows} rows; newest hash {newest}");
                true
            }
            Err(broken) => {
                say!("audit log BROKEN: {broken}");
                false
            }
        },
        AuditAction::List => {
            print_rows(&log.list(None).await.map_err(|e| e.to_string())?);
            true
        }
    };
    db.close().await;
    Ok(ok)
}
