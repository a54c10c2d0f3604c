//! The Host header, and `host[:port]` as a Host header or a URL's authority writes it. Every
//! part of the server that reads the Host header or splits a host from its port does it here.

use http::HeaderMap;

/// The Host header as sent; empty when there is none, or it is not text.
pub fn header(headers: &HeaderMap) -> &str {
    headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("")
}

/// A host and, when one is written, its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort<'a> {
    /// The host, an IPv6 address without its brackets.
    pub host: &'a str,
    /// The port as written (it may be empty, as in `h:`), if there is a `:port`.
    pub port: Option<&'a str>,
}

impl HostPort<'_> {
    /// The host as a URL writes it: an IPv6 address in brackets.
    pub fn url_host(&self) -> String {
        if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.to_owned() }
    }
}

/// Splits `host[:port]` as Go's `net.SplitHostPort` does (which websocketd uses on the Host
/// header), but a missing port is no error: `[IPv6]` and `[IPv6]:port` in brackets, else at
/// most one colon. `None` when it is neither.
pub fn split(s: &str) -> Option<HostPort<'_>> {
    let hp = match s.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            let port = if after.is_empty() { None } else { Some(after.strip_prefix(':')?) };
            HostPort { host, port }
        }
        None => match s.split_once(':') {
            None => HostPort { host: s, port: None },
            Some((host, port)) => HostPort { host, port: Some(port) },
        },
    };
    // No bracket left in either part, and no second colon.
    let bad = |part: &str| part.contains(['[', ']']);
    if bad(hp.host) || hp.port.is_some_and(|p| bad(p) || p.contains(':')) {
        return None;
    }
    Some(hp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> Option<(&str, Option<&str>)> {
        split(s).map(|hp| (hp.host, hp.port))
    }

    #[test]
    fn host_header_splits_as_go_does() {
        assert_eq!(parts("h:99"), Some(("h", Some("99"))));
        assert_eq!(parts("[::1]:8080"), Some(("::1", Some("8080"))));
        assert_eq!(parts("[::1]"), Some(("::1", None)));
        assert_eq!(parts("h"), Some(("h", None)));
        assert_eq!(parts(""), Some(("", None)));
        assert_eq!(parts("h:"), Some(("h", Some(""))));
        assert_eq!(parts("h:1:2"), None);
        assert_eq!(parts("::1"), None, "IPv6 needs its brackets");
        assert_eq!(parts("[::1"), None);
        assert_eq!(parts("[::1]x"), None);
        assert_eq!(parts("[::1]:1:2"), None);
        assert_eq!(parts("h]:1"), None);
    }

    #[test]
    fn a_url_writes_ipv6_hosts_in_brackets() {
        assert_eq!(split("[::1]:9").unwrap().url_host(), "[::1]");
        assert_eq!(split("h:9").unwrap().url_host(), "h");
    }
}
