//! The tokio runtimes that services run on.
//!
//! A work-stealing service gets one multi-threaded runtime. A "no steal"
//! service gets N threads, each driving its own current-thread runtime; tasks
//! spawned through [`current_handle()`] from such a thread are spread over the
//! N runtimes round-robin, so connections are balanced while every task stays
//! on the thread it started on.

use log::{error, info};
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The handles of one "no steal" pool, shared by its threads.
struct Pool {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

impl Pool {
    fn pick(&self) -> Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].clone()
    }
}

thread_local! {
    static POOL: RefCell<Option<Arc<Pool>>> = const { RefCell::new(None) };
}

/// The handle new tasks should be spawned on from the current thread.
///
/// Inside a "no steal" pool this rotates over the pool's runtimes; elsewhere
/// it is the current runtime's handle.
///
/// # Panics
/// Outside of any tokio runtime, like [`Handle::current()`].
pub(crate) fn current_handle() -> Handle {
    POOL.with(|p| p.borrow().as_ref().map(|p| p.pick()))
        .unwrap_or_else(Handle::current)
}

/// The runtime(s) of one service.
pub(crate) enum Runtime {
    /// One multi-threaded, work-stealing runtime.
    Steal(tokio::runtime::Runtime),
    /// Independent single-threaded runtimes, one per thread.
    NoSteal(NoStealRuntime),
}

/// N threads each blocked on its own current-thread runtime until stopped.
pub(crate) struct NoStealRuntime {
    pool: Arc<Pool>,
    stops: Vec<(oneshot::Sender<Duration>, JoinHandle<()>)>,
}

impl Runtime {
    /// Create the runtime of a service named `name` with `threads` threads.
    pub(crate) fn new(name: &str, threads: usize, work_stealing: bool) -> std::io::Result<Self> {
        let threads = threads.max(1);
        if work_stealing {
            Builder::new_multi_thread()
                .enable_all()
                .worker_threads(threads)
                .thread_name(thread_name(name))
                .build()
                .map(Runtime::Steal)
        } else {
            NoStealRuntime::new(name, threads).map(Runtime::NoSteal)
        }
    }

    /// A handle to spawn the service's main task on.
    pub(crate) fn handle(&self) -> Handle {
        match self {
            Runtime::Steal(rt) => rt.handle().clone(),
            Runtime::NoSteal(rt) => rt.pool.pick(),
        }
    }

    /// Stop the runtime, giving its tasks up to `timeout` to finish.
    /// Blocks the calling thread.
    pub(crate) fn shutdown_timeout(self, timeout: Duration) {
        match self {
            Runtime::Steal(rt) => rt.shutdown_timeout(timeout),
            Runtime::NoSteal(rt) => rt.shutdown_timeout(timeout),
        }
    }
}

impl NoStealRuntime {
    fn new(name: &str, threads: usize) -> std::io::Result<Self> {
        let mut runtimes = Vec::with_capacity(threads);
        for _ in 0..threads {
            runtimes.push(Builder::new_current_thread().enable_all().build()?);
        }
        let pool = Arc::new(Pool {
            handles: runtimes.iter().map(|rt| rt.handle().clone()).collect(),
            next: AtomicUsize::new(0),
        });
        let mut stops = Vec::with_capacity(threads);
        for rt in runtimes {
            let (tx, rx) = oneshot::channel::<Duration>();
            let pool = pool.clone();
            let thread = std::thread::Builder::new()
                .name(thread_name(name))
                .spawn(move || {
                    POOL.with(|p| *p.borrow_mut() = Some(pool));
                    // the sender lives until shutdown; a dropped sender also stops the thread
                    let timeout = rt.block_on(rx).unwrap_or(Duration::ZERO);
                    rt.shutdown_timeout(timeout);
                    POOL.with(|p| p.borrow_mut().take());
                })?;
            stops.push((tx, thread));
        }
        Ok(NoStealRuntime { pool, stops })
    }

    fn shutdown_timeout(self, timeout: Duration) {
        let mut threads = Vec::with_capacity(self.stops.len());
        for (stop, thread) in self.stops {
            // a closed receiver means the thread already ended, nothing to stop
            let _ = stop.send(timeout);
            threads.push(thread);
        }
        for thread in threads {
            if thread.join().is_err() {
                error!("a service thread panicked while shutting down");
            }
        }
        info!("no-steal runtime stopped");
    }
}

/// Linux keeps at most 15 bytes of a thread name.
fn thread_name(name: &str) -> String {
    name.chars().take(15).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_steal_spreads_tasks_over_threads() {
        let rt = Runtime::new("test-nosteal", 3, false).expect("runtime");
        let (tx, rx) = std::sync::mpsc::channel();
        rt.handle().spawn(async move {
            let mut names = Vec::new();
            for _ in 0..6 {
                let h = current_handle().spawn(async { std::thread::current().id() });
                names.push(h.await.expect("task"));
            }
            let _ = tx.send(names);
        });
        let ids = rx.recv_timeout(Duration::from_secs(5)).expect("ids");
        let distinct: std::collections::HashSet<_> = ids.into_iter().collect();
        assert_eq!(distinct.len(), 3);
        rt.shutdown_timeout(Duration::from_secs(1));
    }

    #[test]
    fn steal_runtime_runs_tasks() {
        let rt = Runtime::new("test-steal", 2, true).expect("runtime");
        let (tx, rx) = std::sync::mpsc::channel();
        rt.handle().spawn(async move {
            let v = current_handle().spawn(async { 7 }).await.expect("task");
            let _ = tx.send(v);
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).expect("value"), 7);
        rt.shutdown_timeout(Duration::from_secs(1));
    }
}
