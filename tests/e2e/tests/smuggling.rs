//! Ambiguous or malformed framing must be refused with 400 and the connection closed, so that
//! nothing can be smuggled past the proxy; oversized heads get 431/414.

use pingora_e2e::*;
use std::time::Duration;

fn assert_refused(request: &[u8], expected_status: u16) {
    let origin = Origin::start("A");
    let proxy = Proxy::start(announcement_bin!(), &[origin.port]);
    let (response, closed) = raw_exchange(proxy.port, request, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&response);
    let status_line = text.lines().next().unwrap_or("");
    assert!(
        status_line.starts_with(&format!("HTTP/1.1 {expected_status}")),
        "expected {expected_status}, got {:?}",
        &text[..text.len().min(300)]
    );
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "more than one response: {text:?}"
    );
    assert!(closed, "connection left open after a refused request");
}

#[test]
fn content_length_with_transfer_encoding_is_refused() {
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    );
}

#[test]
fn differing_duplicate_content_length_is_refused() {
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    );
}

#[test]
fn invalid_chunk_size_is_refused() {
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn obs_fold_header_is_refused() {
    assert_refused(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
        400,
    );
}

#[test]
fn bare_lf_in_chunk_line_is_refused() {
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn oversized_headers_get_431() {
    let mut request = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    // just over the 64 KiB head limit, so little is left unread when the server closes
    for i in 0..9 {
        request.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "a".repeat(8000)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    assert_refused(&request, 431);
}

#[test]
fn long_uri_gets_414() {
    let request = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "u".repeat(16 * 1024));
    assert_refused(request.as_bytes(), 414);
}

#[test]
fn well_formed_pipelined_requests_still_work() {
    let origin = Origin::start("A");
    let proxy = Proxy::start(announcement_bin!(), &[origin.port]);
    let (response, _) = raw_exchange(
        proxy.port,
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&response);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text:?}");
}
