//! The child process: spawned in its own process group, its stderr drained, and a
//! written-down death.
//!
//! The termination ladder is websocketd's: with stdin already closed, wait 100 ms, then
//! SIGINT; wait 250 ms, then SIGTERM; wait 500 ms, then SIGKILL; each wait lengthened by
//! `--closems`. Unlike websocketd every signal goes to the whole process group, so
//! grandchildren die too, and the ladder goes on while any live member of the group remains.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use bytes::BytesMut;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use websocketd_framing::{Frame, LineCodec};

use crate::env::Vars;

/// Longest stderr line logged as one; longer ones are logged in pieces.
const STDERR_LINE_MAX: usize = 64 * 1024;

/// The ladder: how long to wait, then which signal to send.
const LADDER: [(Duration, Signal); 3] = [
    (Duration::from_millis(100), Signal::SIGINT),
    (Duration::from_millis(250), Signal::SIGTERM),
    (Duration::from_millis(500), Signal::SIGKILL),
];
/// How long to wait for the end after SIGKILL before giving up on the group.
const AFTER_KILL: Duration = Duration::from_millis(1000);
/// How often the group is checked once the direct child is gone.
const GROUP_POLL: Duration = Duration::from_millis(10);

/// Where a child is on its way down: the termination ladder's next step and its deadline.
#[derive(Debug)]
pub struct Ladder {
    step: usize,
    deadline: Instant,
    closems: Duration,
    ended_by: &'static str,
}

/// A running child and its process group.
#[derive(Debug)]
pub struct Child {
    pid: u32,
    /// Where the reaper sends the exit status.
    exit: oneshot::Receiver<ExitStatus>,
    status: Option<ExitStatus>,
}

/// How to start a child, beyond its command and environment.
#[derive(Debug, Clone, Default)]
pub struct Spawn {
    /// The directory it starts in (the server's, when `None`).
    pub cwd: Option<PathBuf>,
    /// Its stdout is a pseudo-terminal in raw mode (`--pty`), which the server reads as its
    /// stdout pipe.
    pub pty: bool,
}

/// The child's three pipes, as non-blocking tokio pipes.
#[derive(Debug)]
pub struct Pipes {
    /// The child's stdin.
    pub stdin: pipe::Sender,
    /// The child's stdout.
    pub stdout: pipe::Receiver,
    /// The child's stderr.
    pub stderr: pipe::Receiver,
}

/// Makes, at start-up, what spawning children needs later: the thread that reaps them and
/// the first thread that launches them. A server that starts them later, when the system may
/// have no thread left to give, would fail every spawn from then on.
pub fn prepare() -> io::Result<()> {
    crate::reaper::listen()?;
    crate::launcher::start()
}

impl Child {
    /// Starts `program` with `args` and exactly the environment `env`, in a new process group,
    /// with all three standard streams piped.
    ///
    /// The fork and exec run on a [launcher](crate::launcher) thread: `posix_spawn` suspends
    /// the calling thread until the child has exec'd, which must not stall a runtime worker
    /// and every session on it. Every failure (no process or thread to be had, no memory, a
    /// program that exec refuses) is an error, never a panic.
    pub async fn spawn(
        program: PathBuf,
        args: Vec<OsString>,
        env: Vars,
    ) -> io::Result<(Child, Pipes)> {
        Child::spawn_with(program, args, env, Spawn::default()).await
    }

    /// As [`Child::spawn`], in the directory `cwd` when given.
    pub async fn spawn_in(
        program: PathBuf,
        args: Vec<OsString>,
        env: Vars,
        cwd: Option<PathBuf>,
    ) -> io::Result<(Child, Pipes)> {
        Child::spawn_with(program, args, env, Spawn { cwd, pty: false }).await
    }

    /// As [`Child::spawn`], as `how` says.
    pub async fn spawn_with(
        program: PathBuf,
        args: Vec<OsString>,
        env: Vars,
        how: Spawn,
    ) -> io::Result<(Child, Pipes)> {
        Child::begin(program, args, env, how).finish().await
    }

    /// As [`Child::spawn_with`], but the spawn is under way when this returns, before any
    /// await: a caller can go on with other work (answering the handshake) meanwhile, and
    /// collect the child with [`Spawning::finish`]. A `Spawning` dropped unfinished takes
    /// its child along, as a dropped [`Child`] does.
    pub fn begin(program: PathBuf, args: Vec<OsString>, env: Vars, how: Spawn) -> Spawning {
        let submitted = crate::launcher::submit(move || {
            let mut cmd = std::process::Command::new(program);
            if let Some(dir) = how.cwd {
                cmd.current_dir(dir);
            }
            // With a terminal, the server reads its master; the program's copy of the slave
            // is the only one once the spawn is done (ours goes with `cmd`).
            let (stdout, master) = match how.pty {
                true => {
                    let (master, slave) = crate::pty::open_raw()?;
                    (Stdio::from(slave), Some(master))
                }
                false => (Stdio::piped(), None),
            };
            cmd.args(args)
                .env_clear()
                .envs(env)
                .stdin(Stdio::piped())
                .stdout(stdout)
                .stderr(Stdio::piped())
                .process_group(0);
            let spawned = crate::reaper::spawn(&mut cmd);
            drop(cmd);
            let (mut std_child, exit) = spawned?;
            let pid = std_child.id();
            live().insert(pid);
            crate::guardian::watch(pid);
            // From here on, dropping `child` (also if this session is gone) kills the group.
            let child = Child { pid, exit, status: None };
            let missing = || io::Error::other("child pipe missing");
            let stdin = nonblocking(std_child.stdin.take().ok_or_else(missing)?.into())?;
            let stdout = match master {
                Some(master) => nonblocking_pty(master)?,
                None => nonblocking(std_child.stdout.take().ok_or_else(missing)?.into())?,
            };
            let stderr = nonblocking(std_child.stderr.take().ok_or_else(missing)?.into())?;
            io::Result::Ok((child, [stdin, stdout, stderr]))
        });
        Spawning { submitted }
    }
}

/// A spawn under way ([`Child::begin`]).
#[derive(Debug)]
#[must_use = "a spawn not finished is undone"]
pub struct Spawning {
    submitted: io::Result<oneshot::Receiver<io::Result<Spawned>>>,
}

/// What a launcher thread hands back: the child, and our ends of its stdin, stdout and
/// stderr, not yet registered with a runtime.
type Spawned = (Child, [OwnedFd; 3]);

impl Spawning {
    /// Waits for the spawn to be done: the child and its pipes, registered with the runtime
    /// of the caller.
    pub async fn finish(self) -> io::Result<(Child, Pipes)> {
        let (child, [stdin, stdout, stderr]) = crate::launcher::answer(self.submitted?).await??;
        // The three are the pipes `Command` just made, so tokio's own check of each (an
        // fstat, and reading the flags before setting them) would only repeat what is known.
        let pipes = Pipes {
            stdin: pipe::Sender::from_owned_fd_unchecked(stdin)?,
            stdout: pipe::Receiver::from_owned_fd_unchecked(stdout)?,
            stderr: pipe::Receiver::from_owned_fd_unchecked(stderr)?,
        };
        Ok((child, pipes))
    }
}

impl Child {
    /// The child's pid, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status, once the child has been reaped.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Waits for the child to exit and reaps it. Cancel-safe.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status =
            (&mut self.exit).await.map_err(|_| io::Error::other("child lost by the reaper"))?;
        self.status = Some(status);
        Ok(status)
    }

    /// Starts the termination ladder's clock; the caller has closed stdin already.
    pub fn ladder(&self, closems: Duration) -> Ladder {
        Ladder {
            step: 0,
            deadline: Instant::now() + LADDER[0].0 + closems,
            closems,
            ended_by: "stdin was closed",
        }
    }

    /// Climbs `ladder` until the child itself is reaped, and returns its status (`None` if
    /// even SIGKILL did not end it).
    pub async fn reap(&mut self, ladder: &mut Ladder) -> Option<ExitStatus> {
        if self.climb(ladder, false).await {
            tracing::debug!(target: "process", "Process {} terminated after {}", self.pid, ladder.ended_by);
        }
        self.status
    }

    /// Climbs on until no live process of the child's group remains.
    pub async fn finish(&mut self, ladder: &mut Ladder) {
        self.climb(ladder, true).await;
    }

    /// The whole ladder: reaps the child and ends its group. Returns the child's status.
    pub async fn terminate(&mut self, closems: Duration) -> Option<ExitStatus> {
        let mut ladder = self.ladder(closems);
        self.reap(&mut ladder).await;
        self.finish(&mut ladder).await;
        self.status
    }

    async fn climb(&mut self, ladder: &mut Ladder, group_too: bool) -> bool {
        loop {
            if self.wait_until(ladder.deadline, group_too).await {
                return true;
            }
            let Some(&(_, signal)) = LADDER.get(ladder.step) else {
                tracing::error!(target: "process", "SIGKILL did not terminate {}!", self.pid);
                return false;
            };
            if !self.kill_group(signal) {
                tracing::error!(target: "process", "{} unsuccessful to {}", signal.as_str(), self.pid);
            }
            ladder.ended_by = signal.as_str();
            ladder.step += 1;
            let wait =
                LADDER.get(ladder.step).map_or(AFTER_KILL, |&(wait, _)| wait + ladder.closems);
            ladder.deadline = Instant::now() + wait;
        }
    }

    /// Sends `signal` to the child's whole group. False if that failed for any reason other
    /// than the group being gone already.
    fn kill_group(&self, signal: Signal) -> bool {
        let Ok(pgid) = i32::try_from(self.pid) else { return false };
        !matches!(killpg(Pid::from_raw(pgid), signal), Err(e) if e != nix::errno::Errno::ESRCH)
    }

    /// Waits until `deadline` for the child to be reaped and, if `group_too`, for no live
    /// process of its group to remain. True if that happened.
    async fn wait_until(&mut self, deadline: Instant, group_too: bool) -> bool {
        if self.status.is_none() {
            match tokio::time::timeout_at(deadline, &mut self.exit).await {
                Ok(Ok(status)) => self.status = Some(status),
                // Not our child any more (cannot happen short of a bug): nothing left to reap.
                Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
        if !group_too {
            return true;
        }
        loop {
            if !group_has_live_members(self.pid) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(GROUP_POLL).await;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // A session that ends early (its task cancelled) still takes its processes along.
        if self.status.is_none() {
            self.kill_group(Signal::SIGKILL);
        }
        live().remove(&self.pid);
        crate::guardian::release(self.pid);
    }
}

/// Makes a pseudo-terminal's master non-blocking, keeping its other flags (`O_RDWR`).
fn nonblocking_pty(fd: OwnedFd) -> io::Result<OwnedFd> {
    let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
    fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(fd)
}

/// Makes our end of a pipe that `Command` made non-blocking. Such an end has no other status
/// flag set (`pipe2` with `O_CLOEXEC` only), so the flags are set outright, in one call.
fn nonblocking(fd: OwnedFd) -> io::Result<OwnedFd> {
    fcntl(&fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok(fd)
}

/// The process groups of all children not yet dropped.
fn live() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
    // The set stays consistent even if a holder panicked: each update is one call.
    LIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Kills every child's group on the server's way out (after the graceful part had its
/// chance), and waits, for up to a second, until none of their processes is alive.
pub async fn kill_all() {
    let groups: Vec<u32> = live().iter().copied().collect();
    if groups.is_empty() {
        return;
    }
    for &pgid in &groups {
        if let Ok(raw) = i32::try_from(pgid) {
            let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
    let deadline = Instant::now() + AFTER_KILL;
    while Instant::now() < deadline {
        // One pass over /proc per poll, whatever the number of groups.
        let live = live_groups();
        if !groups.iter().any(|g| group_exists(*g) && live.contains(g)) {
            break;
        }
        tokio::time::sleep(GROUP_POLL).await;
    }
}

/// Whether any process other than a zombie is in group `pgid`. Zombies are not counted:
/// they are dead, and whoever adopted them reaps them.
fn group_has_live_members(pgid: u32) -> bool {
    group_exists(pgid) && live_groups().contains(&pgid)
}

/// Whether any process, zombies included, is in group `pgid` (a cheap signal-0 check).
fn group_exists(pgid: u32) -> bool {
    i32::try_from(pgid).is_ok_and(|raw| killpg(Pid::from_raw(raw), None::<Signal>).is_ok())
}

/// The process groups that hold a live (non-zombie) process, from one pass over /proc.
fn live_groups() -> std::collections::HashSet<u32> {
    crate::groups::live_groups_of(None)
}

/// Logs each line of the child's stderr at ERROR in category `stderr`, until it closes.
/// Lines of any length are logged (in pieces), so the child never stalls on stderr.
pub async fn drain_stderr(stderr: pipe::Receiver) {
    let mut codec = LineCodec::new(STDERR_LINE_MAX);
    let mut buf = BytesMut::new();
    loop {
        while let Ok(Some(Frame::Text(line) | Frame::Binary(line))) = codec.decode(&mut buf) {
            tracing::error!(target: "stderr", "{}", String::from_utf8_lossy(&line));
        }
        match crate::pipe::read_some(&stderr, &mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(target: "process", "Unexpected error while reading STDERR from process: {e}");
                break;
            }
        }
    }
    while let Ok(Some(Frame::Text(line) | Frame::Binary(line))) = codec.decode_eof(&mut buf) {
        tracing::error!(target: "stderr", "{}", String::from_utf8_lossy(&line));
    }
    tracing::debug!(target: "process", "Process STDERR closed");
}
