//! websocketd's TLS: a rustls server configuration from PEM files, and TLS accepted on a
//! connection under a timeout.
//!
//! - [`config`]: the server configuration from PEM files, and its reload.
//! - [`accept`]: TLS accepted under a timeout, and plain HTTP told from a TLS handshake.
//! - [`cert`]: what a certificate says (its validity, a client's subject).
//! - [`error`]: the crate's error type.

pub mod accept;
pub mod cert;
pub mod config;
pub mod error;

pub use accept::{PLAIN_HTTP_RESPONSE, accept, looks_like_http};
pub use cert::{subject, validity_warning};
pub use config::{TlsConfig, TlsSettings, install_provider, load};
pub use error::Error;
