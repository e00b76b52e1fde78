//! HPACK blocks from a hostile peer: the first byte picks the table and list
//! limits, the rest is split into blocks decoded on one context, as a
//! connection would. Decoding may fail; it must not panic, and what it emits
//! must stay within the list limit.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pingora_core::protocols::http::v2::hpack::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let mut decoder = Decoder::new(usize::from(knobs & 0x0f) * 256);
    let limit = 64 + usize::from(knobs >> 4) * 512;
    decoder.set_max_header_list_size(limit);
    // blocks are separated by 0xfe bytes (a block may still hold one: it is
    // then cut in two, which is just another hostile input)
    for block in rest.split(|b| *b == 0xfe) {
        let mut size = 0;
        let res = decoder.decode(&Bytes::copy_from_slice(block), |f| {
            size += f.name.len() + f.value.len() + 32
        });
        assert!(size <= limit);
        if matches!(res, Err(e) if e.is_connection_error()) {
            // the context is broken: a connection ends here
            return;
        }
    }
});
