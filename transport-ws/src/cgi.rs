//! `--cgidir`: CGI/1.1 (RFC 3875) for requests that are not upgrades. The script is found as
//! with `--dir` (PATH_INFO split, executables only, no dotfiles, nothing outside the
//! directory) and runs in its own directory with the CGI environment and `--passenv`. The
//! request body streams to its stdin; its output's header block (`Status:`, `Location:`,
//! others) makes the response, and the rest streams back as the body. Output without a
//! valid header block is a 502. Each run holds a `--maxforks` slot; a client that leaves
//! sends the script down the termination ladder.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tracing::Instrument;
use websocketd_core::child::{self, Child, Pipes};
use websocketd_core::env::{EnvSettings, check_exec};
use websocketd_core::metrics::Metrics;
use websocketd_core::request::{RequestInfo, address_label, log_url};

use crate::conn::{Client, Conn};
use crate::edge;
use crate::forks::{Forks, Full, Slot};
use crate::response::{Body, full, plain};
use crate::scripts::{Lookup, ScriptDir};

/// The most a script's header block may take.
const MAX_HEAD: usize = 64 * 1024;

/// `--cgidir` as the router holds it.
#[derive(Debug)]
pub(crate) struct Cgi {
    dir: ScriptDir,
    env: EnvSettings,
    closems: Duration,
    forks: Forks,
    metrics: Arc<Metrics>,
}

impl Cgi {
    /// The scripts of `dir`, with the server's `env` and `--closems`, counted in `forks` and
    /// `metrics`.
    pub(crate) fn new(
        dir: ScriptDir,
        env: EnvSettings,
        closems: Duration,
        forks: Forks,
        metrics: Arc<Metrics>,
    ) -> Cgi {
        Cgi { dir, env, closems, forks, metrics }
    }

    /// Answers `req`, whose decoded path is `decoded`, when that names a script (or something
    /// there that may not be run: 404, logged in `request`'s span); gives the request back
    /// when it names nothing.
    pub(crate) async fn respond(
        &self,
        req: Request<Incoming>,
        client: Client,
        conn: &Conn,
        decoded: &str,
        request: &tracing::Span,
    ) -> Result<Response<Body>, Request<Incoming>> {
        let (program, script_name) = match self.dir.lookup(decoded) {
            Lookup::Found { program, script_name } => (program, script_name),
            Lookup::Refused(why) => {
                request.in_scope(|| {
                    tracing::error!(target: "http", "Refused to run {}: {why}", req.uri().path());
                });
                return Ok(plain(StatusCode::NOT_FOUND, "404 page not found\n"));
            }
            Lookup::NotFound => return Err(req),
        };
        let slot = match self.forks.take(client.ip) {
            Ok(slot) => slot,
            Err(full) => {
                match full {
                    Full::Server => {
                        tracing::error!(target: "http", "Fork not allowed since maxforks amount has been reached. CGI was not run.");
                    }
                    Full::Client(key) => {
                        tracing::error!(target: "http", "Fork not allowed since client {key} has --maxforksperip scripts running. CGI was not run.");
                    }
                }
                return Ok(crate::endpoint::too_many(full));
            }
        };
        let info = conn.request_info(&req, client, script_name, None);
        let url = log_url(client.https, req.headers(), req.uri());
        let span = tracing::info_span!(target: "http", "http", url = %url, remote = %address_label(client.ip), user = info.user_name(), cgiscript = %program.display());
        span.in_scope(|| websocketd_core::access!(target: "http", "CGI"));
        let guard = Guard {
            child: None,
            closems: self.closems,
            metrics: Arc::clone(&self.metrics),
            _slot: slot,
        };
        Ok(run(req, info, program, &self.env, guard).instrument(span).await)
    }
}

/// Runs `program` for `req` and answers with what it writes.
async fn run(
    req: Request<Incoming>,
    info: RequestInfo,
    program: PathBuf,
    env: &EnvSettings,
    mut guard: Guard,
) -> Response<Body> {
    let mut vars = env.cgi_env(&info);
    let sent = |name| {
        let value = req.headers().get(name).map_or(&[][..], |v: &HeaderValue| v.as_bytes());
        OsString::from_vec(value.to_vec())
    };
    vars.push(("CONTENT_LENGTH".to_owned(), sent(header::CONTENT_LENGTH)));
    vars.push(("CONTENT_TYPE".to_owned(), sent(header::CONTENT_TYPE)));
    vars.push(("SCRIPT_FILENAME".to_owned(), program.clone().into_os_string()));
    // What exec would refuse is answered now, as for a WebSocket.
    if let Err(why) = check_exec(program.as_os_str(), &[], &vars) {
        tracing::error!(target: "http", "Refused to run {}: {why}", program.display());
        return edge::unrunnable(&why);
    }
    let cwd = program.parent().map(PathBuf::from);
    let (child, pipes) = match Child::spawn_in(program.clone(), Vec::new(), vars, cwd).await {
        Ok(spawned) => spawned,
        Err(e) => {
            tracing::error!(target: "process", "Could not launch process {} ({e})", program.display());
            guard.metrics.spawn_failures.inc();
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "500 Internal Server Error\n");
        }
    };
    guard.metrics.spawned();
    guard.child = Some(child);
    let Pipes { stdin, stdout, stderr } = pipes;
    tokio::spawn(child::drain_stderr(stderr).in_current_span());
    tokio::spawn(feed(req.into_body(), stdin));
    let mut buf = BytesMut::new();
    let head_end = loop {
        if let Some(end) = head_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return bad_gateway("header block too long");
        }
        match websocketd_core::pipe::read_some(&stdout, &mut buf).await {
            Ok(0) | Err(_) => return bad_gateway("output ended before the header block did"),
            Ok(_) => {}
        }
    };
    let head = buf.split_to(head_end.0);
    let _ = buf.split_to(head_end.1);
    let mut resp = match response_head(&head) {
        Ok(resp) => resp,
        Err(why) => return bad_gateway(why),
    };
    // The body: what came with the head, then the rest of stdout; the script is seen off
    // when it ends or when the client goes.
    let first = (!buf.is_empty()).then(|| buf.freeze());
    let stream = futures_util::stream::unfold(
        (Some(stdout), first, guard),
        |(stdout, first, mut guard)| async move {
            if let Some(bytes) = first {
                return Some((Ok(Frame::data(bytes)), (stdout, None, guard)));
            }
            let stdout = stdout?;
            let mut chunk = BytesMut::new();
            match websocketd_core::pipe::read_some(&stdout, &mut chunk).await {
                Ok(n) if n > 0 => {
                    Some((Ok(Frame::data(chunk.freeze())), (Some(stdout), None, guard)))
                }
                _ => {
                    guard.finish().await;
                    None
                }
            }
        },
    );
    *resp.body_mut() = StreamBody::new(stream).boxed_unsync();
    resp
}

/// Writes the request body to the script's stdin, then closes it.
async fn feed(mut body: Incoming, mut stdin: pipe::Sender) {
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            if stdin.write_all(data).await.is_err() {
                break;
            }
        }
    }
}

/// The script's process, seen off when the response ends: through the ladder, also when the
/// client goes away in the middle. Holds the `--maxforks` slot until then.
struct Guard {
    child: Option<Child>,
    closems: Duration,
    metrics: Arc<Metrics>,
    _slot: Slot,
}

impl Guard {
    async fn finish(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.terminate(self.closems).await;
            self.metrics.exited(child.status());
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let (Some(mut child), Ok(runtime)) =
            (self.child.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let closems = self.closems;
        let slot = std::mem::take(&mut self._slot);
        let metrics = Arc::clone(&self.metrics);
        runtime.spawn(async move {
            child.terminate(closems).await;
            metrics.exited(child.status());
            drop(slot);
        });
    }
}

/// Where the header block ends: (its length, the length of the blank line after it).
fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The response the header block describes.
fn response_head(head: &[u8]) -> Result<Response<Body>, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "header block is not UTF-8")?;
    let mut resp = Response::new(full(Bytes::new()));
    let mut status = None;
    let mut location = false;
    for line in text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or("header line without a colon")?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse::<u16>().ok());
            status = Some(code.and_then(|c| StatusCode::from_u16(c).ok()).ok_or("bad Status")?);
            continue;
        }
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| "bad header name")?;
        location |= name == header::LOCATION;
        let value = HeaderValue::from_str(value).map_err(|_| "bad header value")?;
        resp.headers_mut().append(name, value);
    }
    *resp.status_mut() =
        status.unwrap_or(if location { StatusCode::FOUND } else { StatusCode::OK });
    Ok(resp)
}

fn bad_gateway(why: &str) -> Response<Body> {
    tracing::error!(target: "http", "CGI script output is malformed: {why}");
    plain(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_become_responses() {
        let r = response_head(b"Content-Type: text/plain\r\nX-A: 1").unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-a"], "1");
        assert_eq!(
            response_head(b"Status: 404 Not Found").unwrap().status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(response_head(b"Location: /x").unwrap().status(), StatusCode::FOUND);
        assert!(response_head(b"no colon here").is_err());
        assert!(response_head(b"Status: abc").is_err());
        assert_eq!(head_end(b"A: 1\n\nbody"), Some((4, 2)));
        assert_eq!(head_end(b"A: 1\r\n\r\nbody"), Some((4, 4)));
        assert_eq!(head_end(b"A: 1\r\n"), None);
    }
}
