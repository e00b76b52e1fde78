//! Counting the connections a listening service is serving, so that a
//! graceful shutdown can wait for the last one to finish.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// The number of live connections of one service.
#[derive(Debug, Default)]
pub(super) struct ConnTracker {
    live: AtomicUsize,
    all_done: Notify,
}

/// Held by a connection's task; dropping it (however the task ends) counts
/// the connection as finished.
#[derive(Debug)]
pub(super) struct ConnGuard(Arc<ConnTracker>);

impl ConnTracker {
    /// Count a new connection until the guard is dropped.
    pub(super) fn track(self: &Arc<Self>) -> ConnGuard {
        self.live.fetch_add(1, Ordering::AcqRel);
        ConnGuard(self.clone())
    }

    /// Connections still being served.
    pub(super) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Wait until no connection is left.
    pub(super) async fn wait_idle(&self) {
        loop {
            let notified = self.all_done.notified();
            tokio::pin!(notified);
            // register before checking, so a drop in between is not missed
            notified.as_mut().enable();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_done.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_for_the_last_guard() {
        let t = Arc::new(ConnTracker::default());
        t.wait_idle().await;
        let a = t.track();
        let b = t.track();
        assert_eq!(t.live(), 2);
        let waiter = {
            let t = t.clone();
            tokio::spawn(async move { t.wait_idle().await })
        };
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("woken")
            .expect("task");
        assert_eq!(t.live(), 0);
    }
}
