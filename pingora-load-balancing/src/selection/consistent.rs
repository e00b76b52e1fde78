//! Weighted consistent hashing on a ketama-style ring.
//!
//! Every backend places `weight × point_multiple` points on a 64-bit ring,
//! each at the hash of the backend's address and the point's number. A key
//! goes to the owner of the first point at or after the key's hash. A
//! backend's points depend only on its own address and weight, so adding or
//! removing a backend only moves the keys whose nearest point changes owner:
//! about `1/n` of them.

use super::weighted::{mix64, scale_to_cap};
use super::{BackendIter, BackendSelection};
use crate::Backend;
use pingora_core::protocols::l4::socket::SocketAddr;
use std::collections::BTreeSet;
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
    backends: Box<[Backend]>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        state ^= b as u64;
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// Where `key` lands on the ring.
fn key_point(key: &[u8]) -> u64 {
    mix64(fnv1a(FNV_OFFSET, key))
}

/// The hash state of a backend's address, from which its points derive.
/// Independent of the backend's position in the set, so points are stable.
fn addr_state(addr: &SocketAddr) -> u64 {
    match addr {
        SocketAddr::Inet(inet) => {
            let state = match inet.ip() {
                std::net::IpAddr::V4(ip) => fnv1a(FNV_OFFSET, &ip.octets()),
                std::net::IpAddr::V6(ip) => fnv1a(FNV_OFFSET, &ip.octets()),
            };
            fnv1a(state, &inet.port().to_be_bytes())
        }
        SocketAddr::Unix(unix) => {
            let state = fnv1a(FNV_OFFSET, b"unix:");
            match unix.as_pathname() {
                Some(path) => fnv1a(state, path.as_os_str().as_bytes()),
                None => state,
            }
        }
    }
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
            let state = addr_state(&backend.addr);
            for replica in 0..count {
                let point = mix64(fnv1a(state, &replica.to_le_bytes()));
                ring.push((point, index as u32));
            }
        }
        // ties (vanishingly rare) are broken by backend order, which is the
        // address order of the set, so every builder agrees on the ring
        ring.sort_unstable();
        KetamaHashing {
            ring: ring.into_boxed_slice(),
            backends,
        }
    }

    fn iter(self: &Arc<Self>, key: &[u8]) -> Self::Iter {
        let point = key_point(key);
        let start = self.ring.partition_point(|&(p, _)| p < point);
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
