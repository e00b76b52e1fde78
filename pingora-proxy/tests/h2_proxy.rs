//! HTTP/2 through the proxy with independent clients (curl, python `h2`, h2load): h2c with
//! prior knowledge next to HTTP/1.1 on one port, h1<->h2 translation with bodies and
//! trailers, and shared upstream HTTP/2 connections.

#[path = "h2/harness.rs"]
mod harness;

use harness::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn s(v: &str) -> String {
    v.to_string()
}

async fn curl(args: &[&str]) -> String {
    let mut all: Vec<String> = vec![s("-sS"), s("--max-time"), s("20")];
    all.extend(args.iter().map(|a| s(a)));
    let out = run_for("curl", &all, STEP).await;
    assert!(out.status.success(), "curl {args:?} failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_and_h1_share_a_port() {
    let origin = serve(Origin::new()).await;
    let proxy = serve(h2c_proxy(ToPeer(h1_peer(origin)))).await;
    let url = format!("http://{proxy}/");

    let out = curl(&["--http2-prior-knowledge", "-D-", &url]).await;
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(out.contains("x-downstream-proto: h2"), "{out}");
    assert!(out.ends_with("hello h1"), "{out}");

    let out = curl(&["--http1.1", "-D-", &url]).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("x-downstream-proto: h1"), "{out}");
    assert!(out.ends_with("hello h1"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_client_to_h1_upstream_with_body_and_trailers() {
    let origin = serve(Origin::new()).await;
    let proxy = serve(h2c_proxy(ToPeer(h1_peer(origin)))).await;
    // 300 KB exceeds the default windows: the upload runs under flow control
    let r = py_client(
        proxy,
        "POST",
        "/echo",
        &["300000", "x-want-trailers:1", "te:trailers"],
    )
    .await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["body_len"], 300000, "{r}");
    assert_eq!(r["body_ok"], true, "{r}");
    assert_eq!(r["headers"]["x-origin-proto"], "h1", "{r}");
    assert_eq!(r["headers"]["x-downstream-proto"], "h2", "{r}");
    assert_eq!(
        r["headers"]["x-seen-host"],
        format!("127.0.0.1:{}", proxy.port()),
        "{r}"
    );
    assert!(r["headers"].get("transfer-encoding").is_none(), "{r}");
    assert_eq!(r["trailers"]["x-origin-trailer"], "done", "{r}");
    assert_eq!(r["trailers"]["grpc-status"], "0", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_client_to_h2_upstream_with_body_and_trailers() {
    let origin = serve(Origin::new()).await;
    let proxy = serve(h2c_proxy(ToPeer(h2_peer(origin, 10)))).await;
    let r = py_client(
        proxy,
        "POST",
        "/echo",
        &[
            "200000",
            "x-want-trailers:1",
            "te:trailers",
            "trailer=x-req-trailer:yes",
        ],
    )
    .await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["body_ok"], true, "{r}");
    // request trailers travel too when both sides speak HTTP/2
    assert_eq!(r["headers"]["x-seen-req-trailer"], "yes", "{r}");
    assert_eq!(r["headers"]["x-origin-proto"], "h2", "{r}");
    assert_eq!(r["trailers"]["x-origin-trailer"], "done", "{r}");
    let out = curl(&[
        "--http2-prior-knowledge",
        "-D-",
        &format!("http://{proxy}/x"),
    ])
    .await;
    assert!(
        out.starts_with("HTTP/2 200") && out.ends_with("hello h2"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_client_to_h2_upstream_with_body_and_trailers() {
    let origin = serve(Origin::new()).await;
    let proxy = serve(h2c_proxy(ToPeer(h2_peer(origin, 10)))).await;
    let mut c = tokio::net::TcpStream::connect(proxy)
        .await
        .expect("connect");
    c.write_all(
        b"POST /echo HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, x-hop\r\n\
          X-Hop: 1\r\nx-want-trailers: 1\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await
    .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // the response ends with the trailer section after the last chunk
    let done = tokio::time::timeout(STEP, async {
        loop {
            let n = c.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
            let t = String::from_utf8_lossy(&got);
            if t.contains("\r\n0\r\n") && t.ends_with("\r\n\r\n") && t.contains("trailer") {
                break;
            }
        }
    })
    .await;
    let t = String::from_utf8_lossy(&got).to_lowercase();
    assert!(done.is_ok(), "timed out: {t}");
    assert!(t.starts_with("http/1.1 200"), "{t}");
    assert!(t.contains("x-origin-proto: h2"), "{t}");
    assert!(t.contains("x-seen-host: example.test"), "{t}");
    assert!(t.contains("transfer-encoding: chunked"), "{t}");
    assert!(t.contains("hello world"), "{t}");
    assert!(t.contains("x-origin-trailer: done"), "{t}");
    assert!(t.contains("grpc-status: 0"), "{t}");
    // the connection stays usable
    c.write_all(b"GET /again HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .await
        .expect("send");
    let mut more = Vec::new();
    while !String::from_utf8_lossy(&more).ends_with("hello h2") {
        let n = tokio::time::timeout(STEP, c.read(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&more));
        more.extend_from_slice(&buf[..n]);
    }
}

/// The figures of an h2load run: (succeeded, 2xx, req/s line).
fn h2load_figures(out: &str) -> (u64, u64, String) {
    let num_after = |key: &str| -> u64 {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|r| r.trim().split([' ', ',']).next().map(str::to_owned))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let succeeded = out
        .lines()
        .find(|l| l.starts_with("requests:"))
        .and_then(|l| l.split(',').find(|p| p.contains("succeeded")))
        .and_then(|p| p.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let rate = out
        .lines()
        .find(|l| l.starts_with("finished in"))
        .unwrap_or("")
        .to_string();
    (succeeded, num_after("status codes:"), rate)
}

async fn h2load(url: &str, n: u32, clients: u32, streams: u32) -> String {
    let args = vec![
        s("-n"),
        n.to_string(),
        s("-c"),
        clients.to_string(),
        s("-m"),
        streams.to_string(),
        s(url),
    ];
    let out = run_for("h2load", &args, Duration::from_secs(240)).await;
    let t = text(&out);
    assert!(out.status.success(), "h2load failed: {t}");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_through_proxy_all_2xx_and_upstream_shared() {
    let origin_app = Origin::new();
    let origin = serve(origin_app.clone()).await;
    let proxy = serve(h2c_proxy(ToPeer(h2_peer(origin, 100)))).await;
    let n = 10_000;

    let direct = h2load(&format!("http://{origin}/"), n, 10, 10).await;
    let before = origin_app.connections();
    let through = h2load(&format!("http://{proxy}/"), n, 10, 10).await;
    let upstream_conns = origin_app.connections() - before;

    let (ok_d, xx_d, rate_d) = h2load_figures(&direct);
    let (ok_p, xx_p, rate_p) = h2load_figures(&through);
    println!("h2load -n {n} -c 10 -m 10, straight to the origin: {rate_d}");
    println!("h2load -n {n} -c 10 -m 10, through the proxy:      {rate_p}");
    println!("upstream h2 connections opened by the proxy: {upstream_conns}");
    assert_eq!((ok_d, xx_d), (n as u64, n as u64), "{direct}");
    assert_eq!((ok_p, xx_p), (n as u64, n as u64), "{through}");
    // 100 concurrent requests share connections of up to 100 streams
    assert!(
        (1..=10).contains(&upstream_conns),
        "{upstream_conns} connections"
    );
}
