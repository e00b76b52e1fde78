//! Weighted consistent hashing on a ketama-style ring.
//!
//! Every backend places `weight × point_multiple` points on a 64-bit ring,
//! each at the hash of the backend's address and the point's number. A key
//! goes to the owner of the first point at or after the key's hash. A
//! backend's points depend only on its own address and weight, so adding or
//! removing a backend only moves the keys whose nearest point changes owner:
//! about `1/n` of them.

use super::weighted::scale_to_cap;
use super::{BackendIter, BackendSelection};
use crate::hashing::{hash_bytes, KeyHasher};
use crate::Backend;
use pingora_core::protocols::l4::socket::SocketAddr;
use std::collections::BTreeSet;
use std::hash::Hasher;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// Points per unit of weight when [`KetamaConfig::point_multiple`] is unset.
pub const DEFAULT_POINT_MULTIPLE: u32 = 160;

/// Upper bound on ring points: beyond it every backend's point count is
/// scaled down proportionally, so huge weights cannot exhaust memory.
const MAX_RING_POINTS: u64 = 1 << 20;

/// Tunables of [`KetamaHashing`].
#[derive(Clone, Debug, Default)]
pub struct KetamaConfig {
    /// Points per unit of weight ([`DEFAULT_POINT_MULTIPLE`] when `None`).
    /// More points even out the load at the cost of a larger ring.
    pub point_multiple: Option<u32>,
}

/// Weighted consistent hashing: the same key keeps going to the same backend
/// while that backend is in the set, and removing a backend only moves the
/// keys it owned.
pub struct KetamaHashing {
    /// (point, index into `backends`), sorted by point.
    ring: Box<[(u64, u32)]>,
    /// `buckets[b]`: the first ring index whose point's top `bucket_bits`
    /// bits are at least `b`. Narrows a lookup to about one point, so it
    /// costs one or two cache misses instead of a binary search's dozen.
    buckets: Box<[u32]>,
    bucket_bits: u32,
    backends: Box<[Backend]>,
}

/// Bucket index for `ring`: about one bucket per point.
fn bucket_index(ring: &[(u64, u32)]) -> (Box<[u32]>, u32) {
    let bits = (usize::BITS - ring.len().leading_zeros()).clamp(1, 21);
    let mut buckets = Vec::with_capacity(1 << bits);
    let mut at = 0;
    for bucket in 0..(1u64 << bits) {
        let floor = bucket << (64 - bits);
        while at < ring.len() && ring[at].0 < floor {
            at += 1;
        }
        buckets.push(at as u32);
    }
    (buckets.into_boxed_slice(), bits)
}

impl KetamaHashing {
    /// Index of the first ring point at or after `point` (`ring.len()` if
    /// none, meaning the walk wraps to the start).
    fn locate(&self, point: u64) -> usize {
        let bucket = (point >> (64 - self.bucket_bits)) as usize;
        let lo = self
            .buckets
            .get(bucket)
            .map_or(self.ring.len(), |&i| i as usize);
        let hi = self
            .buckets
            .get(bucket + 1)
            .map_or(self.ring.len(), |&i| i as usize);
        lo + self.ring[lo..hi].partition_point(|&(p, _)| p < point)
    }
}

/// Where `key` lands on the ring.
fn key_point(key: &[u8]) -> u64 {
    hash_bytes(key)
}

/// A hasher primed with a backend's address, from which its points derive.
/// Independent of the backend's position in the set, so points are stable.
fn addr_hasher(addr: &SocketAddr) -> KeyHasher {
    let mut hasher = KeyHasher::default();
    match addr {
        SocketAddr::Inet(inet) => {
            match inet.ip() {
                std::net::IpAddr::V4(ip) => hasher.write(&ip.octets()),
                std::net::IpAddr::V6(ip) => hasher.write(&ip.octets()),
            }
            hasher.write_u16(inet.port());
        }
        SocketAddr::Unix(unix) => {
            hasher.write(b"unix:");
            if let Some(path) = unix.as_pathname() {
                hasher.write(path.as_os_str().as_bytes());
            }
        }
    }
    hasher
}

impl BackendSelection for KetamaHashing {
    type Iter = OwnedNodeIterator;
    type Config = KetamaConfig;

    fn build(backends: &BTreeSet<Backend>) -> Self {
        Self::build_with_config(backends, &KetamaConfig::default())
    }

    fn build_with_config(backends: &BTreeSet<Backend>, config: &KetamaConfig) -> Self {
        let multiple = config
            .point_multiple
            .unwrap_or(DEFAULT_POINT_MULTIPLE)
            .max(1) as u64;
        let backends: Box<[Backend]> = backends.iter().cloned().collect();
        let mut counts: Vec<u64> = backends
            .iter()
            .map(|b| (b.weight as u64).saturating_mul(multiple))
            .collect();
        scale_to_cap(&mut counts, MAX_RING_POINTS);

        let mut ring = Vec::with_capacity(counts.iter().sum::<u64>() as usize);
        for (index, (backend, &count)) in backends.iter().zip(counts.iter()).enumerate() {
            let base = addr_hasher(&backend.addr);
            for replica in 0..count {
                let mut hasher = base.clone();
                hasher.write_u64(replica);
                ring.push((hasher.finish(), index as u32));
            }
        }
        // ties (vanishingly rare) are broken by backend order, which is the
        // address order of the set, so every builder agrees on the ring
        ring.sort_unstable();
        let (buckets, bucket_bits) = bucket_index(&ring);
        KetamaHashing {
            ring: ring.into_boxed_slice(),
            buckets,
            bucket_bits,
            backends,
        }
    }

    fn iter(self: &Arc<Self>, key: &[u8]) -> Self::Iter {
        let point = key_point(key);
        let start = self.locate(point);
        OwnedNodeIterator {
            ring: self.clone(),
            start,
            step: 0,
            last: None,
        }
    }
}

impl std::fmt::Debug for KetamaHashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KetamaHashing")
            .field("backends", &self.backends)
            .field("points", &self.ring.len())
            .finish()
    }
}

/// The candidates of a [`KetamaHashing`] ring for one key: the owners of the
/// points met walking the ring clockwise from the key, skipping repeats of
/// the owner just yielded. Ends after one full turn.
pub struct OwnedNodeIterator {
    ring: Arc<KetamaHashing>,
    start: usize,
    step: usize,
    last: Option<u32>,
}

impl BackendIter for OwnedNodeIterator {
    fn next(&mut self) -> Option<&Backend> {
        let ring = &self.ring.ring;
        while self.step < ring.len() {
            let (_, owner) = ring[(self.start + self.step) % ring.len()];
            self.step += 1;
            if self.last != Some(owner) {
                self.last = Some(owner);
                return self.ring.backends.get(owner as usize);
            }
        }
        None
    }
}

#[cfg(test)]
#[path = "consistent_tests.rs"]
mod tests;
