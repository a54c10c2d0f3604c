//! A wss client trusting CA certificates, or exactly one certificate.

use std::io;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

use crate::wait::{STEP, within};

/// A wss client connection as the suites use it.
pub type Wss = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Which server certificates a TLS client accepts.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// Those that chain to one of these CA certificates (PEM), for the name connected to.
    Roots(&'a str),
    /// Exactly this certificate (PEM), as a browser does once told to accept a self-signed
    /// one. (webpki refuses a self-signed certificate marked as a CA, as `openssl req -x509`
    /// makes them, as a server's own; the handshake signatures are still checked.)
    Exactly(&'a str),
}

/// A wss client for `wss://localhost:<port><path>` over `tcp`, accepting what `trust` says;
/// an error when the TLS or WebSocket handshake fails.
pub async fn wss_over(tcp: TcpStream, trust: Trust<'_>, port: u16, path: &str) -> io::Result<Wss> {
    let tls = tls_over(tcp, trust, &[]).await?;
    let url = format!("wss://localhost:{port}{path}");
    let (ws, _) =
        within(STEP, tokio_tungstenite::client_async(url, tls)).await.map_err(io::Error::other)?;
    Ok(ws)
}

/// A TLS client connection to `localhost` over `tcp`, accepting what `trust` says, offering
/// the ALPN protocols `alpn` (none when empty).
pub async fn tls_over(
    tcp: TcpStream,
    trust: Trust<'_>,
    alpn: &[&[u8]],
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let config = match trust {
        Trust::Roots(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(pem) {
                roots.add(cert).map_err(io::Error::other)?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Exactly(pem) => {
            let expected = certificates(pem).into_iter().next().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no certificate in the PEM")
            })?;
            let pinned = Pinned { expected, provider };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(pinned))
                .with_no_client_auth()
        }
    };
    let mut config = config;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls_pki_types::ServerName::try_from("localhost").map_err(io::Error::other)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    within(STEP, connector.connect(name, tcp)).await
}

/// The certificates in a PEM text.
fn certificates(pem: &str) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

/// Accepts exactly one certificate, and checks the handshake's signatures with its key.
#[derive(Debug)]
struct Pinned {
    expected: rustls_pki_types::CertificateDer<'static>,
    provider: Arc<tokio_rustls::rustls::crypto::CryptoProvider>,
}

impl tokio_rustls::rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<tokio_rustls::rustls::client::danger::ServerCertVerified, tokio_rustls::rustls::Error>
    {
        if end_entity.as_ref() != self.expected.as_ref() {
            return Err(tokio_rustls::rustls::Error::General("not the pinned certificate".into()));
        }
        Ok(tokio_rustls::rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        let algorithms = &self.provider.signature_verification_algorithms;
        tokio_rustls::rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &tokio_rustls::rustls::DigitallySignedStruct,
    ) -> Result<
        tokio_rustls::rustls::client::danger::HandshakeSignatureValid,
        tokio_rustls::rustls::Error,
    > {
        let algorithms = &self.provider.signature_verification_algorithms;
        tokio_rustls::rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
