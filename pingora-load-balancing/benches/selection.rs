//! Selection throughput: one `LoadBalancer::select` per iteration, which
//! includes the lock-free selector load, candidate iteration and the
//! readiness lookup, for 10 and 100 backends.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use pingora_load_balancing::selection::{
    BackendIter, BackendSelection, Consistent, Random, RoundRobin,
};
use pingora_load_balancing::LoadBalancer;

fn addresses(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.0.{}.{}:80", i / 250, i % 250 + 1))
        .collect()
}

fn bench_algorithm<S>(c: &mut Criterion, name: &str)
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    let mut group = c.benchmark_group(name);
    for n in [10, 100] {
        let lb: LoadBalancer<S> =
            LoadBalancer::try_from_iter(addresses(n)).expect("literal addresses");
        let keys: Vec<String> = (0..1024).map(|i| format!("client-{i}")).collect();
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::new("select", n), &n, |bench, _| {
            bench.iter(|| {
                i = (i + 1) & 1023;
                black_box(lb.select(keys[i].as_bytes(), 256))
            })
        });
    }
    group.finish();
}

fn selection(c: &mut Criterion) {
    bench_algorithm::<RoundRobin>(c, "round_robin");
    bench_algorithm::<Random>(c, "random");
    bench_algorithm::<Consistent>(c, "consistent");
}

criterion_group!(benches, selection);
criterion_main!(benches);
