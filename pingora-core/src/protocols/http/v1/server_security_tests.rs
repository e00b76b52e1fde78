//! Tests of the HTTP/1 server session against hostile or broken clients:
//! size limits, request smuggling shapes and timeouts.

use super::tests::{read_all, session_pair};
use super::*;
use crate::protocols::http::error_resp;
use pingora_error::ErrorSource;
use tokio::io::AsyncWriteExt;

/// Send `input`, expect `read_request` to fail with `etype`, and the session
/// to answer `status` and close.
async fn rejected(input: &[u8], etype: pingora_error::ErrorType, status: &str) {
    let (mut s, mut c) = session_pair();
    c.write_all(input).await.unwrap();
    // the session lingers until the client closes: read meanwhile
    let (res, out) = tokio::join!(s.read_request(), read_all(c));
    let e = res.unwrap_err();
    assert_eq!(e.etype(), &etype, "{:?}", String::from_utf8_lossy(input));
    assert_eq!(e.esource(), &ErrorSource::Downstream);
    assert!(!s.will_keepalive());
    // a later respond_error by the caller must not add a second response
    let _ = s.respond_error(400).await;
    assert!(s.reuse().await.unwrap().is_none());
    assert!(out.starts_with(&format!("HTTP/1.1 {status}")), "{out}");
    assert!(out.contains("Connection: close\r\n"), "{out}");
    assert_eq!(out.matches("HTTP/1.1").count(), 1, "{out}");
}

#[tokio::test]
async fn uri_too_long_414() {
    let mut req = b"GET /".to_vec();
    req.extend(std::iter::repeat_n(b'a', MAX_URI_LEN + 1));
    req.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    rejected(&req, HTTPStatus(414), "414").await;
    // and without ever completing the request line
    let mut req = b"GET /".to_vec();
    req.extend(std::iter::repeat_n(b'a', MAX_URI_LEN + 100));
    rejected(&req, HTTPStatus(414), "414").await;
}

#[tokio::test]
async fn header_too_large_431() {
    let mut req = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        req.extend_from_slice(format!("X-{i}: {}\r\n", "v".repeat(1000)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    rejected(&req, HTTPStatus(431), "431").await;
}

#[tokio::test]
async fn too_many_headers_431() {
    let mut req = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    rejected(&req, HTTPStatus(431), "431").await;
}

#[tokio::test]
async fn malformed_heads_400() {
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n",
        b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET / HTTP/1.1\r\nHost: x\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"G@T / HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ];
    for case in cases {
        rejected(case, InvalidHTTPHeader, "400").await;
    }
}

#[tokio::test]
async fn smuggling_heads_400() {
    let cases: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ];
    for case in cases {
        rejected(case, InvalidHTTPHeader, "400").await;
    }
}

#[tokio::test]
async fn identical_content_length_duplicates_accepted() {
    let (mut s, mut c) = session_pair();
    c.write_all(b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")
        .await
        .unwrap();
    s.read_request().await.unwrap();
    assert_eq!(s.read_body_bytes().await.unwrap().unwrap(), "ok");
}

#[tokio::test]
async fn smuggling_chunk_framing_h1error() {
    let bodies: &[&[u8]] = &[
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"z\r\nhello\r\n0\r\n\r\n",
        b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXY0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5;ext\x01\r\nhello\r\n0\r\n\r\n",
    ];
    for body in bodies {
        let (mut s, mut c) = session_pair();
        c.write_all(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        c.write_all(body).await.unwrap();
        s.read_request().await.unwrap();
        let e = loop {
            match s.read_body_bytes().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("accepted {:?}", String::from_utf8_lossy(body)),
                Err(e) => break e,
            }
        };
        assert_eq!(e.etype(), &H1Error, "{:?}", String::from_utf8_lossy(body));
        assert_eq!(e.esource(), &ErrorSource::Downstream);
        assert!(!s.will_keepalive());
        s.respond_error(400).await.unwrap();
        // the session lingers until the client closes: read meanwhile
        let (reused, out) = tokio::join!(s.reuse(), read_all(c));
        assert!(reused.unwrap().is_none());
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    }
}

#[tokio::test]
async fn chunk_extensions_allowed() {
    let (mut s, mut c) = session_pair();
    c.write_all(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3 ; a=b;c=\"d\"\r\nabc\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    s.read_request().await.unwrap();
    assert_eq!(s.read_body_bytes().await.unwrap().unwrap(), "abc");
    assert!(s.read_body_bytes().await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn idle_connection_times_out_quietly() {
    let (mut s, _c) = session_pair();
    let started = tokio::time::Instant::now();
    assert_eq!(s.read_request().await.unwrap(), None);
    assert_eq!(started.elapsed(), DEFAULT_IDLE_TIMEOUT);

    let (mut s, _c) = session_pair();
    s.set_server_keepalive(Some(5));
    let started = tokio::time::Instant::now();
    assert_eq!(s.read_request().await.unwrap(), None);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn slow_header_times_out_with_408() {
    let (mut s, mut c) = session_pair();
    s.set_read_timeout(Duration::from_secs(3));
    c.write_all(b"GET / HTTP/1.1\r\nHost").await.unwrap();
    let e = s.read_request().await.unwrap_err();
    assert_eq!(e.etype(), &ReadTimedout);
    drop(s);
    assert!(read_all(c)
        .await
        .starts_with("HTTP/1.1 408 Request Timeout\r\n"));
}

#[tokio::test(start_paused = true)]
async fn slow_body_times_out() {
    let (mut s, mut c) = session_pair();
    s.set_read_timeout(Duration::from_secs(2));
    c.write_all(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    s.read_request().await.unwrap();
    assert_eq!(s.read_body_bytes().await.unwrap().unwrap(), "abc");
    let e = s.read_body_bytes().await.unwrap_err();
    assert_eq!(e.etype(), &ReadTimedout);
    assert!(!s.will_keepalive());
}

#[tokio::test(start_paused = true)]
async fn drain_timeout_gives_up_reuse() {
    let (mut s, mut c) = session_pair();
    s.set_total_drain_timeout(Duration::from_secs(1));
    c.write_all(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
        .await
        .unwrap();
    s.read_request().await.unwrap();
    s.write_response_header(Box::new(error_resp::gen_error_response(200)))
        .await
        .unwrap();
    assert_eq!(s.reuse().await.unwrap_err().etype(), &ReadTimedout);
}

#[tokio::test]
async fn body_or_idle_reports_client_close() {
    let (mut s, mut c) = session_pair();
    c.write_all(b"GET / HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n")
        .await
        .unwrap();
    s.read_request().await.unwrap();
    drop(c);
    let e = s.read_body_or_idle(false).await.unwrap_err();
    assert_eq!(e.etype(), &ConnectionClosed);
}

#[tokio::test]
async fn hostile_bytes_never_panic() {
    // a deterministic pseudo-random byte soup after a valid prefix
    let mut x: u32 = 0x1234_5678;
    for round in 0..200 {
        let mut input = if round % 2 == 0 {
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
        } else {
            Vec::new()
        };
        for _ in 0..(round * 7 % 300) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let alphabet = b"0123456789abcdefXx\r\n;: \t\x00GET/HTP1.";
            input.push(alphabet[x as usize % alphabet.len()]);
        }
        let (mut s, mut c) = session_pair();
        c.write_all(&input).await.unwrap();
        drop(c);
        if let Ok(Some(_)) = s.read_request().await {
            while let Ok(Some(_)) = s.read_body_bytes().await {}
        }
    }
}
