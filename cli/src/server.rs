//! The running server: bind every address, say where, serve until a signal.

use std::sync::Arc;

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
}

/// Binds all listeners. Nothing is served until [`serve`] is called, so a failure here
/// leaves nothing half-started.
pub async fn bind(config: &Config) -> Result<Vec<Listener>, ServeError> {
    let port = u16::try_from(config.port).map_err(|_| ServeError::Port(config.port))?;
    Ok(websocketd_transport_ws::bind(&config.addresses, port).await?)
}

/// Logs the start-up lines and serves on every listener until SIGINT or SIGTERM, then stops
/// every child before returning.
pub async fn serve(config: Config, listeners: Vec<Listener>) {
    match &config.endpoint {
        Endpoint::Command(command) => {
            tracing::info!(target: "server", "Serving using application   : {}", command.line());
        }
        Endpoint::Dir(dir) => {
            tracing::info!(target: "server", "Serving from directory      : {}", dir.root().display());
        }
    }
    for entry in &config.skipped_origins {
        tracing::warn!(target: "server", "Ignoring --origin entry '{entry}': not host[:port] or scheme://host[:port]");
    }
    let app = App::new(config.endpoint, config.session, config.maxforks, config.subprotocols)
        .with_origins(config.origins)
        .with_headers(config.headers)
        .with_reverse_lookup(config.reverse_lookup);
    let app = Arc::new(app);
    for listener in listeners {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let host = listener.host.clone().unwrap_or_else(hostname);
        tracing::info!(target: "server", "Starting WebSocket server   : ws://{host}:{port}/");
        tokio::spawn(listener.serve(Arc::clone(&app)));
    }
    wait_for_stop().await;
    websocketd_core::child::stop_all().await;
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
