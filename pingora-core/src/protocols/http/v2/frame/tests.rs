use super::*;

fn frame(len: usize, kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    write_header(len, kind, flags, stream_id, &mut b);
    b.put_slice(payload);
    b
}

fn read_one(mut b: BytesMut) -> Result<Option<Frame>, FrameError> {
    read_frame(&mut b, DEFAULT_MAX_FRAME_SIZE)
}

#[test]
fn frames_arrive_in_pieces() {
    let mut wire = BytesMut::new();
    write_ping(*b"12345678", false, &mut wire);
    write_rst_stream(3, ErrorCode::CANCEL, &mut wire);
    let whole = wire.split().freeze();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    // one byte at a time: every prefix is incomplete until the frame is whole
    for b in whole.iter() {
        buf.put_u8(*b);
        if let Some(f) = read_frame(&mut buf, DEFAULT_MAX_FRAME_SIZE).unwrap() {
            got.push(f);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(
        got,
        [
            Frame::Ping {
                ack: false,
                payload: *b"12345678"
            },
            Frame::RstStream {
                stream_id: 3,
                code: ErrorCode::CANCEL
            },
        ]
    );
}

#[test]
fn writers_and_reader_agree() {
    let mut wire = BytesMut::new();
    write_settings_ack(&mut wire);
    write_goaway(7, ErrorCode::ENHANCE_YOUR_CALM, b"calm", &mut wire);
    write_window_update(5, 1000, &mut wire);
    write_data_header(1, 3, true, &mut wire);
    wire.put_slice(b"abc");
    let settings = Settings {
        header_table_size: Some(0),
        enable_push: Some(false),
        max_concurrent_streams: Some(100),
        initial_window_size: Some(1 << 20),
        max_frame_size: Some(1 << 16),
        max_header_list_size: Some(65536),
        enable_connect_protocol: Some(true),
    };
    settings.write(&mut wire);
    let mut got = Vec::new();
    while let Some(f) = read_frame(&mut wire, DEFAULT_MAX_FRAME_SIZE).unwrap() {
        got.push(f);
    }
    assert_eq!(
        got,
        [
            Frame::SettingsAck,
            Frame::GoAway {
                last_stream_id: 7,
                code: ErrorCode::ENHANCE_YOUR_CALM,
                debug: Bytes::from_static(b"calm")
            },
            Frame::WindowUpdate {
                stream_id: 5,
                increment: 1000
            },
            Frame::Data {
                stream_id: 1,
                data: Bytes::from_static(b"abc"),
                end_stream: true,
                flow_len: 3
            },
            Frame::Settings(settings),
        ]
    );
}

#[test]
fn large_header_blocks_continue() {
    let block: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    let mut wire = BytesMut::new();
    write_headers(9, &block, true, DEFAULT_MAX_FRAME_SIZE, &mut wire);
    let mut joined = Vec::new();
    let mut kinds = Vec::new();
    while let Some(f) = read_frame(&mut wire, DEFAULT_MAX_FRAME_SIZE).unwrap() {
        match f {
            Frame::Headers {
                stream_id: 9,
                fragment,
                end_stream: true,
                end_headers,
                priority: None,
            } => {
                kinds.push(("headers", end_headers));
                joined.extend_from_slice(&fragment);
            }
            Frame::Continuation {
                stream_id: 9,
                fragment,
                end_headers,
            } => {
                kinds.push(("continuation", end_headers));
                joined.extend_from_slice(&fragment);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(joined, block);
    assert_eq!(
        kinds,
        [
            ("headers", false),
            ("continuation", false),
            ("continuation", true)
        ]
    );
    // a small block is one HEADERS frame with END_HEADERS
    write_headers(1, b"ab", false, DEFAULT_MAX_FRAME_SIZE, &mut wire);
    assert!(matches!(
        read_frame(&mut wire, DEFAULT_MAX_FRAME_SIZE),
        Ok(Some(Frame::Headers {
            end_headers: true,
            end_stream: false,
            ..
        }))
    ));
}

#[test]
fn padding_and_priority_are_removed() {
    // pad length 2, priority (exclusive, depends on 3, weight 15), block "xy", padding
    let payload = [2, 0x80, 0, 0, 3, 15, b'x', b'y', 0, 0];
    let f = read_one(frame(
        payload.len(),
        HEADERS,
        flags::PADDED | flags::PRIORITY | flags::END_HEADERS,
        5,
        &payload,
    ));
    assert_eq!(
        f,
        Ok(Some(Frame::Headers {
            stream_id: 5,
            fragment: Bytes::from_static(b"xy"),
            end_stream: false,
            end_headers: true,
            priority: Some(Priority {
                dependency: 3,
                exclusive: true,
                weight: 15
            }),
        }))
    );
    // padded DATA: flow control counts the whole payload
    let f = read_one(frame(4, DATA, flags::PADDED, 1, &[1, b'a', b'b', 0]));
    assert_eq!(
        f,
        Ok(Some(Frame::Data {
            stream_id: 1,
            data: Bytes::from_static(b"ab"),
            end_stream: false,
            flow_len: 4
        }))
    );
    // padding that leaves no data at all is allowed
    let f = read_one(frame(3, DATA, flags::PADDED, 1, &[2, 0, 0]));
    assert!(matches!(f, Ok(Some(Frame::Data { data, flow_len: 3, .. })) if data.is_empty()));
}

#[test]
fn malformed_frames_are_refused() {
    use ErrorCode as E;
    let conn = |code| Err(FrameError::Connection(code, ""));
    let cases: Vec<(BytesMut, Result<(), FrameError>)> = vec![
        // padding as long as the payload
        (
            frame(3, DATA, flags::PADDED, 1, &[3, 0, 0]),
            conn(E::PROTOCOL_ERROR),
        ),
        (
            frame(0, DATA, flags::PADDED, 1, &[]),
            conn(E::FRAME_SIZE_ERROR),
        ),
        (frame(1, DATA, 0, 0, b"a"), conn(E::PROTOCOL_ERROR)),
        (frame(1, HEADERS, 0, 0, b"a"), conn(E::PROTOCOL_ERROR)),
        (
            frame(3, HEADERS, flags::PRIORITY, 1, &[0; 3]),
            conn(E::FRAME_SIZE_ERROR),
        ),
        (
            frame(3, RST_STREAM, 0, 1, &[0; 3]),
            conn(E::FRAME_SIZE_ERROR),
        ),
        (frame(4, RST_STREAM, 0, 0, &[0; 4]), conn(E::PROTOCOL_ERROR)),
        (frame(6, SETTINGS, 0, 1, &[0; 6]), conn(E::PROTOCOL_ERROR)),
        (frame(5, SETTINGS, 0, 0, &[0; 5]), conn(E::FRAME_SIZE_ERROR)),
        (
            frame(6, SETTINGS, flags::ACK, 0, &[0; 6]),
            conn(E::FRAME_SIZE_ERROR),
        ),
        // ENABLE_PUSH 2, INITIAL_WINDOW_SIZE 2^31, MAX_FRAME_SIZE 100
        (
            frame(6, SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 2]),
            conn(E::PROTOCOL_ERROR),
        ),
        (
            frame(6, SETTINGS, 0, 0, &[0, 4, 0x80, 0, 0, 0]),
            conn(E::FLOW_CONTROL_ERROR),
        ),
        (
            frame(6, SETTINGS, 0, 0, &[0, 5, 0, 0, 0, 100]),
            conn(E::PROTOCOL_ERROR),
        ),
        (frame(7, PING, 0, 0, &[0; 7]), conn(E::FRAME_SIZE_ERROR)),
        (frame(8, PING, 0, 1, &[0; 8]), conn(E::PROTOCOL_ERROR)),
        (frame(7, GOAWAY, 0, 0, &[0; 7]), conn(E::FRAME_SIZE_ERROR)),
        (
            frame(4, WINDOW_UPDATE, 0, 0, &[0; 4]),
            conn(E::PROTOCOL_ERROR),
        ),
        (
            frame(3, WINDOW_UPDATE, 0, 1, &[0; 3]),
            conn(E::FRAME_SIZE_ERROR),
        ),
        (frame(1, CONTINUATION, 0, 0, b"a"), conn(E::PROTOCOL_ERROR)),
    ];
    for (i, (wire, expected)) in cases.into_iter().enumerate() {
        let got = read_one(wire).map(|_| ());
        let code = |r: &Result<(), FrameError>| match r {
            Err(FrameError::Connection(c, _)) => Some(*c),
            _ => None,
        };
        assert_eq!(code(&got), code(&expected), "case {i}: {got:?}");
    }
}

#[test]
fn stream_errors_spare_the_connection() {
    let stream_err = |r: Result<Option<Frame>, FrameError>| match r {
        Err(FrameError::Stream(id, code, _)) => Some((id, code)),
        _ => None,
    };
    // WINDOW_UPDATE of 0 on a stream, PRIORITY of the wrong size, self-dependency
    let r = read_one(frame(4, WINDOW_UPDATE, 0, 3, &[0; 4]));
    assert_eq!(stream_err(r), Some((3, ErrorCode::PROTOCOL_ERROR)));
    let r = read_one(frame(4, PRIORITY, 0, 3, &[0; 4]));
    assert_eq!(stream_err(r), Some((3, ErrorCode::FRAME_SIZE_ERROR)));
    let r = read_one(frame(5, PRIORITY, 0, 3, &[0, 0, 0, 3, 0]));
    assert_eq!(stream_err(r), Some((3, ErrorCode::PROTOCOL_ERROR)));
    // and the frame was consumed: the next one reads
    let mut wire = frame(4, WINDOW_UPDATE, 0, 3, &[0; 4]);
    write_settings_ack(&mut wire);
    assert!(read_frame(&mut wire, DEFAULT_MAX_FRAME_SIZE).is_err());
    assert_eq!(
        read_frame(&mut wire, DEFAULT_MAX_FRAME_SIZE),
        Ok(Some(Frame::SettingsAck))
    );
}

#[test]
fn oversized_and_unknown_frames() {
    // refused from its header alone, before the payload arrives
    let mut wire = BytesMut::new();
    write_header(20_000, DATA, 0, 1, &mut wire);
    assert_eq!(
        read_frame(&mut wire, DEFAULT_MAX_FRAME_SIZE),
        Err(FrameError::Connection(
            ErrorCode::FRAME_SIZE_ERROR,
            "frame larger than SETTINGS_MAX_FRAME_SIZE"
        ))
    );
    // unknown types are skipped whole; the reserved stream bit is ignored
    let mut wire = frame(3, 0xfa, 0xff, 1, b"???");
    wire[5] |= 0x80;
    write_settings_ack(&mut wire);
    assert_eq!(read_one(wire.clone()), Ok(Some(Frame::Unknown(0xfa))));
    wire.advance(HEADER_LEN + 3);
    assert_eq!(read_one(wire), Ok(Some(Frame::SettingsAck)));
}

#[test]
fn random_bytes_never_panic_or_stall() {
    let mut next = crate::protocols::http::v2::xorshift(0x2545_f491_4f6c_dd1d);
    for round in 0..5_000 {
        let mut wire = BytesMut::new();
        for _ in 0..1 + next() % 6 {
            // a plausible header (known type, small length) with random flags,
            // stream and payload; sometimes pure noise
            let len = (next() % 40) as usize;
            if next() % 5 == 0 {
                wire.extend((0..len + 9).map(|_| next() as u8));
                continue;
            }
            write_header(
                len,
                (next() % 11) as u8,
                next() as u8,
                (next() % 4) as u32,
                &mut wire,
            );
            wire.extend((0..len).map(|_| next() as u8));
        }
        // every call either consumes a frame, refuses one, or waits for more
        for _ in 0..100 {
            let before = wire.len();
            match read_frame(&mut wire, DEFAULT_MAX_FRAME_SIZE) {
                Ok(Some(_)) => assert!(wire.len() < before, "round {round}: nothing consumed"),
                Ok(None) | Err(FrameError::Connection(..)) => break,
                Err(FrameError::Stream(..)) => assert!(wire.len() < before, "round {round}"),
            }
        }
    }
}
