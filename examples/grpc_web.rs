//! Bridge gRPC-web (browsers, HTTP/1.1) to a gRPC server with the gRPC-web module.
//!
//! The module is added once in `init_downstream_modules` and switched on per request in
//! `early_request_filter`. It rewrites `application/grpc-web[-text]` requests into gRPC ones
//! (decoding base64 bodies for `-text`), and the gRPC responses back, folding the trailers
//! into the body as gRPC-web's trailer frame. Other requests pass untouched.
//!
//! ```text
//! # a gRPC server on 127.0.0.1:50051; then
//! UPSTREAMS=127.0.0.1:50051 LISTEN=127.0.0.1:6197 cargo run -p pingora-examples --example grpc_web
//! # a gRPC-web client (e.g. grpc-web in a browser) pointed at http://127.0.0.1:6197
//! ```

use async_trait::async_trait;
use pingora::modules::http::grpc_web::{GrpcWeb, GrpcWebBridge};
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora_examples::{listen_addr, upstreams};

/// Bridges gRPC-web calls to one gRPC server.
pub struct GrpcWebProxy {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for GrpcWebProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(Box::new(GrpcWeb));
    }

    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<()> {
        if let Some(bridge) = session.downstream_modules_ctx.get_mut::<GrpcWebBridge>() {
            bridge.init();
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream.as_str(), false, String::new());
        peer.options.set_http_version(2, 2);
        Ok(Box::new(peer))
    }
}

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server setup");
    server.bootstrap();

    let upstream = upstreams("127.0.0.1:50051")
        .into_iter()
        .next()
        .expect("UPSTREAMS needs an address");
    let mut proxy = http_proxy_service(&server.configuration, GrpcWebProxy { upstream });
    proxy.add_tcp(&listen_addr("127.0.0.1:6197"));
    server.add_service(proxy);
    server.run_forever();
}
