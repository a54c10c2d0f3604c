//! The crate's error type: a COMMAND that cannot be run, a log level that is not one.

/// What can go wrong in the session's crate.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nothing executable by that name in PATH, or nothing at the path given.
    #[error("unable to locate specified COMMAND '{0}' in OS path")]
    CommandNotFound(String),
    /// A bare name that is not in PATH but is a file in the current directory, which is not
    /// searched (as in websocketd and POSIX shells): `./NAME` would be.
    #[error("command '{name}' is not in PATH, but the current directory has it")]
    CommandInCurrentDir {
        /// The name as given.
        name: String,
        /// Whether that file is executable.
        executable: bool,
    },
    /// The path given is a file without execute permission.
    #[error("command '{0}' is not executable")]
    CommandNotExecutable(String),
    /// The path given is a directory.
    #[error("command '{0}' is a directory")]
    CommandIsDirectory(String),
    /// A `--loglevel` value that is not one of the names.
    #[error("incorrect loglevel '{0}'")]
    LogLevel(String),
}

impl Error {
    /// The COMMAND that could not be run, for the errors about one.
    pub fn command(&self) -> Option<&str> {
        match self {
            Error::CommandNotFound(name)
            | Error::CommandInCurrentDir { name, .. }
            | Error::CommandNotExecutable(name)
            | Error::CommandIsDirectory(name) => Some(name),
            Error::LogLevel(_) => None,
        }
    }
}
