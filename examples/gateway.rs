//! An API gateway: requests without the right `X-Api-Key` get 403 from `request_filter`
//! before any upstream is contacted, responses gain a `Server` header, every request is
//! counted by status in Prometheus, and the metrics are served on a second port.
//!
//! ```text
//! python3 -m http.server 8000 &
//! UPSTREAMS=127.0.0.1:8000 LISTEN=127.0.0.1:6191 METRICS_LISTEN=127.0.0.1:6192 API_KEY=secret \
//!     RUST_LOG=info cargo run -p pingora-examples --example gateway
//! curl -i -H 'X-Api-Key: secret' http://127.0.0.1:6191/   # proxied
//! curl -i http://127.0.0.1:6191/                           # 403
//! curl http://127.0.0.1:6192/metrics                       # counters
//! ```

use async_trait::async_trait;
use log::info;
use once_cell::sync::Lazy;
use pingora::prelude::*;
use pingora::services::listening::Service;
use pingora_examples::{listen_addr, upstreams};
use prometheus::{register_int_counter_vec, IntCounterVec};

/// Requests seen by the gateway, by response status.
static REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "gateway_requests_total",
        "Requests handled by the gateway, by status",
        &["status"]
    )
    .expect("metric registers once")
});

/// Gateway configuration.
pub struct Gateway {
    upstream: String,
    api_key: String,
}

impl Gateway {
    fn authorized(&self, req: &RequestHeader) -> bool {
        req.headers
            .get("x-api-key")
            .is_some_and(|v| v.as_bytes() == self.api_key.as_bytes())
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if !self.authorized(session.req_header()) {
            session.respond_error(403).await?;
            // true: a response was written, the request ends here
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        upstream_response.insert_header("Server", "pingora-gateway")?;
        upstream_response.remove_header("X-Powered-By");
        Ok(())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut ()) {
        // the status as a label without formatting a String per request
        let status = session
            .response_written()
            .map_or("0", |resp| resp.status.as_str());
        REQUESTS.with_label_values(&[status]).inc();
        match e {
            Some(e) => info!(
                "{} -> {status}, error: {e}",
                self.request_summary(session, ctx)
            ),
            None => info!("{} -> {status}", self.request_summary(session, ctx)),
        }
    }
}

fn main() {
    env_logger::init();

    let mut server = Server::new(Some(Opt::parse_args())).expect("server setup");
    server.bootstrap();

    let gateway = Gateway {
        upstream: upstreams("127.0.0.1:8000")
            .into_iter()
            .next()
            .expect("UPSTREAMS needs one address"),
        api_key: std::env::var("API_KEY").unwrap_or_else(|_| "secret".to_string()),
    };
    Lazy::force(&REQUESTS);

    let mut proxy = http_proxy_service(&server.configuration, gateway);
    proxy.add_tcp(&listen_addr("127.0.0.1:6191"));
    server.add_service(proxy);

    let mut metrics = Service::prometheus_http_service();
    let metrics_addr = std::env::var("METRICS_LISTEN").unwrap_or_else(|_| "127.0.0.1:6192".into());
    metrics.add_tcp(&metrics_addr);
    server.add_service(metrics);

    server.run_forever();
}
