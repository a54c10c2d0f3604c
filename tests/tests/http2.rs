//! `--http2`: WebSockets as streams of one HTTP/2 connection (RFC 8441), over TLS with ALPN
//! and in cleartext with prior knowledge, driven by the `h2` crate's client.

use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use websocketd_tests::*;

/// A self-signed certificate for localhost in `dir`: its PEM, and the two files.
fn certificate(dir: &TempDir) -> (String, String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path("cert.pem");
    let key = dir.path("key.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (made.cert.pem(), cert, key)
}

/// An HTTP/2 connection over TLS to `server`, which must have chosen `h2` by ALPN.
async fn h2_over_tls(server: &Server, pem: &str) -> H2 {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = tls_over(tcp, Trust::Exactly(pem), &[b"h2", b"http/1.1"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "ALPN chose h2");
    H2::handshake(tls).await
}

async fn echo(ws: &mut H2Ws, text: &str) {
    within(STEP, ws.send(Message::text(text))).await.unwrap();
    assert_eq!(recv_text(ws).await, text);
}

const WHO: &str = "echo \"$SERVER_PROTOCOL $REQUEST_METHOD $QUERY_STRING\"; exec cat";

#[tokio::test]
async fn a_hundred_websockets_share_one_tls_connection() {
    let dir = TempDir::new();
    let (pem, cert, key) = certificate(&dir);
    let tls = [format!("--sslcert={cert}"), format!("--sslkey={key}")];
    let server = Server::start(&["--ssl", &tls[0], &tls[1], "--http2", "sh", "-c", WHO]).await;
    let mut h2 = h2_over_tls(&server, &pem).await;
    assert!(h2.connect_protocol_enabled().await, "SETTINGS_ENABLE_CONNECT_PROTOCOL");
    assert_eq!(h2.max_streams(), 256, "SETTINGS_MAX_CONCURRENT_STREAMS");
    let authority = format!("localhost:{}", server.addr.port());
    let mut sockets = Vec::new();
    for i in 0..100 {
        let (status, ws) = h2.websocket(&authority, &format!("/chat?n={i}"), &[]).await;
        assert_eq!(status, 200);
        sockets.push(ws.unwrap());
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        assert_eq!(recv_text(ws).await, format!("HTTP/2.0 GET n={i}"));
        echo(ws, &format!("hello {i}")).await;
    }
    server.wait_log_count(100, |l| l.ends_with("| CONNECT")).await;
    assert_eq!(server.live_children().len(), 100);
    // Closing one stream ends its session only.
    let mut first = sockets.remove(0);
    within(STEP, first.close(None)).await.unwrap();
    server.wait_log_count(1, |l| l.ends_with("| DISCONNECT")).await;
    echo(&mut sockets[0], "still here").await;
    // Plain HTTP/1.1 over TLS still works beside it.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut ws = wss_over(tcp, Trust::Exactly(&pem), server.addr.port(), "/old").await.unwrap();
    assert_eq!(recv_text(&mut ws).await, "HTTP/1.1 GET ");
}

#[tokio::test]
async fn streams_are_independent_big_messages_a_stalled_reader_and_a_reset() {
    let dir = TempDir::new();
    let (pem, cert, key) = certificate(&dir);
    let tls = [format!("--sslcert={cert}"), format!("--sslkey={key}")];
    let program = "case \"$QUERY_STRING\" in flood) exec yes;; *) exec cat;; esac";
    let server =
        Server::start(&["--ssl", &tls[0], &tls[1], "--http2", "--binary", "sh", "-c", program])
            .await;
    let mut h2 = h2_over_tls(&server, &pem).await;
    let authority = format!("localhost:{}", server.addr.port());
    // One stream whose client never reads while its program writes all it can.
    let (_, stalled) = h2.websocket(&authority, "/?flood", &[]).await;
    let _stalled = stalled.unwrap();
    let (_, big) = h2.websocket(&authority, "/", &[]).await;
    let mut big = big.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // 1 MiB each way on another stream meanwhile.
    let mib: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    within(STEP, big.send(Message::binary(mib.clone()))).await.unwrap();
    let mut got = Vec::new();
    while got.len() < mib.len() {
        match recv(&mut big).await {
            Message::Binary(data) => got.extend_from_slice(&data),
            other => panic!("expected binary, got {other:?}"),
        }
    }
    assert_eq!(got, mib);
    // A stream reset mid-message: its program is laddered, the others go on.
    let (_, doomed) = h2.websocket(&authority, "/?doomed", &[]).await;
    let mut doomed = doomed.unwrap();
    // Its program starts just after the 200, which the client may see first.
    let before = 3;
    within(STEP, async {
        while server.live_children().len() < before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    doomed.get_mut().reset();
    drop(doomed);
    within(STEP, async {
        while server.live_children().len() >= before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    within(STEP, big.send(Message::binary(Bytes::from_static(b"after")))).await.unwrap();
    assert_eq!(recv(&mut big).await, Message::binary(Bytes::from_static(b"after")));
}

#[tokio::test]
async fn a_rapid_reset_flood_starts_no_program_and_others_are_served() {
    let dir = TempDir::new();
    let (pem, cert, key) = certificate(&dir);
    let tls = [format!("--sslcert={cert}"), format!("--sslkey={key}")];
    let server = Server::start(&["--ssl", &tls[0], &tls[1], "--http2", "cat"]).await;
    let authority = format!("localhost:{}", server.addr.port());
    let flood = h2_over_tls(&server, &pem).await;
    for _ in 0..2000 {
        // Asked and given up at once, as the attack does.
        let Ok(Some(mut ready)) = tokio::time::timeout(STEP, flood.clone().ready_sender()).await
        else {
            break;
        };
        let mut req = tokio_tungstenite::tungstenite::http::Request::builder()
            .method("CONNECT")
            .uri(format!("https://{authority}/"))
            .header("sec-websocket-version", "13")
            .body(())
            .unwrap();
        req.extensions_mut().insert(h2::ext::Protocol::from_static("websocket"));
        match ready.send_request(req, false) {
            Ok((_, mut stream)) => stream.send_reset(h2::Reason::CANCEL),
            Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = server.logs().iter().filter(|l| l.ends_with("| CONNECT")).count();
    assert!(server.live_children().len() <= 1, "{} programs run", server.live_children().len());
    eprintln!("rapid reset: {started} sessions connected of 2000 streams reset at once");
    // Another connection is served as ever.
    let mut h2 = h2_over_tls(&server, &pem).await;
    let (status, ws) = h2.websocket(&authority, "/", &[]).await;
    assert_eq!(status, 200);
    echo(&mut ws.unwrap(), "served").await;
}

#[tokio::test]
async fn cleartext_http2_with_prior_knowledge_and_http1_on_the_same_listener() {
    let dir = TempDir::new();
    let site = dir.path("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(format!("{site}/index.html"), "static over h2\n").unwrap();
    let server = Server::start(&["--http2", &format!("--staticdir={site}"), "sh", "-c", WHO]).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut h2 = H2::handshake(tcp).await;
    assert!(h2.connect_protocol_enabled().await);
    let authority = server.addr.to_string();
    let (status, ws) = h2.websocket(&authority, "/ws?x=1", &[]).await;
    assert_eq!(status, 200);
    let mut ws = ws.unwrap();
    assert_eq!(recv_text(&mut ws).await, "HTTP/2.0 GET x=1");
    echo(&mut ws, "h2c").await;
    let (status, body) = h2.get(&authority, "/index.html").await;
    assert_eq!((status, body.as_str()), (200, "static over h2\n"));
    // An HTTP/1.1 client on the same listener.
    let mut old = server.connect("/plain").await;
    assert_eq!(recv_text(&mut old).await, "HTTP/1.1 GET ");
    // Without --http2, the preface is not HTTP/1.1, and gets 400 as before.
    let plain = Server::start(&["cat"]).await;
    let answer = raw_http(plain.addr, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{answer}");
}

/// Chromium loads a page over HTTP/2 and opens its WebSockets on the same connection: the
/// programs' SERVER_PROTOCOL, which the page shows, says so.
#[tokio::test]
async fn a_browser_opens_its_websockets_over_http2() {
    let dir = TempDir::new();
    let (_, cert, key) = certificate(&dir);
    let Some((_chromium, mut page)) = browser_with(&["--ignore-certificate-errors"]).await else {
        return;
    };
    let site = dir.path("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(
        format!("{site}/index.html"),
        "<!doctype html><title></title><script>
         const seen = [];
         for (const n of [1, 2, 3]) {
           const ws = new WebSocket('wss://' + location.host + '/ws?n=' + n);
           ws.onmessage = e => { seen.push(e.data); if (seen.length === 3) document.title = seen.sort().join('|'); };
           ws.onclose = e => { if (!document.title) document.title = 'closed ' + e.code; };
         }
         </script>",
    )
    .unwrap();
    let tls = [format!("--sslcert={cert}"), format!("--sslkey={key}")];
    let server = Server::start(&[
        "--ssl",
        &tls[0],
        &tls[1],
        "--http2",
        &format!("--staticdir={site}"),
        "sh",
        "-c",
        WHO,
    ])
    .await;
    let url = format!("https://127.0.0.1:{}/index.html", server.addr.port());
    page.call("Page.navigate", serde_json::json!({ "url": url })).await;
    page.until("document.title !== ''").await;
    assert_eq!(
        page.eval("document.title").await,
        "HTTP/2.0 GET n=1|HTTP/2.0 GET n=2|HTTP/2.0 GET n=3"
    );
    server.wait_log_count(3, |l| l.ends_with("| CONNECT")).await;
}

#[tokio::test]
async fn a_graceful_shutdown_closes_every_stream_with_1001() {
    let dir = TempDir::new();
    let (pem, cert, key) = certificate(&dir);
    let tls = [format!("--sslcert={cert}"), format!("--sslkey={key}")];
    let mut server = Server::start(&["--ssl", &tls[0], &tls[1], "--http2", "cat"]).await;
    let mut h2 = h2_over_tls(&server, &pem).await;
    let authority = format!("localhost:{}", server.addr.port());
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(h2.websocket(&authority, "/", &[]).await.1.unwrap());
    }
    for ws in &mut sockets {
        echo(ws, "before").await;
    }
    server.signal(nix::sys::signal::Signal::SIGTERM);
    for ws in &mut sockets {
        let (code, _, _) = recv_close(ws).await;
        assert_eq!(code, 1001);
    }
    assert!(server.wait().await.success());
}

#[tokio::test]
async fn an_http2_websocket_goes_through_the_same_checks() {
    let dir = TempDir::new();
    let tokens = dir.path("tokens");
    std::fs::write(&tokens, "tok_h2_0123456789abcdef\n").unwrap();
    let server = Server::start(&[
        "--http2",
        "--maxforks=1",
        &format!("--tokens={tokens}"),
        "--origin=app.example",
        "--subprotocol=chat",
        "cat",
    ])
    .await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut h2 = H2::handshake(tcp).await;
    let authority = server.addr.to_string();
    let good = [("origin", "http://app.example"), ("sec-websocket-protocol", "chat")];
    assert_eq!(h2.websocket(&authority, "/", &good).await.0, 401);
    let path = "/?wsd_token=tok_h2_0123456789abcdef";
    assert_eq!(h2.websocket(&authority, path, &[("origin", "http://evil.example")]).await.0, 403);
    let (status, ws) = h2.websocket(&authority, path, &good).await;
    assert_eq!(status, 200);
    let mut ws = ws.unwrap();
    echo(&mut ws, "checked").await;
    assert_eq!(h2.websocket(&authority, path, &good).await.0, 429, "--maxforks=1");
}

#[tokio::test]
async fn the_console_and_cgi_scripts_answer_over_http2() {
    let server = Server::start(&["--http2", "--devconsole", "cat"]).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut h2 = H2::handshake(tcp).await;
    let (status, body) = h2.get(&server.addr.to_string(), "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("websocketd console"), "{body}");
    let dir = TempDir::new();
    let cgi = dir.path("cgi");
    std::fs::create_dir(&cgi).unwrap();
    let script = format!("{cgi}/proto");
    std::fs::write(&script, "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s %s\\n' \"$SERVER_PROTOCOL\" \"$REQUEST_METHOD\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let server = Server::start(&["--http2", &format!("--cgidir={cgi}")]).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut h2 = H2::handshake(tcp).await;
    let (status, body) = h2.get(&server.addr.to_string(), "/proto").await;
    assert_eq!((status, body.as_str()), (200, "HTTP/2.0 GET\n"));
}
