//! Graceful (`SIGTERM`) and fast (`SIGINT`) shutdown of real server
//! processes, and `-t`.

mod server_common;
mod server_lifecycle;

use nix::sys::signal::Signal;
use server_common::WAIT;
use server_lifecycle::*;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

#[test]
fn sigterm_serves_the_grace_period_then_drains_in_flight_work() {
    let s = Setup::new("grace_period_seconds: 1\ngraceful_shutdown_timeout_seconds: 5\n");
    let origin = slow_origin(Duration::from_secs(2));
    let marker = s.path("marker").display().to_string();
    let mut server = s.spawn(
        "",
        "term.log",
        &[("CHILD_ORIGIN", origin), ("CHILD_MARKER", marker.clone())],
    );
    s.wait_serving();

    let slow = request_in_background(&s.addr, "/slow");
    std::thread::sleep(Duration::from_millis(300));
    let term_at = Instant::now();
    server.signal(Signal::SIGTERM);

    // during the grace period new connections are still served, normally
    std::thread::sleep(Duration::from_millis(300));
    let r = get_once(&s.addr, "/during-grace").expect("served during the grace period");
    assert_eq!(r.status, 200);
    // not told to close: HTTP/1.1 reuse, which goes unannounced
    assert_eq!(r.header("connection"), None);

    // after it, new connections are refused
    let refused_at = loop {
        match std::net::TcpStream::connect(&s.addr) {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
                break term_at.elapsed();
            }
            Ok(_) => {
                assert!(
                    term_at.elapsed() < Duration::from_secs(4),
                    "still accepting"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    assert!(
        refused_at >= Duration::from_millis(900),
        "refused before the grace period ended: {refused_at:?}"
    );
    assert!(
        UnixStream::connect(&s.uds).is_err(),
        "unix socket still accepting"
    );

    // the request in flight since before SIGTERM completes
    let (r, took) = slow.join().expect("slow client");
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body, b"slow:origin");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(took >= Duration::from_secs(2), "{took:?}");

    let status = server.wait(Duration::from_secs(7));
    let exited = term_at.elapsed();
    assert!(status.success(), "{status}\n{}", s.log("term.log"));
    // grace (1s) + the rest of the slow request; far below the 5s drain limit
    assert!(exited < Duration::from_secs(4), "exit took {exited:?}");
    let seen = std::fs::read_to_string(&marker).expect("background service saw the shutdown");
    assert!(seen.contains("saw shutdown"));
    println!(
        "SIGTERM: refused new connections after {refused_at:?}, in-flight request done in \
         {took:?}, exited {exited:?} after the signal"
    );
}

#[test]
fn sigint_stops_at_once() {
    let s = Setup::new("grace_period_seconds: 30\ngraceful_shutdown_timeout_seconds: 30\n");
    let origin = slow_origin(Duration::from_secs(5));
    let mut server = s.spawn("", "int.log", &[("CHILD_ORIGIN", origin)]);
    s.wait_serving();
    let mut c = std::net::TcpStream::connect(&s.addr).expect("connect");
    c.set_read_timeout(Some(WAIT)).expect("timeout");
    c.write_all(b"GET /slow HTTP/1.1\r\n\r\n").expect("write");
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    server.signal(Signal::SIGINT);
    assert!(server.wait(Duration::from_secs(3)).success());
    assert!(start.elapsed() < Duration::from_secs(2));
    // the request in flight was cut, not answered
    let mut buf = Vec::new();
    let n = c.read_to_end(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf));
}

#[test]
fn test_flag_names_the_problem() {
    let s = Setup::new("");
    let mut ok = s.spawn("-t", "t-ok.log", &[]);
    assert!(ok.wait(WAIT).success(), "{}", s.log("t-ok.log"));

    std::fs::write(&s.conf, "---\nversion: 1\nthreds: 2\n").expect("write");
    let mut bad = s.spawn("-t", "t-key.log", &[]);
    assert!(!bad.wait(WAIT).success());
    let log = s.log("t-key.log");
    assert!(log.contains("threds") && log.contains(&s.conf), "{log}");

    std::fs::write(&s.conf, "---\nversion: 1\nthreads: many\n").expect("write");
    let mut bad = s.spawn("-t", "t-type.log", &[]);
    assert!(!bad.wait(WAIT).success());
    let log = s.log("t-type.log");
    assert!(log.contains("threads"), "{log}");

    std::fs::write(&s.conf, "---\nthreads: 0\n").expect("write");
    let mut bad = s.spawn("-t", "t-zero.log", &[]);
    assert!(!bad.wait(WAIT).success());
    let log = s.log("t-zero.log");
    assert!(log.contains("threads must be greater than 0"), "{log}");
}
