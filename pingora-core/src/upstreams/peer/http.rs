//! [`HttpPeer`]: an upstream HTTP server.

use super::{fd_connected_to, CertKey, Peer, PeerOptions, SocketAddr, ToInetSocketAddrs, Tracer};
use ahash::AHasher;
use pingora_error::{Error, ErrorType::SocketError, OrErr, Result};
use std::collections::BTreeMap;
use std::fmt::{Display, Formatter, Result as FmtResult};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr as InetSocketAddr};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::SocketAddr as UnixSocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Plain HTTP or HTTP over TLS.
#[derive(Hash, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain text.
    HTTP,
    /// TLS.
    HTTPS,
}

impl Scheme {
    /// `HTTPS` when `tls`, else `HTTP`.
    pub fn from_tls_bool(tls: bool) -> Self {
        if tls {
            Self::HTTPS
        } else {
            Self::HTTP
        }
    }
}

impl Display for Scheme {
    fn fmt(&self, f: &mut Formatter<'_>) -> FmtResult {
        f.write_str(match self {
            Scheme::HTTP => "HTTP",
            Scheme::HTTPS => "HTTPS",
        })
    }
}

/// A proxy reached over a Unix socket that tunnels to the real upstream with
/// an HTTP CONNECT request.
#[derive(Debug, Hash, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Path of the proxy's Unix socket.
    pub next_hop: Box<Path>,
    /// The host (IP or name) to ask the proxy for.
    pub host: String,
    /// The port to ask the proxy for.
    pub port: u16,
    /// Extra headers for the CONNECT request.
    pub headers: BTreeMap<String, Vec<u8>>,
}

impl Display for Proxy {
    fn fmt(&self, f: &mut Formatter<'_>) -> FmtResult {
        write!(
            f,
            "next_hop: {}, host: {}, port: {}",
            self.next_hop.display(),
            self.host,
            self.port
        )
    }
}

/// An upstream HTTP server and how to connect to it.
#[derive(Debug, Clone)]
pub struct HttpPeer {
    /// Where to connect.
    pub _address: SocketAddr,
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// The TLS server name.
    pub sni: String,
    /// The proxy to tunnel through, if any.
    pub proxy: Option<Proxy>,
    /// The client certificate for mutual TLS.
    pub client_cert_key: Option<Arc<CertKey>>,
    /// A free-form partition of connection reuse: peers with different group
    /// keys never share connections.
    pub group_key: u64,
    /// Connection preferences.
    pub options: PeerOptions,
}

impl HttpPeer {
    /// Whether the scheme is HTTPS.
    pub fn is_tls(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    fn from_sockaddr(address: SocketAddr, tls: bool, sni: String) -> Self {
        HttpPeer {
            _address: address,
            scheme: Scheme::from_tls_bool(tls),
            sni,
            proxy: None,
            client_cert_key: None,
            group_key: 0,
            options: PeerOptions::new(),
        }
    }

    /// A peer at `address` (see [`ToInetSocketAddrs`]); the first resolved
    /// address is used.
    ///
    /// # Panics
    /// When `address` does not resolve to any address. Use
    /// [`HttpPeer::try_new`] to get an error instead.
    pub fn new<A: ToInetSocketAddrs>(address: A, tls: bool, sni: String) -> Self {
        match Self::try_new(address, tls, sni) {
            Ok(peer) => peer,
            Err(e) => panic!("HttpPeer::new: {e}"),
        }
    }

    /// Like [`HttpPeer::new`], but returns an error when `address` does not
    /// resolve.
    pub fn try_new<A: ToInetSocketAddrs>(address: A, tls: bool, sni: String) -> Result<Self> {
        let addr = address
            .to_socket_addrs()
            .or_err(SocketError, "failed to resolve peer address")?
            .next()
            .ok_or_else(|| Error::explain(SocketError, "peer address resolved to nothing"))?;
        Ok(Self::from_sockaddr(SocketAddr::Inet(addr), tls, sni))
    }

    /// A TLS peer at `address` that presents `client_cert_key` (mutual TLS).
    ///
    /// # Panics
    /// When `address` does not resolve, like [`HttpPeer::new`].
    pub fn new_mtls<A: ToInetSocketAddrs>(
        address: A,
        sni: String,
        client_cert_key: Arc<CertKey>,
    ) -> Self {
        let mut peer = Self::new(address, true, sni);
        peer.client_cert_key = Some(client_cert_key);
        peer
    }

    /// A peer at the Unix domain socket `path`.
    pub fn new_uds(path: &str, tls: bool, sni: String) -> Result<Self> {
        let addr = UnixSocketAddr::from_pathname(Path::new(path))
            .or_err(SocketError, "invalid Unix socket path")?;
        Ok(Self::from_sockaddr(SocketAddr::Unix(addr), tls, sni))
    }

    /// A peer at `ip_addr:port` reached by tunneling through the proxy
    /// listening on the Unix socket `next_hop`, with extra CONNECT `headers`.
    pub fn new_proxy(
        next_hop: &str,
        ip_addr: IpAddr,
        port: u16,
        tls: bool,
        sni: &str,
        headers: BTreeMap<String, Vec<u8>>,
    ) -> Self {
        let mut peer = Self::from_sockaddr(
            SocketAddr::Inet(InetSocketAddr::new(ip_addr, port)),
            tls,
            sni.to_string(),
        );
        peer.proxy = Some(Proxy {
            next_hop: PathBuf::from(next_hop).into(),
            host: ip_addr.to_string(),
            port,
            headers,
        });
        peer
    }
}

impl Hash for HttpPeer {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self._address.hash(state);
        self.scheme.hash(state);
        self.proxy.hash(state);
        self.sni.hash(state);
        self.client_cert_key.hash(state);
        self.group_key.hash(state);
        self.options.hash_connection_shape(state);
    }
}

impl Display for HttpPeer {
    fn fmt(&self, f: &mut Formatter<'_>) -> FmtResult {
        write!(f, "addr: {}, scheme: {},", self._address, self.scheme)?;
        if !self.sni.is_empty() {
            write!(f, "sni: {},", self.sni)?;
        }
        if let Some(p) = &self.proxy {
            write!(f, "proxy: {p},")?;
        }
        if let Some(cert) = &self.client_cert_key {
            write!(f, "client cert: {cert},")?;
        }
        Ok(())
    }
}

impl Peer for HttpPeer {
    fn address(&self) -> &SocketAddr {
        &self._address
    }

    fn tls(&self) -> bool {
        self.is_tls()
    }

    fn sni(&self) -> &str {
        &self.sni
    }

    fn reuse_hash(&self) -> u64 {
        let mut hasher = AHasher::default();
        self.hash(&mut hasher);
        hasher.finish()
    }

    fn get_peer_options(&self) -> Option<&PeerOptions> {
        Some(&self.options)
    }

    fn get_mut_peer_options(&mut self) -> Option<&mut PeerOptions> {
        Some(&mut self.options)
    }

    fn get_proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    fn matches_fd<V: AsRawFd>(&self, fd: V) -> bool {
        match &self.proxy {
            Some(proxy) => match UnixSocketAddr::from_pathname(&proxy.next_hop) {
                Ok(hop) => fd_connected_to(fd.as_raw_fd(), &SocketAddr::Unix(hop)),
                Err(_) => false,
            },
            None => fd_connected_to(fd.as_raw_fd(), &self._address),
        }
    }

    fn get_client_cert_key(&self) -> Option<&Arc<CertKey>> {
        self.client_cert_key.as_ref()
    }

    fn get_tracer(&self) -> Option<Tracer> {
        self.options.tracer.clone()
    }
}
