//! A server that can make no thread and no process: a client is told so with Close 1011, the
//! `--maxforks` slot comes back, a static file is still served, nothing panics, and once the
//! limit is lifted the next client is served.
//!
//! The server runs as a spare unprivileged uid (`setpriv`), so that the kernel applies
//! RLIMIT_NPROC to it (root is exempt), and that limit is lowered under it at runtime
//! (`prlimit`) to fewer tasks than it already has. Changing the limits of another user's
//! process takes CAP_SYS_RESOURCE, which a container's root often lacks; so prlimit runs as
//! the server's uid too, and moves only the soft limit (which is what the kernel enforces,
//! and which an unprivileged owner may raise again up to the hard one). Root is needed for
//! setpriv; without root or either tool the test is skipped, except under CI=true, where it
//! fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message};
use websocketd_tests::*;

/// A uid no account and no process uses: the server is the only task RLIMIT_NPROC counts
/// for it.
const SPARE_UID: u32 = 54321;

/// What a client that connects, sends a line and waits saw.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The upgrade was refused with this HTTP status (429: no `--maxforks` slot was free).
    Refused(u16),
    /// The line came back from `cat`; the client then closed.
    Echoed,
    /// The server's Close: code and reason (1006: the connection ended without one).
    Closed(u16, String),
}

#[tokio::test]
async fn a_server_that_cannot_start_a_program_closes_with_1011_and_recovers() {
    let Some((setpriv, prlimit)) = tools() else { return };
    // The server's uid must be spare: other tasks of that uid would share its limit.
    let users = processes_of(SPARE_UID);
    assert!(users.is_empty(), "uid {SPARE_UID} is not spare: pids {users:?} run as it");
    within(Duration::from_secs(40), async {
        // The binary may sit where another uid cannot reach it (a home directory, a private
        // target dir): the server runs from a copy in a directory anyone may enter.
        let dir = TempDir::new();
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.0.join("websocketd");
        std::fs::copy(binary(), &bin).expect("copy the binary");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A static file: serving it reads through tokio's blocking pool, which must not panic
        // for want of a thread either.
        let file = dir.0.join("hello.txt");
        std::fs::write(&file, "static hello\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

        // sh (for `2>&1`: a panic goes to stderr, and the harness keeps only stdout) then
        // setpriv each exec the next, so the server's pid is the one the harness started.
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "exec \"$@\" 2>&1", "sh"])
            .arg(&setpriv)
            .arg(format!("--reuid={SPARE_UID}"))
            .arg(format!("--regid={SPARE_UID}"))
            .args(["--clear-groups", "--"])
            .arg(&bin)
            .args(["--address=127.0.0.1", "--port=0", "--maxforks=1"])
            .arg(format!("--staticdir={}", dir.0.display()))
            .arg("cat")
            .current_dir(&dir.0);
        let server = Server::launch(cmd).await;
        let pid = server.pid();

        // One session first, so that the runtime's blocking pool has had a thread.
        assert_eq!(session(&server).await, Seen::Echoed, "before any limit");
        let get = "GET /hello.txt HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
        assert!(raw_http(server.addr, get).await.ends_with("static hello\n"), "before any limit");
        server.wait_log_count(1, |l| l.ends_with("| DISCONNECT")).await;
        // That thread exits after tokio's default keep-alive of 10 s idle; 11 s from here is
        // more than that from when it last ran (the first spawn). Then no thread is left to
        // run a spawn, and none can be made.
        tokio::time::sleep(Duration::from_secs(11)).await;
        let (soft, _) = nproc_limits(pid);
        set_nproc(&setpriv, &prlimit, pid, "1");

        let first = session(&server).await;
        // The slot is back once the session says DISCONNECT, just after its Close. Waited for
        // (bounded) but not required: a slot that is never freed shows as the next one's 429.
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            server.wait_log_count(2, |l| l.ends_with("| DISCONNECT")),
        )
        .await;
        let second = session(&server).await;
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            server.wait_log_count(3, |l| l.ends_with("| DISCONNECT")),
        )
        .await;

        let file_under_limit = raw_http(server.addr, get).await;

        set_nproc(&setpriv, &prlimit, pid, &soft);
        let third = session(&server).await;

        let logs = server.logs();
        server.stop().await;

        let panics: Vec<&str> = logs
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains("panicked"))
            // The panic's message is the line after.
            .flat_map(|(i, _)| logs[i..].iter().take(2).map(String::as_str))
            .collect();
        let report = format!(
            "with RLIMIT_NPROC 1, first client: {first:?}, second client: {second:?}; \
             with the limit lifted: {third:?}; a static file with the limit: {file_under_limit:?}; \
             panics in the server's output: {panics:#?}"
        );
        let launch_failed = || Seen::Closed(1011, "could not launch process".into());
        assert_eq!(first, launch_failed(), "{report}");
        assert_eq!(second, launch_failed(), "a 429 is a --maxforks slot not given back; {report}");
        assert_eq!(third, Seen::Echoed, "{report}");
        assert!(file_under_limit.starts_with("HTTP/1.1 200"), "{report}");
        assert!(file_under_limit.ends_with("static hello\n"), "{report}");
        assert!(panics.is_empty(), "{report}");
        assert!(
            logs.iter()
                .any(|l| l.contains("| ERROR  | process") && l.contains("Could not launch process")),
            "no ERROR line for the launch that failed; {report}"
        );
    })
    .await;
}

/// setpriv and prlimit, when they can be used: as root, and installed.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let setpriv = find_program("setpriv", &["/usr/bin/setpriv"]);
    let prlimit = find_program("prlimit", &["/usr/bin/prlimit"]);
    let root = uids(Path::new("/proc/self")).is_some_and(|(_, effective)| effective == 0);
    match (setpriv, prlimit) {
        (Some(setpriv), Some(prlimit)) if root => Some((setpriv, prlimit)),
        (setpriv, prlimit) => {
            let why = format!(
                "root: {root}, setpriv: {:?}, prlimit: {:?}",
                setpriv.map(|p| p.display().to_string()),
                prlimit.map(|p| p.display().to_string())
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "cannot run on CI: {why}");
            eprintln!(
                "note: the process-limit test needs root, setpriv and prlimit ({why}); skipping"
            );
            None
        }
    }
}

/// The real and effective uid of the process at `/proc/<pid>`.
fn uids(proc_dir: &Path) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(proc_dir.join("status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let mut ids = line.split_ascii_whitespace().map(|id| id.parse().ok());
    Some((ids.next()??, ids.next()??))
}

/// The pids whose real uid is `uid`.
fn processes_of(uid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|p| uids(&Path::new("/proc").join(p.pid.to_string())).is_some_and(|u| u.0 == uid))
        .map(|p| p.pid)
        .collect()
}

/// The soft and hard RLIMIT_NPROC of the process `pid`, as /proc writes them (a number or
/// `unlimited`).
fn nproc_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits.lines().find_map(|l| l.strip_prefix("Max processes")).expect("nproc");
    let mut f = line.split_ascii_whitespace().map(str::to_owned);
    (f.next().expect("soft limit"), f.next().expect("hard limit"))
}

/// Sets the soft RLIMIT_NPROC of the server `pid` to `soft`, running prlimit as the server's
/// uid, and checks that it took.
fn set_nproc(setpriv: &Path, prlimit: &Path, pid: u32, soft: &str) {
    let status = std::process::Command::new(setpriv)
        .arg(format!("--reuid={SPARE_UID}"))
        .arg(format!("--regid={SPARE_UID}"))
        .args(["--clear-groups", "--"])
        .arg(prlimit)
        .arg(format!("--pid={pid}"))
        .arg(format!("--nproc={soft}:"))
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit --pid={pid} --nproc={soft}: {status}");
    assert_eq!(nproc_limits(pid).0, soft, "the server's soft RLIMIT_NPROC");
}

/// One client: connects, sends a line and waits for it back (then closes and waits for the
/// server to end the session) or for the server's Close.
async fn session(server: &Server) -> Seen {
    let mut ws = match within(STEP, tokio_tungstenite::connect_async(server.url("/"))).await {
        Ok((ws, _)) => ws,
        Err(tungstenite::Error::Http(response)) => return Seen::Refused(response.status().into()),
        Err(e) => panic!("connect {}: {e}", server.url("/")),
    };
    // The server may have closed already; then the Close is still there to read.
    let _ = within(STEP, ws.send(Message::text("hello"))).await;
    let next = within(STEP, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => return other,
            }
        }
    })
    .await;
    match next {
        Some(Ok(Message::Text(t))) if t == "hello" => {
            within(STEP, ws.close(None)).await.expect("close");
            recv_close(&mut ws).await;
            Seen::Echoed
        }
        Some(Ok(Message::Close(Some(f)))) => Seen::Closed(f.code.into(), f.reason.to_string()),
        Some(Ok(Message::Close(None))) => Seen::Closed(1005, String::new()),
        Some(Ok(other)) => panic!("expected the echo or a Close, got {other:?}"),
        Some(Err(_)) | None => Seen::Closed(1006, String::new()),
    }
}
