//! `--adminaddress`: the admin listener, apart from the public port, for Prometheus and load
//! balancers. `GET /metrics` is the OpenMetrics text of every series; `GET /healthz` is 200
//! while the process serves; `GET /readyz` is 200 while it takes new sessions, and 503 once
//! graceful shutdown has begun (and, with `--notreadywhenfull`, while `--maxforks` is full),
//! so that a load balancer drains it first. It answers until the process exits, through the
//! whole shutdown.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use websocketd_core::metrics::{CONTENT_TYPE, Metrics, PROMETHEUS_CONTENT_TYPE};

use crate::listener::Listener;
use crate::response::{Body, full, plain};
use crate::router::App;

/// How long an admin client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin listener answers from.
#[derive(Debug, Clone)]
pub struct Admin {
    app: Arc<App>,
}

impl Admin {
    /// The admin side of `app`.
    pub fn new(app: Arc<App>) -> Admin {
        Admin { app }
    }

    fn metrics(&self) -> &Metrics {
        self.app.metrics()
    }

    /// Why new sessions would not be taken now, if they would not.
    fn unready(&self) -> Option<&'static str> {
        if self.app.shutdown().is_begun() {
            return Some("shutting down");
        }
        self.app.ready_forks().filter(|forks| forks.is_full()).map(|_| "at --maxforks")
    }

    /// The answer to one request.
    fn answer<B>(&self, req: &Request<B>) -> Response<Body> {
        let path = req.uri().path();
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n");
            resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        match path {
            "/metrics" => {
                // OpenMetrics to whoever asks for it (Prometheus does), the older text
                // format to the rest.
                let open =
                    req.headers().get_all(header::ACCEPT).iter().any(|v| {
                        v.to_str().is_ok_and(|v| v.contains("application/openmetrics-text"))
                    });
                let (text, kind) = if open {
                    (self.metrics().encode(), CONTENT_TYPE)
                } else {
                    (self.metrics().encode_prometheus(), PROMETHEUS_CONTENT_TYPE)
                };
                let mut resp = Response::new(full(text));
                resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
                resp
            }
            "/healthz" => plain(StatusCode::OK, "ok\n"),
            "/readyz" => match self.unready() {
                None => plain(StatusCode::OK, "ready\n"),
                Some(why) => plain(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {why}\n")),
            },
            _ => plain(StatusCode::NOT_FOUND, "404 page not found\n"),
        }
    }
}

/// Answers admin requests on `listener` until the process exits: through a graceful shutdown
/// too, when `/readyz` says 503 and `/metrics` shows the sessions going.
pub async fn serve(listener: Listener, admin: Admin) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::error!(target: "server", "Admin accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(5);
        let admin = admin.clone();
        // Not the server's own task: the shutdown does not wait for admin clients.
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let resp = admin.answer(&req);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            let conn = crate::listener::http1(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(target: "http", "Admin connection ended: {e}");
            }
        });
    }
}
