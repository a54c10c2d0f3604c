//! Request paths as Go's `http.ServeMux` treats them: a path that is not clean (`.` or `..`
//! segments, repeated slashes, also once percent-decoded) is answered with a 301 to its clean
//! form, for every request, so that nothing can walk out of a directory.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// What a path escapes in a Location header or a link.
pub(crate) const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\'');

/// The request path, percent-decoded (invalid UTF-8 made U+FFFD).
pub fn decode(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

/// `PATH_INFO` as bytes: the request path `raw` (as sent) percent-decoded, without the
/// segments of `script_name` (none for `/`). `%E9` is the byte 0xE9, as Go keeps it, not
/// U+FFFD: the path the routing uses is the same one, decoded lossily, segment for segment.
pub fn path_info(raw: &str, script_name: &str) -> Vec<u8> {
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    let skip = script_name.split('/').filter(|s| !s.is_empty()).count();
    if skip == 0 {
        return decoded;
    }
    // The slash after the script's last segment starts PATH_INFO.
    match decoded.iter().enumerate().filter(|&(_, &b)| b == b'/').nth(skip) {
        Some((at, _)) => decoded[at..].to_vec(),
        None => Vec::new(),
    }
}

/// Go's `cleanPath`: rooted, `.` and `..` resolved, slashes single, a trailing slash kept.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            seg => parts.push(seg),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for seg in &parts {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    } else if path.ends_with('/') {
        // Go puts back a trailing slash that the original had.
        out.push('/');
    }
    out
}

/// Gives `req` the query `rest` (none when empty), keeping its path: what is left when
/// parameters no one else may see (a session's ticket, a token) are taken out.
pub(crate) fn replace_query<B>(req: &mut http::Request<B>, rest: &str) {
    let mut parts = req.uri().clone().into_parts();
    let path = req.uri().path();
    let target = if rest.is_empty() { path.to_owned() } else { format!("{path}?{rest}") };
    // The same path and a part of the query: as valid as it was.
    if let Ok(pq) = http::uri::PathAndQuery::try_from(target) {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

/// Where to send a request whose decoded path is not clean: the clean path, escaped, with
/// the query kept. `None` when the path is clean.
pub fn redirect(decoded: &str, query: Option<&str>) -> Option<String> {
    let cleaned = clean(decoded);
    if cleaned == decoded {
        return None;
    }
    let mut location = utf8_percent_encode(&cleaned, PATH).to_string();
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    Some(location)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_clean_as_go_does() {
        for (raw, want) in [
            ("/", "/"),
            ("", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//hello.sh", "/hello.sh"),
            ("/sub//deep.sh", "/sub/deep.sh"),
            ("/../x/env.sh", "/x/env.sh"),
            ("/a/./b/../c", "/a/c"),
            ("/a/..", "/"),
            ("/hello.sh//enc", "/hello.sh/enc"),
        ] {
            assert_eq!(clean(raw), want, "{raw}");
        }
    }

    #[test]
    fn path_info_keeps_the_bytes_the_path_decodes_to() {
        assert_eq!(path_info("/caf%E9", "/"), b"/caf\xe9");
        assert_eq!(path_info("/a%20b/c", "/"), b"/a b/c");
        assert_eq!(path_info("/sub/deep.sh/x/%FF/", "/sub/deep.sh"), b"/x/\xff/");
        assert_eq!(path_info("/hello.sh/", "/hello.sh"), b"/");
        assert_eq!(path_info("/hello.sh", "/hello.sh"), b"");
        assert_eq!(path_info("/x%00y", "/"), b"/x\0y");
    }

    #[test]
    fn only_unclean_paths_redirect_and_keep_their_query() {
        assert_eq!(redirect("/a/b", Some("x=1")), None);
        assert_eq!(redirect(&decode("/%2e%2e/x"), Some("q=1")), Some("/x?q=1".to_owned()));
        assert_eq!(redirect(&decode("/hello.sh/%2Fenc"), None), Some("/hello.sh/enc".to_owned()));
        assert_eq!(redirect("/a b/../c d", None), Some("/c%20d".to_owned()));
    }
}
