//! Large and chunked bodies must cross the proxy byte-exact, in both directions.

use pingora_e2e::*;

fn setup() -> (Origin, Proxy) {
    let origin = Origin::start("A");
    let proxy = Proxy::start(announcement_bin!(), &[origin.port]);
    (origin, proxy)
}

/// POST `sent` (encoded as `body`) to the origin's `/sink` and check the origin saw exactly
/// those bytes.
fn assert_sink_receives(port: u16, sent: &[u8], body: Body) {
    let resp = Conn::connect(port)
        .request("POST", "/sink", &[], body)
        .expect("request");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("x-body-len"),
        Some(sent.len().to_string().as_str())
    );
    assert_eq!(
        resp.header("x-body-sha256"),
        Some(sha256_hex(sent).as_str())
    );
}

#[test]
fn five_mib_request_body_arrives_intact() {
    let (_origin, proxy) = setup();
    let body = payload(5 * 1024 * 1024, 7);
    assert_sink_receives(proxy.port, &body, Body::Fixed(&body));
}

#[test]
fn chunked_request_body_arrives_intact() {
    let (_origin, proxy) = setup();
    let body = payload(3 * 1024 * 1024 + 123, 11);
    assert_sink_receives(proxy.port, &body, Body::Chunked(&body, 7919));
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
