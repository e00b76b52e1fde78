//! A hostile client's bytes into our HTTP/2 server connection, which
//! answers every request it accepts: an interim head, a final head, a body
//! as large as the input says, and trailers, under the client's windows,
//! while the socket takes the output in pieces. It must not panic, must
//! not queue past its send buffer (plus frame headers), and what it writes
//! must read back as well-formed frames.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use pingora_core::protocols::http::v2::conn::{ConnConfig, Event, Field, ServerConn, PREFACE};
use pingora_core::protocols::http::v2::frame::{self, Settings};
use std::collections::HashMap;
use std::io::IoSlice;

const SEND_BUFFER: usize = 8192;

fn field<'a>(name: &'a [u8], value: &'a [u8]) -> Field<'a> {
    Field {
        name,
        value,
        sensitive: false,
    }
}

fuzz_target!(|data: &[u8]| {
    let [chunk, write_step, body_kib, rest @ ..] = data else {
        return;
    };
    let mut conn = ServerConn::new(ConnConfig {
        max_concurrent_streams: 4,
        stream_window: 1000,
        connection_window: 4000,
        max_send_buffer: SEND_BUFFER,
        ..Default::default()
    });
    let body = Bytes::from(vec![b'x'; usize::from(*body_kib) * 256]);
    // what each answered stream still has to send
    let mut pending: HashMap<u32, Bytes> = HashMap::new();
    let mut written = BytesMut::new();
    let mut buf = BytesMut::from(PREFACE);
    Settings::default().write(&mut buf);
    for piece in rest.chunks(usize::from((*chunk).max(1))) {
        buf.extend_from_slice(piece);
        let failed = conn.recv(&mut buf).is_err();
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Request { stream_id, .. } => {
                    let interim = [field(b":status", b"103"), field(b"link", b"</a>")];
                    let _ = conn.send_headers(stream_id, interim, false);
                    let head = [field(b":status", b"200"), field(b"x-a", b"1")];
                    if conn.send_headers(stream_id, head, false).is_ok() {
                        pending.insert(stream_id, body.clone());
                    }
                }
                Event::Data {
                    stream_id, data, ..
                } => conn.release(stream_id, data.len() as u32),
                Event::Reset { stream_id, .. } | Event::StreamError { stream_id, .. } => {
                    pending.remove(&stream_id);
                }
                _ => {}
            }
        }
        // send what the windows allow; finished bodies end with trailers
        pending.retain(|&id, left| {
            if conn.send_data(id, left, false).is_err() {
                return false;
            }
            if !left.is_empty() {
                return true;
            }
            let _ = conn.send_headers(id, [field(b"grpc-status", b"0")], true);
            conn.close_stream(id);
            false
        });
        assert!(conn.queued_output() <= SEND_BUFFER + 64 * 1024);
        // the socket takes a part of what is queued
        let mut slices = [IoSlice::new(&[]); 8];
        let n = conn.output_slices(&mut slices);
        let mut take = usize::from(*write_step) * 64;
        let mut taken = 0;
        for s in &slices[..n] {
            let k = s.len().min(take);
            written.extend_from_slice(&s[..k]);
            take -= k;
            taken += k;
        }
        conn.advance_output(taken);
        if failed {
            assert!(conn.recv(&mut BytesMut::new()).is_err());
            break;
        }
    }
    written.extend_from_slice(&conn.take_output());
    // our own output must be well-formed frames (a partial last frame is
    // impossible: everything queued was taken)
    loop {
        match frame::read_frame(&mut written, frame::MAX_MAX_FRAME_SIZE) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("we wrote a malformed frame: {e:?}"),
        }
    }
    assert!(
        written.is_empty(),
        "{} bytes of a partial frame",
        written.len()
    );
});
