//! The facade crate exposes what Pingora 0.8 programs import, under the same paths, and those
//! items behave as documented. Compiling this file is half the test: every `use` below is a
//! path that user programs rely on.

#![cfg(feature = "lb")]

use async_trait::async_trait;
use bytes::Bytes;
use http::{Response, StatusCode};
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::lb::{selection::RoundRobin, Backend, LoadBalancer};
use pingora::prelude::*;
use pingora::protocols::http::ServerSession;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use pingora::upstreams::peer::{HttpPeer, Peer};
use std::collections::HashMap;
use std::time::Duration;

/// A proxy overriding the phases most programs use, with the exact 0.8 signatures.
struct EveryPhase;

#[async_trait]
impl ProxyHttp for EveryPhase {
    type CTX = Vec<&'static str>;
    fn new_ctx(&self) -> Self::CTX {
        Vec::new()
    }
    async fn early_request_filter(&self, _s: &mut Session, ctx: &mut Self::CTX) -> Result<()> {
        ctx.push("early_request_filter");
        Ok(())
    }
    async fn request_filter(&self, _s: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        ctx.push("request_filter");
        Ok(false)
    }
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut Self::CTX) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new("127.0.0.1:1", false, String::new())))
    }
    async fn upstream_request_filter(
        &self,
        _s: &mut Session,
        req: &mut RequestHeader,
        _c: &mut Self::CTX,
    ) -> Result<()> {
        req.insert_header("Host", "example.org")?;
        Ok(())
    }
    async fn response_filter(
        &self,
        _s: &mut Session,
        resp: &mut ResponseHeader,
        _c: &mut Self::CTX,
    ) -> Result<()> {
        resp.insert_header("Server", "facade")?;
        Ok(())
    }
    fn response_body_filter(
        &self,
        _s: &mut Session,
        _body: &mut Option<Bytes>,
        _eos: bool,
        _c: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        Ok(None)
    }
    fn fail_to_connect(
        &self,
        _s: &mut Session,
        _p: &HttpPeer,
        _c: &mut Self::CTX,
        mut e: Box<Error>,
    ) -> Box<Error> {
        e.set_retry(true);
        e
    }
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _c: &mut Self::CTX,
    ) -> FailToProxy {
        let code = match e.etype() {
            HTTPStatus(code) => *code,
            _ => 502,
        };
        let _ = session.respond_error(code).await;
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
    async fn logging(&self, _s: &mut Session, _e: Option<&Error>, _c: &mut Self::CTX) {}
}

struct Hello;

#[async_trait]
impl ServeHttp for Hello {
    async fn response(&self, _session: &mut ServerSession) -> Response<Vec<u8>> {
        Response::builder()
            .status(StatusCode::OK)
            .body(b"hi".to_vec())
            .expect("valid response")
    }
}

#[test]
fn services_build_from_the_facade() {
    let conf = std::sync::Arc::new(ServerConf::default());
    let mut proxy = http_proxy_service(&conf, EveryPhase);
    proxy.add_tcp("127.0.0.1:0");
    let mut app = Service::new("hello".to_string(), HttpServer::new_app(Hello));
    app.add_tcp("127.0.0.1:0");
    let lb = LoadBalancer::<RoundRobin>::try_from_iter(["127.0.0.1:1"]).expect("backend");
    let background = background_service("hc", lb);
    let _shared = background.task();
    let _metrics = Service::prometheus_http_service();
}

#[test]
fn server_conf_defaults_and_yaml() {
    let conf = ServerConf::from_yaml("---\nversion: 1\nthreads: 3\n").expect("valid yaml");
    assert_eq!(conf.threads, 3);
    assert_eq!(conf.version, 1);
    assert_eq!(conf.upstream_keepalive_pool_size, 128);
    assert!(conf.work_stealing);
    assert!(ServerConf::from_yaml("threads: [not a number]").is_err());
    let opt = Opt::parse_from_args(["prog", "-c", "/tmp/x.yaml", "-t"]);
    assert_eq!(opt.conf.as_deref(), Some("/tmp/x.yaml"));
    assert!(opt.test && !opt.daemon && !opt.upgrade);
}

#[test]
fn round_robin_cycles_through_backends() {
    let addrs = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"];
    let lb = LoadBalancer::<RoundRobin>::try_from_iter(addrs).expect("backends");
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let backend: Backend = lb.select(b"", 256).expect("all healthy by default");
        *counts.entry(backend.addr.to_string()).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&n| n == 10), "{counts:?}");
}

#[test]
fn peers_carry_address_and_tls_flag() {
    let mut peer = HttpPeer::new("127.0.0.1:8443", true, "example.org".to_string());
    peer.options.connection_timeout = Some(Duration::from_millis(250));
    assert!(peer.tls());
    assert_eq!(peer.sni(), "example.org");
    assert_eq!(peer.address().to_string(), "127.0.0.1:8443");
    let plain = HttpPeer::new("127.0.0.1:80", false, String::new());
    assert!(!plain.tls());
    assert_ne!(peer.reuse_hash(), plain.reuse_hash());
}

#[test]
fn errors_convert_and_explain() {
    let e = Error::explain(HTTPStatus(503), "no healthy upstream");
    assert_eq!(e.etype(), &HTTPStatus(503));
    let missing: Option<u8> = None;
    let e = missing.or_err(InternalError, "nothing there").unwrap_err();
    assert_eq!(e.etype(), &InternalError);
    let parsed: std::result::Result<u8, _> = "x".parse::<u8>();
    let e = parsed.or_err(InvalidHTTPHeader, "bad number").unwrap_err();
    assert!(e.to_string().contains("bad number"), "{e}");
}

#[test]
fn headers_keep_what_was_inserted() {
    let mut req = RequestHeader::build("GET", b"/path?q=1", None).expect("request");
    req.insert_header("X-Custom-Case", "v").expect("header");
    assert_eq!(req.uri.path(), "/path");
    assert_eq!(
        req.headers.get("x-custom-case").map(|v| v.as_bytes()),
        Some(&b"v"[..])
    );
    let mut resp = ResponseHeader::build(200, None).expect("response");
    resp.insert_header("Content-Length", "0").expect("header");
    resp.remove_header("Content-Length");
    assert!(resp.headers.get("content-length").is_none());
    assert_eq!(resp.status, StatusCode::OK);
}
