use super::*;
use crate::protocols::http::v2::hpack::{Encoder, Field};

/// A client that writes frames with our own frame writers and HPACK encoder.
pub(super) struct Client {
    encoder: Encoder,
    pub(super) wire: BytesMut,
}

impl Client {
    pub(super) fn new() -> Self {
        let mut wire = BytesMut::from(PREFACE);
        Settings::default().write(&mut wire);
        Client {
            encoder: Encoder::default(),
            wire,
        }
    }

    pub(super) fn headers(&mut self, stream_id: u32, list: &[(&str, &str)], end_stream: bool) {
        let block = self.block(list);
        frame::write_headers(stream_id, &block, end_stream, 16_384, &mut self.wire);
    }

    pub(super) fn block(&mut self, list: &[(&str, &str)]) -> BytesMut {
        let mut block = BytesMut::new();
        let fields = list.iter().map(|(n, v)| Field {
            name: n.as_bytes(),
            value: v.as_bytes(),
            sensitive: false,
        });
        self.encoder.encode(fields, &mut block);
        block
    }

    pub(super) fn data(&mut self, stream_id: u32, data: &[u8], end_stream: bool) {
        frame::write_data_header(stream_id, data.len(), end_stream, &mut self.wire);
        self.wire.extend_from_slice(data);
    }
}

pub(super) const GET: [(&str, &str); 4] = [
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "example.com"),
];

pub(super) fn events(conn: &mut ServerConn) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// The frames in `out`, as the client would read them.
pub(super) fn frames(mut out: BytesMut) -> Vec<Frame> {
    let mut got = Vec::new();
    while let Some(f) = frame::read_frame(&mut out, frame::MAX_MAX_FRAME_SIZE).unwrap() {
        got.push(f);
    }
    assert!(out.is_empty());
    got
}

#[test]
fn handshake_and_requests() {
    let mut conn = ServerConn::new(ConnConfig::default());
    let greeting = frames(conn.take_output());
    assert!(matches!(greeting[0], Frame::Settings(s) if s.max_concurrent_streams == Some(100)));
    assert!(matches!(
        greeting[1],
        Frame::WindowUpdate { stream_id: 0, .. }
    ));

    let mut client = Client::new();
    client.headers(1, &GET, true);
    client.headers(3, &GET, false);
    client.data(3, b"body", true);
    frame::write_ping(*b"pingpong", false, &mut client.wire);
    // fed one byte at a time: partial frames wait
    let whole = client.wire.split();
    let mut buf = BytesMut::new();
    for b in whole.iter() {
        buf.extend_from_slice(&[*b]);
        conn.recv(&mut buf).unwrap();
    }
    let got = events(&mut conn);
    assert_eq!(got.len(), 3);
    match &got[0] {
        Event::Request {
            stream_id: 1,
            fields,
            end_stream: true,
        } => assert_eq!(fields[3].value, "example.com"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        got[1],
        Event::Request {
            stream_id: 3,
            end_stream: false,
            ..
        }
    ));
    assert_eq!(
        got[2],
        Event::Data {
            stream_id: 3,
            data: Bytes::from_static(b"body"),
            end_stream: true
        }
    );
    let replies = frames(conn.take_output());
    assert_eq!(
        replies,
        [
            Frame::SettingsAck,
            Frame::Ping {
                ack: true,
                payload: *b"pingpong"
            }
        ]
    );
}

#[test]
fn header_blocks_continue_and_trailers_end_the_body() {
    let mut conn = ServerConn::new(ConnConfig::default());
    conn.take_output();
    let mut client = Client::new();
    let long = "v".repeat(40_000);
    let mut list = GET.to_vec();
    list.push(("x-long", &long));
    client.headers(1, &list, false);
    client.data(1, b"a", false);
    client.headers(1, &[("grpc-status", "0")], true);
    conn.recv(&mut client.wire).unwrap();
    let got = events(&mut conn);
    assert!(matches!(&got[0], Event::Request { fields, .. } if fields[4].value.len() == 40_000));
    assert!(matches!(
        got[1],
        Event::Data {
            end_stream: false,
            ..
        }
    ));
    assert!(matches!(&got[2], Event::Trailers { stream_id: 1, fields } if fields[0].value == "0"));
}

#[test]
fn a_frame_inside_a_header_block_ends_the_connection() {
    let mut conn = ServerConn::new(ConnConfig::default());
    conn.take_output();
    let mut client = Client::new();
    let block = client.block(&GET);
    // HEADERS without END_HEADERS, then a PING before the CONTINUATION
    frame::write_headers(1, &block, true, 16_384, &mut client.wire);
    let flags_at = client.wire.len() - block.len() - 5;
    client.wire[flags_at] &= !frame::flags::END_HEADERS;
    frame::write_ping([0; 8], false, &mut client.wire);
    let err = conn.recv(&mut client.wire).unwrap_err();
    assert_eq!(err.code, ErrorCode::PROTOCOL_ERROR);
    assert!(matches!(
        frames(conn.take_output()).last(),
        Some(Frame::GoAway {
            code: ErrorCode::PROTOCOL_ERROR,
            ..
        })
    ));
    // and it stays failed
    assert!(conn.recv(&mut BytesMut::new()).is_err());
}

#[test]
fn stream_id_rules() {
    let cases: [(&[u32], ErrorCode); 2] = [
        // even, then going back
        (&[2], ErrorCode::PROTOCOL_ERROR),
        (&[5, 3], ErrorCode::STREAM_CLOSED),
    ];
    for (ids, code) in cases {
        let mut conn = ServerConn::new(ConnConfig::default());
        let mut client = Client::new();
        for id in ids {
            client.headers(*id, &GET, true);
        }
        assert_eq!(
            conn.recv(&mut client.wire).unwrap_err().code,
            code,
            "{ids:?}"
        );
    }
    // DATA on a stream never opened
    let mut conn = ServerConn::new(ConnConfig::default());
    let mut client = Client::new();
    client.data(7, b"x", true);
    assert_eq!(
        conn.recv(&mut client.wire).unwrap_err().code,
        ErrorCode::PROTOCOL_ERROR
    );
}

#[test]
fn streams_past_the_limit_are_refused_and_the_context_survives() {
    let config = ConnConfig {
        max_concurrent_streams: 2,
        ..Default::default()
    };
    let mut conn = ServerConn::new(config);
    conn.take_output();
    let mut client = Client::new();
    for id in [1, 3, 5] {
        client.headers(id, &GET, false);
    }
    conn.recv(&mut client.wire).unwrap();
    assert_eq!(events(&mut conn).len(), 2);
    let out = frames(conn.take_output());
    assert!(out.contains(&Frame::RstStream {
        stream_id: 5,
        code: ErrorCode::REFUSED_STREAM
    }));
    // once a stream is done, a new one is accepted, and its head (encoded
    // against entries the refused block added) decodes
    conn.close_stream(1);
    client.headers(7, &GET, true);
    conn.recv(&mut client.wire).unwrap();
    assert!(matches!(
        &events(&mut conn)[..],
        [Event::Request { stream_id: 7, fields, .. }] if fields[3].value == "example.com"
    ));
}

#[test]
fn flow_control_of_request_bodies() {
    let config = ConnConfig {
        stream_window: 100,
        connection_window: DEFAULT_WINDOW,
        ..Default::default()
    };
    let mut conn = ServerConn::new(config);
    conn.take_output();
    let mut client = Client::new();
    client.headers(1, &GET, false);
    client.data(1, &[7; 60], false);
    conn.recv(&mut client.wire).unwrap();
    events(&mut conn);
    // taking 60 bytes of a 100-byte window gives them back (more than half)
    conn.release(1, 60);
    let out = frames(conn.take_output());
    assert!(out.contains(&Frame::WindowUpdate {
        stream_id: 1,
        increment: 60
    }));
    // 100 more fit; 101 overrun the stream window: only the stream is reset
    client.data(1, &[7; 100], false);
    client.data(1, &[7; 1], false);
    conn.recv(&mut client.wire).unwrap();
    let got = events(&mut conn);
    assert!(matches!(got[0], Event::Data { .. }), "{got:?}");
    assert_eq!(
        got[1..],
        [Event::StreamError {
            stream_id: 1,
            code: ErrorCode::FLOW_CONTROL_ERROR
        }]
    );
    assert!(frames(conn.take_output()).contains(&Frame::RstStream {
        stream_id: 1,
        code: ErrorCode::FLOW_CONTROL_ERROR
    }));
}

#[test]
fn settings_change_the_send_windows() {
    let mut conn = ServerConn::new(ConnConfig::default());
    let mut client = Client::new();
    client.headers(1, &GET, true);
    conn.recv(&mut client.wire).unwrap();
    assert_eq!(conn.send_window(1), Some(DEFAULT_WINDOW));
    let settings = Settings {
        initial_window_size: Some(1000),
        max_frame_size: Some(32_768),
        ..Default::default()
    };
    settings.write(&mut client.wire);
    frame::write_window_update(1, 5000, &mut client.wire);
    conn.recv(&mut client.wire).unwrap();
    // the stream's window moved with the setting; the connection's did not
    assert_eq!(conn.send_window(1), Some(6000));
    assert_eq!(conn.peer_max_frame_size(), 32_768);
    frame::write_window_update(0, MAX_WINDOW_SIZE, &mut client.wire);
    assert_eq!(
        conn.recv(&mut client.wire).unwrap_err().code,
        ErrorCode::FLOW_CONTROL_ERROR
    );
}

#[test]
fn a_client_that_is_not_http2_is_refused() {
    let mut conn = ServerConn::new(ConnConfig::default());
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
    assert_eq!(
        conn.recv(&mut buf).unwrap_err().code,
        ErrorCode::PROTOCOL_ERROR
    );
    // a preface followed by something other than SETTINGS
    let mut conn = ServerConn::new(ConnConfig::default());
    let mut buf = BytesMut::from(PREFACE);
    frame::write_ping([0; 8], false, &mut buf);
    assert_eq!(
        conn.recv(&mut buf).unwrap_err().code,
        ErrorCode::PROTOCOL_ERROR
    );
}

#[test]
fn frames_on_streams_we_reset_are_ignored() {
    let config = ConnConfig {
        connection_window: DEFAULT_WINDOW,
        ..Default::default()
    };
    let mut conn = ServerConn::new(config);
    conn.take_output();
    let mut client = Client::new();
    client.headers(1, &GET, false);
    conn.recv(&mut client.wire).unwrap();
    events(&mut conn);
    // we give up on the request; the client's body and trailers were in
    // flight: no reset for them, no connection error, and the connection
    // window comes back
    conn.reset_stream(1, ErrorCode::CANCEL);
    conn.take_output();
    for _ in 0..3 {
        client.data(1, &[7; 15_000], false);
    }
    client.headers(1, &[("grpc-status", "0")], true);
    conn.recv(&mut client.wire).unwrap();
    assert!(events(&mut conn).is_empty());
    assert_eq!(
        frames(conn.take_output()),
        [Frame::WindowUpdate {
            stream_id: 0,
            increment: 45_000
        }]
    );
    // the same for a stream refused at the limit
    let mut conn = ServerConn::new(ConnConfig {
        max_concurrent_streams: 0,
        ..Default::default()
    });
    let mut client = Client::new();
    client.headers(1, &GET, false);
    client.data(1, b"body", false);
    client.headers(1, &[("grpc-status", "0")], true);
    conn.recv(&mut client.wire).unwrap();
    assert!(events(&mut conn).is_empty());
    // a stream the client skipped was never used: HEADERS on it still ends
    // the connection
    client.headers(5, &GET, true);
    client.headers(3, &GET, true);
    assert_eq!(
        conn.recv(&mut client.wire).unwrap_err().code,
        ErrorCode::STREAM_CLOSED
    );
}

#[test]
fn headers_after_the_request_ended_reset_only_that_stream() {
    let mut conn = ServerConn::new(ConnConfig::default());
    conn.take_output();
    let mut client = Client::new();
    client.headers(1, &GET, true);
    client.headers(3, &GET, true);
    conn.recv(&mut client.wire).unwrap();
    assert_eq!(events(&mut conn).len(), 2);
    client.headers(1, &[("x-late", "1")], true);
    conn.recv(&mut client.wire).unwrap();
    // the application learns that the stream is gone
    assert_eq!(
        events(&mut conn),
        [Event::StreamError {
            stream_id: 1,
            code: ErrorCode::STREAM_CLOSED
        }]
    );
    assert_eq!(
        frames(conn.take_output()),
        [
            Frame::SettingsAck,
            Frame::RstStream {
                stream_id: 1,
                code: ErrorCode::STREAM_CLOSED
            }
        ]
    );
    // the other stream goes on
    assert_eq!(conn.open_streams(), 1);
    assert!(conn.send_window(3).is_some());
}
