//! End-to-end tests of the HTTP/1 proxy engine over real loopback sockets.

mod common;

use async_trait::async_trait;
use bytes::Bytes;
use common::*;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Per-request record of the phases run.
#[derive(Default)]
struct Ctx {
    phases: Vec<&'static str>,
    tries: usize,
}

/// A proxy to one or more origins that records the phases of each request.
struct TestProxy {
    /// Tried in order, one per attempt (the last one repeats).
    peers: Vec<SocketAddr>,
    read_timeout: Option<Duration>,
    /// The phases of each finished request, pushed by `logging`.
    log: Arc<Mutex<Vec<Vec<&'static str>>>>,
    /// Mark connect failures retryable.
    retry_connect: bool,
}

impl TestProxy {
    fn new(peers: Vec<SocketAddr>) -> (Self, Arc<Mutex<Vec<Vec<&'static str>>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        (
            TestProxy {
                peers,
                read_timeout: None,
                log: log.clone(),
                retry_connect: false,
            },
            log,
        )
    }
}

#[async_trait]
impl ProxyHttp for TestProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn early_request_filter(&self, _s: &mut Session, ctx: &mut Ctx) -> Result<()> {
        ctx.phases.push("early_request_filter");
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.phases.push("request_filter");
        if session.req_header().uri.path() == "/forbidden" {
            session.respond_error(403).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn proxy_upstream_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.phases.push("proxy_upstream_filter");
        Ok(session.req_header().uri.path() != "/declined")
    }

    async fn upstream_peer(&self, _s: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        ctx.phases.push("upstream_peer");
        let addr = self.peers[ctx.tries.min(self.peers.len() - 1)];
        ctx.tries += 1;
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.read_timeout = self.read_timeout;
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _s: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.phases.push("fail_to_connect");
        if self.retry_connect {
            e.set_retry(true);
        }
        e
    }

    async fn connected_to_upstream(
        &self,
        _s: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora_core::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.phases.push("connected_to_upstream");
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.phases.push("upstream_request_filter");
        if session.get_header("x-rewrite-host").is_some() {
            req.insert_header("Host", "rewritten.test")?;
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _s: &mut Session,
        _body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if end {
            ctx.phases.push("request_body_filter(end)");
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _s: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.phases.push("upstream_response_filter");
        Ok(())
    }

    async fn response_filter(
        &self,
        _s: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.phases.push("response_filter");
        resp.insert_header("X-Proxied", "1")?;
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _s: &mut Session,
        _body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if end {
            ctx.phases.push("upstream_response_body_filter(end)");
        }
        Ok(None)
    }

    fn response_body_filter(
        &self,
        _s: &mut Session,
        _body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if end {
            ctx.phases.push("response_body_filter(end)");
        }
        Ok(None)
    }

    async fn logging(&self, _s: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        ctx.phases.push("logging");
        self.log
            .lock()
            .expect("log lock")
            .push(std::mem::take(&mut ctx.phases));
    }
}

/// Wait until `n` requests were logged (logging runs after the response is written).
async fn wait_logged(log: &Arc<Mutex<Vec<Vec<&'static str>>>>, n: usize) -> Vec<Vec<&'static str>> {
    for _ in 0..200 {
        let l = log.lock().expect("log lock").clone();
        if l.len() >= n {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    log.lock().expect("log lock").clone()
}

/// An address nobody listens on.
async fn refused_addr() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_passthrough_and_phase_order() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/hello?q=1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    assert_eq!(r.head.get("x-proxied"), Some("1"));
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/hello?q=1");
    assert_eq!(seen[0].head.get("host"), Some("client.test"));

    let logged = wait_logged(&log, 1).await;
    assert_eq!(logged.len(), 1, "logging runs once per request");
    let phases: Vec<_> = logged[0]
        .iter()
        .copied()
        .filter(|p| *p != "request_body_filter(end)")
        .collect();
    assert_eq!(
        phases,
        vec![
            "early_request_filter",
            "request_filter",
            "proxy_upstream_filter",
            "upstream_peer",
            "connected_to_upstream",
            "upstream_request_filter",
            "upstream_response_filter",
            "response_filter",
            "upstream_response_body_filter(end)",
            "response_body_filter(end)",
            "logging",
        ]
    );
    let pos = |p: &str| logged[0].iter().position(|x| *x == p);
    let body_end = pos("request_body_filter(end)").expect("request body end seen");
    assert!(body_end > pos("upstream_request_filter").expect("filter ran"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_rewritten_by_upstream_request_filter() {
    let origin = Origin::start().await;
    let (proxy, _log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    c.send_raw(b"GET /h HTTP/1.1\r\nHost: client.test\r\nX-Rewrite-Host: 1\r\nConnection: keep-alive, X-Drop\r\nX-Drop: secret\r\n\r\n")
        .await;
    let r = c.read_resp(false).await.expect("response");
    assert_eq!(r.status, 200);
    let seen = origin.seen();
    assert_eq!(seen[0].head.get("host"), Some("rewritten.test"));
    assert_eq!(
        seen[0].head.get("x-drop"),
        None,
        "connection options are hop-by-hop"
    );
    assert_eq!(seen[0].head.get("x-rewrite-host"), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_filter_answers_403() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/forbidden").await;
    assert_eq!(r.status, 403);
    let logged = wait_logged(&log, 1).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(
        logged[0],
        vec!["early_request_filter", "request_filter", "logging"]
    );
    assert_eq!(origin.connections(), 0, "the origin is never contacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_upstream_gets_502() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/declined").await;
    assert_eq!(r.status, 502);
    assert_eq!(wait_logged(&log, 1).await.len(), 1);
    assert_eq!(origin.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_content_length_upload_is_byte_exact() {
    let origin = Origin::start().await;
    let (proxy, _log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let body = pattern(5 * 1024 * 1024);
    let mut c = Client::connect(addr).await;
    c.send_raw(
        format!(
            "POST /echo-info HTTP/1.1\r\nHost: client.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    c.send_raw(&body).await;
    let r = c.read_resp(false).await.expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        format!("{} {}", body.len(), fnv(&body))
    );
    let seen = origin.seen();
    assert!(!seen[0].chunked);
    assert_eq!(seen[0].body_len, body.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_is_byte_exact() {
    let origin = Origin::start().await;
    let (proxy, _log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let body = pattern(300_007);
    let mut c = Client::connect(addr).await;
    c.send_raw(
        b"POST /echo-info HTTP/1.1\r\nHost: client.test\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    for piece in body.chunks(65_536) {
        c.send_raw(format!("{:x}\r\n", piece.len()).as_bytes())
            .await;
        c.send_raw(piece).await;
        c.send_raw(b"\r\n").await;
    }
    c.send_raw(b"0\r\n\r\n").await;
    let r = c.read_resp(false).await.expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        format!("{} {}", body.len(), fnv(&body))
    );
    let seen = origin.seen();
    assert!(seen[0].chunked, "a chunked request stays chunked upstream");
    assert_eq!(seen[0].body_hash, fnv(&body));
    // The client connection is still usable.
    let r = c.get("/").await;
    assert_eq!(r.body, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_responses_are_byte_exact() {
    let origin = Origin::start().await;
    let (proxy, _log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let n = 20 * 1024 * 1024;
    let mut c = Client::connect(addr).await;
    let r = c.get(&format!("/big/{n}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), n);
    assert!(r.body == pattern(n), "content-length body byte-exact");

    let r = c.get("/chunked/1000003").await;
    assert_eq!(r.status, 200);
    assert!(r.body == pattern(1_000_003), "chunked body byte-exact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_reuses_upstream_connection() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    for _ in 0..5 {
        let r = c.get("/").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello");
    }
    assert_eq!(origin.connections(), 1, "one pooled upstream connection");
    let logged = wait_logged(&log, 5).await;
    assert_eq!(logged.len(), 5);
    assert!(logged
        .iter()
        .all(|p| p.iter().filter(|x| **x == "logging").count() == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_is_502() {
    let (proxy, log) = TestProxy::new(vec![refused_addr().await]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/").await;
    assert_eq!(r.status, 502);
    let logged = wait_logged(&log, 1).await;
    assert_eq!(logged.len(), 1);
    assert!(logged[0].contains(&"fail_to_connect"));
    assert_eq!(
        logged[0].iter().filter(|p| **p == "upstream_peer").count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_timeout_is_504() {
    let origin = Origin::start().await;
    let (mut proxy, log) = TestProxy::new(vec![origin.addr]);
    proxy.read_timeout = Some(Duration::from_millis(300));
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/slow").await;
    assert_eq!(r.status, 504);
    assert_eq!(wait_logged(&log, 1).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_refused_connect() {
    let origin = Origin::start().await;
    let (mut proxy, log) = TestProxy::new(vec![refused_addr().await, origin.addr]);
    proxy.retry_connect = true;
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    let logged = wait_logged(&log, 1).await;
    assert_eq!(logged.len(), 1);
    let p = &logged[0];
    assert_eq!(p.iter().filter(|x| **x == "upstream_peer").count(), 2);
    let fail = p
        .iter()
        .position(|x| *x == "fail_to_connect")
        .expect("failed once");
    let second_peer = p.iter().rposition(|x| *x == "upstream_peer").expect("peer");
    assert!(
        fail < second_peer,
        "upstream_peer is asked again after the failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_is_400_and_closed() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    c.send_raw(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header Line\r\n\r\n")
        .await;
    let r = c.read_resp(false).await.expect("an error response");
    assert_eq!(r.status, 400);
    assert!(c.closed().await);
    assert_eq!(origin.connections(), 0);
    assert!(
        log.lock().expect("log lock").is_empty(),
        "no request, no logging"
    );
}
