//! Listening endpoints of a service: TCP addresses and Unix sockets, with
//! their socket options.
//!
//! An endpoint is a transport stack: the L4 listener, plus a TLS acceptor
//! for TLS endpoints (`add_tls`, `add_tls_with_settings`, which need the
//! `openssl` or `boringssl` feature). Accepted streams pass through a
//! handshake step that runs in the connection's own task, so a slow or
//! failing client never holds up the accept loop or other connections.

mod l4;
#[cfg(any(feature = "openssl", feature = "boringssl"))]
pub mod tls;

use pingora_error::Result;
use std::fs::Permissions;

use crate::protocols::Stream;
use crate::server::ListenFds;

use l4::{ListenerEndpoint, Stream as L4Stream};

pub use crate::protocols::ALPN;
pub use l4::{ServerAddress, TcpSocketOptions};

#[cfg(any(feature = "openssl", feature = "boringssl"))]
pub use tls::{TlsAccept, TlsAcceptCallbacks, TlsSettings};

/// The TLS layer of an endpoint.
#[cfg(any(feature = "openssl", feature = "boringssl"))]
type TlsAcceptor = std::sync::Arc<tls::Acceptor>;
/// Without a TLS backend no endpoint has a TLS layer (uninhabited).
#[cfg(not(any(feature = "openssl", feature = "boringssl")))]
#[derive(Clone)]
enum TlsAcceptor {}

#[cfg(any(feature = "openssl", feature = "boringssl"))]
async fn tls_handshake(acceptor: &TlsAcceptor, l4: L4Stream) -> Result<Stream> {
    Ok(Box::new(acceptor.tls_handshake(l4).await?))
}

#[cfg(not(any(feature = "openssl", feature = "boringssl")))]
async fn tls_handshake(acceptor: &TlsAcceptor, _l4: L4Stream) -> Result<Stream> {
    match *acceptor {}
}

/// Implemented by nothing: a TLS listener asked for in a build without a
/// TLS backend fails to compile with this message.
#[cfg(not(any(feature = "openssl", feature = "boringssl")))]
#[diagnostic::on_unimplemented(
    message = "TLS listeners need a TLS backend",
    label = "pingora was built without TLS",
    note = "enable the `openssl` (default) or `boringssl` feature of pingora / pingora-core"
)]
pub trait TlsBackendRequired {}

/// One endpoint as configured, not bound yet.
struct TransportStackBuilder {
    l4: ServerAddress,
    tls: Option<TlsAcceptor>,
}

impl TransportStackBuilder {
    async fn build(&self, fds: Option<ListenFds>) -> Result<TransportStack> {
        Ok(TransportStack {
            l4: ListenerEndpoint::listen(self.l4.clone(), fds).await?,
            tls: self.tls.clone(),
        })
    }
}

/// A bound endpoint: the L4 listener and, for TLS endpoints, the acceptor.
#[derive(Clone)]
pub(crate) struct TransportStack {
    l4: ListenerEndpoint,
    tls: Option<TlsAcceptor>,
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
            tls: self.tls.clone(),
        })
    }
}

/// An accepted connection before its handshake (none for plain L4).
pub(crate) struct UninitializedStream {
    l4: L4Stream,
    tls: Option<TlsAcceptor>,
}

impl UninitializedStream {
    /// Complete the transport handshake (TLS, if the endpoint has it) and
    /// erase the stream type.
    pub(crate) async fn handshake(self) -> Result<Stream> {
        match &self.tls {
            Some(acceptor) => tls_handshake(acceptor, self.l4).await,
            None => Ok(Box::new(self.l4)),
        }
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
        self.stacks.push(TransportStackBuilder {
            l4: addr,
            tls: None,
        });
    }

    /// A single TLS endpoint at `addr` with the certificate chain and key
    /// in the PEM files `cert_path` and `key_path`.
    #[cfg(any(feature = "openssl", feature = "boringssl"))]
    pub fn tls(addr: &str, cert_path: &str, key_path: &str) -> Result<Self> {
        let mut l = Self::new();
        l.add_tls(addr, cert_path, key_path)?;
        Ok(l)
    }

    /// Add a TLS endpoint with the Mozilla intermediate profile and the
    /// certificate chain and key in the PEM files `cert_path` and
    /// `key_path`.
    #[cfg(any(feature = "openssl", feature = "boringssl"))]
    pub fn add_tls(&mut self, addr: &str, cert_path: &str, key_path: &str) -> Result<()> {
        let settings = TlsSettings::intermediate(cert_path, key_path)?;
        self.add_tls_with_settings(addr, None, settings);
        Ok(())
    }

    /// Add a TLS endpoint with its socket options and TLS settings.
    #[cfg(any(feature = "openssl", feature = "boringssl"))]
    pub fn add_tls_with_settings(
        &mut self,
        addr: &str,
        sock_opt: Option<TcpSocketOptions>,
        settings: TlsSettings,
    ) {
        self.stacks.push(TransportStackBuilder {
            l4: ServerAddress::Tcp(addr.into(), sock_opt),
            tls: Some(std::sync::Arc::new(settings.build())),
        });
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
