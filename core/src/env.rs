//! The request as the child sees it: websocketd's CGI-style environment.
//!
//! The order and the override rules follow websocketd (reference section 3): the server's
//! name first, then the `--passenv` variables, then the standard variables, then one
//! `HTTP_*` variable per request header. A later name overrides an earlier one. Two things
//! are deliberately not copied: a `Proxy` header never becomes `HTTP_PROXY` (httpoxy), and a
//! header whose name contains `_` is left out so that `X_Forwarded_For` cannot shadow
//! `X-Forwarded-For`.

use std::ffi::OsString;

use http::Version;

use crate::host::{self, HostPort};
use crate::request::RequestInfo;

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

    /// The whole environment of `req`'s child, in websocketd's order. When a name repeats, the last
    /// one counts (as `Command::env` applies them).
    pub fn cgi_env(&self, req: &RequestInfo) -> Vec<(String, String)> {
        let settings = self;
        let mut env = Vec::with_capacity(32 + req.headers.keys_len());
        let mut set = |k: &str, v: &str| env.push((k.to_owned(), clean(v)));
        set("SERVER_SOFTWARE", &settings.server_software);
        for (k, v) in &settings.passenv {
            set(k, v);
        }
        let (server_name, server_port) = match host::split(req.host()) {
            Some(HostPort { host, port: Some(port) }) => (host.to_owned(), port.to_owned()),
            // No port: the whole value is the name (as Go's missing-port error has it), and
            // the port is the scheme's, the client's, which a trusted proxy may have told.
            Some(HostPort { port: None, .. }) => {
                (req.host().to_owned(), if req.tls { "443" } else { "80" }.to_owned())
            }
            None => (String::new(), String::new()),
        };
        let query = req.uri.query().unwrap_or("");
        set("REMOTE_ADDR", &req.remote_ip());
        set("REMOTE_HOST", &req.remote_name());
        set("SERVER_NAME", &server_name);
        set("SERVER_PORT", &server_port);
        set("SERVER_PROTOCOL", version_str(req.version));
        set("GATEWAY_INTERFACE", "CGI/1.1");
        set("REQUEST_METHOD", req.method.as_str());
        set("SCRIPT_NAME", &req.script_name);
        set("PATH_INFO", &req.path_info);
        set("PATH_TRANSLATED", &req.path_info);
        set("QUERY_STRING", query);
        for empty in ["AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "REMOTE_IDENT", "REMOTE_USER"]
        {
            set(empty, "");
        }
        set("UNIQUE_ID", &req.id.to_string());
        set("REMOTE_PORT", &req.remote_port.map(|p| p.to_string()).unwrap_or_default());
        set("REQUEST_URI", req.request_uri());
        if req.tls {
            set("HTTPS", "on");
        }
        if let Some(subject) = &req.client_subject {
            set("SSL_CLIENT_S_DN", subject);
            set("SSL_CLIENT_VERIFY", "SUCCESS");
        }
        if let Some(protocol) = &req.subprotocol {
            set("WEBSOCKET_SUBPROTOCOL", protocol);
        }
        for name in req.headers.keys() {
            let name = name.as_str();
            // Host is not a header to Go's server, so websocketd never sets HTTP_HOST.
            if name.contains('_') || name == "proxy" || name == "host" {
                continue;
            }
            let mut value = String::new();
            for (i, v) in req.headers.get_all(name).iter().enumerate() {
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

/// `HTTP/1.1` and friends.
fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// CR and LF become spaces, surrounding whitespace goes.
fn clean(value: &str) -> String {
    if value.contains(['\r', '\n']) {
        value.replace(['\r', '\n'], " ").trim().to_owned()
    } else {
        value.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method, Uri};

    use super::*;

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
            let env = EnvSettings::default().cgi_env(req);
            env.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
        };
        assert_eq!(var(&req, "SERVER_PORT").as_deref(), Some("443"));
        assert_eq!(var(&req, "SERVER_NAME").as_deref(), Some("chat.example"));
        req.tls = false;
        assert_eq!(var(&req, "SERVER_PORT").as_deref(), Some("80"));
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
