//! The README's commands, run as written. Each is taken out of README.md by the marker line
//! `<!-- readme: NAME -->` above its code block. Only what cannot be the same here is
//! substituted (a free port on 127.0.0.1 for the README's port, temp directories for its
//! paths, the clone's absolute path for `examples/`), and every substitution must find what
//! it replaces: a README that changes into something else fails here instead of going
//! untested. `.ci/run` takes the test command out of the README the same way and runs it.
//!
//! The "Try it" and install commands build the release binary with cargo, which takes minutes
//! on a fresh machine, so those two are `#[ignore]`d here and run by `.ci/run` (after the
//! Autobahn step has built the release binary); the same "Try it" arguments also run here
//! against the binary under test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_tungstenite::tungstenite::Message;
use websocketd_tests::*;

/// How long a cargo command of the README may take (a release build on 2 cores).
const CARGO_LIMIT: Duration = Duration::from_secs(20 * 60);

/// The clone's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("the clone's root")
}

/// The text of the code block under `<!-- readme: NAME -->`.
fn block(name: &str) -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let marker = format!("<!-- readme: {name} -->");
    let mut lines = readme.lines().skip_while(|l| l.trim() != marker).skip(1);
    let fence = lines.next().unwrap_or_else(|| panic!("README.md has no {marker}"));
    assert!(fence.starts_with("```"), "{marker} is not followed by a code block: {fence:?}");
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    assert!(!body.is_empty(), "the code block under {marker} is empty");
    body.join("\n")
}

/// The commands of a block, as words: lines continued with `\` joined, comments and blank
/// lines left out. A command that needs a shell (quotes, `$`, pipes, `&&`) cannot be run as
/// words and fails the test, unless it is listed in `shell` as allowed to be skipped.
fn commands(block: &str) -> Vec<Vec<String>> {
    let joined = block.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        assert!(
            !line.contains(['"', '\'', '$', '|', ';', '<', '>', '(', '`', '*', '?', '&']),
            "a README command this test cannot run without a shell: {line}"
        );
        out.push(line.split_whitespace().map(str::to_owned).collect());
    }
    out
}

/// The block's one command.
fn command(name: &str) -> Vec<String> {
    let mut all = commands(&block(name));
    assert_eq!(all.len(), 1, "the {name} block should hold one command: {all:?}");
    all.remove(0)
}

/// Replaces the one word `from` of `words` by `to` (one word or several).
fn substitute(words: &mut Vec<String>, from: &str, to: &[&str]) {
    let at: Vec<usize> =
        words.iter().enumerate().filter(|(_, w)| *w == from).map(|(i, _)| i).collect();
    assert_eq!(at.len(), 1, "expected {from:?} once in {words:?}");
    words.splice(at[0]..=at[0], to.iter().map(|w| (*w).to_owned()));
}

/// Replaces the README's `--port=N` by a free port on 127.0.0.1, which the start-up line
/// names (the harness reads it from there).
fn listen_locally(words: &mut Vec<String>, port: u16) {
    substitute(words, &format!("--port={port}"), &["--address=127.0.0.1", "--port=0"]);
}

/// The absolute path of the clone's `examples/NAME`, for a README command run elsewhere.
fn example(words: &mut Vec<String>, name: &str) {
    let absolute = repo().join(name).to_string_lossy().into_owned();
    substitute(words, name, &[&absolute]);
}

/// What the README promises of `examples/count.sh` behind `server`: `1` … `10`, then Close
/// 1000; and the console page at `/`.
async fn counts_to_ten(server: &Server) {
    let page = raw_http(server.addr, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<title>websocketd console</title>"), "{page}");
    let mut ws = server.connect("/").await;
    let (code, reason, data) = recv_close(&mut ws).await;
    let want: Vec<Message> = (1..=10).map(|n| Message::text(n.to_string())).collect();
    assert_eq!(data, want);
    assert_eq!((code, reason.as_str()), (1000, ""));
}

#[tokio::test]
#[ignore = "builds the release binary with `cargo run`; .ci/run runs it"]
async fn the_try_it_command_runs_as_written() {
    let mut words = command("try");
    assert_eq!(words[0], "cargo", "{words:?}");
    listen_locally(&mut words, 8080);
    let mut cmd = tokio::process::Command::new(&words[0]);
    cmd.args(&words[1..]).current_dir(repo());
    let server = within(CARGO_LIMIT, Server::launch_within(cmd, CARGO_LIMIT)).await;
    counts_to_ten(&server).await;
}

#[tokio::test]
async fn the_try_it_arguments_work_with_the_binary_under_test() {
    let mut words = command("try");
    let at = words.iter().position(|w| w == "--").expect("cargo run's `--`");
    let mut args = words.split_off(at + 1);
    listen_locally(&mut args, 8080);
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(&args).current_dir(repo());
    counts_to_ten(&Server::launch(cmd).await).await;
}

#[tokio::test]
#[ignore = "builds the release binary with `cargo install`; .ci/run runs it"]
async fn the_install_command_installs_a_working_binary() {
    let words = command("install");
    assert_eq!(&words[..2], ["cargo", "install"], "{words:?}");
    let root = TempDir::new();
    let mut cmd = tokio::process::Command::new(&words[0]);
    // Installed in a temp root, and built in the clone's target directory, where the release
    // build already is.
    cmd.args(&words[1..])
        .arg("--root")
        .arg(&root.0)
        .env("CARGO_TARGET_DIR", repo().join("target"))
        .current_dir(repo())
        .kill_on_drop(true);
    let status = within(CARGO_LIMIT, cmd.status()).await.expect("run cargo install");
    assert!(status.success(), "{words:?}: {status}");
    let installed = root.0.join("bin").join("websocketd");
    let out = std::process::Command::new(&installed).arg("--version").output().expect("run it");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && version.starts_with("websocketd "), "{version}");
}

#[tokio::test]
async fn the_dir_recipe_runs_as_written() {
    let mut words = command("dir");
    assert_eq!(words[0], "websocketd", "{words:?}");
    listen_locally(&mut words, 8080);
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(&words[1..]).current_dir(repo());
    let server = Server::launch(cmd).await;
    let mut greeter = server.connect("/greeter.sh").await;
    send_text(&mut greeter, "you").await;
    assert_eq!(recv_text(&mut greeter).await, "Hello, you!");
    assert_eq!(recv_text(&mut server.connect("/count.sh").await).await, "1");
    let mut calc = server.connect("/calc.py").await;
    assert_eq!(recv_text(&mut calc).await, "send an expression, e.g. 6*7");
    send_text(&mut calc, "6*7").await;
    assert_eq!(recv_text(&mut calc).await, "42");
    // Arithmetic only, never Python: the input comes from the network.
    send_text(&mut calc, "__import__('os').getpid()").await;
    assert!(recv_text(&mut calc).await.starts_with("error: "));
    let env = recv_text(&mut server.connect("/env.sh").await).await;
    assert!(env.starts_with("You are 127.0.0.1:"), "{env}");
    let console =
        raw_http(server.addr, "GET /greeter.sh HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(console.contains("<title>websocketd console</title>"), "{console}");
    let missing = raw_http(
        server.addr,
        "GET /missing.sh HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

/// openssl, which the TLS recipe runs (a missing one fails on CI).
fn openssl() -> Option<PathBuf> {
    let found = find_program("openssl", &[]);
    if found.is_none() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "openssl is missing on CI");
        eprintln!("note: no openssl here; skipping the TLS recipe");
    }
    found
}

/// Runs the TLS recipe's certificate command in `dir`, and returns the certificate (PEM) and
/// the recipe's server command.
async fn self_signed(dir: &TempDir) -> (String, Vec<String>) {
    let mut tls = commands(&block("tls"));
    assert_eq!(tls.len(), 2, "the TLS recipe: a certificate, then the server: {tls:?}");
    let server = tls.remove(1);
    let make = tls.remove(0);
    assert_eq!(make[0], "openssl", "{make:?}");
    let out = tokio::process::Command::new(&make[0])
        .args(&make[1..])
        .current_dir(&dir.0)
        .stdin(std::process::Stdio::null())
        .output();
    let out = within(STEP, out).await.expect("run openssl");
    assert!(out.status.success(), "{make:?}: {}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.0.join("key.pem").is_file(), "the recipe names key.pem: {make:?}");
    let cert = std::fs::read_to_string(dir.0.join("cert.pem")).expect("the recipe makes cert.pem");
    (cert, server)
}

#[tokio::test]
async fn the_tls_recipe_runs_as_written() {
    let Some(openssl) = openssl() else { return };
    let dir = TempDir::new();
    let (cert, mut words) = self_signed(&dir).await;
    assert_eq!(words[0], "websocketd", "{words:?}");
    listen_locally(&mut words, 8443);
    example(&mut words, "examples/greeter.sh");
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(&words[1..]).current_dir(&dir.0);
    let server = Server::launch(cmd).await;
    server.wait_log(|l| l.contains("| Starting WebSocket server   : wss://127.0.0.1:")).await;
    // A client that trusts that certificate, as a browser told to accept it does.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    let mut ws = wss_over(tcp, Trust::Exactly(&cert), server.addr.port(), "/").await.expect("wss");
    send_text(&mut ws, "tls").await;
    assert_eq!(recv_text(&mut ws).await, "Hello, tls!");
    // And a client that checks certificates, given cert.pem as the one to trust (as the
    // README says), for the name localhost.
    let probe = tokio::process::Command::new(openssl)
        .args(["s_client", "-connect", &server.addr.to_string(), "-servername", "localhost"])
        .args(["-CAfile", "cert.pem", "-verify_hostname", "localhost", "-verify_return_error"])
        .current_dir(&dir.0)
        .stdin(std::process::Stdio::null())
        .output();
    let out = within(STEP, probe).await.expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
}

#[tokio::test]
async fn the_nginx_recipe_runs_as_written() {
    if openssl().is_none() {
        return;
    }
    let sockets = TempDir::new();
    let sockets_dir = format!("{}/", sockets.0.display());
    // The commands: make the socket directory, then the server.
    let run = block("nginx-run");
    assert!(run.contains("mkdir -p /run/websocketd"), "the recipe makes the socket's directory");
    let line = run.lines().find(|l| l.starts_with("websocketd ")).expect("the server command");
    let mut words = commands(line).remove(0);
    let unix = words.iter().find(|w| w.starts_with("--unixsocket=/run/websocketd/")).cloned();
    let unix = unix.expect("--unixsocket in /run/websocketd/");
    let moved = unix.replace("/run/websocketd/", &sockets_dir);
    substitute(&mut words, &unix, &[&moved]);
    example(&mut words, "examples/env.sh");
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(&words[1..]).current_dir(repo());
    let _server = Server::launch(cmd).await;

    // nginx's configuration, with its port, the socket's directory and the certificate's
    // directory moved here; the certificate is the TLS recipe's.
    let certs = TempDir::new();
    let (cert, _) = self_signed(&certs).await;
    let mut conf = block("nginx-conf");
    for (from, to) in [
        ("listen 443 ssl;", "listen 127.0.0.1:@PORT@ ssl;".to_owned()),
        ("/run/websocketd/", sockets_dir.clone()),
        ("/etc/ssl/websocketd/", format!("{}/", certs.0.display())),
    ] {
        assert!(conf.contains(from), "the nginx recipe has {from:?}");
        conf = conf.replace(from, &to);
    }
    let Some(nginx) = Nginx::start_with(&conf).await else { return };

    // A client from an address of its own, over TLS to nginx.
    let tcp = tcp_from("127.0.0.2".parse().unwrap(), nginx.addr).await;
    let port = nginx.addr.port();
    let ws = wss_over(tcp, Trust::Exactly(&cert), port, "/chat?room=1").await;
    let mut ws = ws.unwrap_or_else(|e| panic!("wss through nginx: {e}\n{}", nginx.error_log()));
    let (code, _, data) = recv_close(&mut ws).await;
    assert_eq!(code, 1000, "{}", nginx.error_log());
    let lines = texts(data);
    assert!(lines[0].starts_with("You are 127.0.0.2:"), "{lines:?}");
    assert!(lines[0].ends_with(" asking for /chat?room=1"), "{lines:?}");
    for var in [
        "REMOTE_ADDR=127.0.0.2".to_owned(),
        "HTTPS=on".to_owned(),
        "SERVER_NAME=localhost".to_owned(),
        // The port the client used: nginx's, through `Host $http_host`.
        format!("SERVER_PORT={port}"),
    ] {
        assert!(lines.contains(&var), "{var} is missing: {lines:?}");
    }
}

#[tokio::test]
async fn the_resume_recipe_takes_a_dropped_session_back() {
    let mut words = command("resume-run");
    assert_eq!(words[0], "websocketd", "{words:?}");
    listen_locally(&mut words, 8080);
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(&words[1..]).current_dir(repo());
    let server = Server::launch(cmd).await;
    let token = "the-readme-recipe-0123456789";
    let mut ws = server.connect(&format!("/?wsd_session={token}&wsd_seen=0")).await;
    assert_eq!(recv_text(&mut ws).await, "1");
    abort(ws);
    server.wait_log(|l| l.contains("exit:'detached'")).await;
    let mut ws = server.connect(&format!("/?wsd_session={token}&wsd_seen=1")).await;
    let (code, reason, data) = recv_close(&mut ws).await;
    let want: Vec<String> = (2..=10).map(|n| n.to_string()).collect();
    assert_eq!(texts(data), want);
    assert_eq!((code, reason.as_str()), (1000, ""));
}

#[tokio::test]
async fn the_readme_client_comes_back_after_dropped_connections_in_a_real_browser() {
    let Some((_chromium, mut page)) = browser().await else { return };
    let counter = "i=1; while [ $i -le 300 ]; do echo $i; i=$((i+1)); sleep 0.01; done";
    let server = Server::start(&["--resumems=10000", "sh", "-c", counter]).await;
    // Between the browser and the server, a network that the test takes away.
    let proxy = CutProxy::start(server.addr).await;
    let client = block("resume-client");
    let start = format!(
        "{client}
         window.got = []; window.code = null;
         window.session = resumable('ws://{}/', (m) => got.push(m), (e) => window.code = e.code);
         true",
        proxy.addr
    );
    assert_eq!(page.eval(&start).await, true, "the README's client does not run");
    for round in 1..=5 {
        // Connected (again), and some messages further: the network goes.
        server.wait_log_count(round, |l| l.contains("| CONNECT")).await;
        page.until(&format!("got.length >= {}", round * 40)).await;
        proxy.cut();
    }
    page.until("window.code !== null").await;
    assert_eq!(page.eval("window.code").await, 1000);
    let got: Vec<String> = serde_json::from_value(page.eval("got").await).expect("strings");
    let want: Vec<String> = (1..=300).map(|i| i.to_string()).collect();
    assert_eq!(got, want, "every message once, in order");
    let logs = server.logs();
    assert_eq!(logs.iter().filter(|l| l.contains("Resumed session")).count(), 5, "{logs:#?}");
}
