//! Where to connect to and how: the [`Peer`] trait and its implementations
//! [`HttpPeer`] and [`BasicPeer`].
//!
//! Connectors pool connections by [`Peer::reuse_hash`]: two peers share
//! pooled connections exactly when their hashes are equal, so every property
//! that changes the established connection (address, TLS, SNI, verification,
//! client certificate, bind address, ALPN, socket options ...) is hashed.

mod basic;
mod http;
mod options;
mod tls_material;

pub use crate::connectors::l4::BindTo;
pub use crate::protocols::l4::socket::SocketAddr;
pub use crate::protocols::{TcpKeepalive, ALPN};
pub use basic::BasicPeer;
pub use http::{HttpPeer, Proxy, Scheme};
pub use options::{PeerOptions, TcpSockTweakHook};
/// Anything that resolves to IP socket addresses: `"1.2.3.4:80"`,
/// `"host:port"`, `("host", 80)`, `(IpAddr, u16)`, `std::net::SocketAddr`,
/// `String`, or any other `std::net::ToSocketAddrs` type (e.g. a
/// load-balancing backend).
pub use std::net::ToSocketAddrs as ToInetSocketAddrs;
pub use tls_material::{CertKey, X509};

use std::fmt::{Debug, Display};
use std::os::unix::io::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

/// Callbacks on the life cycle of upstream connections (e.g. for metrics).
pub trait Tracing: Send + Sync + Debug {
    /// A connection to the peer was established.
    fn on_connected(&self);
    /// A connection to the peer was closed.
    fn on_disconnected(&self);
    /// Clone into a new box (trait objects cannot be `Clone`).
    fn boxed_clone(&self) -> Box<dyn Tracing>;
}

/// A cloneable holder of a [`Tracing`] implementation.
#[derive(Debug)]
pub struct Tracer(pub Box<dyn Tracing>);

impl Clone for Tracer {
    fn clone(&self) -> Self {
        Tracer(self.0.boxed_clone())
    }
}

/// What connectors need to know about an upstream server.
///
/// Only the address, TLS flag, SNI and reuse hash are required; everything
/// else defaults to the values in [`Peer::get_peer_options`], or to "unset"
/// when a peer has no options.
pub trait Peer: Display + Clone {
    /// The address to connect to.
    fn address(&self) -> &SocketAddr;
    /// Whether to speak TLS over the connection.
    fn tls(&self) -> bool;
    /// The server name to send in the TLS handshake.
    fn sni(&self) -> &str;
    /// Peers with equal hashes may use each other's pooled connections.
    fn reuse_hash(&self) -> u64;
    /// The proxy to tunnel through, if any.
    fn get_proxy(&self) -> Option<&Proxy> {
        None
    }
    /// The connection preferences, if this peer has any.
    fn get_peer_options(&self) -> Option<&PeerOptions> {
        None
    }
    /// The connection preferences, to modify them.
    fn get_mut_peer_options(&mut self) -> Option<&mut PeerOptions> {
        None
    }
    /// Whether the upstream's certificate chain must be valid.
    fn verify_cert(&self) -> bool {
        self.get_peer_options().is_some_and(|o| o.verify_cert)
    }
    /// Whether the upstream's certificate must match the SNI.
    fn verify_hostname(&self) -> bool {
        self.get_peer_options().is_some_and(|o| o.verify_hostname)
    }
    /// A name the certificate may match instead of the SNI.
    fn alternative_cn(&self) -> Option<&String> {
        self.get_peer_options()
            .and_then(|o| o.alternative_cn.as_ref())
    }
    /// The local address (and source port range) to bind before connecting.
    fn bind_to(&self) -> Option<&BindTo> {
        self.get_peer_options().and_then(|o| o.bind_to.as_ref())
    }
    /// Limit on the L4 connect step.
    fn connection_timeout(&self) -> Option<Duration> {
        self.get_peer_options().and_then(|o| o.connection_timeout)
    }
    /// Limit on the whole connection establishment, TLS included.
    fn total_connection_timeout(&self) -> Option<Duration> {
        self.get_peer_options()
            .and_then(|o| o.total_connection_timeout)
    }
    /// How long a released connection may wait in the pool for reuse.
    fn idle_timeout(&self) -> Option<Duration> {
        self.get_peer_options().and_then(|o| o.idle_timeout)
    }
    /// The HTTP versions to offer through ALPN.
    fn get_alpn(&self) -> Option<&ALPN> {
        self.get_peer_options().map(|o| &o.alpn)
    }
    /// CA certificates to trust instead of the default ones.
    fn get_ca(&self) -> Option<&Arc<Box<[X509]>>> {
        self.get_peer_options().and_then(|o| o.ca.as_ref())
    }
    /// The client certificate and key for mutual TLS.
    fn get_client_cert_key(&self) -> Option<&Arc<CertKey>> {
        None
    }
    /// TCP keepalive settings for the socket.
    fn tcp_keepalive(&self) -> Option<&TcpKeepalive> {
        self.get_peer_options()
            .and_then(|o| o.tcp_keepalive.as_ref())
    }
    /// Interval of HTTP/2 pings.
    fn h2_ping_interval(&self) -> Option<Duration> {
        self.get_peer_options().and_then(|o| o.h2_ping_interval)
    }
    /// Size limit of the socket receive buffer (`SO_RCVBUF`).
    fn tcp_recv_buf(&self) -> Option<usize> {
        self.get_peer_options().and_then(|o| o.tcp_recv_buf)
    }
    /// DSCP value (RFC 2474) for sent packets.
    fn dscp(&self) -> Option<u8> {
        self.get_peer_options().and_then(|o| o.dscp)
    }
    /// Whether to use TCP fast open.
    fn tcp_fast_open(&self) -> bool {
        self.get_peer_options().is_some_and(|o| o.tcp_fast_open)
    }
    /// Whether the open socket `fd` is connected to this peer; guards
    /// connection reuse against mix-ups.
    fn matches_fd<V: AsRawFd>(&self, fd: V) -> bool {
        fd_connected_to(fd.as_raw_fd(), self.address())
    }
    /// The hook adjusting the TCP socket before it connects.
    fn upstream_tcp_sock_tweak_hook(&self) -> Option<&TcpSockTweakHook> {
        self.get_peer_options()
            .and_then(|o| o.upstream_tcp_sock_tweak_hook.as_ref())
    }
    /// The connection life-cycle callbacks.
    fn get_tracer(&self) -> Option<Tracer> {
        None
    }
}

/// Whether socket `fd` is connected to `addr`.
pub(crate) fn fd_connected_to(fd: std::os::unix::io::RawFd, addr: &SocketAddr) -> bool {
    SocketAddr::from_raw_fd(fd, true).is_some_and(|connected| connected == *addr)
}

#[cfg(test)]
mod tests;
