//! A coarse, shared timer wheel: the engine behind [`fast_timeout`](crate::fast_timeout).
//!
//! Deadlines are rounded up to a multiple of [`RESOLUTION`]. All timers that round to the
//! same tick (per shard) share one slot, so creating a timer usually means finding an
//! existing slot and bumping its reference count. Registration is sharded by thread, so
//! threads do not contend with each other. One background thread per manager sleeps until
//! the earliest pending tick, pops the due slots and wakes their waiters: it does not wake on
//! every tick, so a process whose timers are all far off (idle keep-alive connections, say)
//! is not woken a hundred times a second. A registration earlier than the thread's planned
//! wake-up unparks it; with no timer pending it parks until one is registered.
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::thread::Thread;
use std::time::{Duration, Instant};

pub use crate::slot::TimerStub;

/// Width of one tick: the precision of the shared timers.
pub const RESOLUTION: Duration = Duration::from_millis(10);
const RESOLUTION_NANOS: u128 = RESOLUTION.as_nanos();

/// [`Inner::next_wake`] of a timer thread with nothing to wait for.
const NEVER: u64 = u64::MAX;

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
    /// The tick the timer thread sleeps until ([`NEVER`]: parked, nothing pending). A new
    /// slot for an earlier tick unparks the thread.
    next_wake: AtomicU64,
    /// Passes of the timer thread (each wake-up), for tests of how often it wakes.
    #[cfg(test)]
    passes: AtomicU64,
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
                next_wake: AtomicU64::new(NEVER),
                #[cfg(test)]
                passes: AtomicU64::new(0),
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
        // Inserted first, read second: the timer thread publishes its plan first and scans
        // second, so either it sees this slot or this sees its plan (all SeqCst).
        let earlier = tick < inner.next_wake.load(Ordering::SeqCst);
        self.ensure_clock(earlier);
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

impl Inner {
    /// The earliest tick with a pending slot, or [`NEVER`].
    fn earliest_pending(&self) -> u64 {
        self.shards
            .iter()
            .filter_map(|s| s.lock().first_key_value().map(|(tick, _)| *tick))
            .min()
            .unwrap_or(NEVER)
    }

    /// Pop and fire every slot due at `now_tick`.
    fn fire_due(&self, now_tick: u64, due: &mut Vec<Arc<Slot>>) {
        for shard in self.shards.iter() {
            {
                let mut map = shard.lock();
                while let Some(entry) = map.first_entry() {
                    if *entry.key() > now_tick {
                        break;
                    }
                    due.push(entry.remove());
                }
            }
            // Wake outside the shard lock so registrations are not held up.
            for slot in due.drain(..) {
                slot.fire();
            }
        }
    }

    /// When `tick` starts, or `None` if that is beyond what an `Instant` can hold.
    fn tick_start(&self, tick: u64) -> Option<Instant> {
        let nanos = u128::from(tick).saturating_mul(RESOLUTION_NANOS);
        self.zero
            .checked_add(Duration::from_nanos(u64::try_from(nanos).ok()?))
    }
}

/// The timer thread: sleep until the earliest pending tick, fire what is due, repeat.
fn clock_thread(weak: Weak<Inner>) {
    let mut due: Vec<Arc<Slot>> = Vec::new();
    loop {
        let Some(inner) = weak.upgrade() else { return };
        #[cfg(test)]
        inner.passes.fetch_add(1, Ordering::Relaxed);
        let now_tick =
            u64::try_from(inner.zero.elapsed().as_nanos() / RESOLUTION_NANOS).unwrap_or(u64::MAX);
        let wake_at = if inner.paused.load(Ordering::SeqCst) {
            // No locks while paused for a fork; look again next tick.
            now_tick.saturating_add(1)
        } else {
            inner.fire_due(now_tick, &mut due);
            let plan = inner.earliest_pending();
            inner.next_wake.store(plan, Ordering::SeqCst);
            // A slot inserted before the plan was published may have been missed by the
            // scan, and its registrar may have read the old plan: scan again.
            if inner.earliest_pending() < plan {
                continue;
            }
            plan
        };
        let deadline = match wake_at {
            NEVER => None,
            tick => inner.tick_start(tick),
        };
        drop(inner);
        // An unpark that came before the park is not lost: the park returns at once.
        match deadline {
            Some(at) => std::thread::park_timeout(at.saturating_duration_since(Instant::now())),
            None => std::thread::park(),
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
        while tm.inner.next_wake.load(Ordering::SeqCst) != NEVER && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(
            tm.inner.next_wake.load(Ordering::SeqCst),
            NEVER,
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
    async fn sleeps_until_the_earliest_deadline_not_every_tick() {
        let tm = TimerManager::new();
        let far = tm.register_timer(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
        let before = tm.inner.passes.load(Ordering::Relaxed);
        std::thread::sleep(RESOLUTION * 30);
        let passes = tm.inner.passes.load(Ordering::Relaxed) - before;
        // A ticking thread would have made about 30 passes.
        assert!(
            passes <= 2,
            "{passes} wake-ups with only a 60 s timer pending"
        );

        // A shorter timer registered now must wake the sleeping thread early.
        let start = Instant::now();
        tm.register_timer(Duration::from_millis(30)).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(30), "fired early: {took:?}");
        assert!(
            took <= Duration::from_millis(30) + RESOLUTION + SLACK,
            "late: {took:?}"
        );
        drop(far);
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
