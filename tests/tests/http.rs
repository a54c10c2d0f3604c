//! The HTTP side: listening, 404 for plain requests, the upgrade checks, --maxforks.

use websocketd_tests::*;

#[tokio::test]
async fn plain_http_requests_get_404() {
    let server = Server::start(&["cat"]).await;
    let resp =
        raw_http(server.addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 404 Not Found\r\n"), "{resp}");
    assert!(resp.ends_with("\r\n\r\n404 page not found\n"), "{resp}");
    assert!(resp.to_ascii_lowercase().contains("content-type: text/plain; charset=utf-8"));
    assert!(server.live_children().is_empty());
}

#[tokio::test]
async fn an_upgrade_header_with_more_than_websocket_is_not_an_upgrade() {
    let server = Server::start(&["cat"]).await;
    let resp = raw_http(
        server.addr,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
}

#[tokio::test]
async fn the_startup_log_names_the_real_bound_address() {
    let server = Server::start(&["cat"]).await;
    let line = server.wait_log(|l| l.contains("Starting WebSocket server")).await;
    assert!(
        line.contains(&format!(
            "| INFO   | server     |  | Starting WebSocket server   : ws://127.0.0.1:{}/",
            server.addr.port()
        )),
        "{line}"
    );
    assert_ne!(server.addr.port(), 0);
    let mut ws = server.connect("/").await;
    send_text(&mut ws, "up").await;
    assert_eq!(recv_text(&mut ws).await, "up");
}

#[tokio::test]
async fn every_address_gets_its_own_listener() {
    let server = Server::start_with(
        &["--address=127.0.0.1", "--address=127.0.0.2", "--port=0"],
        &["cat"],
        &[],
    )
    .await;
    server.wait_log_count(2, |l| l.contains("Starting WebSocket server")).await;
    for host in ["127.0.0.1", "127.0.0.2"] {
        let line = server.wait_log(|l| l.contains(&format!("ws://{host}:"))).await;
        let port = line.rsplit(':').next().unwrap().trim_end_matches('/');
        let mut ws = connect(&format!("ws://{host}:{port}/")).await;
        send_text(&mut ws, host).await;
        assert_eq!(recv_text(&mut ws).await, host);
    }
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

async fn upgrade_with(server: &Server, method: &str, version: &str, key: &str) -> String {
    let req = format!(
        "{method} / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\nContent-Length: 0\r\n\r\n"
    );
    raw_http(server.addr, &req).await
}

#[tokio::test]
async fn bad_upgrades_are_refused_before_any_process_starts() {
    let server = Server::start(&["cat"]).await;
    let resp = upgrade_with(&server, "GET", "8", KEY).await;
    assert!(resp.starts_with("HTTP/1.1 426"), "{resp}");
    assert!(resp.to_ascii_lowercase().contains("sec-websocket-version: 13"), "{resp}");
    let resp = upgrade_with(&server, "GET", "13", "not-a-key").await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let resp = upgrade_with(&server, "POST", "13", KEY).await;
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
    let resp = upgrade_with(&server, "GET", "13", KEY).await;
    assert!(resp.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{resp}");
    assert!(resp.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{resp}");
    server.wait_log(|l| l.ends_with("| CONNECT")).await;
    let connects = server.logs().iter().filter(|l| l.ends_with("| CONNECT")).count();
    assert_eq!(connects, 1);
}

#[tokio::test]
async fn a_full_server_answers_429_until_a_slot_frees() {
    let server = Server::start(&["--maxforks=1", "cat"]).await;
    let mut first = server.connect("/").await;
    let resp = upgrade_with(&server, "GET", "13", KEY).await;
    assert!(resp.starts_with("HTTP/1.1 429"), "{resp}");
    assert!(resp.ends_with("429 Too Many Requests\n"), "{resp}");
    server.wait_log(|l| l.contains("Max of possible forks already active")).await;
    within(STEP, first.close(None)).await.unwrap();
    server.wait_log(|l| l.ends_with("| DISCONNECT")).await;
    let mut again = server.connect("/").await;
    send_text(&mut again, "room again").await;
    assert_eq!(recv_text(&mut again).await, "room again");
}

async fn upgrade_offering(server: &Server, protocols: &str) -> String {
    let req = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocols}\r\n\r\n"
    );
    raw_http(server.addr, &req).await.to_ascii_lowercase()
}

#[tokio::test]
async fn the_server_answers_with_the_first_of_its_subprotocols_that_the_client_offers() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = Server::start(&["--subprotocol=chat,superchat", &fixture("env.sh")]).await;
    let mut req = server.url("/").into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "superchat, chat".parse().unwrap());
    let (mut ws, resp) = within(STEP, tokio_tungstenite::connect_async(req)).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "chat");
    let (_, _, data) = recv_close(&mut ws).await;
    let env: Vec<String> = data.iter().map(|m| m.to_text().unwrap().to_owned()).collect();
    assert!(env.contains(&"WEBSOCKET_SUBPROTOCOL=chat".to_owned()), "{env:?}");
}

#[tokio::test]
async fn no_subprotocol_is_chosen_when_none_matches_or_none_is_configured() {
    let server = Server::start(&["--subprotocol=chat", "cat"]).await;
    let resp = upgrade_offering(&server, "other").await;
    assert!(resp.starts_with("http/1.1 101"), "{resp}");
    assert!(!resp.contains("sec-websocket-protocol"), "{resp}");
    let plain = Server::start(&["cat"]).await;
    let resp = upgrade_offering(&plain, "chat").await;
    assert!(resp.starts_with("http/1.1 101"), "{resp}");
    assert!(!resp.contains("sec-websocket-protocol"), "{resp}");
}

async fn upgrade_from(server: &Server, origin: Option<&str>) -> String {
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{origin}\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    raw_http(server.addr, &req).await
}

#[tokio::test]
async fn the_origin_list_is_enforced_before_any_process_starts() {
    let server =
        Server::start(&["--origin=example.com,https://secure.example:8443,ab", "cat"]).await;
    for ok in [
        "http://example.com",
        "http://example.com:9999",
        "https://EXAMPLE.com",
        "https://secure.example:8443",
        "http://ab",
    ] {
        let resp = upgrade_from(&server, Some(ok)).await;
        assert!(resp.starts_with("HTTP/1.1 101"), "{ok}: {resp}");
    }
    for bad in [
        None,
        Some("null"),
        Some("http://evil.com"),
        Some("http://secure.example:8443"),
        Some("https://secure.example"),
        Some("file://"),
    ] {
        let resp = upgrade_from(&server, bad).await;
        assert!(resp.starts_with("HTTP/1.1 403"), "{bad:?}: {resp}");
        assert!(resp.ends_with("Forbidden\n"), "{bad:?}: {resp}");
    }
    server.wait_log(|l| l.ends_with("| Origin is not listed in allowed list")).await;
    server.wait_log_count(5, |l| l.ends_with("| CONNECT")).await;
    let connects = server.logs().iter().filter(|l| l.ends_with("| CONNECT")).count();
    assert_eq!(connects, 5, "only the allowed origins started a process");
}

#[tokio::test]
async fn same_origin_allows_only_the_servers_own_host_and_port() {
    let server = Server::start(&["--sameorigin", "cat"]).await;
    let own = format!("http://{}", server.addr);
    assert!(upgrade_from(&server, Some(&own)).await.starts_with("HTTP/1.1 101"));
    let other_port = format!("http://127.0.0.1:{}", server.addr.port().wrapping_add(1));
    for bad in [Some(other_port.as_str()), Some("http://example.com"), None] {
        let resp = upgrade_from(&server, bad).await;
        assert!(resp.starts_with("HTTP/1.1 403"), "{bad:?}: {resp}");
    }
    server.wait_log(|l| l.ends_with("| Same origin policy mismatch")).await;
}

fn header_lines(resp: &str) -> Vec<String> {
    let head = resp.split("\r\n\r\n").next().unwrap_or("");
    head.lines().skip(1).map(str::to_owned).collect()
}

const EXTRA: [&str; 4] = [
    "--header=X-All: everywhere",
    "--header-ws=X-Ws: upgrades",
    "--header-http=X-Http: plain",
    "--header=NoColon",
];

fn has_plain_headers(what: &str, resp: &str) {
    assert!(resp.starts_with(&format!("HTTP/1.1 {what}")), "{resp}");
    let lines = header_lines(resp);
    assert!(lines.contains(&"X-All: everywhere".to_owned()), "{what}: {lines:?}");
    assert!(lines.contains(&"X-Http: plain".to_owned()), "{what}: {lines:?}");
    assert!(!lines.iter().any(|h| h.starts_with("X-Ws")), "{what}: {lines:?}");
}

#[tokio::test]
async fn extra_headers_go_on_the_responses_they_name() {
    let mut args = EXTRA.to_vec();
    args.extend(["--origin=example.com", "cat"]);
    let server = Server::start(&args).await;
    let upgraded = header_lines(&upgrade_from(&server, Some("http://example.com")).await);
    assert!(upgraded.contains(&"X-All: everywhere".to_owned()), "{upgraded:?}");
    assert!(upgraded.contains(&"X-Ws: upgrades".to_owned()), "{upgraded:?}");
    assert!(upgraded.iter().any(|h| h.trim_end() == "Nocolon:"), "{upgraded:?}");
    assert!(!upgraded.iter().any(|h| h.starts_with("X-Http")), "{upgraded:?}");
    has_plain_headers("403", &upgrade_from(&server, Some("http://evil.com")).await);
    has_plain_headers("404", &raw_http(server.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await);
}

#[tokio::test]
async fn a_full_servers_429_carries_the_extra_headers_too() {
    let mut args = EXTRA.to_vec();
    args.extend(["--maxforks=1", "cat"]);
    let server = Server::start(&args).await;
    let mut holder = server.connect("/").await;
    send_text(&mut holder, "holding the slot").await;
    assert_eq!(recv_text(&mut holder).await, "holding the slot");
    has_plain_headers("429", &upgrade_from(&server, None).await);
}

#[tokio::test]
async fn a_header_value_cannot_start_another_header_line() {
    let server = Server::start(&["--header=X-Evil: a\r\nInjected: yes", "cat"]).await;
    let resp = raw_http(server.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let lines = header_lines(&resp);
    assert!(lines.contains(&"X-Evil: a  Injected: yes".to_owned()), "{lines:?}");
    assert!(!lines.iter().any(|h| h.starts_with("Injected")), "{lines:?}");
}

#[tokio::test]
async fn reverselookup_names_the_client_in_the_environment_and_the_log() {
    let server = Server::start(&["--reverselookup", &fixture("env.sh")]).await;
    let mut ws = server.connect("/").await;
    let (_, _, data) = recv_close(&mut ws).await;
    let env: Vec<String> = data.iter().map(|m| m.to_text().unwrap().to_owned()).collect();
    assert!(env.contains(&"REMOTE_HOST=localhost".to_owned()), "{env:?}");
    assert!(env.contains(&"REMOTE_ADDR=127.0.0.1".to_owned()), "{env:?}");
    server.wait_log(|l| l.contains("remote:'localhost'") && l.ends_with("| CONNECT")).await;
}

#[tokio::test]
async fn redirport_sends_plain_http_to_the_main_port_keeping_path_and_query() {
    // --redirport=0 means off, so a free port is picked here (bound, then released).
    let redir = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Server::start(&[&format!("--redirport={redir}"), "cat"]).await;
    server
        .wait_log(|l| {
            l.ends_with(&format!("| Starting redirect server    : http://127.0.0.1:{redir}/"))
        })
        .await;
    let main = server.addr.port();
    let redirect_addr = std::net::SocketAddr::from(([127, 0, 0, 1], redir));
    for (host, location) in [
        (format!("localhost:{redir}"), format!("http://localhost:{main}/a/b?q=1")),
        ("example.org".to_owned(), format!("http://example.org:{main}/a/b?q=1")),
    ] {
        let resp =
            raw_http(redirect_addr, &format!("GET /a/b?q=1 HTTP/1.1\r\nHost: {host}\r\n\r\n"))
                .await;
        assert!(resp.starts_with("HTTP/1.1 301"), "{resp}");
        assert!(resp.contains(&format!("\r\nLocation: {location}\r\n")), "{resp}");
    }
}

fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[tokio::test]
async fn devconsole_serves_its_page_for_plain_requests_and_upgrades_still_run_the_command() {
    let server = Server::start(&["--devconsole", "cat"]).await;
    server.wait_log(|l| l.contains("| Developer console enabled   : http://127.0.0.1:")).await;
    let page = raw_http(server.addr, "GET /any/path?x=1 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"), "{page}");
    assert!(body(&page).contains("<title>websocketd console</title>"));
    assert!(body(&page).contains("new WebSocket(url)"));
    assert!(!body(&page).contains("src=\"http"), "no external assets");
    server.wait_log(|l| l.ends_with("| DEVCONSOLE")).await;
    let mut ws = server.connect("/any/path").await;
    send_text(&mut ws, "through the console's URL").await;
    assert_eq!(recv_text(&mut ws).await, "through the console's URL");
}

#[tokio::test]
async fn devconsole_reflects_nothing_from_the_request() {
    let server = Server::start(&["--devconsole", "cat"]).await;
    let plain = raw_http(server.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let hostile = raw_http(
        server.addr,
        "GET /%22%3E%3Cscript%3Ealert(1)%3C/script%3E?%3Cb%3E HTTP/1.1\r\nHost: \"><script>x</script>\r\n\r\n",
    )
    .await;
    if hostile.starts_with("HTTP/1.1 200") {
        assert_eq!(body(&hostile), body(&plain));
    } else {
        // A Host the HTTP parser refuses never reaches the page at all.
        assert!(hostile.starts_with("HTTP/1.1 400"), "{hostile}");
    }
    let hostile_path = raw_http(
        server.addr,
        "GET /%22%3E%3Cscript%3Ealert(1)%3C/script%3E HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(hostile_path.starts_with("HTTP/1.1 200"), "{hostile_path}");
    assert_eq!(body(&hostile_path), body(&plain));
}

#[tokio::test]
async fn devconsole_answers_304_when_the_page_has_not_changed() {
    let server = Server::start(&["--devconsole", "cat"]).await;
    let first = raw_http(server.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let modified = first
        .lines()
        .find_map(|l| l.strip_prefix("Last-Modified: "))
        .unwrap_or_else(|| panic!("no Last-Modified: {first}"))
        .to_owned();
    let again = raw_http(
        server.addr,
        &format!("GET / HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {modified}\r\n\r\n"),
    )
    .await;
    assert!(again.starts_with("HTTP/1.1 304"), "{again}");
    let old = raw_http(
        server.addr,
        "GET / HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n\r\n",
    )
    .await;
    assert!(old.starts_with("HTTP/1.1 200"), "{old}");
}

#[tokio::test]
async fn devconsole_answers_the_browsers_icon_request_with_404_not_the_page() {
    let server = Server::start(&["--devconsole", "cat"]).await;
    let icon = raw_http(server.addr, "GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(icon.starts_with("HTTP/1.1 404"), "{icon}");
    assert_eq!(body(&icon), "404 page not found\n");
    server
        .wait_log(|l| l.contains("url:'http://x/favicon.ico'") && l.ends_with("| NOT FOUND"))
        .await;
    // Positive control: any other path is the page.
    let page = raw_http(server.addr, "GET /favicon.png HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(body(&page).contains("<title>websocketd console</title>"));
}
