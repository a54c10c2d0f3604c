//! The websocketd session: everything between an accepted WebSocket and the child process.
//!
//! - [`env`]: the request as the child sees it, the CGI-style environment.
//! - [`command`]: finding COMMAND the way websocketd does.
//! - [`child`]: spawning the child in its own process group, draining its stderr, and the
//!   termination ladder that always ends it.
//! - [`session`]: the bridge that pumps framed stdio to and from WebSocket messages.
//! - [`log`]: websocketd's log line format and levels on top of `tracing`.
//! - [`shutdown`]: the server's way out, shared by listeners, connections and sessions.
//!
//! The session is generic over the socket side (any `Sink + Stream` of tungstenite messages),
//! so it knows nothing of TCP, TLS or HTTP.

pub mod child;
pub mod command;
pub mod env;
pub mod log;
mod reaper;
pub mod session;
pub mod shutdown;

pub use child::Child;
pub use env::{EnvSettings, RequestInfo};
pub use session::SessionConfig;
pub use shutdown::Shutdown;
