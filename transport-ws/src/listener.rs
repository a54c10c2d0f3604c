//! Binding and accepting. The accept loop only accepts: each connection is served in its
//! own task, and accept errors (such as running out of file descriptors) back off instead
//! of ending the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use websocketd_transport_tls::MaybeTls;

use crate::Error;
use crate::router::App;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take over the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound listening socket and how it was asked for.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    /// The host part as given on the command line (`None` for all interfaces).
    pub host: Option<String>,
}

impl Listener {
    /// The address actually bound (with the real port when 0 was asked).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Accepts one connection.
    pub async fn accept(&self) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
        self.inner.accept().await
    }

    /// Serves connections until the process ends, with TLS when `tls` is given (the
    /// handshake runs in each connection's own task, under a timeout).
    pub async fn serve(self, app: Arc<App>, tls: Option<TlsAcceptor>) {
        let mut backoff = Duration::from_millis(5);
        loop {
            let (stream, peer) = match self.inner.accept().await {
                Ok(accepted) => {
                    backoff = Duration::from_millis(5);
                    accepted
                }
                Err(e) => {
                    tracing::error!(target: "server", "Accept failed: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let app = Arc::clone(&app);
            let tls = tls.clone();
            tokio::spawn(async move {
                let secure = tls.is_some();
                let conn = match &tls {
                    None => MaybeTls::Plain(stream),
                    Some(acceptor) => {
                        match websocketd_transport_tls::accept(
                            acceptor,
                            stream,
                            TLS_HANDSHAKE_TIMEOUT,
                        )
                        .await
                        {
                            Ok(stream) => MaybeTls::Tls(Box::new(stream)),
                            Err(e) => {
                                tracing::debug!(target: "http", "TLS handshake with {peer} failed: {e}");
                                return;
                            }
                        }
                    }
                };
                let service = hyper::service::service_fn(move |req| {
                    let app = Arc::clone(&app);
                    async move { Ok::<_, std::convert::Infallible>(app.handle(req, peer, secure).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    // Header names as Go writes them (`Content-Type`), for scripts that look.
                    .title_case_headers(true)
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(conn), service)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    tracing::debug!(target: "http", "Connection from {peer} ended: {e}");
                }
            });
        }
    }
}

/// Binds one listener per `--address` (bracketed IPv6 allowed, host names resolved), or
/// one on all interfaces when there is none.
pub async fn bind(addresses: &[String], port: u16) -> Result<Vec<Listener>, Error> {
    let mut listeners = Vec::new();
    if addresses.is_empty() {
        // All interfaces: dual-stack IPv6 where the machine has it, IPv4 otherwise.
        let inner = match TcpListener::bind(("::", port)).await {
            Ok(l) => l,
            Err(_) => TcpListener::bind(("0.0.0.0", port))
                .await
                .map_err(|source| Error::Bind { addr: format!(":{port}"), source })?,
        };
        listeners.push(Listener { inner, host: None });
        return Ok(listeners);
    }
    for address in addresses {
        let target = format!("{address}:{port}");
        let inner = TcpListener::bind(target.as_str())
            .await
            .map_err(|source| Error::Bind { addr: target.clone(), source })?;
        listeners.push(Listener { inner, host: Some(address.clone()) });
    }
    Ok(listeners)
}
