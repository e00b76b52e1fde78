//! Health checks: probing backends and deciding when their health flips.
//!
//! A [`HealthCheck`] judges one backend at a time; [`crate::Backends`] runs
//! it over the whole set and flips a backend's health only after
//! [`HealthCheck::health_threshold`] consecutive results disagree with it,
//! so one lost probe does not take a backend out of rotation.
//!
//! Provided checks: [`TcpHealthCheck`] (a TCP connection can be made) and
//! [`HttpHealthCheck`] (an HTTP request gets the expected response).

use crate::Backend;
use async_trait::async_trait;
use pingora_error::Result;

mod http;
mod tcp;

pub use self::http::HttpHealthCheck;
pub use self::tcp::TcpHealthCheck;

/// A way to probe a backend.
#[async_trait]
pub trait HealthCheck {
    /// Probe `target` once: `Ok(())` if it passes.
    async fn check(&self, target: &Backend) -> Result<()>;

    /// Called after `target`'s health flipped to `healthy`. Does nothing by
    /// default.
    async fn health_status_change(&self, _target: &Backend, _healthy: bool) {}

    /// How `target` is named in logs about its health.
    fn backend_summary(&self, target: &Backend) -> String {
        format!("{target:?}")
    }

    /// How many consecutive results must disagree with the current health to
    /// flip it: with `success == true`, the passes needed to become healthy;
    /// otherwise the failures needed to become unhealthy.
    fn health_threshold(&self, success: bool) -> usize;
}

/// Told when a backend's health flips; plug one into a provided check's
/// `health_changed_callback` to export health to metrics or to page someone.
#[async_trait]
pub trait HealthObserve {
    /// `target` just became healthy (`true`) or unhealthy (`false`).
    async fn observe(&self, target: &Backend, healthy: bool);
}

/// A boxed [`HealthObserve`], as stored by the provided checks.
pub type HealthObserveCallback = Box<dyn HealthObserve + Send + Sync>;

/// A custom way to name a backend in health logs.
pub type BackendSummary = Box<dyn Fn(&Backend) -> String + Send + Sync>;

/// Which of the two thresholds applies to a result.
fn threshold(success: bool, consecutive_success: usize, consecutive_failure: usize) -> usize {
    if success {
        consecutive_success
    } else {
        consecutive_failure
    }
}
