//! HTTP health checks against a tiny HTTP/1.1 responder on 127.0.0.1.

mod common;

use common::{backend, closed_port, http_responder, silent_listener};
use pingora_error::{Error, ErrorType};
use pingora_http::ResponseHeader;
use pingora_load_balancing::health_check::{HealthCheck, HttpHealthCheck};
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::LoadBalancer;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::timeout;

#[tokio::test]
async fn http_check_status() {
    let (ok_addr, _, ok_task) = http_responder(200).await;
    let (bad_addr, _, bad_task) = http_responder(500).await;
    let check = HttpHealthCheck::new("localhost", false);
    check.check(&backend(ok_addr)).await.expect("200 passes");
    let err = check
        .check(&backend(bad_addr))
        .await
        .expect_err("500 fails");
    assert_eq!(
        *err.etype(),
        ErrorType::CustomCode("non 200 code", 500),
        "{err}"
    );
    let closed = closed_port();
    check
        .check(&backend(closed.addr))
        .await
        .expect_err("nothing listening");

    let mut lenient = HttpHealthCheck::new("localhost", false);
    lenient.validator = Some(Box::new(|resp: &ResponseHeader| {
        if resp.status.as_u16() == 500 {
            Ok(())
        } else {
            Error::e_explain(ErrorType::InternalError, "expected a 500")
        }
    }));
    lenient
        .check(&backend(bad_addr))
        .await
        .expect("validator accepts 500");
    lenient
        .check(&backend(ok_addr))
        .await
        .expect_err("validator rejects 200");
    ok_task.abort();
    bad_task.abort();
}

#[tokio::test]
async fn http_check_port_override_and_reuse() {
    let (addr, connections, task) = http_responder(200).await;
    let mut check = HttpHealthCheck::new("localhost", false);
    check.port_override = Some(addr.port());
    let closed = closed_port();
    let elsewhere = backend(closed.addr);
    check
        .check(&elsewhere)
        .await
        .expect("checked on the override port");
    check.check(&elsewhere).await.expect("checked again");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        2,
        "fresh connection per check"
    );

    check.reuse_connection = true;
    check.check(&elsewhere).await.expect("third check");
    check.check(&elsewhere).await.expect("fourth check reuses");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        3,
        "kept connection reused"
    );
    task.abort();
}

#[tokio::test]
async fn http_check_times_out_on_silent_backend() {
    let (addr, task) = silent_listener().await;
    let mut check = HttpHealthCheck::new("localhost", false);
    check.peer_template.options.read_timeout = Some(Duration::from_millis(200));
    let result = timeout(Duration::from_secs(5), check.check(&backend(addr)))
        .await
        .expect("the check's own timeout fires first");
    assert!(result.is_err());
    task.abort();
}

#[tokio::test]
async fn http_thresholds_through_load_balancer() {
    let (ok_addr, _, ok_task) = http_responder(200).await;
    let (bad_addr, _, bad_task) = http_responder(503).await;
    let mut check = HttpHealthCheck::new("localhost", false);
    check.consecutive_failure = 3;
    let mut lb: LoadBalancer<RoundRobin> =
        LoadBalancer::try_from_iter([ok_addr, bad_addr]).expect("literal");
    lb.set_health_check(Box::new(check));
    for round in 0..2 {
        lb.backends().run_health_check(true).await;
        assert!(lb.backends().ready(&backend(bad_addr)), "round {round}");
    }
    lb.backends().run_health_check(true).await;
    assert!(!lb.backends().ready(&backend(bad_addr)));
    assert!(lb.backends().ready(&backend(ok_addr)));
    for _ in 0..10 {
        assert_eq!(lb.select(b"", 8), Some(backend(ok_addr)));
    }
    ok_task.abort();
    bad_task.abort();
}

#[test]
fn invalid_host_does_not_panic() {
    let check = HttpHealthCheck::new("bad\r\nhost", false);
    assert!(check.req.headers.get("Host").is_none());
    let check = HttpHealthCheck::new("example.org", true);
    assert_eq!(
        check.req.headers.get("Host").map(|v| v.as_bytes()),
        Some(&b"example.org"[..])
    );
    assert_eq!(check.peer_template.sni, "example.org");
}
