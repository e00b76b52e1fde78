//! Index sources for [`super::weighted::Weighted`] selection.
//!
//! Any [`std::hash::Hasher`] + [`Default`] is a [`SelectionAlgorithm`] that
//! hashes the key; [`RoundRobin`] and [`Random`] ignore the key.

use super::SelectionAlgorithm;
use std::hash::Hasher;
use std::sync::atomic::{AtomicUsize, Ordering};

impl<H> SelectionAlgorithm for H
where
    H: Default + Hasher,
{
    fn new() -> Self {
        H::default()
    }

    fn next(&self, key: &[u8]) -> u64 {
        let mut hasher = H::default();
        hasher.write(key);
        hasher.finish()
    }
}

/// Successive indexes from a shared atomic counter: picks cycle through the
/// weighted table without any lock.
pub struct RoundRobin(AtomicUsize);

impl SelectionAlgorithm for RoundRobin {
    fn new() -> Self {
        RoundRobin(AtomicUsize::new(0))
    }

    fn next(&self, _key: &[u8]) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) as u64
    }
}

/// A uniformly random index per pick, from the thread-local generator.
pub struct Random;

impl SelectionAlgorithm for Random {
    fn new() -> Self {
        Random
    }

    fn next(&self, _key: &[u8]) -> u64 {
        rand::random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_counts_up() {
        let rr = <RoundRobin as SelectionAlgorithm>::new();
        let seq: Vec<u64> = (0..4).map(|_| rr.next(b"ignored")).collect();
        assert_eq!(seq, vec![0, 1, 2, 3]);
    }

    #[test]
    fn hasher_is_deterministic() {
        let fnv = <fnv::FnvHasher as SelectionAlgorithm>::new();
        assert_eq!(fnv.next(b"key"), fnv.next(b"key"));
        assert_ne!(fnv.next(b"key"), fnv.next(b"other"));
        // FNV-1a 64 of the empty input is its offset basis
        assert_eq!(fnv.next(b""), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn random_varies() {
        let r = <Random as SelectionAlgorithm>::new();
        let first = r.next(b"");
        assert!((0..16).any(|_| r.next(b"") != first));
    }
}
