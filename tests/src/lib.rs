//! The harness for the black-box suites: the real `websocketd` binary started on
//! 127.0.0.1 with `--port=0` (the port read back from its start-up line, so no sleeping for
//! readiness), real WebSocket clients, fixtures that are real programs, and checks on the
//! processes the server leaves behind.
//!
//! The binary is the one `cargo test --workspace` builds next to the test executables
//! (`target/<profile>/websocketd`); `WEBSOCKETD_BIN` points elsewhere.

mod chromium;
mod client;
mod cut;
mod haproxy;
mod http2;
mod nginx;
mod process;
mod raw;
mod server;
mod tls;
mod wait;

pub use chromium::*;
pub use client::*;
pub use cut::*;
pub use haproxy::*;
pub use http2::*;
pub use nginx::*;
pub use process::*;
pub use raw::*;
pub use server::*;
pub use tls::*;
pub use wait::*;
