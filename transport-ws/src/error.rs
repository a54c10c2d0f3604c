//! The crate's error type: what can go wrong on the network side, from the flags that
//! describe it to the sockets it listens on. Each names what it is about; the cause, when
//! there is one, is its source.

use std::io;
use std::path::PathBuf;

/// What can go wrong on the network side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An address could not be bound.
    #[error("listen tcp {addr}")]
    Bind {
        /// The address as given.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The unix socket's path is taken by a file that is not a socket.
    #[error("listen unix {}: the file exists and is not a socket", path.display())]
    NotASocket {
        /// The socket's path.
        path: PathBuf,
    },
    /// Another server listens on the unix socket.
    #[error("listen unix {}: another server is listening on it", path.display())]
    SocketInUse {
        /// The socket's path.
        path: PathBuf,
    },
    /// A step of listening on a unix socket failed.
    #[error("listen unix {}: {step}", path.display())]
    Unix {
        /// The socket's path.
        path: PathBuf,
        /// What was being done: `bind`, `chmod 660`, …
        step: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// A socket handed over by systemd (`LISTEN_FDS`) cannot be served.
    #[error("inherited file descriptor {fd}: {reason}")]
    Inherited {
        /// The descriptor.
        fd: i32,
        /// Why.
        reason: &'static str,
    },
    /// A socket handed over by systemd (`LISTEN_FDS`) failed to become a listener.
    #[error("inherited file descriptor {fd}")]
    InheritedIo {
        /// The descriptor.
        fd: i32,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A `--trustedproxy` entry is neither an address, a CIDR nor `unix`.
    #[error("invalid --trustedproxy entry '{entry}': not an address, a CIDR or 'unix'")]
    TrustedProxy {
        /// The entry as given, without surrounding whitespace.
        entry: String,
    },
    /// A `--header*` value whose name is not a header name.
    #[error("invalid header name in '{0}'")]
    HeaderName(String),
    /// A `--header*` value whose value cannot be a header's.
    #[error("invalid header value in '{0}'")]
    HeaderValue(String),
    /// A `--htpasswd` or `--tokens` file could not be read.
    #[error("cannot read {flag} file {}", path.display())]
    AccessFile {
        /// `--htpasswd` or `--tokens`.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A line of a `--htpasswd` or `--tokens` file that cannot be used.
    #[error("{flag} file {}, line {line}: {reason}", path.display())]
    AccessLine {
        /// `--htpasswd` or `--tokens`.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An `--authurl` that is not `http://HOST[:PORT]/PATH` or `http://unix:SOCKET:/PATH`.
    #[error("invalid --authurl '{url}': {reason}")]
    AuthUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
