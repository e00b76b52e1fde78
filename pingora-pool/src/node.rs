//! One group of interchangeable idle connections.

use crossbeam_queue::ArrayQueue;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The identifier of a pooled item, unique within its group (a file descriptor
/// for sockets).
pub(crate) type Id = i32;

/// How many items a group keeps in its lock-free queue. Removal by id scans this
/// queue, so it stays small; items beyond it go to a mutex-protected overflow.
const HOT_QUEUE_SIZE: usize = 16;

/// A set of interchangeable items (idle connections of one group).
///
/// The most recently inserted items live in a lock-free bounded queue so that
/// the common release-then-reuse cycle touches no lock. Items that do not fit
/// go to a small mutex-protected overflow list.
pub struct PoolNode<T> {
    hot: ArrayQueue<(Id, T)>,
    overflow: Mutex<VecDeque<(Id, T)>>,
    // Serializes removers that scan the hot queue so two of them cannot
    // shuffle each other's items out of sight.
    scan_lock: Mutex<()>,
    len: AtomicUsize,
}

impl<T> PoolNode<T> {
    /// Create an empty node.
    pub fn new() -> Self {
        PoolNode {
            hot: ArrayQueue::new(HOT_QUEUE_SIZE),
            overflow: Mutex::new(VecDeque::new()),
            scan_lock: Mutex::new(()),
            len: AtomicUsize::new(0),
        }
    }

    /// How many items the node holds (approximate while others modify it).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether the node holds no item (approximate while others modify it).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn took(&self, item: Option<(Id, T)>) -> Option<(Id, T)> {
        if item.is_some() {
            self.len.fetch_sub(1, Ordering::AcqRel);
        }
        item
    }

    /// Take any item: the lock-free queue first, then the freshest overflow item.
    pub fn get_any(&self) -> Option<(Id, T)> {
        if let Some(item) = self.hot.pop() {
            return self.took(Some(item));
        }
        let item = self.overflow.lock().pop_back();
        self.took(item)
    }

    /// Take the item that has been waiting longest (approximately: the hot
    /// queue is first-in first-out and fills before the overflow does).
    pub fn pop_oldest(&self) -> Option<(Id, T)> {
        if let Some(item) = self.hot.pop() {
            return self.took(Some(item));
        }
        let item = self.overflow.lock().pop_front();
        self.took(item)
    }

    /// Add an item under the given id.
    pub fn insert(&self, id: Id, item: T) {
        self.len.fetch_add(1, Ordering::AcqRel);
        if let Err(back) = self.hot.push((id, item)) {
            self.overflow.lock().push_back(back);
        }
    }

    /// Remove the item with the given id, returning it if it was present.
    ///
    /// This is the slow path (eviction, closed connections): it may lock and
    /// scan the whole node.
    pub fn remove(&self, id: Id) -> Option<T> {
        {
            let mut overflow = self.overflow.lock();
            if let Some(pos) = overflow.iter().position(|(i, _)| *i == id) {
                let found = overflow.remove(pos);
                drop(overflow);
                return self.took(found).map(|(_, item)| item);
            }
        }
        let _scan = self.scan_lock.lock();
        // Rotate through the items present now; concurrent inserts or takes
        // may change the queue, so bound the walk by its current length.
        for _ in 0..self.hot.len() {
            let (item_id, item) = self.hot.pop()?;
            if item_id == id {
                return self.took(Some((item_id, item))).map(|(_, item)| item);
            }
            if let Err(back) = self.hot.push((item_id, item)) {
                self.overflow.lock().push_back(back);
            }
        }
        None
    }
    /// Visit every item, dropping those for which `keep` returns false; the
    /// ids of the dropped ones are returned. Items are briefly out of sight
    /// of concurrent takers while visited.
    pub fn retain(&self, mut keep: impl FnMut(Id, &mut T) -> bool) -> Vec<Id> {
        let mut dropped = Vec::new();
        {
            let mut overflow = self.overflow.lock();
            overflow.retain_mut(|(id, item)| {
                let kept = keep(*id, item);
                if !kept {
                    dropped.push(*id);
                }
                kept
            });
        }
        let _scan = self.scan_lock.lock();
        for _ in 0..self.hot.len() {
            let Some((id, mut item)) = self.hot.pop() else {
                break;
            };
            if !keep(id, &mut item) {
                dropped.push(id);
                continue;
            }
            if let Err(back) = self.hot.push((id, item)) {
                self.overflow.lock().push_back(back);
            }
        }
        self.len.fetch_sub(dropped.len(), Ordering::AcqRel);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove() {
        let node = PoolNode::new();
        for i in 0..40 {
            node.insert(i, i * 10);
        }
        assert_eq!(node.len(), 40);
        // one in the hot queue and one in the overflow
        assert_eq!(node.remove(3), Some(30));
        assert_eq!(node.remove(33), Some(330));
        assert_eq!(node.remove(33), None);
        assert_eq!(node.len(), 38);
        let mut seen = Vec::new();
        while let Some((id, v)) = node.get_any() {
            assert_eq!(v, id * 10);
            seen.push(id);
        }
        seen.sort_unstable();
        let expected: Vec<i32> = (0..40).filter(|i| *i != 3 && *i != 33).collect();
        assert_eq!(seen, expected);
        assert!(node.is_empty());
    }

    #[test]
    fn pop_oldest_is_fifo() {
        let node = PoolNode::new();
        for i in 0..20 {
            node.insert(i, ());
        }
        let order: Vec<i32> = std::iter::from_fn(|| node.pop_oldest().map(|(i, _)| i)).collect();
        assert_eq!(order, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn retain_drops_rejected_in_hot_and_overflow() {
        let node = PoolNode::new();
        for i in 0..40 {
            node.insert(i, i);
        }
        let mut dropped = node.retain(|id, v| {
            *v += 1;
            id % 3 != 0
        });
        dropped.sort_unstable();
        assert_eq!(dropped, (0..40).filter(|i| i % 3 == 0).collect::<Vec<_>>());
        assert_eq!(node.len(), 40 - dropped.len());
        let mut left = Vec::new();
        while let Some((id, v)) = node.get_any() {
            assert_eq!(v, id + 1, "retain sees items mutably");
            left.push(id);
        }
        left.sort_unstable();
        assert_eq!(left, (0..40).filter(|i| i % 3 != 0).collect::<Vec<_>>());
    }
}
