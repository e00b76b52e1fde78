//! Facts about a connection (addresses, timing, TLS, CONNECT proxy) that are
//! collected once and shared with logging and user callbacks.

use std::os::unix::io::RawFd;
use std::sync::Arc;
use std::time::SystemTime;

use once_cell::sync::OnceCell;

use super::l4::socket::SocketAddr;
use super::raw_connect::ProxyDigest;
use super::tls::SslDigest;

/// Everything known about a connection, gathered when a session starts.
#[derive(Clone, Debug, Default)]
pub struct Digest {
    /// TLS facts, when the connection is encrypted.
    pub ssl_digest: Option<Arc<SslDigest>>,
    /// When each layer (L4 first) was established.
    pub timing_digest: Vec<Option<TimingDigest>>,
    /// The CONNECT proxy the connection goes through, if any.
    pub proxy_digest: Option<Arc<ProxyDigest>>,
    /// The socket's addresses.
    pub socket_digest: Option<Arc<SocketDigest>>,
}

/// Implemented by objects that can hand out a [`Digest`].
pub trait ProtoDigest {
    /// The digest, when one was collected.
    fn get_digest(&self) -> Option<&Digest> {
        None
    }
}

/// When a connection layer was established.
#[derive(Clone, Debug)]
pub struct TimingDigest {
    /// The moment the layer finished its handshake.
    pub established_ts: SystemTime,
}

impl Default for TimingDigest {
    fn default() -> Self {
        TimingDigest {
            established_ts: SystemTime::UNIX_EPOCH,
        }
    }
}

/// The addresses of a socket, looked up lazily (one syscall each, on first
/// use) and cached.
#[derive(Debug)]
pub struct SocketDigest {
    raw_fd: RawFd,
    /// The remote address, once looked up.
    pub peer_addr: OnceCell<Option<SocketAddr>>,
    /// The local address, once looked up.
    pub local_addr: OnceCell<Option<SocketAddr>>,
}

impl SocketDigest {
    /// A digest for the socket `raw_fd`. The fd must stay open while the
    /// addresses have not been looked up yet.
    pub fn from_raw_fd(raw_fd: RawFd) -> SocketDigest {
        SocketDigest {
            raw_fd,
            peer_addr: OnceCell::new(),
            local_addr: OnceCell::new(),
        }
    }

    /// A digest whose addresses are already known (no lookup needed).
    pub fn from_addrs(
        raw_fd: RawFd,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) -> SocketDigest {
        SocketDigest {
            raw_fd,
            peer_addr: OnceCell::with_value(peer),
            local_addr: OnceCell::with_value(local),
        }
    }

    /// The remote address of the socket.
    pub fn peer_addr(&self) -> Option<&SocketAddr> {
        self.peer_addr
            .get_or_init(|| SocketAddr::from_raw_fd(self.raw_fd, true))
            .as_ref()
    }

    /// The local address of the socket.
    pub fn local_addr(&self) -> Option<&SocketAddr> {
        self.local_addr
            .get_or_init(|| SocketAddr::from_raw_fd(self.raw_fd, false))
            .as_ref()
    }
}

/// Connections that can report when each of their layers was established.
pub trait GetTimingDigest {
    /// Timing of each layer, lowest (L4) first.
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>>;
}

/// Connections that may go through a CONNECT proxy.
pub trait GetProxyDigest {
    /// The proxy facts, when the connection was tunneled.
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>>;
    /// Record the proxy facts (no-op by default).
    fn set_proxy_digest(&mut self, _digest: ProxyDigest) {}
}

/// Connections that can report their socket addresses.
pub trait GetSocketDigest {
    /// The socket facts, when the connection is backed by a socket.
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>>;
    /// Record the socket facts (no-op by default).
    fn set_socket_digest(&mut self, _socket_digest: SocketDigest) {}
}
