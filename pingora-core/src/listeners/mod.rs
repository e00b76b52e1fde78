//! Listening endpoints of a service: TCP addresses and Unix sockets, with
//! their socket options.
//!
//! TLS endpoints (`add_tls`, `add_tls_with_settings`) arrive with TLS
//! support: an endpoint is built as a transport stack (L4 now, a TLS layer
//! on top later) and accepted streams pass through a handshake step, so TLS
//! slots in without changing the listening service.

mod l4;

use pingora_error::Result;
use std::fs::Permissions;

use crate::protocols::Stream;
use crate::server::ListenFds;

use l4::{ListenerEndpoint, Stream as L4Stream};

pub use crate::protocols::ALPN;
pub use l4::{ServerAddress, TcpSocketOptions};

/// One endpoint as configured, not bound yet.
struct TransportStackBuilder {
    l4: ServerAddress,
}

impl TransportStackBuilder {
    async fn build(&self, fds: Option<ListenFds>) -> Result<TransportStack> {
        Ok(TransportStack {
            l4: ListenerEndpoint::listen(self.l4.clone(), fds).await?,
        })
    }
}

/// A bound endpoint: the L4 listener (and, later, the TLS acceptor).
#[derive(Clone)]
pub(crate) struct TransportStack {
    l4: ListenerEndpoint,
}

impl TransportStack {
    /// The configured address, for logs.
    pub(crate) fn as_str(&self) -> &str {
        self.l4.as_str()
    }

    /// The bound TCP address, which tells the port when 0 was asked for.
    pub(crate) fn tcp_local_addr(&self) -> Option<std::net::SocketAddr> {
        self.l4.tcp_local_addr()
    }

    /// Accept the next connection; the handshake is left to the caller so
    /// that a slow client never holds up the accept loop.
    pub(crate) async fn accept(&self) -> Result<UninitializedStream> {
        Ok(UninitializedStream {
            l4: self.l4.accept().await?,
        })
    }
}

/// An accepted connection before its handshake (none for plain L4).
pub(crate) struct UninitializedStream {
    l4: L4Stream,
}

impl UninitializedStream {
    /// Complete the transport handshake and erase the stream type.
    pub(crate) async fn handshake(self) -> Result<Stream> {
        Ok(Box::new(self.l4))
    }
}

/// The endpoints of one listening service.
#[derive(Default)]
pub struct Listeners {
    stacks: Vec<TransportStackBuilder>,
}

impl Listeners {
    /// No endpoints yet.
    pub fn new() -> Self {
        Listeners { stacks: vec![] }
    }

    /// A single TCP endpoint at `addr` (e.g. `0.0.0.0:80`).
    pub fn tcp(addr: &str) -> Self {
        let mut l = Self::new();
        l.add_tcp(addr);
        l
    }

    /// A single Unix socket endpoint at path `addr`, with the socket file's
    /// permissions (default `0o666`).
    pub fn uds(addr: &str, perm: Option<Permissions>) -> Self {
        let mut l = Self::new();
        l.add_uds(addr, perm);
        l
    }

    /// Add a TCP endpoint.
    pub fn add_tcp(&mut self, addr: &str) {
        self.add_address(ServerAddress::Tcp(addr.into(), None));
    }

    /// Add a TCP endpoint with socket options.
    pub fn add_tcp_with_settings(&mut self, addr: &str, sock_opt: TcpSocketOptions) {
        self.add_address(ServerAddress::Tcp(addr.into(), Some(sock_opt)));
    }

    /// Add a Unix socket endpoint; a stale socket file at `addr` is
    /// replaced.
    pub fn add_uds(&mut self, addr: &str, perm: Option<Permissions>) {
        self.add_address(ServerAddress::Uds(addr.into(), perm));
    }

    /// Add an endpoint.
    pub fn add_address(&mut self, addr: ServerAddress) {
        self.stacks.push(TransportStackBuilder { l4: addr });
    }

    /// The configured addresses, in the order they were added.
    pub fn addresses(&self) -> impl Iterator<Item = &ServerAddress> {
        self.stacks.iter().map(|s| &s.l4)
    }

    /// Bind every endpoint. Stops at the first failure, whose error names
    /// the address and the cause.
    pub(crate) async fn build(&self, fds: Option<ListenFds>) -> Result<Vec<TransportStack>> {
        let mut stacks = Vec::with_capacity(self.stacks.len());
        for b in &self.stacks {
            stacks.push(b.build(fds.clone()).await?);
        }
        Ok(stacks)
    }
}

#[cfg(test)]
mod tests;
