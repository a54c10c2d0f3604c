//! `--dir`: the URL-to-script walk of websocketd (reference 2.4, its table), 301 for unclean
//! paths, and the holes not copied (non-executables, dotfiles, links leading outside).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use websocketd_tests::*;

const SHOW: &str = "#!/bin/sh\necho \"SCRIPT_NAME=$SCRIPT_NAME PATH_INFO=$PATH_INFO QUERY_STRING=$QUERY_STRING\"\n";

fn script(path: &Path, mode: u32) {
    std::fs::write(path, SHOW).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The reference's directory: hello.sh, sub/deep.sh, noexec.sh (0644), .hidden.sh, a link to
/// a script outside, an empty sub2/.
fn scripts() -> (TempDir, String) {
    let base = TempDir::new();
    let dir = base.0.join("d");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::create_dir_all(dir.join("sub2")).unwrap();
    script(&dir.join("hello.sh"), 0o755);
    script(&dir.join("sub/deep.sh"), 0o755);
    script(&dir.join("noexec.sh"), 0o644);
    script(&dir.join(".hidden.sh"), 0o755);
    script(&base.0.join("outside.sh"), 0o755);
    std::os::unix::fs::symlink(base.0.join("outside.sh"), dir.join("link")).unwrap();
    let dir = dir.to_string_lossy().into_owned();
    (base, dir)
}

fn upgrade(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

#[tokio::test]
async fn urls_run_the_scripts_they_name_with_script_name_and_path_info() {
    let (_base, dir) = scripts();
    let server = Server::start(&[&format!("--dir={dir}")]).await;
    for (path, expect) in [
        ("/hello.sh", "SCRIPT_NAME=/hello.sh PATH_INFO= QUERY_STRING="),
        (
            "/hello.sh/extra/path?a=b",
            "SCRIPT_NAME=/hello.sh PATH_INFO=/extra/path QUERY_STRING=a=b",
        ),
        ("/hello.sh/", "SCRIPT_NAME=/hello.sh PATH_INFO=/ QUERY_STRING="),
        ("/sub/deep.sh/x/y/", "SCRIPT_NAME=/sub/deep.sh PATH_INFO=/x/y/ QUERY_STRING="),
    ] {
        let mut ws = server.connect(path).await;
        assert_eq!(recv_text(&mut ws).await, expect, "{path}");
    }
}

#[tokio::test]
async fn directories_and_missing_scripts_are_404_before_any_upgrade() {
    let (_base, dir) = scripts();
    let server = Server::start(&[&format!("--dir={dir}")]).await;
    for path in ["/", "/sub", "/sub/", "/sub2/", "/hello", "/nonexist"] {
        let resp = raw_http(server.addr, &upgrade(path)).await;
        assert!(resp.starts_with("HTTP/1.1 404"), "{path}: {resp}");
        assert!(resp.ends_with("404 Not Found\n"), "{path}: {resp}");
    }
    assert!(server.live_children().is_empty());
}

#[tokio::test]
async fn non_executables_dotfiles_and_links_outside_are_not_endpoints() {
    let (_base, dir) = scripts();
    let server = Server::start(&[&format!("--dir={dir}")]).await;
    for (path, why) in [
        ("/noexec.sh", "not an executable file"),
        ("/.hidden.sh", "hidden files are not served"),
        ("/link", "it leads outside the directory"),
    ] {
        let resp = raw_http(server.addr, &upgrade(path)).await;
        assert!(resp.starts_with("HTTP/1.1 404"), "{path}: {resp}");
        server.wait_log(|l| l.contains("| ERROR  |") && l.contains(path) && l.contains(why)).await;
    }
    assert!(server.live_children().is_empty());
}

#[tokio::test]
async fn unclean_paths_are_redirected_to_their_clean_form() {
    let (_base, dir) = scripts();
    let server = Server::start(&[&format!("--dir={dir}")]).await;
    for (path, location) in [
        ("/../x/env.sh", "/x/env.sh"),
        ("/%2e%2e/hello.sh?q=1", "/hello.sh?q=1"),
        ("//hello.sh", "/hello.sh"),
        ("/sub//deep.sh", "/sub/deep.sh"),
        ("/hello.sh/%2Fenc", "/hello.sh/enc"),
    ] {
        let resp = raw_http(server.addr, &upgrade(path)).await;
        assert!(resp.starts_with("HTTP/1.1 301"), "{path}: {resp}");
        assert!(
            resp.to_ascii_lowercase().contains(&format!("location: {location}\r\n")),
            "{path}: {resp}"
        );
    }
    assert!(server.live_children().is_empty());
}

#[tokio::test]
async fn the_startup_log_names_the_directory() {
    let (_base, dir) = scripts();
    let server = Server::start(&[&format!("--dir={dir}")]).await;
    server.wait_log(|l| l.ends_with(&format!("| Serving from directory      : {dir}"))).await;
}

#[tokio::test]
async fn encoded_and_double_encoded_traversal_never_reaches_outside() {
    let (_base, dir) = scripts();
    let server = Server::start(&[&format!("--dir={dir}")]).await;
    // Positive control: the script inside is reachable.
    let inside = raw_http(server.addr, &upgrade("/hello.sh")).await;
    assert!(inside.starts_with("HTTP/1.1 101"), "{inside}");
    // Encoded once: cleaned by a 301 to a path inside, which does not exist.
    for attempt in ["/%2e%2e/outside.sh", "/..%2Foutside.sh", "/sub/%2e%2e/%2e%2e/outside.sh"] {
        let resp = raw_http(server.addr, &upgrade(attempt)).await;
        assert!(resp.starts_with("HTTP/1.1 301"), "{attempt}: {resp}");
        assert!(resp.contains("\r\nLocation: /outside.sh\r\n"), "{attempt}: {resp}");
    }
    // Encoded twice: a literal "%2e%2e" segment, which names nothing.
    for attempt in ["/%252e%252e/outside.sh", "/%252e%252e%252foutside.sh"] {
        let resp = raw_http(server.addr, &upgrade(attempt)).await;
        assert!(resp.starts_with("HTTP/1.1 404"), "{attempt}: {resp}");
    }
    assert!(raw_http(server.addr, &upgrade("/outside.sh")).await.starts_with("HTTP/1.1 404"));
}

#[tokio::test]
async fn an_encoded_line_break_cannot_reach_the_location_header() {
    let (_base, dir) = scripts();
    let server = Server::start(&[&format!("--dir={dir}")]).await;
    // Positive control: an ordinary redirect.
    let plain = raw_http(server.addr, &upgrade("//hello.sh")).await;
    assert!(plain.contains("\r\nLocation: /hello.sh\r\n"), "{plain}");
    let resp = raw_http(server.addr, &upgrade("//x%0d%0aSet-Cookie:%20evil=1")).await;
    assert!(resp.starts_with("HTTP/1.1 301"), "{resp}");
    let head = resp.split("\r\n\r\n").next().unwrap();
    assert!(!head.lines().any(|l| l.to_ascii_lowercase().starts_with("set-cookie")), "{head}");
    assert!(head.contains("\r\nLocation: /x%0D%0ASet-Cookie:%20evil=1"), "{head}");
}
