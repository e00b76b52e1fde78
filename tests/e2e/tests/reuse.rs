//! The proxy keeps upstream connections alive and reuses them.

use pingora_e2e::*;

#[test]
fn upstream_connections_are_reused() {
    let origin = Origin::start("A");
    let proxy = Proxy::start(announcement_bin!(), &[origin.port]);
    let (conns_before, _) = origin.stats();

    const N: usize = 50;
    // one keep-alive client connection
    let mut conn = Conn::connect(proxy.port);
    for _ in 0..N {
        let resp = conn.request("GET", "/", &[], Body::Empty).expect("request");
        assert_eq!(resp.status, 200);
    }
    // and a fresh client connection per request: the pool is per upstream, not per client
    for _ in 0..N {
        assert_eq!(get(proxy.port, "/").status, 200);
    }
    let (conns_after, _) = origin.stats();
    // the /stats calls open one connection each; the rest came from the proxy
    let upstream_conns = conns_after - conns_before - 1;
    assert!(
        upstream_conns <= 5,
        "{} requests used {upstream_conns} upstream connections",
        2 * N
    );
}
