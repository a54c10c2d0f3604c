//! The strict HTTP edge, tried as a hostile client would, with raw bytes over TCP: the Host
//! rules, absolute-form targets, upgrade requests with a body, environments exec would refuse,
//! bytes that must stay bytes, and the header count. Every refusal is shown next to a request
//! that still upgrades, and every refused request is shown to have started no process.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use websocketd_tests::*;

/// The upgrade headers every request here carries.
const K: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// A server whose program records each start and prints its environment.
struct Edge {
    server: Server,
    _dir: TempDir,
    record: String,
}

impl Edge {
    async fn start(flags: &[&str]) -> Edge {
        Edge::launch(None, flags).await
    }

    /// As [`Edge::start`], the server run under `prlimit` with `limits` first.
    async fn launch(limits: Option<&[&str]>, flags: &[&str]) -> Edge {
        let dir = TempDir::new();
        let record = dir.path("starts");
        std::fs::write(&record, "").expect("record file");
        let fixture = fixture("env_record.pl");
        let mut args = vec!["--address=127.0.0.1", "--port=0", "--binary"];
        args.extend_from_slice(flags);
        args.push(&fixture);
        args.push(&record);
        let cmd = match limits {
            None => {
                let mut cmd = tokio::process::Command::new(binary());
                cmd.args(&args);
                cmd
            }
            Some(limits) => {
                let prlimit = find_program("prlimit", &["/usr/bin/prlimit"]).expect("prlimit");
                let mut cmd = tokio::process::Command::new(prlimit);
                cmd.args(limits).arg("--").arg(binary()).args(&args);
                cmd
            }
        };
        let server = Server::launch(cmd).await;
        Edge { server, _dir: dir, record }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// How many programs have started.
    fn starts(&self) -> usize {
        std::fs::read_to_string(&self.record).expect("record").lines().count()
    }

    /// Sends `request`; it must be refused with `status`, before any process starts. Returns
    /// the connection and the body.
    async fn refused(&self, request: &[u8], status: u16) -> (tokio::net::TcpStream, Vec<u8>) {
        let before = self.starts();
        let (answer, _) = exchange(self.addr(), request).await;
        let Answer::Refused { status: got, head, body, stream } = answer else {
            panic!("upgraded, not refused with {status}: {}", shown(request));
        };
        assert_eq!(got, status, "{head}{}", String::from_utf8_lossy(&body));
        assert_eq!(self.starts(), before, "a process started for a refused request");
        (stream, body)
    }

    /// As [`Edge::refused`], and the server closes the connection after the answer.
    async fn refused_and_closed(&self, request: &[u8], status: u16) -> Vec<u8> {
        let (mut stream, body) = self.refused(request, status).await;
        assert!(closed_by_server(&mut stream).await, "the connection stayed open");
        body
    }

    /// Sends `request`; it must upgrade, and the program must start once and end normally.
    /// Returns its environment.
    async fn upgraded(&self, request: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let before = self.starts();
        let (answer, _) = exchange(self.addr(), request).await;
        let Answer::Upgraded(mut ws) = answer else {
            panic!("refused with {}: {}", answer.status(), shown(request));
        };
        let (data, close) = ws.payload_until_close().await;
        assert_eq!(close, Some(1000), "the program did not end normally");
        assert_eq!(self.starts(), before + 1, "one process for one upgrade");
        env_of(&data)
    }
}

/// A request as a failure shows it: its first 300 bytes.
fn shown(request: &[u8]) -> String {
    let text = String::from_utf8_lossy(&request[..request.len().min(300)]).into_owned();
    if request.len() > 300 {
        format!("{text:?}... ({} bytes)", request.len())
    } else {
        format!("{text:?}")
    }
}

/// The environment the fixture printed: `NAME=value` pairs, each ended by a NUL.
fn env_of(data: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut env = BTreeMap::new();
    for pair in data.split(|&b| b == 0).filter(|p| !p.is_empty()) {
        let at = pair.iter().position(|&b| b == b'=').expect("NAME=value");
        let name = String::from_utf8(pair[..at].to_vec()).expect("a name is text");
        env.insert(name, pair[at + 1..].to_vec());
    }
    env
}

/// An upgrade request for `target` with `head` (header lines, each ending in CRLF) and K.
fn upgrade(target: &str, head: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\n{head}{K}\r\n").into_bytes()
}

fn var<'a>(env: &'a BTreeMap<String, Vec<u8>>, name: &str) -> &'a [u8] {
    env.get(name).map_or_else(|| panic!("no {name} in {:?}", env.keys()), Vec::as_slice)
}

#[tokio::test]
async fn a_request_needs_exactly_one_valid_host() {
    let edge = Edge::start(&[]).await;
    let env = edge.upgraded(&upgrade("/", "Host: chat.example:8080\r\n")).await;
    assert_eq!(var(&env, "SERVER_NAME"), b"chat.example");
    assert_eq!(var(&env, "SERVER_PORT"), b"8080");
    let body = edge.refused_and_closed(&upgrade("/", ""), 400).await;
    assert!(String::from_utf8_lossy(&body).contains("missing required Host header"));
    for two in ["Host: a\r\nHost: a\r\n", "Host: a\r\nHost: b\r\n"] {
        let body = edge.refused_and_closed(&upgrade("/", two), 400).await;
        assert!(String::from_utf8_lossy(&body).contains("too many Host headers"), "{two}");
    }
    for bad in
        ["a b", "a\"b", "h:port", "h:65536", "h:1:2", "::1", "[::1", "[nope]:1", "u@h", "h/x"]
    {
        let body = edge.refused_and_closed(&upgrade("/", &format!("Host: {bad}\r\n")), 400).await;
        assert!(String::from_utf8_lossy(&body).contains("malformed Host header"), "{bad}");
    }
    // Plain HTTP gets the same rule.
    edge.refused_and_closed(b"GET / HTTP/1.1\r\n\r\n", 400).await;
    // A request that gets a 400 from the edge is logged, and no session is.
    let logs = edge.server.logs().join("\n");
    assert!(logs.contains("BAD REQUEST: missing required Host header"), "{logs}");
}

#[tokio::test]
async fn an_absolute_form_target_names_the_host() {
    let edge = Edge::start(&["--sameorigin"]).await;
    // The control: an origin-form target, the host from Host.
    let env = edge
        .upgraded(&upgrade("/ok", "Host: header.example\r\nOrigin: http://header.example\r\n"))
        .await;
    assert_eq!(var(&env, "SERVER_NAME"), b"header.example");
    // The target's host wins over Host, for SERVER_NAME, SERVER_PORT, the log and --sameorigin.
    let target = "http://other.example:81/ok?x=1";
    let head = "Host: header.example\r\nOrigin: http://other.example:81\r\n";
    let env = edge.upgraded(&upgrade(target, head)).await;
    assert_eq!(var(&env, "SERVER_NAME"), b"other.example");
    assert_eq!(var(&env, "SERVER_PORT"), b"81");
    assert_eq!(var(&env, "PATH_INFO"), b"/ok");
    assert_eq!(var(&env, "QUERY_STRING"), b"x=1");
    assert_eq!(var(&env, "REQUEST_URI"), b"/ok?x=1");
    edge.server.wait_log(|l| l.contains("url:'http://other.example:81/ok?x=1'")).await;
    // An origin that matches only the ignored Host header is not the same origin.
    let head = "Host: header.example\r\nOrigin: http://header.example\r\n";
    edge.refused(&upgrade(target, head), 403).await;
    // A target that is not an HTTP URL, or names a user, is refused.
    edge.refused_and_closed(&upgrade("ftp://other.example/ok", "Host: h\r\n"), 400).await;
    edge.refused_and_closed(&upgrade("http://user@other.example/ok", "Host: h\r\n"), 400).await;
}

#[tokio::test]
async fn redirport_sends_an_absolute_target_to_its_host() {
    // --redirport=0 means off, so a free port is picked here (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let edge = Edge::start(&[&format!("--redirport={port}")]).await;
    edge.server.wait_log(|l| l.contains("Starting redirect server")).await;
    let redirect = SocketAddr::from(([127, 0, 0, 1], port));
    let ours = edge.addr().port();
    let answer =
        raw_http(redirect, "GET http://other.example/p?q HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 301"), "{answer}");
    let location = format!("location: http://other.example:{ours}/p?q");
    assert!(answer.to_ascii_lowercase().contains(&location), "{answer}");
    let answer = raw_http(redirect, "GET /p HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

#[tokio::test]
async fn an_upgrade_request_has_no_body() {
    let edge = Edge::start(&[]).await;
    let host = "Host: h\r\n";
    edge.upgraded(&upgrade("/", &format!("{host}Content-Length: 0\r\n"))).await;
    let both = format!("{host}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n");
    let mut req = upgrade("/", &both);
    req.extend_from_slice(b"0\r\n\r\n");
    edge.refused_and_closed(&req, 400).await;
    let mut req = upgrade("/", &format!("{host}Content-Length: 5\r\n"));
    req.extend_from_slice(b"hello");
    edge.refused_and_closed(&req, 400).await;
    let mut req = upgrade("/", &format!("{host}Transfer-Encoding: chunked\r\n"));
    req.extend_from_slice(b"5\r\nhello\r\n0\r\n\r\n");
    let body = edge.refused_and_closed(&req, 400).await;
    assert!(String::from_utf8_lossy(&body).contains("may not have a body"));
}

#[tokio::test]
async fn what_exec_would_refuse_is_refused_before_the_upgrade() {
    let edge = Edge::start(&[]).await;
    let host = "Host: h\r\n";
    // A NUL byte, from the decoded path.
    edge.refused(&upgrade("/x%00y", host), 400).await;
    edge.server.wait_log(|l| l.contains("ERROR") && l.contains("PATH_INFO holds a NUL byte")).await;
    // One string at exactly the kernel's limit (NAME=value and its NUL: 128 KiB) is run...
    let fits = 128 * 1024 - "HTTP_X_BIG=".len() - 1;
    let env = edge.upgraded(&upgrade("/", &format!("{host}X-Big: {}\r\n", "v".repeat(fits)))).await;
    assert_eq!(var(&env, "HTTP_X_BIG").len(), fits);
    // ...one byte more is refused, naming the variable.
    let over = format!("{host}X-Big: {}\r\n", "v".repeat(fits + 1));
    edge.refused(&upgrade("/", &over), 431).await;
    edge.server.wait_log(|l| l.contains("ERROR") && l.contains("HTTP_X_BIG is 131073 bytes")).await;
    // The 200 KiB header.
    let big = format!("{host}X-Big: {}\r\n", "v".repeat(200 * 1024));
    edge.refused(&upgrade("/", &big), 431).await;
    // The slot taken for each refusal was given back: the server still serves.
    edge.upgraded(&upgrade("/", host)).await;
}

#[tokio::test]
async fn an_environment_too_big_in_all_is_refused_before_the_upgrade() {
    // A 1 MiB stack limit lets exec take 256 KiB of strings: three 100 KiB headers are too
    // many, two are not.
    let edge = Edge::launch(Some(&["--stack=1048576"]), &["--maxforks=1"]).await;
    let header = |n: usize| format!("X-Big{n}: {}\r\n", "v".repeat(100 * 1024));
    let two = format!("Host: h\r\n{}{}", header(1), header(2));
    let env = edge.upgraded(&upgrade("/", &two)).await;
    assert_eq!(var(&env, "HTTP_X_BIG2").len(), 100 * 1024);
    let three = format!("{two}{}", header(3));
    edge.refused(&upgrade("/", &three), 431).await;
    edge.server.wait_log(|l| l.contains("ERROR") && l.contains("the environment is")).await;
    // With --maxforks=1, a leaked slot would make this a 429.
    edge.upgraded(&upgrade("/", &two)).await;
}

#[tokio::test]
async fn bytes_stay_bytes() {
    let edge = Edge::start(&[]).await;
    let mut req = b"GET /caf%E9/%FF?q=caf%E9 HTTP/1.1\r\nHost: h\r\nX-Latin: caf\xe9\r\n".to_vec();
    req.extend_from_slice(K.as_bytes());
    req.extend_from_slice(b"\r\n");
    let env = edge.upgraded(&req).await;
    assert_eq!(var(&env, "HTTP_X_LATIN"), b"caf\xe9");
    assert_eq!(var(&env, "PATH_INFO"), b"/caf\xe9/\xff");
    assert_eq!(var(&env, "PATH_TRANSLATED"), b"/caf\xe9/\xff");
    // The query string and the request URI are passed raw: still percent-encoded.
    assert_eq!(var(&env, "QUERY_STRING"), b"q=caf%E9");
    assert_eq!(var(&env, "REQUEST_URI"), b"/caf%E9/%FF?q=caf%E9");
    // A raw 8-bit byte in the target is not a URI (RFC 3986): refused, as the parser does.
    let mut raw = b"GET /caf\xe9 HTTP/1.1\r\nHost: h\r\n".to_vec();
    raw.extend_from_slice(K.as_bytes());
    raw.extend_from_slice(b"\r\n");
    edge.refused(&raw, 400).await;
}

#[tokio::test]
async fn up_to_a_thousand_header_lines_are_taken() {
    let edge = Edge::start(&[]).await;
    // Host and K are five lines: 995 more make 1,000.
    let lines = |n: usize| (1..=n).map(|i| format!("X-N{i}: {i}\r\n")).collect::<String>();
    let env = edge.upgraded(&upgrade("/", &format!("Host: h\r\n{}", lines(995)))).await;
    assert_eq!(var(&env, "HTTP_X_N995"), b"995");
    edge.refused_and_closed(&upgrade("/", &format!("Host: h\r\n{}", lines(996))), 431).await;
    // The head may take up to 1 MiB: nine headers of 100 KiB are taken...
    let big =
        (1..=9).map(|i| format!("X-B{i}: {}\r\n", "v".repeat(100 * 1024))).collect::<String>();
    let env = edge.upgraded(&upgrade("/", &format!("Host: h\r\n{big}"))).await;
    assert_eq!(var(&env, "HTTP_X_B9").len(), 100 * 1024);
    // ...eleven are not.
    let bigger =
        (1..=11).map(|i| format!("X-B{i}: {}\r\n", "v".repeat(100 * 1024))).collect::<String>();
    edge.refused_and_closed(&upgrade("/", &format!("Host: h\r\n{bigger}")), 431).await;
}

/// The property: for generated requests (header names and values with every byte, duplicates,
/// lengths around exec's limit for one string, paths and queries with every escape, Host
/// values good and bad, missing and repeated), the server either refuses before any process
/// starts, or the program starts and gets exactly the environment the request implies. A
/// model of the rules says which, and what that environment is.
mod property {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    use super::{Answer, Edge, K, exchange};

    /// exec's limit for one `NAME=value` string, its NUL included.
    const MAX_ARG_STRLEN: usize = 128 * 1024;

    /// One generated request.
    #[derive(Debug, Clone)]
    struct Case {
        /// The path's segments, each a list of pieces: a plain character or `%XX`.
        path: Vec<Vec<Piece>>,
        query: Option<Vec<Piece>>,
        hosts: Vec<Vec<u8>>,
        headers: Vec<(String, Vec<u8>)>,
    }

    #[derive(Debug, Clone)]
    enum Piece {
        Plain(u8),
        Escaped(u8),
    }

    impl Piece {
        fn raw(&self) -> String {
            match self {
                Piece::Plain(c) => char::from(*c).to_string(),
                Piece::Escaped(b) => format!("%{b:02X}"),
            }
        }

        fn decoded(&self) -> u8 {
            match self {
                Piece::Plain(c) | Piece::Escaped(c) => *c,
            }
        }
    }

    fn piece() -> impl Strategy<Value = Piece> {
        let plain = b"ABCXYZabcxyz0189-_~!$&'()*+,;=:@";
        prop_oneof![
            3 => proptest::sample::select(plain.to_vec()).prop_map(Piece::Plain),
            // Every byte but `/` and `.` (which would make the path unclean: a 301).
            1 => any::<u8>().prop_filter("slash or dot", |b| *b != b'/' && *b != b'.').prop_map(Piece::Escaped),
        ]
    }

    fn host() -> impl Strategy<Value = Vec<u8>> {
        let name = "[a-z0-9-]{0,8}(\\.[a-z0-9-]{1,8}){0,2}";
        prop_oneof![
            4 => (name, proptest::option::of(0u32..=70000)).prop_map(|(h, p)| match p {
                Some(p) => format!("{h}:{p}").into_bytes(),
                None => h.into_bytes(),
            }),
            1 => Just(b"[::1]:8080".to_vec()),
            1 => Just(b"[::1]".to_vec()),
            1 => Just(b"h:".to_vec()),
            // Not host[:port].
            1 => proptest::sample::select(vec![&b"a b"[..], b"h:1:2", b"h:x", b"::1", b"[::1", b"u@h", b"caf\xe9", b"a\"b"]).prop_map(<[u8]>::to_vec),
        ]
    }

    /// Header values: short ones with any byte but CR and LF (which end a header line, so
    /// they are framing, not value), and long ones around exec's limit.
    fn value(name_len: usize) -> impl Strategy<Value = Vec<u8>> {
        let fits = MAX_ARG_STRLEN - "HTTP_".len() - name_len - "=".len() - 1;
        prop_oneof![
            // Bytes a value may hold: tab, visible ASCII, 0x80 and up (RFC 9110 §5.5).
            6 => proptest::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..24),
            // Any byte but CR and LF: controls and DEL are not values.
            1 => proptest::collection::vec(any::<u8>().prop_filter("CR, LF", |b| *b != b'\r' && *b != b'\n'), 0..24),
            1 => (fits - 1..=fits + 1).prop_map(|n| vec![b'v'; n]),
        ]
    }

    fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
        // A small pool, so that names repeat (in any case), and names of their own.
        let name = prop_oneof![
            2 => proptest::sample::select(vec!["X-Dup", "x-dup", "X-Other"]).prop_map(str::to_owned),
            3 => "X-[A-Za-z0-9_-]{1,8}",
        ];
        name.prop_flat_map(|n| {
            let len = n.len();
            (Just(n), value(len))
        })
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            proptest::collection::vec(proptest::collection::vec(piece(), 1..5), 1..4),
            proptest::option::of(proptest::collection::vec(piece(), 0..8)),
            prop_oneof![8 => host().prop_map(|h| vec![h]), 1 => Just(vec![]), 1 => (host(), host()).prop_map(|(a, b)| vec![a, b])],
            proptest::collection::vec(header(), 0..8),
        )
            .prop_map(|(path, query, hosts, headers)| Case { path, query, hosts, headers })
    }

    impl Case {
        fn target(&self) -> String {
            let mut t = String::new();
            for seg in &self.path {
                t.push('/');
                t.extend(seg.iter().map(Piece::raw));
            }
            if let Some(q) = &self.query {
                t.push('?');
                t.extend(q.iter().map(Piece::raw));
            }
            t
        }

        fn request(&self) -> Vec<u8> {
            let mut r = format!("GET {} HTTP/1.1\r\n", self.target()).into_bytes();
            for h in &self.hosts {
                r.extend_from_slice(b"Host: ");
                r.extend_from_slice(h);
                r.extend_from_slice(b"\r\n");
            }
            for (name, value) in &self.headers {
                r.extend_from_slice(name.as_bytes());
                r.extend_from_slice(b": ");
                r.extend_from_slice(value);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(K.as_bytes());
            r.extend_from_slice(b"\r\n");
            r
        }

        fn decoded_path(&self) -> Vec<u8> {
            let mut p = Vec::new();
            for seg in &self.path {
                p.push(b'/');
                p.extend(seg.iter().map(Piece::decoded));
            }
            p
        }

        /// The environment the program must get, or `None` when the request must be refused.
        fn expected(&self, client_port: u16) -> Option<BTreeMap<String, Vec<u8>>> {
            let [host] = &self.hosts[..] else { return None };
            let host = std::str::from_utf8(host).ok().filter(|h| valid_host(h))?;
            let path = self.decoded_path();
            if path.contains(&0) {
                return None;
            }
            let mut env = BTreeMap::new();
            // websocketd's default --passenv, from the server's environment (the test's).
            for name in ["PATH", "DYLD_LIBRARY_PATH", "LD_LIBRARY_PATH"] {
                use std::os::unix::ffi::OsStrExt;
                let value = std::env::var_os(name).unwrap_or_default();
                let value = clean(value.as_bytes());
                if !value.is_empty() {
                    env.insert(name.to_owned(), value);
                }
            }
            let mut headers: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
            let upgrade = [
                ("Upgrade", &b"websocket"[..]),
                ("Connection", b"Upgrade"),
                ("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", b"13"),
            ];
            let all = self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).chain(upgrade);
            for (name, value) in all {
                // What the parser takes as a value: tab, visible ASCII, and bytes 0x80 and up.
                if value.iter().any(|&b| !(b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80)) {
                    return None;
                }
                let value = trim_ows(value).to_vec();
                let name = name.to_ascii_lowercase();
                match headers.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, values)) => values.push(value),
                    None => headers.push((name, vec![value])),
                }
            }
            for (name, values) in headers {
                if name.contains('_') {
                    continue;
                }
                let var = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
                let value = clean(&values.join(&b", "[..]));
                if var.len() + 1 + value.len() + 1 > MAX_ARG_STRLEN {
                    return None;
                }
                env.insert(var, value);
            }
            let (name, port) = match host.strip_prefix('[') {
                Some(rest) => match rest.split_once("]:") {
                    Some((h, p)) => (h.to_owned(), p.to_owned()),
                    None => (host.to_owned(), "80".to_owned()),
                },
                None => match host.split_once(':') {
                    Some((h, p)) => (h.to_owned(), p.to_owned()),
                    None => (host.to_owned(), "80".to_owned()),
                },
            };
            let query = self.query.as_ref().map(|q| q.iter().map(Piece::raw).collect::<String>());
            let uri = self.target();
            for (k, v) in [
                ("REMOTE_ADDR", "127.0.0.1"),
                ("REMOTE_HOST", "127.0.0.1"),
                ("SERVER_NAME", &name),
                ("SERVER_PORT", &port),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
                ("GATEWAY_INTERFACE", "CGI/1.1"),
                ("REQUEST_METHOD", "GET"),
                ("SCRIPT_NAME", "/"),
                ("QUERY_STRING", query.as_deref().unwrap_or("")),
                ("AUTH_TYPE", ""),
                ("CONTENT_LENGTH", ""),
                ("CONTENT_TYPE", ""),
                ("REMOTE_IDENT", ""),
                ("REMOTE_USER", ""),
                ("REMOTE_PORT", &client_port.to_string()),
                ("REQUEST_URI", &uri),
            ] {
                env.insert(k.to_owned(), v.as_bytes().to_vec());
            }
            let path = clean(&path);
            env.insert("PATH_INFO".to_owned(), path.clone());
            env.insert("PATH_TRANSLATED".to_owned(), path);
            Some(env)
        }
    }

    /// RFC 3986's `host [":" port]`, the port at most 65535.
    fn valid_host(h: &str) -> bool {
        let (host, port) = match h.strip_prefix('[') {
            Some(rest) => match rest.split_once(']') {
                Some((ip, after)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => {
                    match after.strip_prefix(':') {
                        Some(p) => ("x", p),
                        None if after.is_empty() => ("x", ""),
                        None => return false,
                    }
                }
                _ => return false,
            },
            None => h.split_once(':').unwrap_or((h, "")),
        };
        host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b))
            && (port.is_empty() || port.len() <= 5 && port.parse::<u16>().is_ok())
    }

    /// What the parser trims from a header value: spaces and tabs.
    fn trim_ows(v: &[u8]) -> &[u8] {
        let start = v.iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(v.len());
        let end = v.iter().rposition(|b| *b != b' ' && *b != b'\t').map_or(start, |e| e + 1);
        &v[start..end.max(start)]
    }

    /// websocketd's rule for every value: CR and LF become spaces, then it is trimmed.
    fn clean(v: &[u8]) -> Vec<u8> {
        let spaced: Vec<u8> =
            v.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }).collect();
        trim_space(&spaced).to_vec()
    }

    /// Go's `strings.TrimSpace`: Unicode whitespace from both ends; a byte that is not UTF-8
    /// is not whitespace.
    fn trim_space(v: &[u8]) -> &[u8] {
        let text = String::from_utf8_lossy(v);
        // U+FFFD stands in for each bad byte and is not whitespace: count what goes.
        let lead = text.len() - text.trim_start().len();
        let trail = text.len() - text.trim_end().len();
        // Whitespace is always valid UTF-8, so what goes from each end is the same bytes.
        if lead == text.len() {
            return &[];
        }
        &v[lead..v.len() - trail]
    }

    #[test]
    fn a_request_is_refused_before_any_process_or_its_program_gets_what_it_implies() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let edge = rt.block_on(Edge::start(&[]));
        let config = Config { cases: 400, failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new(config);
        let (upgraded, refused) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
        let result = runner.run(&case(), |case| {
            let request = case.request();
            let before = edge.starts();
            let (answer, port) = rt.block_on(exchange(edge.addr(), &request));
            let expected = case.expected(port);
            match (answer, expected) {
                (Answer::Upgraded(mut ws), Some(expected)) => {
                    let (data, close) = rt.block_on(ws.payload_until_close());
                    prop_assert_eq!(close, Some(1000));
                    prop_assert_eq!(edge.starts(), before + 1);
                    let mut got = super::env_of(&data);
                    let software = got.remove("SERVER_SOFTWARE").unwrap_or_default();
                    prop_assert!(software.starts_with(b"websocketd/"));
                    let id = got.remove("UNIQUE_ID").unwrap_or_default();
                    prop_assert!(!id.is_empty() && id.iter().all(u8::is_ascii_digit));
                    prop_assert_eq!(got, expected);
                    upgraded.set(upgraded.get() + 1);
                }
                (Answer::Refused { status, .. }, None) => {
                    prop_assert!([400, 431].contains(&status), "refused with {}", status);
                    prop_assert_eq!(edge.starts(), before, "a process started for a refusal");
                    refused.set(refused.get() + 1);
                }
                (Answer::Upgraded(_), None) => {
                    return Err(TestCaseError::fail("upgraded a request that must be refused"));
                }
                (Answer::Refused { status, body, .. }, Some(_)) => {
                    let body = String::from_utf8_lossy(&body).into_owned();
                    return Err(TestCaseError::fail(format!("refused with {status} ({body})")));
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
        let (upgraded, refused) = (upgraded.get(), refused.get());
        eprintln!("{upgraded} requests upgraded, {refused} refused");
        // Both outcomes were tried, and many times.
        assert!(upgraded >= 100 && refused >= 100, "upgraded {upgraded}, refused {refused}");
        // Nothing started that was not counted: one process per upgrade.
        assert_eq!(edge.starts(), upgraded);
    }
}
