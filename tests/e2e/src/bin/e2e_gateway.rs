//! A gateway used by the end-to-end tests: `request_filter` answers 403 unless the request
//! carries `X-Api-Key: let-me-in`, `response_filter` tags every response with
//! `X-Gateway: e2e`, and everything else goes to the first address in `UPSTREAMS`.
//!
//! ```text
//! UPSTREAMS=127.0.0.1:8000 LISTEN=127.0.0.1:6190 cargo run -p pingora-e2e --bin e2e_gateway
//! curl -i -H 'X-Api-Key: let-me-in' http://127.0.0.1:6190/
//! ```

use async_trait::async_trait;
use pingora::prelude::*;

struct Gateway {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        let allowed = session
            .req_header()
            .headers
            .get("x-api-key")
            .is_some_and(|v| v.as_bytes() == b"let-me-in");
        if !allowed {
            session.respond_error(403).await?;
            // the response is written: stop here
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
        upstream_response.insert_header("X-Gateway", "e2e")?;
        Ok(())
    }
}

fn main() {
    let upstreams = std::env::var("UPSTREAMS").unwrap_or_else(|_| "127.0.0.1:8000".into());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:6190".into());
    let upstream = upstreams.split(',').next().unwrap_or_default().to_string();

    let mut server = Server::new(Some(Opt::parse_args())).expect("server setup");
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Gateway { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
