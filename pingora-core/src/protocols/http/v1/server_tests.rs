//! Tests of the HTTP/1 server session: parsing, bodies, framing of
//! responses, keep-alive and pipelining. Limits, request smuggling and
//! timeouts are in `server_security_tests.rs`.

use super::*;
use crate::protocols::http::HttpTask;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_test::io::Builder;

pub(super) fn session_pair() -> (HttpSession, DuplexStream) {
    let (server, client) = tokio::io::duplex(1 << 20);
    (HttpSession::new(Box::new(server)), client)
}

/// Everything the server sent, once it closed its side.
pub(super) async fn read_all(mut client: DuplexStream) -> String {
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn ok_response(len: usize) -> Box<ResponseHeader> {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("Content-Length", len.to_string())
        .unwrap();
    Box::new(resp)
}

#[tokio::test]
async fn read_basic_request() {
    let input = b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Custom: A\r\n\r\n";
    let mock = Builder::new().read(&input[..]).build();
    let mut s = HttpSession::new(Box::new(mock));
    assert_eq!(s.read_request().await.unwrap(), Some(input.len()));
    let req = s.req_header();
    assert_eq!(req.method, Method::GET);
    assert_eq!(req.uri.path(), "/path");
    assert_eq!(req.version, Version::HTTP_11);
    assert_eq!(s.get_header_bytes("x-custom"), b"A");
    assert_eq!(s.get_headers_raw_bytes(), &input[..]);
    assert_eq!(s.request_summary(), "GET /path?q=1, Host: example.com");
    assert!(s.is_body_empty() && s.is_body_done());
    assert!(s.will_keepalive());
    assert!(s.read_body_bytes().await.unwrap().is_none());
}

#[tokio::test]
async fn eof_before_request_is_none() {
    let mut s = HttpSession::new(Box::new(Builder::new().build()));
    assert_eq!(s.read_request().await.unwrap(), None);
}

#[tokio::test]
async fn close_mid_header_is_error() {
    let mock = Builder::new().read(b"GET / HTTP/1.1\r\nHo").build();
    let mut s = HttpSession::new(Box::new(mock));
    let e = s.read_request().await.unwrap_err();
    assert_eq!(e.etype(), &ConnectionClosed);
    assert_eq!(e.esource(), &pingora_error::ErrorSource::Downstream);
}

#[tokio::test]
async fn header_split_across_reads() {
    let mut b = Builder::new();
    for piece in [
        &b"GE"[..],
        b"T / HT",
        b"TP/1.1\r",
        b"\nHost: a\r\n",
        b"\r",
        b"\n",
    ] {
        b.read(piece);
    }
    let mut s = HttpSession::new(Box::new(b.build()));
    assert!(s.read_request().await.unwrap().is_some());
    assert_eq!(s.get_header_bytes("host"), b"a");
}

async fn body_of(s: &mut HttpSession) -> Vec<u8> {
    let mut out = vec![];
    while let Some(b) = s.read_body_bytes().await.unwrap() {
        out.extend_from_slice(&b);
    }
    out
}

#[tokio::test]
async fn content_length_body_streamed() {
    let mock = Builder::new()
        .read(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello")
        .read(b" world")
        .build();
    let mut s = HttpSession::new(Box::new(mock));
    s.read_request().await.unwrap();
    assert!(!s.is_body_empty());
    s.enable_retry_buffering();
    assert_eq!(body_of(&mut s).await, b"hello world");
    assert_eq!(s.body_bytes_read(), 11);
    assert_eq!(s.get_retry_buffer().unwrap(), "hello world");
    assert!(s.is_body_done());
}

#[tokio::test]
async fn chunked_body_split_across_reads() {
    let mock = Builder::new()
        .read(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe")
        .read(b"llo\r\n6\r")
        .read(b"\n world\r\n0\r\n\r\n")
        .build();
    let mut s = HttpSession::new(Box::new(mock));
    s.read_request().await.unwrap();
    assert_eq!(body_of(&mut s).await, b"hello world");
}

#[tokio::test]
async fn expect_continue_sent_on_first_body_read() {
    let mock = Builder::new()
        .read(b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .write(b"HTTP/1.1 100 Continue\r\n\r\n")
        .read(b"hello")
        .build();
    let mut s = HttpSession::new(Box::new(mock));
    s.read_request().await.unwrap();
    assert_eq!(body_of(&mut s).await, b"hello");
}

#[tokio::test]
async fn expect_continue_skipped_once_responded() {
    let (mut s, mut c) = session_pair();
    c.write_all(b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    s.read_request().await.unwrap();
    s.write_response_header(ok_response(0)).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    assert_eq!(body_of(&mut s).await, b"hello");
    drop(s);
    let out = read_all(c).await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(!out.contains("100 Continue"));
}

#[tokio::test]
async fn response_without_length_is_chunked_for_http11() {
    let (mut s, mut c) = session_pair();
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    s.read_request().await.unwrap();
    let resp = ResponseHeader::build(200, None).unwrap();
    s.write_response_header(Box::new(resp)).await.unwrap();
    assert_eq!(s.write_body(b"hi").await.unwrap(), Some(2));
    s.finish_body().await.unwrap();
    assert_eq!(s.body_bytes_sent(), 2);
    assert!(s.reuse().await.unwrap().is_some());
    drop(c.shutdown().await);
    let mut out = vec![0u8; 4096];
    let n = c.read(&mut out).await.unwrap();
    let out = String::from_utf8_lossy(&out[..n]);
    assert!(out.contains("Transfer-Encoding: chunked\r\n"), "{out}");
    assert!(out.contains("Date: "), "{out}");
    assert!(out.ends_with("\r\n\r\n2\r\nhi\r\n0\r\n\r\n"), "{out}");
}

#[tokio::test]
async fn http10_response_is_close_delimited() {
    let (mut s, mut c) = session_pair();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    s.read_request().await.unwrap();
    assert!(!s.will_keepalive());
    let resp = ResponseHeader::build(200, None).unwrap();
    s.write_response_header(Box::new(resp)).await.unwrap();
    s.write_body(b"raw body").await.unwrap();
    s.finish_body().await.unwrap();
    assert!(s.reuse().await.unwrap().is_none());
    let out = read_all(c).await;
    assert!(out.contains("Connection: close\r\n"), "{out}");
    assert!(
        !out.to_ascii_lowercase().contains("transfer-encoding"),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\nraw body"), "{out}");
}

#[tokio::test]
async fn http10_keepalive_honoured() {
    let (mut s, mut c) = session_pair();
    c.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    s.read_request().await.unwrap();
    assert!(s.will_keepalive());
    s.write_response_header(ok_response(2)).await.unwrap();
    s.write_body(b"ok").await.unwrap();
    assert!(s.reuse().await.unwrap().is_some());
    let mut buf = vec![0u8; 1024];
    let n = c.read(&mut buf).await.unwrap();
    let out = String::from_utf8_lossy(&buf[..n]);
    assert!(out.contains("Connection: keep-alive\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nok"), "{out}");
}

#[tokio::test]
async fn connection_close_request_disables_reuse() {
    let (mut s, c) = session_pair();
    let mut c = c;
    c.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    s.read_request().await.unwrap();
    s.set_server_keepalive(Some(60));
    assert!(!s.will_keepalive());
    s.write_response_header(ok_response(0)).await.unwrap();
    assert!(s.reuse().await.unwrap().is_none());
    assert!(read_all(c).await.contains("Connection: close\r\n"));
}

async fn no_body_case(request: &str, status: u16) -> String {
    let (mut s, mut c) = session_pair();
    c.write_all(request.as_bytes()).await.unwrap();
    s.read_request().await.unwrap();
    let mut resp = ResponseHeader::build(status, None).unwrap();
    resp.insert_header("Content-Length", "10").unwrap();
    s.write_response_header(Box::new(resp)).await.unwrap();
    assert_eq!(s.write_body(b"0123456789").await.unwrap(), None);
    s.finish_body().await.unwrap();
    assert!(s.reuse().await.unwrap().is_some());
    let mut buf = vec![0u8; 2048];
    let n = c.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn head_204_304_have_no_body() {
    let out = no_body_case("HEAD / HTTP/1.1\r\n\r\n", 200).await;
    assert!(out.ends_with("Content-Length: 10\r\n\r\n") || out.ends_with("\r\n\r\n"));
    assert!(!out.contains("0123456789"));
    for status in [204, 304] {
        let out = no_body_case("GET / HTTP/1.1\r\n\r\n", status).await;
        assert!(out.ends_with("\r\n\r\n") && !out.contains("0123"), "{out}");
    }
}

#[tokio::test]
async fn second_final_header_ignored_and_info_allowed() {
    let (mut s, mut c) = session_pair();
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    s.read_request().await.unwrap();
    let early = ResponseHeader::build(103, None).unwrap();
    s.write_response_header(Box::new(early)).await.unwrap();
    assert!(s.response_written().is_none());
    s.write_response_header(ok_response(0)).await.unwrap();
    s.write_response_header(ok_response(5)).await.unwrap();
    assert_eq!(s.response_written().unwrap().status, 200);
    s.set_server_keepalive(None);
    assert!(s.reuse().await.unwrap().is_none());
    let out = read_all(c).await;
    assert!(
        out.starts_with("HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{out}"
    );
    assert_eq!(out.matches("HTTP/1.1 200").count(), 1);
}

/// Serve requests on one connection until it closes, answering with the path.
async fn echo_path_server(stream: Stream, max: usize) -> usize {
    let mut stream = Some(stream);
    let mut served = 0;
    while let Some(st) = stream.take() {
        if served == max {
            break;
        }
        let mut s = HttpSession::new(st);
        if s.read_request().await.unwrap().is_none() {
            break;
        }
        let path = s.req_header().uri.path().to_string();
        s.write_response_header(ok_response(path.len()))
            .await
            .unwrap();
        s.write_body(path.as_bytes()).await.unwrap();
        s.finish_body().await.unwrap();
        served += 1;
        stream = s.reuse().await.unwrap();
    }
    served
}

/// The response head of a bodiless request is written into the spare end of the buffer the
/// request was read into, and still goes out whole.
#[tokio::test]
async fn response_head_uses_the_request_buffer() {
    let (mut s, mut c) = session_pair();
    c.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    s.read_request().await.unwrap().expect("request");
    let head = s.get_headers_raw_bytes();
    // held back for the body
    s.write_response_header(ok_response(2)).await.unwrap();
    assert_eq!(s.pending_head.as_ptr(), head[head.len()..].as_ptr());
    s.write_body(b"hi").await.unwrap();
    s.finish_body().await.unwrap();
    drop(s);
    let out = read_all(c).await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nhi"), "{out}");
}

/// Reuse is HTTP/1.1's default: a reusable 1.1 exchange carries no `Connection` header, even
/// one the app put there; once the session decides to close, the client is told.
#[tokio::test]
async fn http11_reuse_is_not_announced_and_close_is() {
    let (mut s, mut c) = session_pair();
    c.write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    s.read_request().await.unwrap().expect("first request");
    let mut resp = ok_response(1);
    resp.insert_header("Connection", "close").unwrap();
    s.write_response_header(resp).await.unwrap();
    s.write_body(b"a").await.unwrap();
    s.finish_body().await.unwrap();
    let mut s = HttpSession::new(s.reuse().await.unwrap().expect("reused"));
    c.write_all(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    s.read_request().await.unwrap().expect("second request");
    s.set_server_keepalive(None);
    s.write_response_header(ok_response(1)).await.unwrap();
    s.write_body(b"b").await.unwrap();
    s.finish_body().await.unwrap();
    assert!(s.reuse().await.unwrap().is_none());
    let out = read_all(c).await;
    let (first, second) = out.split_once("\r\n\r\na").expect("two responses");
    assert!(
        !first.to_ascii_lowercase().contains("connection"),
        "{first}"
    );
    assert!(second.contains("Connection: close\r\n"), "{second}");
    assert!(second.ends_with("\r\n\r\nb"), "{second}");
}

#[tokio::test]
async fn pipelined_requests_answered_in_order() {
    let (server, mut c) = tokio::io::duplex(1 << 16);
    let requests = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz\
GET /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nq\r\n0\r\n\r\nGET /d HTTP/1.1\r\n\r\n";
    c.write_all(requests).await.unwrap();
    let served = echo_path_server(Box::new(server), 4).await;
    assert_eq!(served, 4);
    let out = read_all(c).await;
    let mut last = 0;
    for path in ["/a", "/b", "/c", "/d"] {
        let at = out.find(&format!("\r\n\r\n{path}")).expect(path);
        assert!(at > last, "{path} out of order: {out}");
        last = at;
    }
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 4);
}

#[tokio::test]
async fn reuse_drains_unread_body() {
    let (server, mut c) = tokio::io::duplex(1 << 16);
    c.write_all(b"POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyGET /y HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut s = HttpSession::new(Box::new(server));
    s.read_request().await.unwrap();
    s.write_response_header(ok_response(0)).await.unwrap();
    let next = s.reuse().await.unwrap().expect("reusable");
    let mut s2 = HttpSession::new(next);
    s2.read_request().await.unwrap();
    assert_eq!(s2.req_header().uri.path(), "/y");
}

#[tokio::test]
async fn incomplete_response_prevents_reuse() {
    let (mut s, mut c) = session_pair();
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    s.read_request().await.unwrap();
    s.write_response_header(ok_response(10)).await.unwrap();
    s.write_body(b"short").await.unwrap();
    s.finish_body().await.unwrap();
    assert!(s.reuse().await.unwrap().is_none());
}

#[tokio::test]
async fn upgrade_switches_to_raw_bytes() {
    let (mut s, mut c) = session_pair();
    c.write_all(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        .await
        .unwrap();
    s.read_request().await.unwrap();
    assert!(s.is_upgrade_req());
    let mut resp = ResponseHeader::build(101, None).unwrap();
    resp.insert_header("Upgrade", "websocket").unwrap();
    resp.insert_header("Connection", "Upgrade").unwrap();
    assert_eq!(s.is_upgrade(&resp), Some(true));
    s.write_response_header(Box::new(resp)).await.unwrap();
    c.write_all(b"frame").await.unwrap();
    assert_eq!(s.read_body_bytes().await.unwrap().unwrap(), "frame");
    s.write_body(b"reply").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = c.read(&mut buf).await.unwrap();
    let out = String::from_utf8_lossy(&buf[..n]);
    assert!(
        out.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{out}"
    );
    assert!(out.contains("Connection: Upgrade"), "{out}");
    assert!(!s.will_keepalive());
}

#[tokio::test]
async fn respond_error_closes() {
    let (mut s, mut c) = session_pair();
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    s.read_request().await.unwrap();
    s.respond_error(503).await.unwrap();
    assert!(s.reuse().await.unwrap().is_none());
    let out = read_all(c).await;
    assert!(
        out.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{out}"
    );
    assert!(out.contains("Connection: close\r\n") && out.contains("Content-Length: 0\r\n"));
}

#[tokio::test]
async fn duplex_vec_gathers_body() {
    let (mut s, mut c) = session_pair();
    c.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    s.read_request().await.unwrap();
    let resp = ResponseHeader::build(200, None).unwrap();
    let tasks = vec![
        HttpTask::Header(Box::new(resp), false),
        HttpTask::Body(Some(Bytes::from_static(b"a")), false),
        HttpTask::Body(Some(Bytes::from_static(b"b")), false),
    ];
    assert!(!s.response_duplex_vec(tasks).await.unwrap());
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-t", "1".parse().unwrap());
    let tasks = vec![HttpTask::Trailer(Some(Box::new(trailers)))];
    assert!(s.response_duplex_vec(tasks).await.unwrap());
    assert!(s.reuse().await.unwrap().is_some());
    let mut buf = vec![0u8; 1024];
    let n = c.read(&mut buf).await.unwrap();
    let out = String::from_utf8_lossy(&buf[..n]);
    assert!(
        out.ends_with("\r\n\r\n2\r\nab\r\n0\r\nx-t: 1\r\n\r\n"),
        "{out}"
    );
}

#[tokio::test]
async fn real_tcp_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let local = c.local_addr().unwrap();
        c.write_all(b"GET /tcp HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        (local, out)
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let stream: crate::protocols::l4::stream::Stream = tcp.into();
    let mut s = HttpSession::new(Box::new(stream));
    s.read_request().await.unwrap();
    assert_eq!(s.server_addr().unwrap().as_inet(), Some(&addr));
    let peer = *s.client_addr().unwrap().as_inet().unwrap();
    s.write_response_header(ok_response(4)).await.unwrap();
    s.write_body(b"/tcp").await.unwrap();
    s.finish_body().await.unwrap();
    assert!(s.reuse().await.unwrap().is_none());
    let (local, out) = client.await.unwrap();
    assert_eq!(peer, local);
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("\r\n\r\n/tcp"),
        "{out}"
    );
}

#[tokio::test]
async fn tcp_keepalive_between_client_and_server_sessions() {
    use crate::protocols::http::v1::client::HttpSession as ClientSession;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let stream: crate::protocols::l4::stream::Stream = tcp.into();
        echo_path_server(Box::new(stream), 3).await
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let l4: crate::protocols::l4::stream::Stream = tcp.into();
    let mut conn: Stream = Box::new(l4);
    let id = conn.id();
    for path in ["/one", "/two", "/three"] {
        let mut c = ClientSession::new(conn);
        assert_eq!(crate::protocols::UniqueID::id(&c), id);
        let req = RequestHeader::build("POST", path.as_bytes(), None).unwrap();
        let mut req = Box::new(req);
        req.insert_header("Transfer-Encoding", "chunked").unwrap();
        c.write_request_header(req).await.unwrap();
        c.write_body(b"payload").await.unwrap();
        c.finish_body().await.unwrap();
        c.read_response().await.unwrap();
        assert_eq!(c.read_body_bytes().await.unwrap().unwrap(), path);
        assert!(c.read_body_bytes().await.unwrap().is_none());
        assert_eq!(c.server_addr().unwrap().as_inet(), Some(&addr));
        conn = c.reuse().await.expect("connection reusable");
        assert_eq!(conn.id(), id);
    }
    assert_eq!(server.await.unwrap(), 3);
}
