//! Release-then-reuse cost of the connection pool, single-threaded and under
//! contention.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pingora_pool::{ConnectionMeta, ConnectionPool};
use std::sync::Arc;

fn put_get(c: &mut Criterion) {
    let pool: ConnectionPool<u64> = ConnectionPool::new(128);
    let mut id = 0i32;
    c.bench_function("put+get same key", |b| {
        b.iter(|| {
            id = id.wrapping_add(1);
            let handles = pool.put(&ConnectionMeta::new(42, id), 7);
            let conn = pool.get(&42);
            std::hint::black_box((handles, conn))
        })
    });

    let pool: ConnectionPool<u64> = ConnectionPool::new(128);
    let mut n = 0u64;
    c.bench_function("put+get 1000 keys", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            let key = n % 1000;
            let handles = pool.put(&ConnectionMeta::new(key, n as i32), 7);
            let conn = pool.get(&key);
            std::hint::black_box((handles, conn))
        })
    });

    c.bench_function("put into full group (evicts)", |b| {
        b.iter_batched_ref(
            || {
                let pool: ConnectionPool<u64> = ConnectionPool::new(8);
                for i in 0..8 {
                    pool.put(&ConnectionMeta::new(1, i), 0);
                }
                pool
            },
            |pool| std::hint::black_box(pool.put(&ConnectionMeta::new(1, 100), 1)),
            BatchSize::SmallInput,
        )
    });
}

fn contended(c: &mut Criterion) {
    const THREADS: usize = 4;
    const OPS: i32 = 1000;
    c.bench_function("4 threads x 1000 put+get", |b| {
        let pool: Arc<ConnectionPool<u64>> = Arc::new(ConnectionPool::new(128));
        b.iter(|| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let pool = pool.clone();
                    std::thread::spawn(move || {
                        for i in 0..OPS {
                            let key = (i % 4) as u64;
                            let id = t as i32 * OPS + i;
                            let h = pool.put(&ConnectionMeta::new(key, id), 1);
                            std::hint::black_box((h, pool.get(&key)));
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("bench thread");
            }
        })
    });
}

criterion_group!(benches, put_get, contended);
criterion_main!(benches);
