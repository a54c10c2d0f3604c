//! The developer console in a real headless Chromium: the page connects to its own URL, sends
//! a line, shows the echo as text, and shows the close. Driven over the DevTools protocol.
//! Two pages on one `--broadcast` URL show the same messages. Without Chromium the tests are
//! skipped, except under CI=true, where they fail.

use websocketd_tests::*;

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

#[tokio::test]
async fn the_resume_switch_takes_the_session_back_after_a_drop() {
    let Some((_chromium, mut page)) = browser().await else { return };
    let counter = "i=1; while [ $i -le 100 ]; do echo $i; i=$((i+1)); sleep 0.02; done";
    let server = Server::start(&["--devconsole", "--resumems=10000", "sh", "-c", counter]).await;
    let proxy = CutProxy::start(server.addr).await;
    page.open(&format!("http://{}/", server.addr)).await;
    let set = format!(
        "document.getElementById('url').value = 'ws://{}/';
         document.getElementById('resume').checked = true; true",
        proxy.addr
    );
    assert_eq!(page.eval(&set).await, true);
    assert_eq!(page.connect_until(".entry.open").await, "open connected");
    let messages = "document.querySelectorAll('#log .entry.message').length";
    for round in 1..=2 {
        server.wait_log_count(round, |l| l.contains("| CONNECT")).await;
        page.until(&format!("{messages} >= {}", round * 20)).await;
        proxy.cut();
        page.until(&format!(
            "document.querySelectorAll('#log .entry.resuming').length === {round}"
        ))
        .await;
    }
    assert_eq!(page.entry(".entry.close").await, "closed the program ended normally (1000)");
    let texts = page
        .eval(
            "Array.from(document.querySelectorAll('#log .entry.message')).map(e =>
               e.innerText.slice(e.querySelector('time').innerText.length).trim())",
        )
        .await;
    let texts: Vec<String> = serde_json::from_value(texts).expect("strings");
    let want: Vec<String> = (1..=100).map(|i| format!("message {i}")).collect();
    assert_eq!(texts, want, "every message once, in order");
    let resuming = page.entry(".entry.resuming").await;
    assert!(resuming.starts_with("resuming connection lost after "), "{resuming}");
    assert_eq!(page.eval("document.querySelectorAll('#log .failure').length").await, 0);
}
