//! `--staticdir`: files through a real HTTP exchange, and nothing that should not be served.

use websocketd_tests::*;

fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n")
}

/// index.html, a.txt, page.html, list/ (no index) with an awkward name and a dotfile,
/// .secret, a link leading outside, a link inside.
fn site() -> (TempDir, String) {
    let base = TempDir::new();
    let root = base.0.join("www");
    std::fs::create_dir_all(root.join("list")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("a.txt"), "0123456789").unwrap();
    std::fs::write(root.join("list/<b>&x.txt"), "x").unwrap();
    std::fs::write(root.join("list/.hidden"), "h").unwrap();
    std::fs::write(root.join(".secret"), "s").unwrap();
    std::fs::write(base.0.join("outside.txt"), "o").unwrap();
    std::os::unix::fs::symlink(base.0.join("outside.txt"), root.join("escape")).unwrap();
    std::os::unix::fs::symlink(root.join("a.txt"), root.join("inner")).unwrap();
    let root = root.to_string_lossy().into_owned();
    (base, root)
}

#[tokio::test]
async fn files_are_served_with_types_ranges_head_and_conditionals() {
    let (_base, root) = site();
    let server = Server::start(&[&format!("--staticdir={root}"), "cat"]).await;
    let index = raw_http(server.addr, &get("/", "")).await;
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert_eq!(body(&index), "<h1>home</h1>");
    let file = raw_http(server.addr, &get("/a.txt", "")).await;
    assert!(file.contains("\r\nContent-Type: text/plain"), "{file}");
    assert_eq!(body(&file), "0123456789");
    let head =
        raw_http(server.addr, "HEAD /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("\r\nContent-Length: 10\r\n"),
        "{head}"
    );
    assert_eq!(body(&head), "");
    let range = raw_http(server.addr, &get("/a.txt", "Range: bytes=2-4\r\n")).await;
    assert!(range.starts_with("HTTP/1.1 206"), "{range}");
    assert_eq!(body(&range), "234");
    let modified = file
        .lines()
        .find_map(|l| l.strip_prefix("Last-Modified: "))
        .expect("Last-Modified")
        .to_owned();
    let again =
        raw_http(server.addr, &get("/a.txt", &format!("If-Modified-Since: {modified}\r\n"))).await;
    assert!(again.starts_with("HTTP/1.1 304"), "{again}");
    assert_eq!(body(&raw_http(server.addr, &get("/inner", "")).await), "0123456789");
    server.wait_log(|l| l.ends_with("| STATIC")).await;
}

#[tokio::test]
async fn a_directory_without_index_is_listed_with_escaped_names_and_no_dotfiles() {
    let (_base, root) = site();
    let server = Server::start(&[&format!("--staticdir={root}"), "cat"]).await;
    let listing = raw_http(server.addr, &get("/list/", "")).await;
    assert!(listing.starts_with("HTTP/1.1 200"), "{listing}");
    let html = body(&listing);
    assert!(html.contains("&lt;b&gt;&amp;x.txt"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(!html.contains(".hidden"), "{html}");
}

#[tokio::test]
async fn dotfiles_links_leading_out_and_traversal_are_not_served() {
    let (_base, root) = site();
    let server = Server::start(&[&format!("--staticdir={root}"), "cat"]).await;
    for path in ["/.secret", "/escape", "/list/.hidden", "/nothing"] {
        let resp = raw_http(server.addr, &get(path, "")).await;
        assert!(resp.starts_with("HTTP/1.1 404"), "{path}: {resp}");
    }
    let up = raw_http(server.addr, &get("/../outside.txt", "")).await;
    assert!(
        up.starts_with("HTTP/1.1 301") && up.contains("\r\nLocation: /outside.txt\r\n"),
        "{up}"
    );
    assert!(raw_http(server.addr, &get("/outside.txt", "")).await.starts_with("HTTP/1.1 404"));
}

#[tokio::test]
async fn with_only_a_static_dir_an_upgrade_request_is_just_a_request() {
    let (_base, root) = site();
    let server = Server::start(&[&format!("--staticdir={root}")]).await;
    server.wait_log(|l| l.contains("| Serving CGI or static files : http://127.0.0.1:")).await;
    let req = "GET /a.txt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let resp = raw_http(server.addr, req).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(body(&resp), "0123456789");
}

#[tokio::test]
async fn with_a_command_upgrades_still_start_sessions() {
    let (_base, root) = site();
    let server = Server::start(&[&format!("--staticdir={root}"), "cat"]).await;
    let mut ws = server.connect("/a.txt").await;
    send_text(&mut ws, "not a file").await;
    assert_eq!(recv_text(&mut ws).await, "not a file");
}

#[tokio::test]
async fn encoded_and_double_encoded_traversal_is_refused_beside_a_served_file() {
    let (_base, root) = site();
    let server = Server::start(&[&format!("--staticdir={root}"), "cat"]).await;
    // Positive control.
    assert_eq!(body(&raw_http(server.addr, &get("/a.txt", "")).await), "0123456789");
    for attempt in ["/%2e%2e/outside.txt", "/..%2Foutside.txt", "/list/%2e%2e/%2e%2e/outside.txt"] {
        let resp = raw_http(server.addr, &get(attempt, "")).await;
        assert!(resp.starts_with("HTTP/1.1 301"), "{attempt}: {resp}");
        assert!(resp.contains("\r\nLocation: /outside.txt\r\n"), "{attempt}: {resp}");
    }
    for attempt in
        ["/%252e%252e/outside.txt", "/%252e%252e%252foutside.txt", "/escape", "/%2e%73ecret"]
    {
        let resp = raw_http(server.addr, &get(attempt, "")).await;
        assert!(resp.starts_with("HTTP/1.1 404"), "{attempt}: {resp}");
    }
}
