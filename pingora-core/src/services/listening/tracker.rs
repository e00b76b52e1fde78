//! Counting the connections a listening service is serving, so that a
//! graceful shutdown can wait for the last one to finish.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use tokio::sync::Notify;

use crate::apps::ParkLot;

/// The number of live connections of one service.
#[derive(Debug, Default)]
pub(crate) struct ConnTracker {
    live: AtomicUsize,
    all_done: Notify,
    /// Where the service's idle HTTP/1 connections are parked, made by the first one parked.
    /// Weak: the lot's driver task owns it, and the lot's entries hold guards of this tracker.
    lot: OnceLock<Weak<ParkLot>>,
}

/// Held by a connection's task, or by the park lot while the connection is
/// parked; dropping it (however the connection ends) counts the connection as
/// finished.
#[derive(Debug)]
pub(crate) struct ConnGuard(Arc<ConnTracker>);

impl ConnGuard {
    /// The tracker this connection counts in.
    pub(crate) fn tracker(&self) -> &ConnTracker {
        &self.0
    }
}

impl ConnTracker {
    /// The service's park lot, made by `make` the first time; `None` once the lot is gone
    /// (its driver ended at shutdown, or its runtime stopped).
    pub(crate) fn park_lot(
        &self,
        make: impl FnOnce() -> Option<Arc<ParkLot>>,
    ) -> Option<Arc<ParkLot>> {
        let mut made = None;
        let weak = self.lot.get_or_init(|| match make() {
            Some(lot) => {
                let weak = Arc::downgrade(&lot);
                made = Some(lot);
                weak
            }
            None => Weak::new(),
        });
        made.or_else(|| weak.upgrade())
    }

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
