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
        #[async_trait]
        impl<$($gen)*> Shutdown for $ty {
            async fn shutdown(&mut self) -> () {}
        }
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

in_memory_io!(Mock => [], DuplexStream => [], Cursor<T> => [T: Send]);
