//! Timeouts built for the hot path of a proxy, where almost every I/O operation carries one.
//!
//! Two ideas make them cheaper than [`tokio::time::timeout`]:
//!
//! * **Lazy timers.** A [`Timeout`] polls its future first and only creates a timer the first
//!   time the future is pending. Operations that complete immediately (a read with data already
//!   buffered, say) never touch a timer and allocate nothing.
//! * **Shared coarse timers** ([`fast_timeout`](fast_timeout::fast_timeout), also exported as
//!   [`timeout`]). Deadlines are rounded *up* to a 10 ms tick of a shared timer wheel, and every
//!   timeout with the same tick shares one notification, driven by a single background thread.
//!   Creating and cancelling such a timeout costs a clock read, a reference-count bump and an
//!   uncontended lock; nothing is heap-allocated per timeout.
//!
//! The price is precision: a fast timeout never fires early, but fires up to one tick
//! (10 ms) late, plus however late the OS schedules the timer thread. Where millisecond
//! precision matters use [`tokio_timeout`] (lazy, tokio-precise) or [`tokio::time::timeout`].
//!
//! ```
//! use pingora_timeout::{timeout, Elapsed};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! assert_eq!(timeout(Duration::from_secs(1), async { 5 }).await, Ok(5));
//! let never = std::future::pending::<()>();
//! assert_eq!(timeout(Duration::from_millis(10), never).await, Err(Elapsed));
//! # }
//! ```

#![warn(missing_docs)]

pub mod fast_timeout;
mod slot;
pub mod timer;

pub use fast_timeout::fast_sleep as sleep;
pub use fast_timeout::fast_timeout as timeout;

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// How a [`Timeout`] creates its timer once it needs one.
///
/// Implemented by [`TokioTimeout`] and [`fast_timeout::FastTimeout`]; users rarely need it.
pub trait ToTimeout {
    /// The timer future; it completes when the deadline has passed.
    type Fut: Future<Output = ()> + Send + Sync;

    /// Start the timer. Called at most once per [`Timeout`], on its first pending poll.
    fn timeout(&self) -> Self::Fut;

    /// Remember `d` for a later [`ToTimeout::timeout`] call. Must be cheap.
    fn create(d: Duration) -> Self;
}

/// Timer source for [`tokio_timeout`]: a precise [`tokio::time::Sleep`].
pub struct TokioTimeout(Duration);

impl ToTimeout for TokioTimeout {
    type Fut = tokio::time::Sleep;

    fn timeout(&self) -> Self::Fut {
        tokio::time::sleep(self.0)
    }

    fn create(d: Duration) -> Self {
        TokioTimeout(d)
    }
}

/// The error of a [`Timeout`] whose deadline passed before its future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Timeout Elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Like [`tokio::time::timeout`], but the tokio timer is only created if `future` is pending
/// on its first poll.
pub fn tokio_timeout<T>(duration: Duration, future: T) -> Timeout<T, TokioTimeout>
where
    T: Future,
{
    Timeout::new_with_delay(future, duration)
}

pin_project! {
    /// A future that resolves to `Ok(output)` if the wrapped future completes before the
    /// deadline and to `Err(Elapsed)` otherwise.
    ///
    /// If both are ready at the same poll, the future's output wins.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Timeout<T, F: ToTimeout> {
        #[pin]
        value: T,
        #[pin]
        delay: Option<F::Fut>,
        callback: F,
    }
}

impl<T, F: ToTimeout> Timeout<T, F> {
    pub(crate) fn new_with_delay(value: T, d: Duration) -> Self {
        Self::new_with_callback(value, F::create(d))
    }

    pub(crate) fn new_with_callback(value: T, callback: F) -> Self {
        Timeout {
            value,
            delay: None,
            callback,
        }
    }
}

impl<T, F> Future for Timeout<T, F>
where
    T: Future,
    F: ToTimeout,
{
    type Output = Result<T::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut me = self.project();
        if let Poll::Ready(v) = me.value.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if me.delay.is_none() {
            me.delay.set(Some(me.callback.timeout()));
        }
        match me.delay.as_pin_mut() {
            Some(delay) => delay.poll(cx).map(|()| Err(Elapsed)),
            // Unreachable: the timer was installed just above.
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn ready_future_wins() {
        assert_eq!(tokio_timeout(Duration::ZERO, async { 7 }).await, Ok(7));
        assert_eq!(timeout(Duration::ZERO, async { 8 }).await, Ok(8));
    }

    #[tokio::test]
    async fn tokio_timeout_fires_and_does_not_fire() {
        let start = Instant::now();
        let r = tokio_timeout(Duration::from_millis(20), std::future::pending::<()>()).await;
        assert_eq!(r, Err(Elapsed));
        assert!(start.elapsed() >= Duration::from_millis(20));

        let slow = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            1
        };
        assert_eq!(tokio_timeout(Duration::from_secs(10), slow).await, Ok(1));
    }

    #[test]
    fn elapsed_displays() {
        assert_eq!(Elapsed.to_string(), "Timeout Elapsed");
        let e: Box<dyn std::error::Error> = Box::new(Elapsed);
        assert!(e.source().is_none());
    }
}
