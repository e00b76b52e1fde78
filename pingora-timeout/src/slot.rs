//! One shared tick of the timer wheel and the per-timer handle that waits on it.

use crate::timer::SlotMap;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

/// Marks a [`TimerStub`] whose waker is not (or no longer) stored in its slot.
const NO_KEY: usize = usize::MAX;

/// Wakers of the timers waiting on a slot. A small slab: freed indexes are reused, so a
/// slot that sees many short-lived waiters stops allocating once it has grown.
#[derive(Default)]
struct Waiters {
    entries: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Waiters {
    fn insert(&mut self, waker: Waker) -> usize {
        match self.free.pop() {
            Some(key) => {
                self.entries[key] = Some(waker);
                key
            }
            None => {
                self.entries.push(Some(waker));
                self.entries.len() - 1
            }
        }
    }
}

/// All timers of one shard whose deadline rounds to the same tick.
pub(crate) struct Slot {
    tick: u64,
    fired: AtomicBool,
    waiters: Mutex<Waiters>,
    /// The shard map holding this slot, to drop the slot early when its last timer is dropped.
    shard: Weak<Mutex<SlotMap>>,
}

impl Slot {
    pub(crate) fn new(tick: u64, shard: Weak<Mutex<SlotMap>>) -> Self {
        Slot {
            tick,
            fired: AtomicBool::new(false),
            waiters: Mutex::new(Waiters::default()),
            shard,
        }
    }

    /// Mark the slot expired and wake every waiter.
    pub(crate) fn fire(&self) {
        // Set before taking the lock: a poller that sees `false` under the lock is still
        // listed in `entries` and will be woken below.
        self.fired.store(true, Ordering::Release);
        let entries = std::mem::take(&mut self.waiters.lock().entries);
        for waker in entries.into_iter().flatten() {
            waker.wake();
        }
    }

    fn is_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }
}

/// A registered timer, returned by
/// [`TimerManager::register_timer`](crate::timer::TimerManager::register_timer).
///
/// It is a [`Future`](std::future::Future) that completes once the deadline has passed.
/// Dropping it cancels the wait.
pub struct TimerStub {
    /// `None`: already fired (e.g. registered while paused for fork).
    slot: Option<Arc<Slot>>,
    /// Index of our waker in the slot's slab, or [`NO_KEY`].
    key: usize,
    /// A copy of the stored waker, to skip the slot lock when re-polled by the same task.
    waker: Option<Waker>,
}

impl TimerStub {
    pub(crate) fn fired() -> Self {
        TimerStub {
            slot: None,
            key: NO_KEY,
            waker: None,
        }
    }

    pub(crate) fn waiting(slot: Arc<Slot>) -> Self {
        TimerStub {
            slot: Some(slot),
            key: NO_KEY,
            waker: None,
        }
    }

    /// Wait for the timer to expire.
    pub async fn poll(self) {
        self.await
    }

    pub(crate) fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(slot) = &self.slot else {
            return Poll::Ready(());
        };
        if slot.is_fired() {
            self.release();
            return Poll::Ready(());
        }
        if self.key != NO_KEY {
            if let Some(waker) = &self.waker {
                if waker.will_wake(cx.waker()) {
                    // Our waker is already listed; `fire` will use it.
                    return Poll::Pending;
                }
            }
        }
        let mut waiters = slot.waiters.lock();
        if slot.is_fired() {
            // `fire` owns (or has consumed) the entries now; our key is stale.
            drop(waiters);
            self.key = NO_KEY;
            self.release();
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        match waiters.entries.get_mut(self.key) {
            Some(entry) => *entry = Some(waker.clone()),
            None => self.key = waiters.insert(waker.clone()),
        }
        drop(waiters);
        self.waker = Some(waker);
        Poll::Pending
    }

    /// Deregister from the slot, and drop the slot from its shard if nothing else needs it.
    fn release(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        self.waker = None;
        if slot.is_fired() {
            return;
        }
        if self.key != NO_KEY {
            let mut waiters = slot.waiters.lock();
            if !slot.is_fired() {
                waiters.entries[self.key] = None;
                waiters.free.push(self.key);
            }
            self.key = NO_KEY;
        }
        // Held by the shard map and us only: no other timer can reach this slot except
        // through the shard map, under its lock, so removing it there is race-free. This
        // keeps cancelled long timeouts from piling up until their tick.
        if Arc::strong_count(&slot) == 2 {
            if let Some(shard) = slot.shard.upgrade() {
                let mut map = shard.lock();
                let ours = map.get(&slot.tick).is_some_and(|s| Arc::ptr_eq(s, &slot));
                if ours && Arc::strong_count(&slot) == 2 {
                    map.remove(&slot.tick);
                }
            }
        }
    }
}

impl Drop for TimerStub {
    fn drop(&mut self) {
        self.release();
    }
}
