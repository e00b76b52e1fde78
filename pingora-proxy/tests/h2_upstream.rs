//! Upstream HTTP/2 against an independent origin (python `h2`): shared connections within
//! the server's SETTINGS_MAX_CONCURRENT_STREAMS and the peer's `max_h2_streams`, GOAWAY
//! retiring a connection with the unprocessed requests retried, PINGs at
//! `h2_ping_interval`, and HTTP/1.1 when HTTP/2 is only preferred on plaintext.

#[path = "h2/harness.rs"]
mod harness;

use harness::*;
use std::net::SocketAddr;
use std::time::Duration;

fn s(v: &str) -> String {
    v.to_string()
}

/// `h2load` through `proxy` (h2c): returns how many requests got a 2xx.
async fn load(proxy: SocketAddr, n: u32, streams: u32) -> u64 {
    let args = vec![
        s("-n"),
        n.to_string(),
        s("-c"),
        s("1"),
        s("-m"),
        streams.to_string(),
        format!("http://{proxy}/"),
    ];
    let out = run_for("h2load", &args, Duration::from_secs(120)).await;
    let t = text(&out);
    t.lines()
        .find_map(|l| l.trim().strip_prefix("status codes:"))
        .and_then(|r| r.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no figures: {t}"))
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let args = vec![
        s("-sS"),
        s("--max-time"),
        s("20"),
        s("--http2-prior-knowledge"),
        format!("http://{addr}{path}"),
    ];
    let out = run_for("curl", &args, STEP).await;
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stat(body: &str, key: &str) -> u64 {
    body.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} missing in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_retires_connection_and_unprocessed_requests_are_retried() {
    let (_origin_guard, origin) = python_origin(&["--goaway-after", "2", "--delay", "0.05"]);
    let proxy = serve(h2c_proxy(ToPeer(h2_peer(origin, 10)))).await;
    // 10 requests at a time share one upstream connection, which answers two and sends
    // GOAWAY: the other eight were not processed and must be retried elsewhere
    assert_eq!(load(proxy, 30, 10).await, 30);
    let stats = get(origin, "/stats").await;
    assert!(stat(&stats, "conns") >= 15, "{stats}");
    assert!(
        stat(&stats, "max_concurrent") >= 2,
        "requests were not multiplexed: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_per_connection_are_capped() {
    // the server allows 2 concurrent streams, the peer 10: the server wins
    let (_g1, origin) = python_origin(&["--max-streams", "2", "--delay", "0.1"]);
    let proxy = serve(h2c_proxy(ToPeer(h2_peer(origin, 10)))).await;
    assert_eq!(load(proxy, 40, 20).await, 40);
    let stats = get(origin, "/stats").await;
    assert_eq!(stat(&stats, "max_concurrent"), 2, "{stats}");

    // the server allows 100, the peer 3: the peer wins, and connections are shared
    let (_g2, origin) = python_origin(&["--max-streams", "100", "--delay", "0.1"]);
    let proxy = serve(h2c_proxy(ToPeer(h2_peer(origin, 3)))).await;
    assert_eq!(load(proxy, 40, 20).await, 40);
    let stats = get(origin, "/stats").await;
    assert_eq!(stat(&stats, "max_concurrent"), 3, "{stats}");
    // 20 concurrent requests need about 7 connections of 3 streams, not 20
    assert!(stat(&stats, "conns") <= 12, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_interval_pings_the_upstream() {
    let (_g, origin) = python_origin(&[]);
    let mut peer = h2_peer(origin, 10);
    peer.options.h2_ping_interval = Some(Duration::from_millis(100));
    let proxy = serve(h2c_proxy(ToPeer(peer))).await;
    get(proxy, "/first").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    // the same pooled connection answers, with the PINGs it got meanwhile
    let pings = stat(&get(proxy, "/pings").await, "pings");
    // one PING when the connection opened (to learn the server's SETTINGS), then about
    // one per 100 ms
    assert!(pings >= 4, "{pings} pings");

    let (_g, origin) = python_origin(&[]);
    let proxy = serve(h2c_proxy(ToPeer(h2_peer(origin, 10)))).await;
    get(proxy, "/first").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stat(&get(proxy, "/pings").await, "pings"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_h2_preferred_uses_h1_and_h2_required_uses_h2c() {
    let origin = serve(Origin::new()).await;
    let mut preferred = h1_peer(origin);
    preferred.options.set_http_version(2, 1);
    let proxy = serve(h2c_proxy(ToPeer(preferred))).await;
    let args = vec![s("-sS"), s("-D-"), format!("http://{proxy}/")];
    let out = text(&run_for("curl", &args, STEP).await);
    assert!(out.contains("x-origin-proto: h1"), "{out}");

    let proxy = serve(h2c_proxy(ToPeer(h2_peer(origin, 1)))).await;
    let out = text(&run_for("curl", &args_for(proxy), STEP).await);
    assert!(out.contains("x-origin-proto: h2"), "{out}");
}

fn args_for(proxy: SocketAddr) -> Vec<String> {
    vec![s("-sS"), s("-D-"), format!("http://{proxy}/")]
}
