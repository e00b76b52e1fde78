//! An HTTP app that exposes the process's Prometheus metrics.

use async_trait::async_trait;
use http::{header, Response, StatusCode};
use log::error;
use prometheus::{Encoder, TextEncoder};

use super::http_app::{HttpServer, ServeHttp};
use crate::protocols::http::ServerSession;

/// Serves every metric of the default Prometheus registry
/// ([`prometheus::gather()`]) in the text exposition format.
pub struct PrometheusHttpApp;

#[async_trait]
impl ServeHttp for PrometheusHttpApp {
    async fn response(&self, _http_session: &mut ServerSession) -> Response<Vec<u8>> {
        let encoder = TextEncoder::new();
        let mut buffer = Vec::new();
        let (status, content_type) = match encoder.encode(&prometheus::gather(), &mut buffer) {
            Ok(()) => (StatusCode::OK, encoder.format_type().to_string()),
            Err(e) => {
                error!("cannot encode the metrics: {e}");
                buffer = format!("cannot encode the metrics: {e}\n").into_bytes();
                (StatusCode::INTERNAL_SERVER_ERROR, "text/plain".to_string())
            }
        };
        let mut resp = Response::new(buffer);
        *resp.status_mut() = status;
        if let Ok(v) = header::HeaderValue::from_str(&content_type) {
            resp.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        resp
    }
}

/// The [`HttpServer`] serving [`PrometheusHttpApp`].
pub type PrometheusServer = HttpServer<PrometheusHttpApp>;

impl PrometheusServer {
    /// A Prometheus metrics server.
    pub fn new() -> Self {
        Self::new_app(PrometheusHttpApp)
    }
}

impl Default for PrometheusServer {
    fn default() -> Self {
        Self::new()
    }
}
