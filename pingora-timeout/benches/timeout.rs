//! tokio::time::timeout vs the lazy `tokio_timeout` vs the shared-wheel `fast_timeout`
//! (= `pingora_timeout::timeout`), for:
//! (a) an immediately ready future, (b) a future pending exactly once,
//! (c) 1000 concurrent pending timeouts created, polled once and dropped.
//! A final summary prints the fast_timeout / tokio time ratios.

use criterion::{black_box, Criterion};
use pingora_timeout::{fast_timeout::fast_timeout, tokio_timeout};
use std::future::Future;
use std::pin::{pin, Pin};
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

/// Poll `fut` under timeout `kind` to completion with a no-op waker (no scheduler in the loop,
/// so only the timeout's own cost is measured). Returns the number of polls.
fn drive<F: Future<Output = u32>>(kind: Kind, fut: F, cx: &mut Context<'_>) -> u32 {
    fn run<T: Future>(fut: T, cx: &mut Context<'_>) -> u32 {
        let mut fut = pin!(fut);
        let mut polls = 1;
        while fut.as_mut().poll(cx).is_pending() {
            polls += 1;
        }
        polls
    }
    match kind {
        Kind::Tokio => run(tokio::time::timeout(D, fut), cx),
        Kind::Lazy => run(tokio_timeout(D, fut), cx),
        Kind::Fast => run(fast_timeout(D, fut), cx),
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

/// One measured scenario: run it once for a timeout kind.
type Scenario = fn(Kind, &mut Context<'_>);

fn ready(kind: Kind, cx: &mut Context<'_>) {
    black_box(drive(kind, async { 1 }, cx));
}

fn pending_once(kind: Kind, cx: &mut Context<'_>) {
    black_box(drive(kind, PendingOnce(false), cx));
}

/// (name, timeouts per call, scenario)
const SCENARIOS: [(&str, usize, Scenario); 3] = [
    ("a_ready", 1, ready),
    ("b_pending_once", 1, pending_once),
    ("c_1000_concurrent_pending", BATCH, batch),
];

fn bench(c: &mut Criterion) {
    let rt = rt();
    let _guard = rt.enter();
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    for (group, _, f) in SCENARIOS {
        let mut g = c.benchmark_group(group);
        for (kind, name) in KINDS {
            g.bench_function(name, |b| b.iter(|| f(kind, &mut cx)));
        }
        g.finish();
    }
}

/// Nanoseconds per timeout of each scenario, measured directly, and the fast/tokio ratios.
fn summary() {
    let rt = rt();
    let _guard = rt.enter();
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    println!("\n=== summary: ns per timeout; ratio = fast_timeout / tokio::time::timeout ===");
    for (label, per_call, f) in SCENARIOS {
        let calls = 200_000 / per_call;
        let mut ns = [0f64; 3];
        for (i, (kind, _)) in KINDS.iter().enumerate() {
            f(*kind, &mut cx); // warm up
            let start = Instant::now();
            for _ in 0..calls {
                f(*kind, &mut cx);
            }
            ns[i] = start.elapsed().as_secs_f64() * 1e9 / (calls * per_call) as f64;
        }
        println!(
            "{label:<26} tokio {:>7.1}  lazy {:>7.1}  fast {:>7.1}  fast/tokio {:.3}  lazy/tokio {:.3}",
            ns[0],
            ns[1],
            ns[2],
            ns[2] / ns[0],
            ns[1] / ns[0]
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    summary();
}
