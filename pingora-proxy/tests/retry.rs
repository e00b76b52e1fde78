//! End-to-end tests of upstream failures: connect errors, retries, body replay.

mod common;

use common::test_proxy::*;
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_is_502() {
    let refused = refused_port();
    let (proxy, log) = TestProxy::new(vec![refused.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/").await;
    assert_eq!(r.status, 502);
    let logged = wait_logged(&log, 1).await;
    assert_eq!(logged.len(), 1);
    assert!(logged[0].contains(&"fail_to_connect"));
    assert_eq!(
        logged[0].iter().filter(|p| **p == "upstream_peer").count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_refused_connect() {
    let origin = Origin::start().await;
    let refused = refused_port();
    let (mut proxy, log) = TestProxy::new(vec![refused.addr, origin.addr]);
    proxy.retry_connect = true;
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    let logged = wait_logged(&log, 1).await;
    assert_eq!(logged.len(), 1);
    let p = &logged[0];
    assert_eq!(p.iter().filter(|x| **x == "upstream_peer").count(), 2);
    let fail = p
        .iter()
        .position(|x| *x == "fail_to_connect")
        .expect("failed once");
    let second_peer = p.iter().rposition(|x| *x == "upstream_peer").expect("peer");
    assert!(
        fail < second_peer,
        "upstream_peer is asked again after the failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded_by_max_retries() {
    let refused = refused_port();
    let (mut proxy, log) = TestProxy::new(vec![refused.addr]);
    proxy.retry_connect = true;
    let conf = pingora_core::server::configuration::ServerConf {
        max_retries: 3,
        ..Default::default()
    };
    let addr = start_proxy_with_conf(proxy, conf).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/").await;
    assert_eq!(r.status, 502);
    let logged = wait_logged(&log, 1).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(
        logged[0].iter().filter(|p| **p == "upstream_peer").count(),
        3
    );
    assert_eq!(logged[0].iter().filter(|p| **p == "logging").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_pooled_connection_is_retried_with_body() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/close").await;
    assert_eq!(r.body, b"bye");
    // Let the origin's close reach the pooled connection.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let body = pattern(1000);
    c.send_raw(
        format!(
            "POST /echo-info HTTP/1.1\r\nHost: client.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    c.send_raw(&body).await;
    let r = c.read_resp(false).await.expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        format!("{} {}", body.len(), fnv(&body))
    );
    assert_eq!(origin.connections(), 2);
    let logged = wait_logged(&log, 2).await;
    assert!(!logged[1].contains(&"error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_proxy_error_replays_body() {
    let origin = Origin::start().await;
    let (mut proxy, log) = TestProxy::new(vec![dropping_origin(10_000).await, origin.addr]);
    proxy.retry_proxy_errors = true;
    let addr = start_proxy(proxy).await;
    // Part of it is already read (and buffered) when the first upstream drops.
    let body = pattern(40_000);
    let r = post_echo(addr, &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        format!("{} {}", body.len(), fnv(&body)),
        "the second upstream gets the whole body"
    );
    let logged = wait_logged(&log, 1).await;
    assert!(logged[0].contains(&"error_while_proxy"));
    assert_eq!(
        logged[0].iter().filter(|p| **p == "upstream_peer").count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_once_body_outgrew_retry_buffer() {
    let origin = Origin::start().await;
    // Fails only after far more than the retry buffer (64 KiB) went through.
    let (mut proxy, log) = TestProxy::new(vec![dropping_origin(1024 * 1024).await, origin.addr]);
    proxy.retry_proxy_errors = true;
    let addr = start_proxy(proxy).await;
    // Far beyond the session's retry buffer: the body cannot be replayed.
    let body = pattern(4 * 1024 * 1024);
    let mut c = Client::connect(addr).await;
    c.send_raw(
        format!(
            "POST /echo-info HTTP/1.1\r\nHost: client.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    let Client { mut rd, mut wr } = c;
    let upload = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = wr.write_all(&body).await;
    });
    if let Some(head) = tokio::time::timeout(STEP, read_head(&mut rd))
        .await
        .expect("in time")
    {
        assert_eq!(head.first.1, "502");
    }
    upload.abort();
    let logged = wait_logged(&log, 1).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(
        logged[0].iter().filter(|p| **p == "upstream_peer").count(),
        1
    );
    assert!(
        origin.seen().is_empty(),
        "the partial body never reaches another upstream"
    );
}
