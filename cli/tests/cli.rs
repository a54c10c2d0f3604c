//! The executable's exit codes and messages (websocketd's: 0 help/version, 1 invalid options,
//! 2 flag syntax, 3 cannot listen), through the real binary.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long any one run may take.
const LIMIT: Duration = Duration::from_secs(20);

/// What one run of websocketd left behind.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn websocketd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_websocketd"));
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Reads a pipe to its end on a thread, so a chatty child never blocks on a full pipe.
fn collect(pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = BufReader::new(pipe).read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// Waits for `child` until `LIMIT`; kills it and fails the test if it takes longer.
fn wait_bounded(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("websocketd did not exit within {LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs websocketd with `args` to its exit (bounded).
fn run(args: &[&str]) -> Run {
    run_cmd(websocketd().args(args))
}

/// Runs `cmd` (websocketd, set up) to its exit (bounded).
fn run_cmd(cmd: &mut Command) -> Run {
    let mut child = cmd.spawn().expect("start websocketd");
    let out = collect(child.stdout.take().expect("stdout"));
    let err = collect(child.stderr.take().expect("stderr"));
    let status = wait_bounded(&mut child);
    Run {
        code: status.code(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// A temporary directory of our own, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("wsd-cli-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn no_arguments_exits_1_saying_arguments_are_missing() {
    let r = run(&[]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("Command line arguments are missing."), "{r:?}");
    assert!(r.stderr.contains("Usage:"), "short usage on stderr: {r:?}");
}

#[test]
fn an_unknown_loglevel_exits_1_with_websocketds_message_on_stdout() {
    let r = run(&["--loglevel=bogus", "cat"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.stdout.lines().next(),
        Some("Incorrect loglevel flag 'bogus'. Use --help to see allowed values."),
        "{r:?}"
    );
}

#[test]
fn an_unknown_loglevel_fails_even_with_version() {
    let r = run(&["--version", "--loglevel=bogus"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("Incorrect loglevel flag 'bogus'."), "{r:?}");
}

#[test]
fn version_exits_0_and_prints_the_name_and_version() {
    let r = run(&["--version"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.starts_with("websocketd "), "{r:?}");
    assert!(r.stdout.len() > "websocketd ".len() + 1, "a version follows the name: {r:?}");
    assert!(r.stdout.contains("(commit "), "the build is named: {r:?}");
}

#[test]
fn license_prints_the_version_and_our_licence() {
    let r = run(&["--license"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.starts_with("websocketd "), "{r:?}");
    assert!(r.stdout.contains("Redistribution and use in source and binary forms"), "{r:?}");
}

#[test]
fn every_spelling_of_help_exits_0() {
    for flag in ["--help", "-help", "-h"] {
        let r = run(&[flag]);
        assert_eq!(r.code, Some(0), "{flag}: {r:?}");
        // On stderr, as websocketd prints it.
        assert!(r.stdout.is_empty(), "{flag}: {r:?}");
        assert!(r.stderr.contains("COMMAND"), "{flag} prints help: {r:?}");
    }
}

// An unknown flag is a flag syntax error, not COMMAND (as Go's flag package has it).
#[test]
fn an_unknown_flag_exits_2() {
    let r = run(&["--bogus", "cat"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("bogus"), "the error names the flag: {r:?}");
}

#[test]
fn a_port_that_is_not_a_number_exits_2() {
    let r = run(&["--port=abc", "cat"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("abc"), "the error names the value: {r:?}");
}

#[test]
fn a_command_not_in_path_exits_1_with_websocketds_message_on_stderr() {
    let r = run(&["no-such-program-xyz"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("Unable to locate specified COMMAND 'no-such-program-xyz' in OS path."),
        "{r:?}"
    );
}

/// A script in `dir` with permissions `mode`.
fn script(dir: &TempDir, name: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.0.join(name);
    std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("write script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(mode)).expect("chmod");
    script.to_string_lossy().into_owned()
}

/// The first line of a run's stderr: the message, before the short usage.
fn first_line(r: &Run) -> &str {
    r.stderr.lines().next().unwrap_or_default()
}

#[test]
fn a_command_file_that_is_not_executable_exits_1_suggesting_chmod() {
    let dir = TempDir::new("noexec");
    let path = script(&dir, "script.sh", 0o644);
    let r = run(&[&path]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        first_line(&r),
        format!("COMMAND '{path}' is not executable. Make it so with: chmod +x {path}"),
        "{r:?}"
    );
    assert!(r.stderr.contains("Usage:"), "short usage after it: {r:?}");
}

#[test]
fn a_bare_command_in_the_current_directory_suggests_dot_slash() {
    let dir = TempDir::new("here");
    script(&dir, "count.sh", 0o755);
    script(&dir, "plain.sh", 0o644);
    let r = run_cmd(websocketd().arg("count.sh").current_dir(&dir.0).env("PATH", "/bin:/usr/bin"));
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        first_line(&r),
        "Unable to locate specified COMMAND 'count.sh' in OS path. The current directory has \
         it: did you mean ./count.sh?",
        "{r:?}"
    );
    let r = run_cmd(websocketd().arg("plain.sh").current_dir(&dir.0).env("PATH", "/bin:/usr/bin"));
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        first_line(&r),
        "Unable to locate specified COMMAND 'plain.sh' in OS path. The current directory has \
         it: did you mean ./plain.sh? It is not executable either: chmod +x plain.sh",
        "{r:?}"
    );
    // Positive control: the suggestion works.
    let r = run_cmd(websocketd().args(["--port=70000", "./count.sh"]).current_dir(&dir.0));
    assert_eq!(r.code, Some(3), "./count.sh is found, and only the port fails: {r:?}");
}

#[test]
fn a_directory_as_command_suggests_dir() {
    let dir = TempDir::new("dir-as-command");
    let path = dir.0.to_string_lossy().into_owned();
    let r = run(&[&path]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        first_line(&r),
        format!("COMMAND '{path}' is a directory. To serve the programs in it, use --dir={path}"),
        "{r:?}"
    );
}

#[test]
fn a_mistyped_flag_suggests_the_right_one() {
    for typed in ["--prot=8080", "-prot=8080", "--sameorign"] {
        let r = run(&[typed, "cat"]);
        assert_eq!(r.code, Some(2), "{r:?}");
        let flag = typed.trim_start_matches('-').split('=').next().unwrap_or_default();
        assert!(
            r.stderr.starts_with(&format!("error: unexpected argument '--{flag}' found\n")),
            "{r:?}"
        );
        let meant = if flag == "prot" { "--port" } else { "--sameorigin" };
        assert!(
            r.stderr.contains(&format!("\n  tip: a similar argument exists: '{meant}'\n")),
            "{r:?}"
        );
        assert!(!r.stderr.contains("to pass"), "one tip only: {r:?}");
    }
}

#[test]
fn help_shows_both_forms_and_where_the_documentation_is() {
    let r = run(&["--help"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stderr.contains(
            "Usage: websocketd [options] COMMAND [command args]\n       websocketd [options] --dir=DIR\n"
        ),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("Full documentation: https://github.com/websocketd-rs/websocketd#readme"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("README.md"), "{r:?}");
    let r = run(&[]);
    assert!(
        r.stderr.contains("  Export a single executable program as a WebSocket server:\n"),
        "{r:?}"
    );
    assert!(r.stderr.contains("    websocketd [options] --dir=DIR\n"), "{r:?}");
    assert!(
        r.stderr.contains(
            "Full documentation at https://github.com/websocketd-rs/websocketd#readme, or run: websocketd --help"
        ),
        "{r:?}"
    );
}

/// The lowest port this machine keeps for privileged processes, if there is one.
fn privileged_port() -> Option<u16> {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    (start > 1).then(|| start.min(1024) - 1)
}

#[test]
fn a_privileged_port_without_the_privilege_suggests_what_to_do() {
    use std::os::unix::process::CommandExt;
    let Some(port) = privileged_port() else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "no privileged ports on CI");
        eprintln!("note: every port is unprivileged here; skipping");
        return;
    };
    // As root, run a copy of the binary (which any user may execute) as nobody.
    let dir = TempDir::new("privileged");
    let copy = dir.0.join("websocketd");
    std::fs::copy(env!("CARGO_BIN_EXE_websocketd"), &copy).expect("copy the binary");
    let mut cmd = Command::new(&copy);
    cmd.args(["--address=127.0.0.1", &format!("--port={port}"), "cat"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // /proc/self belongs to the process's effective user.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    if root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // std drops the supplementary groups too when it changes the user from root.
        cmd.uid(65534).gid(65534);
    }
    let r = run_cmd(&mut cmd);
    assert_eq!(r.code, Some(3), "{r:?}");
    let fatal = r.stdout.lines().find(|l| l.contains("| FATAL  | server     |  | "));
    let fatal = fatal.unwrap_or_else(|| panic!("no FATAL line: {r:?}"));
    let exe = copy.display();
    assert!(
        fatal.ends_with(&format!(
            "| Can't start server: listen tcp 127.0.0.1:{port}: Permission denied (os error 13). \
             Ports below 1024 need privileges: use a higher one (--port=8080), or let this binary \
             bind them with: sudo setcap cap_net_bind_service=+ep {exe}"
        )),
        "{fatal}"
    );
}

#[test]
fn a_port_out_of_range_exits_3_with_a_fatal_log_line() {
    let r = run(&["--address=127.0.0.1", "--port=70000", "cat"]);
    assert_eq!(r.code, Some(3), "{r:?}");
    let fatal = r.stdout.lines().find(|l| l.contains("| FATAL  | server     |  | "));
    let fatal = fatal.unwrap_or_else(|| panic!("no FATAL line: {r:?}"));
    assert!(fatal.contains("Can't start server: "), "{fatal}");
    assert!(fatal.contains("70000"), "{fatal}");
}

#[test]
fn a_port_already_in_use_exits_3_with_a_fatal_log_line() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let r = run(&["--address=127.0.0.1", &format!("--port={port}"), "cat"]);
    assert_eq!(r.code, Some(3), "{r:?}");
    let fatal = r.stdout.lines().find(|l| l.contains("| FATAL  | server     |  | "));
    let fatal = fatal.unwrap_or_else(|| panic!("no FATAL line: {r:?}"));
    assert!(
        fatal.ends_with(&format!(
            "| Can't start server: listen tcp 127.0.0.1:{port}: Address already in use (os error \
             98). Another program is listening on port {port}: stop it, or choose another --port"
        )),
        "{fatal}"
    );
    drop(taken);
}

#[test]
fn a_bracketed_ipv6_loopback_address_is_served() {
    if TcpListener::bind("[::1]:0").is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "IPv6 loopback is unavailable on CI");
        eprintln!("note: skipping, no IPv6 loopback here");
        return;
    }
    let mut child = websocketd()
        .args(["--address=[::1]", "--port=0", "cat"])
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start websocketd");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + LIMIT;
    let prefix = "Starting WebSocket server   : ws://[::1]:";
    let port = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.split_once(prefix).map(|(_, r)| r) {
                    break rest.trim_end_matches('/').parse::<u16>().expect("port");
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no IPv6 start-up line: {e}");
            }
        }
    };
    let reached =
        TcpStream::connect_timeout(&SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], port)), LIMIT);
    let _ = child.kill();
    let _ = child.wait();
    assert_ne!(port, 0);
    reached.unwrap_or_else(|e| panic!("[::1]:{port} does not accept: {e}"));
}

#[test]
fn binary_with_another_framing_exits_1() {
    let r = run(&["--binary", "--framing=length-prefixed", "cat"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("please only specify one of --binary and --framing"), "{r:?}");
}

#[test]
fn an_unknown_framing_exits_2() {
    let r = run(&["--framing=words", "cat"]);
    assert_eq!(r.code, Some(2), "{r:?}");
}

#[test]
fn a_subprotocol_name_that_is_not_a_token_exits_1() {
    let r = run(&["--subprotocol=chat,bad name", "cat"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("invalid --subprotocol name 'bad name'"), "{r:?}");
}

#[test]
fn passstderr_with_binary_exits_1() {
    let r = run(&["--binary", "--passstderr", "cat"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("please only specify one of --binary and --passstderr"), "{r:?}");
    let r = run(&["--framing=length-prefixed", "--passstderr", "cat"]);
    assert_eq!(r.code, Some(1), "{r:?}");
}

#[test]
fn dir_with_a_command_is_ambiguous() {
    let r = run(&["--dir=/tmp", "cat"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("Ambiguous. Provided COMMAND and --dir argument."), "{r:?}");
}

#[test]
fn a_dir_that_is_missing_or_a_file_exits_1() {
    let r = run(&["--dir=/no/such/dir"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("Could not find your script dir '/no/such/dir'."), "{r:?}");
    let r = run(&["--dir=/bin/sh"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("Did you mean to specify COMMAND instead of --dir '/bin/sh'?"),
        "{r:?}"
    );
}

#[test]
fn a_header_with_a_bad_name_exits_1() {
    let r = run(&["--header=Bad Name: x", "cat"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("invalid header name in 'Bad Name: x'"), "{r:?}");
}

#[test]
fn a_static_dir_that_is_not_a_directory_exits_1() {
    let r = run(&["--staticdir=/no/such/dir", "cat"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("Your static dir '/no/such/dir' is not pointing to an accessible directory."),
        "{r:?}"
    );
}

#[test]
fn devconsole_with_staticdir_exits_4_with_a_fatal_line() {
    let r = run(&["--address=127.0.0.1", "--port=0", "--devconsole", "--staticdir=/tmp", "cat"]);
    assert_eq!(r.code, Some(4), "{r:?}");
    assert!(r.stdout.contains("| FATAL  | server     |  | Invalid parameters: --devconsole cannot be used with --staticdir. Pick one."), "{r:?}");
}

#[test]
fn a_cgi_dir_that_is_not_a_directory_exits_1_and_devconsole_with_it_exits_4() {
    let r = run(&["--cgidir=/no/such/dir", "cat"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("Your CGI dir '/no/such/dir' is not pointing to an accessible directory."),
        "{r:?}"
    );
    let r = run(&["--address=127.0.0.1", "--port=0", "--devconsole", "--cgidir=/tmp", "cat"]);
    assert_eq!(r.code, Some(4), "{r:?}");
    assert!(
        r.stdout
            .contains("Invalid parameters: --devconsole cannot be used with --cgidir. Pick one."),
        "{r:?}"
    );
}

#[test]
fn the_binary_prints_its_man_page_and_completions() {
    let run = |what: &str| {
        let out = websocketd().arg(format!("--generate={what}")).output().unwrap();
        assert!(out.status.success(), "{what}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let man = run("man");
    assert!(man.starts_with(".ie \\n(.g .ds Aq"), "a roff page: {}", &man[..80]);
    assert!(man.contains(".TH websocketd 1"), "{man}");
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "ENVIRONMENT",
        "TERMINATION",
        "SIGNALS",
        "EXIT STATUS",
        "EXAMPLES",
    ] {
        assert!(man.contains(&format!(".SH {section}")), "no {section} section");
    }
    assert!(man.contains("\\-\\-htpasswd"), "every flag is in it");
    assert!(man.is_ascii(), "roff escapes for what is not ASCII");
    assert!(run("complete-bash").contains("complete -F _websocketd"));
    assert!(run("complete-zsh").starts_with("#compdef websocketd"));
    assert!(run("complete-fish").contains("complete -c websocketd -l pty"));
}
