//! The `websocketd` command: flags, their meaning, and the running server.
//!
//! - [`args`]: the flags as clap sees them, and websocketd's Go-style argv rules.
//! - [`config`]: what the flags mean together, validated.
//! - [`generate`]: `--generate`, the man page and the shell completions.
//! - [`log`]: websocketd's log line format, and the logger it is written by.
//! - [`server`]: binding, start-up lines, serving, and stopping on a signal.

pub mod args;
pub mod config;
pub mod generate;
pub mod log;
pub mod server;
