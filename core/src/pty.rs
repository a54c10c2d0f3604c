//! `--pty`: a pseudo-terminal as the program's stdout, so that C stdio, Python, grep and awk
//! flush every line by themselves (they buffer by the block when stdout is a pipe).
//!
//! The terminal is in raw mode: no `\n` → `\r\n`, no echo, no signals from bytes, 8 bits
//! clean, so every framing works on it as on a pipe. Only stdout is the terminal: stdin and
//! stderr stay pipes, and the program gets no controlling terminal (it is not a session
//! leader; opening `/dev/tty` fails). The terminal has no window size (0 rows, 0 columns):
//! programs that ask fall back to their default, usually 80 columns. Both ends are made
//! close-on-exec from the start (`posix_openpt`, and the slave opened by name), so another
//! program spawned meanwhile never holds them. When the program and everything that shares
//! its stdout have closed it, a read of the master fails with EIO: that is the end of the
//! output, as end of file is for a pipe.

use std::io;
use std::os::fd::OwnedFd;

use nix::fcntl::{OFlag, open};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::stat::Mode;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

/// A new pseudo-terminal in raw mode: its master (the server's end) and its slave (the
/// program's stdout).
pub(crate) fn open_raw() -> io::Result<(OwnedFd, OwnedFd)> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master = posix_openpt(flags)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname_r(&master)?;
    let slave = open(name.as_str(), flags, Mode::empty())?;
    let mut termios = tcgetattr(&slave)?;
    cfmakeraw(&mut termios);
    tcsetattr(&slave, SetArg::TCSANOW, &termios)?;
    Ok((OwnedFd::from(master), slave))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn the_terminal_is_raw_and_eight_bit_clean_and_ends_with_eio() {
        let (master, slave) = open_raw().unwrap();
        let bytes: Vec<u8> = (0..=255u8).chain(*b"line\nnext\r\n").collect();
        std::fs::File::from(slave.try_clone().unwrap()).write_all(&bytes).unwrap();
        drop(slave);
        let mut got = Vec::new();
        let mut master = std::fs::File::from(master);
        let mut chunk = [0u8; 1024];
        let end = loop {
            match master.read(&mut chunk) {
                Ok(0) => break None,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) => break e.raw_os_error(),
            }
        };
        assert_eq!(got, bytes, "no byte changed, no \\r added");
        assert_eq!(end, Some(nix::errno::Errno::EIO as i32));
    }
}
