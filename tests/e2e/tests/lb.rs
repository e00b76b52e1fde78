//! The announcement load balancer against real origins: round robin, Host rewrite,
//! health checks and recovery.

use pingora_e2e::*;
use std::time::Duration;

fn names(proxy: &Proxy, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let resp = get(proxy.port, "/");
            assert_eq!(resp.status, 200, "{resp:?}");
            String::from_utf8_lossy(&resp.body).to_string()
        })
        .collect()
}

#[test]
fn round_robin_splits_between_two_origins() {
    let a = Origin::start("A");
    let b = Origin::start("B");
    let proxy = Proxy::start(announcement_bin!(), &[a.port, b.port]);
    let seen = names(&proxy, 20);
    let count_a = seen.iter().filter(|n| *n == "A").count();
    let count_b = seen.iter().filter(|n| *n == "B").count();
    assert_eq!(count_a + count_b, 20, "{seen:?}");
    // strict alternation gives 10/10; allow a little slack for health-check timing
    assert!(count_a.abs_diff(count_b) <= 2, "uneven split: {seen:?}");
}

#[test]
fn host_header_is_rewritten_for_the_origin() {
    let a = Origin::start("A");
    let proxy = Proxy::start(announcement_bin!(), &[a.port]);
    let resp = Conn::connect(proxy.port)
        .request("GET", "/echo", &[("X-Trace", "1")], Body::Empty)
        .expect("request");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-seen-host"), Some("one.one.one.one"));
    assert_eq!(resp.header("x-origin-name"), Some("A"));
}

#[test]
fn health_check_takes_a_dead_backend_out() {
    let a = Origin::start("A");
    let mut b = Some(Origin::start("B"));
    let b_port = b.as_ref().map(|o| o.port).unwrap_or_default();
    let proxy = Proxy::start(announcement_bin!(), &[a.port, b_port]);
    assert!(names(&proxy, 4).iter().any(|n| n == "B"));

    b.take(); // kill origin B
              // the check runs every second: after a few seconds every request must reach A
    let healthy = wait_until(Duration::from_secs(10), || {
        (0..6).all(|_| {
            let resp = get(proxy.port, "/");
            resp.status == 200 && resp.body == b"A"
        })
    });
    assert!(
        healthy,
        "requests still failing after the health check interval"
    );
    let seen = names(&proxy, 10);
    assert!(seen.iter().all(|n| n == "A"), "{seen:?}");
}

#[test]
fn all_upstreams_down_gives_5xx_then_recovers() {
    let a = Origin::start("A");
    let b = Origin::start("B");
    let (port_a, port_b) = (a.port, b.port);
    let proxy = Proxy::start(announcement_bin!(), &[port_a, port_b]);
    assert_eq!(get(proxy.port, "/").status, 200);

    drop(a);
    drop(b);
    for _ in 0..4 {
        let status = get(proxy.port, "/").status;
        assert!(status == 502 || status == 503, "status {status}");
    }
    // after the health check marks both down the answer is still an error, not a hang
    std::thread::sleep(Duration::from_millis(2500));
    let status = get(proxy.port, "/").status;
    assert!(status == 502 || status == 503, "status {status}");

    // origins come back on the same ports
    let _a = Origin::start_on("A", port_a);
    let _b = Origin::start_on("B", port_b);
    let recovered = wait_until(Duration::from_secs(10), || {
        get(proxy.port, "/").status == 200
    });
    assert!(recovered, "proxy did not recover after origins returned");
}
