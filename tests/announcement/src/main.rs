//! The round-robin load balancer from the Pingora announcement, written the way a Pingora 0.8
//! user writes it. Only the addresses differ: upstreams come from `UPSTREAMS`
//! (comma-separated `ip:port` list) and the listening address from `LISTEN`, and the upstreams
//! are plain-text (tls = false), so the program runs offline against local origins.
//!
//! ```text
//! UPSTREAMS=127.0.0.1:8000,127.0.0.1:8001 LISTEN=127.0.0.1:6188 cargo run -p pingora-announcement
//! curl -i http://127.0.0.1:6188/
//! ```

use async_trait::async_trait;
use pingora::prelude::*;
use std::sync::Arc;

/// The Host header every upstream request carries, as in the announcement.
const UPSTREAM_HOST: &str = "one.one.one.one";

pub struct LB(Arc<LoadBalancer<RoundRobin>>);

#[async_trait]
impl ProxyHttp for LB {
    /// No per-request state is needed.
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // 256 is how many backends to try before giving up when some are unhealthy
        let upstream = self
            .0
            .select(b"", 256)
            .ok_or_else(|| Error::explain(HTTPStatus(503), "no healthy upstream"))?;
        println!("upstream peer is: {upstream:?}");
        // plain-text upstream: tls = false, the SNI is unused
        let peer = Box::new(HttpPeer::new(upstream, false, UPSTREAM_HOST.to_string()));
        Ok(peer)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        upstream_request.insert_header("Host", UPSTREAM_HOST)?;
        Ok(())
    }
}

fn main() {
    let mut my_server = Server::new(Some(Opt::parse_args())).unwrap();
    my_server.bootstrap();

    let upstreams_env = std::env::var("UPSTREAMS").unwrap_or("127.0.0.1:8000".to_string());
    let listen = std::env::var("LISTEN").unwrap_or("0.0.0.0:6188".to_string());

    let mut upstreams =
        LoadBalancer::try_from_iter(upstreams_env.split(',').map(|s| s.trim())).unwrap();

    // health check: a backend that refuses TCP connections is taken out of rotation
    let hc = TcpHealthCheck::new();
    upstreams.set_health_check(hc);
    upstreams.health_check_frequency = Some(std::time::Duration::from_secs(1));

    let background = background_service("health check", upstreams);
    let upstreams = background.task();

    let mut lb = http_proxy_service(&my_server.configuration, LB(upstreams));
    lb.add_tcp(&listen);

    my_server.add_service(lb);
    my_server.add_service(background);
    my_server.run_forever();
}
