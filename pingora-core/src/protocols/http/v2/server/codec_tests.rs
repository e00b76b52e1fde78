//! Our codec's connection and its sessions, against the `h2` crate's client
//! and against raw frames where a client would refuse to misbehave.

use super::*;
use crate::protocols::http::v2::frame::{self, ErrorCode, Frame, Settings};
use crate::protocols::http::v2::hpack::{Encoder, Field};
use crate::protocols::http::v2::H2Limits;
use bytes::BytesMut;
use std::future::poll_fn;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

fn codec_conn(io: DuplexStream) -> Connection {
    Connection::new(Box::new(io), conn_config(&H2Limits::default()))
}

async fn accept(conn: &mut Connection) -> Option<HttpSession> {
    let accepted = poll_fn(|cx| conn.poll_accept(cx)).await.expect("accept")?;
    Some(HttpSession::from_codec(
        accepted,
        Arc::new(Digest::default()),
    ))
}

/// Keep serving `conn` in the background.
fn drive(mut conn: Connection) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while let Ok(Some(_)) = poll_fn(|cx| conn.poll_accept(cx)).await {} })
}

/// A client that writes frames by hand.
struct RawClient {
    io: DuplexStream,
    encoder: Encoder,
    buf: BytesMut,
}

impl RawClient {
    async fn start(io: DuplexStream) -> Self {
        let mut c = RawClient {
            io,
            encoder: Encoder::new(4096),
            buf: BytesMut::new(),
        };
        let mut out = BytesMut::from(super::super::conn::PREFACE);
        Settings::default().write(&mut out);
        c.io.write_all(&out).await.expect("preface");
        c
    }

    async fn headers(&mut self, stream_id: u32, fields: &[(&str, &str)], end: bool) {
        let mut block = BytesMut::new();
        let fields = fields.iter().map(|(n, v)| Field {
            name: n.as_bytes(),
            value: v.as_bytes(),
            sensitive: false,
        });
        self.encoder.encode(fields, &mut block);
        let mut out = BytesMut::new();
        frame::write_headers(
            stream_id,
            &block,
            end,
            frame::DEFAULT_MAX_FRAME_SIZE,
            &mut out,
        );
        self.io.write_all(&out).await.expect("headers");
    }

    async fn data(&mut self, stream_id: u32, data: &[u8], end: bool) {
        let mut out = BytesMut::new();
        frame::write_data_header(stream_id, data.len(), end, &mut out);
        out.extend_from_slice(data);
        self.io.write_all(&out).await.expect("data");
    }

    /// The next RST_STREAM must reset `stream_id` with `code`.
    async fn expect_reset(&mut self, stream_id: u32, code: ErrorCode) {
        let reset = self.until(|f| matches!(f, Frame::RstStream { .. })).await;
        assert_eq!(reset, Frame::RstStream { stream_id, code });
    }

    /// Frames until one matches `want` (skipping settings, window updates...).
    async fn until(&mut self, want: impl Fn(&Frame) -> bool) -> Frame {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            while let Some(f) =
                frame::read_frame(&mut self.buf, frame::MAX_MAX_FRAME_SIZE).expect("frame")
            {
                if want(&f) {
                    return f;
                }
            }
            let n = tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.buf))
                .await
                .expect("frame in time")
                .expect("read");
            assert!(n > 0, "server closed before the frame came");
        }
    }
}

fn get(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "GET".into()),
        (":scheme", "http".into()),
        (":authority", "a.test".into()),
        (":path", path.into()),
    ]
}

async fn send_get(c: &mut RawClient, id: u32, extra: &[(&str, &str)], end: bool) {
    let base = get("/");
    let mut fields: Vec<(&str, &str)> = base.iter().map(|(n, v)| (*n, v.as_str())).collect();
    fields.extend_from_slice(extra);
    c.headers(id, &fields, end).await;
}

/// Our connection and a raw client on it, the client's preface sent.
async fn raw_pair() -> (Connection, RawClient) {
    let (a, b) = tokio::io::duplex(1 << 16);
    (codec_conn(a), RawClient::start(b).await)
}

/// [`raw_pair`] with one GET accepted on stream 1.
async fn one_get() -> (Connection, RawClient, HttpSession) {
    let (mut conn, mut client) = raw_pair().await;
    send_get(&mut client, 1, &[], true).await;
    let s = accept(&mut conn).await.expect("request");
    (conn, client, s)
}

#[tokio::test]
async fn malformed_request_resets_only_its_stream() {
    let (mut conn, mut client) = raw_pair().await;
    send_get(&mut client, 1, &[("X-Upper", "1")], true).await;
    send_get(&mut client, 3, &[("x-fine", "1")], true).await;
    let server = tokio::spawn(async move {
        let s = accept(&mut conn).await.expect("the valid request");
        let id_ok = s.req_header().headers.get("x-fine").is_some();
        (id_ok, s, drive(conn))
    });
    client.expect_reset(1, ErrorCode::PROTOCOL_ERROR).await;
    let (id_ok, _s, _conn) = server.await.expect("join");
    assert!(id_ok);
}

#[tokio::test]
async fn body_longer_than_content_length_is_refused() {
    let (mut conn, mut client) = raw_pair().await;
    send_get(&mut client, 1, &[("content-length", "3")], false).await;
    client.data(1, b"abcdef", true).await;
    let mut s = accept(&mut conn).await.expect("request");
    let _driver = drive(conn);
    let read = s.read_body_bytes().await;
    assert!(read.is_err(), "{read:?}");
    client.expect_reset(1, ErrorCode::PROTOCOL_ERROR).await;
}

#[tokio::test]
async fn large_response_follows_a_small_client_window() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let mut conn = codec_conn(a);
    let client = tokio::spawn(async move {
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(1000)
            .initial_connection_window_size(70_000)
            .handshake::<_, Bytes>(b)
            .await
            .expect("client handshake");
        tokio::spawn(conn);
        let mut send = send.ready().await.expect("ready");
        let req = http::Request::get("http://a.test/big")
            .body(())
            .expect("req");
        let (resp, _) = send.send_request(req, true).expect("send");
        let mut body = resp.await.expect("response").into_body();
        let mut got = Vec::new();
        while let Some(piece) = body.data().await {
            let piece = piece.expect("data");
            assert!(piece.len() <= 1000, "a frame larger than the window");
            got.extend_from_slice(&piece);
            // a slow reader: the server must wait for every window it gives
            tokio::task::yield_now().await;
            body.flow_control()
                .release_capacity(piece.len())
                .expect("release");
        }
        got
    });
    let mut s = accept(&mut conn).await.expect("request");
    let _driver = drive(conn);
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let resp = ResponseHeader::build(200, None).expect("head");
    s.write_response_header(Box::new(resp), false)
        .expect("head");
    s.write_body(Bytes::from(body.clone()), true)
        .await
        .expect("body");
    let got = tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .expect("in time")
        .expect("join");
    assert!(
        got == body,
        "body differs: {} bytes of {}",
        got.len(),
        body.len()
    );
}

#[tokio::test]
async fn client_reset_reaches_the_session() {
    let (conn, mut client, mut s) = one_get().await;
    let _driver = drive(conn);
    let mut out = BytesMut::new();
    frame::write_rst_stream(1, ErrorCode::CANCEL, &mut out);
    client.io.write_all(&out).await.expect("rst");
    let idle = tokio::time::timeout(Duration::from_secs(5), s.read_body_or_idle(true))
        .await
        .expect("reset seen in time");
    assert!(idle.is_err());
    assert!(s.reset_by_client());
    // nothing may be sent on a reset stream, and trying does not hang
    let resp = ResponseHeader::build(200, None).expect("head");
    assert!(s.write_response_header(Box::new(resp), true).is_err());
}

#[tokio::test]
async fn graceful_goaway_lets_the_open_stream_finish() {
    let (mut conn, mut client, mut s) = one_get().await;
    conn.go_away(ErrorCode::NO_ERROR);
    // a stream opened after the GOAWAY is refused
    send_get(&mut client, 3, &[], true).await;
    let server = tokio::spawn(async move { accept(&mut conn).await.is_none() });
    let goaway = client.until(|f| matches!(f, Frame::GoAway { .. })).await;
    assert!(matches!(
        goaway,
        Frame::GoAway {
            last_stream_id: 1,
            code: ErrorCode::NO_ERROR,
            ..
        }
    ));
    client.expect_reset(3, ErrorCode::REFUSED_STREAM).await;
    let resp = ResponseHeader::build(204, None).expect("head");
    s.write_response_header(Box::new(resp), true).expect("head");
    let answer = client.until(|f| matches!(f, Frame::Headers { .. })).await;
    assert!(matches!(
        answer,
        Frame::Headers {
            stream_id: 1,
            end_stream: true,
            ..
        }
    ));
    drop(s);
    // the last stream done, the connection ends
    let ended = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("connection ended in time")
        .expect("join");
    assert!(ended);
}
