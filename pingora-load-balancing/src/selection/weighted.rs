//! Weighted selection over any [`SelectionAlgorithm`].
//!
//! Each backend gets a number of slots in a table proportional to its weight,
//! and the algorithm's index picks a slot. The slots of one backend are
//! spread evenly through the table, so a round robin over the table
//! interleaves heavy and light backends instead of sending bursts.

use super::{BackendIter, BackendSelection, SelectionAlgorithm};
use crate::hashing::mix64;
use crate::Backend;
use fnv::FnvHasher;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Upper bound on weighted slots. Weights are first divided by their common
/// divisor; if they still add up to more than this they are scaled down
/// proportionally (every non-zero weight keeps at least one slot), so a huge
/// weight cannot make building the table exhaust memory.
pub(crate) const MAX_WEIGHTED_SLOTS: u64 = 1 << 16;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Reduce `weights` to the smallest proportional integers (dividing by their
/// common divisor), scaled down if their sum exceeds `cap` (every non-zero
/// weight keeps at least 1). Zero stays zero.
pub(crate) fn normalized_weights(weights: impl Iterator<Item = usize>, cap: u64) -> Vec<u64> {
    let mut out: Vec<u64> = weights.map(|w| w as u64).collect();
    let divisor = out.iter().fold(0, |g, &w| gcd(g, w));
    if divisor > 1 {
        out.iter_mut().for_each(|w| *w /= divisor);
    }
    scale_to_cap(&mut out, cap);
    out
}

/// Scale `counts` down proportionally so they add up to about `cap` (every
/// non-zero count keeps at least 1); a no-op when they already fit.
pub(crate) fn scale_to_cap(counts: &mut [u64], cap: u64) {
    let total: u128 = counts.iter().map(|&c| c as u128).sum();
    if total > cap as u128 {
        for c in counts.iter_mut().filter(|c| **c > 0) {
            // c * cap / total <= cap, so it fits back into u64
            *c = ((*c as u128 * cap as u128 / total) as u64).max(1);
        }
    }
}

/// Weighted selection driven by the algorithm `H` (FNV hashing by default;
/// see [`super::algorithms`]).
pub struct Weighted<H = FnvHasher> {
    backends: Box<[Backend]>,
    /// Indexes into `backends`, one per weighted slot, interleaved.
    weighted: Box<[u32]>,
    algorithm: H,
}

/// The interleaved slot table for `weights`.
///
/// Slot `k` of backend `i` (of `n`) sits at position `(k + φ_i) / w_i` with
/// the phase `φ_i = (i + 1) / (n + 1)`: each backend's slots are evenly
/// spaced, and distinct phases keep light backends from bunching together
/// (which would leave a long run of the heavy one across the wrap-around).
fn interleave(weights: &[u64]) -> Box<[u32]> {
    let phases = weights.len() as u64 + 1;
    // (numerator, denominator, backend index)
    let mut slots: Vec<(u64, u64, u32)> = Vec::with_capacity(weights.iter().sum::<u64>() as usize);
    for (i, &w) in weights.iter().enumerate() {
        for k in 0..w {
            slots.push((k * phases + i as u64 + 1, w * phases, i as u32));
        }
    }
    slots.sort_unstable_by(|a, b| {
        let lhs = a.0 as u128 * b.1 as u128;
        let rhs = b.0 as u128 * a.1 as u128;
        lhs.cmp(&rhs).then(a.2.cmp(&b.2))
    });
    slots.into_iter().map(|s| s.2).collect()
}

impl<H: SelectionAlgorithm> BackendSelection for Weighted<H> {
    type Iter = WeightedIterator<H>;
    type Config = ();

    fn build(backends: &BTreeSet<Backend>) -> Self {
        let backends: Box<[Backend]> = backends.iter().cloned().collect();
        let weights = normalized_weights(backends.iter().map(|b| b.weight), MAX_WEIGHTED_SLOTS);
        Weighted {
            weighted: interleave(&weights),
            backends,
            algorithm: H::new(),
        }
    }

    fn iter(self: &Arc<Self>, key: &[u8]) -> Self::Iter {
        WeightedIterator {
            seed: self.algorithm.next(key),
            selection: self.clone(),
            current: 0,
            stride: 1,
            step: 0,
        }
    }
}

/// The candidates of a [`Weighted`] selection: first the weighted pick, then
/// every other backend exactly once, in an order derived from the pick (so
/// the load of a rejected backend spreads over the rest rather than landing
/// on its neighbour). Fallbacks ignore weights.
pub struct WeightedIterator<H> {
    selection: Arc<Weighted<H>>,
    seed: u64,
    current: usize,
    stride: usize,
    step: usize,
}

/// A step in `1..n` coprime with `n`, so that repeatedly adding it modulo
/// `n` visits every index once.
fn coprime_stride(seed: u64, n: usize) -> usize {
    if n <= 2 {
        return 1;
    }
    let span = (n - 1) as u64;
    let mut stride = 1 + mix64(seed) % span;
    while gcd(stride, n as u64) != 1 {
        stride = stride % span + 1;
    }
    stride as usize
}

impl<H: SelectionAlgorithm> BackendIter for WeightedIterator<H> {
    fn next(&mut self) -> Option<&Backend> {
        let n = self.selection.backends.len();
        if self.step >= n {
            return None;
        }
        if self.step == 0 {
            let table = &self.selection.weighted;
            self.current = if table.is_empty() {
                // every weight is zero: fall back to a uniform pick
                (self.seed % n as u64) as usize
            } else {
                table[(self.seed % table.len() as u64) as usize] as usize
            };
        } else {
            if self.step == 1 {
                // only requests whose first pick was rejected pay for this
                self.stride = coprime_stride(self.seed, n);
            }
            self.current = (self.current + self.stride) % n;
        }
        self.step += 1;
        self.selection.backends.get(self.current)
    }
}

impl<H> Weighted<H> {
    /// The interleaved slot table, for tests.
    #[cfg(test)]
    fn table(&self) -> &[u32] {
        &self.weighted
    }
}

impl<H> std::fmt::Debug for Weighted<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weighted")
            .field("backends", &self.backends)
            .field("slots", &self.weighted.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "weighted_tests.rs"]
mod tests;
