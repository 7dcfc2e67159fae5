//! `postern-relay portal` (messages: list, revoke, audit trail), on the database of a
//! (running) relay.

use std::sync::Arc;

use postern_portal::{MasterKey, MemoryOutbox, Portal};

use crate::audit_cmd::print_rows;
use crate::place::{config, database, Where};

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
