//! Running a [`LoadBalancer`] as a background service.

use crate::selection::{BackendIter, BackendSelection};
use crate::LoadBalancer;
use async_trait::async_trait;
use log::warn;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use tokio::time::Instant;

/// Refreshes discovery every `update_frequency` and runs health checks every
/// `health_check_frequency`, both once right away. A frequency of `None`
/// means "only at start"; with both `None` the service returns after the
/// first round. Stops as soon as shutdown is signalled.
#[async_trait]
impl<S> BackgroundService for LoadBalancer<S>
where
    S: BackendSelection + Send + Sync + 'static,
    S::Iter: BackendIter,
{
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut next_update = Some(Instant::now());
        let mut next_check = Some(Instant::now());
        loop {
            if *shutdown.borrow() {
                return;
            }
            let now = Instant::now();
            if next_update.is_some_and(|at| at <= now) {
                if let Err(e) = self.update().await {
                    warn!("load balancer discovery update failed: {e}");
                }
                next_update = self.update_frequency.map(|every| now + every);
            }
            if next_check.is_some_and(|at| at <= now) {
                self.backends()
                    .run_health_check(self.parallel_health_check)
                    .await;
                next_check = self.health_check_frequency.map(|every| now + every);
            }
            let wake = match (next_update, next_check) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => return,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                changed = shutdown.changed() => {
                    // a dropped sender means the server is gone: stop too
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
