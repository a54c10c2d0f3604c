//! Recognising a WebSocket upgrade and checking it (RFC 6455 section 4.2.1).

use http::{HeaderMap, Method, Request, StatusCode, Version, header};

/// Whether a request asks to become a WebSocket, by websocketd's rule: the first `Upgrade`
/// value is `websocket` and the first `Connection` value has the token `upgrade`. Anything
/// else is a plain HTTP request.
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    let first = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let upgrade =
        first(header::UPGRADE).is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    let connection = first(header::CONNECTION).is_some_and(|v| {
        v.split(|c: char| c == ',' || c.is_ascii_whitespace())
            .any(|token| token.eq_ignore_ascii_case("upgrade"))
    });
    upgrade && connection
}

/// Why an upgrade request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not GET.
    Method,
    /// Older than HTTP/1.1.
    Version,
    /// `Sec-WebSocket-Version` is not 13.
    WebSocketVersion,
    /// `Sec-WebSocket-Key` is not base64 of 16 bytes.
    Key,
}

impl Refusal {
    /// The status answered.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Method => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::Version | Refusal::Key => StatusCode::BAD_REQUEST,
            Refusal::WebSocketVersion => StatusCode::UPGRADE_REQUIRED,
        }
    }

    /// Why, for the body and the log.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Method => "websocket: the client is not using the GET method",
            Refusal::Version => "websocket: the client is not using HTTP/1.1 or later",
            Refusal::WebSocketVersion => {
                "websocket: unsupported version: 13 is the only supported version"
            }
            Refusal::Key => "websocket: Sec-WebSocket-Key is not base64 of 16 bytes",
        }
    }
}

/// Checks method, version and handshake headers; returns the key to answer.
pub fn check<B>(req: &Request<B>) -> Result<&[u8], Refusal> {
    if req.method() != Method::GET {
        return Err(Refusal::Method);
    }
    if req.version() < Version::HTTP_11 {
        return Err(Refusal::Version);
    }
    let headers: &HeaderMap = req.headers();
    let version_ok = headers
        .get_all(header::SEC_WEBSOCKET_VERSION)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim() == "13")));
    if !version_ok {
        return Err(Refusal::WebSocketVersion);
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes()).unwrap_or_default();
    if !is_nonce(key) {
        return Err(Refusal::Key);
    }
    Ok(key)
}

/// The subprotocol to answer with: the first of `ours` (in our order of preference) that the
/// client offered in any `Sec-WebSocket-Protocol` header. None when we have none or the
/// client offered none of them.
pub fn choose_subprotocol<'a>(headers: &HeaderMap, ours: &'a [String]) -> Option<&'a str> {
    if ours.is_empty() {
        return None;
    }
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    ours.iter().map(String::as_str).find(|p| offered.contains(p))
}

/// Base64 (with padding) of exactly 16 bytes: 22 alphabet characters then `==`.
fn is_nonce(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22].iter().all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn upgrade_detection_follows_websocketd() {
        assert!(is_upgrade(&req(&[("Upgrade", "websocket"), ("Connection", "Upgrade")])));
        assert!(is_upgrade(&req(&[
            ("Upgrade", "WebSocket"),
            ("Connection", "keep-alive, upgrade")
        ])));
        assert!(!is_upgrade(&req(&[("Upgrade", "websocket, h2c"), ("Connection", "Upgrade")])));
        assert!(!is_upgrade(&req(&[("Upgrade", "websocket"), ("Connection", "close")])));
        assert!(!is_upgrade(&req(&[("Connection", "Upgrade")])));
    }

    #[test]
    fn keys_must_be_sixteen_bytes_of_base64() {
        assert!(is_nonce(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_nonce(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!is_nonce(b"short"));
        assert!(!is_nonce(b"dGhlIHNhbXBsZSBub25j!!=="));
    }

    #[test]
    fn the_first_of_our_subprotocols_that_the_client_offers_wins() {
        let ours = vec!["chat".to_owned(), "superchat".to_owned()];
        let r =
            req(&[("Sec-WebSocket-Protocol", "superchat, chat"), ("Sec-WebSocket-Protocol", "x")]);
        assert_eq!(choose_subprotocol(r.headers(), &ours), Some("chat"));
        let r = req(&[("Sec-WebSocket-Protocol", "x, superchat")]);
        assert_eq!(choose_subprotocol(r.headers(), &ours), Some("superchat"));
        let r = req(&[("Sec-WebSocket-Protocol", "other")]);
        assert_eq!(choose_subprotocol(r.headers(), &ours), None);
        assert_eq!(choose_subprotocol(r.headers(), &[]), None);
    }

    #[test]
    fn version_other_than_13_is_426() {
        let r = req(&[
            ("Sec-WebSocket-Version", "8"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert_eq!(check(&r), Err(Refusal::WebSocketVersion));
        assert_eq!(Refusal::WebSocketVersion.status(), StatusCode::UPGRADE_REQUIRED);
    }
}
