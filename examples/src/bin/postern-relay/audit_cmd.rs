//! `postern-relay audit` (verify the hash chain of the audit log, list it), on the database of
//! a (running) relay.

use crate::place::{config, database, Where};

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

pub(crate) fn print_rows(rows: &[postern_store::AuditRecord]) {
    for a in rows {
        say!(
            "{:>6}  {}  {:<12} {:<24} {:<16} {}  {}",
            a.seq,
            postern_core::civil::utc_minute(a.at),
            a.action,
            a.actor,
            a.client,
            a.object,
            a.detail
        );
    }
}
