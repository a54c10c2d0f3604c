//! Access control: who may be served. Every request is checked here, WebSocket upgrades and
//! plain HTTP (console, CGI, static files) alike, before anything else is done with it and
//! so before any program starts.
//!
//! A request may show who it is in any of these ways; the first that holds lets it in:
//! 1. `--remoteuserheader`: from a `--trustedproxy` peer, the header the proxy sets names
//!    the user (`AUTH_TYPE=Proxy`). From anyone else the header is taken out and ignored.
//! 2. `--tokens`: a token of the file, as `Authorization: Bearer TOKEN`, as the query
//!    parameter [`TOKEN_PARAM`] (browsers cannot set headers on a WebSocket), or as the
//!    cookie of that name (`AUTH_TYPE=Bearer`, `REMOTE_USER` the token's name).
//! 3. `--htpasswd`: Basic credentials of a user of the file (`AUTH_TYPE=Basic`).
//! 4. `--authurl`: the auth service says yes (`AUTH_TYPE=Forward`).
//!
//! With none of `--htpasswd`, `--tokens` and `--authurl`, everyone is let in (a proxy's user
//! is still named). Otherwise a request that none lets in gets 401 with a challenge for each
//! local way (or the auth service's own 401 or 403).
//!
//! Credentials never go further than here: the token parameter and cookie are taken out of
//! the request (so of `QUERY_STRING`, `REQUEST_URI`, `HTTP_COOKIE` and the logs) whether or
//! not they are right, and so is an `Authorization` header that `--tokens` or `--htpasswd`
//! reads.

mod forward;
mod htpasswd;
mod tokens;

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use percent_encoding::percent_decode_str;
use websocketd_core::request::User;

use self::forward::{Answer, Forward};
pub use self::forward::{AuthUrl, CONCURRENCY as AUTH_CONCURRENCY};
use self::htpasswd::{Busy, Htpasswd, Verdict};
pub use self::htpasswd::{PER_CLIENT, REMEMBER, WAITING, workers};
pub use self::tokens::TOKEN_MIN;
use self::tokens::Tokens;
use crate::conn::Client;
use crate::error::Error;
use crate::response::{Body, full, plain};

/// The query parameter and cookie that carry a `--tokens` token.
pub const TOKEN_PARAM: &str = "wsd_token";

/// How access is controlled, as the command line says.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// `--htpasswd`.
    pub htpasswd: Option<PathBuf>,
    /// `--tokens`.
    pub tokens: Option<PathBuf>,
    /// `--authurl`.
    pub auth_url: Option<AuthUrl>,
    /// `--authuserheader`: the auth service's answer header that names the user.
    pub auth_user_header: HeaderName,
    /// `--authtimeoutms`.
    pub auth_timeout: Duration,
    /// `--remoteuserheader`.
    pub remote_user_header: Option<HeaderName>,
    /// `--realm`: the realm of the Basic and Bearer challenges.
    pub realm: String,
}

/// Access control as the server runs it.
#[derive(Debug)]
pub struct Access {
    htpasswd: Option<Htpasswd>,
    tokens: Option<Tokens>,
    forward: Option<Forward>,
    remote_user_header: Option<HeaderName>,
    /// The `WWW-Authenticate` values of a 401.
    challenges: Vec<HeaderValue>,
}

/// The credentials a request came with, taken out of it.
#[derive(Default)]
pub(crate) struct Presented {
    /// `Authorization: Basic`: the name and password, or `None` when they are malformed.
    basic: Option<Option<(String, Vec<u8>)>>,
    /// A token, from the header, the query or the cookie.
    token: Option<Vec<u8>>,
    /// The `--remoteuserheader` value.
    proxy_user: Option<String>,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("basic", &self.basic.as_ref().map(|b| b.as_ref().map(|(name, _)| name)))
            .field("token", &self.token.as_ref().map(|_| ".."))
            .field("proxy_user", &self.proxy_user)
            .finish()
    }
}

/// A request that may not be served: its answer, and what the log says.
#[derive(Debug)]
pub(crate) struct Denied {
    /// The answer.
    pub(crate) response: Response<Body>,
    /// The access line's message: `UNAUTHORIZED: no credentials`, …
    pub(crate) line: String,
    /// Why the auth service could not answer, for an error line.
    pub(crate) failure: Option<String>,
    /// For the metrics: the way that was tried last (`basic`, `bearer`, `forward`, `none`),
    /// and `denied`, `busy` or `failed`.
    pub(crate) method: &'static str,
    pub(crate) outcome: &'static str,
}

impl Access {
    /// Reads the files `settings` name; a line that cannot be used is an error naming it.
    pub fn new(settings: AccessSettings) -> Result<Access, Error> {
        let htpasswd = settings.htpasswd.as_deref().map(Htpasswd::load).transpose()?;
        let tokens = settings.tokens.as_deref().map(Tokens::load).transpose()?;
        let forward = settings
            .auth_url
            .map(|url| Forward::new(url, settings.auth_user_header, settings.auth_timeout));
        let mut challenges = Vec::new();
        let realm = &settings.realm;
        if htpasswd.is_some() {
            challenges.push(format!("Basic realm=\"{realm}\", charset=\"UTF-8\""));
        }
        if tokens.is_some() {
            challenges.push(format!("Bearer realm=\"{realm}\""));
        }
        let challenges = challenges.iter().filter_map(|c| HeaderValue::from_str(c).ok()).collect();
        Ok(Access {
            htpasswd,
            tokens,
            forward,
            remote_user_header: settings.remote_user_header,
            challenges,
        })
    }

    /// Whether anything is checked at all (beyond naming a proxy's user).
    pub fn is_required(&self) -> bool {
        self.htpasswd.is_some() || self.tokens.is_some() || self.forward.is_some()
    }

    /// What is checked, for the start-up line: `Basic (users: 2 users), tokens (tokens: 1),
    /// forward auth (http://127.0.0.1:9091/verify), user from a trusted proxy's X-Remote-User`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(h) = &self.htpasswd {
            parts.push(format!("Basic ({}: {} users)", h.path().display(), h.count()));
        }
        if let Some(t) = &self.tokens {
            parts.push(format!("tokens ({}: {})", t.path().display(), t.count()));
        }
        if let Some(f) = &self.forward {
            parts.push(format!("forward auth ({})", f.url()));
        }
        if let Some(name) = &self.remote_user_header {
            parts.push(format!("user from a trusted proxy's {name}"));
        }
        parts.join(", ")
    }

    /// Reads the `--htpasswd` and `--tokens` files again (on SIGHUP): for each, what it holds
    /// now, or why it could not be read (then the old contents stay).
    pub fn reload(&self) -> Vec<Result<String, Error>> {
        let mut done = Vec::new();
        if let Some(h) = &self.htpasswd {
            done.push(
                h.reload()
                    .map(|n| format!("Reloaded --htpasswd {}: {n} users", h.path().display())),
            );
        }
        if let Some(t) = &self.tokens {
            done.push(
                t.reload().map(|n| format!("Reloaded --tokens {}: {n} tokens", t.path().display())),
            );
        }
        done
    }

    /// Takes the credentials out of `req`, before anything else sees it.
    pub(crate) fn take<B>(&self, req: &mut Request<B>) -> Presented {
        let mut presented = Presented::default();
        if let Some(name) = &self.remote_user_header {
            if let Some(value) = req.headers_mut().remove(name) {
                presented.proxy_user = value.to_str().ok().map(|v| v.trim().to_owned());
            }
            while req.headers_mut().remove(name).is_some() {}
        }
        let authorization = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
        let scheme = |scheme: &str, value: &[u8]| {
            let n = scheme.len();
            (value.len() > n
                && value[..n].eq_ignore_ascii_case(scheme.as_bytes())
                && value[n] == b' ')
                .then(|| value[n + 1..].trim_ascii().to_vec())
        };
        let bearer =
            authorization.and_then(|v| scheme("Bearer", v)).filter(|_| self.tokens.is_some());
        let basic =
            authorization.and_then(|v| scheme("Basic", v)).filter(|_| self.htpasswd.is_some());
        if bearer.is_some() || basic.is_some() {
            while req.headers_mut().remove(header::AUTHORIZATION).is_some() {}
        }
        presented.basic = basic.map(|encoded| basic_credentials(&encoded));
        if self.tokens.is_some() {
            let from_query = take_query_token(req);
            let from_cookie = take_cookie_token(req.headers_mut());
            presented.token = bearer.or(from_query).or(from_cookie);
        }
        presented
    }

    /// Whether the request of `client` (its credentials taken out as `presented`; `trusted`
    /// when its peer is a `--trustedproxy`) may be served, and as whom.
    pub(crate) async fn check<B>(
        &self,
        presented: Presented,
        req: &Request<B>,
        client: &Client,
        trusted: bool,
    ) -> Result<Option<User>, Denied> {
        if let Some(name) = presented.proxy_user.filter(|name| trusted && !name.is_empty()) {
            return Ok(Some(User { name, auth_type: "Proxy" }));
        }
        if !self.is_required() {
            return Ok(None);
        }
        let mut why = "no credentials".to_owned();
        let mut method = "none";
        if let (Some(tokens), Some(token)) = (&self.tokens, &presented.token) {
            match tokens.find(token) {
                Some(name) => return Ok(Some(User { name, auth_type: "Bearer" })),
                None => {
                    why = "unknown token".to_owned();
                    method = "bearer";
                }
            }
        }
        if let (Some(htpasswd), Some(basic)) = (&self.htpasswd, presented.basic) {
            let Some((name, password)) = basic else {
                let resp = plain(
                    StatusCode::BAD_REQUEST,
                    "400 Bad Request: malformed Basic credentials\n",
                );
                let denied = Denied::new(resp, "BAD REQUEST: malformed Basic credentials");
                return Err(denied.by("basic", "denied"));
            };
            method = "basic";
            match htpasswd.verify(&name, &password, client.ip).await {
                Ok(Verdict::Right) => return Ok(Some(User { name, auth_type: "Basic" })),
                Ok(Verdict::Wrong) => why = format!("wrong password for user '{}'", shown(&name)),
                Ok(Verdict::Unknown) => why = format!("no user '{}'", shown(&name)),
                Err(Busy::Client) => {
                    let resp = retry_later(StatusCode::TOO_MANY_REQUESTS, 1);
                    let line = "TOO MANY REQUESTS: this address's password checks are under way";
                    return Err(Denied::new(resp, line).by("basic", "busy"));
                }
                Err(Busy::Server) => {
                    let resp = retry_later(StatusCode::SERVICE_UNAVAILABLE, 1);
                    let line = "SERVICE UNAVAILABLE: too many password checks under way";
                    return Err(Denied::new(resp, line).by("basic", "busy"));
                }
            }
        }
        if let Some(forward) = &self.forward {
            return match forward.ask(req.method(), req.uri(), req.headers(), client).await {
                Answer::Allowed(name) => {
                    Ok(Some(User { name: name.unwrap_or_default(), auth_type: "Forward" }))
                }
                Answer::Denied(resp) => {
                    let line = match resp.status() {
                        StatusCode::FORBIDDEN => "FORBIDDEN: the auth service said 403",
                        _ => "UNAUTHORIZED: the auth service said 401",
                    };
                    Err(Denied::new(resp, line).by("forward", "denied"))
                }
                Answer::Failed(failure) => {
                    let resp = retry_later(StatusCode::SERVICE_UNAVAILABLE, 1);
                    let mut denied =
                        Denied::new(resp, "SERVICE UNAVAILABLE: no answer from the auth service");
                    denied.failure = Some(failure);
                    Err(denied.by("forward", "failed"))
                }
            };
        }
        let mut resp = plain(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
        for challenge in &self.challenges {
            resp.headers_mut().append(header::WWW_AUTHENTICATE, challenge.clone());
        }
        Err(Denied::new(resp, &format!("UNAUTHORIZED: {why}")).by(method, "denied"))
    }
}

/// A `--htpasswd` or `--tokens` file as read: its entries, and how to name a bad one.
struct AccessFile<'a> {
    flag: &'static str,
    path: &'a std::path::Path,
    text: String,
}

impl<'a> AccessFile<'a> {
    /// Reads the `flag` file at `path`.
    fn read(flag: &'static str, path: &'a std::path::Path) -> Result<AccessFile<'a>, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::AccessFile {
            flag,
            path: path.to_owned(),
            source,
        })?;
        Ok(AccessFile { flag, path, text })
    }

    /// The lines that hold an entry, trimmed and numbered from 1: blank lines and `#`
    /// comments left out.
    fn entries(&self) -> impl Iterator<Item = (usize, &str)> {
        self.text
            .lines()
            .enumerate()
            .map(|(i, line)| (i + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
    }

    /// The error for line `line`, which cannot be used for `reason`.
    fn bad(&self, line: usize, reason: String) -> Error {
        Error::AccessLine { flag: self.flag, path: self.path.to_owned(), line, reason }
    }
}

impl Denied {
    fn new(response: Response<Body>, line: &str) -> Denied {
        Denied { response, line: line.to_owned(), failure: None, method: "none", outcome: "denied" }
    }

    fn by(self, method: &'static str, outcome: &'static str) -> Denied {
        Denied { method, outcome, ..self }
    }
}

/// A 429 or 503 that says when to try again.
fn retry_later(status: StatusCode, seconds: u64) -> Response<Body> {
    let text = format!("{} {}\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let mut resp = Response::new(full(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// A name as the log shows it: what a client sent, its control characters escaped.
fn shown(name: &str) -> String {
    name.chars().flat_map(char::escape_debug).collect()
}

/// The name and password of Basic credentials (`base64(name:password)`), or `None` when they
/// are not that or the name is not UTF-8.
fn basic_credentials(encoded: &[u8]) -> Option<(String, Vec<u8>)> {
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let name = std::str::from_utf8(&decoded[..colon]).ok()?.to_owned();
    Some((name, decoded[colon + 1..].to_vec()))
}

/// Takes the token parameter out of the request's query: its value, percent-decoded.
fn take_query_token<B>(req: &mut Request<B>) -> Option<Vec<u8>> {
    let query = req.uri().query()?;
    if !query.contains(TOKEN_PARAM) {
        return None;
    }
    let mut token = None;
    let mut rest = Vec::new();
    for param in query.split('&') {
        match param.split_once('=') {
            Some((TOKEN_PARAM, value)) => {
                token.get_or_insert_with(|| percent_decode_str(value).collect::<Vec<u8>>());
            }
            None if param == TOKEN_PARAM => {}
            _ => rest.push(param),
        }
    }
    let rest = rest.join("&");
    crate::path::replace_query(req, &rest);
    token
}

/// Takes the token cookie out of the `Cookie` headers: its value, unquoted and
/// percent-decoded. A header left with no cookie goes.
fn take_cookie_token(headers: &mut HeaderMap) -> Option<Vec<u8>> {
    if !headers.get_all(header::COOKIE).iter().any(|v| contains(v.as_bytes(), TOKEN_PARAM)) {
        return None;
    }
    let mut token = None;
    let mut kept = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else {
            kept.push(value.clone());
            continue;
        };
        let mut rest = Vec::new();
        for pair in value.split(';') {
            match pair.trim().split_once('=') {
                Some((TOKEN_PARAM, v)) => {
                    let v = v.trim().trim_matches('"');
                    token.get_or_insert_with(|| percent_decode_str(v).collect::<Vec<u8>>());
                }
                _ if !pair.trim().is_empty() => rest.push(pair.trim()),
                _ => {}
            }
        }
        if !rest.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&rest.join("; ")) {
                kept.push(v);
            }
        }
    }
    headers.remove(header::COOKIE);
    for value in kept {
        headers.append(header::COOKIE, value);
    }
    token
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A temporary file for the access files' unit tests, unique to each, removed when dropped.
#[cfg(test)]
pub(super) struct TempFile(pub(super) std::path::PathBuf);

#[cfg(test)]
impl TempFile {
    pub(super) fn new(text: &str) -> TempFile {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wsd-access-{}-{n}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

#[cfg(test)]
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn access(tokens: bool, basic: bool) -> Access {
        let mut a = Access::new(AccessSettings {
            htpasswd: None,
            tokens: None,
            auth_url: None,
            auth_user_header: HeaderName::from_static("remote-user"),
            auth_timeout: Duration::from_secs(1),
            remote_user_header: Some(HeaderName::from_static("x-remote-user")),
            realm: "test".to_owned(),
        })
        .unwrap();
        if tokens {
            let file = TempFile::new("AAAAAAAAAAAAAAAAAAAA alice\n");
            a.tokens = Some(Tokens::load(&file.0).unwrap());
        }
        if basic {
            a.htpasswd = Some(Htpasswd::load(&TempFile::new("").0).unwrap());
        }
        a
    }

    #[test]
    fn the_token_comes_out_of_the_query_and_the_cookie_and_the_rest_stays() {
        let a = access(true, false);
        let mut r = req(
            "/chat?a=1&wsd_token=AAAA%2BAAA&b=2",
            &[("cookie", "x=1; wsd_token=\"CCC\"; y=2"), ("cookie", "wsd_token=DDD")],
        );
        let p = a.take(&mut r);
        assert_eq!(p.token.as_deref(), Some(&b"AAAA+AAA"[..]));
        assert_eq!(r.uri().to_string(), "/chat?a=1&b=2");
        let cookies: Vec<_> = r.headers().get_all("cookie").iter().collect();
        assert_eq!(cookies, ["x=1; y=2"]);
        let mut r = req("/?wsd_token=QQQ", &[("cookie", "wsd_token=CCC")]);
        assert_eq!(a.take(&mut r).token.as_deref(), Some(&b"QQQ"[..]));
        assert_eq!(r.uri().to_string(), "/");
        assert!(r.headers().get("cookie").is_none());
        let mut r = req("/", &[("authorization", "bearer  HHH ")]);
        assert_eq!(a.take(&mut r).token.as_deref(), Some(&b"HHH"[..]));
        assert!(r.headers().get("authorization").is_none());
    }

    #[test]
    fn basic_credentials_are_read_and_odd_ones_are_malformed() {
        let a = access(false, true);
        let mut r = req("/", &[("authorization", "Basic YWxpY2U6czNjcjp0")]);
        let p = a.take(&mut r);
        assert_eq!(p.basic, Some(Some(("alice".to_owned(), b"s3cr:t".to_vec()))));
        assert!(r.headers().get("authorization").is_none());
        for bad in ["Basic !!!", "Basic bm9jb2xvbg==", "Basic /w==:"] {
            let mut r = req("/", &[("authorization", bad)]);
            assert_eq!(a.take(&mut r).basic, Some(None), "{bad}");
        }
        // A scheme nobody reads stays for the program.
        let mut r = req("/", &[("authorization", "Bearer AAAAAAAAAAAAAAAAAAAA")]);
        assert!(a.take(&mut r).token.is_none());
        assert!(r.headers().get("authorization").is_some());
    }

    #[tokio::test]
    async fn a_proxy_user_counts_only_from_a_trusted_peer() {
        let a = access(true, false);
        let client = Client { ip: None, port: None, https: false };
        let mut r = req("/", &[("x-remote-user", "mallory")]);
        let p = a.take(&mut r);
        assert!(r.headers().get("x-remote-user").is_none(), "taken out of the program's view");
        let denied = a.check(p, &r, &client, false).await.unwrap_err();
        assert_eq!(denied.response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(denied.line, "UNAUTHORIZED: no credentials");
        let mut r = req("/", &[("x-remote-user", "alice")]);
        let p = a.take(&mut r);
        let user = a.check(p, &r, &client, true).await.unwrap();
        assert_eq!(user, Some(User { name: "alice".to_owned(), auth_type: "Proxy" }));
        let mut r = req("/?wsd_token=AAAAAAAAAAAAAAAAAAAA", &[]);
        let p = a.take(&mut r);
        let user = a.check(p, &r, &client, false).await.unwrap();
        assert_eq!(user, Some(User { name: "alice".to_owned(), auth_type: "Bearer" }));
    }
}
