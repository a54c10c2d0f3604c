//! The websocketd session: everything between an accepted WebSocket and the child process.
//!
//! - [`request`]: what the server knows about a request, and how the logs name it.
//! - [`host`]: the Host header and `host[:port]`, read and split in one place.
//! - [`env`]: the request as the child sees it, the CGI-style environment.
//! - [`command`]: finding COMMAND the way websocketd does.
//! - [`child`]: spawning the child in its own process group (on launcher threads that never
//!   go away), draining its stderr, and the termination ladder that always ends it.
//! - [`guardian`]: the process that ends the programs when the server dies however it dies.
//! - [`config`]: what every session of one endpoint shares (`SessionConfig`).
//! - [`session`]: one session's lifecycle, from the upgrade to the child reaped.
//! - `hosted`: a program whose life is not one connection's, its output framed once
//!   (`framed`) into a log that its clients take from through their cursors.
//! - [`broadcast`]: shared sessions, one program for every client of one URL.
//! - [`resume`]: resumable sessions, which a dropped connection leaves running for the
//!   client to take back with its token and count.
//! - [`relay`]: the two pumps between the client and the program, generic over both sides.
//! - [`pipe`]: the child's pipes as the relay's program side (`pty`: `--pty`'s terminal).
//! - [`socket`]: the client side, any `Sink + Stream` of WebSocket messages.
//! - [`close`]: the Close frames, and closing within a bound.
//! - [`log`]: websocketd's log line format and levels on top of `tracing`.
//! - [`metrics`]: the server's metrics, as the admin listener's `/metrics` shows them.
//! - [`slot`]: what a running program holds against `--maxforks` and `--maxforksperip`.
//! - [`shutdown`]: the server's way out, shared by listeners, connections and sessions.
//!
//! Nothing here knows of TCP, TLS or HTTP.

pub mod broadcast;
pub mod child;
pub mod close;
pub mod command;
pub mod config;
pub mod env;
pub mod error;
mod framed;
mod groups;
pub mod guardian;
pub mod host;
mod hosted;
mod launcher;
pub mod log;
pub mod metrics;
pub mod pipe;
mod pty;
mod reaper;
pub mod relay;
pub mod request;
pub mod resume;
pub mod session;
pub mod shutdown;
pub mod slot;
pub mod socket;
#[cfg(test)]
mod testing;

pub use child::Child;
pub use env::EnvSettings;
pub use error::Error;
pub use request::RequestInfo;
pub use session::SessionConfig;
pub use shutdown::Shutdown;
pub use slot::Slot;
