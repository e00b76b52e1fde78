//! HPACK on an HTTP/2 proxy's hot path: encoding the response head an nginx
//! origin sends for a static file, and decoding the request head h2load
//! sends, both in the steady state of a connection (the dynamic tables hold
//! what repeats; the date changes once a second).

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion};
use pingora_core::protocols::http::v2::hpack::{Decoder, Encoder, Field};
use std::hint::black_box;

/// The suite's 1 KiB response through the proxy, as HTTP/2 sends it.
const RESPONSE: [(&str, &str); 8] = [
    (":status", "200"),
    ("server", "nginx/1.26.3"),
    ("date", "Fri, 27 Nov 2026 19:30:00 GMT"),
    ("content-type", "application/octet-stream"),
    ("content-length", "1024"),
    ("last-modified", "Fri, 27 Nov 2026 19:02:11 GMT"),
    ("etag", "\"6928a0c3-400\""),
    ("accept-ranges", "bytes"),
];

/// The request head h2load sends.
const REQUEST: [(&str, &str); 5] = [
    (":method", "GET"),
    (":path", "/1k"),
    (":scheme", "http"),
    (":authority", "127.0.0.1:6189"),
    ("user-agent", "h2load nghttp2/1.64.0"),
];

fn fields<'a>(list: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = Field<'a>> {
    list.iter().map(|(n, v)| Field {
        name: n.as_bytes(),
        value: v.as_bytes(),
        sensitive: false,
    })
}

fn hpack(c: &mut Criterion) {
    let mut group = c.benchmark_group("hpack");
    let mut encoder = Encoder::default();
    let mut block = BytesMut::with_capacity(256);
    encoder.encode(fields(&RESPONSE), &mut block);
    group.bench_function("encode_response", |b| {
        b.iter(|| {
            block.clear();
            encoder.encode(fields(black_box(&RESPONSE)), &mut block);
            black_box(block.len())
        })
    });

    // a block as a client sends it after the first request: all but the
    // path indexed
    let mut client = Encoder::default();
    let mut first = BytesMut::new();
    client.encode(fields(&REQUEST), &mut first);
    let mut steady = BytesMut::new();
    client.encode(fields(&REQUEST), &mut steady);
    let (first, steady) = (first.freeze(), steady.freeze());
    let mut decoder = Decoder::new(4096);
    decoder.decode(&first, |_| {}).expect("valid block");
    group.bench_function("decode_request", |b| {
        b.iter(|| {
            let mut n = 0;
            decoder
                .decode(black_box(&steady), |f| n += f.value.len())
                .expect("valid block");
            black_box(n)
        })
    });
    group.finish();
}

criterion_group!(benches, hpack);
criterion_main!(benches);
