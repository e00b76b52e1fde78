//! A stream that replays bytes already read from it.
//!
//! An HTTP/1 session reads in large blocks, so one read may return the end of
//! a request plus the start of the next pipelined one. When the connection is
//! handed on for reuse, those extra bytes must be seen first by the next
//! session: [`Rewind`] puts them back in front of the connection.

use super::raw_connect::ProxyDigest;
use super::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A [`Stream`] with bytes to replay before reading from the connection again.
#[derive(Debug)]
pub(crate) struct Rewind {
    prefix: Bytes,
    inner: Stream,
}

impl Rewind {
    /// Put `prefix` back in front of `stream`. Returns `stream` unchanged
    /// when there is nothing to put back; never nests one `Rewind` in another.
    pub(crate) fn wrap(stream: Stream, prefix: Bytes) -> Stream {
        if prefix.is_empty() {
            return stream;
        }
        if stream.as_any().is::<Rewind>() {
            let any = stream.into_any();
            // the type was checked right above, the downcast cannot fail
            let mut old = any.downcast::<Rewind>().expect("checked type");
            if old.prefix.is_empty() {
                old.prefix = prefix;
            } else {
                let mut joined = BytesMut::with_capacity(prefix.len() + old.prefix.len());
                joined.extend_from_slice(&prefix);
                joined.extend_from_slice(&old.prefix);
                old.prefix = joined.freeze();
            }
            return old;
        }
        Box::new(Rewind {
            prefix,
            inner: stream,
        })
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Rewind {
    async fn shutdown(&mut self) -> () {
        self.inner.shutdown().await
    }
}

impl UniqueID for Rewind {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Rewind {
    fn get_ssl_digest(&self) -> Option<Arc<super::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Rewind {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl GetProxyDigest for Rewind {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Rewind {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for Rewind {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.len());
            buf[..n].copy_from_slice(&self.prefix[..n]);
            return Ok(true);
        }
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn replays_prefix_then_reads_inner() {
        let (client, mut server) = tokio::io::duplex(64);
        server.write_all(b"world").await.unwrap();
        drop(server);
        let s = Rewind::wrap(Box::new(client), Bytes::from_static(b"hello "));
        // wrapping again joins prefixes instead of nesting
        let mut s = Rewind::wrap(s, Bytes::from_static(b">"));
        assert!(s.as_any().is::<Rewind>());
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, ">hello world");
    }
}
