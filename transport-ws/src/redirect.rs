//! `--redirport`: a plain-HTTP listener that sends every request to the main port with a 301,
//! path and query kept. Unlike websocketd 0.4.1 it copes with IPv6 and with a Host header
//! that has no port.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;

use websocketd_core::{Shutdown, host};

use crate::edge;
use crate::listener::Listener;
use crate::response::{Body, full};

/// Where a request to the redirect port is sent: `scheme://<host>:<port><path?query>`, the
/// host the request's (an absolute-form target's, else the Host header's). Without one (an
/// HTTP/1.0 request with no Host), the address the request came in on is used (`localhost`
/// on a unix socket).
pub fn location<B>(req: &Request<B>, scheme: &str, port: u16, local: Option<SocketAddr>) -> String {
    let host = host::split(host::of_request(req.uri(), req.headers())).map(|hp| hp.url_host());
    let host = match (host, local) {
        (Some(h), _) if !h.is_empty() => h,
        (_, None) => "localhost".to_owned(),
        (_, Some(local)) => match local.ip().to_canonical() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
    };
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    format!("{scheme}://{host}:{port}{target}")
}

/// Answers every request on `listener` with a 301 to `scheme` on `port`, until `shutdown`
/// begins.
pub async fn serve(listener: Listener, scheme: &'static str, port: u16, shutdown: Shutdown) {
    while let Some((stream, _)) = listener.next(&shutdown).await {
        let local = crate::listener::local_addr(&stream);
        // Not waited for on the way out: a redirect is answered at once.
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let resp = match edge::check(&req) {
                    Ok(()) => redirect(&location(&req, scheme, port, local)),
                    Err(bad) => bad.response(),
                };
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let _ = crate::listener::http1(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A 301 to `to`, with no body.
fn redirect(to: &str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: Option<&str>, target: &str) -> Request<()> {
        let mut b = Request::builder().uri(target);
        if let Some(h) = host {
            b = b.header("Host", h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn redirects_keep_path_and_query_and_fix_the_port() {
        let local: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let v6: SocketAddr = "[::1]:8081".parse().unwrap();
        assert_eq!(
            location(&req(Some("h:8081"), "/a/b?q=1"), "http", 80, Some(local)),
            "http://h:80/a/b?q=1"
        );
        assert_eq!(location(&req(Some("h"), "/"), "https", 443, Some(local)), "https://h:443/");
        assert_eq!(
            location(&req(Some("[::1]:8081"), "/x"), "http", 9, Some(v6)),
            "http://[::1]:9/x"
        );
        assert_eq!(location(&req(None, "/x"), "http", 9, Some(v6)), "http://[::1]:9/x");
        assert_eq!(location(&req(None, "/x"), "http", 9, Some(local)), "http://127.0.0.1:9/x");
        // An absolute-form target names the host, whatever the Host header says.
        assert_eq!(
            location(&req(Some("h"), "http://other.example:8081/p?q"), "https", 9, Some(local)),
            "https://other.example:9/p?q"
        );
    }
}
