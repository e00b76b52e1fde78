//! Grouping the sends of the connections one thread serves.
//!
//! A thread that writes each message the moment it is ready spreads its sends over the whole
//! time it spends on a batch of ready connections. The process at the other end of each socket
//! (the client, the origin) then tends to be asleep again by the time the next message arrives
//! and is woken once per message: a context switch on its core, and often an interrupt from
//! ours. On loopback, where the peers share a core, we caused about twice as many wake-ups per
//! request as haproxy, whose sends leave in bursts.
//!
//! [`before_send`] is the remedy: a head about to be written first lets every other task that is
//! already runnable on this thread do its own reading and filtering. The writes of the batch
//! then leave back to back and a sleeping peer is woken once for all of them. The wait is one
//! pass of the run queue (the task goes to its back), so it is microseconds, and it is only
//! taken where a message starts, never per body chunk.
//!
//! Only HTTP/1 clients take it. The streams of an HTTP/2 connection are polled together inside
//! their connection's task, so their sends are grouped already; there the extra pass cost
//! requests per second (h2c, 10 connections x 10 streams: 0.93-1.00x haproxy with it, against
//! 0.96-1.22x without, in the same session).

use pingora_core::protocols::http::ServerSession;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::runtime::{Handle, RuntimeFlavor};

/// Before a head is sent for a request of `client`: an HTTP/1 client's request lets the tasks
/// already runnable on this thread run first; an HTTP/2 client's goes on at once.
pub(crate) async fn before_send_for(client: &ServerSession) {
    if !client.is_http2() {
        before_send().await;
    }
}

/// Let the tasks already runnable on this thread run before this one sends.
///
/// The task wakes itself and returns `Pending` once. A task woken during its own poll goes to
/// the back of its thread's run queue, behind everything already runnable, in both runtime
/// flavours (tokio treats it as a yield: never the LIFO slot). `tokio::task::yield_now` defers
/// the task instead until the runtime has polled for I/O, which costs an `epoll_wait` per
/// scheduler pass (up to 1.27 per small GET with it, 0.34-0.46 without; haproxy: 0.37).
///
/// A work-stealing runtime with more than one worker is the exception: there a task that wakes
/// itself also rouses a parked worker to come and steal (a futex wake-up, and the batch split
/// across threads), which `yield_now` does not, so that is what it gets.
async fn before_send() {
    if other_workers_are_roused() {
        tokio::task::yield_now().await;
    } else {
        RequeueOnce { queued: false }.await;
    }
}

/// Whether this thread runs tasks of a multi-thread runtime with more than one worker. Fixed for
/// the life of a runtime's thread, so it is looked up once per thread.
fn other_workers_are_roused() -> bool {
    thread_local! {
        static ROUSED: Cell<Option<bool>> = const { Cell::new(None) };
    }
    ROUSED.with(|cached| {
        if let Some(roused) = cached.get() {
            return roused;
        }
        let roused = Handle::try_current().is_ok_and(|h| {
            h.runtime_flavor() == RuntimeFlavor::MultiThread && h.metrics().num_workers() > 1
        });
        cached.set(Some(roused));
        roused
    })
}

/// See [`before_send`].
struct RequeueOnce {
    queued: bool,
}

impl Future for RequeueOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.queued {
            return Poll::Ready(());
        }
        self.queued = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::{before_send, other_workers_are_roused};
    use std::sync::{Arc, Mutex};

    /// Two connections ready at once on one thread: the first reaches its send, the second
    /// does its read before the first's send goes out.
    async fn two_ready_tasks() -> Vec<&'static str> {
        let order = Arc::new(Mutex::new(Vec::new()));
        let log = |what| {
            let order = order.clone();
            move || order.lock().expect("test lock").push(what)
        };
        let (a_read, a_send, b_read, b_send) =
            (log("a read"), log("a send"), log("b read"), log("b send"));
        let a = tokio::spawn(async move {
            a_read();
            before_send().await;
            a_send();
        });
        let b = tokio::spawn(async move {
            b_read();
            before_send().await;
            b_send();
        });
        a.await.expect("task a");
        b.await.expect("task b");
        let order = order.lock().expect("test lock").clone();
        order
    }

    /// Both reads happen before either send (the order of the sends is the runtime's).
    fn reads_before_sends(order: &[&str]) {
        assert_eq!(order.len(), 4, "{order:?}");
        assert!(order[..2].iter().all(|e| e.ends_with("read")), "{order:?}");
        assert!(order[2..].iter().all(|e| e.ends_with("send")), "{order:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sends_wait_for_the_reads_of_ready_tasks_current_thread() {
        reads_before_sends(&two_ready_tasks().await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn sends_wait_for_the_reads_of_ready_tasks_one_worker() {
        reads_before_sends(&two_ready_tasks().await);
    }

    /// What `other_workers_are_roused` says on a worker thread of `rt` (where the proxy runs).
    fn roused_on(rt: tokio::runtime::Runtime) -> bool {
        let seen = rt.block_on(async {
            tokio::spawn(async { other_workers_are_roused() })
                .await
                .expect("task")
        });
        rt.shutdown_background();
        seen
    }

    /// The self-wake is used where no other worker can be roused by it; a work-stealing runtime
    /// with two workers gets `yield_now`.
    #[test]
    fn only_runtimes_with_several_workers_rouse_others() {
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert!(!roused_on(current), "current thread");
        for (workers, roused) in [(1, false), (2, true)] {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .expect("runtime");
            assert_eq!(roused_on(rt), roused, "{workers} worker(s)");
        }
    }
}
