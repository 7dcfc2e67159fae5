//! `postern-relay keys`: certificates harvested from partners' valid signatures — list them,
//! and approve or reject the pending ones (`harvest = "approve"` in the directory).

use postern_relay::harvest::HarvestStore;

use crate::place::{config, database, Where};

#[derive(clap::Args)]
pub struct KeysArgs {
    #[command(flatten)]
    at: Where,
    /// Who is deciding, for the audit log (default: $USER).
    #[arg(long, global = true)]
    actor: Option<String>,
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(clap::Subcommand)]
enum KeysAction {
    /// Harvested certificates waiting for a decision.
    Pending,
    /// Every harvested certificate with its state.
    List,
    /// Use a harvested certificate for mail to its partner.
    Approve {
        /// The number `keys pending` shows.
        id: i64,
    },
    /// Never use it.
    Reject {
        /// The number `keys pending` shows.
        id: i64,
    },
}

pub async fn run(args: KeysArgs) -> Result<bool, String> {
    let cfg = config(&args.at)?;
    let store = HarvestStore::new(database(&cfg).await?);
    let actor = args
        .actor
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    match args.action {
        KeysAction::Pending | KeysAction::List => {
            let state = matches!(args.action, KeysAction::Pending)
                .then_some(postern_relay::harvest::HarvestState::Pending);
            let all = store.list(state).await.map_err(|e| e.to_string())?;
            for k in &all {
                say!(
                    "{:>4}  {:<8}  {}  {}  <{}>  sha256:{}",
                    k.id,
                    k.state,
                    k.partner,
                    k.subject,
                    k.addresses,
                    k.fingerprint
                );
            }
            say!("{} certificates", all.len());
            Ok(true)
        }
        KeysAction::Approve { id } | KeysAction::Reject { id } => {
            let approve = matches!(args.action, KeysAction::Approve { .. });
            store
                .decide(id, approve, &actor)
                .await
                .map_err(|e| e.to_string())?;
            say!("{id}: {}", if approve { "approved" } else { "rejected" });
            Ok(true)
        }
    }
}
