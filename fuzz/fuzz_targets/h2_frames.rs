//! A hostile peer's bytes as HTTP/2 frames, fed in pieces of the sizes the
//! first bytes pick: every call must consume a frame, refuse it, or wait for
//! more, and never panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pingora_core::protocols::http::v2::frame::{read_frame, FrameError, DEFAULT_MAX_FRAME_SIZE};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk.max(1));
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match read_frame(&mut buf, DEFAULT_MAX_FRAME_SIZE) {
                Ok(Some(_)) | Err(FrameError::Stream(..)) => assert!(buf.len() < before),
                Ok(None) => break,
                // the connection ends here
                Err(FrameError::Connection(..)) => return,
            }
        }
    }
});
