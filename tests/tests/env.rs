//! The child's environment: the CGI-style variables, the headers that become `HTTP_*` (and
//! the ones that must not), `--passenv`, `UNIQUE_ID`, and what the Host header decides.

use std::collections::{BTreeMap, BTreeSet};

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, connect_async_with_config};
use websocketd_tests::*;

/// What one run of the env fixture printed: every message, in order, and the close code.
#[derive(Debug)]
struct Dump {
    lines: Vec<String>,
    close: u16,
}

impl Dump {
    /// The variables as a map; panics on a message that is not a single `NAME=value` line or
    /// on a name seen twice.
    fn vars(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        for line in &self.lines {
            assert!(!line.contains(['\r', '\n']), "a message spans lines: {line:?}");
            let (name, value) =
                line.split_once('=').unwrap_or_else(|| panic!("not NAME=value: {line:?}"));
            assert!(is_var_name(name), "not a variable name in {line:?}");
            let old = vars.insert(name.to_owned(), value.to_owned());
            assert!(old.is_none(), "{name} printed twice");
        }
        vars
    }
}

fn is_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads every message up to the server's Close.
async fn dump(ws: &mut Ws) -> Dump {
    let (close, _, data) = recv_close(ws).await;
    Dump { lines: texts(data), close }
}

/// The client's request to `url` with `headers` appended (`Host` replaces the default one).
fn request(url: &str, headers: &[(&str, &str)]) -> Request {
    let mut req = url.into_client_request().expect("request");
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
        let value = HeaderValue::from_str(value).expect("header value");
        if name == "host" {
            req.headers_mut().insert(name, value);
        } else {
            req.headers_mut().append(name, value);
        }
    }
    req
}

/// Connects with a prepared request.
async fn connect_req(req: Request) -> Ws {
    let config = WebSocketConfig::default();
    let (ws, _) = within(STEP, connect_async_with_config(req, Some(config), false))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    ws
}

/// The client's own port on an open connection.
fn local_port(ws: &Ws) -> u16 {
    match ws.get_ref() {
        MaybeTlsStream::Plain(tcp) => tcp.local_addr().expect("local addr").port(),
        _ => panic!("expected a plain TCP connection"),
    }
}

/// Names `/bin/sh` adds on its own when started with an empty environment (`PWD` with dash).
fn shell_added() -> BTreeSet<String> {
    let out = std::process::Command::new("env")
        .args(["-i", "/bin/sh", "-c", "env"])
        .output()
        .expect("run env -i /bin/sh -c env");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_owned()))
        .collect()
}

/// Whether the test process has `name` set to something non-empty once trimmed (what the
/// server, which inherits our environment, would pass on).
fn passable(name: &str) -> Option<String> {
    let v = std::env::var(name).ok()?;
    let v = v.replace(['\r', '\n'], " ").trim().to_owned();
    (!v.is_empty()).then_some(v)
}

#[tokio::test]
async fn child_sees_exactly_the_cgi_variables_and_the_safe_request_headers() {
    let env_sh = fixture("env.sh");
    let server = Server::start(&[&env_sh]).await;
    let req = request(
        &server.url("/some/path?x=1&y=%20z"),
        &[
            ("Origin", "http://example.com"),
            ("Foo-Bar", "a"),
            ("Foo-Bar", "b"),
            ("Authorization", "Basic Zm9vOmJhcg=="),
            ("Content-Type", "text/plain"),
            ("Proxy", "http://evil:1234"),
            ("X_Forwarded_For", "5.6.7.8"),
            ("X-Forwarded-For", "1.2.3.4"),
        ],
    );
    let mut ws = connect_req(req).await;
    let client_port = local_port(&ws);
    let dump = dump(&mut ws).await;
    assert_eq!(dump.close, 1000, "env exits normally");
    let vars = dump.vars();

    let mut expected: BTreeSet<String> = [
        "AUTH_TYPE",
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "GATEWAY_INTERFACE",
        "HTTP_AUTHORIZATION",
        "HTTP_CONNECTION",
        "HTTP_CONTENT_TYPE",
        "HTTP_FOO_BAR",
        "HTTP_ORIGIN",
        "HTTP_SEC_WEBSOCKET_KEY",
        "HTTP_SEC_WEBSOCKET_VERSION",
        "HTTP_UPGRADE",
        "HTTP_X_FORWARDED_FOR",
        "PATH",
        "PATH_INFO",
        "PATH_TRANSLATED",
        "QUERY_STRING",
        "REMOTE_ADDR",
        "REMOTE_HOST",
        "REMOTE_IDENT",
        "REMOTE_PORT",
        "REMOTE_USER",
        "REQUEST_METHOD",
        "REQUEST_URI",
        "SCRIPT_NAME",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "SERVER_SOFTWARE",
        "UNIQUE_ID",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // The default --passenv is PATH,LD_LIBRARY_PATH; cargo may set the latter for tests.
    if passable("LD_LIBRARY_PATH").is_some() {
        expected.insert("LD_LIBRARY_PATH".to_owned());
    }
    // Whatever /bin/sh adds by itself (PWD) is the shell's doing, not the server's.
    let shell = shell_added();
    let got: BTreeSet<String> =
        vars.keys().filter(|k| !shell.contains(*k) || expected.contains(*k)).cloned().collect();
    assert_eq!(got, expected, "variable names (shell-added {shell:?} ignored)");

    let v = |name: &str| vars.get(name).map(String::as_str);
    assert_eq!(v("GATEWAY_INTERFACE"), Some("CGI/1.1"));
    assert_eq!(v("REMOTE_ADDR"), Some("127.0.0.1"));
    assert_eq!(v("REMOTE_HOST"), Some("127.0.0.1"));
    assert_eq!(v("REMOTE_PORT"), Some(client_port.to_string().as_str()));
    assert_eq!(v("SERVER_NAME"), Some("127.0.0.1"));
    assert_eq!(v("SERVER_PORT"), Some(server.addr.port().to_string().as_str()));
    assert_eq!(v("PATH_INFO"), Some("/some/path"));
    assert_eq!(v("PATH_TRANSLATED"), Some("/some/path"));
    assert_eq!(v("QUERY_STRING"), Some("x=1&y=%20z"));
    assert_eq!(v("REQUEST_URI"), Some("/some/path?x=1&y=%20z"));
    assert_eq!(v("SCRIPT_NAME"), Some("/"));
    assert_eq!(v("REQUEST_METHOD"), Some("GET"));
    assert_eq!(v("SERVER_PROTOCOL"), Some("HTTP/1.1"));
    let software = v("SERVER_SOFTWARE").unwrap_or_default();
    assert!(software.starts_with("websocketd/") && software.len() > 11, "{software:?}");
    for empty in ["AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "REMOTE_IDENT", "REMOTE_USER"] {
        assert_eq!(v(empty), Some(""), "{empty} is present and empty");
    }
    let unique = v("UNIQUE_ID").unwrap_or_default();
    assert!(!unique.is_empty() && unique.bytes().all(|b| b.is_ascii_digit()), "{unique:?}");
    assert_eq!(v("HTTP_ORIGIN"), Some("http://example.com"));
    assert_eq!(v("HTTP_FOO_BAR"), Some("a, b"));
    assert_eq!(v("HTTP_AUTHORIZATION"), Some("Basic Zm9vOmJhcg=="));
    assert_eq!(v("HTTP_CONTENT_TYPE"), Some("text/plain"));
    assert_eq!(v("HTTP_X_FORWARDED_FOR"), Some("1.2.3.4"), "the underscore header never counts");
    assert_eq!(v("HTTP_UPGRADE"), Some("websocket"));
    assert_eq!(v("HTTP_SEC_WEBSOCKET_VERSION"), Some("13"));
    assert_eq!(v("PATH"), passable("PATH").as_deref(), "default passenv passes PATH");
    for absent in ["HTTP_PROXY", "HTTP_HOST", "HTTPS"] {
        assert_eq!(v(absent), None, "{absent} must not be set");
    }
    assert!(
        dump.lines.iter().all(|l| !l.contains("evil") && !l.contains("5.6.7.8")),
        "a dropped header's value leaked: {:?}",
        dump.lines
    );
}

#[tokio::test]
async fn passenv_copies_only_listed_non_empty_variables_with_line_breaks_cleaned() {
    let env_sh = fixture("env.sh");
    let server = Server::start_with(
        &["--address=127.0.0.1", "--port=0"],
        &["--passenv=PATH,FOO,EMPTYV,MULTI", &env_sh],
        &[("FOO", "bar"), ("EMPTYV", ""), ("MULTI", " a\nb "), ("SECRET", "x")],
    )
    .await;
    let mut ws = server.connect("/").await;
    let dump = dump(&mut ws).await;
    assert_eq!(dump.close, 1000);
    let vars = dump.vars();
    assert_eq!(vars.get("FOO").map(String::as_str), Some("bar"));
    assert_eq!(vars.get("MULTI").map(String::as_str), Some("a b"));
    assert!(dump.lines.iter().any(|l| l == "MULTI=a b"), "MULTI arrives as one line");
    assert_eq!(vars.get("PATH").map(String::as_str), passable("PATH").as_deref());
    assert!(!vars.contains_key("EMPTYV"), "an empty variable is not passed");
    assert!(!vars.contains_key("SECRET"), "an unlisted variable is not passed");
    assert!(!vars.contains_key("LD_LIBRARY_PATH"), "only the listed names are passed");
}

#[tokio::test]
async fn default_passenv_passes_path_but_not_the_rest_of_the_servers_environment() {
    let env_sh = fixture("env.sh");
    let server = Server::start_with(
        &["--address=127.0.0.1", "--port=0"],
        &[&env_sh],
        &[("SECRET", "x"), ("FOO", "bar")],
    )
    .await;
    let mut ws = server.connect("/").await;
    let vars = dump(&mut ws).await.vars();
    assert_eq!(vars.get("PATH").map(String::as_str), passable("PATH").as_deref());
    assert!(vars.get("PATH").is_some_and(|p| !p.is_empty()), "PATH is passed by default");
    assert!(!vars.contains_key("SECRET"));
    assert!(!vars.contains_key("FOO"));
    assert!(!vars.contains_key("HOME"), "HOME is not inherited");
}

#[tokio::test]
async fn every_env_message_is_one_name_value_line() {
    let env_sh = fixture("env.sh");
    let server = Server::start_with(
        &["--address=127.0.0.1", "--port=0"],
        &["--passenv=PATH,INJECT", &env_sh],
        &[("INJECT", "one\r\nEVIL=1\ntwo")],
    )
    .await;
    let mut ws = server.connect("/").await;
    let dump = dump(&mut ws).await;
    // vars() checks every message is a single NAME=value line with no repeated name.
    let vars = dump.vars();
    assert_eq!(vars.get("INJECT").map(String::as_str), Some("one  EVIL=1 two"));
    assert!(!vars.contains_key("EVIL"), "a line break must not create a variable");
}

#[tokio::test]
async fn unique_id_differs_per_connection_and_matches_the_connect_log_line() {
    let env_sh = fixture("env.sh");
    let server = Server::start(&[&env_sh]).await;
    let mut ids = Vec::new();
    for path in ["/first", "/second"] {
        let mut ws = server.connect(path).await;
        let vars = dump(&mut ws).await.vars();
        let id = vars.get("UNIQUE_ID").cloned().expect("UNIQUE_ID is set");
        assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()), "{id:?}");
        let needle = format!(" id:'{id}' ");
        let line = server.wait_log(|l| l.ends_with("| CONNECT") && l.contains(&needle)).await;
        let url = format!("url:'http://{}{path}'", server.addr);
        assert!(line.contains(&url), "the CONNECT line with {needle} is for {path}: {line}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "two connections share a UNIQUE_ID");
}

#[tokio::test]
async fn host_without_port_gives_server_name_and_port_80() {
    let env_sh = fixture("env.sh");
    let server = Server::start(&[&env_sh]).await;
    let mut ws = connect_req(request(&server.url("/"), &[("Host", "example.org")])).await;
    let vars = dump(&mut ws).await.vars();
    assert_eq!(vars.get("SERVER_NAME").map(String::as_str), Some("example.org"));
    assert_eq!(vars.get("SERVER_PORT").map(String::as_str), Some("80"));
    assert!(!vars.contains_key("HTTP_HOST"));
}

#[tokio::test]
async fn bracketed_ipv6_host_gives_the_bare_address_and_its_port() {
    let env_sh = fixture("env.sh");
    let server = Server::start(&[&env_sh]).await;
    let mut ws = connect_req(request(&server.url("/"), &[("Host", "[::1]:99")])).await;
    let vars = dump(&mut ws).await.vars();
    assert_eq!(vars.get("SERVER_NAME").map(String::as_str), Some("::1"));
    assert_eq!(vars.get("SERVER_PORT").map(String::as_str), Some("99"));
}

#[tokio::test]
async fn setenv_adds_variables_after_the_others_and_refuses_cgi_names() {
    let env_sh = fixture("env.sh");
    let server = Server::start_with(
        &["--address=127.0.0.1", "--port=0"],
        &[
            "--passenv=PATH,FOO",
            "--setenv=APP_MODE=live",
            "--setenv=FOO=from setenv",
            "--setenv=EMPTY=",
            &env_sh,
        ],
        &[("FOO", "from passenv")],
    )
    .await;
    let mut ws = server.connect("/").await;
    let vars = dump(&mut ws).await.vars();
    assert_eq!(vars.get("APP_MODE").map(String::as_str), Some("live"));
    assert_eq!(vars.get("FOO").map(String::as_str), Some("from setenv"), "it overrides --passenv");
    assert_eq!(vars.get("EMPTY").map(String::as_str), Some(""));
    assert_eq!(vars.get("REMOTE_ADDR").map(String::as_str), Some("127.0.0.1"));
    for (bad, why) in [
        ("--setenv=REMOTE_ADDR=1.2.3.4", "the server sets this name"),
        ("--setenv=HTTP_COOKIE=x", "the server sets this name"),
        ("--setenv=QUERY_STRING=", "the server sets this name"),
        ("--setenv=NOEQUALS", "give NAME=VALUE"),
        ("--setenv=1ABC=x", "NAME must be"),
    ] {
        let out = std::process::Command::new(binary()).args([bad, "cat"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {text}");
        assert!(text.contains(why), "{bad}: {text}");
    }
}
