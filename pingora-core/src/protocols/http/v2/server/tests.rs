//! The session over both connection kinds, driven by the `h2` crate's client.

use super::*;
use std::future::poll_fn;

/// Which server a test's session sits on.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Crate,
    Codec,
}

const KINDS: [Kind; 2] = [Kind::Crate, Kind::Codec];

/// The server side of a connection, before its first stream.
enum ServerSide {
    Crate(Box<H2Connection<Stream>>),
    Codec(Connection),
}

/// A client (the `h2` crate) talking to a server of `kind` over memory.
async fn pair(kind: Kind) -> (h2::client::SendRequest<Bytes>, ServerSide) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let server = match kind {
        Kind::Crate => {
            let server = tokio::spawn(async move { handshake(Box::new(a), None).await });
            let (send, conn) = h2::client::handshake(b).await.expect("client handshake");
            tokio::spawn(conn);
            let server = server.await.expect("join").expect("server handshake");
            return (send, ServerSide::Crate(Box::new(server)));
        }
        Kind::Codec => {
            let config = conn_config(&super::super::H2Limits::default());
            ServerSide::Codec(Connection::new(Box::new(a), config))
        }
    };
    let (send, conn) = h2::client::handshake(b).await.expect("client handshake");
    tokio::spawn(conn);
    (send, server)
}

/// The first stream of `conn`; the connection keeps being served in the background.
async fn first_stream(conn: ServerSide) -> HttpSession {
    let digest = Arc::new(Digest::default());
    match conn {
        ServerSide::Crate(mut conn) => {
            let s = HttpSession::from_h2_conn(&mut conn, digest)
                .await
                .expect("accept")
                .expect("a stream");
            tokio::spawn(async move { while let Some(Ok(_)) = conn.accept().await {} });
            s
        }
        ServerSide::Codec(mut conn) => {
            let accepted = poll_fn(|cx| conn.poll_accept(cx))
                .await
                .expect("accept")
                .expect("a stream");
            tokio::spawn(async move {
                while let Ok(Some(_)) = poll_fn(|cx| conn.poll_accept(cx)).await {}
            });
            HttpSession::from_codec(accepted, digest)
        }
    }
}

#[test]
fn session_is_no_larger_than_an_http1_one() {
    // `ServerSession` is as large as its largest variant and is moved
    // several times per request: an HTTP/2 stream must not grow it
    // (448 B: the HTTP/1 session's size when this was written)
    let h2 = std::mem::size_of::<HttpSession>();
    let h1 = std::mem::size_of::<crate::protocols::http::v1::server::HttpSession>();
    assert!(
        h2 <= h1.max(448),
        "HTTP/2 session {h2} B, HTTP/1 session {h1} B"
    );
}

#[tokio::test]
async fn request_body_response_and_trailers() {
    for kind in KINDS {
        request_body_response_and_trailers_on(kind).await;
    }
}

async fn request_body_response_and_trailers_on(kind: Kind) {
    let (send, conn) = pair(kind).await;
    let client = tokio::spawn(async move {
        let mut send = send.ready().await.expect("ready");
        let req = http::Request::post("http://a.test/up")
            .body(())
            .expect("req");
        let (resp, mut body) = send.send_request(req, false).expect("send");
        body.send_data(Bytes::from_static(b"hello "), false)
            .expect("data");
        body.send_data(Bytes::from_static(b"world"), true)
            .expect("data");
        let resp = resp.await.expect("response");
        assert_eq!(resp.status(), 201);
        assert!(resp.headers().get("connection").is_none());
        let mut body = resp.into_body();
        let mut got = Vec::new();
        while let Some(piece) = body.data().await {
            got.extend_from_slice(&piece.expect("data"));
        }
        let trailers = poll_fn(|cx| body.poll_trailers(cx)).await;
        (got, trailers.expect("trailers").expect("some"))
    });
    let mut s = first_stream(conn).await;
    assert_eq!(s.req_header().method, Method::POST);
    assert_eq!(
        s.req_header().headers.get("host").map(|v| v.as_bytes()),
        Some(&b"a.test"[..])
    );
    assert_eq!(s.req_header().send_end_stream(), Some(false));
    s.enable_retry_buffering();
    let mut body = Vec::new();
    while let Some(piece) = s.read_body_bytes().await.expect("body") {
        body.extend_from_slice(&piece);
    }
    assert_eq!(body, b"hello world");
    assert!(s.is_body_done());
    assert_eq!(s.get_retry_buffer().as_deref(), Some(&b"hello world"[..]));
    let mut resp = ResponseHeader::build(201, None).expect("resp");
    resp.insert_header("connection", "keep-alive").expect("hdr");
    s.write_response_header(Box::new(resp), false)
        .expect("header");
    s.write_body(Bytes::from_static(b"done"), false)
        .await
        .expect("body");
    let mut t = HeaderMap::new();
    t.insert("grpc-status", "0".parse().expect("value"));
    s.write_trailers(t).expect("trailers");
    assert_eq!(s.body_bytes_sent(), 4);
    assert!(s.finish().is_ok());
    let (got, trailers) = client.await.expect("client");
    assert_eq!(got, b"done");
    assert_eq!(trailers.get("grpc-status").expect("status"), "0");
}

#[tokio::test]
async fn informational_heads_go_before_the_final_one() {
    for kind in KINDS {
        informational_heads_go_before_the_final_one_on(kind).await;
    }
}

async fn informational_heads_go_before_the_final_one_on(kind: Kind) {
    let (send, conn) = pair(kind).await;
    let client = tokio::spawn(async move {
        let mut send = send.ready().await.expect("ready");
        let req = http::Request::get("http://a.test/").body(()).expect("req");
        let (mut resp, _) = send.send_request(req, true).expect("send");
        let mut interim = Vec::new();
        while let Some(info) = poll_fn(|cx| resp.poll_informational(cx)).await {
            let info = info.expect("informational");
            let link = info.headers().get("link").map(|v| v.as_bytes().to_vec());
            interim.push((info.status().as_u16(), link));
        }
        let resp = resp.await.expect("response");
        (interim, resp.status().as_u16())
    });
    let mut s = first_stream(conn).await;
    let mut hints = ResponseHeader::build(103, None).expect("resp");
    hints.insert_header("link", "</a.css>").expect("hdr");
    hints
        .insert_header("connection", "keep-alive")
        .expect("hdr");
    s.write_response_header(Box::new(hints), false)
        .expect("103");
    // HTTP/2 has no protocol switch: a 101 is dropped, not sent
    let switch = ResponseHeader::build(101, None).expect("resp");
    s.write_response_header(Box::new(switch), false)
        .expect("101 dropped");
    assert!(s.response_written().is_none());
    let resp = ResponseHeader::build(204, None).expect("resp");
    s.write_response_header(Box::new(resp), true)
        .expect("final");
    let (interim, status) = client.await.expect("client");
    assert_eq!(interim, vec![(103, Some(b"</a.css>".to_vec()))]);
    assert_eq!(status, 204);
}

#[test]
fn host_value_is_shared_while_the_authority_stays() {
    let mut last = None;
    let a = head::host_value(b"a.test", &mut last).expect("host");
    let b = head::host_value(b"a.test", &mut last).expect("host");
    // the same bytes, not a copy of them
    assert_eq!(a.as_bytes().as_ptr(), b.as_bytes().as_ptr());
    let c = head::host_value(b"b.test:8080", &mut last).expect("host");
    assert_eq!(c, "b.test:8080");
    assert!(head::host_value(b"bad\nhost", &mut last).is_none());
}

#[tokio::test]
async fn head_response_ends_with_its_header() {
    for kind in KINDS {
        head_response_ends_with_its_header_on(kind).await;
    }
}

async fn head_response_ends_with_its_header_on(kind: Kind) {
    let (send, conn) = pair(kind).await;
    let client = tokio::spawn(async move {
        let mut send = send.ready().await.expect("ready");
        let req = http::Request::head("http://a.test/").body(()).expect("req");
        let (resp, _) = send.send_request(req, true).expect("send");
        let resp = resp.await.expect("response");
        resp.body().is_end_stream()
    });
    let mut s = first_stream(conn).await;
    assert!(s.is_body_empty());
    let mut resp = ResponseHeader::build(200, None).expect("resp");
    resp.insert_header("content-length", "10").expect("hdr");
    s.write_response_header(Box::new(resp), false)
        .expect("header");
    // the body is already ended: nothing more may be sent, finishing is a no-op
    assert!(s.finish_body().is_ok());
    assert!(client.await.expect("client"));
}
