//! The request as the child sees it: websocketd's CGI-style environment.
//!
//! The order and the override rules follow websocketd (reference section 3): the server's
//! name first, then the `--passenv` variables, then the standard variables, then one
//! `HTTP_*` variable per request header. A later name overrides an earlier one. Two things
//! are deliberately not copied: a `Proxy` header never becomes `HTTP_PROXY` (httpoxy), and a
//! header whose name contains `_` is left out so that `X_Forwarded_For` cannot shadow
//! `X-Forwarded-For`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use http::Version;

use crate::host::{self, HostPort};
use crate::request::RequestInfo;

/// A child's environment, in the order it is set; when a name repeats, the last one counts
/// (as `Command::envs` applies them). Values are bytes: what the request sent, unchanged.
pub type Vars = Vec<(String, OsString)>;

/// Server-wide inputs to every child's environment.
#[derive(Debug, Clone, Default)]
pub struct EnvSettings {
    /// `SERVER_SOFTWARE`.
    pub server_software: String,
    /// The `--passenv` variables as captured at start-up, already cleaned and non-empty.
    pub passenv: Vars,
    /// `--setenv` (and `TERM` with `--pty`): set after everything else, so they override
    /// `--passenv`; none has a name of the CGI set ([`is_cgi_name`]).
    pub setenv: Vars,
}

/// The names the server sets for every request, which `--setenv` may not override: the
/// CGI variables, the TLS and subprotocol ones, CGI scripts' own (`SCRIPT_FILENAME`), and
/// every `HTTP_*`.
pub const CGI_NAMES: &[&str] = &[
    "SERVER_SOFTWARE",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "GATEWAY_INTERFACE",
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "SCRIPT_FILENAME",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "QUERY_STRING",
    "AUTH_TYPE",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "REMOTE_IDENT",
    "REMOTE_USER",
    "UNIQUE_ID",
    "REMOTE_PORT",
    "REQUEST_URI",
    "HTTPS",
    "SSL_CLIENT_S_DN",
    "SSL_CLIENT_VERIFY",
    "WEBSOCKET_SUBPROTOCOL",
];

/// Whether `name` is one the server sets for a request (see [`CGI_NAMES`]).
pub fn is_cgi_name(name: &str) -> bool {
    CGI_NAMES.contains(&name) || name.starts_with("HTTP_")
}

impl EnvSettings {
    /// Captures the variables named in `names` from `lookup` (the server's own environment),
    /// keeping those that are non-empty once cleaned. `HTTPS` is never passed, as in websocketd.
    pub fn capture_passenv<'a>(
        names: impl IntoIterator<Item = &'a str>,
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Vars {
        let mut out = Vec::new();
        for name in names {
            if name.is_empty() || name == "HTTPS" || name.contains('=') {
                continue;
            }
            let Some(value) = lookup(name) else { continue };
            let value = clean(value.as_bytes());
            if !value.is_empty() {
                out.push((name.to_owned(), value));
            }
        }
        out
    }

    /// The whole environment of `req`'s child, in websocketd's order. When a name repeats, the last
    /// one counts (as `Command::env` applies them).
    pub fn cgi_env(&self, req: &RequestInfo) -> Vars {
        let mut env = self.env_for(req, Audience::One);
        env.extend(self.setenv.iter().cloned());
        env
    }

    /// The environment of a program that every client of one URL shares (`--broadcast`):
    /// what those clients have in common (the server, the URL, `--passenv`) and `UNIQUE_ID`
    /// (the starting request's, which names the instance), never what one client sent or
    /// is: no `REMOTE_*`, no `HTTP_*` (cookies, authorization), no TLS client subject, no
    /// subprotocol (each client chooses its own).
    pub fn shared_env(&self, req: &RequestInfo) -> Vars {
        let mut env = self.env_for(req, Audience::Shared);
        env.extend(self.setenv.iter().cloned());
        env
    }

    fn env_for(&self, req: &RequestInfo, audience: Audience) -> Vars {
        let settings = self;
        let private = audience == Audience::One;
        let mut env = Vec::with_capacity(32 + req.headers.keys_len() + self.setenv.len());
        let mut set = |k: &str, v: &[u8]| env.push((k.to_owned(), clean(v)));
        set("SERVER_SOFTWARE", settings.server_software.as_bytes());
        for (k, v) in &settings.passenv {
            set(k, v.as_bytes());
        }
        let (server_name, server_port) = match host::split(req.host()) {
            Some(HostPort { host, port: Some(port) }) => (host.to_owned(), port.to_owned()),
            // No port: the whole value is the name (as Go's missing-port error has it), and
            // the port is the scheme's, the client's, which a trusted proxy may have told.
            Some(HostPort { port: None, .. }) => {
                (req.host().to_owned(), if req.tls { "443" } else { "80" }.to_owned())
            }
            None => (String::new(), String::new()),
        };
        let query = req.uri.query().unwrap_or("");
        if private {
            set("REMOTE_ADDR", req.remote_ip().as_bytes());
            set("REMOTE_HOST", req.remote_name().as_bytes());
        }
        set("SERVER_NAME", server_name.as_bytes());
        set("SERVER_PORT", server_port.as_bytes());
        set("SERVER_PROTOCOL", version_str(req.version).as_bytes());
        set("GATEWAY_INTERFACE", b"CGI/1.1");
        set("REQUEST_METHOD", req.method.as_str().as_bytes());
        set("SCRIPT_NAME", req.script_name.as_bytes());
        set("PATH_INFO", &req.path_info);
        set("PATH_TRANSLATED", &req.path_info);
        set("QUERY_STRING", query.as_bytes());
        // Who the client is belongs to its own program only.
        let user = req.user.as_ref().filter(|_| private);
        set("AUTH_TYPE", user.map_or("", |u| u.auth_type).as_bytes());
        for empty in ["CONTENT_LENGTH", "CONTENT_TYPE"] {
            set(empty, b"");
        }
        if private {
            set("REMOTE_IDENT", b"");
            set("REMOTE_USER", user.map_or("", |u| u.name.as_str()).as_bytes());
        }
        set("UNIQUE_ID", req.id.to_string().as_bytes());
        if private {
            let port = req.remote_port.map(|p| p.to_string()).unwrap_or_default();
            set("REMOTE_PORT", port.as_bytes());
        }
        set("REQUEST_URI", req.request_uri().as_bytes());
        if req.tls {
            set("HTTPS", b"on");
        }
        if !private {
            return env;
        }
        if let Some(subject) = &req.client_subject {
            set("SSL_CLIENT_S_DN", subject.as_bytes());
            set("SSL_CLIENT_VERIFY", b"SUCCESS");
        }
        if let Some(protocol) = &req.subprotocol {
            set("WEBSOCKET_SUBPROTOCOL", protocol.as_bytes());
        }
        for name in req.headers.keys() {
            let name = name.as_str();
            // Host is not a header to Go's server, so websocketd never sets HTTP_HOST.
            if name.contains('_') || name == "proxy" || name == "host" {
                continue;
            }
            // The bytes as sent (RFC 9110 §5.5: a value may hold any octet but controls).
            let mut value = Vec::new();
            for (i, v) in req.headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    value.extend_from_slice(b", ");
                }
                value.extend_from_slice(v.as_bytes());
            }
            let var = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
            set(&var, &value);
        }
        env
    }
}

/// Whom a program's environment is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// The one client whose request started it.
    One,
    /// Every client of one URL (`--broadcast`).
    Shared,
}

/// Why a child with some environment cannot be started: exec would refuse it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unrunnable {
    /// A variable holds a NUL byte, which ends a C string.
    #[error("{var} holds a NUL byte, which no program can be given")]
    Nul {
        /// The variable.
        var: String,
    },
    /// One `NAME=value` string is longer than exec takes (`MAX_ARG_STRLEN`).
    #[error("{var} is {len} bytes long as NAME=value; exec takes at most {max} for one string")]
    TooLong {
        /// The variable.
        var: String,
        /// Its length as `NAME=value`, with the NUL that ends it.
        len: usize,
        /// The most exec takes.
        max: usize,
    },
    /// The command line and the environment together are more than exec takes.
    #[error(
        "the environment is {total} bytes with the command line; exec takes at most {max} \
         (a quarter of the stack limit, less a margin)"
    )]
    TooBig {
        /// Their size as exec counts it.
        total: usize,
        /// The most exec takes here.
        max: usize,
    },
}

/// The longest string exec takes for one argument or one `NAME=value` (Linux's
/// `MAX_ARG_STRLEN`, 32 pages of 4 KiB), its closing NUL included.
pub const MAX_ARG_STRLEN: usize = 32 * 4096;

/// Room left for what exec adds to the strings it was given: the program's path, and for a
/// `#!` script the interpreter and its argument.
const EXEC_MARGIN: usize = 4096;

/// Checks that exec would take `program` with `args` and `env`, by the kernel's rules
/// (Linux `fs/exec.c`): no string with a NUL; none longer than [`MAX_ARG_STRLEN`]; all of
/// them, with a pointer each, within a quarter of the stack limit (at most 6 MiB, at least
/// 128 KiB). Checking first turns what would be an `E2BIG` after the 101 into an answer
/// before it.
pub fn check_exec(program: &OsStr, args: &[OsString], env: &Vars) -> Result<(), Unrunnable> {
    let mut total = program.len() + 1;
    for arg in args {
        total += arg.len() + 1;
    }
    for (name, value) in env {
        let var = || name.clone();
        if name.contains('\0') || value.as_bytes().contains(&0) {
            return Err(Unrunnable::Nul { var: var() });
        }
        let len = name.len() + 1 + value.len() + 1;
        if len > MAX_ARG_STRLEN {
            return Err(Unrunnable::TooLong { var: var(), len, max: MAX_ARG_STRLEN });
        }
        total += len;
    }
    total += (args.len() + 1 + env.len()) * std::mem::size_of::<usize>();
    let max = exec_limit().saturating_sub(EXEC_MARGIN);
    if total > max {
        return Err(Unrunnable::TooBig { total, max });
    }
    Ok(())
}

/// How many bytes of strings and pointers exec takes, as the kernel computes it from the
/// stack limit that the child inherits.
fn exec_limit() -> usize {
    const STK_LIM: u64 = 8 << 20;
    const ARG_MAX: u64 = 32 * 4096;
    let stack = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_STACK)
        .map_or(STK_LIM, |(soft, _)| soft);
    let limit = (STK_LIM / 4 * 3).min(stack / 4).max(ARG_MAX);
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// `HTTP/1.1` and friends.
fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// CR and LF become spaces, surrounding whitespace goes; every other byte stays as it is.
fn clean(value: &[u8]) -> OsString {
    let spaced: Vec<u8>;
    let value = if value.iter().any(|&b| b == b'\r' || b == b'\n') {
        spaced = value.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }).collect();
        &spaced[..]
    } else {
        value
    };
    OsString::from_vec(trim_space(value).to_vec())
}

/// Go's `strings.TrimSpace` on bytes: Unicode whitespace goes from both ends, and a byte that
/// is not UTF-8 is not whitespace (so it stays, with all between it and the other end).
fn trim_space(bytes: &[u8]) -> &[u8] {
    let (mut start, mut end, mut at) = (None, 0, 0);
    for chunk in bytes.utf8_chunks() {
        let (valid, invalid) = (chunk.valid(), chunk.invalid());
        let kept = valid.trim_start();
        if start.is_none() && (!kept.is_empty() || !invalid.is_empty()) {
            start = Some(at + valid.len() - kept.len());
        }
        let before_space = valid.trim_end().len();
        if before_space > 0 {
            end = at + before_space;
        }
        if !invalid.is_empty() {
            end = at + valid.len() + invalid.len();
        }
        at += valid.len() + invalid.len();
    }
    match start {
        Some(start) => &bytes[start..end.max(start)],
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method, Uri};

    use super::*;

    #[test]
    fn a_host_without_a_port_has_the_port_of_the_clients_scheme() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, "chat.example".parse().unwrap());
        let mut req = RequestInfo {
            id: 1,
            remote_addr: None,
            remote_port: None,
            remote_host: None,
            method: Method::GET,
            uri: Uri::from_static("/"),
            version: Version::HTTP_11,
            headers,
            // As when a trusted proxy says the client came over https.
            tls: true,
            script_name: "/".into(),
            path_info: b"/".to_vec(),
            subprotocol: None,
            client_subject: None,
            user: None,
        };
        let var = |req: &RequestInfo, name: &str| {
            let env = EnvSettings::default().cgi_env(req);
            env.into_iter().find(|(k, _)| k == name).map(|(_, v)| v.into_vec())
        };
        assert_eq!(var(&req, "SERVER_PORT").as_deref(), Some(&b"443"[..]));
        assert_eq!(var(&req, "SERVER_NAME").as_deref(), Some(&b"chat.example"[..]));
        req.tls = false;
        assert_eq!(var(&req, "SERVER_PORT").as_deref(), Some(&b"80"[..]));
        req.headers.insert("x-latin", http::HeaderValue::from_bytes(b"caf\xe9 ").unwrap());
        req.path_info = b"/caf\xe9".to_vec();
        assert_eq!(var(&req, "HTTP_X_LATIN").as_deref(), Some(&b"caf\xe9"[..]));
        assert_eq!(var(&req, "PATH_INFO").as_deref(), Some(&b"/caf\xe9"[..]));
    }

    fn vars(pairs: &[(&str, &[u8])]) -> Vars {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), OsString::from_vec(v.to_vec()))).collect()
    }

    #[test]
    fn exec_refuses_nul_bytes_and_strings_over_its_limits() {
        let program = OsStr::new("/bin/cat");
        assert_eq!(check_exec(program, &[], &vars(&[("A", b"x")])), Ok(()));
        assert_eq!(
            check_exec(program, &[], &vars(&[("PATH_INFO", b"/x\0y")])),
            Err(Unrunnable::Nul { var: "PATH_INFO".into() })
        );
        // `NAME=value` and its NUL: exactly the limit passes, one byte more does not.
        let fits = vec![b'v'; MAX_ARG_STRLEN - "HTTP_X=".len() - 1];
        assert_eq!(check_exec(program, &[], &vars(&[("HTTP_X", &fits)])), Ok(()));
        let over = vec![b'v'; fits.len() + 1];
        assert_eq!(
            check_exec(program, &[], &vars(&[("HTTP_X", &over)])),
            Err(Unrunnable::TooLong {
                var: "HTTP_X".into(),
                len: MAX_ARG_STRLEN + 1,
                max: MAX_ARG_STRLEN
            })
        );
        let many: Vec<(String, &[u8])> =
            (0..100).map(|i| (format!("HTTP_X{i}"), &fits[..fits.len() - 8])).collect();
        let many: Vec<(&str, &[u8])> = many.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert!(matches!(
            check_exec(program, &[], &vars(&many)),
            Err(Unrunnable::TooBig { total, max }) if total > max
        ));
    }

    #[test]
    fn values_are_trimmed_as_go_trims_them_and_their_bytes_kept() {
        let t = |b: &[u8]| trim_space(b).to_vec();
        assert_eq!(t(b"  a b \t"), b"a b");
        assert_eq!(t(b"\xc2\xa0caf\xe9\xc2\xa0"), b"caf\xe9", "NBSP is space, 0xE9 alone is not");
        assert_eq!(t(b"\xe9 "), b"\xe9");
        assert_eq!(t(b" \xff\xfe "), b"\xff\xfe");
        assert_eq!(t(b" \t "), b"");
        assert_eq!(t(b""), b"");
        assert_eq!(clean(b"a\r\nb\n"), OsString::from("a  b"));
    }

    #[test]
    fn passenv_skips_empty_unset_and_https() {
        let got = EnvSettings::capture_passenv(["A", "B", "C", "HTTPS"], |k| match k {
            "A" => Some(" x\ny ".into()),
            "B" => Some("".into()),
            "HTTPS" => Some("on".into()),
            _ => None,
        });
        assert_eq!(got, vec![("A".to_owned(), OsString::from("x y"))]);
    }
}
