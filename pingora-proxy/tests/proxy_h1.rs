//! End-to-end tests of the HTTP/1 proxy engine over real loopback sockets: passthrough,
//! filters, bodies both ways, keep-alive and error statuses.

mod common;

use common::test_proxy::*;
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_passthrough_and_phase_order() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/hello?q=1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    assert_eq!(r.head.get("x-proxied"), Some("1"));
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/hello?q=1");
    assert_eq!(seen[0].head.get("host"), Some("client.test"));

    let logged = wait_logged(&log, 1).await;
    assert_eq!(logged.len(), 1, "logging runs once per request");
    let phases: Vec<_> = logged[0]
        .iter()
        .copied()
        .filter(|p| *p != "request_body_filter(end)")
        .collect();
    assert_eq!(
        phases,
        vec![
            "early_request_filter",
            "request_filter",
            "proxy_upstream_filter",
            "upstream_peer",
            "connected_to_upstream",
            "upstream_request_filter",
            "upstream_response_filter",
            "response_filter",
            "upstream_response_body_filter(end)",
            "response_body_filter(end)",
            "logging",
        ]
    );
    let pos = |p: &str| logged[0].iter().position(|x| *x == p);
    let body_end = pos("request_body_filter(end)").expect("request body end seen");
    assert!(body_end > pos("upstream_request_filter").expect("filter ran"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_rewritten_by_upstream_request_filter() {
    let origin = Origin::start().await;
    let (proxy, _log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    c.send_raw(b"GET /h HTTP/1.1\r\nHost: client.test\r\nX-Rewrite-Host: 1\r\nConnection: keep-alive, X-Drop\r\nX-Drop: secret\r\n\r\n")
        .await;
    let r = c.read_resp(false).await.expect("response");
    assert_eq!(r.status, 200);
    let seen = origin.seen();
    assert_eq!(seen[0].head.get("host"), Some("rewritten.test"));
    assert_eq!(
        seen[0].head.get("x-drop"),
        None,
        "connection options are hop-by-hop"
    );
    assert_eq!(seen[0].head.get("x-rewrite-host"), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_filter_answers_403() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/forbidden").await;
    assert_eq!(r.status, 403);
    let logged = wait_logged(&log, 1).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(
        logged[0],
        vec!["early_request_filter", "request_filter", "logging"]
    );
    assert_eq!(origin.connections(), 0, "the origin is never contacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_upstream_gets_502() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/declined").await;
    assert_eq!(r.status, 502);
    assert_eq!(wait_logged(&log, 1).await.len(), 1);
    assert_eq!(origin.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_content_length_upload_is_byte_exact() {
    let origin = Origin::start().await;
    let (proxy, _log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let body = pattern(5 * 1024 * 1024);
    let mut c = Client::connect(addr).await;
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
    let seen = origin.seen();
    assert!(!seen[0].chunked);
    assert_eq!(seen[0].body_len, body.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_is_byte_exact() {
    let origin = Origin::start().await;
    let (proxy, _log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let body = pattern(300_007);
    let mut c = Client::connect(addr).await;
    c.send_raw(
        b"POST /echo-info HTTP/1.1\r\nHost: client.test\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    for piece in body.chunks(65_536) {
        c.send_raw(format!("{:x}\r\n", piece.len()).as_bytes())
            .await;
        c.send_raw(piece).await;
        c.send_raw(b"\r\n").await;
    }
    c.send_raw(b"0\r\n\r\n").await;
    let r = c.read_resp(false).await.expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        format!("{} {}", body.len(), fnv(&body))
    );
    let seen = origin.seen();
    assert!(seen[0].chunked, "a chunked request stays chunked upstream");
    assert_eq!(seen[0].body_hash, fnv(&body));
    // The client connection is still usable.
    let r = c.get("/").await;
    assert_eq!(r.body, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_responses_are_byte_exact() {
    let origin = Origin::start().await;
    let (proxy, _log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let n = 20 * 1024 * 1024;
    let mut c = Client::connect(addr).await;
    let r = c.get(&format!("/big/{n}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), n);
    assert!(r.body == pattern(n), "content-length body byte-exact");

    let r = c.get("/chunked/1000003").await;
    assert_eq!(r.status, 200);
    assert!(r.body == pattern(1_000_003), "chunked body byte-exact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_reuses_upstream_connection() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    for _ in 0..5 {
        let r = c.get("/").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello");
    }
    assert_eq!(origin.connections(), 1, "one pooled upstream connection");
    let logged = wait_logged(&log, 5).await;
    assert_eq!(logged.len(), 5);
    assert!(logged
        .iter()
        .all(|p| p.iter().filter(|x| **x == "logging").count() == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_timeout_is_504() {
    let origin = Origin::start().await;
    let (mut proxy, log) = TestProxy::new(vec![origin.addr]);
    proxy.read_timeout = Some(Duration::from_millis(300));
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    let r = c.get("/slow").await;
    assert_eq!(r.status, 504);
    assert_eq!(wait_logged(&log, 1).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_is_400_and_closed() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    c.send_raw(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header Line\r\n\r\n")
        .await;
    let r = c.read_resp(false).await.expect("an error response");
    assert_eq!(r.status, 400);
    assert!(c.closed().await);
    assert_eq!(origin.connections(), 0);
    assert!(
        log.lock().expect("log lock").is_empty(),
        "no request, no logging"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_response_during_large_upload() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let body = pattern(8 * 1024 * 1024);
    let mut c = Client::connect(addr).await;
    c.send_raw(
        format!(
            "POST /early HTTP/1.1\r\nHost: client.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    // Upload and read concurrently: the response comes before the upload ends.
    let Client { rd, mut wr } = c;
    let upload = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = wr.write_all(&body).await;
        wr
    });
    let mut rd = rd;
    let head = tokio::time::timeout(STEP, read_head(&mut rd))
        .await
        .expect("head in time")
        .expect("a response");
    assert_eq!(head.first.1, "200");
    let got = read_body(&mut rd, &head, false).await;
    assert_eq!(got, b"early");
    tokio::time::timeout(STEP, upload)
        .await
        .expect("upload ends")
        .expect("upload task");
    let logged = wait_logged(&log, 1).await;
    assert_eq!(logged.len(), 1);
    // The origin received the whole upload after answering.
    for _ in 0..200 {
        if !origin.seen().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(origin.seen()[0].body_len, 8 * 1024 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_going_away_ends_the_request() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    c.send_raw(b"GET /slow HTTP/1.1\r\nHost: client.test\r\n\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(c);
    let started = std::time::Instant::now();
    let logged = wait_logged(&log, 1).await;
    assert_eq!(logged.len(), 1, "logging runs once");
    assert!(logged[0].contains(&"error"));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the proxy stops waiting for the upstream when the client leaves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_client_and_head_request() {
    let origin = Origin::start().await;
    let (proxy, _log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;

    let mut c = Client::connect(addr).await;
    c.send_raw(b"HEAD /big/100 HTTP/1.1\r\nHost: client.test\r\n\r\n")
        .await;
    let r = c.read_resp(true).await.expect("head response");
    assert_eq!(r.status, 200);
    assert_eq!(r.head.get("content-length"), Some("100"));
    // The connection is still in sync after the bodiless response.
    let r = c.get("/").await;
    assert_eq!(r.body, b"hello");

    let mut c = Client::connect(addr).await;
    c.send_raw(b"GET /chunked/5000 HTTP/1.0\r\nHost: client.test\r\n\r\n")
        .await;
    let r = c.read_resp(false).await.expect("response");
    assert_eq!(r.status, 200);
    let body =
        if r.head.get("content-length").is_none() && r.head.get("transfer-encoding").is_none() {
            // close-delimited for the HTTP/1.0 client: read_resp only reads it with
            // `Connection: close`, so read the rest here.
            let mut rest = r.body;
            let mut tail = Vec::new();
            use tokio::io::AsyncReadExt;
            let Client { mut rd, .. } = c;
            tokio::time::timeout(STEP, rd.read_to_end(&mut tail))
                .await
                .expect("eof")
                .expect("read");
            rest.extend_from_slice(&tail);
            rest
        } else {
            r.body
        };
    assert!(body == pattern(5000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_closes_idle_keepalive_connections() {
    use pingora_core::apps::HttpServerApp;
    use pingora_core::protocols::http::ServerSession;
    use pingora_core::protocols::l4::stream::Stream as L4Stream;
    use std::sync::Arc;

    let origin = Origin::start().await;
    let (proxy, _log) = TestProxy::new(vec![origin.addr]);
    let conf = Arc::new(pingora_core::server::configuration::ServerConf::default());
    let app = Arc::new(pingora_proxy::http_proxy(&conf, proxy));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = app.clone();
    let server = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.expect("accept");
        let (_tx, rx) = tokio::sync::watch::channel(false);
        // a custom accept loop, driving the HTTP app the way Pingora 0.8 does
        let stream: pingora_core::protocols::Stream = Box::new(L4Stream::from(sock));
        let mut session = ServerSession::new_http1(stream);
        let mut served_requests = 0;
        while let Some(reused) = served.process_new_http(session, &rx).await {
            served_requests += 1;
            let (stream, settings) = reused.consume();
            session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
        }
        served_requests
    });

    let mut c = Client::connect(addr).await;
    assert_eq!(c.get("/").await.body, b"hello");
    // The connection now idles waiting for its next request; cleanup must end it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.http_cleanup().await;
    assert!(
        c.closed().await,
        "idle keep-alive connection closed on cleanup"
    );
    let served = tokio::time::timeout(STEP, server)
        .await
        .expect("connection task ends")
        .expect("task");
    assert_eq!(served, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_get_414_and_431() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;

    let mut c = Client::connect(addr).await;
    let long_path = format!("/{}", "a".repeat(20_000));
    c.send_raw(format!("GET {long_path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .await;
    let r = c.read_resp(false).await.expect("an error response");
    assert_eq!(r.status, 414);
    assert!(c.closed().await);

    let mut c = Client::connect(addr).await;
    let mut req = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..300 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    c.send_raw(req.as_bytes()).await;
    let r = c.read_resp(false).await.expect("an error response");
    assert_eq!(r.status, 431);
    assert!(c.closed().await);

    assert_eq!(origin.connections(), 0);
    assert!(log.lock().expect("log lock").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failing_mid_body_cuts_the_client_off() {
    use tokio::io::AsyncReadExt;
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    c.send_raw(b"GET /truncated HTTP/1.1\r\nHost: client.test\r\n\r\n")
        .await;
    let head = tokio::time::timeout(STEP, read_head(&mut c.rd))
        .await
        .expect("head in time")
        .expect("a response head");
    assert_eq!(head.first.1, "200");
    assert_eq!(head.get("content-length"), Some("100"));
    let mut rest = Vec::new();
    tokio::time::timeout(STEP, c.rd.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .expect("read");
    assert!(
        rest.len() < 100,
        "no error page is appended to a started response"
    );
    assert!(pattern(50).starts_with(&rest));
    let logged = wait_logged(&log, 1).await;
    assert_eq!(logged.len(), 1);
    assert!(logged[0].contains(&"error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_pool_size_comes_from_server_conf() {
    let origin = Origin::start().await;
    let (proxy, _log) = TestProxy::new(vec![origin.addr]);
    let conf = pingora_core::server::configuration::ServerConf {
        upstream_keepalive_pool_size: 0,
        ..Default::default()
    };
    let addr = start_proxy_with_conf(proxy, conf).await;
    let mut c = Client::connect(addr).await;
    for _ in 0..3 {
        assert_eq!(c.get("/").await.body, b"hello");
    }
    assert_eq!(origin.connections(), 3, "no pooling with a pool of size 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_filters_can_rewrite_the_response() {
    let origin = Origin::start().await;
    let (mut proxy, _log) = TestProxy::new(vec![origin.addr]);
    proxy.uppercase = true;
    let addr = start_proxy(proxy).await;
    let mut c = Client::connect(addr).await;
    for _ in 0..2 {
        let r = c.get("/").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"HELLO");
        assert_eq!(r.head.get("content-length"), None);
        assert_eq!(r.head.get("transfer-encoding"), Some("chunked"));
    }
    assert_eq!(origin.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let addr = start_proxy(proxy).await;
    let mut tasks = Vec::new();
    for i in 0..32usize {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let n = 100_000 + i;
            let r = c.get(&format!("/big/{n}")).await;
            assert!(r.body == pattern(n));
            let body = pattern(70_000 + i);
            c.send_raw(
                format!(
                    "POST /echo-info HTTP/1.1\r\nHost: c\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
            c.send_raw(&body).await;
            let r = c.read_resp(false).await.expect("response");
            assert_eq!(
                String::from_utf8_lossy(&r.body),
                format!("{} {}", body.len(), fnv(&body))
            );
        }));
    }
    for t in tasks {
        tokio::time::timeout(STEP, t)
            .await
            .expect("client done in time")
            .expect("client task");
    }
    assert_eq!(wait_logged(&log, 64).await.len(), 64);
}
