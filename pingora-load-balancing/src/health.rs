//! Per-backend health state, readable and updatable without locks.

use std::sync::atomic::{AtomicU64, Ordering};

const HEALTHY: u64 = 1;
const ENABLED: u64 = 1 << 1;
const COUNTER_SHIFT: u32 = 2;
const COUNTER_MAX: u64 = u64::MAX >> COUNTER_SHIFT;

/// Health of one backend: whether it passes its checks, whether it is
/// administratively enabled, and how many consecutive checks have disagreed
/// with the current health.
///
/// All three live in one atomic word so [`Health::ready`] is a single load
/// and [`Health::observe`] is one compare-and-swap loop.
#[derive(Debug)]
pub(crate) struct Health(AtomicU64);

impl Default for Health {
    /// New backends start healthy and enabled, so traffic flows before the
    /// first check has run.
    fn default() -> Self {
        Health(AtomicU64::new(HEALTHY | ENABLED))
    }
}

impl Health {
    /// Healthy and enabled.
    pub fn ready(&self) -> bool {
        let s = self.0.load(Ordering::Acquire);
        s & (HEALTHY | ENABLED) == (HEALTHY | ENABLED)
    }

    /// Whether the last flip left the backend healthy.
    #[cfg(test)]
    pub fn healthy(&self) -> bool {
        self.0.load(Ordering::Acquire) & HEALTHY != 0
    }

    /// Allow or stop traffic regardless of health.
    pub fn enable(&self, enabled: bool) {
        if enabled {
            self.0.fetch_or(ENABLED, Ordering::AcqRel);
        } else {
            self.0.fetch_and(!ENABLED, Ordering::AcqRel);
        }
    }

    /// Record one check result. The health flips once `threshold`
    /// consecutive results disagree with it (a threshold of 0 acts as 1);
    /// a result that agrees resets the streak. Returns true when this
    /// observation flipped the health.
    pub fn observe(&self, success: bool, threshold: usize) -> bool {
        let threshold = threshold.max(1) as u64;
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            let healthy = current & HEALTHY != 0;
            let counter = current >> COUNTER_SHIFT;
            let flags = current & (HEALTHY | ENABLED);
            let (next, flipped) = if healthy != success {
                let counter = (counter + 1).min(COUNTER_MAX);
                if counter >= threshold {
                    let flags = if success {
                        flags | HEALTHY
                    } else {
                        flags & !HEALTHY
                    };
                    (flags, true)
                } else {
                    (flags | (counter << COUNTER_SHIFT), false)
                }
            } else if counter != 0 {
                (flags, false)
            } else {
                return false;
            };
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return flipped,
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_after_threshold_only() {
        let h = Health::default();
        assert!(h.ready());
        assert!(!h.observe(false, 3));
        assert!(!h.observe(false, 3));
        assert!(h.ready());
        assert!(h.observe(false, 3));
        assert!(!h.ready());
        assert!(!h.healthy());
        // already unhealthy: more failures change nothing
        assert!(!h.observe(false, 3));
        assert!(h.observe(true, 1));
        assert!(h.ready());
    }

    #[test]
    fn streak_resets_on_agreement() {
        let h = Health::default();
        assert!(!h.observe(false, 2));
        assert!(!h.observe(true, 2)); // agrees with healthy: streak reset
        assert!(!h.observe(false, 2));
        assert!(h.ready());
        assert!(h.observe(false, 2));
        assert!(!h.ready());
    }

    #[test]
    fn zero_threshold_acts_as_one() {
        let h = Health::default();
        assert!(h.observe(false, 0));
        assert!(!h.ready());
    }

    #[test]
    fn enable_is_independent_of_health() {
        let h = Health::default();
        h.enable(false);
        assert!(!h.ready());
        assert!(h.healthy());
        assert!(h.observe(false, 1));
        h.enable(true);
        assert!(!h.ready());
        assert!(h.observe(true, 1));
        assert!(h.ready());
    }
}
