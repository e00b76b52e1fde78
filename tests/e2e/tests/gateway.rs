//! A gateway whose request_filter answers 403 before any upstream is contacted.

use pingora_e2e::*;

#[test]
fn request_filter_answers_403_without_touching_the_upstream() {
    let origin = Origin::start("A");
    let proxy = Proxy::start(gateway_bin!(), &[origin.port]);
    let (_, before) = origin.stats();

    let denied = get(proxy.port, "/secret");
    assert_eq!(denied.status, 403);
    let wrong = Conn::connect(proxy.port)
        .request("GET", "/secret", &[("X-Api-Key", "nope")], Body::Empty)
        .expect("request");
    assert_eq!(wrong.status, 403);
    let (_, after) = origin.stats();
    // only the two /stats calls themselves reached the origin
    assert_eq!(after, before + 1, "denied requests reached the origin");

    let allowed = Conn::connect(proxy.port)
        .request("GET", "/", &[("X-Api-Key", "let-me-in")], Body::Empty)
        .expect("request");
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.body, b"A");
    assert_eq!(allowed.header("x-gateway"), Some("e2e"));
}
