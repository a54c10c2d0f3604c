//! What every session of one endpoint shares: how its program's stdio is framed, its limits
//! and timers, its environment's server-wide part, and the metrics it counts in. The session,
//! its relay and hosted programs all read it, so it is a room of its own below them.

use std::sync::Arc;
use std::time::Duration;

use websocketd_framing::Framing;

use crate::env::EnvSettings;
use crate::metrics::Metrics;

/// What every session of one endpoint shares.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// How its stdio is cut into messages.
    pub framing: Framing,
    /// The largest message in either direction; longer output is sent in pieces.
    pub max_message: usize,
    /// Added to every wait of the termination ladder (`--closems`).
    pub closems: Duration,
    /// Server-wide environment inputs.
    pub env: EnvSettings,
    /// Send stderr lines to the client too, every line as JSON (`--passstderr`).
    pub pass_stderr: bool,
    /// Ping the client this often, and drop it when silent for twice as long (`--pingms`).
    pub ping: Option<Duration>,
    /// The server's metrics, which sessions count in.
    pub metrics: Arc<Metrics>,
    /// Close a session after this long with no message either way (`--idlems`).
    pub idle: Option<Duration>,
    /// Close a session this long after it started (`--maxsessionms`).
    pub time_limit: Option<Duration>,
    /// The program's stdout is a pseudo-terminal (`--pty`).
    pub pty: bool,
    /// In line mode, a partial line that has waited this long is sent (`--flushms`).
    pub flush: Option<Duration>,
}
