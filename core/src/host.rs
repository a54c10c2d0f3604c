//! The Host header, and `host[:port]` as a Host header or a URL's authority writes it. Every
//! part of the server that reads the Host header or splits a host from its port does it here.

use std::net::Ipv6Addr;

use http::{HeaderMap, Uri};

/// The Host header as sent; empty when there is none, or it is not text.
pub fn header(headers: &HeaderMap) -> &str {
    headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("")
}

/// The host a request is for (RFC 9112 §3.2.2): the authority of an absolute-form target
/// (`GET http://h/ HTTP/1.1`), the Host header otherwise. The edge has refused a request
/// whose Host or target authority is not [valid].
pub fn of_request<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> &'a str {
    match uri.authority() {
        Some(authority) => authority.as_str(),
        None => header(headers),
    }
}

/// Whether `s` is a valid Host value (RFC 9110 §7.2: RFC 3986's `host [":" port]`): a name
/// of unreserved characters, sub-delims and percent escapes (an IPv4 address is one), or an
/// IPv6 address in brackets; then, optionally, `:` and a port of at most 65535 (it may be
/// empty, as in `h:`). Empty is valid: it is what a client sends when the target has no
/// authority.
pub fn valid(s: &str) -> bool {
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let Some((literal, after)) = rest.split_once(']') else { return false };
            if literal.parse::<Ipv6Addr>().is_err() {
                return false;
            }
            match after {
                "" => return true,
                after => match after.strip_prefix(':') {
                    Some(port) => ("", port),
                    None => return false,
                },
            }
        }
        None => match s.split_once(':') {
            None => (s, ""),
            Some((host, port)) => (host, port),
        },
    };
    reg_name(host) && (port.is_empty() || port.len() <= 5 && port.parse::<u16>().is_ok())
}

/// RFC 3986's `reg-name`: unreserved characters, sub-delims, and `%` with two hex digits.
fn reg_name(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                if !(i + 2 < b.len()
                    && b[i + 1].is_ascii_hexdigit()
                    && b[i + 2].is_ascii_hexdigit())
                {
                    return false;
                }
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&c) => i += 1,
            _ => return false,
        }
    }
    true
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
    fn host_values_are_checked_as_rfc_3986_writes_them() {
        for ok in [
            "",
            "h",
            "h:",
            "[::1]:",
            "h:80",
            "a.example:65535",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:9",
            "xn--bcher-kva.example",
            "a_b~c",
            "%41bc",
            "sub-delims!$&'()*+,;=",
        ] {
            assert!(valid(ok), "{ok:?} is valid");
        }
        for bad in [
            "a b",
            "h\"",
            "h:x",
            "h:65536",
            "h:000080",
            "h:1:2",
            "::1",
            "[::1",
            "[::1]x",
            "[zz]",
            "h/p",
            "u@h",
            "%4",
            "%zz",
            "h]",
            "[",
            "caf\u{e9}",
            "h:-1",
        ] {
            assert!(!valid(bad), "{bad:?} is not valid");
        }
    }

    #[test]
    fn an_absolute_target_names_the_host() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, "header.example".parse().unwrap());
        let absolute: Uri = "http://other.example:81/ok".parse().unwrap();
        assert_eq!(of_request(&absolute, &headers), "other.example:81");
        let origin_form: Uri = "/ok".parse().unwrap();
        assert_eq!(of_request(&origin_form, &headers), "header.example");
    }

    #[test]
    fn a_url_writes_ipv6_hosts_in_brackets() {
        assert_eq!(split("[::1]:9").unwrap().url_host(), "[::1]");
        assert_eq!(split("h:9").unwrap().url_host(), "h");
    }
}
