//! A coarse, shared timer wheel: the engine behind [`fast_timeout`](crate::fast_timeout).
//!
//! Deadlines are rounded up to a multiple of [`RESOLUTION`]. All timers that round to the
//! same tick (per shard) share one slot, so creating a timer usually means finding an
//! existing slot and bumping its reference count. Registration is sharded by thread, so
//! threads do not contend with each other; one background thread per manager wakes up every
//! tick, pops the due slots and wakes their waiters. When no timer is pending the thread parks
//! instead of ticking.
//!
//! Guarantee: a timer never fires before its duration has elapsed. It fires at most one tick
//! late, plus the OS scheduling delay of the timer thread.
//!
//! Fork safety: call [`TimerManager::pause_for_fork`] right before `fork()` and
//! [`TimerManager::unpause`] right after it (in parent and child). While paused, new timers
//! fire immediately and the timer thread takes no locks. The child restarts the timer thread
//! on demand.

use crate::slot::Slot;
use parking_lot::Mutex;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::thread::Thread;
use std::time::{Duration, Instant};

pub use crate::slot::TimerStub;

/// Width of one tick: the precision of the shared timers.
pub const RESOLUTION: Duration = Duration::from_millis(10);
const RESOLUTION_NANOS: u128 = RESOLUTION.as_nanos();

/// Pending slots of one shard, by tick.
pub(crate) type SlotMap = BTreeMap<u64, Arc<Slot>>;

static NEXT_MANAGER_ID: AtomicUsize = AtomicUsize::new(1);
static NEXT_THREAD_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The shard this thread registers into (assigned round-robin on first use).
    static THREAD_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    /// The slot this thread registered into last: (manager id, tick, slot). Timers created in
    /// a burst usually share a tick, and this skips the shard lock for them.
    static LAST_SLOT: RefCell<Option<(usize, u64, Arc<Slot>)>> = const { RefCell::new(None) };
}

fn thread_shard() -> usize {
    THREAD_SHARD.with(|s| {
        let mut shard = s.get();
        if shard == usize::MAX {
            shard = NEXT_THREAD_SHARD.fetch_add(1, Ordering::Relaxed);
            s.set(shard);
        }
        shard
    })
}

/// The background thread of a running clock, and the process it was started in (a forked
/// child inherits this record but not the thread).
struct Clock {
    thread: Thread,
    pid: u32,
}

pub(crate) struct Inner {
    id: usize,
    zero: Instant,
    shards: Box<[Arc<Mutex<SlotMap>>]>,
    /// Set by the timer thread right before it parks for lack of work.
    idle: AtomicBool,
    paused: AtomicBool,
    clock: Mutex<Option<Clock>>,
}

/// A set of shared timers with its own background thread.
///
/// [`fast_timeout`](crate::fast_timeout) uses one global instance; separate instances are
/// mainly useful for tests. Dropping the manager stops its thread; timers still pending then
/// never fire.
pub struct TimerManager {
    inner: Arc<Inner>,
}

impl Default for TimerManager {
    fn default() -> Self {
        Self::new()
    }
}

impl TimerManager {
    /// Create a manager. Its thread starts with the first timer.
    pub fn new() -> Self {
        let shards = std::thread::available_parallelism()
            .map_or(4, |n| n.get() * 2)
            .clamp(4, 64);
        TimerManager {
            inner: Arc::new(Inner {
                id: NEXT_MANAGER_ID.fetch_add(1, Ordering::Relaxed),
                zero: Instant::now(),
                shards: (0..shards).map(|_| Arc::default()).collect(),
                idle: AtomicBool::new(false),
                paused: AtomicBool::new(false),
                clock: Mutex::new(None),
            }),
        }
    }

    /// Register a timer that fires `duration` from now (rounded up to the next tick).
    pub fn register_timer(&self, duration: Duration) -> TimerStub {
        let inner = &*self.inner;
        if inner.paused.load(Ordering::SeqCst) {
            return TimerStub::fired();
        }
        let deadline = inner
            .zero
            .elapsed()
            .as_nanos()
            .saturating_add(duration.as_nanos());
        // Round up: firing at tick * RESOLUTION is never before the deadline.
        let tick = u64::try_from(deadline.div_ceil(RESOLUTION_NANOS)).unwrap_or(u64::MAX);

        let cached = LAST_SLOT.with(|last| match &*last.borrow() {
            Some((id, t, slot)) if *id == inner.id && *t == tick => Some(slot.clone()),
            _ => None,
        });
        let slot = match cached {
            Some(slot) => slot,
            None => {
                let slot = self.slot_for(tick);
                LAST_SLOT.with(|last| *last.borrow_mut() = Some((inner.id, tick, slot.clone())));
                slot
            }
        };
        TimerStub::waiting(slot)
    }

    fn slot_for(&self, tick: u64) -> Arc<Slot> {
        let inner = &*self.inner;
        let shard = &inner.shards[thread_shard() % inner.shards.len()];
        let mut map = shard.lock();
        if let Some(slot) = map.get(&tick) {
            return slot.clone();
        }
        let slot = Arc::new(Slot::new(tick, Arc::downgrade(shard)));
        map.insert(tick, slot.clone());
        drop(map);
        // A new slot may need a (re)started or unparked timer thread. This runs at most once
        // per tick per shard, so the lock and checks below stay off the per-timer path.
        let idle = inner.idle.load(Ordering::SeqCst);
        self.ensure_clock(idle);
        slot
    }

    fn ensure_clock(&self, unpark: bool) {
        let pid = std::process::id();
        let mut clock = self.inner.clock.lock();
        match &*clock {
            Some(c) if c.pid == pid => {
                if unpark {
                    c.thread.unpark();
                }
            }
            _ => {
                let weak = Arc::downgrade(&self.inner);
                let spawned = std::thread::Builder::new()
                    .name("pingora-timer".into())
                    .spawn(move || clock_thread(weak));
                match spawned {
                    Ok(handle) => {
                        *clock = Some(Clock {
                            thread: handle.thread().clone(),
                            pid,
                        })
                    }
                    // Out of threads: leave it to the next new slot to retry. Pending timers
                    // are kept, only delayed.
                    Err(_) => *clock = None,
                }
            }
        }
    }

    /// Stop taking locks in preparation for `fork()`; new timers fire immediately until
    /// [`Self::unpause`]. Call right before forking.
    pub fn pause_for_fork(&self) {
        let inner = &*self.inner;
        inner.paused.store(true, Ordering::SeqCst);
        // Wait out anyone inside a shard or the clock lock; new arrivals see `paused`.
        for shard in inner.shards.iter() {
            drop(shard.lock());
        }
        drop(inner.clock.lock());
    }

    /// Resume after `fork()`. In a forked child the timer thread does not exist; it is
    /// restarted here if timers are pending, or on the next timer otherwise.
    pub fn unpause(&self) {
        self.inner.paused.store(false, Ordering::SeqCst);
        let any_pending = self.inner.shards.iter().any(|s| !s.lock().is_empty());
        if any_pending {
            self.ensure_clock(true);
        }
    }
}

impl Drop for TimerManager {
    fn drop(&mut self) {
        // Let a parked timer thread notice that the manager is gone.
        if let Some(clock) = &*self.inner.clock.lock() {
            clock.thread.unpark();
        }
    }
}

/// The timer thread: every tick, fire the due slots of every shard.
fn clock_thread(weak: Weak<Inner>) {
    let mut due: Vec<Arc<Slot>> = Vec::new();
    let mut next_tick: Option<Instant> = None;
    loop {
        if let Some(at) = next_tick {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        }
        let Some(inner) = weak.upgrade() else { return };
        let elapsed = inner.zero.elapsed();
        let now_tick = u64::try_from(elapsed.as_nanos() / RESOLUTION_NANOS).unwrap_or(u64::MAX);
        // Sleep until the start of the next tick (not a fixed period), so lateness stays
        // within one tick regardless of how long this pass takes.
        let next_boundary = Duration::from_nanos(
            (now_tick.saturating_add(1)).saturating_mul(RESOLUTION_NANOS as u64),
        );
        next_tick = Some(inner.zero + next_boundary.max(elapsed));
        if inner.paused.load(Ordering::SeqCst) {
            continue;
        }

        let mut all_empty = true;
        for shard in inner.shards.iter() {
            {
                let mut map = shard.lock();
                while let Some(entry) = map.first_entry() {
                    if *entry.key() > now_tick {
                        break;
                    }
                    due.push(entry.remove());
                }
                all_empty &= map.is_empty();
            }
            // Wake outside the shard lock so registrations are not held up.
            for slot in due.drain(..) {
                slot.fire();
            }
        }

        if all_empty {
            // Park until a registration adds a slot. The re-check after publishing `idle`
            // pairs with the registrar's insert-then-read-`idle`: one of us sees the other.
            inner.idle.store(true, Ordering::SeqCst);
            let still_empty = inner.shards.iter().all(|s| s.lock().is_empty());
            if still_empty {
                drop(inner);
                std::thread::park();
                next_tick = None;
                match weak.upgrade() {
                    Some(inner) => inner.idle.store(false, Ordering::SeqCst),
                    None => return,
                }
            } else {
                inner.idle.store(false, Ordering::SeqCst);
            }
        }
    }
}

/// A registered timer as a [`Future`]; see [`TimerStub`].
impl Future for TimerStub {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_fired(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl TimerManager {
        fn pending_slots(&self) -> usize {
            self.inner.shards.iter().map(|s| s.lock().len()).sum()
        }
    }

    /// Upper slack for OS scheduling on a busy CI machine; precision is one tick plus this.
    const SLACK: Duration = Duration::from_millis(150);

    #[tokio::test]
    async fn fires_not_early_and_within_a_tick() {
        let tm = TimerManager::new();
        for ms in [1u64, 25, 40] {
            let d = Duration::from_millis(ms);
            let start = Instant::now();
            tm.register_timer(d).await;
            let took = start.elapsed();
            assert!(took >= d, "fired early: {took:?} < {d:?}");
            assert!(took <= d + RESOLUTION + SLACK, "fired late: {took:?}");
        }
    }

    #[tokio::test]
    async fn same_tick_shares_one_slot() {
        let tm = TimerManager::new();
        let stubs: Vec<_> = (0..100)
            .map(|_| tm.register_timer(Duration::from_millis(30)))
            .collect();
        // Consecutive registrations land in at most a couple of ticks.
        assert!(tm.pending_slots() <= 2, "{}", tm.pending_slots());
        let start = Instant::now();
        futures_join_all(stubs).await;
        assert!(start.elapsed() <= Duration::from_millis(30) + RESOLUTION + SLACK);
        assert_eq!(tm.pending_slots(), 0);
    }

    async fn futures_join_all(stubs: Vec<TimerStub>) {
        let handles: Vec<_> = stubs.into_iter().map(tokio::spawn).collect();
        for h in handles {
            h.await.expect("timer task");
        }
    }

    #[tokio::test]
    async fn cancelled_timers_release_their_slots() {
        let tm = TimerManager::new();
        let waker = futures_noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut stubs: Vec<_> = (0..1000)
            .map(|i| tm.register_timer(Duration::from_secs(60 + i)))
            .collect();
        for s in &mut stubs {
            assert!(Pin::new(s).poll(&mut cx).is_pending());
        }
        assert!(tm.pending_slots() >= 900);
        drop(stubs);
        // Only the slot cached for this thread may linger.
        assert!(tm.pending_slots() <= 1, "{}", tm.pending_slots());
    }

    fn futures_noop_waker() -> std::task::Waker {
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        std::task::Waker::from(Arc::new(Noop))
    }

    #[tokio::test]
    async fn restarts_after_idle_park() {
        let tm = TimerManager::new();
        tm.register_timer(Duration::from_millis(5)).await;
        // Wait (bounded) for the thread to find nothing pending and park.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !tm.inner.idle.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            tm.inner.idle.load(Ordering::SeqCst),
            "timer thread should park when idle"
        );
        let start = Instant::now();
        tm.register_timer(Duration::from_millis(20)).await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(20)
                && took <= Duration::from_millis(20) + RESOLUTION + SLACK
        );
    }

    #[tokio::test]
    async fn paused_timers_fire_immediately() {
        let tm = TimerManager::new();
        let long = tm.register_timer(Duration::from_millis(30));
        tm.pause_for_fork();
        let start = Instant::now();
        tm.register_timer(Duration::from_secs(100)).await;
        assert!(start.elapsed() < Duration::from_millis(50));
        tm.unpause();
        long.poll().await;
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn huge_duration_does_not_overflow() {
        let tm = TimerManager::new();
        let waker = futures_noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut stub = tm.register_timer(Duration::MAX);
        assert!(Pin::new(&mut stub).poll(&mut cx).is_pending());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_tasks_on_other_threads() {
        let tm = Arc::new(TimerManager::new());
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let tm = tm.clone();
                tokio::spawn(async move {
                    let d = Duration::from_millis(10 + i % 20);
                    let start = Instant::now();
                    tm.register_timer(d).await;
                    start.elapsed() >= d
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.expect("task"), "a timer fired early");
        }
    }
}
