//! Large and chunked bodies must cross the proxy byte-exact, in both directions.

use pingora_e2e::*;

fn setup() -> (Origin, Proxy) {
    let origin = Origin::start("A");
    let proxy = Proxy::start(announcement_bin!(), &[origin.port]);
    (origin, proxy)
}

#[test]
fn five_mib_request_body_arrives_intact() {
    let (_origin, proxy) = setup();
    let body = payload(5 * 1024 * 1024, 7);
    let resp = Conn::connect(proxy.port)
        .request("POST", "/sink", &[], Body::Fixed(&body))
        .expect("request");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-body-len"), Some("5242880"));
    assert_eq!(
        resp.header("x-body-sha256"),
        Some(sha256_hex(&body).as_str())
    );
}

#[test]
fn chunked_request_body_arrives_intact() {
    let (_origin, proxy) = setup();
    let body = payload(3 * 1024 * 1024 + 123, 11);
    let resp = Conn::connect(proxy.port)
        .request("POST", "/sink", &[], Body::Chunked(&body, 7919))
        .expect("request");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("x-body-len"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(
        resp.header("x-body-sha256"),
        Some(sha256_hex(&body).as_str())
    );
}

#[test]
fn twenty_mib_response_arrives_intact() {
    let (_origin, proxy) = setup();
    let resp = get(proxy.port, "/size/20971520");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), 20 * 1024 * 1024);
    let expected = resp.header("x-body-sha256").expect("digest header");
    assert_eq!(sha256_hex(&resp.body), expected);
}

#[test]
fn chunked_response_arrives_intact() {
    let (_origin, proxy) = setup();
    let resp = get(proxy.port, "/chunked/1000003?chunk=4093");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), 1_000_003);
    let expected = resp.header("x-body-sha256").expect("digest header");
    assert_eq!(sha256_hex(&resp.body), expected);
}

#[test]
fn echo_round_trips_on_one_keepalive_connection() {
    let (_origin, proxy) = setup();
    let mut conn = Conn::connect(proxy.port);
    for i in 0..5u64 {
        let body = payload(1000 + i as usize * 777, i + 1);
        let resp = conn
            .request("POST", "/echo", &[], Body::Fixed(&body))
            .expect("request");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, body);
    }
}
