//! [`TlsStream`]: a TLS session over any [`IO`] stream, driven by the
//! backend's blocking-style `SslStream` through a small async bridge.
//!
//! The bridge makes the underlying async stream look like a non-blocking
//! `Read + Write` object: while a poll is in progress it carries the task
//! context, and "not ready" becomes `WouldBlock`, which the TLS library
//! reports as `WANT_READ` / `WANT_WRITE` and we turn back into `Pending`.
//! The same code runs with OpenSSL and BoringSSL.

use super::{SslDigest, ALPN};
use crate::protocols::digest::{GetProxyDigest, GetSocketDigest, GetTimingDigest, TimingDigest};
use crate::protocols::raw_connect::ProxyDigest;
use crate::protocols::{Peek, Shutdown, SocketDigest, Ssl, UniqueID, UniqueIDType, IO};
use crate::tls::ext;
use crate::tls::hash::MessageDigest;
use crate::tls::nid::Nid;
use crate::tls::ssl::{self, ErrorCode, NameType, SslRef, SslStream};
use crate::tls::x509::X509Ref;
use async_trait::async_trait;
use pingora_error::{Error, ErrorType, ErrorType::*};
use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Adapts an async stream to the synchronous `Read + Write` the TLS library
/// drives. Only used inside [`TlsStream::with_context`].
struct Bridge<T> {
    inner: T,
    /// `*mut Context<'_>` of the poll in progress, 0 outside of one. Kept as
    /// an integer so the bridge stays `Send + Sync`.
    cx: usize,
}

impl<T> Bridge<T> {
    fn poll_io<R>(
        &mut self,
        f: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> io::Result<R>
    where
        T: Unpin,
    {
        if self.cx == 0 {
            return Err(io::Error::other("TLS stream used outside of a poll"));
        }
        // SAFETY: `cx` is set by `with_context` from a `&mut Context` that
        // outlives the closure it runs, and cleared right after; nothing
        // else reads it.
        let cx = unsafe { &mut *(self.cx as *mut Context<'_>) };
        match f(Pin::new(&mut self.inner), cx) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<T: AsyncRead + Unpin> Read for Bridge<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.poll_io(|inner, cx| {
            let mut rb = ReadBuf::new(buf);
            inner.poll_read(cx, &mut rb).map_ok(|()| rb.filled().len())
        })
    }
}

impl<T: AsyncWrite + Unpin> Write for Bridge<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.poll_io(|inner, cx| inner.poll_write(cx, buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.poll_io(|inner, cx| inner.poll_flush(cx))
    }
}

/// Turn a "would block" result into `Pending`.
fn would_block<R>(r: io::Result<R>) -> Poll<io::Result<R>> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        r => Poll::Ready(r),
    }
}

/// A TLS connection over the stream `T`.
pub struct TlsStream<T> {
    tls: SslStream<Bridge<T>>,
    digest: Option<Arc<SslDigest>>,
    established: TimingDigest,
}

impl<T: IO> TlsStream<T> {
    /// Wrap `inner` in a TLS session configured by `ssl`. Nothing is sent
    /// until [`Self::accept`] or [`Self::connect`].
    pub fn new(ssl: ssl::Ssl, inner: T) -> Result<Self, crate::tls::error::ErrorStack> {
        Ok(TlsStream {
            tls: SslStream::new(ssl, Bridge { inner, cx: 0 })?,
            digest: None,
            established: TimingDigest::default(),
        })
    }

    fn with_context<R>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&mut SslStream<Bridge<T>>) -> R,
    ) -> R {
        self.tls.get_mut().cx = cx as *mut Context<'_> as usize;
        let r = f(&mut self.tls);
        self.tls.get_mut().cx = 0;
        r
    }

    /// Drive a handshake step until it completes or fails.
    async fn drive(
        &mut self,
        step: fn(&mut SslStream<Bridge<T>>) -> Result<(), ssl::Error>,
    ) -> Result<(), ssl::Error> {
        poll_fn(|cx| {
            self.with_context(cx, |s| match step(s) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(e)
                    if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE)
                        && e.io_error()
                            .is_some_and(|io| io.kind() == io::ErrorKind::WouldBlock) =>
                {
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Err(e)),
            })
        })
        .await
    }

    /// Run (or resume) the server side of the handshake. A handshake paused
    /// for a certificate lookup returns that error; resume by calling this
    /// again.
    pub async fn accept(&mut self) -> Result<(), ssl::Error> {
        self.drive(|s| s.accept()).await?;
        self.finish_handshake();
        Ok(())
    }

    /// Run the client side of the handshake.
    pub async fn connect(&mut self) -> Result<(), ssl::Error> {
        self.drive(|s| s.connect()).await?;
        self.finish_handshake();
        Ok(())
    }

    fn finish_handshake(&mut self) {
        self.established = TimingDigest {
            established_ts: SystemTime::now(),
        };
        self.digest = Some(Arc::new(SslDigest::from_ssl(self.tls.ssl())));
    }

    /// The TLS session, e.g. to read the peer certificate.
    pub fn ssl(&self) -> &SslRef {
        self.tls.ssl()
    }

    /// The TLS session, to change it (e.g. in a certificate callback).
    pub fn ssl_mut(&mut self) -> &mut SslRef {
        ext::ssl_mut(&mut self.tls)
    }

    /// The stream under the TLS layer.
    pub fn get_ref(&self) -> &T {
        &self.tls.get_ref().inner
    }

    /// Replace the digest (e.g. to attach the handshake callback's data).
    pub(crate) fn digest_mut(&mut self) -> Option<&mut SslDigest> {
        self.digest.as_mut().map(Arc::make_mut)
    }
}

/// Classify a failed handshake: a certificate that failed verification is
/// `InvalidCert` (with the verifier's reason), anything else
/// `TLSHandshakeFailure`.
pub fn handshake_error(e: ssl::Error, ssl: &SslRef, context: String) -> Box<Error> {
    let (etype, context): (ErrorType, String) = match ext::verify_failure(ssl) {
        Some(reason) => (
            InvalidCert,
            format!("{context}: certificate verification failed: {reason}"),
        ),
        None => (TLSHandshakeFailure, context),
    };
    Error::because(etype, context, e)
}

impl SslDigest {
    /// The facts of an established session.
    pub fn from_ssl(ssl: &SslRef) -> Self {
        let cert = ssl.peer_certificate();
        let cert = cert.as_deref();
        SslDigest {
            cipher: ssl.current_cipher().map(|c| c.name()).unwrap_or_default(),
            version: ssl.version_str(),
            organization: cert.and_then(|c| subject_entry(c, Nid::ORGANIZATIONNAME)),
            serial_number: cert.and_then(|c| {
                let bn = c.serial_number().to_bn().ok()?;
                Some(bn.to_hex_str().ok()?.to_string())
            }),
            cert_digest: cert
                .and_then(|c| c.digest(MessageDigest::sha256()).ok())
                .map(|d| d.to_vec())
                .unwrap_or_default(),
            common_name: cert.and_then(|c| subject_entry(c, Nid::COMMONNAME)),
            group: ext::negotiated_group(ssl),
            sni: ssl.servername(NameType::HOST_NAME).map(str::to_string),
            session_reused: ssl.session_reused(),
            fips: ext::fips_enabled(),
            extension: Default::default(),
        }
    }
}

fn subject_entry(cert: &X509Ref, nid: Nid) -> Option<String> {
    let entry = cert.subject_name().entries_by_nid(nid).next()?;
    Some(String::from_utf8_lossy(entry.data().as_slice()).into_owned())
}

impl<T: IO> AsyncRead for TlsStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.with_context(cx, |s| {
            // SAFETY: the TLS library only writes into the slice and
            // reports how many bytes it initialised; no byte is de-initialised.
            let unfilled = unsafe { buf.unfilled_mut() };
            let n = match would_block(s.read_uninit(unfilled)) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            // SAFETY: `read_uninit` initialised the first `n` bytes.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            Poll::Ready(Ok(()))
        })
    }
}

impl<T: IO> AsyncWrite for TlsStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.with_context(cx, |s| would_block(s.write(buf)))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.with_context(cx, |s| would_block(s.flush()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let sent = this.with_context(cx, |s| match s.shutdown() {
            Ok(_) => Poll::Ready(Ok(())),
            // the peer closed first, or the session is already gone
            Err(e) if matches!(e.code(), ErrorCode::ZERO_RETURN | ErrorCode::SYSCALL) => {
                Poll::Ready(Ok(()))
            }
            Err(e)
                if e.io_error()
                    .is_some_and(|io| io.kind() == io::ErrorKind::WouldBlock) =>
            {
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(io::Error::other(e))),
        });
        match sent {
            Poll::Ready(Ok(())) => Pin::new(&mut this.tls.get_mut().inner).poll_shutdown(cx),
            other => other,
        }
    }
}

#[async_trait]
impl<T: IO> Shutdown for TlsStream<T> {
    async fn shutdown(&mut self) -> () {
        let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
    }
}

impl<T: IO> UniqueID for TlsStream<T> {
    fn id(&self) -> UniqueIDType {
        self.get_ref().id()
    }
}

impl<T: IO> Ssl for TlsStream<T> {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.digest.clone()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.ssl()
            .selected_alpn_protocol()
            .and_then(ALPN::from_wire_selected)
    }
}

impl<T: IO> GetTimingDigest for TlsStream<T> {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        let mut layers = self.get_ref().get_timing_digest();
        layers.push(Some(self.established.clone()));
        layers
    }
}

impl<T: IO> GetProxyDigest for TlsStream<T> {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.get_ref().get_proxy_digest()
    }
}

impl<T: IO> GetSocketDigest for TlsStream<T> {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.get_ref().get_socket_digest()
    }
    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.tls.get_mut().inner.set_socket_digest(socket_digest)
    }
}

// Peeking under TLS would show ciphertext: not supported.
impl<T: IO> Peek for TlsStream<T> {}

impl<T: IO> fmt::Debug for TlsStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("inner", self.get_ref())
            .field("version", &self.ssl().version_str())
            .finish()
    }
}
