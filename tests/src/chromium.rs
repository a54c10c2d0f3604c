//! A real headless Chromium for the browser tests, driven over the DevTools protocol: a
//! fresh profile, the flags of a closed network, its whole process group killed on drop.
//! Without Chromium a test is skipped, except under CI=true, where it fails.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Ws, connect, raw_http};
use crate::process::processes;
use crate::server::TempDir;
use crate::wait::{STEP, wait_file, within};

/// A headless Chromium, killed on drop.
#[derive(Debug)]
pub struct Chromium {
    child: std::process::Child,
    _profile: TempDir,
    port: u16,
}

impl Chromium {
    /// Starts one (`None` when there is none, except on CI).
    pub fn start() -> Option<Chromium> {
        Chromium::start_with(&[])
    }

    /// Starts one with `extra` flags as well.
    pub fn start_with(extra: &[&str]) -> Option<Chromium> {
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
            .args(extra)
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
    pub async fn port(&mut self) -> u16 {
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
#[derive(Debug)]
pub struct Page {
    ws: Ws,
    next_id: u64,
}

impl Page {
    /// Calls DevTools `method` with `params` and returns its result.
    pub async fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
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

    /// The value of the JavaScript `expr` in the page.
    pub async fn eval(&mut self, expr: &str) -> serde_json::Value {
        let r = self
            .call(
                "Runtime.evaluate",
                serde_json::json!({"expression": expr, "returnByValue": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Waits (bounded) until `expr` is true in the page.
    pub async fn until(&mut self, expr: &str) {
        within(STEP, async {
            while self.eval(expr).await != serde_json::Value::Bool(true) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    }
}

/// A page in a fresh headless Chromium (`None` when there is none, except on CI).
pub async fn browser() -> Option<(Chromium, Page)> {
    browser_with(&[]).await
}

/// As [`browser`], Chromium started with `extra` flags as well.
pub async fn browser_with(extra: &[&str]) -> Option<(Chromium, Page)> {
    let mut chromium = Chromium::start_with(extra)?;
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
    pub async fn open(&mut self, url: &str) {
        self.call("Page.navigate", serde_json::json!({"url": url})).await;
        self.until("document.readyState === 'complete' && !!document.getElementById('connect')")
            .await;
    }

    /// Clicks Connect and waits for the log entry matching `selector`, then returns its text
    /// (without its timestamp).
    pub async fn connect_until(&mut self, selector: &str) -> String {
        self.eval("document.getElementById('connect').click()").await;
        self.entry(selector).await
    }

    /// Waits for the last log entry matching `selector` and returns its text, timestamp left
    /// out.
    pub async fn entry(&mut self, selector: &str) -> String {
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

/// Another page (tab) of the same Chromium.
pub async fn another_page(chromium: &Chromium) -> Page {
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
