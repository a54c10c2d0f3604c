//! `--devconsole`: a page, served for every request that is not an upgrade, that connects to
//! the WebSocket at the same URL, sends lines and shows messages, open and close events and
//! close codes. It has no external assets and reflects nothing from the request: its script
//! builds the URL from `location`, and every message is shown as text, never as HTML.

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

/// The page.
pub const PAGE: &str = include_str!("console.html");

/// Serves the page: 200, or 304 to a client whose copy is not older than `since` (the
/// server's start).
pub fn respond(request_headers: &HeaderMap, since: SystemTime) -> Response<Bytes> {
    let modified = httpdate::fmt_http_date(since);
    let fresh = request_headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|t| t >= truncate(since));
    let mut resp = if fresh {
        let mut r = Response::new(Bytes::new());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Bytes::from_static(PAGE.as_bytes()))
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&modified) {
        h.insert(header::LAST_MODIFIED, v);
    }
    resp
}

/// HTTP dates have whole seconds.
fn truncate(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}
