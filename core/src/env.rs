//! The request as the child sees it: websocketd's CGI-style environment.
//!
//! The order and the override rules follow websocketd (reference section 3): the server's
//! name first, then the `--passenv` variables, then the standard variables, then one
//! `HTTP_*` variable per request header. A later name overrides an earlier one. Two things
//! are deliberately not copied: a `Proxy` header never becomes `HTTP_PROXY` (httpoxy), and a
//! header whose name contains `_` is left out so that `X_Forwarded_For` cannot shadow
//! `X-Forwarded-For`.

use std::ffi::OsString;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, Uri, Version};

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
    /// The decoded path after the script's (the whole path for a single command).
    pub path_info: String,
    /// The subprotocol the server chose, if any (`WEBSOCKET_SUBPROTOCOL`).
    pub subprotocol: Option<String>,
    /// The subject of the verified client certificate, with `--sslca` (`SSL_CLIENT_S_DN`).
    pub client_subject: Option<std::sync::Arc<str>>,
}

/// Server-wide inputs to every child's environment.
#[derive(Debug, Clone, Default)]
pub struct EnvSettings {
    /// `SERVER_SOFTWARE`.
    pub server_software: String,
    /// The `--passenv` variables as captured at start-up, already cleaned and non-empty.
    pub passenv: Vec<(String, String)>,
}

impl EnvSettings {
    /// Captures the variables named in `names` from `lookup` (the server's own environment),
    /// keeping those that are non-empty once cleaned. `HTTPS` is never passed, as in websocketd.
    pub fn capture_passenv<'a>(
        names: impl IntoIterator<Item = &'a str>,
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for name in names {
            if name.is_empty() || name == "HTTPS" || name.contains('=') {
                continue;
            }
            let Some(value) = lookup(name) else { continue };
            let value = clean(&value.to_string_lossy());
            if !value.is_empty() {
                out.push((name.to_owned(), value));
            }
        }
        out
    }
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

    /// The Host header, as sent.
    pub fn host(&self) -> &str {
        self.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("")
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

    /// The child's whole environment, in websocketd's order. When a name repeats, the last
    /// one counts (as `Command::env` applies them).
    pub fn cgi_env(&self, settings: &EnvSettings) -> Vec<(String, String)> {
        let mut env = Vec::with_capacity(32 + self.headers.keys_len());
        let mut set = |k: &str, v: &str| env.push((k.to_owned(), clean(v)));
        set("SERVER_SOFTWARE", &settings.server_software);
        for (k, v) in &settings.passenv {
            set(k, v);
        }
        let (server_name, server_port) = match split_host_port(self.host()) {
            Ok((host, port)) => (host.to_owned(), port.to_owned()),
            // The scheme's port: the client's, which a trusted proxy may have told.
            Err(HostPortError::MissingPort) => {
                (self.host().to_owned(), if self.tls { "443" } else { "80" }.to_owned())
            }
            Err(HostPortError::Invalid) => (String::new(), String::new()),
        };
        let query = self.uri.query().unwrap_or("");
        set("REMOTE_ADDR", &self.remote_ip());
        set("REMOTE_HOST", &self.remote_name());
        set("SERVER_NAME", &server_name);
        set("SERVER_PORT", &server_port);
        set("SERVER_PROTOCOL", version_str(self.version));
        set("GATEWAY_INTERFACE", "CGI/1.1");
        set("REQUEST_METHOD", self.method.as_str());
        set("SCRIPT_NAME", &self.script_name);
        set("PATH_INFO", &self.path_info);
        set("PATH_TRANSLATED", &self.path_info);
        set("QUERY_STRING", query);
        for empty in ["AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "REMOTE_IDENT", "REMOTE_USER"]
        {
            set(empty, "");
        }
        set("UNIQUE_ID", &self.id.to_string());
        set("REMOTE_PORT", &self.remote_port.map(|p| p.to_string()).unwrap_or_default());
        set("REQUEST_URI", self.request_uri());
        if self.tls {
            set("HTTPS", "on");
        }
        if let Some(subject) = &self.client_subject {
            set("SSL_CLIENT_S_DN", subject);
            set("SSL_CLIENT_VERIFY", "SUCCESS");
        }
        if let Some(protocol) = &self.subprotocol {
            set("WEBSOCKET_SUBPROTOCOL", protocol);
        }
        for name in self.headers.keys() {
            let name = name.as_str();
            // Host is not a header to Go's server, so websocketd never sets HTTP_HOST.
            if name.contains('_') || name == "proxy" || name == "host" {
                continue;
            }
            let mut value = String::new();
            for (i, v) in self.headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    value.push_str(", ");
                }
                value.push_str(&String::from_utf8_lossy(v.as_bytes()));
            }
            let var = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
            set(&var, &value);
        }
        env
    }
}

/// A request's URL as the logs write it (websocketd's `url` field, WebSocket requests too):
/// `http[s]://<Host><request URI>`, the scheme the client's.
pub fn log_url(tls: bool, headers: &HeaderMap, uri: &Uri) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
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

/// `HTTP/1.1` and friends.
pub fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// The client IP of a socket address, without brackets, IPv4-mapped shown as IPv4.
pub fn ip_string(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// CR and LF become spaces, surrounding whitespace goes.
fn clean(value: &str) -> String {
    if value.contains(['\r', '\n']) {
        value.replace(['\r', '\n'], " ").trim().to_owned()
    } else {
        value.trim().to_owned()
    }
}

/// Why a Host value did not split.
#[derive(Debug, PartialEq, Eq)]
enum HostPortError {
    /// No port: the whole value is the host.
    MissingPort,
    /// Not a host and port at all.
    Invalid,
}

/// Go's `net.SplitHostPort`, which websocketd uses on the Host header.
fn split_host_port(s: &str) -> Result<(&str, &str), HostPortError> {
    if let Some(rest) = s.strip_prefix('[') {
        let Some(end) = rest.find(']') else { return Err(HostPortError::Invalid) };
        let (host, after) = (&rest[..end], &rest[end + 1..]);
        return match after.strip_prefix(':') {
            None if after.is_empty() => Err(HostPortError::MissingPort),
            Some(port) if !port.contains([':', '[', ']']) && !host.contains(['[', ']']) => {
                Ok((host, port))
            }
            _ => Err(HostPortError::Invalid),
        };
    }
    match s.matches(':').count() {
        0 => Err(HostPortError::MissingPort),
        1 => {
            let (host, port) = s.split_once(':').ok_or(HostPortError::Invalid)?;
            if host.contains([']', '[']) || port.contains([']', '[']) {
                return Err(HostPortError::Invalid);
            }
            Ok((host, port))
        }
        _ => Err(HostPortError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_splits_as_go_does() {
        assert_eq!(split_host_port("h:99"), Ok(("h", "99")));
        assert_eq!(split_host_port("[::1]:8080"), Ok(("::1", "8080")));
        assert_eq!(split_host_port("[::1]"), Err(HostPortError::MissingPort));
        assert_eq!(split_host_port("h"), Err(HostPortError::MissingPort));
        assert_eq!(split_host_port(""), Err(HostPortError::MissingPort));
        assert_eq!(split_host_port("h:1:2"), Err(HostPortError::Invalid));
        assert_eq!(split_host_port("[::1"), Err(HostPortError::Invalid));
    }

    #[test]
    fn a_host_without_a_port_has_the_port_of_the_clients_scheme() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, "chat.example".parse().unwrap());
        let mut req = RequestInfo {
            id: 1,
            remote_addr: None,
            remote_port: None,
            remote_host: None,
            method: Method::GET,
            uri: Uri::from_static("/"),
            version: Version::HTTP_11,
            headers,
            // As when a trusted proxy says the client came over https.
            tls: true,
            script_name: "/".into(),
            path_info: "/".into(),
            subprotocol: None,
            client_subject: None,
        };
        let var = |req: &RequestInfo, name: &str| {
            let env = req.cgi_env(&EnvSettings::default());
            env.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
        };
        assert_eq!(var(&req, "SERVER_PORT").as_deref(), Some("443"));
        assert_eq!(var(&req, "SERVER_NAME").as_deref(), Some("chat.example"));
        req.tls = false;
        assert_eq!(var(&req, "SERVER_PORT").as_deref(), Some("80"));
    }

    #[test]
    fn ids_never_repeat() {
        let ids: Vec<u64> = (0..1000).map(|_| next_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn passenv_skips_empty_unset_and_https() {
        let got = EnvSettings::capture_passenv(["A", "B", "C", "HTTPS"], |k| match k {
            "A" => Some(" x\ny ".into()),
            "B" => Some("".into()),
            "HTTPS" => Some("on".into()),
            _ => None,
        });
        assert_eq!(got, vec![("A".to_owned(), "x y".to_owned())]);
    }
}
