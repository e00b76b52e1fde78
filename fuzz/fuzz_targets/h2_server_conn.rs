//! A hostile client's bytes into the receiving half of our HTTP/2 server
//! connection, after a valid preface and SETTINGS, in pieces of the size the
//! first byte picks; every body chunk is taken (and its window given back)
//! at once. It must not panic, and once it fails it stays failed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pingora_core::protocols::http::v2::conn::{ConnConfig, Event, ServerConn, PREFACE};
use pingora_core::protocols::http::v2::frame::Settings;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let mut conn = ServerConn::new(ConnConfig {
        max_concurrent_streams: 4,
        stream_window: 1000,
        connection_window: 4000,
        ..Default::default()
    });
    let mut buf = BytesMut::from(PREFACE);
    Settings::default().write(&mut buf);
    for piece in rest.chunks(usize::from(chunk.max(1))) {
        buf.extend_from_slice(piece);
        if conn.recv(&mut buf).is_err() {
            assert!(conn.recv(&mut BytesMut::new()).is_err());
            return;
        }
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Data {
                    stream_id, data, ..
                } => conn.release(stream_id, data.len() as u32),
                Event::Request {
                    stream_id,
                    end_stream: true,
                    ..
                } => conn.close_stream(stream_id),
                _ => {}
            }
        }
        conn.take_output();
    }
});
