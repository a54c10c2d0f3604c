//! What each request gets, and nothing else: one the [edge](crate::edge) refuses gets 400; a
//! path that is not clean is redirected (301) to
//! its clean form; an upgrade goes to the [WebSocket endpoint](crate::endpoint); any other
//! request gets the developer console, a CGI script, a static file, or a 404, as websocketd
//! answers with nothing else configured. Every response gets the command line's extra
//! headers.

use std::time::SystemTime;

use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use websocketd_core::broadcast::BroadcastConfig;
use websocketd_core::request::{address_label, log_url};
use websocketd_core::resume::{BadTicket, ResumeConfig, Ticket};
use websocketd_core::{SessionConfig, Shutdown};

use crate::cgi::Cgi;
use crate::conn::{Client, Conn};
use crate::endpoint::{self, Endpoint, WebSockets};
use crate::files::StaticDir;
use crate::forks::Forks;
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
}

impl App {
    /// Serves what `settings` say, every connection and session watching `shutdown`.
    pub fn new(settings: Settings, shutdown: Shutdown) -> App {
        let forks = Forks::new(settings.maxforks);
        let cgi = settings.cgi.map(|dir| {
            let env = settings.session.env.clone();
            Cgi::new(dir, env, settings.session.closems, forks.clone())
        });
        let resumable = settings.resume.is_some();
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
        }
    }

    /// The server's shutdown, which every connection and session watches.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Answers one request on `conn`, with the command line's extra headers; a request the
    /// [edge](crate::edge) refuses gets its 400 and nothing else, as from Go's server.
    pub async fn handle(&self, mut req: Request<Incoming>, conn: &Conn) -> Response<Body> {
        let ticket = if self.resumable { take_ticket(&mut req) } else { Ok(()) };
        if let Err(bad) = ticket {
            let url = log_url(conn.tls, req.headers(), req.uri());
            tracing::info_span!(target: "http", "http", url = %url, peer = %conn.peer)
                .in_scope(|| websocketd_core::access!(target: "http", "BAD REQUEST: {bad}"));
            return plain(StatusCode::BAD_REQUEST, &format!("400 Bad Request: {bad}\n"));
        }
        if let Err(bad) = edge::check(&req) {
            let url = log_url(conn.tls, req.headers(), req.uri());
            tracing::info_span!(target: "http", "http", url = %url, peer = %conn.peer).in_scope(
                || {
                    websocketd_core::access!(target: "http", "BAD REQUEST: {}", bad.reason());
                },
            );
            return bad.response();
        }
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
    /// other request gets the console, a CGI script, a static file, or 404.
    async fn route(&self, req: Request<Incoming>, client: Client, conn: &Conn) -> Response<Body> {
        let decoded = path::decode(req.uri().path());
        if let Some(location) = path::redirect(&decoded, req.uri().query()) {
            return moved(&location);
        }
        if let Some(websockets) = &self.websockets {
            if endpoint::is_upgrade(&req) {
                return websockets.upgrade(req, client, conn, &decoded);
            }
        }
        let url = log_url(client.https, req.headers(), req.uri());
        let span = tracing::info_span!(target: "http", "http", url = %url, remote = %address_label(client.ip));
        if let Some(since) = self.console {
            // A browser asks for the icon of every page; the console is not one.
            if decoded == "/favicon.ico" {
                span.in_scope(|| websocketd_core::access!(target: "http", "NOT FOUND"));
                return plain(StatusCode::NOT_FOUND, "404 page not found\n");
            }
            span.in_scope(|| websocketd_core::access!(target: "http", "DEVCONSOLE"));
            return console::respond(req.headers(), since).map(full);
        }
        let req = match &self.cgi {
            Some(cgi) => match cgi.respond(req, client, conn, &decoded, &span).await {
                Ok(resp) => return resp,
                Err(req) => req,
            },
            None => req,
        };
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
    let mut parts = req.uri().clone().into_parts();
    let path = req.uri().path();
    let target = if rest.is_empty() { path.to_owned() } else { format!("{path}?{rest}") };
    // The same path and a part of the query: as valid as it was.
    if let Ok(pq) = PathAndQuery::try_from(target) {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    if let Some(ticket) = ticket? {
        req.extensions_mut().insert(ticket);
    }
    Ok(())
}
