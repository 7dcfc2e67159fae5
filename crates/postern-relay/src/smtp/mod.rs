//! SMTP as a protocol, both ways: commands and lines as our listeners read them, the client
//! that delivers, STARTTLS, and the probes a listener answers. The listener sessions, which
//! hold the relay's state, are in [`crate::listener`]; nothing here depends on the relay.

use tokio::io::{AsyncRead, AsyncWrite};

pub mod client;
pub mod command;
pub mod lines;
pub mod probes;
pub mod tls;

/// A byte stream a session runs over (plain TCP here; TLS wraps one).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
