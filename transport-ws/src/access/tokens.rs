//! `--tokens`: bearer tokens from a file, one a line with an optional name after it
//! (`TOKEN [NAME]`; `#` starts a comment line). A token is at least [`TOKEN_MIN`] visible
//! ASCII characters. Only the tokens' SHA-256 digests are kept, and a presented token is
//! compared with every one of them in constant time: how long it takes says nothing of how
//! much of a token was right, nor which one matched.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use ring::digest;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::AccessFile;
use crate::error::Error;

/// Fewest characters of a token: shorter ones can be guessed.
pub const TOKEN_MIN: usize = 16;

/// The tokens of a `--tokens` file.
#[derive(Debug)]
pub(crate) struct Tokens {
    path: PathBuf,
    set: RwLock<Arc<Set>>,
}

#[derive(Debug, Default)]
struct Set {
    digests: Vec<[u8; 32]>,
    /// Each token's name (empty when it has none), by the digest's index.
    names: Vec<String>,
}

impl Tokens {
    /// Reads `path`; a line that is not `TOKEN [NAME]` is an error naming it.
    pub(crate) fn load(path: &Path) -> Result<Tokens, Error> {
        Ok(Tokens { path: path.to_owned(), set: RwLock::new(Arc::new(Set::read(path)?)) })
    }

    /// Reads the file again; a broken one keeps the old tokens. Returns how many there are.
    pub(crate) fn reload(&self) -> Result<usize, Error> {
        let set = Set::read(&self.path)?;
        let count = set.digests.len();
        *self.set.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
        Ok(count)
    }

    /// How many tokens there are.
    pub(crate) fn count(&self) -> usize {
        self.set.read().unwrap_or_else(PoisonError::into_inner).digests.len()
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The name of `token` (empty when it has none), or `None` when it is no token of the file.
    pub(crate) fn find(&self, token: &[u8]) -> Option<String> {
        let set = Arc::clone(&self.set.read().unwrap_or_else(PoisonError::into_inner));
        let presented = digest::digest(&digest::SHA256, token);
        let mut found = 0u32;
        for (i, known) in set.digests.iter().enumerate() {
            // The file holds far fewer than 2^32 lines.
            let index = u32::try_from(i + 1).unwrap_or(u32::MAX);
            found.conditional_assign(&index, known.ct_eq(presented.as_ref()));
        }
        let found = usize::try_from(found).ok()?.checked_sub(1)?;
        set.names.get(found).cloned()
    }
}

impl Set {
    fn read(path: &Path) -> Result<Set, Error> {
        let file = AccessFile::read("--tokens", path)?;
        let mut set = Set::default();
        for (number, line) in file.entries() {
            let (token, name) = match line.split_once(|c: char| c.is_ascii_whitespace()) {
                Some((token, name)) => (token, name.trim()),
                None => (line, ""),
            };
            let reason = if token.len() < TOKEN_MIN {
                Some(format!(
                    "the token has {} characters; at least {TOKEN_MIN} are needed",
                    token.len()
                ))
            } else if !token.bytes().all(|c| c.is_ascii_graphic()) {
                Some("the token has a character that is not visible ASCII".to_owned())
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(file.bad(number, reason));
            }
            let mut known = [0; 32];
            known.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
            set.digests.push(known);
            set.names.push(name.to_owned());
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Tokens, Error> {
        Tokens::load(&crate::access::TempFile::new(text).0)
    }

    #[test]
    fn tokens_are_found_with_their_names() {
        let tokens =
            load("# who may connect\nAAAAAAAAAAAAAAAAAAAA dashboard\n\nBBBBBBBBBBBBBBBBBBBB\n")
                .unwrap();
        assert_eq!(tokens.find(b"AAAAAAAAAAAAAAAAAAAA").as_deref(), Some("dashboard"));
        assert_eq!(tokens.find(b"BBBBBBBBBBBBBBBBBBBB").as_deref(), Some(""));
        assert_eq!(tokens.find(b"AAAAAAAAAAAAAAAAAAA"), None);
        assert_eq!(tokens.find(b""), None);
    }

    #[test]
    fn short_or_odd_tokens_are_refused_naming_the_line() {
        let e = load("AAAAAAAAAAAAAAAAAAAA\nshort\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("at least 16"), "{e}");
        let e = load("AAAAAAAAAAAAAAAAAAA\u{e9}\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("visible ASCII"), "{e}");
    }
}
