//! `--cgidir`: CGI/1.1 scripts run for plain requests, their output becoming the response.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use websocketd_tests::*;

fn script(dir: &std::path::Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn scripts() -> (TempDir, String) {
    let base = TempDir::new();
    let dir = base.0.join("cgi-bin");
    std::fs::create_dir_all(&dir).unwrap();
    script(
        &dir,
        "hello.cgi",
        r#"printf 'Content-Type: text/plain\r\nX-Script: yes\r\n\r\n'
echo "method=$REQUEST_METHOD script=$SCRIPT_NAME path_info=$PATH_INFO query=$QUERY_STRING foo=$FOO gw=$GATEWAY_INTERFACE pwd=$(pwd)""#,
    );
    script(
        &dir,
        "echo.cgi",
        r#"printf 'Content-Type: text/plain\n\n'; echo "type=$CONTENT_TYPE length=$CONTENT_LENGTH"; head -c "$CONTENT_LENGTH""#,
    );
    script(&dir, "status.cgi", "printf 'Status: 404 Gone Fishing\\n\\nnope'");
    script(&dir, "redirect.cgi", "printf 'Location: /elsewhere\\n\\n'");
    script(&dir, "bad.cgi", "echo 'no header block here'");
    script(
        &dir,
        "slow.cgi",
        "printf 'Content-Type: text/plain\\n\\nstarted\\n'; echo $$ > \"$PIDFILE\"; trap '' INT; exec sleep 1000",
    );
    let dir = dir.to_string_lossy().into_owned();
    (base, dir)
}

/// One HTTP/1.0 exchange (so that a streamed body ends with the connection), read to its end.
async fn http10(server: &Server, request: &str) -> String {
    let mut stream = within(STEP, tokio::net::TcpStream::connect(server.addr)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    within(STEP, stream.read_to_end(&mut out)).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[tokio::test]
async fn a_script_gets_the_cgi_environment_and_its_output_is_the_response() {
    let (_base, dir) = scripts();
    let server = Server::start_with(
        &["--address=127.0.0.1", "--port=0"],
        &[&format!("--cgidir={dir}"), "--passenv=PATH,FOO", "cat"],
        &[("FOO", "passed")],
    )
    .await;
    let resp = http10(&server, "GET /hello.cgi/more/path?x=1 HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.0 200"), "{resp}");
    assert!(resp.contains("\r\nX-Script: yes\r\n"), "{resp}");
    let real = std::fs::canonicalize(&dir).unwrap();
    let expect = format!(
        "method=GET script=/hello.cgi path_info=/more/path query=x=1 foo=passed gw=CGI/1.1 pwd={}\n",
        real.display()
    );
    assert_eq!(body(&resp), expect);
    server.wait_log(|l| l.contains("cgiscript:'") && l.ends_with("| CGI")).await;
}

#[tokio::test]
async fn the_request_body_streams_to_the_script() {
    let (_base, dir) = scripts();
    let server = Server::start(&[&format!("--cgidir={dir}")]).await;
    let payload = "x".repeat(200_000);
    let req = format!(
        "POST /echo.cgi HTTP/1.0\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    );
    let resp = http10(&server, &req).await;
    assert!(resp.starts_with("HTTP/1.0 200"), "{}", &resp[..resp.len().min(300)]);
    assert_eq!(body(&resp), format!("type=text/plain length=200000\n{payload}"));
}

#[tokio::test]
async fn status_and_location_lines_set_the_status() {
    let (_base, dir) = scripts();
    let server = Server::start(&[&format!("--cgidir={dir}")]).await;
    let gone = http10(&server, "GET /status.cgi HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert!(gone.starts_with("HTTP/1.0 404"), "{gone}");
    assert_eq!(body(&gone), "nope");
    let moved = http10(&server, "GET /redirect.cgi HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert!(moved.starts_with("HTTP/1.0 302"), "{moved}");
    assert!(moved.contains("\r\nLocation: /elsewhere\r\n"), "{moved}");
}

#[tokio::test]
async fn output_without_a_header_block_is_a_502() {
    let (_base, dir) = scripts();
    let server = Server::start(&[&format!("--cgidir={dir}")]).await;
    let resp = http10(&server, "GET /bad.cgi HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.0 502"), "{resp}");
    server.wait_log(|l| l.contains("CGI script output is malformed")).await;
    server.wait_no_children().await;
}

#[tokio::test]
async fn a_client_that_leaves_sends_the_script_down_the_ladder() {
    let (base, dir) = scripts();
    let pidfile = base.path("pid");
    let server = Server::start_with(
        &["--address=127.0.0.1", "--port=0"],
        &[&format!("--cgidir={dir}"), "--passenv=PATH,PIDFILE", "--maxforks=1", "cat"],
        &[("PIDFILE", &pidfile)],
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET /slow.cgi HTTP/1.0\r\nHost: x\r\n\r\n").await.unwrap();
    let pid: u32 = wait_file(&pidfile, "\n").await.trim().parse().unwrap();
    assert!(is_alive(pid));
    // The slot is taken while it runs.
    let busy = http10(&server, "GET /status.cgi HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert!(busy.starts_with("HTTP/1.0 429"), "{busy}");
    drop(stream);
    // It ignores SIGINT: SIGTERM ends it.
    wait_dead(pid).await;
    // The slot is given back once the server has reaped the script, a moment after it died.
    let free = within(STEP, async {
        loop {
            let resp = http10(&server, "GET /status.cgi HTTP/1.0\r\nHost: x\r\n\r\n").await;
            if !resp.starts_with("HTTP/1.0 429") {
                return resp;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(free.starts_with("HTTP/1.0 404"), "{free}");
}

#[tokio::test]
async fn what_exec_would_refuse_is_refused_before_a_script_starts() {
    let base = TempDir::new();
    let record = base.path("starts");
    std::fs::write(&record, "").unwrap();
    script(
        &base.0,
        "record.cgi",
        &format!(
            "echo started >> '{record}'; printf 'Content-Type: text/plain\\n\\n%s' \"$PATH_INFO\""
        ),
    );
    let dir = base.0.to_string_lossy().into_owned();
    let server = Server::start(&[&format!("--cgidir={dir}")]).await;
    let starts = || std::fs::read_to_string(&record).unwrap().lines().count();
    let get = "GET /record.cgi/caf HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let ok = raw_http(server.addr, get).await;
    assert!(ok.starts_with("HTTP/1.1 200") && ok.contains("/caf"), "{ok}");
    assert_eq!(starts(), 1);
    let nul = raw_http(server.addr, "GET /record.cgi/x%00y HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert!(nul.starts_with("HTTP/1.1 400"), "{nul}");
    let big =
        format!("GET /record.cgi HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n", "v".repeat(200 << 10));
    let big = raw_http(server.addr, &big).await;
    assert!(big.starts_with("HTTP/1.1 431"), "{}", &big[..big.len().min(200)]);
    assert_eq!(starts(), 1, "a script started for a refused request");
    server.wait_log(|l| l.contains("ERROR") && l.contains("PATH_INFO holds a NUL byte")).await;
    server.wait_log(|l| l.contains("ERROR") && l.contains("HTTP_X_BIG is")).await;
}
