//! The concrete L4 connection: a TCP or Unix domain socket stream.

use super::ext::{set_tcp_keepalive, TcpKeepalive};
use crate::protocols::raw_connect::ProxyDigest;
use crate::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use log::debug;
use pingora_error::{ErrorType::*, OrErr, Result};
use std::io::IoSlice;
use std::os::unix::io::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

#[derive(Debug)]
enum RawStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A TCP or Unix socket connection with its digest.
///
/// Writes go straight to the socket (vectored writes are passed through, so
/// HTTP sessions can send a chunk header, data and trailer in one syscall);
/// TCP streams get `TCP_NODELAY` on creation since sessions already coalesce
/// their writes.
#[derive(Debug)]
pub struct Stream {
    raw: RawStream,
    /// Bytes put back by [`Stream::rewind`], served before the socket. Boxed: rarely used,
    /// and every connection carries the field (idle keep-alive connections included).
    rewind_buf: Option<Box<Bytes>>,
    /// Made on first use: most connections are never asked for their addresses, and an idle
    /// keep-alive connection should not carry a digest (~280 bytes) it does not need.
    socket_digest: OnceLock<Arc<SocketDigest>>,
    proxy_digest: Option<Arc<ProxyDigest>>,
    established_ts: SystemTime,
}

impl Stream {
    fn new(raw: RawStream) -> Self {
        Stream {
            raw,
            rewind_buf: None,
            socket_digest: OnceLock::new(),
            proxy_digest: None,
            established_ts: SystemTime::now(),
        }
    }

    /// Disable Nagle's algorithm (no-op for Unix sockets).
    pub fn set_nodelay(&mut self) -> Result<()> {
        if let RawStream::Tcp(s) = &self.raw {
            s.set_nodelay(true)
                .or_err(ConnectError, "failed to set TCP_NODELAY")?;
        }
        Ok(())
    }

    /// Turn TCP keepalive probes on (no-op for Unix sockets).
    pub fn set_keepalive(&mut self, ka: &TcpKeepalive) -> Result<()> {
        if let RawStream::Tcp(s) = &self.raw {
            set_tcp_keepalive(s, ka)?;
        }
        Ok(())
    }

    /// Put `data` back so that the next reads return it before anything
    /// else (e.g. after sniffing the first bytes of a connection).
    pub fn rewind(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let old = self.rewind_buf.take().map_or_else(Bytes::new, |b| *b);
        let mut joined = BytesMut::with_capacity(data.len() + old.len());
        joined.extend_from_slice(data);
        joined.extend_from_slice(&old);
        self.rewind_buf = Some(Box::new(joined.freeze()));
    }

    /// When the connection was established (accepted or connected).
    pub fn established_ts(&self) -> SystemTime {
        self.established_ts
    }

    /// Whether this is a TCP (rather than Unix socket) connection.
    pub fn is_tcp(&self) -> bool {
        matches!(self.raw, RawStream::Tcp(_))
    }
}

/// The bare socket of an idle connection taken out of the runtime (no tokio
/// registration, no task): what [`Stream::into_parked`] keeps and
/// [`Stream::from_parked`] turns back into the same connection.
#[derive(Debug)]
pub(crate) struct ParkedSocket {
    fd: OwnedFd,
    unix: bool,
    /// `established_ts` as nanoseconds since the Unix epoch: half the size of a `SystemTime`.
    established_ns: u64,
}

impl ParkedSocket {
    /// The socket's descriptor.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Stream {
    /// Whether the connection holds nothing but its socket (no bytes put back, no proxy
    /// digest), so that [`Self::into_parked`] loses nothing.
    pub(crate) fn parkable(&self) -> bool {
        self.rewind_buf.is_none() && self.proxy_digest.is_none()
    }

    /// Drop the runtime registration and keep the socket. The socket digest is not kept: it
    /// is made again from the socket on first use. An error means the socket is gone (the
    /// connection is closed).
    pub(crate) fn into_parked(self) -> std::io::Result<ParkedSocket> {
        let established_ns = self
            .established_ts
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let (fd, unix) = match self.raw {
            RawStream::Tcp(s) => (OwnedFd::from(s.into_std()?), false),
            RawStream::Unix(s) => (OwnedFd::from(s.into_std()?), true),
        };
        Ok(ParkedSocket {
            fd,
            unix,
            established_ns,
        })
    }

    /// The connection of a parked socket, registered with the current runtime again.
    ///
    /// # Panics
    /// Outside of a tokio runtime (like `TcpStream::from_std`).
    pub(crate) fn from_parked(parked: ParkedSocket) -> std::io::Result<Self> {
        // the socket is still non-blocking and keeps its options (TCP_NODELAY ...)
        let raw = if parked.unix {
            RawStream::Unix(UnixStream::from_std(parked.fd.into())?)
        } else {
            RawStream::Tcp(TcpStream::from_std(parked.fd.into())?)
        };
        let mut stream = Stream::new(raw);
        stream.established_ts = UNIX_EPOCH + Duration::from_nanos(parked.established_ns);
        Ok(stream)
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Self {
        if let Err(e) = s.set_nodelay(true) {
            debug!("failed to set TCP_NODELAY: {e}");
        }
        Stream::new(RawStream::Tcp(s))
    }
}

impl From<UnixStream> for Stream {
    fn from(s: UnixStream) -> Self {
        Stream::new(RawStream::Unix(s))
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match &self.raw {
            RawStream::Tcp(s) => s.as_raw_fd(),
            RawStream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.raw {
            RawStream::Tcp(s) => s.as_fd(),
            RawStream::Unix(s) => s.as_fd(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(rest) = self.rewind_buf.as_mut() {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            rest.advance(n);
            if rest.is_empty() {
                self.rewind_buf = None;
            }
            return Poll::Ready(Ok(()));
        }
        match &mut self.raw {
            RawStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            RawStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.raw {
            RawStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            RawStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.raw {
            RawStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            RawStream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.raw {
            RawStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            RawStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.raw {
            RawStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            RawStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[async_trait]
impl Shutdown for Stream {
    async fn shutdown(&mut self) -> () {
        if let Err(e) = AsyncWriteExt::shutdown(self).await {
            debug!("failed to shutdown connection: {e}");
        }
    }
}

impl UniqueID for Stream {
    fn id(&self) -> UniqueIDType {
        self.as_raw_fd()
    }
}

impl Ssl for Stream {}

impl GetTimingDigest for Stream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        vec![Some(TimingDigest {
            established_ts: self.established_ts,
        })]
    }
}

impl GetProxyDigest for Stream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.proxy_digest.clone()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.proxy_digest = Some(Arc::new(digest));
    }
}

impl GetSocketDigest for Stream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        // the socket is open as long as `self`: the digest's lazy lookups stay valid
        let digest = self
            .socket_digest
            .get_or_init(|| Arc::new(SocketDigest::from_raw_fd(self.as_raw_fd())));
        Some(digest.clone())
    }
    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.socket_digest = OnceLock::from(Arc::new(socket_digest));
    }
}

#[async_trait]
impl Peek for Stream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        if let Some(rest) = self.rewind_buf.as_ref() {
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            return Ok(true);
        }
        match &self.raw {
            RawStream::Tcp(s) => s.peek(buf).await.map(|_| true),
            RawStream::Unix(_) => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn tcp_stream_digest_rewind_peek() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, peer) = l.accept().await.unwrap();
        let mut c: Stream = client.into();
        let mut s: Stream = server.into();
        assert!(s.is_tcp());
        s.set_nodelay().unwrap();
        let d = s.get_socket_digest().unwrap();
        assert_eq!(d.peer_addr().unwrap().as_inet(), Some(&peer));
        assert_eq!(d.local_addr().unwrap().as_inet(), Some(&addr));
        assert_eq!(s.id(), s.as_raw_fd());

        c.write_all(b"world").await.unwrap();
        let mut peeked = [0u8; 5];
        assert!(s.try_peek(&mut peeked).await.unwrap());
        s.rewind(b"hello ");
        let mut out = [0u8; 11];
        s.read_exact(&mut out).await.unwrap();
        assert_eq!(&out, b"hello world");
        Shutdown::shutdown(&mut c).await;
        assert_eq!(s.read(&mut out).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn unix_stream_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let l = tokio::net::UnixListener::bind(&path).unwrap();
        let _c = UnixStream::connect(&path).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        let s: Stream = server.into();
        assert!(!s.is_tcp());
        let d = s.get_socket_digest().unwrap();
        let local = d.local_addr().unwrap();
        assert_eq!(local.as_unix().unwrap().as_pathname(), Some(path.as_path()));
        assert!(d.peer_addr().unwrap().as_unix().is_some());
    }
}
