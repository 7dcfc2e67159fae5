//! What the binary's tests share: a relay child process killed on drop, and running
//! `postern-relay` subcommands against a configuration.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_postern-relay");

/// A running `postern-relay run --config FILE`, killed when dropped (a failed assertion must
/// not leave it holding ports).
pub struct Relay(pub Child);

impl Relay {
    /// Starts the relay with `config` (stderr to `log`) and waits until `port` accepts.
    pub fn start(config: &Path, log: &Path, port: u16, extra: &[&str]) -> Relay {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(BIN)
            .arg("run")
            .args(extra)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let relay = Relay(child);
        assert!(postern_tests::relay::wait_until(
            Duration::from_secs(20),
            || { std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() }
        ));
        relay
    }

    /// Sends a signal (`-HUP`, `-TERM`) with kill(1).
    pub fn signal(&self, sig: &str) {
        assert!(Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .unwrap()
            .success());
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `program` with `args`, feeding `stdin`; returns its output.
pub fn run(program: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `postern-relay ARGS --config CONFIG`; (success, stdout + stderr).
pub fn cli(config: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A relay configuration file in `dir`: the internal listener on `port`, no public one, no
/// metrics unless given, outbound and inbound next hops, a retry every `retry`.
pub fn write_config(
    dir: &Path,
    port: u16,
    outbound: &str,
    inbound: &str,
    retry: &str,
    metrics: &str,
) -> std::path::PathBuf {
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\ndirectory = \"directory.toml\"\nmetrics = \"{metrics}\"\nworkers = 4\n\
             [internal]\nlisten = \"127.0.0.1:{port}\"\nnetworks = [\"127.0.0.0/8\"]\n\
             [public]\nlisten = \"\"\n\
             [outbound]\nrelayhost = \"{outbound}\"\n[inbound]\nrelayhost = \"{inbound}\"\n\
             [retry]\nschedule = [\"{retry}\"]\n"
        ),
    )
    .unwrap();
    config
}
