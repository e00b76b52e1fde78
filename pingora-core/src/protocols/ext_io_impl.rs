//! [`IO`](super::IO) for in-memory streams, so sessions can be driven in
//! tests without sockets: `tokio_test::io::Mock`, `tokio::io::DuplexStream`
//! and `std::io::Cursor`. They have no fd ([`UniqueID::id`] is 0) and no
//! socket facts.

use super::raw_connect::ProxyDigest;
use super::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use async_trait::async_trait;
use std::io::Cursor;
use std::sync::Arc;
use tokio::io::DuplexStream;
use tokio_test::io::Mock;

macro_rules! in_memory_io {
    ($($ty:ty => [$($gen:tt)*]),* $(,)?) => {$(
        impl<$($gen)*> UniqueID for $ty {
            fn id(&self) -> UniqueIDType {
                0
            }
        }
        impl<$($gen)*> Ssl for $ty {}
        impl<$($gen)*> GetTimingDigest for $ty {
            fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
                vec![]
            }
        }
        impl<$($gen)*> GetProxyDigest for $ty {
            fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
                None
            }
        }
        impl<$($gen)*> GetSocketDigest for $ty {
            fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
                None
            }
        }
        impl<$($gen)*> Peek for $ty {}
    )*};
}

// close the write side so the peer sees EOF, like a socket
#[async_trait]
impl Shutdown for DuplexStream {
    async fn shutdown(&mut self) -> () {
        let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
    }
}

#[async_trait]
impl Shutdown for Mock {
    async fn shutdown(&mut self) -> () {}
}

#[async_trait]
impl<T: Send> Shutdown for Cursor<T> {
    async fn shutdown(&mut self) -> () {}
}

in_memory_io!(
    Mock => [],
    DuplexStream => [],
    Cursor<T> => [T],
);
