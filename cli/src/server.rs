//! The running server: bind every address, say where, serve until a signal.

use std::sync::Arc;

use websocketd_transport_tls::TlsConfig;
use websocketd_transport_ws::router::Endpoint;
use websocketd_transport_ws::{App, Listener};

use crate::config::Config;

/// Why the server could not run (exit code 3).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// `--port` is out of range.
    #[error("listen tcp: address {0}: invalid port")]
    Port(i64),
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
}

/// Binds all listeners. Nothing is served until [`serve`] is called, so a failure here
/// leaves nothing half-started.
pub async fn bind(config: &Config) -> Result<Listeners, ServeError> {
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
    let port = u16::try_from(config.port).map_err(|_| ServeError::Port(config.port))?;
    let main = websocketd_transport_ws::bind(&config.addresses, port).await?;
    let redirect = match config.redirport {
        0 => Vec::new(),
        n => {
            let n = u16::try_from(n).map_err(|_| ServeError::Port(n))?;
            websocketd_transport_ws::bind(&config.addresses, n).await?
        }
    };
    Ok(Listeners { main, redirect, tls })
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

/// Logs the start-up lines and serves on every listener until SIGINT or SIGTERM, then stops
/// every child before returning.
pub async fn serve(config: Config, listeners: Listeners) {
    match &config.endpoint {
        Some(Endpoint::Command(command)) => {
            tracing::info!(target: "server", "Serving using application   : {}", command.line());
        }
        Some(Endpoint::Dir(dir)) => {
            tracing::info!(target: "server", "Serving from directory      : {}", dir.root().display());
        }
        None => {}
    }
    if let Some(files) = &config.files {
        tracing::info!(target: "server", "Serving static content from : {}", files.root().display());
    }
    if let Some(cgi) = &config.cgi {
        tracing::info!(target: "server", "Serving CGI scripts from    : {}", cgi.root().display());
    }
    let serves_files = config.files.is_some() || config.cgi.is_some();
    for entry in &config.skipped_origins {
        tracing::warn!(target: "server", "Ignoring --origin entry '{entry}': not host[:port] or scheme://host[:port]");
    }
    let app = App::new(config.endpoint, config.session, config.maxforks, config.subprotocols)
        .with_origins(config.origins)
        .with_headers(config.headers)
        .with_reverse_lookup(config.reverse_lookup)
        .with_console(config.devconsole)
        .with_files(config.files)
        .with_cgi(config.cgi);
    let app = Arc::new(app);
    let (ws, http) = if listeners.tls.is_some() { ("wss", "https") } else { ("ws", "http") };
    let mut main_port = 0;
    for listener in listeners.main {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        main_port = port;
        let host = listener.host.clone().unwrap_or_else(hostname);
        tracing::info!(target: "server", "Starting WebSocket server   : {ws}://{host}:{port}/");
        if config.devconsole {
            tracing::info!(target: "server", "Developer console enabled   : {http}://{host}:{port}/");
        } else if serves_files {
            tracing::info!(target: "server", "Serving CGI or static files : {http}://{host}:{port}/");
        }
        tokio::spawn(listener.serve(Arc::clone(&app), listeners.tls.clone()));
    }
    for listener in listeners.redirect {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let host = listener.host.clone().unwrap_or_else(hostname);
        tracing::info!(target: "server", "Starting redirect server    : http://{host}:{port}/");
        tokio::spawn(websocketd_transport_ws::redirect::serve(listener, http, main_port));
    }
    if let Some(tls) = listeners.tls.clone() {
        tokio::spawn(reload_on_hangup(tls));
    }
    wait_for_stop().await;
    websocketd_core::child::stop_all().await;
}

/// On SIGHUP, reads the certificate and key again; a broken file keeps the old ones.
async fn reload_on_hangup(tls: Arc<TlsConfig>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else { return };
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!(target: "server", "Reloaded TLS certificate and key"),
            Err(e) => {
                tracing::error!(target: "server", "Could not reload TLS, keeping the old certificate: {}", error_chain(&e));
            }
        }
    }
}

/// An error and its causes on one line: `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "UNKNOWN".to_owned())
}
