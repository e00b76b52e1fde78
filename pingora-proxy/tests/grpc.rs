//! gRPC through the proxy with independent peers: a Python `grpcio` server behind the proxy
//! and a `grpcio` client in front of it, over h2c. All four call kinds, trailers read and
//! changed by the trailer phases, an upstream error status passed unchanged, and a proxy-side
//! failure answered with a gRPC status instead of an HTML page.

mod common;
#[path = "py/peers.rs"]
mod peers;

use async_trait::async_trait;
use common::start_proxy_h2c;
use http::HeaderMap;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Proxies gRPC to one h2c upstream; the trailer phases record `grpc-status`, tag the
/// trailers and rewrite one of the upstream's.
struct GrpcProxy {
    origin: SocketAddr,
    statuses: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl ProxyHttp for GrpcProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.origin, false, String::new());
        peer.options.set_http_version(2, 2);
        Ok(Box::new(peer))
    }

    async fn upstream_response_filter(
        &self,
        _s: &mut Session,
        resp: &mut ResponseHeader,
        _c: &mut (),
    ) -> Result<()> {
        // a "trailers-only" answer (errors) carries its status in the header block
        if let Some(status) = resp.headers.get("grpc-status") {
            let status = String::from_utf8_lossy(status.as_bytes()).into_owned();
            self.statuses.lock().expect("lock").push(status);
        }
        Ok(())
    }

    fn upstream_response_trailer_filter(
        &self,
        _s: &mut Session,
        trailers: &mut HeaderMap,
        _c: &mut (),
    ) -> Result<()> {
        let status = trailers
            .get("grpc-status")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        self.statuses.lock().expect("lock").push(status);
        trailers.insert("x-proxy-trailer", "seen".parse().expect("value"));
        Ok(())
    }

    async fn response_trailer_filter(
        &self,
        _s: &mut Session,
        trailers: &mut HeaderMap,
        _c: &mut (),
    ) -> Result<Option<bytes::Bytes>> {
        if trailers.contains_key("x-upstream-trailer") {
            trailers.insert(
                "x-upstream-trailer",
                "unary-filtered".parse().expect("value"),
            );
        }
        Ok(None)
    }
}

/// Run a `grpc_peer.py` client mode off the runtime; returns its stdout.
async fn grpc_client(args: Vec<String>) -> String {
    let out = peers::run_client_async("grpc_peer.py", args, Duration::from_secs(60)).await;
    peers::success_stdout("grpc client", &out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_call_kinds_and_trailers_over_h2c() {
    let server = peers::PyServer::start("grpc_peer.py", &["server"]);
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let proxy = start_proxy_h2c(GrpcProxy {
        origin: ([127, 0, 0, 1], server.port).into(),
        statuses: statuses.clone(),
    })
    .await;
    let out = grpc_client(vec!["client".into(), proxy.to_string()]).await;
    peers::assert_grpc_checks(&out);
    // the trailer phases read the upstream's trailers and changed what the client got
    let trailers = out
        .lines()
        .find_map(|l| l.strip_prefix("TRAILERS "))
        .expect("trailers line");
    assert!(
        trailers.contains(r#""x-upstream-trailer": "unary-filtered""#),
        "{trailers}"
    );
    assert!(
        trailers.contains(r#""x-proxy-trailer": "seen""#),
        "{trailers}"
    );
    let statuses = statuses.lock().expect("lock").clone();
    assert!(
        statuses.iter().filter(|s| *s == "0").count() >= 5,
        "{statuses:?}"
    );
    // NOT_FOUND (5) came back from the upstream and reached the client unchanged
    assert!(statuses.iter().any(|s| s == "5"), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_gives_grpc_unavailable() {
    // a port nothing listens on
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let proxy = start_proxy_h2c(GrpcProxy {
        origin: dead,
        statuses: Arc::new(Mutex::new(Vec::new())),
    })
    .await;
    let out = grpc_client(vec!["status".into(), proxy.to_string()]).await;
    // The proxy's own answer (not grpcio's connect failure, nor an HTTP 502 page).
    assert!(
        out.contains("STATUS UNAVAILABLE proxy error 502: "),
        "{out}"
    );
}
