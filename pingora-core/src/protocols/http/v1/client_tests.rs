//! Tests of the HTTP/1 client session: request writing, response parsing
//! (all framings, informational responses, no-body statuses), validation of
//! hostile upstreams, keep-alive and timeouts.

use super::*;
use pingora_error::{ErrorSource, RetryType};
use tokio_test::io::Builder;

fn get(path: &str) -> Box<RequestHeader> {
    let mut req = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    req.insert_header("Host", "upstream").unwrap();
    Box::new(req)
}

fn session(mock: tokio_test::io::Mock) -> HttpSession {
    HttpSession::new(Box::new(mock))
}

const GET_REQ: &[u8] = b"GET /p HTTP/1.1\r\nHost: upstream\r\n\r\n";

async fn body(s: &mut HttpSession) -> Vec<u8> {
    let mut out = vec![];
    while let Some(b) = s.read_body_bytes().await.unwrap() {
        out.extend_from_slice(&b);
    }
    out
}

#[tokio::test]
async fn write_request_then_read_content_length() {
    let mock = Builder::new()
        .write(GET_REQ)
        .read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Case: Kept\r\n\r\nhe")
        .read(b"llo")
        .build();
    let mut s = session(mock);
    assert_eq!(
        s.write_request_header(get("/p")).await.unwrap(),
        GET_REQ.len()
    );
    s.finish_body().await.unwrap();
    let n = s.read_response().await.unwrap();
    assert_eq!(n, 52);
    assert_eq!(s.get_status(), Some(StatusCode::OK));
    assert_eq!(s.get_header_bytes("x-case"), b"Kept");
    assert!(!s.is_body_done());
    assert_eq!(body(&mut s).await, b"hello");
    assert!(s.is_body_done() && s.will_keepalive());
    assert!(s.reuse().await.is_some());
}

#[tokio::test]
async fn request_body_framing() {
    let mock = Builder::new()
        .write(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .write(b"3\r\nabc\r\n")
        .write(b"0\r\n\r\n")
        .build();
    let mut s = session(mock);
    let mut req = RequestHeader::build("POST", b"/", None).unwrap();
    req.insert_header("Transfer-Encoding", "chunked").unwrap();
    s.write_request_header(Box::new(req)).await.unwrap();
    assert_eq!(s.write_body(b"abc").await.unwrap(), Some(3));
    s.finish_body().await.unwrap();

    let mut s = session(Builder::new().build());
    let mut req = RequestHeader::build("POST", b"/", None).unwrap();
    req.insert_header("Transfer-Encoding", "chunked").unwrap();
    req.insert_header("Content-Length", "3").unwrap();
    let e = s.write_request_header(Box::new(req)).await.unwrap_err();
    assert_eq!(e.esource(), &ErrorSource::Internal);
}

#[tokio::test]
async fn request_trailers_only_on_chunked_bodies() {
    let mock = Builder::new()
        .write(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .write(b"2\r\nhi\r\n")
        .write(b"0\r\nx-sum: 7\r\n\r\n")
        .build();
    let mut s = session(mock);
    let mut req = RequestHeader::build("POST", b"/", None).unwrap();
    req.insert_header("Transfer-Encoding", "chunked").unwrap();
    s.write_request_header(Box::new(req)).await.unwrap();
    s.write_body(b"hi").await.unwrap();
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-sum", HeaderValue::from_static("7"));
    s.write_trailers(&trailers).await.unwrap();

    // a body with a length ends as it is: its trailers are dropped
    let mock = Builder::new()
        .write(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n")
        .write(b"hi")
        .build();
    let mut s = session(mock);
    let mut req = RequestHeader::build("POST", b"/", None).unwrap();
    req.insert_header("Content-Length", "2").unwrap();
    s.write_request_header(Box::new(req)).await.unwrap();
    s.write_body(b"hi").await.unwrap();
    assert_eq!(s.write_trailers(&trailers).await.unwrap(), Some(2));
}

#[tokio::test]
async fn chunked_response_with_trailers() {
    let mock = Builder::new()
        .read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWi")
        .read(b"ki\r\n0\r\nX-T: 1\r\n\r\n")
        .build();
    let mut s = session(mock);
    s.read_response().await.unwrap();
    assert_eq!(body(&mut s).await, b"Wiki");
    assert_eq!(s.take_trailers().unwrap().get("x-t").unwrap(), "1");
    assert!(s.will_keepalive());
}

#[tokio::test]
async fn close_delimited_response() {
    let mock = Builder::new()
        .read(b"HTTP/1.0 200 OK\r\n\r\nuntil")
        .read(b" close")
        .build();
    let mut s = session(mock);
    s.read_response().await.unwrap();
    assert!(!s.will_keepalive());
    assert_eq!(body(&mut s).await, b"until close");
    assert!(s.reuse().await.is_none());
}

#[tokio::test]
async fn informational_responses() {
    let mock = Builder::new()
        .read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
        .read(b"HTTP/1.1 204 No Content\r\n\r\n")
        .build();
    let mut s = session(mock);
    s.read_response().await.unwrap();
    assert_eq!(s.get_status().unwrap(), 103);
    match s.read_response_task().await.unwrap() {
        HttpTask::Header(h, end) => {
            assert_eq!(h.status, 204);
            assert!(end);
        }
        other => panic!("unexpected {}", other.type_str()),
    }
    assert!(matches!(
        s.read_response_task().await.unwrap(),
        HttpTask::Done
    ));
}

#[tokio::test]
async fn no_body_statuses_and_head() {
    for (method, status) in [("HEAD", 200), ("GET", 204), ("GET", 304)] {
        let req_line = format!("{method} / HTTP/1.1\r\n\r\n");
        let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 9\r\n\r\n");
        let mock = Builder::new()
            .write(req_line.as_bytes())
            .read(resp.as_bytes())
            .build();
        let mut s = session(mock);
        let req = RequestHeader::build(method, b"/", None).unwrap();
        s.write_request_header(Box::new(req)).await.unwrap();
        s.read_response().await.unwrap();
        assert!(s.is_body_done(), "{method} {status}");
        assert!(s.read_body_bytes().await.unwrap().is_none());
        assert!(s.reuse().await.is_some());
    }
}

#[tokio::test]
async fn upgrade_101_is_raw() {
    let mock = Builder::new()
        .write(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        .read(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframe")
        .build();
    let mut s = session(mock);
    let mut req = RequestHeader::build("GET", b"/ws", None).unwrap();
    req.insert_header("Upgrade", "websocket").unwrap();
    req.insert_header("Connection", "Upgrade").unwrap();
    s.write_request_header(Box::new(req)).await.unwrap();
    s.read_response().await.unwrap();
    assert!(s.was_upgraded() && !s.will_keepalive());
    assert_eq!(body(&mut s).await, b"frame");
}

#[tokio::test]
async fn hostile_responses_rejected_as_upstream() {
    let cases: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 3\n\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
    ];
    for case in cases {
        let mut s = session(Builder::new().read(case).build());
        let e = s.read_response().await.unwrap_err();
        assert_eq!(
            e.esource(),
            &ErrorSource::Upstream,
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
}

#[tokio::test]
async fn bad_chunk_is_upstream_h1error() {
    let mock = Builder::new()
        .read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcde\r\n")
        .build();
    let mut s = session(mock);
    s.read_response().await.unwrap();
    let _ = s.read_body_bytes().await.unwrap();
    let e = s.read_body_bytes().await.unwrap_err();
    assert_eq!(e.etype(), &H1Error);
    assert_eq!(e.esource(), &ErrorSource::Upstream);
    assert!(s.reuse().await.is_none());
}

#[tokio::test]
async fn huge_response_header_rejected() {
    let mut resp = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..2000 {
        resp.extend_from_slice(format!("X-{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    let (a, mut b) = tokio::io::duplex(1 << 20);
    tokio::io::AsyncWriteExt::write_all(&mut b, &resp)
        .await
        .unwrap();
    let mut s = HttpSession::new(Box::new(a));
    let e = s.read_response().await.unwrap_err();
    assert!(matches!(e.etype(), HTTPStatus(431)), "{e}");
}

#[tokio::test]
async fn closed_before_response_retryable_if_reused() {
    let mut s = session(Builder::new().build());
    let e = s.read_response().await.unwrap_err();
    assert_eq!(e.etype(), &ConnectionClosed);
    assert!(matches!(e.retry, RetryType::ReusedOnly));
    let mut s = session(Builder::new().read(b"HTTP/1.1 200").build());
    let e = s.read_response().await.unwrap_err();
    assert!(!e.retry_if_reused(true));
}

#[tokio::test]
async fn extra_bytes_after_response_prevent_reuse() {
    let mock = Builder::new()
        .read(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxGARBAGE")
        .build();
    let mut s = session(mock);
    s.read_response().await.unwrap();
    assert_eq!(body(&mut s).await, b"x");
    assert!(s.reuse().await.is_none());
}

#[tokio::test]
async fn connection_close_response_not_reused() {
    let mock = Builder::new()
        .read(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        .build();
    let mut s = session(mock);
    s.read_response().await.unwrap();
    assert!(!s.will_keepalive());
    assert!(s.reuse().await.is_none());
}

#[tokio::test]
async fn response_tasks_in_order() {
    // the rest of the body comes later (bytes already there would join the first piece)
    let mock = Builder::new()
        .read(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc")
        .wait(Duration::from_millis(10))
        .read(b"def")
        .build();
    let mut s = session(mock);
    assert!(matches!(
        s.read_response_task().await.unwrap(),
        HttpTask::Header(_, false)
    ));
    assert!(
        matches!(s.read_response_task().await.unwrap(), HttpTask::Body(Some(b), false) if b == "abc")
    );
    assert!(
        matches!(s.read_response_task().await.unwrap(), HttpTask::Body(Some(b), true) if b == "def")
    );
    assert!(matches!(
        s.read_response_task().await.unwrap(),
        HttpTask::Done
    ));
    let parts = s.resp_header().unwrap();
    assert_eq!(parts.status, 200);
}

/// Real time: session timeouts use pingora-timeout's coarse timer (never early, at most a
/// tick late), which tokio's paused clock does not drive.
#[tokio::test]
async fn read_timeout_applies() {
    let (a, _b) = tokio::io::duplex(1024);
    let mut s = HttpSession::new(Box::new(a));
    s.set_read_timeout(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let e = s.read_response().await.unwrap_err();
    assert_eq!(e.etype(), &ReadTimedout);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(200), "fired early: {took:?}");
    assert!(took < Duration::from_secs(2), "fired late: {took:?}");
}

#[tokio::test]
async fn read_resp_header_parts_and_ref() {
    let mock = Builder::new()
        .read(b"HTTP/1.1 404 Not Here\r\nContent-Length: 2\r\n\r\nno")
        .build();
    let mut s = session(mock);
    let h = s.read_resp_header_parts().await.unwrap();
    assert_eq!(h.status, 404);
    assert_eq!(h.get_reason_phrase(), Some("Not Here"));
    assert_eq!(s.read_body_ref().await.unwrap().unwrap(), b"no");
    assert!(s.read_body_ref().await.unwrap().is_none());
}

#[tokio::test]
async fn owned_response_tasks_hand_the_head_over() {
    let mock = Builder::new()
        .write(GET_REQ)
        .read(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
        .read(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Case: Kept\r\n\r\nabc")
        .build();
    let mut s = session(mock);
    s.write_request_header(get("/p")).await.unwrap();
    // a bodiless request ends without writing anything more
    assert_eq!(s.finish_body().await.unwrap(), None);
    match s.read_response_task_owned().await.unwrap() {
        HttpTask::Header(h, false) => assert_eq!(h.status, 103),
        other => panic!("unexpected {}", other.type_str()),
    }
    match s.read_response_task_owned().await.unwrap() {
        HttpTask::Header(h, false) => {
            assert_eq!(h.status, 200);
            let mut wire = Vec::new();
            h.header_to_h1_wire(&mut wire);
            assert_eq!(wire, b"Content-Length: 3\r\nX-Case: Kept\r\n");
        }
        other => panic!("unexpected {}", other.type_str()),
    }
    // the head is gone, what it decided stays
    assert!(s.resp_header().is_none());
    assert_eq!(s.get_status(), Some(StatusCode::OK));
    assert!(
        matches!(s.read_response_task_owned().await.unwrap(), HttpTask::Body(Some(b), true) if b == "abc")
    );
    assert!(matches!(
        s.read_response_task_owned().await.unwrap(),
        HttpTask::Done
    ));
    s.respect_keepalive();
    assert!(s.will_keepalive());
    assert!(s.reuse().await.is_some());
}

#[tokio::test]
async fn reuse_now_hands_back_only_clean_connections() {
    let mock = Builder::new()
        .write(GET_REQ)
        .read(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .build();
    let mut s = session(mock);
    assert_eq!(s.pool_key(), None);
    s.write_request_header(get("/p")).await.unwrap();
    s.finish_body().await.unwrap();
    s.read_response().await.unwrap();
    // the body is not read yet: not reusable, the session comes back
    let mut s = *s.reuse_now().expect_err("body still unread");
    assert_eq!(body(&mut s).await, b"ok");
    assert!(s.reuse_now().is_ok());

    let mock = Builder::new().read(b"HTTP/1.0 200 OK\r\n\r\nx").build();
    let mut s = session(mock);
    s.read_response().await.unwrap();
    assert_eq!(body(&mut s).await, b"x");
    let s = s.reuse_now().expect_err("close-delimited");
    assert!(s.reuse().await.is_none());
}
