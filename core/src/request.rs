//! What the server knows about one request, as the child and the logs are told: who the
//! client is, what it asked for, and the connection's identifier.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, Uri, Version};

use crate::host;

/// What the server knows about one WebSocket request.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The connection's identifier: `UNIQUE_ID` and the log's `id`.
    pub id: u64,
    /// The client's address, if known (none for a unix-socket peer that is not a trusted
    /// proxy).
    pub remote_addr: Option<IpAddr>,
    /// The client's port, if known (a proxy's forwarding header may not say).
    pub remote_port: Option<u16>,
    /// The client's name (reverse lookup); the address when there is none.
    pub remote_host: Option<String>,
    /// The request method.
    pub method: Method,
    /// The request target as sent.
    pub uri: Uri,
    /// The HTTP version.
    pub version: Version,
    /// All request headers.
    pub headers: HeaderMap,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The script's URL path (`/` for a single command).
    pub script_name: String,
    /// The decoded path after the script's (the whole path for a single command), as bytes:
    /// `%E9` is the byte 0xE9, whatever the encoding.
    pub path_info: Vec<u8>,
    /// The subprotocol the server chose, if any (`WEBSOCKET_SUBPROTOCOL`).
    pub subprotocol: Option<String>,
    /// The subject of the verified client certificate, with `--sslca` (`SSL_CLIENT_S_DN`).
    pub client_subject: Option<std::sync::Arc<str>>,
    /// Who the client proved to be, when access control asked (`REMOTE_USER`, `AUTH_TYPE`).
    pub user: Option<User>,
}

/// Who a client is, as access control found: the program's `REMOTE_USER` and `AUTH_TYPE`,
/// and the logs' `user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name; empty for a token that has none.
    pub name: String,
    /// How it was found: `Basic` (`--htpasswd`), `Bearer` (`--tokens`), `Forward`
    /// (`--authurl`) or `Proxy` (`--remoteuserheader`).
    pub auth_type: &'static str,
}

impl RequestInfo {
    /// The client's IP as websocketd prints it: no brackets, IPv4-mapped addresses as IPv4.
    pub fn remote_ip(&self) -> String {
        self.remote_addr.map(ip_string).unwrap_or_default()
    }

    /// The name the logs and `REMOTE_HOST` use for the client.
    pub fn remote_name(&self) -> String {
        self.remote_host.clone().unwrap_or_else(|| self.remote_ip())
    }

    /// The client as the logs name it: [`remote_name`](Self::remote_name), or `unix` when
    /// the client is a unix-socket peer with no known address.
    pub fn remote_label(&self) -> String {
        self.remote_host.clone().unwrap_or_else(|| address_label(self.remote_addr))
    }

    /// The user's name for the logs, when there is one (a token without a name has none).
    pub fn user_name(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.name.as_str()).filter(|name| !name.is_empty())
    }

    /// The host the request is for: an absolute-form target's, else the Host header's.
    pub fn host(&self) -> &str {
        host::of_request(&self.uri, &self.headers)
    }

    /// The request target as sent (path and query).
    pub fn request_uri(&self) -> &str {
        self.uri.path_and_query().map_or("/", |pq| pq.as_str())
    }

    /// The URL for logs: `http[s]://<Host><request URI>`.
    pub fn url(&self) -> String {
        log_url(self.tls, &self.headers, &self.uri)
    }

    /// The origin for logs: the Origin header, `file:` when absent or `null`.
    pub fn origin(&self) -> String {
        match self.headers.get(http::header::ORIGIN).map(|o| String::from_utf8_lossy(o.as_bytes()))
        {
            Some(o) if o != "null" && !o.is_empty() => o.into_owned(),
            _ => "file:".to_owned(),
        }
    }
}

/// A request's URL as the logs write it (websocketd's `url` field, WebSocket requests too):
/// `http[s]://<host><request URI>`, the scheme the client's, the host the request's (the
/// Host header's, or an absolute-form target's).
pub fn log_url(tls: bool, headers: &HeaderMap, uri: &Uri) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = host::of_request(uri, headers);
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    format!("{scheme}://{host}{target}")
}

/// A client address as the logs write it: as [`ip_string`], or `unix` for a unix-socket peer
/// whose address nobody trusted told.
pub fn address_label(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unix".to_owned(), ip_string)
}

/// A new connection identifier: nanoseconds since the epoch as websocketd uses, made
/// strictly increasing so that two connections never share one.
pub fn next_id() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// The client IP of a socket address, without brackets, IPv4-mapped shown as IPv4.
pub fn ip_string(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_repeat() {
        let ids: Vec<u64> = (0..1000).map(|_| next_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
