//! `postern-relay dlp scan`: what content inspection finds in a message, as the gateway would
//! see it. Exit status: 0 allow, 1 any other action, 2 error. `dlp show-policy`: the policy in
//! force, defaults merged in.

use std::io::Read;
use std::path::PathBuf;

use postern_dlp::{Action, DlpPolicy, Inspector};

#[derive(clap::Args)]
pub struct DlpArgs {
    #[command(subcommand)]
    action: DlpAction,
}

#[derive(clap::Subcommand)]
enum DlpAction {
    /// Inspect a message from standard input and print the verdict (values masked).
    Scan {
        /// A policy file (TOML); without it, the built-in policy.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the policy in force (the file merged over the defaults), as TOML.
    ShowPolicy {
        /// A policy file (TOML); without it, the built-in policy.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
}

/// Runs the command; `Ok(true)` when the verdict is allow.
pub fn run(args: DlpArgs) -> Result<bool, String> {
    let (policy, json) = match args.action {
        DlpAction::Scan { policy, json } => (policy, json),
        DlpAction::ShowPolicy { policy } => {
            let p = match policy {
                Some(p) => DlpPolicy::load(&p).map_err(|e| e.to_string())?,
                None => DlpPolicy::default(),
            };
            print!("{}", p.to_toml());
            return Ok(true);
        }
    };
    let policy = match policy {
        Some(p) => DlpPolicy::load(&p).map_err(|e| e.to_string())?,
        None => DlpPolicy::default(),
    };
    let inspector = Inspector::new(policy).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .map_err(|e| format!("reading standard input: {e}"))?;
    let v = inspector.inspect(&raw);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        );
    } else {
        println!("action: {}", v.action);
        println!("score: {:.1}", v.score);
        for h in &v.hits {
            println!(
                "{}: {} in {} (e.g. {}){}",
                h.detector,
                h.count,
                h.locations.join(", "),
                h.samples.join(", "),
                if h.clinical_context > 0 {
                    format!(", {} with clinical context", h.clinical_context)
                } else {
                    String::new()
                }
            );
        }
        for r in &v.reasons {
            println!("reason: {r}");
        }
    }
    Ok(v.action == Action::Allow)
}
