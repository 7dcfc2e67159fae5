//! `postern-relay run`: the SMTP gateway, from a configuration file or on embedded demo
//! defaults (loopback listeners, published test keys, outbound copies written to files).

use std::path::{Path, PathBuf};
use std::time::Duration;

use postern_relay::RelayConfig;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The relay configuration (TOML). Without it: embedded demo defaults, loopback only.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory for the demo defaults (spool, demo keys, outbox, inbox).
    #[arg(long, default_value = "postern-data")]
    pub data_dir: PathBuf,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long)]
    pub json_logs: bool,
}

impl Default for RunArgs {
    /// What `postern-relay` with no arguments runs (the same as `--data-dir postern-data`).
    fn default() -> Self {
        RunArgs {
            config: None,
            data_dir: PathBuf::from("postern-data"),
            json_logs: false,
        }
    }
}

const DEMO_FILES: [(&str, &[u8]); 7] = [
    (
        "lamps-alice.crt",
        include_bytes!("../../../data/lamps-alice.crt"),
    ),
    (
        "lamps-alice.p8.pem",
        include_bytes!("../../../data/lamps-alice.p8.pem"),
    ),
    (
        "lamps-bob.encrypt.crt",
        include_bytes!("../../../data/lamps-bob.encrypt.crt"),
    ),
    (
        "lamps-rsa-ca.pem",
        include_bytes!("../../../data/lamps-rsa-ca.pem"),
    ),
    (
        "alice.sec.asc",
        include_bytes!("../../../data/alice.sec.asc"),
    ),
    ("bob.pub.asc", include_bytes!("../../../data/bob.pub.asc")),
    ("demo.eml", include_bytes!("../../../data/demo.eml")),
];

/// The example directory, with its `../data/` paths pointing at the files written beside it.
const DEMO_DIRECTORY: &str = include_str!("../../../config/directory.toml");

/// Writes the demo keys and directory under `data_dir/demo` and returns a loopback-only config.
pub fn demo_config(data_dir: &Path) -> Result<RelayConfig, String> {
    let demo = data_dir.join("demo");
    std::fs::create_dir_all(&demo).map_err(|e| format!("cannot create {}: {e}", demo.display()))?;
    for (name, bytes) in DEMO_FILES {
        let p = demo.join(name);
        std::fs::write(&p, bytes).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    let directory = demo.join("directory.toml");
    std::fs::write(&directory, DEMO_DIRECTORY.replace("../data/", ""))
        .map_err(|e| format!("cannot write {}: {e}", directory.display()))?;
    let data_dir = if data_dir.is_relative() {
        std::env::current_dir()
            .map_err(|e| e.to_string())?
            .join(data_dir)
    } else {
        data_dir.to_path_buf()
    };
    Ok(RelayConfig {
        data_dir: data_dir.clone(),
        directory: data_dir.join("demo/directory.toml"),
        // The portal on loopback, plain HTTP (a browser on this machine opens it without a
        // certificate warning); its notifications land in the outbox like all outbound mail.
        #[cfg(feature = "portal")]
        portal: postern_portal::PortalSettings {
            listen: "127.0.0.1:2580".into(),
            plain_http: true,
            from: "secure-mail@clinic.example".into(),
            organisation: "Clinic Example".into(),
            support: "the Clinic Example help desk, 555-0100".into(),
            ..postern_portal::PortalSettings::default()
        },
        ..RelayConfig::default()
    })
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

pub async fn run(args: RunArgs) -> Result<(), String> {
    init_logs(args.json_logs);
    let demo = args.config.is_none();
    let cfg = match &args.config {
        Some(p) => RelayConfig::load(p).map_err(|e| e.to_string())?,
        None => demo_config(&args.data_dir)?,
    };
    let relay = postern_relay::start(&cfg)
        .await
        .map_err(|e| e.to_string())?;
    for f in &relay.findings {
        eprintln!("postern-relay: directory: {f}");
    }
    let show = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or("-".into());
    println!(
        "Postern relay running{}.",
        if demo {
            " on embedded demo defaults (loopback only)"
        } else {
            ""
        }
    );
    println!(
        "  internal listener (your mail server submits here): {}",
        show(relay.internal_addr)
    );
    println!(
        "  public listener (the internet delivers here):      {}",
        show(relay.public_addr)
    );
    if let Some(m) = relay.metrics_addr {
        println!("  metrics:                                          http://{m}/metrics");
    }
    #[cfg(feature = "portal")]
    if let Some(p) = relay.portal_addr {
        let scheme = if cfg.portal.plain_http {
            "http"
        } else {
            "https"
        };
        println!("  secure portal (recipients without a gateway):     {scheme}://{p}/");
    }
    println!(
        "  spool:                                            {}",
        relay.spool().root().display()
    );
    if demo {
        let d = cfg.data_dir.display();
        println!(
            "\nDemo partners: smime.example (S/MIME, required), openpgp.example (OpenPGP, required),\n\
             smallpractice.example (portal delivery); any other domain gets plain mail.\n\
             Outbound copies are written to {d}/outbox, inbound (opened) mail to {d}/inbox.\n\n\
             Send a test message to the S/MIME partner:\n  \
             curl smtp://{i} --mail-from doc@clinic.example --mail-rcpt lab@smime.example --upload-file {d}/demo/demo.eml\n\
             or with swaks:\n  \
             swaks --server {i} --from doc@clinic.example --to lab@openpgp.example\n\
             Then: ls {d}/outbox   and   postern-relay queue list\n\
             Portal delivery: send to office@smallpractice.example; the notification in\n\
             {d}/outbox holds the link (open it in a browser on this machine), and the one-time\n\
             code arrives there too.\n\
             Mail with card numbers or patient identifiers to anyone but a partner is held:\n  \
             postern-relay quarantine list   (release or reject it from there)\n\
             Stop with Ctrl-C (SIGTERM); SIGHUP reloads the partner directory.",
            i = show(relay.internal_addr)
        );
    }
    wait_for_signals(&relay).await;
    eprintln!("postern-relay: stopping (unfinished mail stays in the spool)");
    relay.shutdown(Duration::from_secs(30)).await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signals(relay: &postern_relay::RunningRelay) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => match relay.reload_directory() {
                Ok(findings) => {
                    tracing::info!(warnings = findings.len(), "partner directory reloaded");
                    for f in findings {
                        tracing::warn!(finding = %f, "directory");
                    }
                }
                Err(e) => tracing::error!(error = %e, "directory reload refused; the previous one stays in force"),
            },
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_relay: &postern_relay::RunningRelay) {
    let _ = tokio::signal::ctrl_c().await;
}
