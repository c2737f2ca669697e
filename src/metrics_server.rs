//! `watch --metrics-listen ADDR`: serves the latest tick's metrics for Prometheus to scrape.
//! HTTP/1 by hyper (already in the build for the engine's client), on the watch's own runtime:
//! `GET /metrics` (and `HEAD`) answers the latest text in the Prometheus text format, any other
//! path 404, any other method on `/metrics` 405. Each connection has a header timeout and a
//! lifetime bound, and at most [`MAX_CONNECTIONS`] are served at once, so a slow or hostile
//! client cannot hold the watch's resources.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tracing::debug;

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 16;
/// The Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// The listening server and the text it serves.
pub struct MetricsServer {
    latest: Arc<Mutex<String>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` and serves from now on (an empty text until the first
    /// [`publish`](Self::publish)). An address in use or not allowed is an error naming it.
    pub async fn start(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen on {addr} for --metrics-listen; choose a free address and port (e.g. 127.0.0.1:9708), or leave the flag out"
            )
        })?;
        let addr = listener.local_addr().unwrap_or(addr);
        let latest = Arc::new(Mutex::new(String::new()));
        let shared = Arc::clone(&latest);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tokio::spawn(async move {
            loop {
                // The semaphore is never closed, so acquiring only waits.
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Out of file descriptors and the like: try again shortly.
                        debug!(%error, "metrics server: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let text = shared
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .clone();
                        async move { Ok::<_, Infallible>(respond(&request, text)) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service);
                    let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
                    drop(slot);
                });
            }
        });
        Ok(Self { latest, addr })
    }

    /// Replaces the text served.
    pub fn publish(&self, text: String) {
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = text;
    }

    /// Where it serves, for the log: `http://ADDR/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }
}

/// The answer to one request: the metrics for `GET`/`HEAD /metrics`, else 404 or 405.
pub fn respond(request: &Request<Incoming>, text: String) -> Response<Full<Bytes>> {
    answer(request.method(), request.uri().path(), text)
}

fn answer(method: &Method, path: &str, text: String) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (path, method) {
        ("/metrics", &Method::GET) => (StatusCode::OK, CONTENT_TYPE, text),
        ("/metrics", &Method::HEAD) => (StatusCode::OK, CONTENT_TYPE, String::new()),
        ("/metrics", _) => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET and HEAD are served here\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: pruneguard serves its metrics at /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_metrics_is_served_and_only_to_get_and_head() {
        let text = || "pruneguard_build_info 1\n".to_string();
        let ok = answer(&Method::GET, "/metrics", text());
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(
            answer(&Method::HEAD, "/metrics", text()).status(),
            StatusCode::OK
        );
        for path in ["/", "/metrics/", "/other", "/metricsx"] {
            assert_eq!(
                answer(&Method::GET, path, text()).status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let post = answer(&Method::POST, "/metrics", text());
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[header::ALLOW], "GET, HEAD");
    }
}
