//! The developer console in a real headless Chromium: the page connects to its own URL, sends
//! a line, shows the echo as text, and shows the close. Driven over the DevTools protocol.
//! Without Chromium the test is skipped, except under CI=true, where it fails.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use websocketd_tests::*;

/// A headless Chromium, killed on drop.
struct Chromium {
    child: std::process::Child,
    _profile: TempDir,
    port: u16,
}

impl Chromium {
    fn start() -> Option<Chromium> {
        let binary = ["chromium", "chromium-browser"].into_iter().find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        });
        let Some(binary) = binary else {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "chromium is missing on CI");
            eprintln!("note: no chromium here; skipping the browser test");
            return None;
        };
        let profile = TempDir::new();
        let child = std::process::Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
            ])
            .args([
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .args(["--remote-debugging-port=0", "about:blank"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        Some(Chromium { child, _profile: profile, port: 0 })
    }

    /// The DevTools port, which Chromium writes to its profile once it listens.
    async fn port(&mut self) -> u16 {
        let file = self._profile.path("DevToolsActivePort");
        let text = wait_file(&file, "\n").await;
        self.port = text.lines().next().and_then(|p| p.parse().ok()).expect("DevTools port");
        self.port
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools session on one page.
struct Page {
    ws: Ws,
    next_id: u64,
}

impl Page {
    async fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = serde_json::json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        within(STEP, async {
            loop {
                let Some(Ok(Message::Text(text))) = self.ws.next().await else {
                    panic!("devtools closed")
                };
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                if v["id"] == id {
                    return v["result"].clone();
                }
            }
        })
        .await
    }

    async fn eval(&mut self, expr: &str) -> serde_json::Value {
        let r = self
            .call(
                "Runtime.evaluate",
                serde_json::json!({"expression": expr, "returnByValue": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Waits (bounded) until `expr` is true in the page.
    async fn until(&mut self, expr: &str) {
        within(STEP, async {
            while self.eval(expr).await != serde_json::Value::Bool(true) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    }
}

#[tokio::test]
async fn the_console_talks_to_the_endpoint_in_a_real_browser() {
    let Some(mut chromium) = Chromium::start() else { return };
    let server = Server::start(&["--devconsole", "cat"]).await;
    let port = chromium.port().await;
    let devtools = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let list =
        raw_http(devtools, &format!("GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"))
            .await;
    let targets: serde_json::Value =
        serde_json::from_str(list.split_once("\r\n\r\n").unwrap().1).unwrap();
    let page_url = targets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "page")
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .expect("a page target")
        .to_owned();
    let mut page = Page { ws: connect(&page_url).await, next_id: 0 };
    let console = format!("http://{}/chat?room=1", server.addr);
    page.call("Page.navigate", serde_json::json!({"url": console})).await;
    page.until("document.readyState === 'complete' && !!document.getElementById('connect')").await;
    let url = page.eval("document.getElementById('url').value").await;
    assert_eq!(url, format!("ws://{}/chat?room=1", server.addr));
    page.eval("document.getElementById('connect').click()").await;
    page.until("document.getElementById('log').innerText.includes('onopen')").await;
    page.eval(
        "(() => { const i = document.getElementById('send'); i.value = 'hello <b>browser</b>';
                  i.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'})); })()",
    )
    .await;
    page.until("document.getElementById('log').innerText.includes('message hello <b>browser</b>')")
        .await;
    assert_eq!(
        page.eval("document.querySelectorAll('#log b').length").await,
        0,
        "a message became HTML"
    );
    page.eval("document.getElementById('disconnect').click()").await;
    page.until("document.getElementById('log').innerText.includes('[Clean: true')").await;
    server
        .wait_log(|l| {
            l.contains("url:'http://127.0.0.1:")
                && l.contains("/chat?room=1'")
                && l.ends_with("| DISCONNECT")
        })
        .await;
}
