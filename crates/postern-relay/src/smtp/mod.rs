//! SMTP both ways: the server sessions our listeners run and the client that delivers.

pub mod client;
pub mod command;
pub mod lines;
pub mod probes;
pub mod server;
pub mod tls;
