//! websocketd-bench: the load generator and what it measures.
//!
//! - [`load`]: WebSocket clients that drive one scenario each.
//! - [`scenario`]: the scenarios, their server commands and their target ratios.
//! - [`proxy`]: a real nginx in front of a server.
//! - [`target`]: starting, measuring and stopping a server under test.
//! - [`ceiling`]: a trivial in-process server, to show the load generator's own limits.
//! - [`bounds`]: what bounds the connection targets, from the measured figures.
//! - [`stats`]: medians and percentiles.
//! - [`http2`]: WebSocket sessions over HTTP/2 (`--http2`), many on one connection.
//! - [`tls`]: the wss scenarios' certificate and clients, and what their handshakes negotiated.

pub mod bounds;
pub mod ceiling;
pub mod fanout;
pub mod http2;
pub mod load;
pub mod proxy;
pub mod scenario;
pub mod stats;
pub mod target;
pub mod tls;
