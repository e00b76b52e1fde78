//! A gRPC-aware proxy: h2c (and HTTP/1.1) in front, HTTP/2 to the gRPC server behind.
//!
//! The trailer phases see each call's `grpc-status`: this one counts failed calls, adds an
//! `x-proxied-by` trailer for the client and logs the status of every call. Should the proxy
//! itself fail (the server is down), the client gets a proper gRPC status (`UNAVAILABLE`)
//! rather than an HTML error page.
//!
//! With `TLS_CERT` / `TLS_KEY` set it listens with TLS instead (HTTP/2 chosen by ALPN), and
//! with `UPSTREAM_CA` set it reaches the server over TLS, trusting that CA (`UPSTREAM_SNI`,
//! default `localhost`).
//!
//! ```text
//! # a gRPC server on 127.0.0.1:50051; then
//! UPSTREAMS=127.0.0.1:50051 LISTEN=127.0.0.1:6196 cargo run -p pingora-examples --example grpc_proxy
//! grpcurl -plaintext 127.0.0.1:6196 list      # or any gRPC client pointed at 127.0.0.1:6196
//! ```

use async_trait::async_trait;
use http::HeaderMap;
use log::info;
use pingora::apps::HttpServerOptions;
use pingora::listeners::TlsSettings;
use pingora::prelude::*;
use pingora::upstreams::peer::X509;
use pingora_examples::{listen_addr, upstreams};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Proxies gRPC calls to one server.
pub struct GrpcProxy {
    upstream: String,
    /// Reach the server over TLS, trusting these CA certificates, with this SNI.
    upstream_tls: Option<(Arc<Box<[X509]>>, String)>,
    failed_calls: AtomicU64,
}

/// Per-call state: the status the server returned.
#[derive(Default)]
pub struct Call {
    grpc_status: Option<String>,
}

#[async_trait]
impl ProxyHttp for GrpcProxy {
    type CTX = Call;
    fn new_ctx(&self) -> Call {
        Call::default()
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Call,
    ) -> Result<Box<HttpPeer>> {
        let mut peer = match &self.upstream_tls {
            Some((ca, sni)) => {
                let mut peer = HttpPeer::new(self.upstream.as_str(), true, sni.clone());
                peer.options.ca = Some(ca.clone());
                peer
            }
            None => HttpPeer::new(self.upstream.as_str(), false, String::new()),
        };
        // gRPC needs HTTP/2: ALPN h2 over TLS, h2c with prior knowledge on plaintext
        peer.options.set_http_version(2, 2);
        Ok(Box::new(peer))
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Call,
    ) -> Result<()> {
        // a "trailers-only" answer carries its status in the header block
        ctx.grpc_status = resp
            .headers
            .get("grpc-status")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        Ok(())
    }

    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        trailers: &mut HeaderMap,
        ctx: &mut Call,
    ) -> Result<()> {
        ctx.grpc_status = trailers
            .get("grpc-status")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        trailers.insert("x-proxied-by", http::HeaderValue::from_static("pingora-rs"));
        Ok(())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Call) {
        let status = ctx.grpc_status.as_deref().unwrap_or("-");
        if status != "0" {
            let n = self.failed_calls.fetch_add(1, Ordering::Relaxed) + 1;
            info!("failed calls so far: {n}");
        }
        info!(
            "{} grpc-status {status}, error: {:?}",
            session.req_header().uri.path(),
            e.map(|e| e.to_string())
        );
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
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let upstream_tls = env("UPSTREAM_CA").map(|path| {
        let pem = std::fs::read(&path).expect("UPSTREAM_CA readable");
        let ca = X509::stack_from_pem(&pem).expect("UPSTREAM_CA is PEM");
        let sni = env("UPSTREAM_SNI").unwrap_or_else(|| "localhost".into());
        (Arc::new(ca.into_boxed_slice()), sni)
    });
    let app = GrpcProxy {
        upstream,
        upstream_tls,
        failed_calls: AtomicU64::new(0),
    };
    let mut proxy = http_proxy_service(&server.configuration, app);
    // gRPC clients speak HTTP/2 with prior knowledge on plaintext ports
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    if let Some(logic) = proxy.app_logic_mut() {
        logic.server_options = Some(options);
    }
    let addr = listen_addr("127.0.0.1:6196");
    match (env("TLS_CERT"), env("TLS_KEY")) {
        (Some(cert), Some(key)) => {
            let mut tls = TlsSettings::intermediate(&cert, &key).expect("TLS certificate and key");
            tls.enable_h2();
            proxy.add_tls_with_settings(&addr, None, tls);
        }
        _ => proxy.add_tcp(&addr),
    }
    server.add_service(proxy);
    server.run_forever();
}
