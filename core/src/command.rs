//! What a session runs, and finding COMMAND as websocketd (Go's `exec.LookPath`) does.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::Error;

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

/// Resolves `command` against `path` (a PATH-style list).
///
/// A name containing `/` is used as given (a relative path stays relative) if it is an
/// executable file; a bare name becomes the first executable file of that name in `path`.
/// When that fails, the error says what is there instead.
pub fn resolve(command: &str, path: Option<&OsStr>) -> Result<PathBuf, Error> {
    if command.contains('/') {
        let candidate = PathBuf::from(command);
        return match std::fs::metadata(&candidate) {
            Ok(_) if is_executable(&candidate) => Ok(candidate),
            Ok(meta) if meta.is_dir() => Err(Error::CommandIsDirectory(command.to_owned())),
            Ok(meta) if meta.is_file() => Err(Error::CommandNotExecutable(command.to_owned())),
            _ => Err(Error::CommandNotFound(command.to_owned())),
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
        let here = Path::new(command);
        if here.is_file() {
            let executable = is_executable(here);
            return Err(Error::CommandInCurrentDir { name: command.to_owned(), executable });
        }
    }
    Err(Error::CommandNotFound(command.to_owned()))
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
    fn a_failed_lookup_says_what_is_there_instead() {
        let dir = std::env::temp_dir().join(format!("wsd-command-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain.sh");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let plain = plain.to_string_lossy().into_owned();
        let folder = dir.to_string_lossy().into_owned();
        assert_eq!(resolve(&plain, None), Err(Error::CommandNotExecutable(plain.clone())));
        assert_eq!(resolve(&folder, None), Err(Error::CommandIsDirectory(folder.clone())));
        let missing = format!("{folder}/missing");
        assert_eq!(resolve(&missing, None), Err(Error::CommandNotFound(missing.clone())));
        // Tests run in the package's directory, which has a Cargo.toml and no PATH entry.
        let name = "Cargo.toml".to_owned();
        assert_eq!(
            resolve(&name, Some(OsStr::new("/bin"))),
            Err(Error::CommandInCurrentDir { name, executable: false })
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn relative_path_entries_are_ignored() {
        assert!(resolve("sh", Some(OsStr::new(".:bin::"))).is_err());
    }
}
