//! What a session runs, and finding COMMAND as websocketd (Go's `exec.LookPath`) does.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The program (already resolved).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
}

impl Command {
    /// The program and its arguments, space-separated, as the logs show them.
    pub fn line(&self) -> String {
        let mut line = self.program.display().to_string();
        for arg in &self.args {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    }
}

/// Why COMMAND could not be found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// Nothing executable by that name in PATH, or the path given is not an executable file.
    #[error("unable to locate specified COMMAND '{0}' in OS path")]
    NotFound(String),
}

/// Resolves `command` against `path` (a PATH-style list).
///
/// A name containing `/` is used as given (a relative path stays relative) if it is an
/// executable file; a bare name becomes the first executable file of that name in `path`.
pub fn resolve(command: &str, path: Option<&OsStr>) -> Result<PathBuf, LookupError> {
    if command.contains('/') {
        let candidate = PathBuf::from(command);
        return if is_executable(&candidate) {
            Ok(candidate)
        } else {
            Err(LookupError::NotFound(command.to_owned()))
        };
    }
    if !command.is_empty() {
        for dir in std::env::split_paths(path.unwrap_or_default()) {
            // An empty PATH entry means the current directory in POSIX shells; websocketd's Go
            // refuses such relative hits, and so do we.
            if dir.as_os_str().is_empty() || dir.is_relative() {
                continue;
            }
            let candidate = dir.join(command);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    Err(LookupError::NotFound(command.to_owned()))
}

/// A regular file (after following links) with at least one execute bit.
pub fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_are_found_in_path() {
        let found = resolve("sh", Some(OsStr::new("/nonexistent:/bin:/usr/bin"))).unwrap();
        assert!(found.is_absolute() && found.ends_with("sh"), "{found:?}");
    }

    #[test]
    fn unknown_names_and_directories_are_not_found() {
        assert!(resolve("no-such-program-xyz", Some(OsStr::new("/bin:/usr/bin"))).is_err());
        assert!(resolve("/tmp", None).is_err());
        assert!(resolve("", Some(OsStr::new("/bin"))).is_err());
    }

    #[test]
    fn relative_path_entries_are_ignored() {
        assert!(resolve("sh", Some(OsStr::new(".:bin::"))).is_err());
    }
}
