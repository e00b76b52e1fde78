//! The keyed connection pool and its idle watchers.

use crate::lru::ShardedLru;
use crate::node::{Id, PoolNode};
use log::debug;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{oneshot, watch, Notify, OwnedMutexGuard};

/// Connections with equal group keys are interchangeable.
type GroupKey = u64;

/// Number of independently locked shards of the group map.
const MAP_SHARDS: usize = 16;

/// The hasher of the group maps. Group keys are hashes already (of a peer's reuse fields),
/// computed by the owner, not chosen by clients, so one multiply spreads them over the
/// buckets; SipHash cost more than the rest of a pool lookup.
#[derive(Default)]
struct GroupKeyHasher(u64);

impl Hasher for GroupKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        // only reached for other key types; kept correct, not fast
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(26) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // the product's high bits mix all of the key; fold them into the low ones, which
        // pick the bucket
        self.0 ^ (self.0 >> 32)
    }
}

type GroupMap<S> = HashMap<GroupKey, Node<S>, BuildHasherDefault<GroupKeyHasher>>;

/// With [`ConnectionPool::new`], the pool as a whole keeps at most this many
/// times the per-group cap.
pub const GLOBAL_CAP_FACTOR: usize = 16;

/// Identifies one pooled connection: the group it serves and its unique id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionMeta {
    /// The reuse group (usually a peer's `reuse_hash()`).
    pub key: GroupKey,
    /// Unique id of the connection within the process (its file descriptor).
    pub id: Id,
}

impl ConnectionMeta {
    /// Describe a connection of group `key` with unique `id`.
    pub fn new(key: GroupKey, id: Id) -> Self {
        ConnectionMeta { key, id }
    }

    fn hash(&self) -> u64 {
        // Cheap mixing so both fields pick the LRU shard.
        self.key ^ (self.id as u32 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// A pooled connection plus the channel telling its watcher it was taken.
struct PoolConnection<S> {
    // `None` for connections released without a watcher.
    notify_use: Option<oneshot::Sender<bool>>,
    connection: S,
}

impl<S> PoolConnection<S> {
    /// Hand the connection out, telling its idle watcher to let go of it.
    fn release(self) -> S {
        // The watcher may already be gone; then nobody needs telling.
        if let Some(tx) = self.notify_use {
            let _ = tx.send(true);
        }
        self.connection
    }
}

type Node<S> = Arc<PoolNode<PoolConnection<S>>>;

/// A pool of idle, reusable connections grouped by key.
///
/// See the [crate documentation](crate) for the limits and the locking scheme.
pub struct ConnectionPool<S> {
    groups: Box<[RwLock<GroupMap<S>>]>,
    // `None` when the pool keeps nothing (a zero limit).
    // The value wakes the connection's watcher, if it has one.
    lru: Option<ShardedLru<ConnectionMeta, Option<Arc<Notify>>>>,
    per_key: usize,
}

impl<S> ConnectionPool<S> {
    /// A pool keeping at most `size` idle connections per group key, and at
    /// most `size * GLOBAL_CAP_FACTOR` overall (least recently released
    /// connections are dropped first). `size == 0` disables pooling.
    pub fn new(size: usize) -> Self {
        Self::with_limits(size, size.saturating_mul(GLOBAL_CAP_FACTOR))
    }

    /// A pool with explicit limits: `per_key` idle connections per group and
    /// `total` overall. A zero limit disables pooling.
    pub fn with_limits(per_key: usize, total: usize) -> Self {
        let lru = NonZeroUsize::new(total)
            .filter(|_| per_key > 0)
            .map(ShardedLru::new);
        let groups = (0..MAP_SHARDS)
            .map(|_| RwLock::new(GroupMap::default()))
            .collect();
        ConnectionPool {
            groups,
            lru,
            per_key,
        }
    }

    fn shard(&self, key: GroupKey) -> &RwLock<GroupMap<S>> {
        // Fold the high bits in: keys are hashes, but be robust to small ints.
        let idx = (key ^ (key >> 32)) as usize % MAP_SHARDS;
        &self.groups[idx]
    }

    fn existing_node(&self, key: GroupKey) -> Option<Node<S>> {
        self.shard(key).read().get(&key).cloned()
    }

    fn node(&self, key: GroupKey) -> Node<S> {
        if let Some(node) = self.existing_node(key) {
            return node;
        }
        self.shard(key)
            .write()
            .entry(key)
            .or_insert_with(|| Arc::new(PoolNode::new()))
            .clone()
    }

    /// Number of idle connections currently pooled (all groups).
    pub fn len(&self) -> usize {
        self.lru.as_ref().map_or(0, |l| l.len())
    }

    /// Whether no idle connection is pooled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop the pooled connection `meta` (if still there) and wake its watcher.
    fn evict(&self, meta: &ConnectionMeta, notify: Option<Arc<Notify>>) {
        // Dropping the entry closes `notify_use`, which also ends the watcher.
        self.remove_from_group(meta);
        debug!(
            "evicted pooled connection {} of group {}",
            meta.id, meta.key
        );
        if let Some(n) = notify {
            n.notify_one();
        }
    }

    /// Remove a connection that was found closed (or timed out) from the pool.
    pub fn pop_closed(&self, meta: &ConnectionMeta) {
        if let Some(lru) = &self.lru {
            lru.remove(meta.hash(), meta);
        }
        self.remove_from_group(meta);
    }

    /// Drop connection `meta` from its group, and forget the group once it
    /// is empty so that short-lived keys do not accumulate. Only the slow
    /// paths (eviction, closed connections) come here.
    fn remove_from_group(&self, meta: &ConnectionMeta) {
        let Some(node) = self.existing_node(meta.key) else {
            return;
        };
        drop(node.remove(meta.id));
        if !node.is_empty() {
            return;
        }
        let mut groups = self.shard(meta.key).write();
        // Under the write lock nobody can pick up a new handle to the node,
        // so if the map's and ours are the only ones and it is still empty,
        // no release can be racing into it.
        let unused = groups
            .get(&meta.key)
            .is_some_and(|n| Arc::ptr_eq(n, &node) && Arc::strong_count(n) == 2 && n.is_empty());
        if unused {
            groups.remove(&meta.key);
        }
    }

    /// Drop every pooled connection (e.g. when the owner shuts down); their
    /// watchers stop and the connections close.
    pub fn clear(&self) {
        for shard in self.groups.iter() {
            // Dropping the groups drops their entries and so closes the
            // connections once the watchers let go of them.
            let drained: Vec<_> = shard.write().drain().collect();
            drop(drained);
        }
        if let Some(lru) = &self.lru {
            for notify in lru.drain().into_iter().flatten() {
                notify.notify_one();
            }
        }
    }

    /// Number of groups currently tracked (for tests and introspection).
    pub fn group_count(&self) -> usize {
        self.groups.iter().map(|g| g.read().len()).sum()
    }

    /// Take an idle connection of group `key`, if any.
    pub fn get(&self, key: &GroupKey) -> Option<S> {
        let node = self.existing_node(*key)?;
        let (id, conn) = node.get_any()?;
        if let Some(lru) = &self.lru {
            let meta = ConnectionMeta::new(*key, id);
            lru.remove(meta.hash(), &meta);
        }
        Some(conn.release())
    }

    /// Release `connection` into the pool for reuse.
    ///
    /// Returns the handles its watcher ([`Self::idle_poll`] or
    /// [`Self::idle_timeout`]) needs: a [`Notify`] signalled when the pool
    /// evicts the connection, and a receiver resolving when [`Self::get`]
    /// hands it out (`Ok(true)`) or the pool drops it (`Err`).
    ///
    /// Releasing may evict the oldest connection of the same group (per-group
    /// cap) or the least recently released one overall (global cap).
    pub fn put(
        &self,
        meta: &ConnectionMeta,
        connection: S,
    ) -> (Arc<Notify>, oneshot::Receiver<bool>) {
        let notify_evicted = Arc::new(Notify::new());
        let (notify_use, watch_use) = oneshot::channel();
        let pooled = PoolConnection {
            notify_use: Some(notify_use),
            connection,
        };
        if !self.insert(meta, pooled, Some(notify_evicted.clone())) {
            // Pooling disabled: the connection was dropped right away.
            notify_evicted.notify_one();
        }
        (notify_evicted, watch_use)
    }

    /// Release `connection` into the pool without a watcher: no handles are
    /// allocated, and the owner is expected to vet it when it is taken again
    /// and to sweep the pool (see [`Self::retain`]) for connections that die
    /// while idle. Caps and eviction work as with [`Self::put`].
    pub fn put_unwatched(&self, meta: &ConnectionMeta, connection: S) {
        let pooled = PoolConnection {
            notify_use: None,
            connection,
        };
        self.insert(meta, pooled, None);
    }

    /// Add a connection, enforcing both caps. False when pooling is disabled
    /// (the connection is dropped).
    fn insert(
        &self,
        meta: &ConnectionMeta,
        pooled: PoolConnection<S>,
        notify_evicted: Option<Arc<Notify>>,
    ) -> bool {
        let Some(lru) = &self.lru else {
            return false;
        };
        if let Some((old, old_notify)) = lru.add(meta.hash(), *meta, notify_evicted) {
            self.evict(&old, old_notify);
        }
        let node = self.node(meta.key);
        node.insert(meta.id, pooled);
        // Enforce the per-group cap by dropping the group's oldest entries.
        while node.len() > self.per_key {
            let Some((old_id, old)) = node.pop_oldest() else {
                break;
            };
            let old_meta = ConnectionMeta::new(meta.key, old_id);
            let old_notify = lru.remove(old_meta.hash(), &old_meta).flatten();
            drop(old);
            if let Some(n) = old_notify {
                n.notify_one();
            }
            debug!(
                "group {} over its cap, dropped connection {old_id}",
                meta.key
            );
        }
        true
    }

    /// Visit every pooled connection and drop those for which `keep` returns
    /// false (e.g. found closed or idle for too long). Returns how many were
    /// dropped. Connections being visited are briefly invisible to
    /// [`Self::get`]; `keep` should not block.
    pub fn retain(&self, mut keep: impl FnMut(&ConnectionMeta, &mut S) -> bool) -> usize {
        let nodes: Vec<(GroupKey, Node<S>)> = self
            .groups
            .iter()
            .flat_map(|shard| {
                let shard = shard.read();
                shard
                    .iter()
                    .map(|(k, n)| (*k, n.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut count = 0;
        for (key, node) in nodes {
            let dropped = node
                .retain(|id, pooled| keep(&ConnectionMeta::new(key, id), &mut pooled.connection));
            drop(node);
            count += dropped.len();
            for id in dropped {
                // Forgets the LRU entry and, if it emptied, the group.
                self.pop_closed(&ConnectionMeta::new(key, id));
            }
        }
        count
    }

    /// Watch a pooled connection until it is reused, evicted, closed by the
    /// peer, sends unexpected data, or stays idle longer than `timeout`.
    ///
    /// The watcher holds the connection's lock while it reads from it; the
    /// taker of the connection waits for that lock, which this function
    /// releases as soon as the connection is handed out. In the last three
    /// cases the connection is removed from the pool (and so closed).
    pub async fn idle_poll<St>(
        &self,
        connection: OwnedMutexGuard<St>,
        meta: &ConnectionMeta,
        timeout: Option<Duration>,
        notify_evicted: Arc<Notify>,
        watch_use: oneshot::Receiver<bool>,
    ) where
        St: AsyncRead + Unpin + Send,
    {
        let outcome = tokio::select! {
            biased;
            _ = watch_use => {
                debug!("pooled connection {} taken or dropped", meta.id);
                return;
            }
            _ = notify_evicted.notified() => {
                debug!("pooled connection {} evicted", meta.id);
                return;
            }
            outcome = read_with_timeout(connection, timeout) => outcome,
        };
        match outcome {
            Ok(0) => debug!("pooled connection {} closed by peer or timed out", meta.id),
            Ok(_) => debug!("unexpected data on pooled connection {}, closing", meta.id),
            Err(e) => debug!("pooled connection {} failed: {e}", meta.id),
        }
        self.pop_closed(meta);
    }

    /// Watch a pooled connection by timer only (for connections another task
    /// reads, e.g. multiplexed ones): drop it after `timeout`, or when
    /// `notify_closed` changes, unless it is reused or evicted first.
    pub async fn idle_timeout(
        &self,
        meta: &ConnectionMeta,
        timeout: Duration,
        notify_evicted: Arc<Notify>,
        mut notify_closed: watch::Receiver<bool>,
        watch_use: oneshot::Receiver<bool>,
    ) {
        tokio::select! {
            biased;
            _ = watch_use => {
                debug!("pooled connection {} taken or dropped", meta.id);
            }
            _ = notify_evicted.notified() => {
                debug!("pooled connection {} evicted", meta.id);
            }
            _ = notify_closed.changed() => {
                debug!("pooled connection {} closed", meta.id);
                self.pop_closed(meta);
            }
            _ = tokio::time::sleep(timeout) => {
                debug!("pooled connection {} idle timeout", meta.id);
                self.pop_closed(meta);
            }
        }
    }
}

/// Read one byte; a timeout counts as end of stream.
async fn read_with_timeout<St>(
    mut connection: OwnedMutexGuard<St>,
    timeout: Option<Duration>,
) -> io::Result<usize>
where
    St: AsyncRead + Unpin + Send,
{
    let mut buf = [0u8; 1];
    let read = connection.read(&mut buf);
    match timeout {
        Some(t) => tokio::time::timeout(t, read).await.unwrap_or(Ok(0)),
        None => read.await,
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
