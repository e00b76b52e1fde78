//! A connection pool for reusing upstream connections.
//!
//! Connections are grouped by a [`GroupKey`](ConnectionMeta::key): any idle
//! connection of a group can serve any request for that group. The pool keeps
//! two limits:
//!
//! * a per-group cap: a group never holds more than `size` idle connections;
//!   when a new one is released the oldest of that group is dropped;
//! * a global cap across all groups, enforced with least-recently-released
//!   eviction.
//!
//! The hot path (`put`/`get`) takes no pool-wide lock: groups live in a
//! sharded map, each group keeps a small lock-free queue of its most recent
//! connections, and the LRU bookkeeping is sharded as well.
//!
//! While a connection sits in the pool it can be watched by
//! [`ConnectionPool::idle_poll`] (which reads from it, so an upstream close or
//! unexpected bytes evict it at once) or [`ConnectionPool::idle_timeout`]
//! (timer only). Both drop the connection when its idle timeout passes.
//! Owners that would rather not run a task per pooled connection release with
//! [`ConnectionPool::put_unwatched`], vet connections when taking them, and
//! sweep the pool now and then with [`ConnectionPool::retain`].
#![warn(missing_docs)]
#![allow(clippy::new_without_default)]
#![allow(clippy::type_complexity)]

mod connection;
mod lru;
mod node;

pub use connection::{ConnectionMeta, ConnectionPool};
pub use node::PoolNode;
