//! Cost of building a typical request/response head and serializing it for HTTP/1.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pingora_http::{RequestHeader, ResponseHeader};

const REQ_HEADERS: [(&str, &str); 10] = [
    ("Host", "www.example.com"),
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0",
    ),
    ("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Connection", "keep-alive"),
    ("Cookie", "session=abcdef0123456789; theme=dark"),
    ("X-Forwarded-For", "192.0.2.1"),
    ("x-request-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
    ("Cache-Control", "no-cache"),
];

const RESP_HEADERS: [(&str, &str); 8] = [
    ("Date", "Wed, 25 Nov 2026 21:40:00 GMT"),
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Length", "5120"),
    ("Connection", "keep-alive"),
    ("Cache-Control", "max-age=60"),
    ("Set-Cookie", "a=1; Path=/"),
    ("Set-Cookie", "b=2; Path=/"),
    ("Server", "pingora"),
];

fn build_request(case: bool) -> RequestHeader {
    let path = b"/index.html?lang=en";
    let mut req = if case {
        RequestHeader::build("GET", path, Some(REQ_HEADERS.len()))
    } else {
        RequestHeader::build_no_case("GET", path, Some(REQ_HEADERS.len()))
    }
    .expect("static method and path are valid");
    for (name, value) in REQ_HEADERS {
        req.append_header(name, value)
            .expect("static header is valid");
    }
    req
}

fn build_response() -> ResponseHeader {
    let mut resp = ResponseHeader::build(200, Some(RESP_HEADERS.len())).expect("200 is valid");
    for (name, value) in RESP_HEADERS {
        resp.append_header(name, value)
            .expect("static header is valid");
    }
    resp
}

fn bench_headers(c: &mut Criterion) {
    let mut buf = BytesMut::with_capacity(4096);
    c.bench_function("request: build 10 headers (case) + h1 wire", |b| {
        b.iter(|| {
            let req = build_request(true);
            buf.clear();
            req.header_to_h1_wire(&mut buf);
            black_box(buf.len())
        })
    });
    c.bench_function("request: build 10 headers (no case) + h1 wire", |b| {
        b.iter(|| {
            let req = build_request(false);
            buf.clear();
            req.header_to_h1_wire(&mut buf);
            black_box(buf.len())
        })
    });
    let req = build_request(true);
    c.bench_function("request: h1 wire only", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&req).header_to_h1_wire(&mut buf);
            black_box(buf.len())
        })
    });
    c.bench_function("response: build 8 headers + h1 wire", |b| {
        b.iter(|| {
            let resp = build_response();
            buf.clear();
            resp.header_to_h1_wire(&mut buf);
            black_box(buf.len())
        })
    });
    let resp = build_response();
    c.bench_function("response: clone", |b| b.iter(|| black_box(resp.clone())));
}

criterion_group!(benches, bench_headers);
criterion_main!(benches);
