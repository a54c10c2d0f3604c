//! Access control on the real binary: Basic auth from a file Apache's own `htpasswd -B` made,
//! bearer tokens, forward auth against a small auth service of the test's, the user a trusted
//! proxy names, limits per client address (clients from 127.0.0.2 and 127.0.0.3), and the
//! session time limits. Every refusal comes before any program starts.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use websocketd_tests::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// An upgrade request for `path` with `headers`, as bytes.
fn upgrade(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// `Basic base64(name:password)`.
fn basic(name: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
    format!("Basic {encoded}")
}

/// The status and head of the answer to an upgrade request from `from`.
async fn status_from(
    from: IpAddr,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    match exchange_from(from, addr, &upgrade(path, headers)).await.0 {
        Answer::Upgraded(_) => (101, String::new()),
        Answer::Refused { status, head, body, .. } => {
            // Header names as lowercase, for matching; the body as it is.
            (status, format!("{}{}", head.to_ascii_lowercase(), String::from_utf8_lossy(&body)))
        }
    }
}

async fn status(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    status_from(ip("127.0.0.1"), addr, path, headers).await
}

/// The environment `env.sh` printed for a session from `from` with `headers`.
async fn session_env(
    from: IpAddr,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Vec<(String, String)> {
    child_env(&mut connect_from(from, addr, path, headers).await).await
}

/// Apache's `htpasswd`: `None` when it is not installed, which fails the test on CI.
fn htpasswd() -> Option<std::path::PathBuf> {
    let found = find_program("htpasswd", &["/usr/bin/htpasswd"]);
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "htpasswd (apache2-utils) is missing on CI"
        );
        eprintln!("note: no htpasswd here; skipping");
    }
    found
}

/// Runs `htpasswd ARGS`, which must succeed.
fn run_htpasswd(tool: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new(tool).args(args).output().expect("run htpasswd");
    assert!(out.status.success(), "htpasswd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A file with alice (s3cret) and bob (hunter2), bcrypt as `htpasswd -B` writes it.
fn users(dir: &TempDir) -> Option<(std::path::PathBuf, String)> {
    let tool = htpasswd()?;
    let file = dir.path("users");
    run_htpasswd(&tool, &["-B", "-c", "-b", &file, "alice", "s3cret"]);
    run_htpasswd(&tool, &["-B", "-b", &file, "bob", "hunter2"]);
    Some((tool, file))
}

#[tokio::test]
async fn basic_auth_lets_in_the_right_password_and_nothing_else() {
    let dir = TempDir::new();
    let Some((_, file)) = users(&dir) else { return };
    let server = Server::start(&[&format!("--htpasswd={file}"), &fixture("env.sh")]).await;
    let (code, head) = status(server.addr, "/", &[]).await;
    assert_eq!(code, 401, "{head}");
    assert!(
        head.contains("www-authenticate: basic realm=\"websocketd\", charset=\"utf-8\""),
        "{head}"
    );
    for (auth, want) in [
        (basic("alice", "wrong"), 401),
        (basic("carol", "s3cret"), 401),
        (basic("alice", ""), 401),
        ("Basic !!!not-base64".to_owned(), 400),
        (format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("nocolon")), 400),
    ] {
        let (code, head) = status(server.addr, "/", &[("Authorization", &auth)]).await;
        assert_eq!(code, want, "{auth}: {head}");
    }
    assert!(server.logs().iter().all(|l| !l.contains("CONNECT")), "no program may start");
    server.wait_log(|l| l.contains("UNAUTHORIZED: wrong password for user 'alice'")).await;
    server.wait_log(|l| l.contains("UNAUTHORIZED: no user 'carol'")).await;
    server.wait_log(|l| l.contains("BAD REQUEST: malformed Basic credentials")).await;
    let env = session_env(
        ip("127.0.0.1"),
        server.addr,
        "/",
        &[("Authorization", &basic("alice", "s3cret"))],
    )
    .await;
    assert_eq!(var(&env, "REMOTE_USER"), Some("alice"));
    assert_eq!(var(&env, "AUTH_TYPE"), Some("Basic"));
    assert_eq!(var(&env, "HTTP_AUTHORIZATION"), None, "the password stays out of the program");
    server.wait_log(|l| l.contains("user:'alice'") && l.contains("CONNECT")).await;
    let env = session_env(
        ip("127.0.0.1"),
        server.addr,
        "/",
        &[("Authorization", &basic("bob", "hunter2"))],
    )
    .await;
    assert_eq!(var(&env, "REMOTE_USER"), Some("bob"));
}

#[tokio::test]
async fn plain_http_is_checked_too_and_cgi_scripts_learn_the_user() {
    let dir = TempDir::new();
    let Some((_, file)) = users(&dir) else { return };
    let cgi = dir.path("cgi");
    std::fs::create_dir(&cgi).unwrap();
    let script = format!("{cgi}/who");
    std::fs::write(&script, "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s %s\\n' \"$REMOTE_USER\" \"$AUTH_TYPE\"\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&script).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let server = Server::start(&[&format!("--htpasswd={file}"), &format!("--cgidir={cgi}")]).await;
    let get = |auth: Option<String>| {
        let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        format!("GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n")
    };
    let denied = raw_http(server.addr, &get(None)).await;
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let denied = raw_http(server.addr, &get(Some(basic("alice", "nope")))).await;
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let served = raw_http(server.addr, &get(Some(basic("alice", "s3cret")))).await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert!(served.contains("\r\nalice Basic\n"), "{served}");
}

#[tokio::test]
async fn hash_kinds_other_than_bcrypt_are_refused_at_start_up_naming_the_line() {
    let dir = TempDir::new();
    let Some((tool, file)) = users(&dir) else { return };
    run_htpasswd(&tool, &["-m", "-b", &file, "carol", "md5"]);
    let out = std::process::Command::new(binary())
        .args([&format!("--htpasswd={file}"), "cat"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("line 3") && text.contains("'carol'") && text.contains("Apache MD5"),
        "{text}"
    );
    let missing = std::process::Command::new(binary())
        .args([&format!("--htpasswd={}", dir.path("nothing")), "cat"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read --htpasswd file"));
}

#[tokio::test]
async fn the_htpasswd_file_is_read_again_on_sighup_and_a_broken_one_keeps_the_old() {
    let dir = TempDir::new();
    let Some((tool, file)) = users(&dir) else { return };
    let server = Server::start(&[&format!("--htpasswd={file}"), "cat"]).await;
    let old = basic("alice", "s3cret");
    assert_eq!(status(server.addr, "/", &[("Authorization", &old)]).await.0, 101);
    run_htpasswd(&tool, &["-B", "-b", &file, "alice", "changed"]);
    server.signal(Signal::SIGHUP);
    server.wait_log(|l| l.contains("Reloaded --htpasswd") && l.contains("2 users")).await;
    // The old password was remembered as right: a reload forgets that.
    assert_eq!(status(server.addr, "/", &[("Authorization", &old)]).await.0, 401);
    let new = basic("alice", "changed");
    assert_eq!(status(server.addr, "/", &[("Authorization", &new)]).await.0, 101);
    std::fs::write(&file, "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
    server.signal(Signal::SIGHUP);
    server
        .wait_log(|l| {
            l.contains("Could not reload, keeping the old contents") && l.contains("SHA-1")
        })
        .await;
    assert_eq!(status(server.addr, "/", &[("Authorization", &new)]).await.0, 101);
}

const TOKEN: &str = "tok_7Q2v9Xk3Lm8Pz4Rw";
const OTHER: &str = "tok_other_0123456789";

#[tokio::test]
async fn tokens_come_from_the_header_the_query_or_the_cookie_and_are_never_passed_on() {
    let dir = TempDir::new();
    let tokens = dir.path("tokens");
    std::fs::write(&tokens, format!("# who may connect\n{TOKEN} dashboard\n{OTHER}\n")).unwrap();
    let server = Server::start(&[&format!("--tokens={tokens}"), &fixture("env.sh")]).await;
    let (code, head) = status(server.addr, "/", &[]).await;
    assert_eq!(code, 401);
    assert!(head.contains("www-authenticate: bearer realm=\"websocketd\""), "{head}");
    let (code, _) = status(server.addr, "/?wsd_token=tok_wrong_0123456789", &[]).await;
    assert_eq!(code, 401);
    server.wait_log(|l| l.contains("UNAUTHORIZED: unknown token")).await;
    let from = ip("127.0.0.1");
    let env =
        session_env(from, server.addr, &format!("/feed?a=1&wsd_token={TOKEN}&b=2"), &[]).await;
    assert_eq!(var(&env, "REMOTE_USER"), Some("dashboard"));
    assert_eq!(var(&env, "AUTH_TYPE"), Some("Bearer"));
    assert_eq!(var(&env, "QUERY_STRING"), Some("a=1&b=2"));
    assert_eq!(var(&env, "REQUEST_URI"), Some("/feed?a=1&b=2"));
    let bearer = format!("Bearer {OTHER}");
    let env = session_env(from, server.addr, "/", &[("Authorization", &bearer)]).await;
    assert_eq!(var(&env, "REMOTE_USER"), Some(""), "a token without a name");
    assert_eq!(var(&env, "AUTH_TYPE"), Some("Bearer"));
    assert_eq!(var(&env, "HTTP_AUTHORIZATION"), None);
    let cookie = format!("theme=dark; wsd_token={TOKEN}");
    let cookie_env = session_env(from, server.addr, "/", &[("Cookie", &cookie)]).await;
    assert_eq!(var(&cookie_env, "REMOTE_USER"), Some("dashboard"));
    assert_eq!(var(&cookie_env, "HTTP_COOKIE"), Some("theme=dark"));
    server.wait_log_count(3, |l| l.contains("DISCONNECT")).await;
    for (k, v) in env.iter().chain(&cookie_env) {
        assert!(!v.contains("tok_") && !k.contains("tok_"), "a token reached the program: {k}={v}");
    }
    let logs = server.logs().join("\n");
    assert!(!logs.contains("tok_"), "a token reached the log:\n{logs}");
    assert!(logs.contains("/feed?a=1&b=2' id:"), "{logs}");
    // Reloaded on SIGHUP: the named token goes.
    std::fs::write(&tokens, format!("{OTHER}\n")).unwrap();
    server.signal(Signal::SIGHUP);
    server.wait_log(|l| l.contains("Reloaded --tokens") && l.contains("1 tokens")).await;
    let (code, _) = status(server.addr, &format!("/?wsd_token={TOKEN}"), &[]).await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn short_tokens_are_refused_at_start_up() {
    let dir = TempDir::new();
    let tokens = dir.path("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\nshort name\n")).unwrap();
    let out = std::process::Command::new(binary())
        .args([&format!("--tokens={tokens}"), "cat"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("line 2") && text.contains("at least 16"), "{text}");
}

/// A small forward-auth service: it answers by the request's `X-Test` header and keeps every
/// request head it was sent.
struct AuthService {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl AuthService {
    async fn start() -> AuthService {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    seen.lock().unwrap().push(head.clone());
                    let test = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("x-test: ").map(str::to_owned)
                        })
                        .unwrap_or_default();
                    let answer = match test.trim() {
                        "allow" => "HTTP/1.1 200 OK\r\nRemote-User: carol\r\nContent-Length: 0\r\n\r\n".to_owned(),
                        "forbid" => "HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno\n".to_owned(),
                        "broken" => "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".to_owned(),
                        "slow" => {
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned()
                        }
                        _ => "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"sso\"\r\n\
                              Content-Type: text/plain\r\nContent-Length: 10\r\n\r\nlog in at\n"
                            .to_owned(),
                    };
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        AuthService { addr, heads }
    }

    fn last(&self) -> String {
        self.heads.lock().unwrap().last().cloned().unwrap_or_default()
    }
}

#[tokio::test]
async fn forward_auth_allows_denies_and_fails_closed() {
    let auth = AuthService::start().await;
    let url = format!("--authurl=http://{}/verify", auth.addr);
    let server = Server::start(&[&url, "--authtimeoutms=300", &fixture("env.sh")]).await;
    let env = session_env(
        ip("127.0.0.2"),
        server.addr,
        "/app?x=1",
        &[("X-Test", "allow"), ("X-Forwarded-For", "203.0.113.9")],
    )
    .await;
    assert_eq!(var(&env, "REMOTE_USER"), Some("carol"));
    assert_eq!(var(&env, "AUTH_TYPE"), Some("Forward"));
    let head = auth.last().to_ascii_lowercase();
    assert!(head.starts_with("get /verify http/1.1\r\n"), "{head}");
    let url = format!("x-original-url: http://{}/app?x=1", server.addr);
    for line in [
        "x-forwarded-uri: /app?x=1",
        "x-forwarded-method: get",
        "x-forwarded-proto: http",
        "x-forwarded-for: 127.0.0.2",
        &url,
        "x-test: allow",
        "sec-websocket-version: 13",
    ] {
        assert!(head.contains(line), "{line} missing from\n{head}");
    }
    assert!(!head.contains("203.0.113.9"), "a client's own forwarding header is replaced");
    assert!(!head.contains("upgrade: websocket"), "hop-by-hop headers stay out");
    let (code, answer) = status(server.addr, "/", &[("X-Test", "deny")]).await;
    assert_eq!(code, 401);
    assert!(
        answer.contains("www-authenticate: bearer realm=\"sso\"")
            && answer.ends_with("log in at\n"),
        "{answer}"
    );
    assert_eq!(status(server.addr, "/", &[("X-Test", "forbid")]).await.0, 403);
    assert_eq!(status(server.addr, "/", &[("X-Test", "broken")]).await.0, 503);
    let (code, answer) = status(server.addr, "/", &[("X-Test", "slow")]).await;
    assert_eq!(code, 503);
    assert!(answer.contains("retry-after: 1"), "{answer}");
    server.wait_log(|l| l.contains("Auth service failed: no answer within 300 ms")).await;
    server.wait_log(|l| l.contains("Auth service failed: it answered 500")).await;
    assert_eq!(server.logs().iter().filter(|l| l.ends_with("| CONNECT")).count(), 1);
}

#[tokio::test]
async fn forward_auth_that_is_down_or_on_a_unix_socket() {
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = Server::start(&[&format!("--authurl=http://{down}/"), "cat"]).await;
    assert_eq!(status(server.addr, "/", &[]).await.0, 503);
    server.wait_log(|l| l.contains("Auth service failed: cannot connect")).await;
    let dir = TempDir::new();
    let sock = dir.path("auth.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut chunk = [0u8; 4096];
            let _ = stream.read(&mut chunk).await;
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nRemote-User: dave\r\n\r\n").await;
        }
    });
    let url = format!("--authurl=http://unix:{sock}:/check");
    let server = Server::start(&[&url, &fixture("env.sh")]).await;
    let env = session_env(ip("127.0.0.1"), server.addr, "/", &[]).await;
    assert_eq!(var(&env, "REMOTE_USER"), Some("dave"));
}

#[tokio::test]
async fn forward_auth_behind_nginx_sees_the_real_client() {
    let auth = AuthService::start().await;
    let dir = TempDir::new();
    let sock = dir.path("ws.sock");
    let url = format!("--authurl=http://{}/verify", auth.addr);
    let _server =
        Server::start_unix(&sock, &["--trustedproxy=unix", &url, &fixture("env.sh")]).await;
    let Some(nginx) = Nginx::start(&[&sock]).await else { return };
    let env = session_env(ip("127.0.0.2"), nginx.addr, "/through", &[("X-Test", "allow")]).await;
    assert_eq!(var(&env, "REMOTE_USER"), Some("carol"), "{}", nginx.error_log());
    assert_eq!(var(&env, "REMOTE_ADDR"), Some("127.0.0.2"));
    let head = auth.last().to_ascii_lowercase();
    assert!(
        head.contains("x-forwarded-for: 127.0.0.2\r\n")
            && head.contains("x-forwarded-uri: /through"),
        "{head}"
    );
    let (code, _) = status_from(ip("127.0.0.2"), nginx.addr, "/", &[("X-Test", "deny")]).await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn a_trusted_proxy_names_the_user_and_nobody_else_can() {
    let server = Server::start(&[
        "--trustedproxy=127.0.0.1",
        "--remoteuserheader=X-Remote-User",
        &fixture("env.sh"),
    ])
    .await;
    let env = session_env(ip("127.0.0.1"), server.addr, "/", &[("X-Remote-User", "erin")]).await;
    assert_eq!(var(&env, "REMOTE_USER"), Some("erin"));
    assert_eq!(var(&env, "AUTH_TYPE"), Some("Proxy"));
    assert_eq!(var(&env, "HTTP_X_REMOTE_USER"), None);
    let env = session_env(ip("127.0.0.2"), server.addr, "/", &[("X-Remote-User", "mallory")]).await;
    assert_eq!(var(&env, "REMOTE_USER"), Some(""));
    assert_eq!(var(&env, "HTTP_X_REMOTE_USER"), None, "an untrusted peer's header is taken out");
    let out = std::process::Command::new(binary())
        .args(["--remoteuserheader=X-Remote-User", "cat"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only applies with --trustedproxy"));
}

#[tokio::test]
async fn each_client_address_runs_at_most_maxforksperip_programs() {
    let server = Server::start(&["--maxforksperip=2", "--trustedproxy=127.0.0.1", "cat"]).await;
    let a = ip("127.0.0.2");
    let first = connect_from(a, server.addr, "/", &[]).await;
    let _second = connect_from(a, server.addr, "/", &[]).await;
    let (code, head) = status_from(a, server.addr, "/", &[]).await;
    assert_eq!(code, 429, "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    server.wait_log(|l| l.contains("Max of forks for client 127.0.0.2 already active")).await;
    // Another address has its own; so has a client a trusted proxy names.
    let _b = connect_from(ip("127.0.0.3"), server.addr, "/", &[]).await;
    let proxied = [("X-Forwarded-For", "198.51.100.7")];
    let _c = connect_from(ip("127.0.0.1"), server.addr, "/", &proxied).await;
    let _d = connect_from(ip("127.0.0.1"), server.addr, "/", &proxied).await;
    assert_eq!(status_from(ip("127.0.0.1"), server.addr, "/", &proxied).await.0, 429);
    // The slot is held for the program's life: it is free once the program has gone.
    drop(first);
    within(STEP, async {
        loop {
            if status_from(a, server.addr, "/", &[]).await.0 == 101 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn ratelimit_answers_429_with_retry_after_per_address() {
    let server = Server::start(&["--ratelimit=2/m", "cat"]).await;
    let a = ip("127.0.0.2");
    assert_eq!(status_from(a, server.addr, "/", &[]).await.0, 101);
    assert_eq!(status_from(a, server.addr, "/", &[]).await.0, 101);
    let (code, head) = status_from(a, server.addr, "/", &[]).await;
    assert_eq!(code, 429);
    assert!(head.contains("retry-after: 30"), "{head}");
    assert_eq!(status_from(ip("127.0.0.3"), server.addr, "/", &[]).await.0, 101);
    server.wait_log(|l| l.contains("TOO MANY REQUESTS: over --ratelimit")).await;
    let server = Server::start(&["--ratelimit=1/h", "--rateburst=3", "cat"]).await;
    for _ in 0..3 {
        assert_eq!(status_from(a, server.addr, "/", &[]).await.0, 101);
    }
    assert_eq!(status_from(a, server.addr, "/", &[]).await.0, 429);
}

#[tokio::test]
async fn an_idle_session_is_closed_and_its_program_laddered() {
    let server = Server::start(&["--idlems=400", "cat"]).await;
    let mut ws = server.connect("/").await;
    // Messages keep it open past the limit.
    for i in 0..6 {
        send_text(&mut ws, &format!("m{i}")).await;
        assert_eq!(recv_text(&mut ws).await, format!("m{i}"));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let (code, reason, _) = recv_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1001, "idle timeout"));
    server.wait_log(|l| l.contains("No message either way for 400 ms")).await;
    server.wait_no_children().await;
}

#[tokio::test]
async fn a_session_ends_at_maxsessionms_whatever_it_does() {
    let server = Server::start(&["--maxsessionms=500", "cat"]).await;
    let mut ws = server.connect("/").await;
    let started = std::time::Instant::now();
    let closed = within(STEP, async {
        let mut i = 0;
        loop {
            if ws
                .send(tokio_tungstenite::tungstenite::Message::text(format!("m{i}")))
                .await
                .is_err()
            {
                return None;
            }
            i += 1;
            match tokio::time::timeout(
                Duration::from_millis(100),
                futures_util::StreamExt::next(&mut ws),
            )
            .await
            {
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f))))) => {
                    return Some((u16::from(f.code), f.reason.to_string()));
                }
                Ok(Some(Ok(_))) | Err(_) => {}
                Ok(_) => return None,
            }
        }
    })
    .await;
    assert_eq!(closed, Some((1001, "session time limit".to_owned())));
    assert!(started.elapsed() >= Duration::from_millis(450), "{:?}", started.elapsed());
    server.wait_no_children().await;
}

use futures_util::SinkExt;

#[tokio::test]
async fn a_guessing_flood_leaves_a_valid_client_served() {
    let dir = TempDir::new();
    let Some((_, file)) = users(&dir) else { return };
    let server = Server::start(&[&format!("--htpasswd={file}"), "cat"]).await;
    let pid = server.pid();
    // utime and stime, in clock ticks: fields 14 and 15 of /proc/PID/stat.
    let cpu = move || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<u64> = after.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0)
    };
    let before = cpu();
    let addr = server.addr;
    let flood: Vec<_> = (0..400)
        .map(|i| {
            tokio::spawn(async move {
                let auth = basic("alice", &format!("guess{i}"));
                status_from(ip("127.0.0.1"), addr, "/", &[("Authorization", &auth)]).await.0
            })
        })
        .collect();
    // A client from elsewhere, with a password not checked before, is let in meanwhile.
    let valid = basic("bob", "hunter2");
    let (code, head) = status_from(ip("127.0.0.2"), addr, "/", &[("Authorization", &valid)]).await;
    assert_eq!(code, 101, "{head}");
    let mut seen = std::collections::BTreeMap::new();
    for guess in flood {
        *seen.entry(guess.await.unwrap()).or_insert(0) += 1;
    }
    assert!(seen.keys().all(|code| [401, 429].contains(code)), "{seen:?}");
    let ticks = cpu() - before;
    eprintln!("flood of 400 wrong passwords: answers {seen:?}, server CPU {ticks} ticks");
}

/// A page behind Basic auth opens its WebSocket: the browser sends the credentials it logged
/// in with on the handshake too, which the program's REMOTE_USER shows (the server sets it
/// only from that request's own Authorization header).
#[tokio::test]
async fn a_browser_that_logged_in_with_basic_auth_opens_its_websocket() {
    let dir = TempDir::new();
    let Some((_, file)) = users(&dir) else { return };
    let Some((_chromium, mut page)) = browser().await else { return };
    let site = dir.path("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(
        format!("{site}/index.html"),
        "<!doctype html><title></title><script>
         const ws = new WebSocket('ws://' + location.host + '/ws');
         ws.onmessage = e => { document.title = e.data; };
         ws.onclose = e => { if (!document.title) document.title = 'closed ' + e.code; };
         </script>",
    )
    .unwrap();
    let who = "echo \"user=$REMOTE_USER type=$AUTH_TYPE\"; exec cat";
    let server = Server::start(&[
        &format!("--htpasswd={file}"),
        &format!("--staticdir={site}"),
        "sh",
        "-c",
        who,
    ])
    .await;
    let url = format!("http://alice:s3cret@{}/index.html", server.addr);
    page.call("Page.navigate", serde_json::json!({ "url": url })).await;
    page.until("document.title !== ''").await;
    assert_eq!(page.eval("document.title").await, "user=alice type=Basic");
    server
        .wait_log(|l| l.contains("/ws'") && l.contains("user:'alice'") && l.ends_with("| CONNECT"))
        .await;
    // The page itself was let in the same way, and nothing came in without the credentials.
    server
        .wait_log(|l| {
            l.contains("/index.html'") && l.contains("user:'alice'") && l.ends_with("| STATIC")
        })
        .await;
}

#[tokio::test]
async fn with_broadcast_the_time_limits_apply_to_each_client_and_the_program_goes_on() {
    let server =
        Server::start(&["--broadcast", "--idlems=400", "sh", "-c", "cat > /dev/null; exit 0"])
            .await;
    let mut quiet = server.connect("/").await;
    let mut busy = server.connect("/").await;
    let started = std::time::Instant::now();
    let busy_side = async {
        // Its messages keep it, and only it, active.
        while started.elapsed() < Duration::from_millis(900) {
            send_text(&mut busy, "still here").await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (closed, ()) = tokio::join!(recv_close(&mut quiet), busy_side);
    assert_eq!((closed.0, closed.1.as_str()), (1001, "idle timeout"));
    assert!(server.live_children().len() == 1, "the shared program goes on");
    let (code, reason, _) = recv_close(&mut busy).await;
    assert_eq!((code, reason.as_str()), (1001, "idle timeout"), "once it is quiet too");
    let server = Server::start(&[
        "--broadcast",
        "--maxsessionms=600",
        "sh",
        "-c",
        "cat > /dev/null; exit 0",
    ])
    .await;
    let mut first = server.connect("/").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = server.connect("/").await;
    let joined = std::time::Instant::now();
    assert_eq!(recv_close(&mut first).await.1, "session time limit");
    assert_eq!(recv_close(&mut second).await.1, "session time limit");
    assert!(joined.elapsed() >= Duration::from_millis(550), "each client has its own clock");
}

#[tokio::test]
async fn a_resumable_session_ends_at_maxsessionms_across_its_connections() {
    let server = Server::start(&["--resumems=5000", "--maxsessionms=700", "cat"]).await;
    let token = "limits-0123456789abcdefghij";
    let mut ws = server.connect(&format!("/?wsd_session={token}")).await;
    let started = std::time::Instant::now();
    send_text(&mut ws, "one").await;
    assert_eq!(recv_text(&mut ws).await, "one");
    abort(ws);
    server.wait_log(|l| l.contains("exit:'detached'")).await;
    let mut ws = server.connect(&format!("/?wsd_session={token}&wsd_seen=1")).await;
    send_text(&mut ws, "two").await;
    assert_eq!(recv_text(&mut ws).await, "two");
    let (code, reason, _) = recv_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1001, "session time limit"));
    assert!(started.elapsed() >= Duration::from_millis(650), "{:?}", started.elapsed());
    server.wait_no_children().await;
}
