//! The rustls server configuration, read from PEM files, and replaced on SIGHUP.
//!
//! Certificates and keys are read through `rustls-pki-types` (`PemObject`): certificate
//! chains, and RSA (PKCS#1, PKCS#8), ECDSA (SEC1, PKCS#8) and Ed25519 keys. Only TLS 1.2 and
//! 1.3 are offered, with rustls's safe cipher suites and ALPN `http/1.1`, and one crypto
//! provider, ring, installed explicitly at start-up.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::version::{TLS12, TLS13};
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

use crate::error::Error;

/// Where the certificate chain and its key are.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key.
    pub key: PathBuf,
    /// With `--sslca`: PEM file with the CA(s) that client certificates must be signed by.
    pub ca: Option<PathBuf>,
    /// With `--http2`: ALPN offers `h2` before `http/1.1`.
    pub http2: bool,
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
    config.alpn_protocols = match settings.http2 {
        true => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        false => vec![b"http/1.1".to_vec()],
    };
    // One TLS 1.3 ticket per handshake, as Go sends (rustls's default is two): a browser
    // resumes with one, and each resumed handshake brings the next. The second cost about
    // 5% of the full handshake's rate (the bench's wss scenarios, both role orders).
    config.send_tls13_tickets = 1;
    Ok(Arc::new(config))
}

pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
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
        assert!(
            load(&TlsSettings { cert: cert.clone(), key: key.clone(), ca: None, http2: false })
                .is_ok()
        );
        let err = |cert: &Path, key: &Path| {
            load(&TlsSettings {
                cert: cert.to_owned(),
                key: key.to_owned(),
                ca: None,
                http2: false,
            })
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
