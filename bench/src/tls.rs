//! TLS for the wss scenarios: one ECDSA P-256 certificate for every server (signed by a CA
//! made for the run), its files in the forms each server takes, and clients that offer what
//! browsers do (TLS 1.3 with AES-128-GCM first, X25519 first), with or without resumption.
//! What each handshake negotiated is kept, so the report can say it was like for like.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// The run's certificate, as files.
#[derive(Debug)]
pub struct Files {
    /// The leaf certificate (PEM), for `--sslcert`.
    pub cert: PathBuf,
    /// Its key (PEM), for `--sslkey`.
    pub key: PathBuf,
    /// Both as PKCS#12 with an empty password, for websocat's `--pkcs12-der` (made with
    /// `openssl pkcs12`; `None` when openssl is missing).
    pub pkcs12: Option<PathBuf>,
    /// The CA's certificate (DER), which clients trust.
    ca: Vec<u8>,
}

/// The run's certificate, made on first use in `target/bench-tls/`.
pub fn files() -> Result<&'static Files> {
    static FILES: OnceLock<Files> = OnceLock::new();
    if let Some(files) = FILES.get() {
        return Ok(files);
    }
    let made = make()?;
    Ok(FILES.get_or_init(|| made))
}

fn make() -> Result<Files> {
    let dir = PathBuf::from("target/bench-tls");
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "websocketd-bench CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    // KeyPair::generate makes ECDSA P-256 keys.
    let key = KeyPair::generate()?;
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let cert = params.signed_by(&key, &issuer)?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    let p12 = dir.join("server.p12");
    let made = std::process::Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:", "-out"])
        .arg(&p12)
        .arg("-inkey")
        .arg(&key_path)
        .arg("-in")
        .arg(&cert_path)
        .status();
    let pkcs12 = made.ok().filter(|s| s.success()).map(|_| p12);
    Ok(Files { cert: cert_path, key: key_path, pkcs12, ca: ca.der().to_vec() })
}

/// How a client does its handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshakes {
    /// Every one full.
    Full,
    /// Resumed where the server allows (as browsers do), from a session cache shared by all
    /// connections of the run.
    Resumed,
}

/// A client configuration offering what browsers offer, trusting the run's CA.
pub fn client(handshakes: Handshakes) -> Result<Arc<ClientConfig>> {
    let files = files()?;
    let mut roots = RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from(files.ca.clone())).context("CA")?;
    let base = ring::default_provider();
    // AES-128-GCM first, as browsers order them; X25519 first among the groups.
    let mut suites = base.cipher_suites.clone();
    suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        _ => 3,
    });
    let provider = CryptoProvider { cipher_suites: suites, ..base };
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = match handshakes {
        Handshakes::Full => Resumption::disabled(),
        Handshakes::Resumed => Resumption::default(),
    };
    Ok(Arc::new(config))
}

/// What handshakes negotiated so far: how many of each distinct outcome.
fn seen() -> &'static Mutex<BTreeMap<String, u64>> {
    static SEEN: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    &SEEN
}

/// Notes what a finished handshake negotiated.
pub fn note(conn: &rustls::ClientConnection) {
    let version = conn.protocol_version().map_or("?".to_owned(), |v| format!("{v:?}"));
    let suite =
        conn.negotiated_cipher_suite().map_or("?".to_owned(), |s| format!("{:?}", s.suite()));
    let group =
        conn.negotiated_key_exchange_group().map_or("?".to_owned(), |g| format!("{:?}", g.name()));
    let kind = conn.handshake_kind().map_or("?".to_owned(), |k| format!("{k:?}"));
    let line = format!("{version}, {suite}, {group}, {kind}");
    *seen().lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(line).or_default() += 1;
}

/// What handshakes negotiated since the last call (`outcome ×count`), and forgets it.
pub fn take_seen() -> Vec<String> {
    let mut seen = seen().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    std::mem::take(&mut *seen).into_iter().map(|(line, n)| format!("{line} x{n}")).collect()
}
