//! Each example, run as its own process against a Python origin, does what its header says.

mod common;

use common::example;
use pingora_e2e::{free_port, get, wait_until, Body, Conn, Origin, Proxy};
use std::time::Duration;

#[test]
fn load_balancer_alternates_and_rewrites_host() {
    let a = Origin::start("A");
    let b = Origin::start("B");
    let lb = Proxy::start_with_env(
        &example("load_balancer"),
        &[a.port, b.port],
        &[("UPSTREAM_HOST", "backend.test")],
    );
    let names: Vec<Vec<u8>> = (0..4).map(|_| get(lb.port, "/").body).collect();
    // strict alternation between the two origins, whichever comes first
    assert_ne!(names[0], names[1], "{names:?}");
    assert_eq!(names[0], names[2], "{names:?}");
    assert_eq!(names[1], names[3], "{names:?}");
    assert!(names.iter().all(|n| n == b"A" || n == b"B"), "{names:?}");
    let echo = get(lb.port, "/echo");
    assert_eq!(echo.header("x-seen-host"), Some("backend.test"));
}

#[test]
fn gateway_denies_tags_and_counts() {
    let origin = Origin::start("A");
    let metrics_port = free_port().to_string();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let gw = Proxy::start_with_env(
        &example("gateway"),
        &[origin.port],
        &[("API_KEY", "k1"), ("METRICS_LISTEN", metrics_addr.as_str())],
    );
    let (_, before) = origin.stats();
    assert_eq!(get(gw.port, "/").status, 403);
    let wrong = Conn::connect(gw.port)
        .request("GET", "/", &[("X-Api-Key", "nope")], Body::Empty)
        .expect("request");
    assert_eq!(wrong.status, 403);
    let (_, after) = origin.stats();
    // only the two /stats calls themselves reached the origin
    assert_eq!(after, before + 1, "denied requests reached the origin");

    let ok = Conn::connect(gw.port)
        .request("GET", "/", &[("X-Api-Key", "k1")], Body::Empty)
        .expect("request");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, b"A");
    assert_eq!(ok.header("server"), Some("pingora-gateway"));
    // `logging` runs after the response went out, so the counters may lag a moment
    let metrics_port: u16 = metrics_port.parse().expect("port");
    let mut text = String::new();
    let counted = wait_until(Duration::from_secs(5), || {
        text = String::from_utf8_lossy(&get(metrics_port, "/metrics").body).into_owned();
        text.contains(r#"gateway_requests_total{status="403"} 2"#)
            && text.contains(r#"gateway_requests_total{status="200"} 1"#)
    });
    assert!(counted, "{text}");
}

#[test]
fn ctx_numbers_requests_and_routes_beta() {
    let a = Origin::start("A");
    let b = Origin::start("B");
    let proxy = Proxy::start(&example("ctx"), &[a.port, b.port]);
    let first = get(proxy.port, "/");
    let beta = Conn::connect(proxy.port)
        .request("GET", "/", &[("beta", "1")], Body::Empty)
        .expect("request");
    assert_eq!(first.body, b"A");
    assert_eq!(beta.body, b"B");
    assert_eq!(first.header("x-request-number"), Some("1"));
    assert_eq!(beta.header("x-request-number"), Some("2"));
    assert_eq!(beta.header("x-beta"), Some("1"));
}

#[test]
fn modify_response_turns_json_into_yaml() {
    let origin = Origin::start("A");
    let proxy = Proxy::start(&example("modify_response"), &[origin.port]);
    let resp = get(proxy.port, "/json");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/yaml"));
    assert!(resp.header("content-length").is_none());
    assert_eq!(String::from_utf8_lossy(&resp.body), "ok: true\norigin: A\n");
    // non-JSON passes through untouched
    assert_eq!(get(proxy.port, "/").body, b"A");
}

#[test]
fn echo_returns_the_request_body() {
    let server = Proxy::start(&example("echo"), &[]);
    let body = vec![b'x'; 100_000];
    let resp = Conn::connect(server.port)
        .request("POST", "/", &[], Body::Fixed(&body))
        .expect("request");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, body);
}
