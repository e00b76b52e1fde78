//! Sharded least-recently-released bookkeeping that enforces the pool's
//! global cap.

use lru::LruCache;
use parking_lot::Mutex;
use std::hash::Hash;
use std::num::NonZeroUsize;

/// Pools at most this large use a single shard, so eviction order is exact.
const EXACT_UP_TO: usize = 64;
/// Upper bound on the number of shards for large pools.
const MAX_SHARDS: usize = 16;

/// A capacity-bounded LRU split into independently locked shards.
///
/// Small capacities use one shard (exact LRU). Larger ones are split so
/// concurrent releases rarely contend; eviction is then LRU within a shard,
/// which approximates a global LRU.
pub(crate) struct ShardedLru<K: Hash + Eq, V> {
    shards: Box<[Mutex<LruCache<K, V>>]>,
}

impl<K: Hash + Eq, V> ShardedLru<K, V> {
    /// `capacity` must be non-zero.
    pub fn new(capacity: NonZeroUsize) -> Self {
        let total = capacity.get();
        let shard_count = if total <= EXACT_UP_TO {
            1
        } else {
            (total / EXACT_UP_TO).clamp(1, MAX_SHARDS)
        };
        let per_shard = total.div_ceil(shard_count);
        let per_shard = NonZeroUsize::new(per_shard).unwrap_or(NonZeroUsize::MIN);
        let shards = (0..shard_count)
            .map(|_| Mutex::new(LruCache::new(per_shard)))
            .collect();
        ShardedLru { shards }
    }

    fn shard(&self, hash: u64) -> &Mutex<LruCache<K, V>> {
        // `shards` is never empty: `new` creates at least one.
        &self.shards[(hash % self.shards.len() as u64) as usize]
    }

    /// Insert (or refresh) `key`. Returns an entry pushed out: either the
    /// least recently used one of the shard when it was full, or the previous
    /// value stored under the same key.
    pub fn add(&self, hash: u64, key: K, value: V) -> Option<(K, V)> {
        self.shard(hash).lock().push(key, value)
    }

    /// Remove `key`, returning its value if present.
    pub fn remove(&self, hash: u64, key: &K) -> Option<V> {
        self.shard(hash).lock().pop(key)
    }

    /// Drop every entry, returning the values.
    pub fn drain(&self) -> Vec<V> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            while let Some((_, v)) = shard.pop_lru() {
                out.push(v);
            }
        }
        out
    }

    /// Total number of entries over all shards.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).expect("test capacity is non-zero")
    }

    #[test]
    fn evicts_least_recent() {
        let lru = ShardedLru::new(cap(2));
        assert!(lru.add(1, 1, "a").is_none());
        assert!(lru.add(2, 2, "b").is_none());
        assert_eq!(lru.add(3, 3, "c"), Some((1, "a")));
        assert_eq!(lru.remove(2, &2), Some("b"));
        assert_eq!(lru.len(), 1);
    }

    #[test]
    fn replace_returns_old_value() {
        let lru = ShardedLru::new(cap(4));
        lru.add(7, 7, "old");
        assert_eq!(lru.add(7, 7, "new"), Some((7, "old")));
        assert_eq!(lru.len(), 1);
    }

    #[test]
    fn large_capacity_is_sharded_and_bounded() {
        let lru = ShardedLru::new(cap(1024));
        assert_eq!(lru.shards.len(), 16);
        for i in 0..5000u64 {
            lru.add(i, i, ());
        }
        assert!(lru.len() <= 1024);
        assert!(lru.len() >= 1000);
    }
}
