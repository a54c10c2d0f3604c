//! The crate's error type: what can go wrong setting up TLS; each names its file.

use std::path::PathBuf;

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
