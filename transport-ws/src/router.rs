//! What each request gets, and nothing else: one the [edge](crate::edge) refuses gets 400; a
//! WebSocket request over `--ratelimit` gets 429; one that [access control](crate::access)
//! does not let in gets its refusal; a path that is not clean is redirected (301) to
//! its clean form; an upgrade goes to the [WebSocket endpoint](crate::endpoint); any other
//! request gets the developer console, a CGI script, a static file, or a 404, as websocketd
//! answers with nothing else configured. Every response gets the command line's extra
//! headers.

use std::sync::Arc;
use std::time::SystemTime;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use websocketd_core::broadcast::BroadcastConfig;
use websocketd_core::metrics::{HttpLabels, Metrics};
use websocketd_core::request::{User, address_label, log_url};
use websocketd_core::resume::{BadTicket, ResumeConfig, Ticket};
use websocketd_core::{SessionConfig, Shutdown};

use crate::access::Access;
use crate::cgi::Cgi;
use crate::conn::{Client, Conn};
use crate::endpoint::{self, Endpoint, WebSockets};
use crate::files::StaticDir;
use crate::forks::Forks;
use crate::limits::RateLimit;
use crate::origin::OriginPolicy;
use crate::proxy::TrustedProxies;
use crate::response::{Body, ExtraHeaders, full, moved, plain};
use crate::scripts::ScriptDir;
use crate::{console, edge, path};

/// What the server serves, as the command line says: the configuration the router and the
/// endpoint are made from.
#[derive(Debug)]
pub struct Settings {
    /// What WebSocket requests run: the command, or the scripts of `--dir` (none with only
    /// `--staticdir` or `--cgidir`).
    pub endpoint: Option<Endpoint>,
    /// How each session runs.
    pub session: SessionConfig,
    /// `--subprotocol` names, most preferred first.
    pub subprotocols: Vec<String>,
    /// `--origin` and `--sameorigin`.
    pub origins: OriginPolicy,
    /// `--reverselookup`.
    pub reverse_lookup: bool,
    /// `--maxforks`: most programs (sessions and CGI scripts) at once; 0: no limit.
    pub maxforks: usize,
    /// `--staticdir`.
    pub files: Option<StaticDir>,
    /// `--cgidir`.
    pub cgi: Option<ScriptDir>,
    /// `--devconsole`.
    pub devconsole: bool,
    /// `--trustedproxy`.
    pub trusted_proxies: TrustedProxies,
    /// `--header`, `--header-ws`, `--header-http`.
    pub headers: ExtraHeaders,
    /// `--broadcast` and its settings: every client of one URL shares one program.
    pub broadcast: Option<BroadcastConfig>,
    /// `--resumems` and its settings: a dropped connection's program waits for its client.
    pub resume: Option<ResumeConfig>,
    /// `--notreadywhenfull`: `/readyz` says 503 while `--maxforks` is full.
    pub not_ready_when_full: bool,
    /// `--htpasswd`, `--tokens`, `--authurl`, `--remoteuserheader`: who may be served.
    pub access: Option<Access>,
    /// `--maxforksperip`: most programs at once for one client address; 0: no limit.
    pub maxforks_per_ip: usize,
    /// `--ratelimit`: how often one client address may ask for a WebSocket.
    pub rate_limit: Option<RateLimit>,
    /// `--http2`: HTTP/2 as well, chosen by ALPN with `--ssl` or with prior knowledge.
    pub http2: bool,
}

/// Everything a request handler needs; shared by all listeners.
#[derive(Debug)]
pub struct App {
    websockets: Option<WebSockets>,
    cgi: Option<Cgi>,
    files: Option<StaticDir>,
    /// With `--devconsole`: when the server started (the page's Last-Modified).
    console: Option<SystemTime>,
    proxies: TrustedProxies,
    headers: ExtraHeaders,
    shutdown: Shutdown,
    /// Whether `--resumems` is on: the session parameters are taken out of every query.
    resumable: bool,
    /// What requests are counted in.
    metrics: Arc<Metrics>,
    /// With `--notreadywhenfull`: the slots whose being full makes the server not ready.
    ready_forks: Option<Forks>,
    access: Option<Access>,
    rate_limit: Option<RateLimit>,
    http2: bool,
}

impl App {
    /// Serves what `settings` say, every connection and session watching `shutdown`.
    pub fn new(settings: Settings, shutdown: Shutdown) -> App {
        let forks = Forks::new(settings.maxforks, settings.maxforks_per_ip);
        let ready_forks = settings.not_ready_when_full.then(|| forks.clone());
        let cgi = settings.cgi.map(|dir| {
            let env = settings.session.env.clone();
            let metrics = Arc::clone(&settings.session.metrics);
            Cgi::new(dir, env, settings.session.closems, forks.clone(), metrics)
        });
        let resumable = settings.resume.is_some();
        let metrics = Arc::clone(&settings.session.metrics);
        let websockets = settings.endpoint.map(|endpoint| {
            let setup = endpoint::Setup {
                endpoint,
                session: settings.session,
                subprotocols: settings.subprotocols,
                origins: settings.origins,
                reverse_lookup: settings.reverse_lookup,
                broadcast: settings.broadcast,
                resume: settings.resume,
            };
            WebSockets::new(setup, forks, shutdown.clone())
        });
        App {
            websockets,
            cgi,
            files: settings.files,
            console: settings.devconsole.then(SystemTime::now),
            proxies: settings.trusted_proxies,
            headers: settings.headers,
            shutdown,
            resumable,
            metrics,
            ready_forks,
            access: settings.access,
            rate_limit: settings.rate_limit,
            http2: settings.http2,
        }
    }

    /// Whether connections may speak HTTP/2 (`--http2`).
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// Access control, when any is set up (its files are reloaded on SIGHUP).
    pub fn access(&self) -> Option<&Access> {
        self.access.as_ref()
    }

    /// With `--notreadywhenfull`, the `--maxforks` slots readiness depends on.
    pub fn ready_forks(&self) -> Option<&Forks> {
        self.ready_forks.as_ref()
    }

    /// The metrics every request and session is counted in.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The server's shutdown, which every connection and session watches.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Answers one request on `conn`, with the command line's extra headers; a request the
    /// [edge](crate::edge) refuses gets its 400 and nothing else, as from Go's server.
    pub async fn handle(&self, req: Request<Incoming>, conn: &Conn) -> Response<Body> {
        let upgrade = endpoint::is_upgrade(&req);
        let (mut resp, kind) = self.answer(req, conn, upgrade).await;
        match kind {
            Kind::WebSocket => self.metrics.upgrade(outcome(resp.status())),
            Kind::Http(kind) if upgrade && kind == "bad_request" => {
                self.metrics.upgrade(outcome(resp.status()));
            }
            Kind::Http(kind) => {
                let status = resp.status().as_u16();
                self.metrics.http_requests.get_or_create(&HttpLabels { kind, status }).inc();
            }
        }
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

    /// The answer to `req` (an upgrade request if `upgrade`: what is taken out of it before
    /// does not change that) before the extra headers, and what kind of request it was.
    async fn answer(
        &self,
        mut req: Request<Incoming>,
        conn: &Conn,
        upgrade: bool,
    ) -> (Response<Body>, Kind) {
        // Credentials first: no log line or later step may see them.
        let presented = self.access.as_ref().map(|access| access.take(&mut req));
        let ticket = if self.resumable { take_ticket(&mut req) } else { Ok(()) };
        if let Err(bad) = ticket {
            bad_request(&req, conn, &bad);
            let resp = plain(StatusCode::BAD_REQUEST, &format!("400 Bad Request: {bad}\n"));
            return (resp, Kind::Http("bad_request"));
        }
        if let Err(bad) = edge::check(&req) {
            bad_request(&req, conn, &bad.reason());
            return (bad.response(), Kind::Http("bad_request"));
        }
        let client = self.proxies.client(&conn.peer, conn.tls, req.headers());
        let upgrade = upgrade && self.websockets.is_some();
        let kind = if upgrade { Kind::WebSocket } else { Kind::Http("denied") };
        if let Some(limit) = self.rate_limit.as_ref().filter(|_| upgrade) {
            if let Err(seconds) = limit.check(client.ip) {
                endpoint::refusal_span(&req, &client).in_scope(|| {
                    websocketd_core::access!(target: "session", "TOO MANY REQUESTS: over --ratelimit, retry after {seconds} s");
                });
                return (retry_after(seconds), kind);
            }
        }
        if let (Some(access), Some(presented)) = (&self.access, presented) {
            let trusted = self.proxies.trusts(&conn.peer);
            match access.check(presented, &req, &client, trusted).await {
                Ok(Some(user)) => {
                    self.metrics.access(method_label(user.auth_type), "allowed");
                    req.extensions_mut().insert(user);
                }
                Ok(None) => {}
                Err(denied) => {
                    self.metrics.access(denied.method, denied.outcome);
                    let span = if upgrade {
                        endpoint::refusal_span(&req, &client)
                    } else {
                        let url = log_url(client.https, req.headers(), req.uri());
                        tracing::info_span!(target: "http", "http", url = %url, remote = %address_label(client.ip))
                    };
                    span.in_scope(|| {
                        if let Some(failure) = &denied.failure {
                            tracing::error!(target: "http", "Auth service failed: {failure}");
                        }
                        if upgrade {
                            websocketd_core::access!(target: "session", "{}", denied.line);
                        } else {
                            websocketd_core::access!(target: "http", "{}", denied.line);
                        }
                    });
                    return (denied.response, kind);
                }
            }
        }
        self.route(req, client, conn, upgrade).await
    }

    /// websocketd's dispatch: with a command or `--dir`, an upgrade (`upgrade`) goes to a
    /// session; any other request gets the console, a CGI script, a static file, or 404.
    async fn route(
        &self,
        req: Request<Incoming>,
        client: Client,
        conn: &Conn,
        upgrade: bool,
    ) -> (Response<Body>, Kind) {
        let decoded = path::decode(req.uri().path());
        if let Some(location) = path::redirect(&decoded, req.uri().query()) {
            return (moved(&location), Kind::Http("redirect"));
        }
        if let Some(websockets) = self.websockets.as_ref().filter(|_| upgrade) {
            return (websockets.upgrade(req, client, conn, &decoded), Kind::WebSocket);
        }
        let url = log_url(client.https, req.headers(), req.uri());
        let user =
            req.extensions().get::<User>().map(|u| u.name.as_str()).filter(|n| !n.is_empty());
        let span = tracing::info_span!(target: "http", "http", url = %url, remote = %address_label(client.ip), user = user);
        if let Some(since) = self.console {
            // A browser asks for the icon of every page; the console is not one.
            if decoded == "/favicon.ico" {
                span.in_scope(|| websocketd_core::access!(target: "http", "NOT FOUND"));
                return (
                    plain(StatusCode::NOT_FOUND, "404 page not found\n"),
                    Kind::Http("not_found"),
                );
            }
            span.in_scope(|| websocketd_core::access!(target: "http", "DEVCONSOLE"));
            return (console::respond(req.headers(), since).map(full), Kind::Http("console"));
        }
        let req = match &self.cgi {
            Some(cgi) => match cgi.respond(req, client, conn, &decoded, &span).await {
                Ok(resp) => return (resp, Kind::Http("cgi")),
                Err(req) => req,
            },
            None => req,
        };
        if let Some(files) = &self.files {
            span.in_scope(|| websocketd_core::access!(target: "http", "STATIC"));
            if let Some(resp) = files.serve(req, &decoded).await {
                return (resp, Kind::Http("static"));
            }
            return (plain(StatusCode::NOT_FOUND, "404 page not found\n"), Kind::Http("static"));
        }
        span.in_scope(|| websocketd_core::access!(target: "http", "NOT FOUND"));
        (plain(StatusCode::NOT_FOUND, "404 page not found\n"), Kind::Http("not_found"))
    }
}

/// Logs a request refused as malformed, in the connection's association (there is no client
/// yet: the edge comes before `--trustedproxy`).
fn bad_request<B>(req: &Request<B>, conn: &Conn, why: &dyn std::fmt::Display) {
    let url = log_url(conn.tls, req.headers(), req.uri());
    tracing::info_span!(target: "http", "http", url = %url, peer = %conn.peer)
        .in_scope(|| websocketd_core::access!(target: "http", "BAD REQUEST: {why}"));
}

/// What kind of request a response answered, for the metrics.
enum Kind {
    /// An upgrade request, to the WebSocket endpoint.
    WebSocket,
    /// A plain one: `console`, `cgi`, `static`, `redirect`, `not_found` or `bad_request`.
    Http(&'static str),
}

/// An upgrade's outcome as the metrics label it: `accepted`, or the refusal's status.
fn outcome(status: StatusCode) -> &'static str {
    match status.as_u16() {
        101 => "accepted",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        426 => "426",
        429 => "429",
        431 => "431",
        503 => "503",
        _ => "other",
    }
}

/// The metrics' name of an `AUTH_TYPE`.
fn method_label(auth_type: &str) -> &'static str {
    match auth_type {
        "Basic" => "basic",
        "Bearer" => "bearer",
        "Forward" => "forward",
        "Proxy" => "proxy",
        _ => "none",
    }
}

/// A 429 that says when to ask again.
fn retry_after(seconds: u64) -> Response<Body> {
    let mut resp = plain(StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests\n");
    resp.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    resp
}

/// Takes the resumable session's parameters out of the request's query (before anything
/// sees it: the token is never logged, nor in a program's environment), and puts the
/// [`Ticket`] they make in its extensions. Refused parameters are taken out too.
fn take_ticket<B>(req: &mut Request<B>) -> Result<(), BadTicket> {
    let Some(query) = req.uri().query() else { return Ok(()) };
    if !query.contains("wsd_") {
        return Ok(());
    }
    let (ticket, rest) = Ticket::take(query);
    path::replace_query(req, &rest);
    if let Some(ticket) = ticket? {
        req.extensions_mut().insert(ticket);
    }
    Ok(())
}
