//! The crate's error type: what can go wrong on the network side.

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
        source: std::io::Error,
    },
    /// A unix socket could not be listened on.
    #[error("listen unix {}: {reason}", path.display())]
    Unix {
        /// The socket's path.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A socket handed over by systemd (`LISTEN_FDS`) cannot be served.
    #[error("inherited file descriptor {fd}: {reason}")]
    Inherited {
        /// The descriptor.
        fd: i32,
        /// Why.
        reason: String,
    },
}
