//! HTTP/1 server session hot path: parsing a typical ~500 byte browser
//! request head from an in-memory stream, and that plus writing a response
//! head (Date, Connection, Content-Length framing) and an empty body.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pingora_core::protocols::http::v1::server::HttpSession;
use pingora_http::ResponseHeader;
use std::io::Cursor;

const REQUEST: &[u8] = b"GET /assets/app.js?v=3b9f2c HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n\
Accept: */*\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://www.example.com/index.html\r\n\
Connection: keep-alive\r\n\
Sec-Fetch-Dest: script\r\n\
Sec-Fetch-Mode: no-cors\r\n\
Sec-Fetch-Site: same-origin\r\n\
Cookie: session=4f6a1c2b9e8d7f00; theme=dark; consent=yes\r\n\
If-None-Match: \"5f1a-9c3e\"\r\n\r\n";

fn parse(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("http1");
    group.throughput(Throughput::Bytes(REQUEST.len() as u64));
    group.bench_function("read_request", |b| {
        b.to_async(&rt).iter_batched(
            || HttpSession::new(Box::new(Cursor::new(REQUEST.to_vec()))),
            |mut s| async move {
                let n = s.read_request().await.expect("valid request");
                assert_eq!(n, Some(REQUEST.len()));
                s
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("read_request_and_respond", |b| {
        b.to_async(&rt).iter_batched(
            || HttpSession::new(Box::new(Cursor::new(REQUEST.to_vec()))),
            |mut s| async move {
                s.read_request().await.expect("valid request");
                let mut resp = ResponseHeader::build(200, Some(4)).expect("status");
                resp.insert_header("Content-Type", "text/javascript")
                    .expect("header");
                resp.insert_header("Content-Length", "0").expect("header");
                s.write_response_header(Box::new(resp))
                    .await
                    .expect("write");
                s.finish_body().await.expect("finish");
                s
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
