//! `--dir`: which script a URL runs, walked as websocketd does (reference 2.4), minus its
//! holes: a file that is not executable, a dotfile, or a symlink leading out of the directory
//! is not an endpoint.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A directory of scripts.
#[derive(Debug, Clone)]
pub struct ScriptDir {
    /// The directory as given, made absolute.
    root: PathBuf,
    /// The same, with every link resolved, to tell what is inside it.
    canonical: PathBuf,
}

/// What a path leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A script: what to run, and `SCRIPT_NAME` (what follows it in the URL is `PATH_INFO`:
    /// [`path_info`](crate::path::path_info)).
    Found {
        /// The script's file.
        program: PathBuf,
        /// The URL path of the script.
        script_name: String,
    },
    /// Nothing there (or a directory).
    NotFound,
    /// Something there that may not be run, and why.
    Refused(&'static str),
}

impl ScriptDir {
    /// The directory at `root` (absolute), which must exist.
    pub fn new(root: PathBuf) -> std::io::Result<ScriptDir> {
        let canonical = root.canonicalize()?;
        Ok(ScriptDir { root, canonical })
    }

    /// The directory, absolute.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Walks `path` (decoded and clean): the first segment that is not a directory is the
    /// script, and the rest is `PATH_INFO`.
    pub fn lookup(&self, path: &str) -> Lookup {
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        let mut file = self.root.clone();
        let mut script_name = String::new();
        for (i, segment) in segments.iter().enumerate() {
            script_name.push('/');
            script_name.push_str(segment);
            file.push(segment);
            let Ok(meta) = std::fs::metadata(&file) else { return Lookup::NotFound };
            let last = i + 1 == segments.len();
            if meta.is_dir() {
                if last {
                    return Lookup::NotFound;
                }
                continue;
            }
            if segments[..=i].iter().any(|s| s.starts_with('.')) {
                return Lookup::Refused("hidden files are not served");
            }
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                return Lookup::Refused("not an executable file");
            }
            match file.canonicalize() {
                Ok(real) if real.starts_with(&self.canonical) => {}
                _ => return Lookup::Refused("it leads outside the directory"),
            }
            return Lookup::Found { program: file, script_name };
        }
        Lookup::NotFound
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn script(path: &Path, mode: u32) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The reference's table (2.4), with its holes closed.
    #[test]
    fn urls_map_to_scripts_as_in_websocketd() {
        let base = std::env::temp_dir().join(format!("wsd-scripts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("d");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::create_dir_all(dir.join("sub2")).unwrap();
        script(&dir.join("hello.sh"), 0o755);
        script(&dir.join("sub/deep.sh"), 0o755);
        script(&dir.join("noexec.sh"), 0o644);
        script(&dir.join(".hidden.sh"), 0o755);
        script(&base.join("outside.sh"), 0o755);
        std::os::unix::fs::symlink(base.join("outside.sh"), dir.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.join("hello.sh"), dir.join("inlink")).unwrap();
        let d = ScriptDir::new(dir.clone()).unwrap();
        // The URL runs the script `name`, with `info` after it as PATH_INFO.
        let found = |url: &str, name: &str, info: &str| {
            let want = Lookup::Found {
                program: dir.join(name.trim_start_matches('/')),
                script_name: name.to_owned(),
            };
            assert_eq!(d.lookup(url), want, "{url}");
            assert_eq!(crate::path::path_info(url, name), info.as_bytes(), "{url}");
        };
        assert_eq!(d.lookup("/"), Lookup::NotFound);
        found("/hello.sh", "/hello.sh", "");
        found("/hello.sh/extra/path", "/hello.sh", "/extra/path");
        found("/hello.sh/", "/hello.sh", "/");
        assert_eq!(d.lookup("/sub"), Lookup::NotFound);
        assert_eq!(d.lookup("/sub/"), Lookup::NotFound);
        assert_eq!(d.lookup("/sub2/"), Lookup::NotFound);
        found("/sub/deep.sh/x/y/", "/sub/deep.sh", "/x/y/");
        assert_eq!(d.lookup("/hello"), Lookup::NotFound);
        assert_eq!(d.lookup("/nonexist"), Lookup::NotFound);
        assert_eq!(d.lookup("/noexec.sh"), Lookup::Refused("not an executable file"));
        assert_eq!(d.lookup("/.hidden.sh"), Lookup::Refused("hidden files are not served"));
        assert_eq!(d.lookup("/link"), Lookup::Refused("it leads outside the directory"));
        found("/inlink", "/inlink", "");
        let _ = std::fs::remove_dir_all(&base);
    }
}
