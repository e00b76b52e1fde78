use super::tests::{events, frames, Client, GET};
use super::*;
use crate::protocols::http::v2::xorshift;
use std::io::IoSlice;

fn field<'a>(name: &'a str, value: &'a str) -> Field<'a> {
    Field {
        name: name.as_bytes(),
        value: value.as_bytes(),
        sensitive: false,
    }
}

/// A connection whose client sent `settings` and opened `streams` (id,
/// request ended), with the output so far taken.
fn open(config: ConnConfig, settings: Settings, streams: &[(u32, bool)]) -> (ServerConn, Client) {
    let mut conn = ServerConn::new(config);
    let mut client = Client::new();
    settings.write(&mut client.wire);
    for (id, end) in streams {
        client.headers(*id, &GET, *end);
    }
    conn.recv(&mut client.wire).unwrap();
    assert_eq!(events(&mut conn).len(), streams.len());
    conn.take_output();
    conn.take_window_grew();
    (conn, client)
}

/// Stream windows large enough not to matter.
fn big_windows() -> Settings {
    Settings {
        initial_window_size: Some(1 << 20),
        ..Default::default()
    }
}

/// The DATA frames in `out`: (stream, length, end_stream).
fn data_frames(out: BytesMut) -> Vec<(u32, usize, bool)> {
    frames(out)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Data {
                stream_id,
                data,
                end_stream,
                ..
            } => Some((stream_id, data.len(), end_stream)),
            _ => None,
        })
        .collect()
}

/// A decoded header block: (stream, end_stream, fields as strings).
type Block = (u32, bool, Vec<(String, String)>);

/// Decode the header block of every HEADERS frame (and its CONTINUATION
/// frames) in `out`.
fn header_blocks(out: BytesMut) -> Vec<Block> {
    let mut decoder = Decoder::new(4096);
    let mut blocks = Vec::new();
    let mut pending: Option<(u32, bool, BytesMut)> = None;
    let mut finish = |(id, end, block): (u32, bool, BytesMut)| {
        let mut fields = Vec::new();
        decoder
            .decode(&block.freeze(), |f| {
                let s = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
                fields.push((s(&f.name), s(&f.value)));
            })
            .unwrap();
        blocks.push((id, end, fields));
    };
    for f in frames(out) {
        match f {
            Frame::Headers {
                stream_id,
                fragment,
                end_stream,
                end_headers,
                ..
            } => {
                let p = (stream_id, end_stream, BytesMut::from(&fragment[..]));
                if end_headers {
                    finish(p);
                } else {
                    pending = Some(p);
                }
            }
            Frame::Continuation {
                fragment,
                end_headers,
                ..
            } => {
                let mut p = pending.take().unwrap();
                p.2.extend_from_slice(&fragment);
                if end_headers {
                    finish(p);
                } else {
                    pending = Some(p);
                }
            }
            _ => {}
        }
    }
    assert!(pending.is_none());
    blocks
}

fn strings(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn response_heads_round_trip_and_large_ones_continue() {
    let (mut conn, _) = open(ConnConfig::default(), Settings::default(), &[(1, true)]);
    let long = "v".repeat(40_000);
    let heads: [&[(&str, &str)]; 3] = [
        &[(":status", "103"), ("link", "</a.css>; rel=preload")],
        &[(":status", "200"), ("content-type", "text/plain")],
        &[(":status", "200"), ("x-long", &long)],
    ];
    for head in &heads[..2] {
        let fields = head.iter().map(|(n, v)| field(n, v));
        conn.send_headers(1, fields, false).unwrap();
    }
    let fields = heads[2].iter().map(|(n, v)| field(n, v));
    conn.send_headers(1, fields, true).unwrap();
    let out = conn.take_output();
    // the 40 kB block needs CONTINUATION frames at the default frame size
    let continuations = frames(out.clone())
        .iter()
        .filter(|f| matches!(f, Frame::Continuation { .. }))
        .count();
    assert_eq!(continuations, 2);
    let blocks = header_blocks(out);
    let want: Vec<_> = heads
        .iter()
        .zip([false, false, true])
        .map(|(head, end)| (1, end, strings(head)))
        .collect();
    assert_eq!(blocks, want);
    assert_eq!(
        conn.send_headers(1, [field(":status", "200")], false),
        Err(SendError::StreamClosed)
    );
    assert_eq!(
        conn.send_headers(9, [field(":status", "200")], false),
        Err(SendError::StreamClosed)
    );
}

#[test]
fn the_client_table_size_limits_our_encoder() {
    let settings = Settings {
        header_table_size: Some(0),
        ..Default::default()
    };
    let (mut conn, _) = open(ConnConfig::default(), settings, &[(1, true)]);
    conn.send_headers(1, [field(":status", "200"), field("x-a", "b")], true)
        .unwrap();
    let out = frames(conn.take_output());
    let Frame::Headers { fragment, .. } = &out[0] else {
        panic!("{out:?}");
    };
    // a size update to 0 opens the block
    assert_eq!(fragment[0], 0x20);
}

#[test]
fn our_settings_offer_extended_connect_when_asked() {
    for enabled in [false, true] {
        let mut conn = ServerConn::new(ConnConfig {
            enable_connect_protocol: enabled,
            ..Default::default()
        });
        let Frame::Settings(s) = frames(conn.take_output())[0] else {
            panic!("settings first");
        };
        assert_eq!(s.enable_connect_protocol, enabled.then_some(true));
    }
}

#[test]
fn data_is_limited_by_the_stream_window() {
    let settings = Settings {
        initial_window_size: Some(1000),
        ..Default::default()
    };
    let (mut conn, _) = open(ConnConfig::default(), settings, &[(1, true), (3, true)]);
    let mut data = Bytes::from(vec![1u8; 5000]);
    conn.send_data(1, &mut data, true).unwrap();
    assert_eq!(data.len(), 4000);
    assert_eq!(conn.send_window(1), Some(0));
    // the other stream still has its own window, and the connection's rest
    assert_eq!(conn.send_window(3), Some(1000));
    assert_eq!(data_frames(conn.take_output()), [(1, 1000, false)]);
    conn.send_data(1, &mut data, true).unwrap();
    assert!(!conn.has_output());
    assert_eq!(data.len(), 4000);
}

#[test]
fn data_is_limited_by_the_connection_window() {
    let (mut conn, _) = open(
        ConnConfig::default(),
        big_windows(),
        &[(1, true), (3, true)],
    );
    let mut data = Bytes::from(vec![1u8; 100_000]);
    conn.send_data(1, &mut data, true).unwrap();
    assert_eq!(data.len(), 100_000 - 65_535);
    let mut other = Bytes::from_static(b"x");
    conn.send_data(3, &mut other, true).unwrap();
    assert_eq!(other.len(), 1);
    let sizes: usize = data_frames(conn.take_output()).iter().map(|f| f.1).sum();
    assert_eq!(sizes, 65_535);
}

#[test]
fn data_is_limited_by_the_send_buffer() {
    let config = ConnConfig {
        max_send_buffer: 10_000,
        ..Default::default()
    };
    let (mut conn, _) = open(config, big_windows(), &[(1, true)]);
    conn.send_headers(1, [field(":status", "200")], false)
        .unwrap();
    let head = conn.queued_output();
    let mut data = Bytes::from(vec![1u8; 50_000]);
    conn.send_data(1, &mut data, true).unwrap();
    assert_eq!(data.len(), 50_000 - (10_000 - head));
    // full: nothing more until the output is written
    conn.send_data(1, &mut data, true).unwrap();
    assert_eq!(data.len(), 50_000 - (10_000 - head));
    assert!(!conn.take_window_grew());
    let written = conn.queued_output();
    conn.advance_output(written);
    assert!(!conn.has_output());
    assert!(conn.take_window_grew());
    conn.send_data(1, &mut data, true).unwrap();
    assert_eq!(conn.queued_output(), 10_000 + 9);
}

#[test]
fn frames_are_split_at_the_client_frame_size_and_the_last_ends_the_stream() {
    for (frame_size, want) in [
        (
            None,
            vec![(1, 16_384, false), (1, 16_384, false), (1, 7232, true)],
        ),
        (Some(32_768), vec![(1, 32_768, false), (1, 7232, true)]),
    ] {
        let settings = Settings {
            max_frame_size: frame_size,
            ..big_windows()
        };
        let (mut conn, _) = open(ConnConfig::default(), settings, &[(1, false)]);
        let mut data = Bytes::from(vec![1u8; 40_000]);
        conn.send_data(1, &mut data, true).unwrap();
        assert!(data.is_empty());
        assert_eq!(data_frames(conn.take_output()), want);
        // the client has not ended its side: the stream stays until it does
        assert_eq!(
            conn.send_data(1, &mut Bytes::from_static(b"x"), false),
            Err(SendError::StreamClosed)
        );
        assert_eq!(conn.open_streams(), 1);
    }
}

#[test]
fn an_empty_end_goes_out_at_a_zero_window() {
    let settings = Settings {
        initial_window_size: Some(0),
        ..Default::default()
    };
    let (mut conn, _) = open(ConnConfig::default(), settings, &[(1, true), (3, true)]);
    // data waits, and so does its end
    let mut data = Bytes::from_static(b"abc");
    conn.send_data(1, &mut data, true).unwrap();
    assert_eq!(data.len(), 3);
    assert!(!conn.has_output());
    assert_eq!(conn.open_streams(), 2);
    // an empty end needs no window
    conn.send_data(3, &mut Bytes::new(), true).unwrap();
    assert_eq!(data_frames(conn.take_output()), [(3, 0, true)]);
    assert_eq!(conn.open_streams(), 1);
}

#[test]
fn window_growth_unblocks_and_is_reported_once() {
    let settings = Settings {
        initial_window_size: Some(100),
        ..Default::default()
    };
    let (mut conn, mut client) = open(ConnConfig::default(), settings, &[(1, true)]);
    let mut data = Bytes::from(vec![1u8; 1000]);
    conn.send_data(1, &mut data, true).unwrap();
    assert_eq!(data.len(), 900);
    conn.take_output();
    conn.take_window_grew();
    // a smaller INITIAL_WINDOW_SIZE grows nothing
    Settings {
        initial_window_size: Some(50),
        ..Default::default()
    }
    .write(&mut client.wire);
    conn.recv(&mut client.wire).unwrap();
    assert!(!conn.take_window_grew());
    // -50 + 650: 600 may go
    Settings {
        initial_window_size: Some(700),
        ..Default::default()
    }
    .write(&mut client.wire);
    conn.recv(&mut client.wire).unwrap();
    assert!(conn.take_window_grew());
    assert!(!conn.take_window_grew());
    conn.send_data(1, &mut data, true).unwrap();
    assert_eq!(data.len(), 300);
    // a WINDOW_UPDATE for the stream lets the rest go, with the end
    frame::write_window_update(1, 300, &mut client.wire);
    conn.recv(&mut client.wire).unwrap();
    assert!(conn.take_window_grew());
    conn.send_data(1, &mut data, true).unwrap();
    assert!(data.is_empty());
    let mut out = data_frames(conn.take_output());
    assert_eq!(out.pop(), Some((1, 300, true)));
    // the connection's window: 65,535 - 1,000 sent
    let (mut conn, mut client) = open(ConnConfig::default(), big_windows(), &[(1, true)]);
    let mut data = Bytes::from(vec![1u8; 70_000]);
    conn.send_data(1, &mut data, true).unwrap();
    conn.take_output();
    conn.take_window_grew();
    frame::write_window_update(0, 10_000, &mut client.wire);
    conn.recv(&mut client.wire).unwrap();
    assert!(conn.take_window_grew());
    conn.send_data(1, &mut data, true).unwrap();
    assert!(data.is_empty());
}

#[test]
fn large_chunks_are_queued_without_a_copy() {
    let (mut conn, _) = open(ConnConfig::default(), big_windows(), &[(1, true)]);
    conn.send_headers(1, [field(":status", "200")], false)
        .unwrap();
    let small = Bytes::from(vec![2u8; 100]);
    let big = Bytes::from(vec![3u8; 30_000]);
    conn.send_data(1, &mut small.clone(), false).unwrap();
    conn.send_data(1, &mut big.clone(), true).unwrap();
    let mut slices = [IoSlice::new(&[]); 8];
    let n = conn.output_slices(&mut slices);
    let at = |s: &IoSlice| s.as_ptr();
    // the head, the small frame and the first big frame's header; the big
    // chunk's first 16,384 bytes; the second header; its rest
    assert_eq!(n, 4);
    assert_eq!(at(&slices[1]), big.as_ptr());
    assert_eq!(slices[1].len(), 16_384);
    assert_eq!(at(&slices[3]), big[16_384..].as_ptr());
    assert_eq!(slices[2].len(), 9);
    // the small chunk was copied, next to its frame header
    assert!(slices.iter().all(|s| at(s) != small.as_ptr()));
    let total: usize = slices[..n].iter().map(|s| s.len()).sum();
    assert_eq!(total, conn.queued_output());
    // fewer slots than chunks: the first ones, in order
    let mut two = [IoSlice::new(&[]); 2];
    assert_eq!(conn.output_slices(&mut two), 2);
    assert_eq!(at(&two[1]), big.as_ptr());
}

#[test]
fn trailers_end_the_response_after_its_body() {
    let (mut conn, _) = open(ConnConfig::default(), Settings::default(), &[(1, true)]);
    conn.send_headers(1, [field(":status", "200")], false)
        .unwrap();
    conn.send_data(1, &mut Bytes::from_static(b"body"), false)
        .unwrap();
    conn.send_headers(1, [field("grpc-status", "0")], true)
        .unwrap();
    assert_eq!(
        conn.send_data(1, &mut Bytes::from_static(b"more"), false),
        Err(SendError::StreamClosed)
    );
    let out = conn.take_output();
    assert_eq!(data_frames(out.clone()), [(1, 4, false)]);
    let blocks = header_blocks(out);
    assert_eq!(blocks[1], (1, true, strings(&[("grpc-status", "0")])));
}

#[test]
fn a_stream_ended_on_both_sides_frees_its_place() {
    let config = ConnConfig {
        max_concurrent_streams: 1,
        ..Default::default()
    };
    // the response ends after the request
    let (mut conn, mut client) = open(config, Settings::default(), &[(1, false)]);
    client.data(1, b"body", true);
    conn.recv(&mut client.wire).unwrap();
    events(&mut conn);
    assert_eq!(conn.open_streams(), 1);
    conn.send_headers(1, [field(":status", "204")], true)
        .unwrap();
    assert_eq!(conn.open_streams(), 0);
    // so the next stream is accepted; its request ends after the response
    client.headers(3, &GET, false);
    conn.recv(&mut client.wire).unwrap();
    assert_eq!(events(&mut conn).len(), 1);
    conn.send_headers(3, [field(":status", "200")], false)
        .unwrap();
    conn.send_data(3, &mut Bytes::from_static(b"ok"), true)
        .unwrap();
    assert_eq!(conn.open_streams(), 1);
    client.data(3, b"", true);
    conn.recv(&mut client.wire).unwrap();
    assert_eq!(events(&mut conn).len(), 1);
    assert_eq!(conn.open_streams(), 0);
    // nothing left to reset
    conn.take_output();
    conn.close_stream(3);
    assert!(!conn.has_output());
}

#[test]
fn closing_a_stream_cancels_or_declines_the_rest() {
    let (mut conn, _) = open(
        ConnConfig::default(),
        Settings::default(),
        &[(1, false), (3, false)],
    );
    // response unfinished: cancelled
    conn.send_headers(1, [field(":status", "200")], false)
        .unwrap();
    conn.close_stream(1);
    // response complete, request body still coming: declined
    conn.send_headers(3, [field(":status", "200")], true)
        .unwrap();
    conn.close_stream(3);
    assert_eq!(conn.open_streams(), 0);
    let rst = |stream_id, code| Frame::RstStream { stream_id, code };
    let resets: Vec<_> = frames(conn.take_output())
        .into_iter()
        .filter(|f| matches!(f, Frame::RstStream { .. }))
        .collect();
    assert_eq!(
        resets,
        [rst(1, ErrorCode::CANCEL), rst(3, ErrorCode::NO_ERROR)]
    );
}

#[test]
fn going_away_refuses_new_streams_and_keeps_decoding() {
    let (mut conn, mut client) = open(ConnConfig::default(), Settings::default(), &[(1, false)]);
    conn.go_away(ErrorCode::NO_ERROR);
    conn.go_away(ErrorCode::NO_ERROR);
    let goaway = |last_stream_id, code| Frame::GoAway {
        last_stream_id,
        code,
        debug: Bytes::new(),
    };
    assert_eq!(frames(conn.take_output()), [goaway(1, ErrorCode::NO_ERROR)]);
    assert!(!conn.is_failed());
    // a new stream, whose head adds an entry to the client's table
    let mut head = GET.to_vec();
    head.push(("x-tag", "added"));
    client.headers(3, &head, true);
    // trailers of the open stream that refer to that entry
    client.headers(1, &[("x-tag", "added")], true);
    conn.recv(&mut client.wire).unwrap();
    assert!(matches!(
        &events(&mut conn)[..],
        [Event::Trailers { stream_id: 1, fields }] if fields[0].value == "added"
    ));
    assert_eq!(
        frames(conn.take_output()),
        [Frame::RstStream {
            stream_id: 3,
            code: ErrorCode::REFUSED_STREAM
        }]
    );
    // the open stream may still answer
    conn.send_headers(1, [field(":status", "200")], false)
        .unwrap();
    conn.take_output();
    // an error escalates once, and fails the connection
    conn.go_away(ErrorCode::ENHANCE_YOUR_CALM);
    conn.go_away(ErrorCode::NO_ERROR);
    conn.go_away(ErrorCode::INTERNAL_ERROR);
    assert_eq!(
        frames(conn.take_output()),
        [goaway(1, ErrorCode::ENHANCE_YOUR_CALM)]
    );
    assert!(conn.is_failed());
    assert_eq!(
        conn.send_data(1, &mut Bytes::from_static(b"x"), true),
        Err(SendError::ConnectionClosed)
    );
    assert_eq!(
        conn.send_headers(1, [field("a", "b")], true),
        Err(SendError::ConnectionClosed)
    );
    assert!(conn.recv(&mut client.wire).is_err());
}

#[test]
fn a_connection_error_closes_every_stream_for_sending() {
    let (mut conn, mut client) = open(ConnConfig::default(), Settings::default(), &[(1, true)]);
    frame::write_ping([0; 8], false, &mut client.wire);
    // the stream id's last byte: a PING on a stream
    let at = client.wire.len() - 9;
    client.wire[at] = 1;
    assert!(conn.recv(&mut client.wire).is_err());
    assert!(conn.is_failed());
    assert_eq!(
        conn.send_headers(1, [field(":status", "200")], true),
        Err(SendError::ConnectionClosed)
    );
}

/// Partial writes of any size, with sends in between, put out the same
/// bytes, in the same order, as one `take_output` of a twin connection.
#[test]
fn partial_writes_keep_the_byte_order() {
    let mut rand = xorshift(0x5eed);
    let settings = Settings {
        initial_window_size: Some(MAX_WINDOW_SIZE),
        ..Default::default()
    };
    let mut twins = [(); 2].map(|_| {
        let config = ConnConfig {
            max_send_buffer: usize::MAX,
            ..Default::default()
        };
        let (mut conn, mut client) = open(config, settings, &[(1, true), (3, true)]);
        frame::write_window_update(0, MAX_WINDOW_SIZE - DEFAULT_WINDOW, &mut client.wire);
        conn.recv(&mut client.wire).unwrap();
        conn.take_output();
        conn
    });
    let mut written = Vec::new();
    for step in 0..200u32 {
        let stream = if step % 3 == 0 { 3 } else { 1 };
        let len = (rand() % 3000) as usize;
        let body: Vec<u8> = (0..len).map(|i| (i as u32 ^ step) as u8).collect();
        let body = Bytes::from(body);
        for conn in &mut twins {
            if step % 7 == 0 {
                let value = step.to_string();
                let head = [field(":status", "200"), field("x-step", &value)];
                conn.send_headers(stream, head, false).unwrap();
            }
            let mut data = body.clone();
            conn.send_data(stream, &mut data, false).unwrap();
            assert!(data.is_empty());
        }
        // write some of what the second twin has queued
        let conn = &mut twins[1];
        let mut slots = [IoSlice::new(&[]); 3];
        let n = conn.output_slices(&mut slots);
        let avail: Vec<u8> = slots[..n].iter().flat_map(|s| s.iter().copied()).collect();
        let take = (rand() as usize) % (avail.len() + 1);
        written.extend_from_slice(&avail[..take]);
        conn.advance_output(take);
    }
    let [mut whole, mut written_twin] = twins;
    written.extend_from_slice(&written_twin.take_output());
    assert_eq!(written, whole.take_output().to_vec());
}
