//! Proxy WebSocket (and any other HTTP/1.1 `Upgrade`) connections.
//!
//! Nothing special has to be written: the upgrade request goes through the usual phases
//! (`Session::is_upgrade_req()` tells it apart), the upstream's `101 Switching Protocols` is
//! relayed, and from then on bytes are copied both ways until one side closes. The peer's
//! `read_timeout` bounds how long the tunnel may stay silent in both directions.
//!
//! ```text
//! # any WebSocket echo server on 127.0.0.1:9000, e.g. python3 -m websockets ... ; then
//! UPSTREAMS=127.0.0.1:9000 LISTEN=127.0.0.1:6195 WS_IDLE_SECS=30 \
//!     cargo run -p pingora-examples --example websocket_proxy
//! python3 -m websockets ws://127.0.0.1:6195/
//! ```

use async_trait::async_trait;
use log::info;
use pingora::prelude::*;
use pingora_examples::{listen_addr, upstreams};
use std::time::Duration;

/// Proxies every request, upgrades included, to one upstream.
pub struct WebSocketProxy {
    upstream: String,
    idle: Duration,
}

#[async_trait]
impl ProxyHttp for WebSocketProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if session.is_upgrade_req() {
            // e.g. authenticate the socket here, before the upstream sees it
            info!(
                "upgrade to {:?} for {}",
                session.get_header("upgrade"),
                session.req_header().uri
            );
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream.as_str(), false, String::new());
        // for an upgraded connection: close it after this long without a byte either way
        peer.options.read_timeout = Some(self.idle);
        Ok(Box::new(peer))
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, _ctx: &mut ()) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        info!(
            "{} -> {status} (upgrade: {}), error: {:?}",
            session.request_summary(),
            session.is_upgrade_req(),
            e.map(|e| e.to_string())
        );
    }
}

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server setup");
    server.bootstrap();

    let upstream = upstreams("127.0.0.1:9000")
        .into_iter()
        .next()
        .expect("UPSTREAMS needs an address");
    let idle_secs = std::env::var("WS_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let app = WebSocketProxy {
        upstream,
        idle: Duration::from_secs(idle_secs),
    };
    let mut proxy = http_proxy_service(&server.configuration, app);
    proxy.add_tcp(&listen_addr("127.0.0.1:6195"));
    server.add_service(proxy);
    server.run_forever();
}
