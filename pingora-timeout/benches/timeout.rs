//! tokio::time::timeout vs the lazy `tokio_timeout` vs the shared-wheel `fast_timeout`
//! (= `pingora_timeout::timeout`), for:
//! (a) an immediately ready future, (b) a future pending exactly once,
//! (c) 1000 concurrent pending timeouts created, polled once and dropped.
//! A final summary prints the fast_timeout / tokio time ratios.

use criterion::{black_box, Criterion};
use pingora_timeout::{fast_timeout::fast_timeout, tokio_timeout};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

const D: Duration = Duration::from_secs(10);
const BATCH: usize = 1000;

/// Pending on its first poll (waking itself), ready on the second.
struct PendingOnce(bool);

impl Future for PendingOnce {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if self.0 {
            Poll::Ready(1)
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn rt() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn noop_waker() -> Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    Waker::from(Arc::new(Noop))
}

#[derive(Clone, Copy)]
enum Kind {
    Tokio,
    Lazy,
    Fast,
}
const KINDS: [(Kind, &str); 3] = [
    (Kind::Tokio, "tokio::time::timeout"),
    (Kind::Lazy, "tokio_timeout (lazy)"),
    (Kind::Fast, "fast_timeout"),
];

async fn run_one<F: Future<Output = u32>>(kind: Kind, fut: F) -> u32 {
    match kind {
        Kind::Tokio => tokio::time::timeout(D, fut).await.unwrap_or(0),
        Kind::Lazy => tokio_timeout(D, fut).await.unwrap_or(0),
        Kind::Fast => fast_timeout(D, fut).await.unwrap_or(0),
    }
}

/// Create BATCH timeouts over never-ready futures, poll each once (arming its timer), drop all.
fn batch(kind: Kind, cx: &mut Context<'_>) {
    macro_rules! go {
        ($make:expr) => {{
            let mut v: Vec<_> = (0..BATCH)
                .map(|_| Box::pin($make(D, std::future::pending::<()>())))
                .collect();
            for f in v.iter_mut() {
                assert!(f.as_mut().poll(cx).is_pending());
            }
            drop(black_box(v));
        }};
    }
    match kind {
        Kind::Tokio => go!(tokio::time::timeout),
        Kind::Lazy => go!(tokio_timeout),
        Kind::Fast => go!(fast_timeout),
    }
}

fn bench(c: &mut Criterion) {
    let rt = rt();
    let mut g = c.benchmark_group("a_ready");
    for (kind, name) in KINDS {
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async move { black_box(run_one(kind, async { 1 }).await) })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("b_pending_once");
    for (kind, name) in KINDS {
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async move { black_box(run_one(kind, PendingOnce(false)).await) })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("c_1000_concurrent_pending");
    let _guard = rt.enter();
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    for (kind, name) in KINDS {
        g.bench_function(name, |b| b.iter(|| batch(kind, &mut cx)));
    }
    g.finish();
}

/// Nanoseconds per operation for `iters` runs of each scenario, measured directly.
fn summary() {
    let rt = rt();
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let time = |f: &mut dyn FnMut()| {
        f(); // warm up
        let start = Instant::now();
        for _ in 0..20 {
            f();
        }
        start.elapsed().as_secs_f64() / 20.0
    };
    println!("\n=== summary (ns per timeout; ratio = fast_timeout / tokio::time::timeout) ===");
    for (label, per) in [
        ("a_ready", 100_000usize),
        ("b_pending_once", 100_000),
        ("c_1000_concurrent", BATCH),
    ] {
        let mut ns = [0f64; 3];
        for (i, (kind, _)) in KINDS.iter().enumerate() {
            let kind = *kind;
            let secs = match label {
                "a_ready" => time(&mut || {
                    rt.block_on(async {
                        for _ in 0..per {
                            black_box(run_one(kind, async { 1 }).await);
                        }
                    })
                }),
                "b_pending_once" => time(&mut || {
                    rt.block_on(async {
                        for _ in 0..per {
                            black_box(run_one(kind, PendingOnce(false)).await);
                        }
                    })
                }),
                _ => {
                    let _guard = rt.enter();
                    time(&mut || batch(kind, &mut cx))
                }
            };
            ns[i] = secs * 1e9 / per as f64;
        }
        let ratio = ns[2] / ns[0];
        println!(
            "{label:<20} tokio {:>8.1}  lazy {:>8.1}  fast {:>8.1}  fast/tokio {:.3}",
            ns[0], ns[1], ns[2], ratio
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    summary();
}
