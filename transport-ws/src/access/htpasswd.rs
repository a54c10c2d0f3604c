//! `--htpasswd`: Basic auth against an Apache htpasswd file of bcrypt entries, as
//! `htpasswd -B` writes them.
//!
//! bcrypt is slow on purpose, so a flood of guesses must not become a flood of bcrypt runs:
//! - every verdict (right or wrong) is remembered for [`REMEMBER`], keyed by an HMAC of the
//!   name and password under a key made at start-up (no password is kept in memory);
//! - at most [`workers`] verifications run at once (half the cores, at least one), on the
//!   blocking pool: guessing never has the whole machine;
//! - at most [`PER_CLIENT`] of one client address wait or run at once (more get 429), and at
//!   most [`WAITING`] in all (more get 503): a flood from one address cannot keep a client
//!   from another waiting behind it for long.
//!
//! An unknown user costs a bcrypt run too, against a hash made at load time, so the time an
//! answer takes does not say whether a name exists.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use ring::hmac;
use tokio::sync::Semaphore;

use super::AccessFile;
use crate::error::Error;
use crate::limits::ClientKey;

/// How long a verdict is remembered.
pub const REMEMBER: Duration = Duration::from_secs(60);
/// Most bcrypt verifications running at once: half the cores, at least one.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}
/// Most verifications of one client address waiting or running at once.
pub const PER_CLIENT: usize = 2;
/// Most verifications waiting or running at once, in all.
pub const WAITING: usize = 64;
/// Most verdicts remembered.
const REMEMBERED: usize = 16_384;

/// The users of a `--htpasswd` file and their hashes, and what verifies them.
#[derive(Debug)]
pub(crate) struct Htpasswd {
    path: PathBuf,
    users: RwLock<Arc<Users>>,
    key: hmac::Key,
    verdicts: Mutex<HashMap<[u8; 32], (Verdict, Instant)>>,
    workers: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
    per_client: Mutex<HashMap<ClientKey, usize>>,
}

/// What a name and password come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The name is a user's and the password is theirs.
    Right,
    /// The name is a user's and the password is not theirs.
    Wrong,
    /// There is no user of that name.
    Unknown,
}

/// Why a password could not be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// This client address has [`PER_CLIENT`] checks under way (429).
    Client,
    /// [`WAITING`] checks are under way (503).
    Server,
}

#[derive(Debug)]
struct Users {
    hashes: HashMap<String, String>,
    /// Checked for a name that is no user's, so that it costs what a user's check costs.
    decoy: String,
}

impl Htpasswd {
    /// Reads `path`: every entry must be bcrypt, or it is an error naming the line.
    pub(crate) fn load(path: &Path) -> Result<Htpasswd, Error> {
        let users = Users::read(path)?;
        let rng = ring::rand::SystemRandom::new();
        // Only fails if the system has no randomness, which nothing here can do without.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).map_err(|_| Error::AccessFile {
            flag: "--htpasswd",
            path: path.to_owned(),
            source: std::io::Error::other("no randomness for the verdicts' key"),
        })?;
        Ok(Htpasswd {
            path: path.to_owned(),
            users: RwLock::new(Arc::new(users)),
            key,
            verdicts: Mutex::new(HashMap::new()),
            workers: Arc::new(Semaphore::new(workers())),
            waiting: Arc::new(Semaphore::new(WAITING)),
            per_client: Mutex::new(HashMap::new()),
        })
    }

    /// Reads the file again; a broken one keeps the old users. Remembered verdicts are
    /// forgotten: a password may have changed. Returns how many users there are now.
    pub(crate) fn reload(&self) -> Result<usize, Error> {
        let users = Users::read(&self.path)?;
        let count = users.hashes.len();
        *self.users.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(users);
        self.verdicts.lock().unwrap_or_else(PoisonError::into_inner).clear();
        Ok(count)
    }

    /// How many users there are.
    pub(crate) fn count(&self) -> usize {
        self.users.read().unwrap_or_else(PoisonError::into_inner).hashes.len()
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `password` is `name`'s, for a client at `ip`: remembered, or worked out within
    /// the bounds.
    pub(crate) async fn verify(
        &self,
        name: &str,
        password: &[u8],
        ip: Option<IpAddr>,
    ) -> Result<Verdict, Busy> {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(name.as_bytes());
        ctx.update(&[0]);
        ctx.update(password);
        let mut id = [0; 32];
        id.copy_from_slice(ctx.sign().as_ref());
        if let Some(verdict) = self.remembered(&id) {
            return Ok(verdict);
        }
        let _client = self.client_turn(ip).ok_or(Busy::Client)?;
        let _waiting = Arc::clone(&self.waiting).try_acquire_owned().map_err(|_| Busy::Server)?;
        // Never closed: the semaphore lives as long as `self`.
        let Ok(_worker) = Arc::clone(&self.workers).acquire_owned().await else {
            return Err(Busy::Server);
        };
        // Another request may have worked this out while this one waited.
        if let Some(verdict) = self.remembered(&id) {
            return Ok(verdict);
        }
        let users = Arc::clone(&self.users.read().unwrap_or_else(PoisonError::into_inner));
        let name = name.to_owned();
        let password = password.to_vec();
        let verdict = tokio::task::spawn_blocking(move || {
            let (hash, known) = match users.hashes.get(&name) {
                Some(hash) => (hash.as_str(), true),
                None => (users.decoy.as_str(), false),
            };
            // The hashes were checked when the file was read.
            let right = bcrypt::verify(&password, hash).unwrap_or(false);
            match (known, right) {
                (true, true) => Verdict::Right,
                (true, false) => Verdict::Wrong,
                (false, _) => Verdict::Unknown,
            }
        })
        .await
        .map_err(|_| Busy::Server)?;
        self.remember(id, verdict);
        Ok(verdict)
    }

    fn remembered(&self, id: &[u8; 32]) -> Option<Verdict> {
        let verdicts = self.verdicts.lock().unwrap_or_else(PoisonError::into_inner);
        verdicts.get(id).filter(|(_, at)| at.elapsed() < REMEMBER).map(|(verdict, _)| *verdict)
    }

    fn remember(&self, id: [u8; 32], verdict: Verdict) {
        let mut verdicts = self.verdicts.lock().unwrap_or_else(PoisonError::into_inner);
        if verdicts.len() >= REMEMBERED {
            verdicts.retain(|_, (_, at)| at.elapsed() < REMEMBER);
            if verdicts.len() >= REMEMBERED {
                verdicts.clear();
            }
        }
        verdicts.insert(id, (verdict, Instant::now()));
    }

    /// A turn among this client address's checks, given back when dropped; `None` when it
    /// has all of them.
    fn client_turn(&self, ip: Option<IpAddr>) -> Option<ClientTurn<'_>> {
        let key = ip.map(ClientKey::of);
        if let Some(key) = key {
            let mut table = self.per_client.lock().unwrap_or_else(PoisonError::into_inner);
            let count = table.entry(key).or_insert(0);
            if *count >= PER_CLIENT {
                return None;
            }
            *count += 1;
        }
        Some(ClientTurn { table: &self.per_client, key })
    }
}

/// One check of a client address under way.
struct ClientTurn<'a> {
    table: &'a Mutex<HashMap<ClientKey, usize>>,
    key: Option<ClientKey>,
}

impl Drop for ClientTurn<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = table.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                table.remove(&key);
            }
        }
    }
}

impl Users {
    fn read(path: &Path) -> Result<Users, Error> {
        let file = AccessFile::read("--htpasswd", path)?;
        let bad = |line: usize, reason: String| file.bad(line, reason);
        let mut hashes = HashMap::new();
        let mut cost = None;
        for (number, line) in file.entries() {
            let Some((name, hash)) = line.split_once(':') else {
                return Err(bad(number, "not NAME:HASH".to_owned()));
            };
            if name.is_empty() {
                return Err(bad(number, "the user name is empty".to_owned()));
            }
            let entry_cost = bcrypt_cost(hash).map_err(|kind| {
                bad(
                    number,
                    format!(
                        "user '{name}' has {kind}; only bcrypt entries are supported (htpasswd -B)"
                    ),
                )
            })?;
            cost = cost.max(Some(entry_cost));
            if hashes.insert(name.to_owned(), hash.to_owned()).is_some() {
                return Err(bad(number, format!("user '{name}' is there twice")));
            }
        }
        // Made once per load: the cost of the file's dearest entry.
        let decoy = bcrypt::hash_with_salt(b"", cost.unwrap_or(4), [0; 16])
            .map(|parts| parts.format_for_version(bcrypt::Version::TwoY))
            .unwrap_or_default();
        Ok(Users { hashes, decoy })
    }
}

/// The cost of a bcrypt hash as htpasswd writes it (`$2y$`, `$2b$` or `$2a$`, a two-digit
/// cost, 53 characters of salt and hash); or what kind of hash it is instead.
fn bcrypt_cost(hash: &str) -> Result<u32, &'static str> {
    let kind = if hash.starts_with("$apr1$") {
        "an Apache MD5 hash ($apr1$)"
    } else if hash.starts_with("{SHA}") {
        "a SHA-1 hash ({SHA})"
    } else if hash.starts_with("$1$") {
        "an MD5-crypt hash ($1$)"
    } else if hash.starts_with("$5$") || hash.starts_with("$6$") {
        "a SHA-crypt hash ($5$ or $6$)"
    } else if hash.starts_with('$') && !hash.starts_with("$2") {
        "an unknown hash kind"
    } else if !hash.starts_with('$') {
        "a crypt(3) or plain-text password"
    } else {
        ""
    };
    if !kind.is_empty() {
        return Err(kind);
    }
    let parts: Vec<&str> = hash.split('$').collect();
    let alphabet = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'/';
    match parts.as_slice() {
        ["", "2y" | "2b" | "2a", cost, rest]
            if cost.len() == 2 && rest.len() == 53 && rest.bytes().all(alphabet) =>
        {
            match cost.parse() {
                Ok(cost) if (4..=31).contains(&cost) => Ok(cost),
                _ => Err("a bcrypt hash with a cost outside 04 to 31"),
            }
        }
        _ => Err("a malformed bcrypt hash"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::TempFile;

    fn file(text: &str) -> TempFile {
        TempFile::new(text)
    }

    fn entry(name: &str, password: &str) -> String {
        let hash = bcrypt::hash_with_salt(password, 4, [7; 16]).unwrap();
        format!("{name}:{}", hash.format_for_version(bcrypt::Version::TwoY))
    }

    #[tokio::test]
    async fn right_wrong_and_unknown_are_told_apart_and_remembered() {
        let f = file(&format!("# users\n{}\n\n{}\n", entry("alice", "s3cret"), entry("bob", "x")));
        let h = Htpasswd::load(&f.0).unwrap();
        let ip = Some("127.0.0.2".parse().unwrap());
        assert_eq!(h.verify("alice", b"s3cret", ip).await, Ok(Verdict::Right));
        assert_eq!(h.verify("alice", b"nope", ip).await, Ok(Verdict::Wrong));
        assert_eq!(h.verify("carol", b"s3cret", ip).await, Ok(Verdict::Unknown));
        assert_eq!(h.verdicts.lock().unwrap().len(), 3);
        assert_eq!(h.verify("alice", b"s3cret", ip).await, Ok(Verdict::Right));
        assert!(h.per_client.lock().unwrap().is_empty(), "every turn was given back");
    }

    #[tokio::test]
    async fn a_reload_forgets_old_verdicts_and_a_broken_file_keeps_the_old_users() {
        let f = file(&entry("alice", "old"));
        let h = Htpasswd::load(&f.0).unwrap();
        assert_eq!(h.verify("alice", b"old", None).await, Ok(Verdict::Right));
        std::fs::write(&f.0, entry("alice", "new")).unwrap();
        assert_eq!(h.reload().unwrap(), 1);
        assert_eq!(h.verify("alice", b"old", None).await, Ok(Verdict::Wrong));
        assert_eq!(h.verify("alice", b"new", None).await, Ok(Verdict::Right));
        std::fs::write(&f.0, "alice:$apr1$abc$def\n").unwrap();
        assert!(h.reload().is_err());
        assert_eq!(h.verify("alice", b"new", None).await, Ok(Verdict::Right));
    }

    #[test]
    fn other_hash_kinds_are_refused_naming_the_line() {
        for (hash, kind) in [
            ("$apr1$salt$hash", "Apache MD5"),
            ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
            ("plaintext", "plain-text"),
            ("$6$salt$hash", "SHA-crypt"),
            ("$2y$99$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "cost"),
            ("$2y$05$short", "malformed"),
        ] {
            let f = file(&format!("{}\n\nbob:{hash}\n", entry("alice", "a")));
            let e = Htpasswd::load(&f.0).unwrap_err().to_string();
            assert!(e.contains("line 3") && e.contains("'bob'") && e.contains(kind), "{e}");
        }
        let f = file("no colon here\n");
        assert!(Htpasswd::load(&f.0).unwrap_err().to_string().contains("line 1: not NAME:HASH"));
    }

    #[tokio::test]
    async fn one_address_cannot_take_every_turn() {
        let f = file(&entry("alice", "a"));
        let h = Htpasswd::load(&f.0).unwrap();
        let ip = Some("127.0.0.2".parse().unwrap());
        let held: Vec<_> = (0..PER_CLIENT).map(|_| h.client_turn(ip).unwrap()).collect();
        assert!(h.client_turn(ip).is_none());
        assert_eq!(h.verify("alice", b"fresh", ip).await, Err(Busy::Client));
        let other = Some("127.0.0.3".parse().unwrap());
        assert_eq!(h.verify("alice", b"a", other).await, Ok(Verdict::Right));
        drop(held);
        assert_eq!(h.verify("alice", b"fresh", ip).await, Ok(Verdict::Wrong));
    }
}
