//! The strict HTTP edge: what every request must be before anything else looks at it (RFC
//! 9112), and what the server refuses before it starts a program for a request that could
//! only fail later.
//!
//! - The Host (§3.2): an HTTP/1.1 request without one, any request with two, or one whose
//!   value is not `host[:port]`, is answered 400 and the connection closed, as Go's server
//!   (and so websocketd) does. An HTTP/1.0 request may come without.
//! - An absolute-form target (`GET http://h/p HTTP/1.1`, §3.2.2) names the host itself; its
//!   scheme must be an HTTP one and its authority a valid `host[:port]` with no user info.
//!   Everything that reads the host then reads the target's ([`host::of_request`]).
//! - An upgrade request has no body (§6.3, RFC 6455 §4.1): one with `Transfer-Encoding`
//!   (hyper has dropped a `Content-Length` beside it already) or a non-zero `Content-Length`
//!   is answered 400 and the connection closed, so no byte of it can be taken for a frame.
//! - A program's environment that exec would refuse (a NUL byte, one string over the
//!   kernel's limit, too much in all: [`check_exec`](websocketd_core::env::check_exec)) is
//!   answered 400 or 431 before any process starts.
//!
//! A request that gets this far has its header count and size bounded by the listener:
//! [`MAX_HEADERS`] lines and [`MAX_HEAD_BYTES`] in all, each over is 431.

use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use websocketd_core::env::Unrunnable;
use websocketd_core::host;

use crate::response::{Body, plain};

/// The most header lines a request may have (hyper's default is 100; Go has no count, only
/// its 1 MiB of header bytes, and websocketd has been seen to take 1,000).
pub const MAX_HEADERS: usize = 1000;

/// The most bytes a request's head (request line and headers) may take: Go's
/// `DefaultMaxHeaderBytes`, which websocketd has.
pub const MAX_HEAD_BYTES: usize = 1 << 20;

/// Why a request is refused at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// HTTP/1.1 without a Host.
    NoHost,
    /// More than one Host line.
    TwoHosts,
    /// A Host value that is not `host[:port]`.
    BadHost,
    /// An absolute-form target whose scheme is not http or https (or ws, wss).
    BadScheme,
    /// An absolute-form target whose authority is not `host[:port]` (user info included).
    BadAuthority,
    /// An upgrade request with a body.
    UpgradeBody,
}

impl BadRequest {
    /// Why, for the body and the log; the first three as Go's server words them.
    pub fn reason(self) -> &'static str {
        match self {
            BadRequest::NoHost => "missing required Host header",
            BadRequest::TwoHosts => "too many Host headers",
            BadRequest::BadHost => "malformed Host header",
            BadRequest::BadScheme => "the target's scheme is not http or https",
            BadRequest::BadAuthority => "the target's host is not host[:port]",
            BadRequest::UpgradeBody => "an upgrade request may not have a body",
        }
    }

    /// The answer: 400, and the connection closed after it.
    pub fn response(self) -> Response<Body> {
        let mut resp =
            plain(StatusCode::BAD_REQUEST, &format!("400 Bad Request: {}\n", self.reason()));
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        resp
    }
}

/// Checks what every request must be: its Host, and an absolute-form target.
pub fn check<B>(req: &Request<B>) -> Result<(), BadRequest> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version() == Version::HTTP_11 => return Err(BadRequest::NoHost),
        (None, _) => {}
        (Some(_), Some(_)) => return Err(BadRequest::TwoHosts),
        (Some(value), None) => {
            if !value.to_str().is_ok_and(host::valid) {
                return Err(BadRequest::BadHost);
            }
        }
    }
    let uri = req.uri();
    if let Some(scheme) = uri.scheme_str() {
        if !["http", "https", "ws", "wss"].iter().any(|s| scheme.eq_ignore_ascii_case(s)) {
            return Err(BadRequest::BadScheme);
        }
        let authority = uri.authority().map_or("", |a| a.as_str());
        if authority.contains('@') || !host::valid(authority) {
            return Err(BadRequest::BadAuthority);
        }
    }
    Ok(())
}

/// Checks that an upgrade request has no body.
pub fn check_upgrade<B: hyper::body::Body>(req: &Request<B>) -> Result<(), BadRequest> {
    // An HTTP/2 extended CONNECT's stream is the WebSocket itself (RFC 8441).
    if is_extended_connect(req) {
        return Ok(());
    }
    if req.headers().contains_key(header::TRANSFER_ENCODING) || !req.body().is_end_stream() {
        return Err(BadRequest::UpgradeBody);
    }
    Ok(())
}

/// Whether `req` is an HTTP/2 extended CONNECT for a WebSocket (RFC 8441 §4).
pub fn is_extended_connect<B>(req: &Request<B>) -> bool {
    req.method() == Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// The answer to a request whose program could not be given its environment: 400 for a NUL
/// byte, which no request can make right by being shorter; 431 for what is too long, which
/// in practice comes from the headers (a URI long enough is refused by the parser first).
pub fn unrunnable(why: &Unrunnable) -> Response<Body> {
    match why {
        Unrunnable::Nul { .. } => {
            plain(StatusCode::BAD_REQUEST, "400 Bad Request: the request holds a NUL byte\n")
        }
        Unrunnable::TooLong { .. } | Unrunnable::TooBig { .. } => plain(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "431 Request Header Fields Too Large\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, version: Version, hosts: &[&[u8]]) -> Request<()> {
        let mut b = Request::builder().uri(target).version(version);
        for h in hosts {
            b = b.header(header::HOST, HeaderValue::from_bytes(h).unwrap());
        }
        b.body(()).unwrap()
    }

    #[test]
    fn every_http_11_request_has_one_valid_host() {
        let v11 = Version::HTTP_11;
        assert_eq!(check(&req("/", v11, &[b"a:1"])), Ok(()));
        assert_eq!(check(&req("/", v11, &[b""])), Ok(()));
        assert_eq!(check(&req("/", v11, &[])), Err(BadRequest::NoHost));
        assert_eq!(check(&req("/", Version::HTTP_10, &[])), Ok(()));
        assert_eq!(check(&req("/", v11, &[b"a", b"a"])), Err(BadRequest::TwoHosts));
        assert_eq!(check(&req("/", Version::HTTP_10, &[b"a", b"b"])), Err(BadRequest::TwoHosts));
        assert_eq!(check(&req("/", v11, &[b"a b"])), Err(BadRequest::BadHost));
        assert_eq!(check(&req("/", v11, &[b"caf\xe9"])), Err(BadRequest::BadHost));
    }

    #[test]
    fn an_absolute_target_has_an_http_scheme_and_a_plain_authority() {
        let v11 = Version::HTTP_11;
        assert_eq!(check(&req("http://other.example/ok", v11, &[b"a"])), Ok(()));
        assert_eq!(check(&req("wss://[::1]:9/ok", v11, &[b"a"])), Ok(()));
        assert_eq!(check(&req("ftp://h/ok", v11, &[b"a"])), Err(BadRequest::BadScheme));
        assert_eq!(check(&req("http://u@h/ok", v11, &[b"a"])), Err(BadRequest::BadAuthority));
        // The Host header is still required, and still checked.
        assert_eq!(check(&req("http://h/ok", v11, &[])), Err(BadRequest::NoHost));
    }
}
