//! What crosses the proxy between HTTP/2 and HTTP/1.1 besides heads and bodies: request
//! trailers of an HTTP/2 client towards an HTTP/1.1 upstream (also on a retry) and of a
//! chunked HTTP/1.1 request, and interim `103 Early Hints` heads from either kind of upstream.
//! Peers: the python `h2` client and origin, and a raw-socket python HTTP/1.1 origin that
//! reports the trailers it got.

#[path = "h2/harness.rs"]
mod harness;

use async_trait::async_trait;
use harness::*;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, Result};
use pingora_proxy::{ProxyHttp, Session};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_request_trailers_reach_chunked_h1_upstream() {
    let (_origin, origin) = python_server("h1_origin.py", &[]);
    let proxy = serve(h2c_proxy(ToPeer(h1_peer(origin)))).await;
    let r = py_client(
        proxy,
        "POST",
        "/trailers",
        &["70000", "trailer=x-req-trailer:yes", "trailer=x-sum:42"],
    )
    .await;
    assert_eq!(r["status"], 200, "{r}");
    // the body of unknown length went chunked, and the trailers after its last chunk
    assert_eq!(r["headers"]["x-seen-te"], "chunked", "{r}");
    assert_eq!(r["headers"]["x-seen-trailer-x-req-trailer"], "yes", "{r}");
    assert_eq!(r["headers"]["x-seen-trailer-x-sum"], "42", "{r}");
    assert_eq!(r["body"], "70000", "{r}");

    // a body with a length cannot carry them: the request still goes through, without them,
    let r = py_client(
        proxy,
        "POST",
        "/trailers",
        &["10", "content-length:10", "trailer=x-req-trailer:yes"],
    )
    .await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["headers"]["x-seen-te"], "", "{r}");
    assert!(
        r["headers"].get("x-seen-trailer-x-req-trailer").is_none(),
        "{r}"
    );
    assert_eq!(r["body"], "10", "{r}");

    // ... unless the request announces them: then it goes chunked
    let r = py_client(
        proxy,
        "POST",
        "/trailers",
        &[
            "10",
            "content-length:10",
            "trailer:x-req-trailer",
            "trailer=x-req-trailer:yes",
        ],
    )
    .await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["headers"]["x-seen-te"], "chunked", "{r}");
    assert_eq!(r["headers"]["x-seen-trailer-x-req-trailer"], "yes", "{r}");
    assert_eq!(r["body"], "10", "{r}");
}

/// A proxy to one peer that retries every failure once it was read to the end.
struct RetryAll {
    peer: HttpPeer,
    failures: AtomicUsize,
}

#[async_trait]
impl ProxyHttp for RetryAll {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }

    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        _s: &mut Session,
        mut e: Box<Error>,
        _ctx: &mut (),
        _client_reused: bool,
    ) -> Box<Error> {
        self.failures.fetch_add(1, Ordering::SeqCst);
        e.set_retry(true);
        e
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_request_trailers_replayed_on_retry() {
    // the first upstream connection takes the whole request, trailers included, then closes
    let (_origin, origin) = python_server("h1_origin.py", &["--drop-first"]);
    let app = RetryAll {
        peer: h1_peer(origin),
        failures: AtomicUsize::new(0),
    };
    let proxy_app = h2c_proxy(app);
    let proxy = serve(proxy_app.clone()).await;
    let r = py_client(
        proxy,
        "POST",
        "/trailers",
        &["5000", "trailer=x-req-trailer:again"],
    )
    .await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["headers"]["x-seen-trailer-x-req-trailer"], "again", "{r}");
    assert_eq!(r["body"], "5000", "the retry replays the whole body: {r}");
    assert_eq!(proxy_app.inner().failures.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_hints_from_h1_upstream_reach_h2_client() {
    let (_origin, origin) = python_server("h1_origin.py", &[]);
    let proxy = serve(h2c_proxy(ToPeer(h1_peer(origin)))).await;
    let r = py_client(proxy, "GET", "/hints", &[]).await;
    let info = r["informational"].as_array().expect("list");
    assert_eq!(info.len(), 1, "{r}");
    assert_eq!(info[0][":status"], "103", "{r}");
    assert_eq!(info[0]["link"], "</a.css>; rel=preload", "{r}");
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["body"], "final", "{r}");
    // the final response is not disturbed by the interim one
    assert!(r["error"].is_null(), "{r}");

    // curl shows the interim head before the final one
    let args: Vec<String> = ["-sS", "-i", "--max-time", "20", "--http2-prior-knowledge"]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("http://{proxy}/hints")])
        .collect();
    let out = run_for("curl", &args, STEP).await;
    assert!(out.status.success(), "curl: {}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let hints = t.find("http/2 103").expect("103 head");
    let fin = t.find("http/2 200").expect("200 head");
    assert!(
        hints < fin && t[hints..fin].contains("link: </a.css>"),
        "{t}"
    );
    assert!(t.ends_with("final"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_hints_from_h2_upstream_reach_h2_and_h1_clients() {
    let (_origin, origin) = python_origin(&[]);
    let proxy = serve(h2c_proxy(ToPeer(h2_peer(origin, 4)))).await;
    let r = py_client(proxy, "GET", "/hints", &[]).await;
    let info = r["informational"].as_array().expect("list");
    assert_eq!(info.len(), 1, "{r}");
    assert_eq!(info[0][":status"], "103", "{r}");
    assert_eq!(r["status"], 200, "{r}");
    assert!(
        r["body"].as_str().is_some_and(|b| b.starts_with("conn=")),
        "{r}"
    );

    // an HTTP/1.1 client gets the 103 head before the final one
    let mut c = tokio::net::TcpStream::connect(proxy)
        .await
        .expect("connect");
    c.write_all(b"GET /hints HTTP/1.1\r\nHost: o.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), c.read_to_end(&mut out))
        .await
        .expect("in time")
        .expect("read");
    let t = String::from_utf8_lossy(&out).to_ascii_lowercase();
    let hints = t.find("http/1.1 103").expect("103 head");
    let fin = t.find("http/1.1 200").expect("200 head");
    assert!(hints < fin, "{t}");
    assert!(t[hints..fin].contains("link: </a.css>; rel=preload"), "{t}");
    assert!(t.contains("conn="), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_chunked_request_trailers_reach_the_upstream() {
    let (_origin, origin) = python_server("h1_origin.py", &[]);
    let proxy = serve(h2c_proxy(ToPeer(h1_peer(origin)))).await;
    let mut client = tokio::net::TcpStream::connect(proxy)
        .await
        .expect("connect");
    client
        .write_all(
            b"POST /trailers HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
              Connection: close\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\nX-Req-Trailer: yes\r\n\r\n",
        )
        .await
        .expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer))
        .await
        .expect("answer in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    // the body was re-chunked towards the origin and ended with the client's trailers
    assert!(answer.contains("x-seen-te: chunked\r\n"), "{answer}");
    assert!(answer.contains("x-seen-trailer-x-sum: 42\r\n"), "{answer}");
    assert!(
        answer.contains("x-seen-trailer-x-req-trailer: yes\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\n11"), "{answer}");
}
