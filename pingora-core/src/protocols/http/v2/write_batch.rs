//! Coalescing the writes of a downstream HTTP/2 connection.
//!
//! The `h2` crate flushes its connection every time it is polled, and it
//! writes each DATA frame of 256 bytes or more with its own vectored write
//! (one `writev` per response body when several responses are queued).
//!
//! [`BatchedIo`] sits between `h2` and the socket. While
//! [`HttpSession::from_h2_conn`](super::server::HttpSession::from_h2_conn)
//! polls the connection, writes and flushes only fill a buffer, which is
//! written when the poll ends: everything the streams queued since the last
//! poll goes out in one system call. A connection polled any other way (e.g.
//! `Connection::accept` directly) writes on every flush, as if the wrapper
//! were not there.
//!
//! The connection task does not yield to let more streams queue before it
//! writes: that halved the system calls but added enough latency to cost a
//! fifth of the throughput of a closed-loop client (h2load -c 10 -m 10).

use crate::protocols::raw_connect::ProxyDigest;
use crate::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held before writes go to the socket right away (larger writes are
/// passed on without a copy, together with what is held).
const HOLD_LIMIT: usize = 32 * 1024;

/// At most this many slices go into one vectored write.
const MAX_SLICES: usize = 16;

thread_local! {
    /// Set while `from_h2_conn` polls a connection on this thread.
    static BATCHING: Cell<bool> = const { Cell::new(false) };
    /// The connection that held back bytes during that poll.
    static HELD: RefCell<Option<Arc<Mutex<Inner>>>> = const { RefCell::new(None) };
}

#[derive(Debug)]
struct Inner {
    io: Stream,
    /// Bytes accepted from `h2` and not yet written; `buf[start..]` is pending.
    buf: Vec<u8>,
    start: usize,
    /// A write that failed where `h2` could not see it; reported on its next call.
    error: Option<io::Error>,
}

impl Inner {
    fn held(&self) -> usize {
        self.buf.len() - self.start
    }

    fn take_error(&mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Write everything held to the socket.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.held() > 0 {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.start..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.start += n;
        }
        self.buf.clear();
        self.start = 0;
        Poll::Ready(Ok(()))
    }

    /// Write `bufs`, preceded by whatever is held, without copying them.
    fn poll_write_through(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.held() == 0 {
                self.buf.clear();
                self.start = 0;
                return Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
            }
            let held = self.held();
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            slices[0] = IoSlice::new(&self.buf[self.start..]);
            let mut count = 1;
            for b in bufs.iter().take(MAX_SLICES - 1) {
                slices[count] = *b;
                count += 1;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            if n < held {
                self.start += n;
                continue;
            }
            self.buf.clear();
            self.start = 0;
            if n > held {
                return Poll::Ready(Ok(n - held));
            }
        }
    }
}

/// A connection whose writes are gathered while `from_h2_conn` polls it.
#[derive(Debug)]
pub(crate) struct BatchedIo {
    inner: Arc<Mutex<Inner>>,
}

impl BatchedIo {
    /// Wrap `io`.
    pub(crate) fn wrap(io: Stream) -> Stream {
        Box::new(BatchedIo {
            inner: Arc::new(Mutex::new(Inner {
                io,
                buf: Vec::new(),
                start: 0,
                error: None,
            })),
        })
    }

    /// Remember that this connection holds bytes back, for the end of the poll.
    fn note_held(&self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if h.is_none() {
                *h = Some(self.inner.clone());
            }
        });
    }
}

/// The state of one wait on a connection polled with its writes gathered.
#[derive(Default)]
pub(crate) struct WriteBatch {
    /// The connection's buffer, once a poll left bytes in it.
    held: Option<Arc<Mutex<Inner>>>,
}

impl WriteBatch {
    /// Poll a connection with its writes gathered: `poll` is the
    /// connection's own poll. When it ends pending, everything its frames
    /// left in the buffer is written, in one system call when the socket
    /// takes it all. After a ready poll (a new stream) held bytes wait for
    /// the caller's next poll, which comes right away.
    pub(crate) fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                BATCHING.with(|b| b.set(false));
            }
        }
        let result = {
            BATCHING.with(|b| b.set(true));
            let _reset = Reset;
            poll(cx)
        };
        if let Some(held) = HELD.with(|h| h.borrow_mut().take()) {
            self.held = Some(held);
        }
        if result.is_ready() {
            return result;
        }
        let Some(held) = self.held.as_ref() else {
            return result;
        };
        let mut inner = held.lock();
        let drained = match inner.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut inner.io).poll_flush(cx),
            other => other,
        };
        match drained {
            Poll::Ready(Ok(())) => {
                drop(inner);
                self.held = None;
            }
            Poll::Ready(Err(e)) => {
                inner.error = Some(e);
                // let the connection see the error on its next poll
                cx.waker().wake_by_ref();
            }
            // woken when the socket can take more
            Poll::Pending => {}
        }
        result
    }
}

impl AsyncRead for BatchedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut inner = self.inner.lock();
        if inner.held() > 0 && BATCHING.with(|b| b.get()) {
            drop(inner);
            self.note_held();
            inner = self.inner.lock();
        }
        Pin::new(&mut inner.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for BatchedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.inner.lock();
        inner.take_error()?;
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if inner.held() + len > HOLD_LIMIT {
            return inner.poll_write_through(cx, bufs);
        }
        for b in bufs {
            inner.buf.extend_from_slice(b);
        }
        let batching = BATCHING.with(|b| b.get());
        drop(inner);
        if batching {
            self.note_held();
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.inner.lock();
        inner.take_error()?;
        if inner.held() > 0 {
            if BATCHING.with(|b| b.get()) {
                drop(inner);
                self.note_held();
                return Poll::Ready(Ok(()));
            }
            ready!(inner.poll_drain(cx))?;
        }
        Pin::new(&mut inner.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.inner.lock();
        inner.take_error()?;
        ready!(inner.poll_drain(cx))?;
        Pin::new(&mut inner.io).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for BatchedIo {
    async fn shutdown(&mut self) -> () {
        let mut this = Pin::new(self);
        if let Err(e) = poll_fn(|cx| this.as_mut().poll_shutdown(cx)).await {
            log::debug!("failed to shutdown connection: {e}");
        }
    }
}

impl UniqueID for BatchedIo {
    fn id(&self) -> UniqueIDType {
        self.inner.lock().io.id()
    }
}

impl Ssl for BatchedIo {
    fn get_ssl_digest(&self) -> Option<Arc<crate::protocols::tls::SslDigest>> {
        self.inner.lock().io.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.lock().io.selected_alpn_proto()
    }
}

impl GetTimingDigest for BatchedIo {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.lock().io.get_timing_digest()
    }
}

impl GetProxyDigest for BatchedIo {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.lock().io.get_proxy_digest()
    }
}

impl GetSocketDigest for BatchedIo {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.lock().io.get_socket_digest()
    }
}

/// Peeking is not offered: an HTTP/2 connection is past its preface.
#[async_trait]
impl Peek for BatchedIo {}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn unbatched_writes_go_out_on_flush() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut s = BatchedIo::wrap(Box::new(a));
        s.write_all(b"hello ").await.unwrap();
        s.write_all(b"world").await.unwrap();
        s.flush().await.unwrap();
        let mut got = [0u8; 11];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");
        // a write larger than what is held goes through, after the held bytes
        let big = vec![7u8; HOLD_LIMIT + 10];
        s.write_all(b"x").await.unwrap();
        s.write_all(&big).await.unwrap();
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest.len(), 1 + big.len());
        assert_eq!(rest[0], b'x');
        assert!(rest[1..].iter().all(|c| *c == 7));
    }

    #[tokio::test]
    async fn batched_poll_writes_once_when_pending() {
        use futures::FutureExt;
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut s = BatchedIo::wrap(Box::new(a));
        let mut polls = 0;
        let mut batch = WriteBatch::default();
        let mut peek = [0u8; 16];
        poll_fn(|cx| {
            polls += 1;
            if polls == 2 {
                // a ready poll (a new stream) leaves the bytes for the next one
                assert!(b.read(&mut peek).now_or_never().is_none());
            }
            let step = batch.poll(cx, |cx| {
                let mut p = Pin::new(&mut s);
                match polls {
                    1 => {
                        assert!(p.as_mut().poll_write(cx, b"stream1 ").is_ready());
                        assert!(p.as_mut().poll_flush(cx).is_ready());
                        Poll::Ready(false)
                    }
                    2 => {
                        assert!(p.as_mut().poll_write(cx, b"stream2").is_ready());
                        assert!(p.as_mut().poll_flush(cx).is_ready());
                        // stands in for the next event on the connection
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                    _ => Poll::Ready(true),
                }
            });
            match step {
                Poll::Ready(true) => Poll::Ready(()),
                Poll::Ready(false) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        assert_eq!(polls, 3);
        let mut got = [0u8; 15];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"stream1 stream2");
    }
}
