//! Binding and accepting, on TCP and on unix sockets. The accept loop only accepts: each
//! connection is served in its own task, and accept errors (such as running out of file
//! descriptors) back off instead of ending the server. When the shutdown begins, the loop
//! stops, a socket file it made is removed, and each connection finishes the response it is
//! writing, then closes.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_util::either::Either;
use websocketd_core::Shutdown;
use websocketd_transport_tls::TlsConfig;

use crate::conn::{Conn, Peer};
use crate::error::Error;
use crate::router::App;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The send buffer asked for on a unix-socket connection (the kernel caps it at
/// `net.core.wmem_max`). A unix stream socket's default (`wmem_default`, 208 KiB) cuts large
/// writes into small buffers and wakes the reader for each: behind nginx a 64 KiB download ran
/// at 79% of the same over TCP, whose buffer grows by itself up to `tcp_wmem`'s 4 MiB. With
/// this it is level. The memory is taken only while bytes wait for the reader.
const UNIX_SEND_BUFFER: usize = 4 << 20;
/// How long a client may take over the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listening socket and how it was asked for.
#[derive(Debug)]
pub struct Listener {
    inner: Inner,
    /// The host part as given on the command line (`None` for all interfaces, a unix socket
    /// or an inherited socket).
    pub host: Option<String>,
    /// The name systemd gave an inherited socket (`FileDescriptorName=`), if any.
    pub fd_name: Option<String>,
}

#[derive(Debug)]
enum Inner {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        path: Option<PathBuf>,
        /// The socket file this server made, removed when the listener goes.
        _file: Option<SocketFile>,
    },
}

/// Where a listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket's path (`None` for an unnamed or abstract one).
    Unix(Option<PathBuf>),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            Address::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

/// An accepted connection: over TCP (`Left`) or a unix socket (`Right`).
pub type Stream = Either<TcpStream, UnixStream>;

impl Listener {
    /// A TCP listener from a socket already listening (handed over by systemd).
    pub fn from_tcp(listener: std::net::TcpListener, fd_name: Option<String>) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Listener { inner: Inner::Tcp(TcpListener::from_std(listener)?), host: None, fd_name })
    }

    /// A unix listener from a socket already listening (handed over by systemd). Its file, if
    /// any, belongs to whoever made it and is left alone.
    pub fn from_unix(
        listener: std::os::unix::net::UnixListener,
        fd_name: Option<String>,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let path = listener.local_addr()?.as_pathname().map(Path::to_path_buf);
        let listener = UnixListener::from_std(listener)?;
        Ok(Listener { inner: Inner::Unix { listener, path, _file: None }, host: None, fd_name })
    }

    /// Where it listens.
    pub fn address(&self) -> io::Result<Address> {
        match &self.inner {
            Inner::Tcp(l) => l.local_addr().map(Address::Tcp),
            Inner::Unix { path, .. } => Ok(Address::Unix(path.clone())),
        }
    }

    /// The TCP address actually bound (with the real port when 0 was asked); an error for a
    /// unix socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Inner::Tcp(l) => l.local_addr(),
            Inner::Unix { .. } => Err(io::Error::other("a unix socket has no TCP address")),
        }
    }

    /// Accepts one connection.
    pub(crate) async fn accept(&self) -> io::Result<(Stream, Peer)> {
        match &self.inner {
            Inner::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok((Either::Left(stream), Peer::Tcp(peer)))
            }
            Inner::Unix { listener, .. } => {
                let (stream, _) = listener.accept().await?;
                use nix::sys::socket::{setsockopt, sockopt::SndBuf};
                if let Err(e) = setsockopt(&stream, SndBuf, &UNIX_SEND_BUFFER) {
                    tracing::debug!(target: "server", "Could not enlarge a unix socket's send buffer: {e}");
                }
                Ok((Either::Right(stream), Peer::Unix))
            }
        }
    }

    /// The next connection, or `None` once `shutdown` has begun; accept errors (such as
    /// running out of descriptors) are logged and backed off from.
    pub async fn next(&self, shutdown: &Shutdown) -> Option<(Stream, Peer)> {
        let mut backoff = Duration::from_millis(5);
        loop {
            let accepted = tokio::select! {
                accepted = self.accept() => accepted,
                () = shutdown.begun() => return None,
            };
            match accepted {
                Ok(accepted) => return Some(accepted),
                Err(e) => {
                    tracing::error!(target: "server", "Accept failed: {e}; retrying in {backoff:?}");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.begun() => return None,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Serves connections until the shutdown begins, with TLS when `tls` is given (the
    /// handshake runs in each connection's own task, under a timeout).
    pub async fn serve(self, app: Arc<App>, tls: Option<Arc<TlsConfig>>) {
        let shutdown = app.shutdown().clone();
        while let Some((stream, peer)) = self.next(&shutdown).await {
            let app = Arc::clone(&app);
            let tls = tls.clone();
            let watch = shutdown.clone();
            shutdown.spawn(async move {
                let secure = tls.is_some();
                let mut client_subject = None;
                let conn = match &tls {
                    None => Either::Left(stream),
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
                                Either::Right(Box::new(stream))
                            }
                            Err(e) => {
                                tracing::debug!(target: "http", "TLS handshake with {peer} failed: {e}");
                                app.metrics().tls_failures.inc();
                                return;
                            }
                        }
                    }
                };
                let info = Conn { tls: secure, client_subject, peer };
                let http2 = app.http2();
                let service = hyper::service::service_fn(move |req| {
                    let app = Arc::clone(&app);
                    let info = info.clone();
                    async move { Ok::<_, std::convert::Infallible>(app.handle(req, &info).await) }
                });
                if http2 {
                    // HTTP/2 (chosen by ALPN, or with prior knowledge) or HTTP/1.1, as the
                    // client's first bytes say. On shutdown, HTTP/2 sends GOAWAY and the
                    // streams under way go on (each session sees the shutdown too, and
                    // closes with 1001).
                    let builder = auto(HEADER_READ_TIMEOUT);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(conn), service);
                    let conn = pin!(conn);
                    drive(conn, |c| c.graceful_shutdown(), &watch, peer).await;
                    return;
                }
                let conn = http1(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(conn), service)
                    .with_upgrades();
                // On shutdown: finish the response under way, then close.
                drive(pin!(conn), |c| c.graceful_shutdown(), &watch, peer).await;
            });
        }
    }
}

/// Serves `conn` to its end; once the shutdown begins, asks it to end gracefully (`graceful`)
/// and waits for that. How it ended is logged at debug.
async fn drive<C, E>(
    mut conn: std::pin::Pin<&mut C>,
    graceful: impl FnOnce(std::pin::Pin<&mut C>),
    watch: &Shutdown,
    peer: Peer,
) where
    C: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = watch.begun() => {
            graceful(conn.as_mut());
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(target: "http", "Connection from {peer} ended: {e}");
    }
}

/// How every connection speaks HTTP/1.1: header names as Go writes them (`Content-Type`,
/// for scripts that look), heads bounded as the [edge](crate::edge) says, and `timeout` to
/// send one.
pub(crate) fn http1(timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .title_case_headers(true)
        .header_read_timeout(timeout)
        .max_headers(crate::edge::MAX_HEADERS)
        .max_header_size(crate::edge::MAX_HEAD_BYTES)
        // The read buffer must hold a whole head; it grows only as far as a request needs.
        .max_buf_size(crate::edge::MAX_HEAD_BYTES + 8192);
    builder
}

/// Most streams (sessions and requests) at once on one HTTP/2 connection, as SETTINGS says.
pub const MAX_STREAMS: u32 = 256;

/// The HTTP/2 flow-control window of each stream the server receives on (HTTP/2's default).
pub const STREAM_WINDOW: u32 = 65_535;

/// Most bytes of one HTTP/2 request's header list (as SETTINGS_MAX_HEADER_LIST_SIZE says).
pub const MAX_HEADER_LIST: u32 = 64 * 1024;

/// How a connection speaks with `--http2`: HTTP/1.1 as [`http1`] has it, or HTTP/2 with the
/// extended CONNECT of RFC 8441 announced, its streams and header lists bounded, and streams
/// reset before the server has answered them bounded too (the rapid-reset attack,
/// CVE-2023-44487: the connection is closed past that).
pub(crate) fn auto(timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .title_case_headers(true)
        .header_read_timeout(timeout)
        .max_headers(crate::edge::MAX_HEADERS)
        .max_buf_size(crate::edge::MAX_HEAD_BYTES + 8192);
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .max_concurrent_streams(MAX_STREAMS)
        // What a stream's client sends waits in its window until its session reads it: with
        // room for every stream's whole window, one whose program does not read never stalls
        // the others.
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(STREAM_WINDOW * MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_pending_accept_reset_streams(Some(64))
        .max_local_error_reset_streams(Some(256));
    builder
}

/// The local TCP address of `stream`, if it is TCP.
pub fn local_addr(stream: &Stream) -> Option<SocketAddr> {
    match stream {
        Either::Left(tcp) => tcp.local_addr().ok(),
        Either::Right(_) => None,
    }
}

/// A socket file made by [`bind_unix`]: removed on drop, unless another file has taken its
/// place meanwhile (a newer server's).
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let same =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if same {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether a connection to the TLS port opens with a plain HTTP request (its first bytes are
/// peeked, bounded by the handshake timeout). Only TCP can be peeked at; on a unix socket the
/// TLS handshake itself fails instead.
async fn plain_http_to_tls(stream: &Stream) -> bool {
    let Either::Left(stream) = stream else { return false };
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
        listeners.push(Listener { inner: Inner::Tcp(inner), host: None, fd_name: None });
        return Ok(listeners);
    }
    for address in addresses {
        let target = format!("{address}:{port}");
        let inner = TcpListener::bind(target.as_str())
            .await
            .map_err(|source| Error::Bind { addr: target.clone(), source })?;
        listeners.push(Listener {
            inner: Inner::Tcp(inner),
            host: Some(address.clone()),
            fd_name: None,
        });
    }
    Ok(listeners)
}

/// Listens on the unix socket `path`, with permissions `mode` if given. A socket file nobody
/// answers on (left by a server that died) is replaced; one where a server answers is not,
/// nor is a file of any other kind. The file is removed when the listener goes.
pub fn bind_unix(path: &Path, mode: Option<u32>) -> Result<Listener, Error> {
    let fail = |step: String| {
        move |source| Error::Unix { path: path.to_path_buf(), step: step.clone(), source }
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Error::NotASocket { path: path.to_path_buf() });
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(Error::SocketInUse { path: path.to_path_buf() }),
            // Nobody listens: what is left of a server that did not clean up.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)
                    .map_err(fail("cannot remove the stale socket file".to_owned()))?;
                tracing::info!(target: "server", "Removed stale socket file {}", path.display());
            }
            Err(e) => return Err(fail("cannot tell whether it is in use".to_owned())(e)),
        }
    }
    let listener =
        with_umask(mode, || UnixListener::bind(path)).map_err(fail("bind".to_owned()))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(fail(format!("chmod {mode:o}")))?;
    }
    let meta = std::fs::symlink_metadata(path).map_err(fail("stat".to_owned()))?;
    let file = SocketFile { path: path.to_path_buf(), id: (meta.dev(), meta.ino()) };
    Ok(Listener {
        inner: Inner::Unix { listener, path: Some(path.to_path_buf()), _file: Some(file) },
        host: None,
        fd_name: None,
    })
}

/// Runs `f` with a umask that lets the file it makes have at most `mode`'s permissions, so
/// a socket file is never connectable by more users than asked, not even for a moment.
fn with_umask<T>(mode: Option<u32>, f: impl FnOnce() -> T) -> T {
    use nix::sys::stat::{Mode, umask};
    let Some(mode) = mode else { return f() };
    let mask = Mode::from_bits_truncate(!mode & 0o777);
    let old = umask(mask);
    let out = f();
    umask(old);
    out
}
