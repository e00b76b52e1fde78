//! [`BasicPeer`]: a plain TCP/TLS/Unix-socket peer.

use super::{Peer, PeerOptions, SocketAddr};
use ahash::AHasher;
use pingora_error::{ErrorType::InternalError, OrErr, Result};
use std::fmt::{Display, Formatter, Result as FmtResult};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr as InetSocketAddr;
use std::os::unix::net::SocketAddr as UnixSocketAddr;
use std::path::Path;

/// A peer with only an address, an optional SNI (TLS is used when it is
/// non-empty) and options; for non-HTTP upstreams and tests.
#[derive(Debug, Clone)]
pub struct BasicPeer {
    /// Where to connect.
    pub _address: SocketAddr,
    /// The TLS server name; empty means plain TCP.
    pub sni: String,
    /// Connection preferences.
    pub options: PeerOptions,
}

impl BasicPeer {
    /// A peer at `address`, an `"ip:port"` literal.
    ///
    /// # Panics
    /// When `address` is not an `ip:port` literal; use
    /// [`BasicPeer::new_from_inet`] with an already parsed address to avoid
    /// that.
    pub fn new(address: &str) -> Self {
        let inet: InetSocketAddr = address
            .parse()
            .unwrap_or_else(|e| panic!("BasicPeer::new: `{address}` is not ip:port: {e}"));
        Self::new_from_inet(inet)
    }

    /// A peer at an already parsed IP address and port.
    pub fn new_from_inet(address: InetSocketAddr) -> Self {
        Self::from_sockaddr(SocketAddr::Inet(address))
    }

    /// A peer at the Unix domain socket `path`.
    pub fn new_uds<P: AsRef<Path>>(path: P) -> Result<Self> {
        let addr = UnixSocketAddr::from_pathname(path.as_ref())
            .or_err(InternalError, "invalid Unix socket path for BasicPeer")?;
        Ok(Self::from_sockaddr(SocketAddr::Unix(addr)))
    }

    fn from_sockaddr(address: SocketAddr) -> Self {
        BasicPeer {
            _address: address,
            sni: String::new(),
            options: PeerOptions::new(),
        }
    }
}

impl Display for BasicPeer {
    fn fmt(&self, f: &mut Formatter<'_>) -> FmtResult {
        write!(f, "addr: {}", self._address)?;
        if !self.sni.is_empty() {
            write!(f, ", sni: {}", self.sni)?;
        }
        Ok(())
    }
}

impl Peer for BasicPeer {
    fn address(&self) -> &SocketAddr {
        &self._address
    }

    fn tls(&self) -> bool {
        !self.sni.is_empty()
    }

    fn sni(&self) -> &str {
        &self.sni
    }

    fn reuse_hash(&self) -> u64 {
        let mut hasher = AHasher::default();
        self._address.hash(&mut hasher);
        self.sni.hash(&mut hasher);
        self.options.hash_connection_shape(&mut hasher);
        hasher.finish()
    }

    fn get_peer_options(&self) -> Option<&PeerOptions> {
        Some(&self.options)
    }

    fn get_mut_peer_options(&mut self) -> Option<&mut PeerOptions> {
        Some(&mut self.options)
    }
}
