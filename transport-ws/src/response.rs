//! The pieces every response is made of: the body type, short text and redirect answers as
//! Go's net/http writes them, HTML escaping, and the response headers of `--header`,
//! `--header-ws` and `--header-http`.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

use crate::error::Error;

/// The body of every response: a buffer, or a file streamed.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A body made of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// A short text/plain response, as Go's `http.Error` writes it.
pub fn plain(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::copy_from_slice(body.as_bytes())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

/// A 301 to `location`, as Go's mux writes it.
pub fn moved(location: &str) -> Response<Body> {
    let href = escape(location);
    let mut resp = Response::new(full(format!("<a href=\"{href}\">Moved Permanently</a>.\n\n")));
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    resp
}

/// Text made safe for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Response headers from the command line.
#[derive(Debug, Clone, Default)]
pub struct ExtraHeaders {
    /// `--header`: on every response.
    pub all: Vec<(HeaderName, HeaderValue)>,
    /// `--header-ws`: on 101 responses.
    pub ws: Vec<(HeaderName, HeaderValue)>,
    /// `--header-http`: on every other response.
    pub http: Vec<(HeaderName, HeaderValue)>,
}

impl ExtraHeaders {
    /// Parses one flag value as websocketd does: the name is what precedes the first `:`,
    /// the value what follows it less leading spaces (no `:`: an empty value). Control bytes
    /// in the value become spaces, so a value can never start another header line.
    pub fn parse(raw: &str) -> Result<(HeaderName, HeaderValue), Error> {
        let (name, value) = raw.split_once(':').unwrap_or((raw, ""));
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| Error::HeaderName(raw.to_owned()))?;
        let value: String =
            value.trim_start().chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let value =
            HeaderValue::from_str(&value).map_err(|_| Error::HeaderValue(raw.to_owned()))?;
        Ok((name, value))
    }
}
