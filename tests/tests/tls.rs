//! `--ssl`: wss:// with certificates made for the test, TLS 1.2 and 1.3 only, and clear
//! errors for bad files.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;
use websocketd_tests::*;

/// A CA, and a certificate for localhost and 127.0.0.1 signed by it, in `dir`.
struct Pki {
    ca_pem: String,
    ca: String,
    cert: String,
    key: String,
}

fn pki(dir: &TempDir) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "websocketd test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf_params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca_pem: ca_cert.pem(),
        ca: write("ca.pem", &ca_cert.pem()),
        cert: write("cert.pem", &leaf.pem()),
        key: write("key.pem", &leaf_key.serialize_pem()),
    }
}

/// A wss client trusting only `ca_pem`; an error when the TLS handshake fails.
async fn try_wss(server: &Server, ca_pem: &str, path: &str) -> std::io::Result<Wss> {
    let tcp = tokio::net::TcpStream::connect(server.addr).await?;
    wss_over(tcp, Trust::Roots(ca_pem), server.addr.port(), path).await
}

async fn wss(server: &Server, pki: &Pki, path: &str) -> Wss {
    try_wss(server, &pki.ca_pem, path).await.expect("wss connection")
}

async fn echo(ws: &mut Wss, text: &str) {
    use futures_util::{SinkExt, StreamExt};
    ws.send(Message::text(text)).await.unwrap();
    let got = within(STEP, ws.next()).await;
    assert!(matches!(&got, Some(Ok(Message::Text(t))) if t.as_str() == text), "{got:?}");
}

fn ssl_args(pki: &Pki) -> [String; 3] {
    ["--ssl".to_owned(), format!("--sslcert={}", pki.cert), format!("--sslkey={}", pki.key)]
}

/// A fresh PKI and a server with `--ssl` and `args` (flags, then the command).
async fn tls_server(args: &[&str]) -> (TempDir, Pki, Server) {
    let dir = TempDir::new();
    let pki = pki(&dir);
    let ssl = ssl_args(&pki);
    let mut all: Vec<&str> = ssl.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    let server = Server::start(&all).await;
    (dir, pki, server)
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_a_400_saying_so() {
    let (_dir, pki, server) = tls_server(&["cat"]).await;
    let resp = raw_http(server.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{resp}");
    assert!(resp.ends_with("Client sent an HTTP request to an HTTPS server.\n"), "{resp}");
    // Positive control: TLS on the same port works.
    echo(&mut wss(&server, &pki, "/").await, "over tls").await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_for_new_connections_only() {
    let (_dir, first, server) = tls_server(&["cat"]).await;
    let mut old = wss(&server, &first, "/").await;
    echo(&mut old, "before").await;
    // New files in the same places: a certificate from another CA.
    let other_dir = TempDir::new();
    let second = pki(&other_dir);
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    let hangup = |server: &Server| {
        let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    };
    hangup(&server);
    server.wait_log(|l| l.ends_with("| Reloaded TLS certificate and key")).await;
    echo(&mut wss(&server, &second, "/").await, "new certificate").await;
    assert!(try_wss(&server, &first.ca_pem, "/").await.is_err(), "the old certificate is gone");
    echo(&mut old, "old connection untouched").await;
    // A broken file keeps the current certificate and says which file.
    std::fs::write(&first.key, "not a key").unwrap();
    hangup(&server);
    server
        .wait_log(|l| {
            l.contains("| ERROR  | server     |  | Could not reload TLS") && l.contains(&first.key)
        })
        .await;
    echo(&mut wss(&server, &second, "/").await, "still the new certificate").await;
}

#[tokio::test]
async fn wss_serves_the_command_and_the_child_sees_https() {
    let (_dir, pki, server) = tls_server(&[&fixture("env.sh")]).await;
    server.wait_log(|l| l.contains("| Starting WebSocket server   : wss://127.0.0.1:")).await;
    let mut ws = wss(&server, &pki, "/secure?x=1").await;
    let mut env = Vec::new();
    while let Some(Ok(Message::Text(t))) = futures_util::StreamExt::next(&mut ws).await {
        env.push(t.to_string());
    }
    assert!(env.contains(&"HTTPS=on".to_owned()), "{env:?}");
    assert!(env.contains(&format!("SERVER_PORT={}", server.addr.port())), "{env:?}");
    server.wait_log(|l| l.contains("url:'https://localhost:") && l.ends_with("| CONNECT")).await;
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_are_accepted_by_a_client_that_is_not_ours() {
    let dir = TempDir::new();
    let pki = pki(&dir);
    let server = Server::start(&[
        "--ssl",
        &format!("--sslcert={}", pki.cert),
        &format!("--sslkey={}", pki.key),
        "cat",
    ])
    .await;
    let out = within(
        STEP,
        tokio::process::Command::new(fixture("tls_versions.py"))
            .args(["127.0.0.1", &server.addr.port().to_string(), &pki.ca])
            .output(),
    )
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |v: &str| {
        report.lines().find(|l| l.starts_with(&format!("{v} "))).unwrap_or_default().to_owned()
    };
    assert!(line("TLSv1_2").starts_with("TLSv1_2 accepted TLSv1.2"), "{report}");
    assert!(line("TLSv1_3").starts_with("TLSv1_3 accepted TLSv1.3"), "{report}");
    // Refused by the server: the client offered the version and got an alert back.
    for old in ["TLSv1", "TLSv1_1"] {
        let l = line(old);
        assert!(l.starts_with(&format!("{old} refused")) && l.contains("alert"), "{report}");
    }
}

fn websocketd_exit(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(binary()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_certificate_files_exit_3_naming_the_file_before_anything_listens() {
    let dir = TempDir::new();
    let pki = pki(&dir);
    let other = KeyPair::generate().unwrap().serialize_pem();
    let other_key = dir.path("other.pem");
    std::fs::write(&other_key, other).unwrap();
    let missing = dir.path("missing.pem");
    for (cert, key, needle) in [
        (missing.as_str(), pki.key.as_str(), "missing.pem"),
        (pki.key.as_str(), pki.key.as_str(), "no certificate in"),
        (pki.cert.as_str(), pki.cert.as_str(), "cannot read a private key"),
        (pki.cert.as_str(), other_key.as_str(), "does not match the certificate"),
    ] {
        let (code, stdout, _) = websocketd_exit(&[
            "--address=127.0.0.1",
            "--port=0",
            "--ssl",
            &format!("--sslcert={cert}"),
            &format!("--sslkey={key}"),
            "cat",
        ]);
        assert_eq!(code, Some(3), "{stdout}");
        assert!(
            stdout.contains("| FATAL  | server     |  | Can't start server: ")
                && stdout.contains(needle),
            "{stdout}"
        );
        assert!(!stdout.contains("Starting WebSocket server"), "{stdout}");
    }
}

#[test]
fn ssl_flags_must_come_together() {
    let (code, _, stderr) = websocketd_exit(&["--ssl", "cat"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("Please specify both --sslcert and --sslkey when requesting --ssl."),
        "{stderr}"
    );
    let (code, _, stderr) = websocketd_exit(&["--sslcert=x.pem", "cat"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("You should not be using --ssl* flags when there is no --ssl option."),
        "{stderr}"
    );
}

#[tokio::test]
async fn silent_clients_do_not_delay_anyone_else() {
    let (_dir, pki, server) = tls_server(&["cat"]).await;
    let mut silent = Vec::new();
    for _ in 0..500 {
        silent.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    // Each handshake waits in its own task: a real client is served at once (bounded far
    // below the 10 s handshake timeout the silent ones are held to).
    let served = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        echo(&mut wss(&server, &pki, "/").await, "not delayed").await;
    })
    .await;
    assert!(served.is_ok(), "a client waited behind 500 silent connections");
    drop(silent);
}

/// A client certificate (O=Example, CN=client) signed by a new CA; returns (ca pem, cert pem,
/// key pem).
fn client_pki() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "client CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "Example");
    params.distinguished_name.push(DnType::CommonName, "client");
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// A wss client presenting `client` (cert pem, key pem), if any; the upgrade's outcome.
async fn mtls(server: &Server, pki: &Pki, client: Option<(&str, &str)>) -> Result<Wss, String> {
    use rustls_pki_types::pem::PemObject;
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let mut roots = RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    let tcp = tokio::net::TcpStream::connect(server.addr).await.map_err(|e| e.to_string())?;
    let tls = within(
        STEP,
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .map_err(|e| e.to_string())?;
    let url = format!("wss://localhost:{}/", server.addr.port());
    // With TLS 1.3 a refused certificate shows at the first exchange, so the upgrade tells.
    within(STEP, tokio_tungstenite::client_async(url, tls))
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

/// A TLS server that requires client certificates from a CA of its own, running `args`;
/// with the certificate and key of a client that CA signed.
async fn mtls_server(dir: &TempDir, args: &[&str]) -> (Pki, Server, String, String) {
    let pki = pki(dir);
    let (client_ca, client_cert, client_key) = client_pki();
    let ca_file = dir.path("client-ca.pem");
    std::fs::write(&ca_file, &client_ca).unwrap();
    let ssl = ssl_args(&pki);
    let sslca = format!("--sslca={ca_file}");
    let mut all = vec![ssl[0].as_str(), &ssl[1], &ssl[2], &sslca];
    all.extend_from_slice(args);
    let server = Server::start(&all).await;
    (pki, server, client_cert, client_key)
}

#[tokio::test]
async fn sslca_requires_a_client_certificate_and_passes_its_subject() {
    let dir = TempDir::new();
    let (pki, server, client_cert, client_key) = mtls_server(&dir, &[&fixture("env.sh")]).await;
    let mut ws = mtls(&server, &pki, Some((&client_cert, &client_key)))
        .await
        .expect("a signed client is accepted");
    let mut env = Vec::new();
    while let Some(Ok(Message::Text(t))) = futures_util::StreamExt::next(&mut ws).await {
        env.push(t.to_string());
    }
    assert!(env.contains(&"SSL_CLIENT_S_DN=CN=client,O=Example".to_owned()), "{env:?}");
    assert!(env.contains(&"SSL_CLIENT_VERIFY=SUCCESS".to_owned()), "{env:?}");
    assert!(mtls(&server, &pki, None).await.is_err(), "no client certificate");
    let (_, stranger_cert, stranger_key) = client_pki();
    assert!(
        mtls(&server, &pki, Some((&stranger_cert, &stranger_key))).await.is_err(),
        "a certificate from another CA"
    );
}

#[tokio::test]
async fn an_expired_certificate_starts_with_a_warning() {
    let dir = TempDir::new();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.path("old.pem"), dir.path("old.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let server = Server::start(&[
        "--ssl",
        &format!("--sslcert={cert_file}"),
        &format!("--sslkey={key_file}"),
        "cat",
    ])
    .await;
    server
        .wait_log(|l| {
            l.contains("| WARN   | server     |  | the certificate in '")
                && l.contains("expired on")
        })
        .await;
}

#[tokio::test]
async fn every_key_kind_serves() {
    let openssl = std::process::Command::new("openssl").arg("version").output().is_ok();
    if !openssl {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "openssl is missing on CI");
        eprintln!("note: no openssl here; skipping the key kinds");
        return;
    }
    let dir = TempDir::new();
    for (name, generate) in [
        ("rsa-pkcs1", "openssl genrsa -traditional -out KEY 2048"),
        ("rsa-pkcs8", "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out KEY"),
        ("ec-sec1", "openssl ecparam -name prime256v1 -genkey -noout -out KEY"),
        ("ec-pkcs8", "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out KEY"),
        ("ed25519", "openssl genpkey -algorithm ed25519 -out KEY"),
    ] {
        let key = dir.path(&format!("{name}.key"));
        let cert = dir.path(&format!("{name}.pem"));
        let script = format!(
            "{} 2>/dev/null && openssl req -new -x509 -key {key} -out {cert} -subj /CN=localhost -days 2 2>/dev/null",
            generate.replace("KEY", &key)
        );
        assert!(
            std::process::Command::new("sh").args(["-c", &script]).status().unwrap().success(),
            "{name}"
        );
        let first = std::fs::read_to_string(&key).unwrap();
        match name {
            "rsa-pkcs1" => assert!(first.contains("BEGIN RSA PRIVATE KEY"), "{first}"),
            "ec-sec1" => assert!(first.contains("BEGIN EC PRIVATE KEY"), "{first}"),
            _ => assert!(first.contains("BEGIN PRIVATE KEY"), "{first}"),
        }
        let server = Server::start(&[
            "--ssl",
            &format!("--sslcert={cert}"),
            &format!("--sslkey={key}"),
            "cat",
        ])
        .await;
        let probe = tokio::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &server.addr.to_string(),
                "-servername",
                "localhost",
                "-alpn",
                "h2,http/1.1",
            ])
            .stdin(std::process::Stdio::null())
            .output();
        let out = within(STEP, probe).await.unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("New, TLSv1.3, Cipher is "), "{name}: {text}");
        // ALPN: HTTP/1.1 is chosen even when h2 is offered first.
        assert!(text.contains("ALPN protocol: http/1.1"), "{name}: {text}");
    }
}

#[tokio::test]
async fn redirport_sends_plain_http_to_https() {
    let redir = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_dir, _pki, server) = tls_server(&[&format!("--redirport={redir}"), "cat"]).await;
    let resp = raw_http(
        std::net::SocketAddr::from(([127, 0, 0, 1], redir)),
        &format!("GET /a?b=1 HTTP/1.1\r\nHost: localhost:{redir}\r\n\r\n"),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 301"), "{resp}");
    assert!(
        resp.contains(&format!("\r\nLocation: https://localhost:{}/a?b=1\r\n", server.addr.port())),
        "{resp}"
    );
}

#[tokio::test]
async fn a_certificate_chain_with_an_intermediate_is_served_whole() {
    let dir = TempDir::new();
    let root_key = KeyPair::generate().unwrap();
    let mut root_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root_params.distinguished_name.push(DnType::CommonName, "root");
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let mid_key = KeyPair::generate().unwrap();
    let mut mid_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    mid_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    mid_params.distinguished_name.push(DnType::CommonName, "intermediate");
    let mid = mid_params.signed_by(&mid_key, &root_issuer).unwrap();
    let mid_issuer = Issuer::new(mid_params, mid_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &mid_issuer)
        .unwrap();
    // The file holds the leaf, then the intermediate; the client trusts only the root.
    let pki = Pki {
        ca_pem: root.pem(),
        ca: dir.path("root.pem"),
        cert: dir.path("chain.pem"),
        key: dir.path("leaf.key"),
    };
    std::fs::write(&pki.cert, leaf.pem() + &mid.pem()).unwrap();
    std::fs::write(&pki.key, leaf_key.serialize_pem()).unwrap();
    let ssl = ssl_args(&pki);
    let server = Server::start(&[&ssl[0], &ssl[1], &ssl[2], "cat"]).await;
    echo(&mut wss(&server, &pki, "/").await, "through the chain").await;
    // Control: the leaf alone does not verify against the root.
    std::fs::write(&pki.cert, leaf.pem()).unwrap();
    let alone = Server::start(&[&ssl[0], &ssl[1], &ssl[2], "cat"]).await;
    assert!(try_wss(&alone, &pki.ca_pem, "/").await.is_err());
}

#[tokio::test]
async fn a_shared_program_over_mtls_sees_https_but_no_clients_certificate() {
    let dir = TempDir::new();
    let shared = ["--broadcast", "--replay=100", "sh", "-c", "env; echo END; cat"];
    let (pki, server, client_cert, client_key) = mtls_server(&dir, &shared).await;
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut ws = mtls(&server, &pki, Some((&client_cert, &client_key)))
            .await
            .expect("a signed client is accepted");
        let mut env = Vec::new();
        loop {
            let line = match within(STEP, futures_util::StreamExt::next(&mut ws)).await {
                Some(Ok(Message::Text(t))) => t.to_string(),
                other => panic!("{other:?}"),
            };
            if line == "END" {
                break;
            }
            env.push(line);
        }
        assert!(env.contains(&"HTTPS=on".to_owned()), "{env:?}");
        assert!(!env.iter().any(|l| l.starts_with("SSL_CLIENT_")), "{env:?}");
        clients.push((ws, env));
    }
    assert_eq!(clients[0].1, clients[1].1, "the second client joined the same program");
    let started = server.logs().iter().filter(|l| l.contains("Started shared program")).count();
    assert_eq!(started, 1);
}
