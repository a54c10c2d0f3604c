//! `--authurl`: forward auth, the pattern of nginx's `auth_request` and Traefik's
//! ForwardAuth (oauth2-proxy, Authelia, Authentik answer it). For each request the server
//! asks the auth service, over plain HTTP on TCP or a unix socket, with the request's method
//! and headers (hop-by-hop ones left out) to the URL's path, and tells it what was asked in
//! `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`, `-For` and `X-Original-URI`,
//! `X-Original-Method`, `X-Original-URL` (any such header the client sent is replaced).
//!
//! A 2xx answer allows the request, its user header (`--authuserheader`) naming the user; 401
//! and 403 are passed on to the client with their body and challenge; anything else, no
//! answer within `--authtimeoutms`, or [`CONCURRENCY`] checks already under way is 503.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::conn::Client;
use crate::error::Error;
use crate::response::{Body, full};

/// Most forward-auth checks under way at once; more wait, within the timeout.
pub const CONCURRENCY: usize = 64;
/// Most bytes of an answer's body passed on to the client.
const BODY_MAX: usize = 64 * 1024;

/// Where the auth service is, as `--authurl` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUrl {
    target: Target,
    /// The request target to ask for: the URL's path and query.
    path: String,
    /// The Host header to send.
    host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// `host:port`, which may be a name to look up.
    Tcp(String),
    /// A unix socket.
    Unix(PathBuf),
}

impl AuthUrl {
    /// `http://HOST[:PORT]/PATH`, or `http://unix:SOCKET:/PATH` as nginx writes a unix socket.
    pub fn parse(url: &str) -> Result<AuthUrl, Error> {
        let bad = |reason| Error::AuthUrl { url: url.to_owned(), reason };
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(bad(if url.starts_with("https://") {
                "https is not spoken to the auth service: give it on loopback or a unix socket"
            } else {
                "it must start with http://"
            }));
        };
        if let Some(rest) = rest.strip_prefix("unix:") {
            let Some((socket, path)) = rest.split_once(":/") else {
                return Err(bad("a unix socket is http://unix:/path/to.sock:/path"));
            };
            if socket.is_empty() {
                return Err(bad("the unix socket's path is empty"));
            }
            let path = format!("/{path}");
            http::uri::PathAndQuery::try_from(path.as_str()).map_err(|_| bad("bad path"))?;
            return Ok(AuthUrl {
                target: Target::Unix(PathBuf::from(socket)),
                path,
                host: "localhost".to_owned(),
            });
        }
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let Some(authority) = uri.authority() else { return Err(bad("no host")) };
        if authority.as_str().contains('@') {
            return Err(bad("user information is not supported"));
        }
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        let target = if host.starts_with('[') {
            format!("{host}:{port}")
        } else if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let path = uri.path_and_query().map_or("/", |pq| pq.as_str()).to_owned();
        Ok(AuthUrl { target: Target::Tcp(target), path, host: authority.as_str().to_owned() })
    }
}

/// What the auth service said.
#[derive(Debug)]
pub(crate) enum Answer {
    /// 2xx: allowed, as this user if its header named one.
    Allowed(Option<String>),
    /// 401 or 403: this answer goes to the client.
    Denied(Response<Body>),
    /// Anything else, or nothing.
    Failed(String),
}

/// The forward-auth client.
#[derive(Debug)]
pub(crate) struct Forward {
    url: AuthUrl,
    user_header: HeaderName,
    timeout: Duration,
    under_way: tokio::sync::Semaphore,
}

impl Forward {
    /// Asks `url`, taking the user from `user_header`, waiting at most `timeout`.
    pub(crate) fn new(url: AuthUrl, user_header: HeaderName, timeout: Duration) -> Forward {
        Forward { url, user_header, timeout, under_way: tokio::sync::Semaphore::new(CONCURRENCY) }
    }

    /// Where it asks, for the start-up line.
    pub(crate) fn url(&self) -> String {
        match &self.url.target {
            Target::Tcp(address) => format!("http://{address}{}", self.url.path),
            Target::Unix(path) => format!("http://unix:{}:{}", path.display(), self.url.path),
        }
    }

    /// Asks about a request of `client` with `method`, `uri` (as the program will see it)
    /// and `headers`.
    pub(crate) async fn ask(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        client: &Client,
    ) -> Answer {
        let request = match self.request(method, uri, headers, client) {
            Ok(request) => request,
            Err(e) => return Answer::Failed(format!("cannot make the request: {e}")),
        };
        let asked = async {
            // Never closed: the semaphore lives as long as `self`.
            let Ok(_turn) = self.under_way.acquire().await else {
                return Err("no turn".to_owned());
            };
            match &self.url.target {
                Target::Tcp(address) => {
                    let stream = tokio::net::TcpStream::connect(address.as_str())
                        .await
                        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
                    let _ = stream.set_nodelay(true);
                    exchange(stream, request).await
                }
                Target::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
                    exchange(stream, request).await
                }
            }
        };
        let (status, answer_headers, body) = match tokio::time::timeout(self.timeout, asked).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(why)) => return Answer::Failed(why),
            Err(_) => {
                return Answer::Failed(format!("no answer within {} ms", self.timeout.as_millis()));
            }
        };
        if status.is_success() {
            let user = answer_headers
                .get(&self.user_header)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            return Answer::Allowed(user);
        }
        if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
            return Answer::Failed(format!("it answered {status}"));
        }
        let mut resp = Response::new(full(body));
        *resp.status_mut() = status;
        for name in
            [header::WWW_AUTHENTICATE, header::CONTENT_TYPE, header::SET_COOKIE, header::LOCATION]
        {
            for value in answer_headers.get_all(&name) {
                resp.headers_mut().append(name.clone(), value.clone());
            }
        }
        Answer::Denied(resp)
    }

    fn request(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        client: &Client,
    ) -> Result<Request<Empty<Bytes>>, http::uri::InvalidUri> {
        let mut out = HeaderMap::with_capacity(headers.len() + 8);
        for (name, value) in headers {
            if !is_forwarded(name) {
                out.append(name.clone(), value.clone());
            }
        }
        let scheme = if client.https { "https" } else { "http" };
        let host = websocketd_core::host::of_request(uri, headers);
        let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                out.insert(HeaderName::from_static(name), value);
            }
        };
        set("x-forwarded-method", method.to_string());
        set("x-forwarded-proto", scheme.to_owned());
        set("x-forwarded-host", host.to_owned());
        set("x-forwarded-uri", target.to_owned());
        if let Some(ip) = client.ip {
            set("x-forwarded-for", websocketd_core::request::ip_string(ip));
        }
        set("x-original-method", method.to_string());
        set("x-original-uri", target.to_owned());
        set("x-original-url", format!("{scheme}://{host}{target}"));
        if let Ok(host) = HeaderValue::from_str(&self.url.host) {
            out.insert(header::HOST, host);
        }
        let mut req = Request::new(Empty::new());
        *req.method_mut() = method.clone();
        *req.uri_mut() = self.url.path.parse()?;
        *req.headers_mut() = out;
        Ok(req)
    }
}

/// Whether a request header stays out of the auth request: hop-by-hop ones, the framing,
/// the Host (the auth service's is sent), and the forwarding headers, which are set anew.
fn is_forwarded(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "host"
            | "connection"
            | "upgrade"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "content-length"
            | "proxy-authorization"
            | "proxy-connection"
            | "forwarded"
    ) || n.starts_with("x-forwarded-")
        || n.starts_with("x-original-")
}

/// One request and its answer on a new connection, the body at most [`BODY_MAX`].
async fn exchange<S>(
    stream: S,
    request: Request<Empty<Bytes>>,
) -> Result<(StatusCode, HeaderMap, Bytes), String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let exchange = async move {
        let resp = sender.send_request(request).await.map_err(|e| format!("HTTP: {e}"))?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, BODY_MAX)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        Ok((parts.status, parts.headers, body))
    };
    // The connection is driven while the exchange runs, and dropped (closed) with it. One
    // that ends first has handed over all it read: the exchange finishes with that.
    let mut exchange = std::pin::pin!(exchange);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        biased;
        answer = &mut exchange => return answer,
        ended = &mut connection => ended.map_err(|e| format!("HTTP: {e}"))?,
    }
    exchange.await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_unix_urls_are_understood() {
        let url = AuthUrl::parse("http://127.0.0.1:9091/api/verify?x=1").unwrap();
        assert_eq!(url.target, Target::Tcp("127.0.0.1:9091".to_owned()));
        assert_eq!(url.path, "/api/verify?x=1");
        let url = AuthUrl::parse("http://[::1]:4180/oauth2/auth").unwrap();
        assert_eq!(url.target, Target::Tcp("[::1]:4180".to_owned()));
        let url = AuthUrl::parse("http://localhost/").unwrap();
        assert_eq!(url.target, Target::Tcp("localhost:80".to_owned()));
        let url = AuthUrl::parse("http://unix:/run/auth.sock:/check").unwrap();
        assert_eq!(url.target, Target::Unix("/run/auth.sock".into()));
        assert_eq!(url.path, "/check");
        for bad in
            ["https://127.0.0.1/", "127.0.0.1:80/", "http://unix:/run/auth.sock", "http://u@h/"]
        {
            assert!(AuthUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
