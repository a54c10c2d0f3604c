//! The log on the server's stdout: websocketd's exact line format, the child's stderr as
//! ERROR lines (long lines in pieces, never stalling the child), and `--loglevel`.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use websocketd_tests::*;

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Takes `n` ASCII digits off the front of `s`.
fn digits(s: &str, n: usize) -> Result<&str, String> {
    match s.get(..n) {
        Some(d) if d.bytes().all(|b| b.is_ascii_digit()) => Ok(&s[n..]),
        _ => Err(format!("expected {n} digits at {s:?}")),
    }
}

/// Takes `lit` off the front of `s`.
fn lit<'a>(s: &'a str, lit: &str) -> Result<&'a str, String> {
    s.strip_prefix(lit).ok_or_else(|| format!("expected {lit:?} at {s:?}"))
}

/// Takes `key:'value'` off the front of `s` and returns the value and the rest.
fn field<'a>(s: &'a str, key: &str) -> Result<(&'a str, &'a str), String> {
    let rest = lit(s, &format!("{key}:'"))?;
    let end = rest.find('\'').ok_or_else(|| format!("unterminated {key} at {s:?}"))?;
    Ok((&rest[..end], &rest[end + 1..]))
}

/// Checks `Mon, 02 Jan 2006 15:04:05 -0700 | ` and returns the rest.
fn timestamp(line: &str) -> Result<&str, String> {
    let day = line.get(..3).ok_or("line too short")?;
    if !DAYS.contains(&day) {
        return Err(format!("bad day in {line:?}"));
    }
    let s = lit(&line[3..], ", ")?;
    let s = lit(digits(s, 2)?, " ")?;
    let month = s.get(..3).ok_or("line too short")?;
    if !MONTHS.contains(&month) {
        return Err(format!("bad month in {line:?}"));
    }
    let s = lit(&s[3..], " ")?;
    let s = lit(digits(s, 4)?, " ")?;
    let s = lit(digits(s, 2)?, ":")?;
    let s = lit(digits(s, 2)?, ":")?;
    let s = lit(digits(s, 2)?, " ")?;
    let s = s.strip_prefix(['+', '-']).ok_or_else(|| format!("no zone sign at {s:?}"))?;
    lit(digits(s, 4)?, " | ")
}

/// A session line's association, as parsed.
#[derive(Debug)]
struct Session<'a> {
    url: &'a str,
    id: &'a str,
    remote: &'a str,
    command: &'a str,
    origin: &'a str,
    pid: Option<&'a str>,
    exit: Option<&'a str>,
    message: &'a str,
}

/// Parses `<time> | <level> | <category> | url:'…' id:'…' remote:'…' command:'…'
/// origin:'…'[ pid:'…'][ exit:'…'] | <message>`, where `head` is `<level> | <category> | `
/// padded.
fn session_line<'a>(line: &'a str, head: &str) -> Result<Session<'a>, String> {
    let s = lit(timestamp(line)?, head)?;
    let (url, s) = field(s, "url")?;
    let (id, s) = field(lit(s, " ")?, "id")?;
    let (remote, s) = field(lit(s, " ")?, "remote")?;
    let (command, s) = field(lit(s, " ")?, "command")?;
    let (origin, s) = field(lit(s, " ")?, "origin")?;
    let (pid, s) = match s.strip_prefix(" pid:'") {
        Some(_) => {
            let (pid, s) = field(&s[1..], "pid")?;
            (Some(pid), s)
        }
        None => (None, s),
    };
    let (exit, s) = match s.strip_prefix(" exit:'") {
        Some(_) => {
            let (exit, s) = field(&s[1..], "exit")?;
            (Some(exit), s)
        }
        None => (None, s),
    };
    let message = lit(s, " | ")?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("id is not a number in {line:?}"));
    }
    if let Some(pid) = pid {
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("pid is not a number in {line:?}"));
        }
    }
    if exit.is_some_and(str::is_empty) {
        return Err(format!("exit is empty in {line:?}"));
    }
    Ok(Session { url, id, remote, command, origin, pid, exit, message })
}

const ACCESS_SESSION: &str = "ACCESS | session    | ";
const ERROR_STDERR: &str = "ERROR  | stderr     | ";

fn is_stderr_line(l: &str) -> bool {
    l.contains(" | ERROR  | stderr     | ")
}

/// The message of a stderr line if it is a non-empty run of `e`.
fn e_piece(l: &str) -> Option<usize> {
    let msg = l.rsplit_once(" | ")?.1;
    (is_stderr_line(l) && !msg.is_empty() && msg.bytes().all(|b| b == b'e')).then_some(msg.len())
}

#[tokio::test]
async fn connect_and_disconnect_lines_have_websocketds_exact_format() {
    let server = Server::start(&["cat"]).await;
    let mut ws = server.connect("/some/path?q=1").await;
    send_text(&mut ws, "hello").await;
    assert_eq!(recv_text(&mut ws).await, "hello");
    let connect = server.wait_log(|l| l.ends_with("| CONNECT")).await;
    within(STEP, ws.close(None)).await.expect("close");
    let disconnect = server.wait_log(|l| l.ends_with("| DISCONNECT")).await;

    let c = session_line(&connect, ACCESS_SESSION).unwrap_or_else(|e| panic!("{e}\n{connect}"));
    let d =
        session_line(&disconnect, ACCESS_SESSION).unwrap_or_else(|e| panic!("{e}\n{disconnect}"));
    let url = format!("http://127.0.0.1:{}/some/path?q=1", server.addr.port());
    for s in [&c, &d] {
        assert_eq!(s.url, url);
        assert_eq!(s.remote, "127.0.0.1");
        assert_eq!(s.origin, "file:");
        assert!(s.command.starts_with('/') && s.command.ends_with("/cat"), "{}", s.command);
        assert!(std::path::Path::new(s.command).is_file(), "{} is the resolved program", s.command);
    }
    assert_eq!(c.message, "CONNECT");
    assert_eq!(c.pid, None, "CONNECT comes before the process exists");
    assert_eq!(d.message, "DISCONNECT");
    assert_eq!(d.id, c.id, "both lines belong to the same connection");
    let pid = d.pid.expect("DISCONNECT names the pid");
    assert_ne!(pid, "0");
    assert_eq!(c.exit, None, "CONNECT comes before the process ends");
    assert_eq!(d.exit, Some("status 0"), "cat ends at the end of its stdin: {disconnect}");
}

/// The DISCONNECT line of the one session `ws` had, once the session is over.
async fn disconnect_of(server: &Server, ws: &mut Ws) -> String {
    let _ = recv_close(ws).await;
    server.wait_log(|l| l.ends_with("| DISCONNECT")).await
}

#[tokio::test]
async fn the_disconnect_line_says_how_the_program_ended() {
    let exit = |line: &str| {
        let s = session_line(line, ACCESS_SESSION).unwrap_or_else(|e| panic!("{e}\n{line}"));
        s.exit.map(str::to_owned)
    };
    // On its own, with a status.
    let server = Server::start(&["sh", "-c", "exit 3"]).await;
    let line = disconnect_of(&server, &mut server.connect("/").await).await;
    assert_eq!(exit(&line).as_deref(), Some("status 3"), "{line}");
    // Stopped by the ladder after the client left: SIGINT is ignored, SIGTERM ends it.
    let server = Server::start(&["sh", "-c", "trap '' INT; exec sleep 30"]).await;
    let mut ws = server.connect("/").await;
    within(STEP, ws.close(None)).await.expect("close");
    let line = disconnect_of(&server, &mut ws).await;
    assert_eq!(exit(&line).as_deref(), Some("signal 15 (SIGTERM)"), "{line}");
    // Never started: the script's interpreter does not exist.
    let dir = TempDir::new();
    let bad = dir.path("bad.sh");
    std::fs::write(&bad, "#!/no/such/interpreter\n").unwrap();
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&bad, executable).unwrap();
    let server = Server::start(&[&format!("--dir={}", dir.0.display())]).await;
    let mut ws = server.connect("/bad.sh").await;
    let (code, reason, _) = recv_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1011, "could not launch process"));
    let line = server.wait_log(|l| l.ends_with("| DISCONNECT")).await;
    assert_eq!(exit(&line).as_deref(), Some("not started"), "{line}");
}

#[tokio::test]
async fn no_stderr_line_is_logged_after_its_sessions_disconnect() {
    // Each program says goodbye on stderr when the ladder's SIGINT comes, after its client
    // left, and writes a burst of lines just before it exits on its own: both are still
    // being read when the process group is gone.
    let script = "trap 'echo \"bye $$\" >&2; exit 0' INT; echo ready; read -r line; \
                  i=0; while [ $i -lt 200 ]; do echo \"late $i\" >&2; i=$((i+1)); done; \
                  while :; do sleep 0.01; done";
    let server = Server::start(&["sh", "-c", script]).await;
    let sessions = 20;
    let mut clients = Vec::new();
    for _ in 0..sessions {
        let mut ws = server.connect("/").await;
        assert_eq!(recv_text(&mut ws).await, "ready");
        clients.push(ws);
    }
    for ws in &mut clients {
        send_text(ws, "go").await;
    }
    // The 200 lines of every session come before it is closed.
    server.wait_log_count(200 * sessions, |l| is_stderr_line(l) && l.contains("| late ")).await;
    for mut ws in clients {
        within(STEP, ws.close(None)).await.expect("close");
    }
    server.wait_log_count(sessions, |l| l.ends_with("| DISCONNECT")).await;
    let logs = server.logs();
    let id =
        |l: &str| l.split(" id:'").nth(1).and_then(|r| r.split('\'').next()).map(str::to_owned);
    let mut byes = 0;
    for (at, line) in logs.iter().enumerate().filter(|(_, l)| l.ends_with("| DISCONNECT")) {
        let session = id(line).expect("an id");
        let late: Vec<&String> = logs[at..]
            .iter()
            .filter(|l| is_stderr_line(l) && id(l).as_ref() == Some(&session))
            .collect();
        assert!(late.is_empty(), "logged after {line}: {late:?}");
        byes += logs[..at]
            .iter()
            .filter(|l| {
                is_stderr_line(l) && id(l).as_ref() == Some(&session) && l.contains("| bye ")
            })
            .count();
    }
    assert_eq!(byes, sessions, "every goodbye is logged, before its DISCONNECT");
}

#[tokio::test]
async fn a_stderr_line_is_logged_as_error_with_the_session_association() {
    let stderr_sh = fixture("stderr.sh");
    let server = Server::start(&[&stderr_sh, "10"]).await;
    let mut ws = server.connect("/err").await;
    assert_eq!(recv_text(&mut ws).await, "after");
    let line = server.wait_log(|l| is_stderr_line(l) && l.ends_with("| to-stderr line1")).await;
    let s = session_line(&line, ERROR_STDERR).unwrap_or_else(|e| panic!("{e}\n{line}"));
    assert_eq!(s.url, format!("http://127.0.0.1:{}/err", server.addr.port()));
    assert_eq!(s.remote, "127.0.0.1");
    assert_eq!(s.command, stderr_sh);
    assert_eq!(s.origin, "file:");
    assert!(s.pid.is_some(), "a stderr line names the pid: {line}");
    assert_eq!(s.message, "to-stderr line1");
    let ten = server.wait_log(|l| e_piece(l).is_some()).await;
    assert_eq!(e_piece(&ten), Some(10), "{ten}");
}

#[tokio::test]
async fn a_megabyte_stderr_line_is_logged_in_pieces_without_stalling_the_child() {
    const N: usize = 1_000_000;
    let stderr_sh = fixture("stderr.sh");
    let server = Server::start(&[&stderr_sh, &N.to_string()]).await;
    let mut ws = server.connect("/").await;
    // If stderr were not drained past a full pipe, `after` would never come.
    assert_eq!(recv_text(&mut ws).await, "after");
    // Wait, one new log line at a time, until every byte of the line has been logged.
    let total = |server: &Server| -> (usize, usize) {
        let pieces: Vec<usize> = server.logs().iter().filter_map(|l| e_piece(l)).collect();
        (pieces.len(), pieces.iter().sum())
    };
    loop {
        let (count, sum) = total(&server);
        if sum >= N {
            break;
        }
        server.wait_log_count(count + 1, |l| e_piece(l).is_some()).await;
    }
    let (count, sum) = total(&server);
    assert_eq!(sum, N, "every byte of the long line is logged exactly once");
    assert!(count >= 2, "a 1 MB line is logged in several pieces, got {count}");
    assert!(server.logs().iter().any(|l| l.ends_with("| to-stderr line1")));
    within(STEP, ws.close(None)).await.expect("close");
    server.wait_log(|l| l.ends_with("| DISCONNECT")).await;
}

#[tokio::test]
async fn loglevel_debug_shows_process_debug_lines() {
    let server = Server::start(&["--loglevel=debug", "echo", "hi"]).await;
    let mut ws = server.connect("/").await;
    let (code, _, data) = recv_close(&mut ws).await;
    assert_eq!(code, 1000);
    assert_eq!(data, [Message::text("hi")]);
    let line = server
        .wait_log(|l| l.contains(" | DEBUG  | process    | ") && l.contains("terminated after"))
        .await;
    let s = session_line(&line, "DEBUG  | process    | ").unwrap_or_else(|e| panic!("{e}\n{line}"));
    let pid = s.pid.expect("pid");
    assert!(s.message.starts_with(&format!("Process {pid} terminated after")), "{line}");
}

#[tokio::test]
async fn default_loglevel_hides_debug_lines() {
    let server = Server::start(&["echo", "hi"]).await;
    let mut ws = server.connect("/").await;
    assert_eq!(recv_close(&mut ws).await.0, 1000);
    server.wait_log(|l| l.ends_with("| DISCONNECT")).await;
    let logs = server.logs();
    assert!(
        logs.iter().all(|l| !l.contains("| DEBUG  |") && !l.contains("| TRACE  |")),
        "{logs:#?}"
    );
}

#[tokio::test]
async fn a_request_that_is_not_an_upgrade_logs_not_found_in_category_http() {
    let server = Server::start(&["cat"]).await;
    let port = server.addr.port();
    let reply = raw_http(
        server.addr,
        &format!("GET /nothing HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    let line = server.wait_log(|l| l.contains(" | ACCESS | http       | ")).await;
    let rest = timestamp(&line).unwrap_or_else(|e| panic!("{e}\n{line}"));
    let rest = lit(rest, "ACCESS | http       | ").unwrap_or_else(|e| panic!("{e}"));
    let (url, _) = field(rest, "url").unwrap_or_else(|e| panic!("{e}\n{line}"));
    assert_eq!(url, format!("http://127.0.0.1:{port}/nothing"));
    assert!(line.contains(" remote:'127.0.0.1'"), "{line}");
    assert!(line.ends_with(" | NOT FOUND"), "{line}");
}

/// A websocketd started by hand, for log levels that hide the start-up line the harness
/// waits for.
struct Manual {
    child: tokio::process::Child,
    port: u16,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Manual {
    fn start(args: &[&str]) -> Manual {
        // The port is chosen by binding and releasing it: the start-up line that would tell us
        // is hidden at these levels.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = tokio::process::Command::new(binary())
            .arg("--address=127.0.0.1")
            .arg(format!("--port={port}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start websocketd");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Manual { child, port, lines }
    }

    /// Connects, retrying while the port refuses. This is the one readiness poll in the
    /// suites: at these log levels the server announces nothing we could wait for.
    async fn connect(&mut self, path: &str) -> Ws {
        let url = format!("ws://127.0.0.1:{}{path}", self.port);
        within(STEP, async {
            loop {
                match tokio_tungstenite::connect_async(url.as_str()).await {
                    Ok((ws, _)) => return ws,
                    Err(tokio_tungstenite::tungstenite::Error::Io(e))
                        if e.kind() == std::io::ErrorKind::ConnectionRefused =>
                    {
                        assert!(
                            self.child.try_wait().expect("try_wait").is_none(),
                            "websocketd exited"
                        );
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("connect {url}: {e}"),
                }
            }
        })
        .await
    }

    /// The next log line (bounded).
    async fn next_line(&mut self) -> Option<String> {
        within(STEP, self.lines.recv()).await
    }

    /// Waits until the server has no live child process.
    async fn wait_no_children(&self) {
        let pid = self.child.id().expect("running");
        within(STEP, async {
            while processes().iter().any(|p| p.ppid == pid && p.state != 'Z' && !is_guardian(p.pid))
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// Stops the server with SIGTERM and returns every log line it still had to give.
    async fn stop(mut self) -> Vec<String> {
        let pid = nix::unistd::Pid::from_raw(self.child.id().expect("running") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        within(STEP, self.child.wait()).await.expect("wait for websocketd");
        let mut rest = Vec::new();
        while let Some(line) = self.next_line().await {
            rest.push(line);
        }
        rest
    }
}

/// One session with stderr.sh: `after` arrives, the client leaves, the child is gone.
async fn stderr_session(server: &mut Manual) {
    let mut ws = server.connect("/").await;
    assert_eq!(recv_text(&mut ws).await, "after");
    within(STEP, ws.close(None)).await.expect("close");
    let _ = recv_close(&mut ws).await;
    server.wait_no_children().await;
}

#[tokio::test]
async fn loglevel_error_hides_access_and_info_but_keeps_stderr_lines() {
    let stderr_sh = fixture("stderr.sh");
    let mut server = Manual::start(&["--loglevel=error", &stderr_sh, "10"]);
    stderr_session(&mut server).await;
    let mut seen = Vec::new();
    // The stderr line must come; everything before it is checked too.
    loop {
        let line = server.next_line().await.expect("the stderr line before the log ended");
        let done =
            line.contains(" | ERROR  | stderr     | ") && line.ends_with("| to-stderr line1");
        seen.push(line);
        if done {
            break;
        }
    }
    seen.extend(server.stop().await);
    for line in &seen {
        assert!(
            !line.contains("| ACCESS |") && !line.contains("| INFO   |"),
            "shown at --loglevel=error: {line}"
        );
        assert!(line.contains("| ERROR  |") || line.contains("| FATAL  |"), "{line}");
    }
}

#[tokio::test]
async fn loglevel_none_prints_nothing_at_all() {
    let stderr_sh = fixture("stderr.sh");
    let mut server = Manual::start(&["--loglevel=none", &stderr_sh, "10"]);
    stderr_session(&mut server).await;
    let all = server.stop().await;
    assert!(all.is_empty(), "printed at --loglevel=none: {all:#?}");
}

#[test]
fn the_line_checker_rejects_near_misses() {
    let good = "Tue, 24 Nov 2026 15:11:04 +0000 | ACCESS | session    | url:'http://h/' id:'1' \
                remote:'127.0.0.1' command:'/bin/cat' origin:'file:' pid:'7' | DISCONNECT";
    let s = session_line(good, ACCESS_SESSION).expect("the good line parses");
    assert_eq!((s.pid, s.exit, s.message), (Some("7"), None, "DISCONNECT"));
    let ended = good.replace("pid:'7'", "pid:'7' exit:'status 0'");
    let s = session_line(&ended, ACCESS_SESSION).expect("the line with an exit parses");
    assert_eq!((s.pid, s.exit), (Some("7"), Some("status 0")));
    for bad in [
        good.replace("Tue,", "Tue"),
        good.replace("Nov", "nov"),
        good.replace(" +0000", " 0000"),
        good.replace("15:11:04", "15:11"),
        good.replace("session    |", "session   |"),
        good.replace("ACCESS |", "ACCESS  |"),
        good.replace(" id:'1'", ""),
        good.replace("id:'1'", "id:'x'"),
        good.replace("pid:'7'", "pid:''"),
        good.replace(
            " remote:'127.0.0.1' command:'/bin/cat'",
            " command:'/bin/cat' remote:'127.0.0.1'",
        ),
        good.replace(" | DISCONNECT", " DISCONNECT"),
        good.replace("pid:'7'", "pid:'7' exit:''"),
        good.replace("pid:'7'", "exit:'status 0' pid:'7'"),
    ] {
        assert!(session_line(&bad, ACCESS_SESSION).is_err(), "accepted {bad:?}");
    }
}

#[tokio::test]
async fn start_up_lines_print_every_path_absolute() {
    let dir = TempDir::new();
    for sub in ["static", "cgi", "scripts"] {
        std::fs::create_dir(dir.path(sub)).unwrap();
    }
    let prog = dir.path("prog.sh");
    std::fs::write(&prog, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let start = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(binary());
        cmd.args(["--address=127.0.0.1", "--port=0"]).args(args).current_dir(&dir.0);
        Server::launch(cmd)
    };
    let server = start(&["--staticdir=static", "--cgidir=./cgi", "./prog.sh", "arg"]).await;
    let root = dir.0.display();
    for line in [
        format!("| Serving using application   : {root}/prog.sh arg"),
        format!("| Serving static content from : {root}/static"),
        format!("| Serving CGI scripts from    : {root}/cgi"),
    ] {
        server.wait_log(|l| l.ends_with(&line)).await;
    }
    let server = start(&["--dir=scripts"]).await;
    server
        .wait_log(|l| l.ends_with(&format!("| Serving from directory      : {root}/scripts")))
        .await;
}

#[tokio::test]
async fn logformat_json_writes_one_object_a_line_with_the_same_fields() {
    let server = Server::start(&[
        "--logformat=json",
        "sh",
        "-c",
        "echo hi; echo 'a \"quoted\" stderr line' >&2; read x",
    ])
    .await;
    let mut ws = server.connect("/chat?room=1").await;
    assert_eq!(recv_text(&mut ws).await, "hi");
    server.wait_log(|l| l.contains("quoted")).await;
    // The program reads this and ends: the session's summary counts it.
    send_text(&mut ws, "hello").await;
    assert_eq!(recv_close(&mut ws).await.0, 1000);
    server.wait_log(|l| l.contains("\"DISCONNECT\"")).await;
    let lines: Vec<serde_json::Value> = server
        .logs()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message}: {lines:#?}"))
    };
    let connect = find("CONNECT");
    assert_eq!(connect["level"], "ACCESS");
    assert_eq!(connect["category"], "session");
    assert!(connect["url"].as_str().is_some_and(|u| u.ends_with("/chat?room=1")), "{connect}");
    assert_eq!(connect["remote"], "127.0.0.1");
    assert_eq!(connect["command"], "/usr/bin/sh");
    assert_eq!(connect["origin"], "file:");
    assert!(connect["id"].as_str().is_some_and(|id| id.parse::<u64>().is_ok()), "{connect}");
    let time = connect["time"].as_str().expect("a time");
    chrono_like(time);
    let stderr = find("a \"quoted\" stderr line");
    assert_eq!(
        (stderr["level"].as_str(), stderr["category"].as_str()),
        (Some("ERROR"), Some("stderr"))
    );
    assert_eq!(stderr["id"], connect["id"]);
    let disconnect = find("DISCONNECT");
    assert!(disconnect["exit"].as_str().is_some(), "{disconnect}");
    // Recorded once the program started, as in the text lines.
    assert!(disconnect["pid"].as_str().is_some_and(|p| p.parse::<u32>().is_ok()), "{disconnect}");
    assert_eq!(disconnect["pid"], stderr["pid"]);
    // The summary: what moved each way, and for how long (the text lines leave it out).
    let summary = ["messages_in", "bytes_in", "messages_out", "bytes_out"].map(|k| &disconnect[k]);
    assert_eq!(summary, ["1", "5", "1", "2"], "{disconnect}");
    assert_eq!(
        (disconnect["ended_by"].as_str(), disconnect["close"].as_str()),
        (Some("program"), Some("sent 1000"))
    );
    let duration = disconnect["duration"].as_str().expect("a duration");
    let seconds = duration.strip_suffix('s').and_then(|d| d.parse::<f64>().ok());
    assert!(seconds.is_some_and(|s| s > 0.0 && s < 60.0), "{duration}");
    assert!(lines.iter().any(|l| l["category"] == "server" && l["level"] == "INFO"));
}

/// `2006-01-02T15:04:05.000+07:00`: RFC 3339 with milliseconds and the offset.
fn chrono_like(time: &str) {
    let b = time.as_bytes();
    let ok = b.len() == 29
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16, 26].iter().all(|&i| b[i] == b':')
        && b[19] == b'.'
        && (b[23] == b'+' || b[23] == b'-');
    assert!(ok, "not RFC 3339 with milliseconds: {time}");
}

#[tokio::test]
async fn logsummary_puts_the_summary_on_the_text_disconnect_line() {
    let server = Server::start(&["--logsummary", "sh", "-c", "echo hi; read x"]).await;
    let mut ws = server.connect("/").await;
    assert_eq!(recv_text(&mut ws).await, "hi");
    send_text(&mut ws, "hello").await;
    assert_eq!(recv_close(&mut ws).await.0, 1000);
    let line = server.wait_log(|l| l.ends_with("| DISCONNECT")).await;
    for pair in [
        " messages_in:'1'",
        " bytes_in:'5'",
        " messages_out:'1'",
        " bytes_out:'2'",
        " ended_by:'program'",
        " close:'sent 1000'",
        " exit:'status 0'",
        " duration:'",
    ] {
        assert!(line.contains(pair), "{pair} in {line}");
    }
}

#[tokio::test]
async fn a_shared_and_a_resumable_clients_summary_says_who_ended_it() {
    for flags in [&["--broadcast"][..], &["--resumems=5000"][..]] {
        let mut args = vec!["--logformat=json"];
        args.extend_from_slice(flags);
        args.push("cat");
        let server = Server::start(&args).await;
        let path = if flags[0] == "--broadcast" {
            "/"
        } else {
            "/?wsd_session=summary-test-0123456789abcdef"
        };
        let mut ws = server.connect(path).await;
        send_text(&mut ws, "hi").await;
        assert_eq!(recv_text(&mut ws).await, "hi");
        let bye = CloseFrame { code: CloseCode::Normal, reason: "".into() };
        ws.close(Some(bye)).await.unwrap();
        let line = server.wait_log(|l| l.contains("\"DISCONNECT\"")).await;
        let d: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(d["ended_by"], "client", "{flags:?}: {line}");
        assert_eq!(d["close"], "received 1000", "{flags:?}: {line}");
        let counts = ["messages_in", "bytes_in", "messages_out", "bytes_out"].map(|k| &d[k]);
        assert_eq!(counts, ["1", "2", "1", "2"], "{flags:?}: {line}");
    }
}
