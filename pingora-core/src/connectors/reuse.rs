//! Keeping released streams healthy while pooled, and vetting them before
//! reuse.

use crate::protocols::Stream;
use futures::FutureExt;
use log::debug;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// A pooled connection idle for less than this is handed out without asking
/// the kernel whether the upstream closed it: the pool's idle watcher would
/// almost always have seen such a close already, and a reused connection that
/// turns out closed is retried anyway. Saves one `recv(MSG_PEEK)` per request
/// under load.
pub(crate) const PROBE_AFTER_IDLE: Duration = Duration::from_millis(200);

static REUSED: AtomicU64 = AtomicU64::new(0);
static NEW: AtomicU64 = AtomicU64::new(0);

/// How upstream connections were obtained by every connector of this process
/// since it started (see [`upstream_reuse_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamReuseStats {
    /// Requests that got a pooled connection.
    pub reused: u64,
    /// Requests that had to open a new connection.
    pub new: u64,
}

impl UpstreamReuseStats {
    /// The share of reused connections, from 0 to 1 (`None` before any).
    pub fn reuse_ratio(&self) -> Option<f64> {
        let total = self.reused + self.new;
        (total > 0).then(|| self.reused as f64 / total as f64)
    }
}

/// Process-wide counters of reused vs newly opened upstream connections, as
/// counted by `TransportConnector::get_stream`. Two relaxed atomic adds per
/// request at most; meant for benchmarks and metrics endpoints.
pub fn upstream_reuse_stats() -> UpstreamReuseStats {
    UpstreamReuseStats {
        reused: REUSED.load(Ordering::Relaxed),
        new: NEW.load(Ordering::Relaxed),
    }
}

pub(crate) fn count_connection(reused: bool) {
    let counter = if reused { &REUSED } else { &NEW };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A pooled stream. The pool's idle watcher reads from it to notice the
/// upstream closing or talking; any completed read marks it disturbed, so a
/// stream whose watcher consumed (or hit the end of) data is never reused even
/// if it was checked out at the same moment.
#[derive(Debug)]
pub(crate) struct IdleStream {
    stream: Stream,
    disturbed: bool,
    since: Instant,
}

impl IdleStream {
    pub fn new(stream: Stream) -> Self {
        IdleStream {
            stream,
            disturbed: false,
            since: Instant::now(),
        }
    }

    /// How long the stream has been pooled.
    pub fn idle_for(&self) -> Duration {
        self.since.elapsed()
    }

    /// The stream, unless the idle watcher saw anything happen on it.
    pub fn into_undisturbed(self) -> Option<Stream> {
        if self.disturbed {
            debug!("pooled stream saw activity while idle, discarding it");
            None
        } else {
            Some(self.stream)
        }
    }
}

impl AsyncRead for IdleStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.stream).poll_read(cx, buf);
        if res.is_ready() {
            self.disturbed = true;
        }
        res
    }
}

/// The first look of [`test_reusable_stream`] only: a read attempt that
/// never waits. Without a syscall when the runtime already knows the socket
/// has nothing to read.
pub(crate) fn test_buffered(stream: &mut Stream) -> bool {
    let mut buf = [0u8; 1];
    if let Some(res) = stream.read(&mut buf).now_or_never() {
        debug!("idle stream not reusable: {res:?}");
        return false;
    }
    true
}

/// What a non-blocking look at an idle socket found.
enum Probe {
    Idle,
    Gone,
    Unknown,
}

/// Peek at the socket without blocking or consuming anything.
fn probe_socket(fd: i32) -> Probe {
    use nix::errno::Errno;
    use nix::sys::socket::{recv, MsgFlags};
    let mut buf = [0u8; 1];
    match recv(fd, &mut buf, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
        Err(Errno::EAGAIN) => Probe::Idle,
        Err(Errno::ENOTSOCK) | Err(Errno::EBADF) => Probe::Unknown,
        Ok(0) => {
            debug!("idle upstream connection was closed");
            Probe::Gone
        }
        Ok(_) => {
            debug!("unexpected data on idle upstream connection");
            Probe::Gone
        }
        Err(e) => {
            debug!("idle upstream connection is broken: {e}");
            Probe::Gone
        }
    }
}

/// Whether an idle stream may be (re)used: the upstream has neither closed it
/// nor sent anything (an idle HTTP/1 server never speaks first).
///
/// Two looks: a read attempt that never waits (it also sees bytes buffered
/// inside the stream), then, for real sockets, a non-blocking peek at the
/// kernel, which catches a close the runtime has not been told about yet.
pub(crate) fn test_reusable_stream(stream: &mut Stream) -> bool {
    if !test_buffered(stream) {
        return false;
    }
    let fd = stream.id();
    // In-memory streams report id 0; only probe what can be a socket.
    if fd <= 0 {
        return true;
    }
    !matches!(probe_socket(fd), Probe::Gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn reuse_stats_count_and_ratio() {
        let before = upstream_reuse_stats();
        count_connection(true);
        count_connection(true);
        count_connection(false);
        let after = upstream_reuse_stats();
        // other tests may count concurrently: at least ours are there
        assert!(after.reused >= before.reused + 2);
        assert!(after.new > before.new);
        let stats = UpstreamReuseStats {
            reused: 999,
            new: 1,
        };
        assert_eq!(stats.reuse_ratio(), Some(0.999));
        assert_eq!(UpstreamReuseStats::default().reuse_ratio(), None);
    }

    #[tokio::test]
    async fn in_memory_streams() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut idle: Stream = Box::new(client);
        assert!(test_reusable_stream(&mut idle));

        server.write_all(b"x").await.expect("write");
        assert!(!test_reusable_stream(&mut idle), "unexpected data");

        let (client, server) = tokio::io::duplex(64);
        let mut closed: Stream = Box::new(client);
        drop(server);
        assert!(!test_reusable_stream(&mut closed), "peer closed");
    }

    #[tokio::test]
    async fn socket_closed_by_peer_is_caught() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let mut stream: Stream = Box::new(crate::protocols::l4::stream::Stream::from(client));
        assert!(test_reusable_stream(&mut stream));
        drop(server);
        // Block the runtime so its reactor cannot learn about the FIN: only
        // the kernel-level probe can notice it.
        std::thread::sleep(Duration::from_millis(20));
        assert!(!test_reusable_stream(&mut stream));
    }

    #[tokio::test]
    async fn idle_stream_remembers_activity() {
        let (client, _server) = tokio::io::duplex(64);
        let untouched = IdleStream::new(Box::new(client));
        assert!(untouched.into_undisturbed().is_some());

        let (client, _server) = tokio::io::duplex(64);
        let mut watched = IdleStream::new(Box::new(client));
        let mut buf = [0u8; 1];
        // a read that never completes leaves it undisturbed
        assert!(watched.read(&mut buf).now_or_never().is_none());
        assert!(watched.into_undisturbed().is_some());

        let (client, mut server) = tokio::io::duplex(64);
        let mut watched = IdleStream::new(Box::new(client));
        server.write_all(b"late").await.expect("write");
        let n = watched.read(&mut buf).await.expect("read");
        assert_eq!(n, 1);
        assert!(watched.into_undisturbed().is_none());
    }
}
