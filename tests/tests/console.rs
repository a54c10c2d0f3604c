//! The developer console in a real headless Chromium: the page connects to its own URL, sends
//! a line, shows the echo as text, and shows the close. Driven over the DevTools protocol.
//! Two pages on one `--broadcast` URL show the same messages. Without Chromium the tests are
//! skipped, except under CI=true, where they fail.

use std::os::unix::process::CommandExt;
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
            // A group of its own, so that its helper processes go with it.
            .process_group(0)
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
        // The whole group: a helper left behind would write into the profile after it is
        // removed, and leave it in the temp directory.
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while processes().iter().any(|p| p.pgrp == self.child.id() && p.state != 'Z')
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
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

/// A page in a fresh headless Chromium (`None` when there is none, except on CI).
async fn browser() -> Option<(Chromium, Page)> {
    let mut chromium = Chromium::start()?;
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
    let page = Page { ws: connect(&page_url).await, next_id: 0 };
    Some((chromium, page))
}

impl Page {
    /// Opens the console at `url` and waits until it is ready.
    async fn open(&mut self, url: &str) {
        self.call("Page.navigate", serde_json::json!({"url": url})).await;
        self.until("document.readyState === 'complete' && !!document.getElementById('connect')")
            .await;
    }

    /// Clicks Connect and waits for the log entry matching `selector`, then returns its text
    /// (without its timestamp).
    async fn connect_until(&mut self, selector: &str) -> String {
        self.eval("document.getElementById('connect').click()").await;
        self.entry(selector).await
    }

    /// Waits for the last log entry matching `selector` and returns its text, timestamp left
    /// out.
    async fn entry(&mut self, selector: &str) -> String {
        let found = format!("!!document.querySelector('#log {selector}')");
        self.until(&found).await;
        let text = format!(
            "(() => {{ const all = document.querySelectorAll('#log {selector}');
                       const e = all[all.length - 1];
                       return e.innerText.slice(e.querySelector('time').innerText.length).trim(); }})()"
        );
        self.eval(&text).await.as_str().expect("text").to_owned()
    }
}

#[tokio::test]
async fn the_console_talks_to_the_endpoint_in_a_real_browser() {
    let Some((_chromium, mut page)) = browser().await else { return };
    let server = Server::start(&["--devconsole", "cat"]).await;
    page.open(&format!("http://{}/chat?room=1", server.addr)).await;
    let url = page.eval("document.getElementById('url').value").await;
    assert_eq!(url, format!("ws://{}/chat?room=1", server.addr));
    // It says what it is and what to do.
    assert_eq!(page.eval("document.querySelector('h1').innerText").await, "websocketd console");
    let hint = page.eval("document.getElementById('hint').innerText").await;
    assert!(hint.as_str().is_some_and(|h| h.contains("Connect starts the program")), "{hint}");
    let opened = page.connect_until(".entry.open").await;
    assert_eq!(opened, "open connected");
    page.eval(
        "(() => { const i = document.getElementById('send'); i.value = 'hello <b>browser</b>';
                  i.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'})); })()",
    )
    .await;
    assert_eq!(page.entry(".entry.message").await, "message hello <b>browser</b>");
    assert_eq!(
        page.eval("document.querySelectorAll('#log b').length").await,
        0,
        "a message became HTML"
    );
    page.eval("document.getElementById('disconnect').click()").await;
    assert_eq!(page.entry(".entry.close.normal").await, "closed you disconnected (1005)");
    // Every line has its time.
    let stamped = page
        .eval(
            "Array.from(document.querySelectorAll('#log .entry')).every(e =>
               /^\\d\\d:\\d\\d:\\d\\d\\.\\d\\d\\d$/.test(e.querySelector('time').innerText))",
        )
        .await;
    assert_eq!(stamped, true, "an entry without its time");
    assert_eq!(
        page.eval("document.querySelectorAll('#log .failure, #log .error').length").await,
        0
    );
    server
        .wait_log(|l| {
            l.contains("url:'http://127.0.0.1:")
                && l.contains("/chat?room=1'")
                && l.ends_with("| DISCONNECT")
        })
        .await;
}

#[tokio::test]
async fn the_console_tells_a_normal_end_from_a_failure_and_a_refusal() {
    let Some((_chromium, mut page)) = browser().await else { return };
    let dir = TempDir::new();
    for (name, body) in [("ok.sh", "echo hi"), ("fail.sh", "echo oops; exit 3")] {
        let path = dir.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let server = Server::start(&["--devconsole", &format!("--dir={}", dir.0.display())]).await;

    page.open(&format!("http://{}/ok.sh", server.addr)).await;
    // A clean 1000 is a normal end, and its empty reason is not shown.
    assert_eq!(
        page.connect_until(".entry.close").await,
        "closed the program ended normally (1000)"
    );
    assert_eq!(page.eval("document.querySelectorAll('#log .close.normal').length").await, 1);
    assert_eq!(page.entry(".entry.message").await, "message hi");

    page.open(&format!("http://{}/fail.sh", server.addr)).await;
    let failure = page.connect_until(".entry.close").await;
    assert_eq!(
        failure,
        "closed code 1011, the program failed or the server could not run it: exit status 3"
    );
    assert_eq!(page.eval("document.querySelectorAll('#log .close.failure').length").await, 1);

    // No program at this URL: the handshake gets a 404, and the page says where to look.
    page.open(&format!("http://{}/missing.sh", server.addr)).await;
    let refused = page.connect_until(".entry.refused").await;
    assert!(refused.ends_with("the server log says why"), "{refused}");
    assert!(refused.contains("404"), "{refused}");
    assert_eq!(page.eval("document.querySelectorAll('#log .close, #log .open').length").await, 0);
    server.wait_log(|l| l.ends_with("| NOT FOUND: script not found")).await;

    // An origin that is not allowed (403) is a refusal too.
    let strict = Server::start(&["--devconsole", "--origin=elsewhere.example", "cat"]).await;
    page.open(&format!("http://{}/", strict.addr)).await;
    let refused = page.connect_until(".entry.refused").await;
    assert!(refused.ends_with("the server log says why"), "{refused}");
    strict.wait_log(|l| l.ends_with("| Origin is not listed in allowed list")).await;
}

/// Another page (tab) of the same Chromium.
async fn another_page(chromium: &Chromium) -> Page {
    let port = chromium.port;
    let devtools = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let made = raw_http(
        devtools,
        &format!("PUT /json/new?about:blank HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"),
    )
    .await;
    let target: serde_json::Value =
        serde_json::from_str(made.split_once("\r\n\r\n").expect("a body").1).expect("json");
    let url = target["webSocketDebuggerUrl"].as_str().expect("the new page's DevTools URL");
    Page { ws: connect(url).await, next_id: 0 }
}

#[tokio::test]
async fn two_browser_pages_on_one_broadcast_url_show_the_same_messages() {
    let Some((chromium, mut first)) = browser().await else { return };
    let mut second = another_page(&chromium).await;
    let server = Server::start(&["--broadcast", "sh", "-c", "read go; seq 1 50"]).await;
    let open = format!(
        "window.got = []; window.ws = new WebSocket('ws://{}/feed');
         ws.onmessage = e => got.push(e.data); ws.onclose = e => window.code = e.code; true",
        server.addr
    );
    for page in [&mut first, &mut second] {
        assert_eq!(page.eval(&open).await, true);
        page.until("ws.readyState === 1").await;
    }
    server.wait_log_count(2, |l| l.contains("| CONNECT")).await;
    first.eval("ws.send('go')").await;
    let want: Vec<String> = (1..=50).map(|i| i.to_string()).collect();
    for page in [&mut first, &mut second] {
        page.until("window.code === 1000").await;
        let got = page.eval("got").await;
        let got: Vec<String> = serde_json::from_value(got).expect("strings");
        assert_eq!(got, want);
    }
    let started = server.logs().iter().filter(|l| l.contains("Started shared program")).count();
    assert_eq!(started, 1);
}
