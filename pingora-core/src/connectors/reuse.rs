//! Keeping released streams healthy while pooled, and vetting them before
//! reuse.

use crate::protocols::{Digest, Stream};
use futures::FutureExt;
use log::debug;
use pingora_pool::ConnectionPool;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// A pooled connection idle for less than this is handed out without asking
/// the kernel whether the upstream closed it: a close that arrived while the
/// runtime was polling is already known to the stream's readiness, and a
/// reused connection that turns out closed is retried anyway. Saves one
/// `recv(MSG_PEEK)` per request under load.
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

/// A pooled stream with the time it was released and how long it may idle.
///
/// Nothing watches it while pooled: a checkout vets it (see
/// [`IdleStream::into_reusable_with_digest`]) and the connector's sweeper periodically
/// drops pooled streams that expired or were closed by the upstream.
#[derive(Debug)]
pub(crate) struct IdleStream {
    stream: Stream,
    /// The facts of the connection a client session gathered, kept with it so the next
    /// session on the same connection does not gather them again.
    digest: Option<Box<Digest>>,
    since: Instant,
    idle_timeout: Option<Duration>,
}

impl IdleStream {
    pub fn new(stream: Stream, idle_timeout: Option<Duration>) -> Self {
        IdleStream {
            stream,
            digest: None,
            since: Instant::now(),
            idle_timeout,
        }
    }

    /// Keep `digest` (describing this very connection) with the stream.
    pub fn with_digest(mut self, digest: Option<Box<Digest>>) -> Self {
        self.digest = digest;
        self
    }

    /// Whether the stream stayed pooled longer than its idle timeout.
    fn expired(&self, idle: Duration) -> bool {
        self.idle_timeout.is_some_and(|t| idle >= t)
    }

    /// The sweeper's check: not expired, and neither closed by the upstream
    /// nor talked on.
    pub fn still_idle(&mut self) -> bool {
        !self.expired(self.since.elapsed()) && test_reusable_stream(&mut self.stream)
    }

    /// The stream, if it has not expired and looks healthy. A stream idle
    /// for less than [`PROBE_AFTER_IDLE`] is only checked for data or a close
    /// the runtime already knows of, without a syscall.
    #[cfg(test)]
    pub fn into_reusable(self) -> Option<Stream> {
        self.into_reusable_with_digest().map(|(stream, _)| stream)
    }

    /// [`Self::into_reusable`], with the digest kept alongside (if any).
    pub fn into_reusable_with_digest(mut self) -> Option<(Stream, Option<Box<Digest>>)> {
        let idle = self.since.elapsed();
        if self.expired(idle) {
            debug!("pooled stream idled past its timeout, discarding it");
            return None;
        }
        let healthy = if idle >= PROBE_AFTER_IDLE {
            test_reusable_stream(&mut self.stream)
        } else {
            test_buffered(&mut self.stream)
        };
        healthy.then_some((self.stream, self.digest))
    }

    /// The stream as it is, without any check.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }
}

/// How often the sweeper looks at every pooled stream.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The pool of a connector.
pub(crate) type Pool = ConnectionPool<IdleStream>;

/// Runs (at most) one background task per connector that drops pooled
/// streams which expired or were closed by the upstream while idle, so their
/// sockets do not linger until the next checkout. The task stops when the
/// pool is empty or the connector is gone, and is started again by the next
/// release.
#[derive(Default)]
pub(crate) struct Sweeper {
    running: Arc<AtomicBool>,
}

impl Sweeper {
    /// Whether a sweeper task is running (or being started).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Start the sweeper on `rt` unless it is running already.
    pub fn ensure(&self, pool: &Arc<Pool>, rt: &tokio::runtime::Handle) {
        if self.running.load(Ordering::Acquire) || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let running = Running {
            flag: self.running.clone(),
            armed: true,
        };
        rt.spawn(sweep(Arc::downgrade(pool), running));
    }
}

/// Clears the running flag if the sweeper task is dropped unexpectedly
/// (e.g. its runtime shuts down), so a later release starts a new one.
struct Running {
    flag: Arc<AtomicBool>,
    armed: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.armed {
            self.flag.store(false, Ordering::Release);
        }
    }
}

async fn sweep(pool: Weak<Pool>, mut running: Running) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let dropped = pool.retain(|_, idle| idle.still_idle());
        if dropped > 0 {
            debug!("sweeper closed {dropped} idle upstream connections");
        }
        if pool.is_empty() {
            running.flag.store(false, Ordering::SeqCst);
            // A release racing with the store may have seen the flag still
            // set and not started a sweeper: keep going in that case.
            if pool.is_empty() || running.flag.swap(true, Ordering::SeqCst) {
                running.armed = false;
                return;
            }
        }
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
        let (mut stream, server) = tcp_pair().await;
        assert!(test_reusable_stream(&mut stream));
        drop(server);
        // Block the runtime so its reactor cannot learn about the FIN: only
        // the kernel-level probe can notice it.
        std::thread::sleep(Duration::from_millis(20));
        assert!(!test_reusable_stream(&mut stream));
    }

    #[tokio::test]
    async fn idle_stream_checks_timeout_and_health() {
        let (client, _server) = tokio::io::duplex(64);
        let mut fresh = IdleStream::new(Box::new(client), Some(Duration::from_secs(30)));
        assert!(fresh.still_idle());
        assert!(fresh.into_reusable().is_some());

        let (client, _server) = tokio::io::duplex(64);
        let mut expired = IdleStream::new(Box::new(client), Some(Duration::ZERO));
        assert!(!expired.still_idle());
        assert!(expired.into_reusable().is_none());

        let (client, mut server) = tokio::io::duplex(64);
        let mut talked = IdleStream::new(Box::new(client), None);
        server.write_all(b"late").await.expect("write");
        assert!(!talked.still_idle());

        let (client, server) = tokio::io::duplex(64);
        let closed = IdleStream::new(Box::new(client), None);
        drop(server);
        assert!(closed.into_reusable().is_none());
    }

    async fn tcp_pair() -> (Stream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let client: Stream = Box::new(crate::protocols::l4::stream::Stream::from(client));
        (client, server)
    }

    #[tokio::test]
    async fn sweeper_closes_expired_and_peer_closed_streams() {
        let pool = Arc::new(Pool::new(8));
        let sweeper = Sweeper::default();
        let rt = tokio::runtime::Handle::current();

        let (expiring, mut expiring_peer) = tcp_pair().await;
        let (kept, _kept_peer) = tcp_pair().await;
        let (abandoned, abandoned_peer) = tcp_pair().await;
        for (stream, timeout) in [
            (expiring, Some(Duration::from_millis(10))),
            (kept, None),
            (abandoned, None),
        ] {
            let meta = pingora_pool::ConnectionMeta::new(1, stream.id());
            pool.put_unwatched(&meta, IdleStream::new(stream, timeout));
            sweeper.ensure(&pool, &rt);
        }
        drop(abandoned_peer);
        assert_eq!(pool.len(), 3);

        // the expired stream is closed without anybody checking it out
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), expiring_peer.read(&mut buf))
            .await
            .expect("sweeper closes the expired stream in time")
            .expect("read");
        assert_eq!(n, 0);
        for _ in 0..100 {
            if pool.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(pool.len(), 1, "only the healthy stream stays pooled");
        assert!(sweeper.running.load(Ordering::Acquire));

        // once the pool is empty the sweeper stops, and restarts on demand
        let taken = pool.get(&1).expect("healthy stream");
        assert!(taken.into_reusable().is_some());
        for _ in 0..150 {
            if !sweeper.running.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!sweeper.running.load(Ordering::Acquire));
        sweeper.ensure(&pool, &rt);
        assert!(sweeper.running.load(Ordering::Acquire));
    }
}
