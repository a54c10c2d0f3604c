//! websocketd's TLS: a rustls server configuration from PEM files, and TLS accepted on a
//! connection under a timeout.
//!
//! Certificates and keys are read through `rustls-pki-types` (`PemObject`): certificate
//! chains, and RSA (PKCS#1, PKCS#8), ECDSA (SEC1, PKCS#8) and Ed25519 keys. Only TLS 1.2 and
//! 1.3 are offered, with rustls's safe cipher suites and ALPN `http/1.1`, and one crypto
//! provider, ring, installed explicitly at start-up.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::version::{TLS12, TLS13};
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;

/// Where the certificate chain and its key are.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key.
    pub key: PathBuf,
    /// With `--sslca`: PEM file with the CA(s) that client certificates must be signed by.
    pub ca: Option<PathBuf>,
}

/// What can go wrong setting up TLS; each names its file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The certificate file cannot be read or parsed.
    #[error("cannot read certificate file '{path}'")]
    Cert {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate in '{0}'")]
    NoCert(PathBuf),
    /// The key file cannot be read, parsed, or holds no key.
    #[error("cannot read a private key from '{path}'")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The CA file cannot be read or holds no usable certificate.
    #[error("cannot use the CA file '{path}'")]
    Ca {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The key does not fit the certificate (or is of a kind rustls cannot use).
    #[error("the key in '{key}' does not match the certificate in '{cert}'")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        #[source]
        source: tokio_rustls::rustls::Error,
    },
}

/// Installs ring as the process's crypto provider (once; later calls do nothing).
pub fn install_provider() {
    let _ = ring::default_provider().install_default();
}

/// Reads the files and builds the server configuration.
pub fn load(settings: &TlsSettings) -> Result<Arc<ServerConfig>, Error> {
    let certs = read_certs(&settings.cert)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key)
        .map_err(|source| Error::Key { path: settings.key.clone(), source })?;
    let mismatch =
        |source| Error::Mismatch { cert: settings.cert.clone(), key: settings.key.clone(), source };
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&TLS13, &TLS12])
        .map_err(mismatch)?;
    let builder = match &settings.ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let ca_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::Ca {
                path: path.clone(),
                source,
            };
            let mut roots = RootCertStore::empty();
            for ca in read_certs(path).map_err(|e| ca_error(Box::new(e)))? {
                roots.add(ca).map_err(|e| ca_error(Box::new(e)))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ca_error(Box::new(e)))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(mismatch)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let cert_error = |source| Error::Cert { path: path.to_owned(), source };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(cert_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_error)?;
    if certs.is_empty() {
        return Err(Error::NoCert(path.to_owned()));
    }
    Ok(certs)
}

/// The server configuration in use, which SIGHUP can replace: new connections take the
/// current one, open connections keep theirs.
#[derive(Debug)]
pub struct TlsConfig {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsConfig {
    /// Loads the files (see [`load`]).
    pub fn new(settings: TlsSettings) -> Result<TlsConfig, Error> {
        let config = load(&settings)?;
        Ok(TlsConfig { settings, current: RwLock::new(config) })
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner)))
    }

    /// Reads the files again; on success new connections use them, on failure the old
    /// configuration stays and the error says which file is wrong.
    pub fn reload(&self) -> Result<(), Error> {
        let config = load(&self.settings)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }
}

/// A warning when the certificate in `path` (its first, the leaf) is expired or not yet
/// valid: such a certificate still serves, but clients will refuse it.
pub fn validity_warning(path: &Path) -> Option<String> {
    let certs = read_certs(path).ok()?;
    let (_, leaf) = x509_parser::parse_x509_certificate(certs.first()?.as_ref()).ok()?;
    let validity = leaf.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now > validity.not_after {
        Some(format!("the certificate in '{}' expired on {}", path.display(), validity.not_after))
    } else if now < validity.not_before {
        Some(format!(
            "the certificate in '{}' is not valid before {}",
            path.display(),
            validity.not_before
        ))
    } else {
        None
    }
}

/// The subject of a client certificate (DER) as Apache and nginx write it
/// (`SSL_CLIENT_S_DN`), e.g. `CN=client,O=Example`.
pub fn subject(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let mut parts: Vec<String> = Vec::new();
    for rdn in cert.subject().iter() {
        for attr in rdn.iter() {
            let key = x509_parser::objects::oid2abbrev(
                attr.attr_type(),
                x509_parser::objects::oid_registry(),
            )
            .map(str::to_owned)
            .unwrap_or_else(|_| attr.attr_type().to_id_string());
            let value = attr.as_str().map(str::to_owned).unwrap_or_default();
            parts.push(format!("{key}={value}"));
        }
    }
    // RFC 2253 order: the most specific component first.
    parts.reverse();
    Some(parts.join(","))
}

/// Whether the first bytes of a connection are a plain HTTP request rather than a TLS
/// ClientHello (which starts with the byte 0x16).
pub fn looks_like_http(first: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] =
        [b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC"];
    METHODS.iter().any(|m| first.starts_with(m))
}

/// What a plain HTTP request to the TLS port gets.
pub const PLAIN_HTTP_RESPONSE: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Accepts TLS on `stream`, giving up after `timeout`.
pub async fn accept<S>(
    acceptor: &TlsAcceptor,
    stream: S,
    timeout: Duration,
) -> io::Result<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(accepted) => accepted,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")),
    }
}

/// A connection that is plain or TLS.
#[derive(Debug)]
pub enum MaybeTls<S> {
    /// No TLS.
    Plain(S),
    /// TLS.
    Tls(Box<TlsStream<S>>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn good_files_load_and_bad_ones_name_their_file() {
        let dir = std::env::temp_dir().join(format!("wsd-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = write(&dir, "a.crt", &a.cert.pem());
        let key = write(&dir, "a.key", &a.signing_key.serialize_pem());
        let other_key = write(&dir, "b.key", &b.signing_key.serialize_pem());
        let empty = write(&dir, "empty.pem", "");
        assert!(load(&TlsSettings { cert: cert.clone(), key: key.clone(), ca: None }).is_ok());
        let err = |cert: &Path, key: &Path| {
            load(&TlsSettings { cert: cert.to_owned(), key: key.to_owned(), ca: None })
                .unwrap_err()
                .to_string()
        };
        assert!(err(&dir.join("missing.crt"), &key).contains("missing.crt"));
        assert!(err(&empty, &key).contains("no certificate in"));
        assert!(err(&cert, &empty).contains("cannot read a private key from"));
        assert!(err(&cert, &other_key).contains("does not match the certificate"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
