//! Per-request context and state shared across requests.
//!
//! A process-wide `AtomicUsize` numbers every request; the per-request `CTX` remembers that
//! number, whether the client asked for the beta upstream, and when the request started.
//! Beta requests (`beta: 1` header) go to the second upstream, the rest to the first.
//!
//! ```text
//! python3 -m http.server 8000 & python3 -m http.server 8001 &
//! UPSTREAMS=127.0.0.1:8000,127.0.0.1:8001 LISTEN=127.0.0.1:6190 \
//!     RUST_LOG=info cargo run -p pingora-examples --example ctx
//! curl -i http://127.0.0.1:6190/ ; curl -i -H 'beta: 1' http://127.0.0.1:6190/
//! ```

use async_trait::async_trait;
use log::info;
use pingora::prelude::*;
use pingora_examples::{listen_addr, upstreams};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Shared by all requests of all connections.
static REQUEST_COUNT: AtomicUsize = AtomicUsize::new(0);

/// The proxy: one default and one beta upstream, plus a beta request counter.
pub struct Router {
    default_upstream: String,
    beta_upstream: String,
    beta_count: AtomicUsize,
}

/// Lives for exactly one request.
pub struct RequestCtx {
    number: usize,
    beta: bool,
    started: Instant,
}

#[async_trait]
impl ProxyHttp for Router {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            number: REQUEST_COUNT.fetch_add(1, Ordering::Relaxed) + 1,
            beta: false,
            started: Instant::now(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.beta = session.req_header().headers.contains_key("beta");
        if ctx.beta {
            let n = self.beta_count.fetch_add(1, Ordering::Relaxed) + 1;
            info!("beta request #{n} (request #{})", ctx.number);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _s: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let addr = if ctx.beta {
            &self.beta_upstream
        } else {
            &self.default_upstream
        };
        Ok(Box::new(HttpPeer::new(addr.as_str(), false, String::new())))
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header("X-Request-Number", ctx.number.to_string())?;
        upstream_response.insert_header("X-Beta", if ctx.beta { "1" } else { "0" })?;
        Ok(())
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        info!(
            "request #{} beta={} status={status} took {:?}",
            ctx.number,
            ctx.beta,
            ctx.started.elapsed()
        );
    }
}

fn main() {
    env_logger::init();

    let mut server = Server::new(Some(Opt::parse_args())).expect("server setup");
    server.bootstrap();

    let addrs = upstreams("127.0.0.1:8000,127.0.0.1:8001");
    let default_upstream = addrs.first().cloned().expect("UPSTREAMS needs an address");
    let router = Router {
        beta_upstream: addrs
            .get(1)
            .cloned()
            .unwrap_or_else(|| default_upstream.clone()),
        default_upstream,
        beta_count: AtomicUsize::new(0),
    };

    let mut proxy = http_proxy_service(&server.configuration, router);
    proxy.add_tcp(&listen_addr("127.0.0.1:6190"));
    server.add_service(proxy);
    server.run_forever();
}
