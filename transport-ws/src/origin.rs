//! `--origin` and `--sameorigin`, with websocketd's semantics (reference 5.2) minus its bugs:
//! no entry is too short to check, and host names compare case-insensitively.
//!
//! The request's origin is its `Origin` header; a missing one (or `null` when no list is set)
//! counts as `file:`, which has no host. With `--sameorigin` the origin's host and port (80,
//! or 443 for https) must be the Host header's (port 80, or 443 on TLS). With `--origin`, each
//! entry is `scheme://host[:port]` (the scheme must match) or `host[:port]` (http or https);
//! an entry without a port matches any port.

/// Who may connect.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    same_origin: bool,
    allowed: Vec<Entry>,
}

use websocketd_core::host::{self, HostPort};

/// Why a request's origin is refused; the text is websocketd's log message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The Origin header is not `scheme:` or `scheme://host[:port]`.
    #[error("Origin parsing error")]
    Origin,
    /// The Host header is not `host[:port]` (with `--sameorigin`).
    #[error("Request hostname parsing error")]
    Host,
    /// The origin's host and port are not the Host header's (`--sameorigin`).
    #[error("Same origin policy mismatch")]
    NotSame,
    /// The origin is not in the `--origin` list.
    #[error("Origin is not listed in allowed list")]
    NotListed,
}

/// One `--origin` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
}

/// A parsed origin or Host.
#[derive(Debug, PartialEq, Eq)]
struct Place<'a> {
    scheme: &'a str,
    host: String,
    port: Option<u16>,
}

impl OriginPolicy {
    /// The policy for `--sameorigin` and a comma-separated `--origin` list (entries that do not
    /// parse are skipped, as in websocketd). Returns the skipped entries too.
    pub fn new(same_origin: bool, origins: Option<&str>) -> (OriginPolicy, Vec<String>) {
        let mut allowed = Vec::new();
        let mut skipped = Vec::new();
        for raw in origins.into_iter().flat_map(|o| o.split(',')).map(str::trim) {
            if raw.is_empty() {
                continue;
            }
            let with_scheme =
                if raw.contains("://") { raw.to_owned() } else { format!("http://{raw}") };
            match parse(&with_scheme) {
                Some(p) if !p.host.is_empty() => allowed.push(Entry {
                    scheme: raw.contains("://").then(|| p.scheme.to_ascii_lowercase()),
                    host: p.host,
                    port: p.port,
                }),
                _ => skipped.push(raw.to_owned()),
            }
        }
        (OriginPolicy { same_origin, allowed }, skipped)
    }

    /// Whether any restriction is set.
    pub fn is_open(&self) -> bool {
        !self.same_origin && self.allowed.is_empty()
    }

    /// Checks the request's `Origin` against the policy; `host` is its Host header and `tls`
    /// whether the connection is TLS. The refusal says why, for the log.
    pub fn check(&self, origin: Option<&str>, host: &str, tls: bool) -> Result<(), Refusal> {
        if self.is_open() {
            return Ok(());
        }
        let origin = match origin {
            None => "file:",
            Some("null") if self.allowed.is_empty() => "file:",
            Some(o) => o,
        };
        let Some(origin) = parse(origin) else { return Err(Refusal::Origin) };
        let origin_port = origin.port.unwrap_or(default_port(origin.scheme));
        if self.same_origin {
            let host = format!("x://{host}");
            let Some(server) = parse(&host) else {
                return Err(Refusal::Host);
            };
            let server_port = server.port.unwrap_or(if tls { 443 } else { 80 });
            if origin.host.is_empty() || origin.host != server.host || origin_port != server_port {
                return Err(Refusal::NotSame);
            }
        }
        if !self.allowed.is_empty() {
            let scheme = origin.scheme.to_ascii_lowercase();
            let listed = self.allowed.iter().any(|e| {
                e.host == origin.host
                    && e.scheme.as_ref().is_none_or(|s| *s == scheme)
                    && e.port.is_none_or(|p| p == origin_port)
            });
            if !listed {
                return Err(Refusal::NotListed);
            }
        }
        Ok(())
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        443
    } else {
        80
    }
}

/// `scheme:` or `scheme://host[:port][/…]`, host lower-cased (IPv6 in brackets, kept bare).
fn parse(s: &str) -> Option<Place<'_>> {
    let (scheme, rest) = s.split_once(':')?;
    if scheme.is_empty()
        || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let Some(rest) = rest.strip_prefix("//") else {
        // `file:` and the like: no host.
        return Some(Place { scheme, host: String::new(), port: None });
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let HostPort { host, port } = host::split(authority)?;
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    Some(Place { scheme, host: host.to_ascii_lowercase(), port })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's observed matrix for `--origin=example.com,https://secure.example:8443`.
    #[test]
    fn the_origin_list_matches_as_in_websocketd() {
        let (p, skipped) =
            OriginPolicy::new(false, Some("example.com,https://secure.example:8443"));
        assert!(skipped.is_empty());
        for ok in [
            "http://example.com",
            "http://example.com:9999",
            "https://example.com",
            "https://secure.example:8443",
            "http://EXAMPLE.com",
        ] {
            assert_eq!(p.check(Some(ok), "h", false), Ok(()), "{ok}");
        }
        for bad in [
            None,
            Some("null"),
            Some("http://evil.com"),
            Some("http://secure.example:8443"),
            Some("https://secure.example"),
            Some("file://"),
        ] {
            assert!(p.check(bad, "h", false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_entry_with_a_port_needs_that_port() {
        let (p, _) = OriginPolicy::new(false, Some("example.com:80"));
        assert_eq!(p.check(Some("http://example.com"), "h", false), Ok(()));
        assert!(p.check(Some("http://example.com:81"), "h", false).is_err());
    }

    #[test]
    fn short_and_broken_entries_are_skipped_not_fatal() {
        let (p, skipped) = OriginPolicy::new(false, Some("ab,a,:,http://[::1,x:notaport"));
        assert_eq!(skipped, [":", "http://[::1", "x:notaport"]);
        assert_eq!(p.check(Some("http://ab"), "h", false), Ok(()));
        assert_eq!(p.check(Some("http://a:5"), "h", false), Ok(()));
    }

    #[test]
    fn same_origin_compares_host_and_port() {
        let (p, _) = OriginPolicy::new(true, None);
        assert_eq!(p.check(Some("http://Example.com"), "example.com", false), Ok(()));
        assert_eq!(p.check(Some("http://127.0.0.1:8080"), "127.0.0.1:8080", false), Ok(()));
        assert_eq!(p.check(Some("https://h"), "h", true), Ok(()));
        assert_eq!(p.check(Some("http://[::1]:9"), "[::1]:9", false), Ok(()));
        assert!(p.check(Some("http://h:81"), "h", false).is_err());
        assert!(p.check(Some("http://other"), "h", false).is_err());
        assert!(p.check(None, "h", false).is_err(), "no Origin is file:, which has no host");
    }

    #[test]
    fn no_restriction_lets_everyone_in() {
        let (p, _) = OriginPolicy::new(false, None);
        assert_eq!(p.check(None, "h", false), Ok(()));
        assert_eq!(p.check(Some("null"), "h", false), Ok(()));
    }
}
