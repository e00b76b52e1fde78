//! Transport and application protocols: the [`IO`] abstraction every
//! connection implements, L4 (TCP / Unix socket) streams, and the HTTP/1.x
//! server and client sessions.
//!
//! Everything above L4 talks to a connection through [`Stream`] (a boxed
//! [`IO`]), so sessions work the same over TCP, Unix sockets, a future TLS
//! layer, or in-memory test doubles (`tokio::io::DuplexStream`,
//! `tokio_test::io::Mock`, `std::io::Cursor`).

mod digest;
mod ext_io_impl;
pub mod http;
pub mod l4;
pub mod raw_connect;
mod rewind;
pub mod tls;

pub use digest::{
    Digest, GetProxyDigest, GetSocketDigest, GetTimingDigest, ProtoDigest, SocketDigest,
    TimingDigest,
};
pub use l4::ext::TcpKeepalive;
pub use l4::socket::SocketAddr;
pub(crate) use rewind::Rewind;
pub use tls::ALPN;

use async_trait::async_trait;
use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// The type of [`UniqueID::id`]: a file descriptor on unix.
pub type UniqueIDType = i32;

/// How a connection is shut down gracefully (e.g. TCP FIN, TLS close_notify).
#[async_trait]
pub trait Shutdown {
    /// Shut the write side of the connection down. Errors are ignored: the
    /// connection is being given up anyway.
    async fn shutdown(&mut self) -> ();
}

/// A per-connection identifier, unique among the open connections of one
/// kind (the fd), used e.g. to key connection pools. It may be recycled once
/// the connection is closed.
pub trait UniqueID {
    /// The identifier of this connection.
    fn id(&self) -> UniqueIDType;
}

/// TLS information of a connection. Plain connections keep the defaults
/// (`None`); the TLS layer overrides them.
pub trait Ssl {
    /// The TLS digest (cipher, version, certificate facts) for logging.
    fn get_ssl_digest(&self) -> Option<Arc<tls::SslDigest>> {
        None
    }

    /// The protocol agreed on by ALPN, if any.
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        None
    }
}

/// Look at incoming bytes without consuming them (e.g. to sniff a protocol).
#[async_trait]
pub trait Peek {
    /// Wait until some data arrives and copy it into `buf` without consuming
    /// it. `Ok(false)` means peeking is not supported by this connection.
    async fn try_peek(&mut self, _buf: &mut [u8]) -> std::io::Result<bool> {
        Ok(false)
    }
}

/// The abstraction of a transport connection that HTTP sessions run on.
///
/// It is implemented automatically for every type with the listed
/// capabilities, so wrapping layers (TLS, rewind buffers, test doubles) only
/// implement the small traits.
pub trait IO:
    AsyncRead
    + AsyncWrite
    + Shutdown
    + UniqueID
    + Ssl
    + GetTimingDigest
    + GetProxyDigest
    + GetSocketDigest
    + Peek
    + Unpin
    + Debug
    + Send
    + Sync
{
    /// View the concrete type behind a [`Stream`], to downcast it.
    fn as_any(&self) -> &dyn Any;
    /// Take the concrete type back out of a [`Stream`], to downcast it.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<T> IO for T
where
    T: AsyncRead
        + AsyncWrite
        + Shutdown
        + UniqueID
        + Ssl
        + GetTimingDigest
        + GetProxyDigest
        + GetSocketDigest
        + Peek
        + Unpin
        + Debug
        + Send
        + Sync
        + 'static,
{
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Any established connection, type-erased.
pub type Stream = Box<dyn IO>;
