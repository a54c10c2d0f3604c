//! Binding and accepting. The accept loop only accepts: each connection is served in its
//! own task, and accept errors (such as running out of file descriptors) back off instead
//! of ending the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use websocketd_transport_tls::{MaybeTls, TlsConfig};

use crate::Error;
use crate::router::{App, Conn};

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
    pub async fn serve(self, app: Arc<App>, tls: Option<Arc<TlsConfig>>) {
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
                let mut client_subject = None;
                let conn = match &tls {
                    None => MaybeTls::Plain(stream),
                    Some(config) => {
                        if plain_http_to_tls(&stream).await {
                            let mut stream = stream;
                            let _ = stream
                                .write_all(websocketd_transport_tls::PLAIN_HTTP_RESPONSE)
                                .await;
                            let _ = stream.shutdown().await;
                            return;
                        }
                        let acceptor = config.acceptor();
                        match websocketd_transport_tls::accept(
                            &acceptor,
                            stream,
                            TLS_HANDSHAKE_TIMEOUT,
                        )
                        .await
                        {
                            Ok(stream) => {
                                let subject = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|certs| certs.first())
                                    .and_then(|cert| {
                                        websocketd_transport_tls::subject(cert.as_ref())
                                    });
                                client_subject = subject.map(Arc::from);
                                MaybeTls::Tls(Box::new(stream))
                            }
                            Err(e) => {
                                tracing::debug!(target: "http", "TLS handshake with {peer} failed: {e}");
                                return;
                            }
                        }
                    }
                };
                let info = Conn { tls: secure, client_subject };
                let service = hyper::service::service_fn(move |req| {
                    let app = Arc::clone(&app);
                    let info = info.clone();
                    async move { Ok::<_, std::convert::Infallible>(app.handle(req, peer, &info).await) }
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

/// Whether a connection to the TLS port opens with a plain HTTP request (its first bytes are
/// peeked, bounded by the handshake timeout).
async fn plain_http_to_tls(stream: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 4];
    let peeked = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, async {
        // A request's method may come in pieces: peek until 4 bytes are there or it is clear.
        loop {
            match stream.peek(&mut first).await {
                Ok(n) if n >= 4 || n == 0 || first[0] == 0x16 => return n,
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(_) => return 0,
            }
        }
    })
    .await;
    matches!(peeked, Ok(4)) && websocketd_transport_tls::looks_like_http(&first)
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
