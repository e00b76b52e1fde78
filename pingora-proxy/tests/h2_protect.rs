//! The protections of downstream HTTP/2 connections, probed with hand-made frames: the
//! concurrent stream limit, the header list limit, CONTINUATION floods and rapid reset
//! (CVE-2023-44487), each configured through `HttpServerOptions::h2_limits`, and malformed
//! requests (RFC 9113 §8.2-8.3), which reset only their own stream.

#[path = "h2/harness.rs"]
mod harness;

use harness::*;
use pingora_core::apps::HttpServerOptions;
use pingora_core::protocols::http::v2::H2Limits;
use pingora_core::server::configuration::ServerConf;
use pingora_proxy::http_proxy;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// PROTOCOL_ERROR, REFUSED_STREAM and ENHANCE_YOUR_CALM error codes.
const PROTOCOL_ERROR: u64 = 1;
const REFUSED_STREAM: u64 = 7;
const ENHANCE_YOUR_CALM: u64 = 11;

async fn proxy_with(limits: H2Limits) -> std::net::SocketAddr {
    let origin = serve(Origin::new()).await;
    let conf = Arc::new(ServerConf::default());
    let mut proxy = http_proxy(&conf, ToPeer(h1_peer(origin)));
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    options.h2_limits = limits;
    proxy.server_options = Some(options);
    serve(Arc::new(proxy)).await
}

fn limits() -> H2Limits {
    H2Limits {
        max_concurrent_streams: 7,
        max_header_list_size: 16 * 1024,
        // leave the rapid-reset decision to our own per-window limit
        max_pending_accept_reset_streams: 100_000,
        max_resets_per_window: 100,
        reset_window: Duration::from_secs(5),
        ..H2Limits::default()
    }
}

async fn probe(addr: std::net::SocketAddr, mode: &str, n: usize) -> Value {
    let args = vec![addr.port().to_string(), mode.to_string(), n.to_string()];
    let out = run_py("raw_frames.py", &args, STEP).await;
    assert!(out.status.success(), "raw_frames.py failed: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("json report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_are_limited() {
    let proxy = proxy_with(limits()).await;
    let r = probe(proxy, "streams", 10).await;
    // SETTINGS_MAX_CONCURRENT_STREAMS (0x3) is advertised
    assert_eq!(r["settings"]["3"], 7, "{r}");
    let refused = r["resets"]
        .as_object()
        .expect("resets")
        .values()
        .filter(|c| c.as_u64() == Some(REFUSED_STREAM))
        .count();
    assert_eq!(refused, 3, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_list_size_is_limited() {
    let proxy = proxy_with(limits()).await;
    let small = probe(proxy, "bigheader", 1000).await;
    assert_eq!(small["status"]["1"], 200, "{small}");
    let big = probe(proxy, "bigheader", 40_000).await;
    assert_eq!(big["settings"]["6"], 16 * 1024, "{big}");
    assert_eq!(big["status"]["1"], 431, "{big}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_is_cut_off() {
    let proxy = proxy_with(limits()).await;
    // 4000 frames of 16 KB (64 MB) if nobody stops it
    let r = probe(proxy, "continuation", 4000).await;
    let sent = r["sent"].as_u64().unwrap_or(0);
    assert!(
        r["goaway"].is_u64() || r["closed"] == true,
        "connection must be ended: {r}"
    );
    assert!(sent < 4000, "the whole flood was taken: {r}");
    // the proxy still serves
    let ok = probe(proxy, "bigheader", 10).await;
    assert_eq!(ok["status"]["1"], 200, "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_reset_only_their_streams() {
    let proxy = proxy_with(limits()).await;
    let r = probe(proxy, "malformed", 0).await;
    // upper-case name, body past its content-length, Host against :authority
    for sid in ["1", "3", "5"] {
        assert_eq!(r["resets"][sid], PROTOCOL_ERROR, "stream {sid}: {r}");
        assert!(r["status"].get(sid).is_none(), "stream {sid} answered: {r}");
    }
    // the connection goes on serving
    assert_eq!(r["status"]["7"], 200, "{r}");
    assert!(r["goaway"].is_null(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_gets_goaway_while_others_are_served() {
    let proxy = proxy_with(limits()).await;
    let attack = tokio::spawn(probe(proxy, "rapid", 2000));
    // other clients keep being served during and after the attack
    for _ in 0..5 {
        let ok = probe(proxy, "bigheader", 10).await;
        assert_eq!(ok["status"]["1"], 200, "{ok}");
    }
    let r = attack.await.expect("attack task");
    assert_eq!(r["goaway"], ENHANCE_YOUR_CALM, "{r}");
    // and the connection is closed after it (how many frames the client got out before it
    // read the GOAWAY depends on scheduling)
    assert_eq!(r["closed"], true, "{r}");
    let ok = probe(proxy, "bigheader", 10).await;
    assert_eq!(ok["status"]["1"], 200, "{ok}");

    // with the check turned off the same client is not sent away, and its
    // connection still serves a normal request afterwards
    let lenient = proxy_with(H2Limits {
        max_resets_per_window: 0,
        ..limits()
    })
    .await;
    let r = probe(lenient, "rapid", 300).await;
    assert!(r["goaway"].is_null(), "{r}");
    let after = r["after_sid"]
        .as_u64()
        .expect("normal request sent")
        .to_string();
    assert_eq!(r["status"][&after], 200, "{r}");
}
