//! What the server knows of a connection before any request on it: who is at the other end,
//! and whether it is TLS (with the client certificate's subject, when one is required); the
//! client behind it; and so what a program learns about a request on it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::Request;
use websocketd_core::request::{RequestInfo, User, next_id};

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

/// The client as the server reports it (REMOTE_ADDR, REMOTE_PORT, HTTPS, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address, canonical (an IPv4-mapped IPv6 address is given as IPv4); `None`
    /// for a unix-socket peer, or when a trusted proxy said it does not know.
    pub ip: Option<IpAddr>,
    /// The client's port, when the peer or the forwarding header gives one.
    pub port: Option<u16>,
    /// Whether the client spoke HTTPS (to the first proxy, when a trusted one says so).
    pub https: bool,
}

impl Conn {
    /// What the program learns about `req`, made on this connection by `client`, which runs
    /// the script at `script_name` (what follows it in the path is `PATH_INFO`), speaking
    /// `subprotocol`.
    pub fn request_info<B>(
        &self,
        req: &Request<B>,
        client: Client,
        script_name: String,
        subprotocol: Option<&str>,
    ) -> RequestInfo {
        let path_info = crate::path::path_info(req.uri().path(), &script_name);
        RequestInfo {
            id: next_id(),
            remote_addr: client.ip,
            remote_port: client.port,
            remote_host: None,
            // An HTTP/2 extended CONNECT is the WebSocket handshake's GET (RFC 8441): programs
            // written for websocketd see GET, and SERVER_PROTOCOL says HTTP/2.0.
            method: if crate::edge::is_extended_connect(req) {
                http::Method::GET
            } else {
                req.method().clone()
            },
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
            tls: client.https,
            script_name,
            path_info,
            subprotocol: subprotocol.map(str::to_owned),
            client_subject: self.client_subject.clone(),
            user: req.extensions().get::<User>().cloned(),
        }
    }
}
