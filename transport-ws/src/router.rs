//! What each request gets. A path that is not clean is redirected (301) to its clean form.
//! An upgrade takes a `--maxforks` slot (429 when none is left), finds what to run (the
//! command, or with `--dir` the script its URL names: 404 when there is none), is checked,
//! answered with 101 and handed to a session. Every other request is a 404, as websocketd
//! answers with nothing else configured.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::Instrument;
use websocketd_core::command::Command;
use websocketd_core::env::{RequestInfo, address_label, ip_string, next_id};
use websocketd_core::{SessionConfig, session};

use crate::conn::Conn;
use crate::files::StaticDir;
use crate::origin::OriginPolicy;
use crate::proxy::{Client, TrustedProxies};
use crate::readahead::ReadAhead;
use crate::response::{Body, ExtraHeaders, full, moved, plain};
use crate::scripts::{Lookup, ScriptDir};
use crate::{cgi, console, path, upgrade};

/// What WebSocket requests run.
#[derive(Debug)]
pub enum Endpoint {
    /// The same command for every URL.
    Command(Arc<Command>),
    /// The script each URL names in a directory (`--dir`).
    Dir(ScriptDir),
}

/// Everything a request handler needs; shared by all listeners.
#[derive(Debug)]
pub struct App {
    endpoint: Option<Endpoint>,
    files: Option<StaticDir>,
    cgi: Option<ScriptDir>,
    session: Arc<SessionConfig>,
    forks: Option<Arc<Semaphore>>,
    ws_config: WebSocketConfig,
    subprotocols: Vec<String>,
    origins: OriginPolicy,
    proxies: TrustedProxies,
    headers: ExtraHeaders,
    reverse_lookup: bool,
    /// With `--devconsole`: when the server started (the page's Last-Modified).
    console: Option<std::time::SystemTime>,
    shutdown: websocketd_core::Shutdown,
}

/// How long a reverse DNS lookup may take before the address is used instead.
const REVERSE_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

impl App {
    /// An app running `endpoint` for every WebSocket with `session`'s settings, at most
    /// `maxforks` at once (0: no limit), choosing among `subprotocols` (in order of preference)
    /// those the client offers.
    pub fn new(
        endpoint: Option<Endpoint>,
        session: SessionConfig,
        maxforks: usize,
        subprotocols: Vec<String>,
        shutdown: websocketd_core::Shutdown,
    ) -> App {
        // usize::MAX stands for no limit (--maxframesize=0).
        let max = session.max_message;
        let limit = (max != usize::MAX).then_some(max);
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(64 * 1024)
            .max_write_buffer_size(max.saturating_mul(2).max(1 << 20).saturating_add(64 << 10))
            .max_message_size(limit)
            .max_frame_size(limit);
        let forks = (maxforks > 0).then(|| Arc::new(Semaphore::new(maxforks)));
        App {
            endpoint,
            files: None,
            cgi: None,
            session: Arc::new(session),
            forks,
            ws_config,
            subprotocols,
            origins: OriginPolicy::default(),
            proxies: TrustedProxies::default(),
            headers: ExtraHeaders::default(),
            reverse_lookup: false,
            console: None,
            shutdown,
        }
    }

    /// Who may connect (`--origin`, `--sameorigin`); everyone by default.
    pub fn with_origins(mut self, origins: OriginPolicy) -> App {
        self.origins = origins;
        self
    }

    /// The proxies whose forwarding headers name the client (`--trustedproxy`).
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> App {
        self.proxies = proxies;
        self
    }

    /// The server's shutdown, which every connection and session watches.
    pub fn shutdown(&self) -> &websocketd_core::Shutdown {
        &self.shutdown
    }

    /// Response headers to add (`--header`, `--header-ws`, `--header-http`).
    pub fn with_headers(mut self, headers: ExtraHeaders) -> App {
        self.headers = headers;
        self
    }

    /// Serves the files of `dir` for requests that are not upgrades (`--staticdir`).
    pub fn with_files(mut self, dir: Option<StaticDir>) -> App {
        self.files = dir;
        self
    }

    /// Runs the CGI scripts of `dir` for requests that are not upgrades (`--cgidir`).
    pub fn with_cgi(mut self, dir: Option<ScriptDir>) -> App {
        self.cgi = dir;
        self
    }

    /// Whether to name clients by reverse DNS (`--reverselookup`).
    pub fn with_reverse_lookup(mut self, on: bool) -> App {
        self.reverse_lookup = on;
        self
    }

    /// Serves the developer console for every request that is not an upgrade (`--devconsole`).
    pub fn with_console(mut self, on: bool) -> App {
        self.console = on.then(std::time::SystemTime::now);
        self
    }

    /// Answers one request on `conn`, with the command line's extra headers.
    pub async fn handle(&self, req: Request<Incoming>, conn: &Conn) -> Response<Body> {
        let client = self.proxies.client(&conn.peer, conn.tls, req.headers());
        let mut resp = self.route(req, client, conn).await;
        let extra = if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            &self.headers.ws
        } else {
            &self.headers.http
        };
        let h = resp.headers_mut();
        for (name, value) in self.headers.all.iter().chain(extra) {
            h.append(name, value.clone());
        }
        resp
    }

    /// websocketd's dispatch: with a command or `--dir`, an upgrade goes to a session; any
    /// other request gets the console, a static file, or 404.
    async fn route(&self, req: Request<Incoming>, client: Client, conn: &Conn) -> Response<Body> {
        let tls = client.https;
        let decoded = path::decode(req.uri().path());
        if let Some(location) = path::redirect(&decoded, req.uri().query()) {
            return moved(&location);
        }
        if let Some(endpoint) = &self.endpoint {
            if upgrade::is_upgrade(&req) {
                return self.upgrade(req, client, conn, endpoint, decoded);
            }
        }
        let span = tracing::info_span!(target: "http", "http", url = %url(&req, tls), remote = %address_label(client.ip));
        if let Some(since) = self.console {
            // A browser asks for the icon of every page; the console is not one.
            if decoded == "/favicon.ico" {
                span.in_scope(|| websocketd_core::access!(target: "http", "NOT FOUND"));
                return plain(StatusCode::NOT_FOUND, "404 page not found\n");
            }
            span.in_scope(|| websocketd_core::access!(target: "http", "DEVCONSOLE"));
            return console::respond(req.headers(), since).map(full);
        }
        if let Some(cgi) = &self.cgi {
            match cgi.lookup(&decoded) {
                Lookup::Found { program, script_name, path_info } => {
                    let Some(slot) = self.slot() else {
                        tracing::error!(target: "http", "Fork not allowed since maxforks amount has been reached. CGI was not run.");
                        return plain(StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests\n");
                    };
                    let info = request_info(&req, client, conn, script_name, path_info, None);
                    let span = tracing::info_span!(target: "http", "http", url = %url(&req, tls), remote = %address_label(client.ip), cgiscript = %program.display());
                    span.in_scope(|| websocketd_core::access!(target: "http", "CGI"));
                    let env = &self.session.env;
                    let run = cgi::run(req, info, program, env, self.session.closems, slot);
                    return run.instrument(span).await;
                }
                Lookup::Refused(why) => {
                    span.in_scope(|| {
                        tracing::error!(target: "http", "Refused to run {}: {why}", req.uri().path());
                    });
                    return plain(StatusCode::NOT_FOUND, "404 page not found\n");
                }
                Lookup::NotFound => {}
            }
        }
        if let Some(files) = &self.files {
            span.in_scope(|| websocketd_core::access!(target: "http", "STATIC"));
            if let Some(resp) = files.serve(req, &decoded).await {
                return resp;
            }
            return plain(StatusCode::NOT_FOUND, "404 page not found\n");
        }
        span.in_scope(|| websocketd_core::access!(target: "http", "NOT FOUND"));
        plain(StatusCode::NOT_FOUND, "404 page not found\n")
    }

    /// A `--maxforks` slot: `Some(None)` when there is no limit, `None` when none is left.
    fn slot(&self) -> Option<Option<tokio::sync::OwnedSemaphorePermit>> {
        match &self.forks {
            None => Some(None),
            Some(forks) => Arc::clone(forks).try_acquire_owned().ok().map(Some),
        }
    }

    /// A WebSocket upgrade: slot, script, checks, 101, session.
    fn upgrade(
        &self,
        mut req: Request<Incoming>,
        client: Client,
        conn: &Conn,
        endpoint: &Endpoint,
        decoded: String,
    ) -> Response<Body> {
        let tls = client.https;
        let Some(slot) = self.slot() else {
            tracing::error!(target: "http", "Max of possible forks already active, upgrade rejected");
            return plain(StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests\n");
        };
        let (command, script_name, path_info) = match endpoint {
            Endpoint::Command(command) => (Arc::clone(command), "/".to_owned(), decoded),
            Endpoint::Dir(dir) => match dir.lookup(&decoded) {
                Lookup::Found { program, script_name, path_info } => {
                    (Arc::new(Command { program, args: Vec::new() }), script_name, path_info)
                }
                Lookup::NotFound => {
                    not_found(&req, &client, None);
                    return plain(StatusCode::NOT_FOUND, "404 Not Found\n");
                }
                Lookup::Refused(why) => {
                    not_found(&req, &client, Some(why));
                    return plain(StatusCode::NOT_FOUND, "404 Not Found\n");
                }
            },
        };
        let accept = match upgrade::check(&req) {
            Ok(key) => derive_accept_key(key),
            Err(refusal) => {
                let span = tracing::info_span!(target: "session", "session", url = %url(&req, tls), remote = %address_label(client.ip));
                span.in_scope(|| {
                    websocketd_core::access!(target: "session", "Unable to Upgrade: {}", refusal.reason());
                });
                let mut resp = plain(refusal.status(), &format!("{}\n", refusal.reason()));
                resp.headers_mut()
                    .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
                return resp;
            }
        };
        let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok());
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if let Err(why) = self.origins.check(origin, host, tls) {
            let span = tracing::info_span!(target: "session", "session", url = %url(&req, tls), remote = %address_label(client.ip), origin = %origin.unwrap_or("file:"));
            span.in_scope(|| websocketd_core::access!(target: "session", "{why}"));
            return plain(StatusCode::FORBIDDEN, "Forbidden\n");
        }
        let subprotocol = upgrade::choose_subprotocol(req.headers(), &self.subprotocols);
        let info = request_info(&req, client, conn, script_name, path_info, subprotocol);
        let on_upgrade = hyper::upgrade::on(&mut req);
        let ws_config = self.ws_config;
        let socket: session::Upgrade<_> = Box::pin(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = ReadAhead::new(TokioIo::new(upgraded));
                    Some(WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config)).await)
                }
                Err(e) => {
                    tracing::debug!(target: "http", "Upgrade failed: {e}");
                    None
                }
            }
        });
        let session_config = Arc::clone(&self.session);
        let shutdown = &self.shutdown;
        match client.ip.filter(|_| self.reverse_lookup) {
            Some(ip) => {
                // The name is looked up after the 101 (bounded), then the session starts.
                let mut info = info.clone();
                let watch = shutdown.clone();
                shutdown.spawn(async move {
                    info.remote_host = Some(reverse_name(ip).await);
                    let session = session::run(socket, &info, command, session_config, watch, slot);
                    drop(info);
                    session.await;
                });
            }
            None => {
                let watch = shutdown.clone();
                shutdown.spawn(session::run(socket, &info, command, session_config, watch, slot));
            }
        }
        let mut resp = Response::new(full(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if let Some(v) = info.subprotocol.as_deref().and_then(|p| HeaderValue::from_str(p).ok()) {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
        }
        resp
    }
}

/// What the process learns about `req`.
fn request_info<B>(
    req: &Request<B>,
    client: Client,
    conn: &Conn,
    script_name: String,
    path_info: String,
    subprotocol: Option<&str>,
) -> RequestInfo {
    RequestInfo {
        id: next_id(),
        remote_addr: client.ip,
        remote_port: client.port,
        remote_host: None,
        method: req.method().clone(),
        uri: req.uri().clone(),
        version: req.version(),
        headers: req.headers().clone(),
        tls: client.https,
        script_name,
        path_info,
        subprotocol: subprotocol.map(str::to_owned),
        client_subject: conn.client_subject.clone(),
    }
}

/// The client's name by reverse DNS, or its address when there is none within the timeout.
async fn reverse_name(ip: IpAddr) -> String {
    let ip = ip.to_canonical();
    let lookup = tokio::task::spawn_blocking(move || dns_lookup::lookup_addr(&ip));
    match tokio::time::timeout(REVERSE_LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(Ok(name))) if !name.is_empty() => name,
        _ => ip_string(ip),
    }
}

/// Logs a WebSocket request with no script behind it; `why` when something is there that
/// may not be run.
fn not_found<B>(req: &Request<B>, client: &Client, why: Option<&str>) {
    let span = tracing::info_span!(target: "session", "session", url = %url(req, client.https), remote = %address_label(client.ip));
    span.in_scope(|| {
        if let Some(why) = why {
            tracing::error!(target: "session", "Refused to run {}: {why}", req.uri().path());
        }
        websocketd_core::access!(target: "session", "NOT FOUND: script not found");
    });
}

/// `http[s]://<Host><request URI>` for logs.
fn url<B>(req: &Request<B>, tls: bool) -> String {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}{target}")
}
