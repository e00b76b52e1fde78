//! Criterion bench for HTTP/1 header parsing (filled in with the server session).
use criterion::{criterion_group, criterion_main, Criterion};

fn parse(c: &mut Criterion) {
    c.bench_function("noop", |b| b.iter(|| 1 + 1));
}

criterion_group!(benches, parse);
criterion_main!(benches);
