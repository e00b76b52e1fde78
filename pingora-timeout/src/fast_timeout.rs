//! Timeouts on the shared coarse timer wheel (see [`crate::timer`]).
//!
//! Worth it when timeouts are created often (more than ~100 per second): the single timer
//! thread costs a wake-up per 10 ms tick while timers are pending, and parks otherwise.
//! Precision: never early, up to one tick (10 ms) plus thread scheduling delay late.

use crate::timer::{TimerManager, TimerStub};
use crate::{Timeout, ToTimeout};
use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

/// The process-wide timer set behind [`fast_timeout`] and [`fast_sleep`].
static TIMER_MANAGER: LazyLock<TimerManager> = LazyLock::new(TimerManager::new);

/// Timer source for [`fast_timeout`]: a slot on the shared timer wheel.
pub struct FastTimeout(Duration);

impl ToTimeout for FastTimeout {
    type Fut = TimerStub;

    fn timeout(&self) -> TimerStub {
        TIMER_MANAGER.register_timer(self.0)
    }

    fn create(d: Duration) -> Self {
        FastTimeout(d)
    }
}

/// Like [`tokio::time::timeout`], but cheaper: the timer is created lazily and shared with
/// other timeouts of the same 10 ms tick. Fires up to one tick late, never early.
pub fn fast_timeout<T>(duration: Duration, future: T) -> Timeout<T, FastTimeout>
where
    T: Future,
{
    Timeout::new_with_delay(future, duration)
}

/// Like [`tokio::time::sleep`] on the shared timer wheel: wakes up to one tick late.
pub async fn fast_sleep(duration: Duration) {
    if duration.is_zero() {
        return;
    }
    TIMER_MANAGER.register_timer(duration).await
}

/// Prepare the shared timers for `fork()`; call right before forking.
///
/// Until [`unpause`], new fast timeouts fire immediately and the timer thread takes no locks,
/// so the child cannot inherit a held lock.
pub fn pause_for_fork() {
    TIMER_MANAGER.pause_for_fork();
}

/// Undo [`pause_for_fork`]; call right after `fork()`, in the parent and in the child.
pub fn unpause() {
    TIMER_MANAGER.unpause();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timer::RESOLUTION;
    use std::time::Instant;

    const SLACK: Duration = Duration::from_millis(150);

    #[tokio::test]
    async fn fires_on_pending_future() {
        let start = Instant::now();
        let d = Duration::from_millis(30);
        let r = fast_timeout(d, std::future::pending::<()>()).await;
        assert_eq!(r, Err(crate::Elapsed));
        let took = start.elapsed();
        assert!(took >= d && took <= d + RESOLUTION + SLACK, "{took:?}");
    }

    #[tokio::test]
    async fn does_not_fire_when_future_finishes() {
        assert_eq!(
            fast_timeout(Duration::from_secs(1), async { 3 }).await,
            Ok(3)
        );
        let slow = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            4
        };
        assert_eq!(fast_timeout(Duration::from_secs(5), slow).await, Ok(4));
    }

    #[tokio::test]
    async fn sleep_is_bounded() {
        let start = Instant::now();
        fast_sleep(Duration::ZERO).await;
        assert!(start.elapsed() < Duration::from_millis(5));
        fast_sleep(Duration::from_millis(15)).await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(15)
                && took <= Duration::from_millis(15) + RESOLUTION + SLACK
        );
    }

    #[tokio::test]
    async fn many_concurrent_timeouts() {
        let start = Instant::now();
        let tasks: Vec<_> = (0..1000u64)
            .map(|i| {
                tokio::spawn(async move {
                    // Half finish in time, half time out.
                    let work =
                        tokio::time::sleep(Duration::from_millis(if i % 2 == 0 { 1 } else { 500 }));
                    fast_timeout(Duration::from_millis(40), work).await.is_ok()
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.expect("task"));
        }
        assert_eq!(ok, 500);
        assert!(start.elapsed() <= Duration::from_millis(40) + RESOLUTION + SLACK);
    }
}
