//! The WebSocket endpoint: everything an upgrade request goes through, in order. It refuses
//! one with a body (400, closing), takes a `--maxforks` slot (429 when none is left), finds
//! what to run (the command, or with `--dir` the script its URL names: 404 when there is
//! none), checks the RFC 6455 handshake (405, 400, 426), the origin (403) and the
//! subprotocol, makes the request as the program sees it and refuses an environment exec
//! would not take (400, 431), and spawns the session behind the 101 it answers with.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use websocketd_core::broadcast::{BroadcastConfig, Broadcasts};
use websocketd_core::command::Command;
use websocketd_core::env::{Vars, check_exec};
use websocketd_core::host;
use websocketd_core::request::{RequestInfo, address_label, ip_string, log_url};
use websocketd_core::resume::{ResumeConfig, Resumes, Ticket};
use websocketd_core::{SessionConfig, Shutdown, session};

use crate::conn::{Client, Conn};
use crate::edge::{self, BadRequest};
use crate::forks::{Forks, Full, Slot};
use crate::origin::OriginPolicy;
use crate::readahead::ReadAhead;
use crate::response::{Body, full, plain};
use crate::scripts::{Lookup, ScriptDir};

/// How long a reverse DNS lookup may take before the address is used instead.
const REVERSE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// What WebSocket requests run.
#[derive(Debug)]
pub enum Endpoint {
    /// The same command for every URL.
    Command(Arc<Command>),
    /// The script each URL names in a directory (`--dir`).
    Dir(ScriptDir),
}

/// The endpoint as the router holds it: what to run, and how sessions run.
#[derive(Debug)]
pub(crate) struct WebSockets {
    endpoint: Endpoint,
    session: Arc<SessionConfig>,
    ws_config: WebSocketConfig,
    subprotocols: Vec<String>,
    origins: OriginPolicy,
    reverse_lookup: bool,
    forks: Forks,
    shutdown: Shutdown,
    /// With `--broadcast`: the shared programs.
    broadcasts: Option<Broadcasts>,
    /// With `--resumems`: the resumable sessions.
    resumes: Option<Resumes>,
}

/// How the endpoint is set up.
#[derive(Debug)]
pub(crate) struct Setup {
    /// What to run.
    pub(crate) endpoint: Endpoint,
    /// How each session runs.
    pub(crate) session: SessionConfig,
    /// The subprotocols spoken, most preferred first.
    pub(crate) subprotocols: Vec<String>,
    /// Who may connect.
    pub(crate) origins: OriginPolicy,
    /// Whether to name clients by reverse DNS.
    pub(crate) reverse_lookup: bool,
    /// With `--broadcast`: how shared programs run.
    pub(crate) broadcast: Option<BroadcastConfig>,
    /// With `--resumems`: how resumable sessions run.
    pub(crate) resume: Option<ResumeConfig>,
}

impl WebSockets {
    /// The endpoint `setup` describes, its sessions counted in `forks` and watching
    /// `shutdown`.
    pub(crate) fn new(setup: Setup, forks: Forks, shutdown: Shutdown) -> WebSockets {
        let Setup { endpoint, session, subprotocols, origins, reverse_lookup, broadcast, resume } =
            setup;
        // usize::MAX stands for no limit (--maxframesize=0).
        let max = session.max_message;
        let limit = (max != usize::MAX).then_some(max);
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(64 * 1024)
            .max_write_buffer_size(max.saturating_mul(2).max(1 << 20).saturating_add(64 << 10))
            .max_message_size(limit)
            .max_frame_size(limit);
        WebSockets {
            endpoint,
            session: Arc::new(session),
            ws_config,
            subprotocols,
            origins,
            reverse_lookup,
            forks,
            shutdown,
            broadcasts: broadcast.map(Broadcasts::new),
            resumes: resume.map(Resumes::new),
        }
    }

    /// Answers an upgrade request whose decoded path is `decoded`: admitted (slot, script,
    /// checks), it becomes a session behind a 101; refused, it gets the refusal's status.
    pub(crate) fn upgrade(
        &self,
        mut req: Request<Incoming>,
        client: Client,
        conn: &Conn,
        decoded: &str,
    ) -> Response<Body> {
        // Taken out of the query by the router, before anything saw it.
        let ticket = match &self.resumes {
            Some(_) => req.extensions_mut().remove::<Ticket>(),
            None => None,
        };
        let admitted = match self.admit(&req, &client, decoded, ticket.as_ref()) {
            Ok(admitted) => admitted,
            Err(refused) => return refused.response(),
        };
        let Admitted { slot, command, script_name, accept, subprotocol, key } = admitted;
        let info = conn.request_info(&req, client, script_name, subprotocol);
        // What exec would refuse is refused now, before the 101 and with the slot given back.
        let env = match &self.broadcasts {
            Some(_) => self.session.env.shared_env(&info),
            None => self.session.env.cgi_env(&info),
        };
        if let Err(why) = check_exec(command.program.as_os_str(), &command.args, &env) {
            refusal_span(&req, &client).in_scope(|| {
                tracing::error!(target: "session", "Refused to run {}: {why}", command.line());
            });
            return edge::unrunnable(&why);
        }
        let socket = self.socket(&mut req);
        match (&self.broadcasts, key) {
            (Some(broadcasts), Some(key)) => {
                let config = Arc::clone(&self.session);
                let shutdown = self.shutdown.clone();
                let client =
                    broadcasts.run(socket, &info, key, env, command, config, shutdown, slot);
                self.shutdown.spawn(client);
            }
            _ => match slot {
                Some(slot) => self.spawn(socket, info, env, command, Some(slot), client, ticket),
                None if ticket.is_some() => {
                    self.spawn(socket, info, env, command, None, client, ticket);
                }
                // Not reached: without --broadcast a request with no slot was refused.
                None => return plain(StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests\n"),
            },
        }
        switching_protocols(accept.as_deref(), subprotocol)
    }

    /// Takes a `--maxforks` slot, finds what to run and checks the handshake and the origin,
    /// in websocketd's order; a refusal is logged and answered.
    fn admit<'a>(
        &'a self,
        req: &Request<Incoming>,
        client: &Client,
        decoded: &str,
        ticket: Option<&Ticket>,
    ) -> Result<Admitted<'a>, Refused> {
        let tls = client.https;
        if let Err(bad) = edge::check_upgrade(req) {
            refusal_span(req, client).in_scope(|| {
                websocketd_core::access!(target: "session", "Unable to Upgrade: {}", bad.reason());
            });
            return Err(Refused::Edge(bad));
        }
        // A client that joins a running shared program needs no slot: whether it does is
        // known once its script is found. Nor does one that resumes its session (or is told
        // that there is none).
        let (slot, full) = match self.forks.take(client.ip) {
            Ok(slot) => (Some(slot), Full::Server),
            Err(full) => (None, full),
        };
        let resuming = match (&self.resumes, ticket) {
            (Some(resumes), Some(ticket)) => resumes.needs_no_slot(ticket),
            _ => false,
        };
        if slot.is_none() && self.broadcasts.is_none() && !resuming {
            return Err(busy(full));
        }
        let (command, script_name) = match &self.endpoint {
            Endpoint::Command(command) => (Arc::clone(command), "/".to_owned()),
            Endpoint::Dir(dir) => match dir.lookup(decoded) {
                Lookup::Found { program, script_name } => {
                    (Arc::new(Command { program, args: Vec::new() }), script_name)
                }
                Lookup::NotFound => {
                    not_found(req, client, None);
                    return Err(Refused::NoScript);
                }
                Lookup::Refused(why) => {
                    not_found(req, client, Some(why));
                    return Err(Refused::NoScript);
                }
            },
        };
        let key = self.broadcasts.as_ref().map(|broadcasts| {
            // The path as decoded plus the query: in --dir mode the script and its PATH_INFO.
            let key = match req.uri().query() {
                Some(query) if !query.is_empty() => format!("{decoded}?{query}"),
                _ => decoded.to_owned(),
            };
            (broadcasts.is_running(&key), key)
        });
        if slot.is_none() && !resuming && !key.as_ref().is_some_and(|(running, _)| *running) {
            return Err(busy(full));
        }
        let key = key.map(|(_, key)| key);
        let accept = match check(req) {
            Ok(Some(key)) => Some(derive_accept_key(key)),
            Ok(None) => None,
            Err(refusal) => {
                refusal_span(req, client).in_scope(|| {
                    websocketd_core::access!(target: "session", "Unable to Upgrade: {}", refusal.reason());
                });
                return Err(Refused::Handshake(refusal));
            }
        };
        let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok());
        if let Err(why) =
            self.origins.check(origin, host::of_request(req.uri(), req.headers()), tls)
        {
            let span = tracing::info_span!(target: "session", "session", url = %log_url(tls, req.headers(), req.uri()), remote = %address_label(client.ip), origin = %origin.unwrap_or("file:"));
            span.in_scope(|| websocketd_core::access!(target: "session", "{why}"));
            return Err(Refused::Origin);
        }
        let subprotocol = choose_subprotocol(req.headers(), &self.subprotocols);
        Ok(Admitted { slot, command, script_name, accept, subprotocol, key })
    }

    /// The WebSocket that the connection becomes once the 101 is written (`None` if it is
    /// not).
    fn socket(&self, req: &mut Request<Incoming>) -> session::Upgrade<Ws> {
        let on_upgrade = hyper::upgrade::on(req);
        let ws_config = self.ws_config;
        Box::pin(async move {
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
        })
    }

    /// Starts the session (resumable with a ticket), which the shutdown waits for; with
    /// `--reverselookup` it first names the client (after the 101, bounded).
    #[expect(clippy::too_many_arguments, reason = "one session's whole setting")]
    fn spawn(
        &self,
        socket: session::Upgrade<Ws>,
        info: RequestInfo,
        env: Vars,
        command: Arc<Command>,
        slot: Option<Slot>,
        client: Client,
        ticket: Option<Ticket>,
    ) {
        let config = Arc::clone(&self.session);
        let watch = self.shutdown.clone();
        let resumable = self.resumes.clone().zip(ticket);
        match client.ip.filter(|_| self.reverse_lookup) {
            Some(ip) => {
                let mut info = info;
                drop(env);
                self.shutdown.spawn(async move {
                    info.remote_host = Some(reverse_name(ip).await);
                    // A name instead of the address in REMOTE_HOST: a DNS name, at most 253
                    // bytes and no NUL, well within the margin the check left.
                    let env = config.env.cgi_env(&info);
                    match resumable {
                        Some((resumes, ticket)) => {
                            let session = resumes
                                .run(socket, &info, ticket, env, command, config, watch, slot);
                            drop(info);
                            session.await;
                        }
                        None => {
                            let session = session::run(
                                socket,
                                &info,
                                env,
                                command,
                                config,
                                watch,
                                slot.unwrap_or_default(),
                            );
                            drop(info);
                            session.await;
                        }
                    }
                });
            }
            None => match resumable {
                Some((resumes, ticket)) => {
                    let session =
                        resumes.run(socket, &info, ticket, env, command, config, watch, slot);
                    self.shutdown.spawn(session);
                }
                None => {
                    let session = session::run(
                        socket,
                        &info,
                        env,
                        command,
                        config,
                        watch,
                        slot.unwrap_or_default(),
                    );
                    self.shutdown.spawn(session);
                }
            },
        }
    }
}

/// The WebSocket of a session: the upgraded connection, read ahead.
type Ws = WebSocketStream<ReadAhead<TokioIo<hyper::upgrade::Upgraded>>>;

/// No `--maxforks` slot is left (logged as websocketd does), or none of the client's.
fn busy(full: Full) -> Refused {
    match full {
        Full::Server => {
            tracing::error!(target: "http", "Max of possible forks already active, upgrade rejected");
        }
        Full::Client(key) => {
            tracing::error!(target: "http", "Max of forks for client {key} already active (--maxforksperip), upgrade rejected");
        }
    }
    Refused::Busy(full)
}

/// An upgrade request that may become a session.
struct Admitted<'a> {
    /// Its `--maxforks` slot; `None` only for a client that joins a running shared program.
    slot: Option<Slot>,
    /// With `--broadcast`: the key of the shared program it joins or starts.
    key: Option<String>,
    command: Arc<Command>,
    script_name: String,
    /// `Sec-WebSocket-Accept` (none over HTTP/2, RFC 8441).
    accept: Option<String>,
    subprotocol: Option<&'a str>,
}

/// Why an upgrade request was refused (the log has said so already).
enum Refused {
    /// It is not what an upgrade request must be (a body).
    Edge(BadRequest),
    /// No `--maxforks` slot is left, or no `--maxforksperip` one.
    Busy(Full),
    /// Nothing to run at its URL.
    NoScript,
    /// The handshake is not RFC 6455's.
    Handshake(Refusal),
    /// Its origin may not connect.
    Origin,
}

impl Refused {
    /// The answer.
    fn response(self) -> Response<Body> {
        match self {
            Refused::Edge(bad) => bad.response(),
            Refused::Busy(full) => too_many(full),
            Refused::NoScript => plain(StatusCode::NOT_FOUND, "404 Not Found\n"),
            Refused::Handshake(refusal) => {
                let mut resp = plain(refusal.status(), &format!("{}\n", refusal.reason()));
                resp.headers_mut()
                    .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
                resp
            }
            Refused::Origin => plain(StatusCode::FORBIDDEN, "Forbidden\n"),
        }
    }
}

/// The 429 of a request with no slot; one for a client at its `--maxforksperip` says to
/// retry in a second (a program of its may have ended by then).
pub(crate) fn too_many(full: Full) -> Response<Body> {
    let mut resp = plain(StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests\n");
    if let Full::Client(_) = full {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// The 101 that completes the handshake.
fn switching_protocols(accept: Option<&str>, subprotocol: Option<&str>) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    // An extended CONNECT (RFC 8441) is answered 200, with nothing to upgrade or accept.
    if let Some(accept) = accept {
        {
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = resp.headers_mut();
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            if let Ok(v) = HeaderValue::from_str(accept) {
                h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
            }
        }
    }
    let h = resp.headers_mut();
    if let Some(v) = subprotocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    resp
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

/// The span a refused upgrade is logged in: the session's association before there is one.
pub(crate) fn refusal_span<B>(req: &Request<B>, client: &Client) -> tracing::Span {
    let url = log_url(client.https, req.headers(), req.uri());
    tracing::info_span!(target: "session", "session", url = %url, remote = %address_label(client.ip))
}

/// Logs a WebSocket request with no script behind it; `why` when something is there that
/// may not be run.
fn not_found<B>(req: &Request<B>, client: &Client, why: Option<&str>) {
    refusal_span(req, client).in_scope(|| {
        if let Some(why) = why {
            tracing::error!(target: "session", "Refused to run {}: {why}", req.uri().path());
        }
        websocketd_core::access!(target: "session", "NOT FOUND: script not found");
    });
}

/// Whether a request asks to become a WebSocket, by websocketd's rule: the first `Upgrade`
/// value is `websocket` and the first `Connection` value has the token `upgrade`; or over
/// HTTP/2, an extended CONNECT with `:protocol` `websocket` (RFC 8441). Anything else is a
/// plain HTTP request.
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    if req.version() == Version::HTTP_2 {
        return edge::is_extended_connect(req);
    }
    let first = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let upgrade =
        first(header::UPGRADE).is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    let connection = first(header::CONNECTION).is_some_and(|v| {
        v.split(|c: char| c == ',' || c.is_ascii_whitespace())
            .any(|token| token.eq_ignore_ascii_case("upgrade"))
    });
    upgrade && connection
}

/// Why an upgrade request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not GET.
    Method,
    /// Older than HTTP/1.1.
    Version,
    /// `Sec-WebSocket-Version` is not 13.
    WebSocketVersion,
    /// `Sec-WebSocket-Key` is not base64 of 16 bytes.
    Key,
}

impl Refusal {
    /// The status answered.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Method => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::Version | Refusal::Key => StatusCode::BAD_REQUEST,
            Refusal::WebSocketVersion => StatusCode::UPGRADE_REQUIRED,
        }
    }

    /// Why, for the body and the log.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Method => "websocket: the client is not using the GET method",
            Refusal::Version => "websocket: the client is not using HTTP/1.1 or later",
            Refusal::WebSocketVersion => {
                "websocket: unsupported version: 13 is the only supported version"
            }
            Refusal::Key => "websocket: Sec-WebSocket-Key is not base64 of 16 bytes",
        }
    }
}

/// Checks method, version and handshake headers; returns the key to answer (`None` for an
/// HTTP/2 extended CONNECT, which has none: RFC 8441 §5).
pub fn check<B>(req: &Request<B>) -> Result<Option<&[u8]>, Refusal> {
    let h2 = req.version() == Version::HTTP_2 && edge::is_extended_connect(req);
    if !h2 && req.method() != Method::GET {
        return Err(Refusal::Method);
    }
    if req.version() < Version::HTTP_11 {
        return Err(Refusal::Version);
    }
    let headers: &HeaderMap = req.headers();
    let version_ok = headers
        .get_all(header::SEC_WEBSOCKET_VERSION)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim() == "13")));
    if !version_ok {
        return Err(Refusal::WebSocketVersion);
    }
    if h2 {
        return Ok(None);
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes()).unwrap_or_default();
    if !is_nonce(key) {
        return Err(Refusal::Key);
    }
    Ok(Some(key))
}

/// The subprotocol to answer with: the first of `ours` (in our order of preference) that the
/// client offered in any `Sec-WebSocket-Protocol` header. None when we have none or the
/// client offered none of them.
pub fn choose_subprotocol<'a>(headers: &HeaderMap, ours: &'a [String]) -> Option<&'a str> {
    if ours.is_empty() {
        return None;
    }
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    ours.iter().map(String::as_str).find(|p| offered.contains(p))
}

/// Base64 (with padding) of exactly 16 bytes: 22 alphabet characters then `==`.
fn is_nonce(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22].iter().all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn upgrade_detection_follows_websocketd() {
        assert!(is_upgrade(&req(&[("Upgrade", "websocket"), ("Connection", "Upgrade")])));
        assert!(is_upgrade(&req(&[
            ("Upgrade", "WebSocket"),
            ("Connection", "keep-alive, upgrade")
        ])));
        assert!(!is_upgrade(&req(&[("Upgrade", "websocket, h2c"), ("Connection", "Upgrade")])));
        assert!(!is_upgrade(&req(&[("Upgrade", "websocket"), ("Connection", "close")])));
        assert!(!is_upgrade(&req(&[("Connection", "Upgrade")])));
    }

    #[test]
    fn keys_must_be_sixteen_bytes_of_base64() {
        assert!(is_nonce(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_nonce(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!is_nonce(b"short"));
        assert!(!is_nonce(b"dGhlIHNhbXBsZSBub25j!!=="));
    }

    #[test]
    fn the_first_of_our_subprotocols_that_the_client_offers_wins() {
        let ours = vec!["chat".to_owned(), "superchat".to_owned()];
        let r =
            req(&[("Sec-WebSocket-Protocol", "superchat, chat"), ("Sec-WebSocket-Protocol", "x")]);
        assert_eq!(choose_subprotocol(r.headers(), &ours), Some("chat"));
        let r = req(&[("Sec-WebSocket-Protocol", "x, superchat")]);
        assert_eq!(choose_subprotocol(r.headers(), &ours), Some("superchat"));
        let r = req(&[("Sec-WebSocket-Protocol", "other")]);
        assert_eq!(choose_subprotocol(r.headers(), &ours), None);
        assert_eq!(choose_subprotocol(r.headers(), &[]), None);
    }

    #[test]
    fn version_other_than_13_is_426() {
        let r = req(&[
            ("Sec-WebSocket-Version", "8"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert_eq!(check(&r).map(|_| ()), Err(Refusal::WebSocketVersion));
        assert_eq!(Refusal::WebSocketVersion.status(), StatusCode::UPGRADE_REQUIRED);
    }
}
