//! The running server: bind every address (or take the sockets systemd hands over), say
//! where, serve until a signal, then shut down gracefully within `--shutdownms`.

use std::sync::Arc;

use websocketd_core::Shutdown;
use websocketd_core::command::Command;
use websocketd_transport_tls::TlsConfig;
use websocketd_transport_ws::activation::Inherited;
use websocketd_transport_ws::endpoint::Endpoint;
use websocketd_transport_ws::listener::Address;
use websocketd_transport_ws::{App, Listener};

use crate::config::{AdminAddress, Config};

/// Why the server could not run (exit code 3).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A listener could not be set up.
    #[error(transparent)]
    Bind(#[from] websocketd_transport_ws::Error),
    /// The certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] websocketd_transport_tls::Error),
}

/// The bound sockets: the main listeners, and those of `--redirport`; and TLS, if any.
pub struct Listeners {
    main: Vec<Listener>,
    redirect: Vec<Listener>,
    tls: Option<Arc<TlsConfig>>,
    /// `--adminaddress`'s.
    admin: Option<Listener>,
}

/// Binds all listeners, or takes over the `inherited` ones (socket activation). Nothing is
/// served until [`serve`] is called, so a failure here leaves nothing half-started.
pub async fn bind(config: &Config, inherited: Option<Inherited>) -> Result<Listeners, ServeError> {
    // TLS first: a bad certificate or key is reported before anything listens.
    let tls = match &config.tls {
        None => None,
        Some(settings) => {
            websocketd_transport_tls::install_provider();
            if let Some(warning) = websocketd_transport_tls::validity_warning(&settings.cert) {
                tracing::warn!(target: "server", "{warning}");
            }
            Some(Arc::new(TlsConfig::new(settings.clone())?))
        }
    };
    // Bound by the server itself, also under socket activation: it is not a public port.
    let admin = match &config.admin {
        None => None,
        Some(AdminAddress::Tcp(address)) => {
            let (host, port) = split_address(address);
            websocketd_transport_ws::bind(&[host], port).await?.pop()
        }
        Some(AdminAddress::Unix(path)) => Some(websocketd_transport_ws::bind_unix(path, None)?),
    };
    if let Some(inherited) = inherited {
        if config.listen_flags {
            tracing::warn!(target: "server", "Socket activation: ignoring --port, --address, --unixsocket and --redirport");
        }
        let (main, redirect) = inherited.into_listeners()?;
        return Ok(Listeners { main, redirect, tls, admin });
    }
    let mut main = Vec::new();
    if config.tcp {
        main = websocketd_transport_ws::bind(&config.addresses, config.port).await?;
    }
    if let Some(unix) = &config.unix {
        main.push(websocketd_transport_ws::bind_unix(&unix.path, unix.mode)?);
    }
    let redirect = match config.redirport {
        0 => Vec::new(),
        n => websocketd_transport_ws::bind(&config.addresses, n).await?,
    };
    Ok(Listeners { main, redirect, tls, admin })
}

/// The host (as `--address` takes it: an IPv6 address in brackets) and port of `HOST:PORT`,
/// which the configuration checked.
fn split_address(address: &str) -> (String, u16) {
    match address.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().unwrap_or(0)),
        None => (address.to_owned(), 0),
    }
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("main", &self.main)
            .field("redirect", &self.redirect)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Logs the start-up lines and serves on every listener until SIGINT or SIGTERM, then shuts
/// down: listeners close, every client gets Close 1001 and every process the termination
/// ladder, all within `--shutdownms`; what is left then is killed, as it is at once on a
/// second signal.
pub async fn serve(config: Config, listeners: Listeners) {
    // Every path in these lines is absolute, however it was given.
    match &config.http.endpoint {
        Some(Endpoint::Command(command)) => {
            let shown = Command { program: absolute(&command.program), args: command.args.clone() };
            tracing::info!(target: "server", "Serving using application   : {}", shown.line());
        }
        Some(Endpoint::Dir(dir)) => {
            let root = absolute(dir.root());
            tracing::info!(target: "server", "Serving from directory      : {}", root.display());
        }
        None => {}
    }
    if let Some(files) = &config.http.files {
        let root = absolute(files.root());
        tracing::info!(target: "server", "Serving static content from : {}", root.display());
    }
    if let Some(cgi) = &config.http.cgi {
        let root = absolute(cgi.root());
        tracing::info!(target: "server", "Serving CGI scripts from    : {}", root.display());
    }
    let serves_files = config.http.files.is_some() || config.http.cgi.is_some();
    for entry in &config.skipped_origins {
        tracing::warn!(target: "server", "Ignoring --origin entry '{entry}': not host[:port] or scheme://host[:port]");
    }
    // Watched before the start-up lines say the server is up: a signal that comes right after
    // them must not find its default action (ending the server, orphaning every child).
    let signals = Signals::new();
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    // The server's live state is made here, and handed down.
    let shutdown = Shutdown::new();
    let devconsole = config.http.devconsole;
    let app = Arc::new(App::new(config.http, shutdown.clone()));
    if let Some(access) = app.access() {
        tracing::info!(target: "server", "Access control              : {}", access.summary());
    }
    let (ws, http) = if listeners.tls.is_some() { ("wss", "https") } else { ("ws", "http") };
    // The port redirects go to: the first TCP listener's.
    let main_port = listeners.main.iter().find_map(|l| l.local_addr().ok()).map_or(0, |a| a.port());
    let mut accepting = Vec::new();
    for listener in listeners.main {
        let (at, name) = place(&listener);
        tracing::info!(target: "server", "Starting WebSocket server   : {ws}://{at}/{name}");
        if devconsole {
            tracing::info!(target: "server", "Developer console enabled   : {http}://{at}/{name}");
        } else if serves_files {
            tracing::info!(target: "server", "Serving CGI or static files : {http}://{at}/{name}");
        }
        accepting.push(tokio::spawn(listener.serve(Arc::clone(&app), listeners.tls.clone())));
    }
    for listener in listeners.redirect {
        let (at, name) = place(&listener);
        tracing::info!(target: "server", "Starting redirect server    : http://{at}/{name}");
        let serve =
            websocketd_transport_ws::redirect::serve(listener, http, main_port, shutdown.clone());
        accepting.push(tokio::spawn(serve));
    }
    if let Some(listener) = listeners.admin {
        let (at, _) = place(&listener);
        tracing::info!(target: "server", "Starting admin server       : http://{at}/ (metrics, healthz, readyz)");
        let admin = websocketd_transport_ws::admin::Admin::new(Arc::clone(&app));
        tokio::spawn(websocketd_transport_ws::admin::serve(listener, admin));
    }
    if let Some(hangups) = hangups {
        tokio::spawn(on_hangup(hangups, listeners.tls.clone(), Arc::clone(&app)));
    }
    let Some(mut signals) = signals else {
        tracing::error!(target: "server", "Cannot watch SIGINT and SIGTERM: serving until killed");
        return std::future::pending().await;
    };
    let first = signals.next().await;
    shut_down(&shutdown, first, accepting, &mut signals, config.shutdown_bound).await;
}

/// Where a listener listens, for the start-up lines: `host:port`, or `unix:PATH`; and the
/// name systemd gave it, if any, as ` (socket NAME)`.
fn place(listener: &Listener) -> (String, String) {
    let at = match listener.address() {
        Ok(Address::Tcp(addr)) => {
            let host = match &listener.host {
                Some(host) => host.clone(),
                // Bound to all interfaces: the machine's name, as websocketd says.
                None if addr.ip().is_unspecified() => hostname(),
                None => websocketd_core::request::ip_string(addr.ip()),
            };
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host
            };
            format!("{host}:{}", addr.port())
        }
        Ok(unix @ Address::Unix(_)) => unix.to_string(),
        Err(_) => "?".to_owned(),
    };
    let name = listener.fd_name.as_ref().map(|n| format!(" (socket {n})")).unwrap_or_default();
    (at, name)
}

/// The graceful shutdown after signal `first`: stop accepting, close every connection and
/// session, wait for them within `bound`; then kill what is left, also at once if a second
/// signal comes.
async fn shut_down(
    shutdown: &Shutdown,
    first: &'static str,
    accepting: Vec<tokio::task::JoinHandle<()>>,
    signals: &mut Signals,
    bound: std::time::Duration,
) {
    let open = shutdown.running();
    // Begun before it is said: whoever reads the line (a test, an operator) finds /readyz 503.
    shutdown.begin();
    tracing::info!(target: "server", "Received {first}: shutting down ({open} connections open, at most {} ms)", bound.as_millis());
    // The listeners end at once, and with them the socket files this server made.
    for task in accepting {
        let _ = task.await;
    }
    tokio::select! {
        () = shutdown.finished() => {
            tracing::debug!(target: "server", "Every connection and process ended");
        }
        () = tokio::time::sleep(bound) => {
            tracing::warn!(target: "server", "Shutdown took longer than {} ms: killing the processes left", bound.as_millis());
        }
        second = signals.next() => {
            tracing::warn!(target: "server", "Received {second} again: killing the processes left");
        }
    }
    websocketd_core::child::kill_all().await;
}

/// On SIGHUP, reads the certificate and key, the `--htpasswd` and the `--tokens` file again;
/// a broken file keeps the old contents. With none of them there is nothing to reload, and
/// the signal is only logged: its default action would end the server at once, leaving every
/// child orphaned.
async fn on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    tls: Option<Arc<TlsConfig>>,
    app: Arc<App>,
) {
    while hangups.recv().await.is_some() {
        let access = app.access().map(|access| access.reload()).unwrap_or_default();
        if tls.is_none() && access.is_empty() {
            tracing::info!(target: "server", "Received SIGHUP: nothing to reload");
            continue;
        }
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(()) => tracing::info!(target: "server", "Reloaded TLS certificate and key"),
                Err(e) => {
                    tracing::error!(target: "server", "Could not reload TLS, keeping the old certificate: {:#}", anyhow::Error::new(e));
                }
            }
        }
        for done in access {
            match done {
                Ok(line) => tracing::info!(target: "server", "{line}"),
                Err(e) => {
                    tracing::error!(target: "server", "Could not reload, keeping the old contents: {:#}", anyhow::Error::new(e));
                }
            }
        }
    }
}

/// Why the server could not start, with its causes, and what to do about it when that is
/// clear: a port below 1024 without the privilege to bind it, a port already taken.
pub fn explain(e: ServeError) -> String {
    let hint = hint(&e);
    format!("{:#}{hint}", anyhow::Error::new(e))
}

/// What to do about `e`, when that is clear.
fn hint(e: &ServeError) -> String {
    let mut text = String::new();
    let ServeError::Bind(websocketd_transport_ws::Error::Bind { addr, source }) = e else {
        return text;
    };
    let port = websocketd_core::host::split(addr).and_then(|hp| hp.port?.parse::<u16>().ok());
    match (source.kind(), port) {
        (std::io::ErrorKind::PermissionDenied, Some(port)) if port < 1024 => {
            let exe = std::env::current_exe()
                .map_or_else(|_| "websocketd".to_owned(), |p| p.display().to_string());
            text.push_str(&format!(
                ". Ports below 1024 need privileges: use a higher one (--port=8080), or let this \
                 binary bind them with: sudo setcap cap_net_bind_service=+ep {exe}"
            ));
        }
        (std::io::ErrorKind::AddrInUse, Some(port)) => {
            text.push_str(&format!(
                ". Another program is listening on port {port}: stop it, or choose another --port"
            ));
        }
        _ => {}
    }
    text
}

/// SIGINT and SIGTERM, the signals that stop the server.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Option<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Some(Signals {
            int: signal(SignalKind::interrupt()).ok()?,
            term: signal(SignalKind::terminate()).ok()?,
        })
    }

    /// The next one to arrive, by name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// `path` made absolute against the current directory (as given if that fails).
fn absolute(path: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "UNKNOWN".to_owned())
}
