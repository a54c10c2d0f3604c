//! systemd socket activation: listening sockets handed over as file descriptors 3, 4, … with
//! `LISTEN_FDS` (how many), `LISTEN_PID` (for which process) and `LISTEN_FDNAMES` (their
//! `FileDescriptorName=`s, colon-separated). The server then binds nothing itself.
//!
//! The descriptors must be taken before any thread starts (the variables are removed from the
//! environment as they are read), and become tokio listeners once the runtime runs.

use nix::sys::socket::{getsockopt, sockopt};

use crate::error::Error;
use crate::listener::Listener;

/// The first inherited descriptor, by the protocol.
const FIRST_FD: i32 = 3;

/// The name that makes an inherited socket a `--redirport` listener.
pub const REDIRECT_NAME: &str = "redirect";

/// Sockets handed over by systemd, not yet served.
#[derive(Debug)]
pub struct Inherited {
    sockets: Vec<(Socket, Option<String>)>,
}

#[derive(Debug)]
enum Socket {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl Inherited {
    /// Takes the sockets named by `LISTEN_FDS` when `LISTEN_PID` is this process (`None` when
    /// there are none). Each must be a listening TCP or unix stream socket. Call it before
    /// starting any thread: it removes `LISTEN_FDS` and `LISTEN_PID` from the environment.
    pub fn from_env() -> Result<Option<Inherited>, Error> {
        let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
            .map(|v| v.split(':').map(str::to_owned).collect())
            .unwrap_or_default();
        let mut fds = listenfd::ListenFd::from_env();
        if fds.len() == 0 {
            return Ok(None);
        }
        let mut sockets = Vec::with_capacity(fds.len());
        for i in 0..fds.len() {
            let fd = FIRST_FD.saturating_add(i32::try_from(i).unwrap_or(i32::MAX));
            let fail = |reason| Error::Inherited { fd, reason };
            let socket = match fds.take_tcp_listener(i) {
                Ok(Some(l)) => Socket::Tcp(l),
                Ok(None) => return Err(fail("taken twice")),
                Err(_) => match fds.take_unix_listener(i) {
                    Ok(Some(l)) => Socket::Unix(l),
                    Ok(None) => return Err(fail("taken twice")),
                    Err(_) => return Err(fail("not a TCP or unix stream socket")),
                },
            };
            let listening = match &socket {
                Socket::Tcp(l) => getsockopt(l, sockopt::AcceptConn),
                Socket::Unix(l) => getsockopt(l, sockopt::AcceptConn),
            };
            if !listening.unwrap_or(false) {
                return Err(fail("the socket is not listening"));
            }
            let name = names.get(i).filter(|n| !n.is_empty()).cloned();
            sockets.push((socket, name));
        }
        Ok(Some(Inherited { sockets }))
    }

    /// The listeners, in descriptor order: those named [`REDIRECT_NAME`] apart. Must run
    /// inside the runtime.
    pub fn into_listeners(self) -> Result<(Vec<Listener>, Vec<Listener>), Error> {
        let mut main = Vec::new();
        let mut redirect = Vec::new();
        for (fd, (socket, name)) in (FIRST_FD..).zip(self.sockets) {
            let is_redirect = name.as_deref() == Some(REDIRECT_NAME);
            let listener = match socket {
                Socket::Tcp(l) => Listener::from_tcp(l, name),
                Socket::Unix(l) => Listener::from_unix(l, name),
            }
            .map_err(|source| Error::InheritedIo { fd, source })?;
            if is_redirect { redirect.push(listener) } else { main.push(listener) }
        }
        Ok((main, redirect))
    }
}
