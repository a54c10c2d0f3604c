//! What the server knows of a connection before any request on it: who is at the other end,
//! and whether it is TLS (with the client certificate's subject, when one is required).

use std::net::SocketAddr;
use std::sync::Arc;

/// Where a connection comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP connection from this address.
    Tcp(SocketAddr),
    /// A connection on the unix-socket listener, which has no peer address.
    Unix,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix => f.write_str("unix socket"),
        }
    }
}

/// What a request's connection is.
#[derive(Debug, Clone)]
pub struct Conn {
    /// Whether it is TLS.
    pub tls: bool,
    /// The verified client certificate's subject, with `--sslca`.
    pub client_subject: Option<Arc<str>>,
    /// Who is at the other end.
    pub peer: Peer,
}
