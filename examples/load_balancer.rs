//! Round-robin load balancer with TCP health checks, the program from the Pingora
//! announcement, pointed at local origins.
//!
//! Run two origins and the balancer, then send requests:
//!
//! ```text
//! python3 -m http.server 8000 & python3 -m http.server 8001 &
//! UPSTREAMS=127.0.0.1:8000,127.0.0.1:8001 LISTEN=127.0.0.1:6188 \
//!     RUST_LOG=info cargo run -p pingora-examples --example load_balancer -- -c conf.yaml
//! curl -i http://127.0.0.1:6188/
//! ```
//!
//! `-c/--conf`, `-d/--daemon`, `-t/--test` and `-u/--upgrade` are parsed by `Opt::parse_args()`.

use async_trait::async_trait;
use log::debug;
use pingora::prelude::*;
use pingora_examples::{listen_addr, upstreams};
use std::sync::Arc;
use std::time::Duration;

/// The Host header sent upstream (`UPSTREAM_HOST`, default `localhost`).
fn upstream_host() -> String {
    std::env::var("UPSTREAM_HOST").unwrap_or_else(|_| "localhost".to_string())
}

/// The proxy logic: pick the next healthy backend, rewrite Host.
pub struct LB {
    backends: Arc<LoadBalancer<RoundRobin>>,
    host: String,
}

#[async_trait]
impl ProxyHttp for LB {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // round robin ignores the key; try up to 256 backends to find a healthy one
        let backend = self
            .backends
            .select(b"", 256)
            .ok_or_else(|| Error::explain(HTTPStatus(503), "no healthy upstream"))?;
        debug!("upstream peer is {backend:?}");
        Ok(Box::new(HttpPeer::new(backend, false, self.host.clone())))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        upstream_request.insert_header("Host", self.host.as_str())?;
        Ok(())
    }
}

fn main() {
    env_logger::init();

    let mut server = Server::new(Some(Opt::parse_args())).expect("server setup");
    server.bootstrap();

    let addrs = upstreams("127.0.0.1:8000,127.0.0.1:8001");
    let mut backends = LoadBalancer::try_from_iter(addrs.iter().map(String::as_str))
        .expect("UPSTREAMS must be ip:port values");
    backends.set_health_check(TcpHealthCheck::new());
    backends.health_check_frequency = Some(Duration::from_secs(1));

    // the health checker runs as a background service; the proxy shares its LoadBalancer
    let health = background_service("health check", backends);
    let lb = LB {
        backends: health.task(),
        host: upstream_host(),
    };

    let mut proxy = http_proxy_service(&server.configuration, lb);
    proxy.add_tcp(&listen_addr("0.0.0.0:6188"));

    server.add_service(proxy);
    server.add_service(health);
    server.run_forever();
}
