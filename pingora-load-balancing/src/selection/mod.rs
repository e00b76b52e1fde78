//! Backend selection: which backend a request goes to.
//!
//! A [`BackendSelection`] is built from the current backend set each time it
//! changes and is then shared read-only by all requests. For a request it
//! yields a [`BackendIter`]: the preferred backend first, then fallbacks to
//! try when the preferred one is unhealthy or rejected.
//!
//! Ready-made selections:
//! * [`RoundRobin`], [`Random`], [`FNVHash`]: [`weighted::Weighted`] over the
//!   corresponding [`algorithms`].
//! * [`Consistent`]: [`consistent::KetamaHashing`], a weighted hash ring where
//!   removing a backend only moves the keys that backend owned.

pub mod algorithms;
pub mod consistent;
pub mod weighted;

use crate::Backend;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use weighted::Weighted;

/// A selection algorithm built over a backend set.
pub trait BackendSelection: Sized {
    /// The candidate iterator returned by [`BackendSelection::iter`].
    type Iter;

    /// Tunables for building this selection (`()` when there are none).
    type Config: Send + Sync;

    /// Build with `config`. Defaults to ignoring it and calling
    /// [`BackendSelection::build`].
    fn build_with_config(backends: &BTreeSet<Backend>, _config: &Self::Config) -> Self {
        Self::build(backends)
    }

    /// Build with default tunables.
    fn build(backends: &BTreeSet<Backend>) -> Self;

    /// The candidates for `key`, preferred first. Keyless algorithms (round
    /// robin, random) ignore `key`.
    fn iter(self: &Arc<Self>, key: &[u8]) -> Self::Iter
    where
        Self::Iter: BackendIter;
}

/// Like [`Iterator`], but yields references into the selection it borrows
/// from, so walking past rejected candidates clones nothing.
pub trait BackendIter {
    /// The next candidate, or `None` when there is none left.
    fn next(&mut self) -> Option<&Backend>;
}

/// The index source of a [`weighted::Weighted`] selection.
///
/// Every [`std::hash::Hasher`] + [`Default`] (e.g. [`fnv::FnvHasher`]) is one:
/// it hashes the key.
pub trait SelectionAlgorithm {
    /// A fresh instance.
    fn new() -> Self;
    /// An unbounded index for `key`; the caller reduces it modulo its table.
    fn next(&self, key: &[u8]) -> u64;
}

/// Hash the key with [FNV-1a](https://en.wikipedia.org/wiki/Fowler%E2%80%93Noll%E2%80%93Vo_hash_function)
/// over weighted backends: the same key goes to the same backend while the
/// set is unchanged.
pub type FNVHash = Weighted<fnv::FnvHasher>;

/// Misspelt alias of [`FNVHash`], kept for source compatibility.
#[doc(hidden)]
pub type FVNHash = Weighted<fnv::FnvHasher>;

/// Uniformly random picks over weighted backends.
pub type Random = Weighted<algorithms::Random>;

/// Round robin over weighted backends, interleaved so heavy backends are
/// spread through the cycle rather than picked in bursts.
pub type RoundRobin = Weighted<algorithms::RoundRobin>;

/// Weighted consistent (ketama-style) hashing.
pub type Consistent = consistent::KetamaHashing;

/// Number of candidates remembered inline before spilling to a hash set:
/// most selections accept one of the first few candidates, so the common
/// path does not allocate.
const INLINE_SEEN: usize = 8;

/// The hash keys of candidates already yielded.
#[derive(Default)]
struct Seen {
    inline: [u64; INLINE_SEEN],
    inline_len: usize,
    spill: HashSet<u64>,
}

impl Seen {
    /// Records `key`; returns false if it had been recorded already.
    fn insert(&mut self, key: u64) -> bool {
        if self.inline[..self.inline_len].contains(&key) || self.spill.contains(&key) {
            return false;
        }
        if self.inline_len < INLINE_SEEN {
            self.inline[self.inline_len] = key;
            self.inline_len += 1;
        } else {
            self.spill.insert(key);
        }
        true
    }
}

/// Wraps a [`BackendIter`] to yield each distinct backend once, stopping after
/// `max_iterations` steps of the inner iterator (some iterators, like a hash
/// ring walk, can repeat a backend many times before reaching another).
pub struct UniqueIterator<I>
where
    I: BackendIter,
{
    iter: I,
    seen: Seen,
    max_iterations: usize,
    steps: usize,
}

impl<I> UniqueIterator<I>
where
    I: BackendIter,
{
    /// Wrap `iter`, giving up after `max_iterations` inner steps.
    pub fn new(iter: I, max_iterations: usize) -> Self {
        Self {
            iter,
            seen: Seen::default(),
            max_iterations,
            steps: 0,
        }
    }

    /// The next backend not yielded before, or `None` when the inner
    /// iterator is exhausted or the step budget is spent.
    pub fn get_next(&mut self) -> Option<Backend> {
        self.find_map(|backend, _| Some(backend.clone()))
    }

    /// Offer each new candidate with its [`Backend::hash_key`] to `f` until
    /// it returns `Some`. Candidates are lent, not cloned, so rejecting one
    /// costs nothing.
    pub(crate) fn find_map<R>(
        &mut self,
        mut f: impl FnMut(&Backend, u64) -> Option<R>,
    ) -> Option<R> {
        while self.steps < self.max_iterations {
            self.steps += 1;
            let candidate = self.iter.next()?;
            let key = candidate.hash_key();
            if self.seen.insert(key) {
                if let Some(found) = f(candidate, key) {
                    return Some(found);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
