//! `--trustedproxy`: which peers are reverse proxies whose forwarding headers are believed, and
//! the real client (address, port, scheme) behind them.
//!
//! Anyone can write `X-Forwarded-For`, `Forwarded` or `X-Forwarded-Proto`, so they count only
//! when the connection's peer is trusted. The hops are walked from the right, the end that the
//! trusted proxies appended to, and the walk stops at the first address that is not itself
//! trusted: everything left of it was written by that party and may be made up.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::header::FORWARDED;
use http::{HeaderMap, HeaderName};
use ipnet::{IpNet, Ipv4Net};

use crate::conn::{Client, Peer};
use crate::error::Error;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// How many hops, from the right, a walk looks at: more than any real chain of proxies, and a
/// bound on the work a long header can cause.
const MAX_HOPS: usize = 64;

/// The longest hop that can be an address: `[IPv6]:port` fits in 53 bytes, and the slack is for
/// whitespace and obfuscated ports.
const MAX_HOP_LEN: usize = 100;

/// The `--trustedproxy` list.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    unix: bool,
}

impl TrustedProxies {
    /// Adds one flag value: comma-separated entries, each a CIDR (`10.0.0.0/8`, `fd00::/8`), a
    /// bare address (= /32 or /128), or `unix`. Whitespace around entries is ignored; empty
    /// entries are skipped.
    ///
    /// On error nothing of `value` is added.
    pub fn add(&mut self, value: &str) -> Result<(), Error> {
        // Parsed whole before anything is kept, so a rejected value leaves the list as it was.
        let mut nets = Vec::new();
        let mut unix = false;
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry.eq_ignore_ascii_case("unix") {
                unix = true;
                continue;
            }
            let Some(net) = parse_net(entry) else {
                return Err(Error::TrustedProxy { entry: entry.to_owned() });
            };
            nets.push(net);
        }
        self.nets.extend(nets);
        self.unix |= unix;
        Ok(())
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && !self.unix
    }

    /// Whether `peer` is a trusted proxy. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) count as
    /// their IPv4 form.
    pub fn trusts(&self, peer: &Peer) -> bool {
        match peer {
            Peer::Tcp(addr) => self.trusts_ip(addr.ip()),
            Peer::Unix => self.unix,
        }
    }

    /// The real client behind `peer`; `tls` is whether the connection itself is TLS.
    ///
    /// For an untrusted peer that is the peer itself, whatever the headers say. For a trusted
    /// one, the right-most forwarded address that is not itself trusted (or the left-most, when
    /// all are), and the scheme from `X-Forwarded-Proto` or `Forwarded: proto=`.
    pub fn client(&self, peer: &Peer, tls: bool, headers: &HeaderMap) -> Client {
        let (ip, port) = match peer {
            Peer::Tcp(addr) => (Some(addr.ip().to_canonical()), Some(addr.port())),
            Peer::Unix => (None, None),
        };
        let mut client = Client { ip, port, https: tls };
        if !self.trusts(peer) {
            return client;
        }
        let has_xff = headers.contains_key(X_FORWARDED_FOR);
        // X-Forwarded-For wins: nginx, HAProxy and the load balancers write it, while nginx
        // passes a client's own `Forwarded` through untouched, so with both present `Forwarded`
        // is likely the client's invention: then not even its `proto=` is read.
        let forwarded = if has_xff { Forwarded::default() } else { Forwarded::parse(headers) };
        if has_xff {
            let hops = headers
                .get_all(X_FORWARDED_FOR)
                .iter()
                .rev()
                .flat_map(|line| line.as_bytes().rsplit(|&b| b == b','));
            self.walk(&mut client, hops);
        } else {
            // An element without `for=` is a hop whose address is unknown; empty is no address.
            let hops = forwarded.hops.iter().rev().map(|hop| hop.as_deref().unwrap_or_default());
            self.walk(&mut client, hops);
        }
        client.https = scheme(headers, forwarded.proto.as_deref()).unwrap_or(tls);
        client
    }

    fn trusts_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// Moves `client` left along `hops` (given right to left) while the address reached is
    /// trusted; a hop that is no address ends the walk where it is.
    fn walk<'a>(&self, client: &mut Client, hops: impl Iterator<Item = &'a [u8]>) {
        for hop in hops.take(MAX_HOPS) {
            let Some((ip, port)) = parse_hop(hop) else { return };
            client.ip = Some(ip);
            client.port = port;
            if !self.trusts_ip(ip) {
                return;
            }
        }
    }
}

/// One `--trustedproxy` entry other than `unix`: a CIDR or a bare address.
fn parse_net(entry: &str) -> Option<IpNet> {
    let net = match entry.parse::<IpNet>() {
        Ok(net) => net.trunc(),
        Err(_) => IpNet::from(entry.parse::<IpAddr>().ok()?),
    };
    // Peers are compared in canonical form, so an IPv4-mapped entry has to be too, or it would
    // never match anything.
    let IpNet::V6(v6) = net else { return Some(net) };
    let Some(v4) = v6.addr().to_ipv4_mapped() else { return Some(net) };
    match v6.prefix_len().checked_sub(96).map(|len| Ipv4Net::new(v4, len)) {
        Some(Ok(v4)) => Some(IpNet::V4(v4)),
        _ => Some(net),
    }
}

/// A forwarded hop as an address and maybe a port: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`, where the port may be obfuscated (RFC 7239 6.3).
fn parse_hop(hop: &[u8]) -> Option<(IpAddr, Option<u16>)> {
    if hop.len() > MAX_HOP_LEN {
        return None;
    }
    let hop = std::str::from_utf8(hop).ok()?.trim();
    let (ip, port) = if let Some(bracketed) = hop.strip_prefix('[') {
        let (ip, rest) = bracketed.split_once(']')?;
        let port = if rest.is_empty() { None } else { parse_port(rest.strip_prefix(':')?)? };
        (IpAddr::V6(ip.parse::<Ipv6Addr>().ok()?), port)
    } else if let Ok(ip) = hop.parse::<IpAddr>() {
        (ip, None)
    } else {
        // Only IPv4 can carry a port without brackets; for bare IPv6 it would be ambiguous.
        let (ip, port) = hop.rsplit_once(':')?;
        (IpAddr::V4(ip.parse::<Ipv4Addr>().ok()?), parse_port(port)?)
    };
    Some((ip.to_canonical(), port))
}

/// A hop's port: `Some(None)` for an obfuscated one (`_` and an identifier), which is there but
/// says nothing; `None` when it is neither that nor a number.
fn parse_port(text: &str) -> Option<Option<u16>> {
    if let Some(obfuscated) = text.strip_prefix('_') {
        let valid = !obfuscated.is_empty()
            && obfuscated
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        return valid.then_some(None);
    }
    // `u16::from_str` would take a leading `+`.
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().map(Some)
}

/// `X-Forwarded-Proto`'s right-most value, else `Forwarded`'s right-most `proto=`, as whether
/// it means HTTPS; `None` when neither says, or says something else.
fn scheme(headers: &HeaderMap, forwarded_proto: Option<&[u8]>) -> Option<bool> {
    let proto = match headers.get_all(X_FORWARDED_PROTO).iter().next_back() {
        Some(line) => line.as_bytes().rsplit(|&b| b == b',').next()?.trim_ascii(),
        None => forwarded_proto?,
    };
    let is = |name: &[u8]| proto.eq_ignore_ascii_case(name);
    if is(b"https") || is(b"wss") {
        Some(true)
    } else if is(b"http") || is(b"ws") {
        Some(false)
    } else {
        None
    }
}

/// What the walk needs from `Forwarded` (RFC 7239): the `for=` of its right-most elements, in
/// order, and the right-most `proto=`.
#[derive(Debug, Default)]
struct Forwarded {
    hops: VecDeque<Option<Vec<u8>>>,
    proto: Option<Vec<u8>>,
}

/// The parameters of one `Forwarded` element that matter here. Values are unquoted; an empty
/// one stands for a value that is unusable (repeated, too long, badly quoted).
#[derive(Debug, Default)]
struct Element {
    for_: Option<Vec<u8>>,
    proto: Option<Vec<u8>>,
}

impl Forwarded {
    /// Parses every `Forwarded` line in order, keeping only the last [`MAX_HOPS`] elements.
    fn parse(headers: &HeaderMap) -> Forwarded {
        let mut parsed = Forwarded::default();
        for line in headers.get_all(FORWARDED) {
            let mut rest = line.as_bytes();
            loop {
                let (element, after) = element(rest);
                if parsed.hops.len() == MAX_HOPS {
                    parsed.hops.pop_front();
                }
                parsed.hops.push_back(element.for_);
                if element.proto.is_some() {
                    parsed.proto = element.proto;
                }
                let Some(after) = after else { break };
                rest = after;
            }
        }
        parsed
    }
}

/// Parses one element off the front of `input`: `;`-separated pairs up to an unquoted `,`.
/// Returns the rest after that comma, or `None` at the end of the line.
fn element(mut input: &[u8]) -> (Element, Option<&[u8]>) {
    let mut element = Element::default();
    loop {
        let (name, value, rest) = pair(input);
        let slot = if name.eq_ignore_ascii_case(b"for") {
            Some(&mut element.for_)
        } else if name.eq_ignore_ascii_case(b"proto") {
            Some(&mut element.proto)
        } else {
            None
        };
        if let (Some(slot), Some(value)) = (slot, value) {
            // RFC 7239 allows a parameter once per element; a repeated one is ambiguous.
            *slot = Some(if slot.is_some() { Vec::new() } else { value });
        }
        match rest.split_first() {
            Some((b';', after)) => input = after,
            Some((b',', after)) => return (element, Some(after)),
            _ => return (element, None),
        }
    }
}

/// Parses one `name=value` pair off the front of `input`. Returns the name, the value (`None`
/// without `=`), and the rest starting at the next `;` or `,` (empty at the end of the line).
fn pair(input: &[u8]) -> (&[u8], Option<Vec<u8>>, &[u8]) {
    let (name, rest) = input.split_at(delimiter(input, b"=;,"));
    let name = name.trim_ascii();
    let Some((b'=', rest)) = rest.split_first() else { return (name, None, rest) };
    let rest = rest.trim_ascii_start();
    if let Some((b'"', quoted)) = rest.split_first() {
        let (value, rest) = quoted_string(quoted);
        let (junk, rest) = rest.split_at(delimiter(rest, b";,"));
        // Anything between the closing quote and the delimiter makes the value malformed.
        let value = if junk.trim_ascii().is_empty() { value } else { Vec::new() };
        return (name, Some(value), rest);
    }
    let (token, rest) = rest.split_at(delimiter(rest, b";,"));
    let token = token.trim_ascii();
    let value = if token.len() > MAX_HOP_LEN { Vec::new() } else { token.to_vec() };
    (name, Some(value), rest)
}

/// Where the first of `delimiters` is in `input`, or its length.
fn delimiter(input: &[u8], delimiters: &[u8]) -> usize {
    input.iter().position(|b| delimiters.contains(b)).unwrap_or(input.len())
}

/// Reads a quoted string whose opening quote is already consumed, undoing `\` escapes. Returns
/// the value and the rest after the closing quote; an unterminated string takes the whole line
/// and has no usable value. Values too long to be an address come back empty.
fn quoted_string(input: &[u8]) -> (Vec<u8>, &[u8]) {
    let mut value = Vec::new();
    let mut too_long = false;
    let mut bytes = input.iter().enumerate();
    while let Some((i, &b)) = bytes.next() {
        let b = match b {
            b'"' => {
                let value = if too_long { Vec::new() } else { value };
                return (value, input.get(i + 1..).unwrap_or_default());
            }
            b'\\' => match bytes.next() {
                Some((_, &escaped)) => escaped,
                None => break,
            },
            b => b,
        };
        if value.len() < MAX_HOP_LEN {
            value.push(b);
        } else {
            too_long = true;
        }
    }
    (Vec::new(), &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn proxies(value: &str) -> TrustedProxies {
        let mut p = TrustedProxies::default();
        p.add(value).unwrap();
        p
    }

    fn tcp(addr: &str) -> Peer {
        Peer::Tcp(addr.parse().unwrap())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn client(ip: &str, port: Option<u16>, https: bool) -> Client {
        Client { ip: Some(ip.parse().unwrap()), port, https }
    }

    /// The client the proxies in 10.0.0.0/8 report behind 10.0.0.1:9000, without TLS.
    fn behind_proxy(pairs: &[(&str, &str)]) -> Client {
        proxies("10.0.0.0/8").client(&tcp("10.0.0.1:9000"), false, &headers(pairs))
    }

    #[test]
    fn bad_entries_are_refused_with_the_entry_quoted() {
        let mut p = TrustedProxies::default();
        for bad in ["10.0.0.0/33", "10.0.0.256", "fd00::/129", "example.com", "/", "10.0.0.0/"] {
            let err = p.add(&format!("10.0.0.0/8, {bad}")).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid --trustedproxy entry '{bad}': not an address, a CIDR or 'unix'")
            );
        }
        assert!(p.is_empty(), "a rejected value adds nothing: {p:?}");
    }

    #[test]
    fn empty_entries_and_whitespace_are_skipped() {
        let mut p = TrustedProxies::default();
        p.add(" , ,, ").unwrap();
        assert!(p.is_empty());
        p.add(" 10.0.0.0/8 ,, 192.168.1.1 ,").unwrap();
        assert!(p.trusts(&tcp("10.9.8.7:1")));
        assert!(p.trusts(&tcp("192.168.1.1:1")));
        assert!(!p.trusts(&tcp("192.168.1.2:1")));
    }

    #[test]
    fn bare_addresses_and_ipv6_cidrs_are_entries() {
        let p = proxies("2001:db8::1,fd00::/8");
        assert!(p.trusts(&tcp("[2001:db8::1]:1")));
        assert!(!p.trusts(&tcp("[2001:db8::2]:1")));
        assert!(p.trusts(&tcp("[fd12::3]:1")));
    }

    #[test]
    fn unix_is_an_entry_for_the_unix_socket_listener() {
        let p = proxies("UNIX");
        assert!(!p.is_empty());
        assert!(p.trusts(&Peer::Unix));
        assert!(!p.trusts(&tcp("127.0.0.1:1")));
        assert!(!proxies("127.0.0.1").trusts(&Peer::Unix));
    }

    #[test]
    fn an_ipv4_mapped_peer_is_trusted_by_an_ipv4_cidr() {
        assert!(proxies("10.0.0.0/8").trusts(&tcp("[::ffff:10.1.2.3]:80")));
        let c = proxies("10.0.0.0/8").client(&tcp("[::ffff:10.1.2.3]:80"), false, &headers(&[]));
        assert_eq!(c, client("10.1.2.3", Some(80), false));
    }

    #[test]
    fn an_ipv4_mapped_entry_trusts_the_ipv4_peer() {
        assert!(proxies("::ffff:10.0.0.0/104").trusts(&tcp("10.1.2.3:80")));
        assert!(proxies("::ffff:10.1.2.3").trusts(&tcp("[::ffff:10.1.2.3]:80")));
    }

    #[test]
    fn untrusted_peer_headers_change_nothing() {
        let spoofed = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=5.6.7.8;proto=https"),
            ("x-forwarded-proto", "https"),
        ]);
        let p = proxies("10.0.0.0/8");
        assert_eq!(
            p.client(&tcp("192.0.2.1:5555"), false, &spoofed),
            client("192.0.2.1", Some(5555), false)
        );
        assert_eq!(
            p.client(&tcp("192.0.2.1:5555"), true, &spoofed),
            client("192.0.2.1", Some(5555), true)
        );
        assert_eq!(
            TrustedProxies::default().client(&Peer::Unix, false, &spoofed),
            Client { ip: None, port: None, https: false }
        );
    }

    #[test]
    fn a_trusted_peer_without_forwarding_headers_is_the_client() {
        assert_eq!(behind_proxy(&[]), client("10.0.0.1", Some(9000), false));
        let unix = proxies("unix").client(&Peer::Unix, true, &headers(&[]));
        assert_eq!(unix, Client { ip: None, port: None, https: true });
    }

    #[test]
    fn a_trusted_unix_peer_forwards_the_client() {
        let xff = headers(&[("x-forwarded-for", "192.0.2.7")]);
        assert_eq!(
            proxies("unix").client(&Peer::Unix, false, &xff),
            client("192.0.2.7", None, false)
        );
        let untrusted = proxies("10.0.0.0/8").client(&Peer::Unix, false, &xff);
        assert_eq!(untrusted, Client { ip: None, port: None, https: false });
    }

    #[test]
    fn a_trusted_peer_forwards_a_single_hop() {
        assert_eq!(
            behind_proxy(&[("x-forwarded-for", "192.0.2.7")]),
            client("192.0.2.7", None, false)
        );
    }

    #[test]
    fn the_chain_stops_at_the_rightmost_untrusted_address() {
        let c = behind_proxy(&[("x-forwarded-for", "6.6.6.6, 192.0.2.7, 10.0.0.2")]);
        assert_eq!(c, client("192.0.2.7", None, false));
    }

    #[test]
    fn when_all_hops_are_trusted_the_leftmost_is_the_client() {
        let c = behind_proxy(&[("x-forwarded-for", "10.0.0.3, 10.0.0.2")]);
        assert_eq!(c, client("10.0.0.3", None, false));
    }

    #[test]
    fn a_hop_that_is_no_address_stops_at_the_last_trusted_one() {
        let padded = format!("{:>101}", "192.0.2.7");
        for garbage in
            ["unknown", "_hidden", "not an ip", "", " ", "1.2.3.4:99999", "1.2.3.4:+5", &padded]
        {
            let xff = format!("6.6.6.6, {garbage}, 10.0.0.2");
            let c = behind_proxy(&[("x-forwarded-for", &xff)]);
            assert_eq!(c, client("10.0.0.2", None, false), "{xff}");
        }
        let c = behind_proxy(&[("x-forwarded-for", "unknown")]);
        assert_eq!(c, client("10.0.0.1", Some(9000), false));
    }

    #[test]
    fn xff_spans_several_header_lines_in_order() {
        let c = behind_proxy(&[
            ("x-forwarded-for", "6.6.6.6, 192.0.2.7"),
            ("x-forwarded-for", "10.0.0.3"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        assert_eq!(c, client("192.0.2.7", None, false));
    }

    #[test]
    fn xff_hops_may_carry_ports_and_ipv6_in_any_form() {
        for (hop, ip, port) in [
            ("192.0.2.7:5678", "192.0.2.7", Some(5678)),
            ("2001:db8::1", "2001:db8::1", None),
            ("[2001:db8::1]", "2001:db8::1", None),
            ("[2001:db8::1]:4711", "2001:db8::1", Some(4711)),
            ("  192.0.2.7  ", "192.0.2.7", None),
            ("::ffff:192.0.2.7", "192.0.2.7", None),
            ("[::ffff:192.0.2.7]:1", "192.0.2.7", Some(1)),
        ] {
            let c = behind_proxy(&[("x-forwarded-for", &format!("{hop}, 10.0.0.2:1234"))]);
            assert_eq!(c, client(ip, port, false), "{hop}");
        }
    }

    #[test]
    fn forwarded_takes_quoted_ipv6_with_a_port() {
        let c = behind_proxy(&[("forwarded", r#"for="[2001:db8:cafe::17]:4711""#)]);
        assert_eq!(c, client("2001:db8:cafe::17", Some(4711), false));
    }

    #[test]
    fn forwarded_obfuscated_ports_and_identifiers() {
        let c = behind_proxy(&[("forwarded", r#"for="192.0.2.60:_p1""#)]);
        assert_eq!(c, client("192.0.2.60", None, false));
        let c = behind_proxy(&[("forwarded", "for=6.6.6.6, for=_hidden, for=10.0.0.2")]);
        assert_eq!(c, client("10.0.0.2", None, false));
        let c = behind_proxy(&[("forwarded", "for=unknown")]);
        assert_eq!(c, client("10.0.0.1", Some(9000), false));
    }

    #[test]
    fn forwarded_names_are_case_insensitive_and_values_may_be_escaped() {
        let c = behind_proxy(&[("forwarded", r#"By=10.0.0.1;For="192.0.2.\7";PROTO=https"#)]);
        assert_eq!(c, client("192.0.2.7", None, true));
    }

    #[test]
    fn forwarded_elements_span_commas_and_lines() {
        let c = behind_proxy(&[
            ("forwarded", "for=6.6.6.6;proto=http"),
            ("forwarded", r#"for=192.0.2.8;x="a,for=10.0.0.4";proto=https, for=10.0.0.3"#),
            ("forwarded", "for=10.0.0.2"),
        ]);
        assert_eq!(c, client("192.0.2.8", None, true), "a quoted comma ends no element");
    }

    #[test]
    fn a_forwarded_element_without_for_is_an_unknown_hop() {
        let c = behind_proxy(&[("forwarded", "for=6.6.6.6, proto=https, for=10.0.0.2")]);
        assert_eq!(c, client("10.0.0.2", None, true));
        let c = behind_proxy(&[("forwarded", "for=6.6.6.6;for=7.7.7.7, for=10.0.0.2")]);
        assert_eq!(c, client("10.0.0.2", None, false), "a repeated for= is ambiguous");
    }

    #[test]
    fn forwarded_rightmost_proto_sets_the_scheme() {
        let c = behind_proxy(&[("forwarded", "for=192.0.2.7;proto=http, proto=wss, for=10.0.0.2")]);
        assert!(c.https);
        let c = proxies("10.0.0.0/8").client(
            &tcp("10.0.0.1:1"),
            true,
            &headers(&[("forwarded", "proto=ws")]),
        );
        assert!(!c.https);
        let c = proxies("10.0.0.0/8").client(
            &tcp("10.0.0.1:1"),
            true,
            &headers(&[("forwarded", "proto=gopher")]),
        );
        assert!(c.https, "an unknown scheme leaves the connection's");
    }

    #[test]
    fn xff_wins_over_forwarded() {
        let c = behind_proxy(&[("forwarded", "for=6.6.6.6"), ("x-forwarded-for", "192.0.2.7")]);
        assert_eq!(c, client("192.0.2.7", None, false));
        // Not even the scheme of a Forwarded the proxy did not write is believed.
        let c = behind_proxy(&[
            ("forwarded", "for=6.6.6.6;proto=https"),
            ("x-forwarded-for", "192.0.2.7"),
        ]);
        assert_eq!(c, client("192.0.2.7", None, false));
    }

    #[test]
    fn xfp_rightmost_value_sets_the_scheme_and_wins_over_forwarded() {
        let c = behind_proxy(&[("x-forwarded-proto", "http"), ("x-forwarded-proto", "ws, HTTPS ")]);
        assert!(c.https);
        let c = behind_proxy(&[("x-forwarded-proto", "https, http"), ("forwarded", "proto=https")]);
        assert!(!c.https);
        let p = proxies("10.0.0.0/8");
        let c = p.client(&tcp("10.0.0.1:1"), true, &headers(&[("x-forwarded-proto", "spdy")]));
        assert!(c.https, "an unknown scheme leaves the connection's");
    }

    #[test]
    fn a_long_trusted_chain_is_walked_only_64_hops() {
        let hops: Vec<String> =
            (0..10_000).map(|i| format!("10.0.{}.{}", i / 256, i % 256)).collect();
        let expected = &hops[hops.len() - MAX_HOPS];
        let c = behind_proxy(&[("x-forwarded-for", &hops.join(", "))]);
        assert_eq!(c, client(expected, None, false));
        let elements: Vec<String> = hops.iter().map(|h| format!("for={h}")).collect();
        let c = behind_proxy(&[("forwarded", &elements.join(", "))]);
        assert_eq!(c, client(expected, None, false));
    }

    #[test]
    fn nasty_header_bytes_never_panic() {
        let long = "9".repeat(100_000);
        let quoted = format!("for=\"{}\"", "\\\"".repeat(5_000));
        let nasty: Vec<&[u8]> = vec![
            b"",
            b",",
            b",,,;;;===",
            b"\"",
            b"for=\"",
            b"for=\"\\",
            b"for=\"1.2.3.4\\\"",
            b"for=\"1.2.3.4\"junk",
            b"for=",
            b"for",
            b";",
            b"=",
            b"[",
            b"[]",
            b"[::1",
            b"[::1]:",
            b"[::1]x",
            b"1.2.3.4:",
            b":",
            b"::::::::::",
            b"\xff\xfe\xfd",
            b"for=\xc3\x28",
            b"1.2.3.4\xff",
            b"\t \t",
            b"fe80::1%eth0",
            long.as_bytes(),
            quoted.as_bytes(),
        ];
        let p = proxies("0.0.0.0/0, ::/0, unix");
        for value in &nasty {
            let Ok(value) = HeaderValue::from_bytes(value) else { continue };
            for name in [X_FORWARDED_FOR, FORWARDED, X_FORWARDED_PROTO] {
                let mut map = HeaderMap::new();
                map.append(name.clone(), value.clone());
                map.append(name, value.clone());
                for peer in [tcp("10.0.0.1:1"), Peer::Unix] {
                    let _ = p.client(&peer, false, &map);
                }
            }
        }
    }
}
