//! [`Backend`]: one server that traffic can be sent to.

use crate::hashing::KeyHasher;
use http::Extensions;
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_error::{ErrorType, OrErr, Result};
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

/// A server to proxy or connect to.
///
/// A backend's identity is its address and its weight: two backends that
/// differ only in [`Backend::ext`] are equal, hash the same and sort the same,
/// so annotating a backend never changes how it is balanced or checked.
pub struct Backend {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The share of traffic this server receives relative to the others:
    /// a backend of weight 4 gets four times the picks of one of weight 1.
    /// A weight of 0 keeps the backend out of first picks; it is only tried
    /// when a preferred backend is rejected.
    pub weight: usize,
    /// Arbitrary data attached by the user (a zone, a TLS name, ...).
    ///
    /// Opaque to this crate and ignored by equality, ordering and hashing.
    pub ext: Extensions,
}

impl Backend {
    /// A backend of weight 1 at `addr`.
    ///
    /// `addr` is an IP socket address (`"127.0.0.1:80"`, `"[::1]:443"`) or a
    /// Unix socket path prefixed with `unix:` (`"unix:/run/app.sock"`).
    /// No DNS lookup happens here: use [`crate::discovery::Static::try_from_iter`]
    /// to resolve names.
    pub fn new(addr: &str) -> Result<Self> {
        Self::new_with_weight(addr, 1)
    }

    /// A backend at `addr` (same syntax as [`Backend::new`]) with the given
    /// `weight`.
    pub fn new_with_weight(addr: &str, weight: usize) -> Result<Self> {
        let addr = parse_addr(addr)?;
        Ok(Backend {
            addr,
            weight,
            ext: Extensions::new(),
        })
    }

    /// A stable 64-bit digest of this backend's identity (address and
    /// weight), used to key health state and to deduplicate candidates.
    ///
    /// Computed on every selection, so it uses a word-at-a-time hash rather
    /// than SipHash: backends come from trusted configuration, not from
    /// clients, so a keyed hash would buy nothing.
    pub fn hash_key(&self) -> u64 {
        let mut hasher = KeyHasher::default();
        self.hash(&mut hasher);
        hasher.finish()
    }

    /// The backend's address.
    pub fn addr(&self) -> &SocketAddr {
        &self.addr
    }
}

fn parse_addr(addr: &str) -> Result<SocketAddr> {
    if let Some(path) = addr.strip_prefix("unix:") {
        let unix = std::os::unix::net::SocketAddr::from_pathname(path)
            .or_err_with(ErrorType::InternalError, || {
                format!("invalid unix socket path {path:?}")
            })?;
        return Ok(SocketAddr::Unix(unix));
    }
    let inet: std::net::SocketAddr = addr.parse().or_err_with(ErrorType::InternalError, || {
        format!("invalid socket address {addr:?}")
    })?;
    Ok(SocketAddr::Inet(inet))
}

impl Clone for Backend {
    fn clone(&self) -> Self {
        Backend {
            addr: self.addr.clone(),
            weight: self.weight,
            ext: self.ext.clone(),
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("addr", &self.addr)
            .field("weight", &self.weight)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Backend {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr && self.weight == other.weight
    }
}

impl Eq for Backend {}

impl PartialOrd for Backend {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Backend {
    fn cmp(&self, other: &Self) -> Ordering {
        // addresses order IPs (by IP, then port) before Unix socket paths
        self.addr
            .cmp(&other.addr)
            .then_with(|| self.weight.cmp(&other.weight))
    }
}

impl Hash for Backend {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.addr.hash(state);
        self.weight.hash(state);
    }
}

impl std::ops::Deref for Backend {
    type Target = SocketAddr;

    fn deref(&self) -> &Self::Target {
        &self.addr
    }
}

impl std::ops::DerefMut for Backend {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.addr
    }
}

/// Lets a backend be handed straight to APIs that take an address, such as
/// `HttpPeer::new(backend, tls, sni)`. Unix socket backends have no IP
/// address and yield an `InvalidInput` error.
impl std::net::ToSocketAddrs for Backend {
    type Iter = std::iter::Once<std::net::SocketAddr>;

    fn to_socket_addrs(&self) -> std::io::Result<Self::Iter> {
        match &self.addr {
            SocketAddr::Inet(addr) => Ok(std::iter::once(*addr)),
            SocketAddr::Unix(_) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a unix socket backend has no IP address",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::ToSocketAddrs;

    #[test]
    fn parses_inet_and_unix() {
        let b = Backend::new("127.0.0.1:80").expect("valid");
        assert_eq!(b.weight, 1);
        assert!(matches!(b.addr, SocketAddr::Inet(a) if a.port() == 80));
        let b = Backend::new_with_weight("[::1]:443", 7).expect("valid");
        assert_eq!(b.weight, 7);
        let b = Backend::new("unix:/tmp/lb-test.sock").expect("valid");
        assert!(matches!(b.addr, SocketAddr::Unix(_)));
        assert!(b.to_socket_addrs().is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(Backend::new("not an address").is_err());
        assert!(Backend::new("1.2.3.4").is_err());
        assert!(Backend::new("").is_err());
        assert!(Backend::new("unix:/a\0b").is_err());
    }

    #[test]
    fn ext_is_ignored_by_identity() {
        let a = Backend::new("10.0.0.1:80").expect("valid");
        let mut b = a.clone();
        b.ext.insert("zone-a");
        assert_eq!(a, b);
        assert_eq!(a.hash_key(), b.hash_key());
        assert_eq!(a.cmp(&b), Ordering::Equal);
        // weight is part of the identity
        let c = Backend::new_with_weight("10.0.0.1:80", 2).expect("valid");
        assert_ne!(a, c);
        assert_ne!(a.hash_key(), c.hash_key());
    }

    #[test]
    fn hash_keys_are_distinct() {
        let mut keys = std::collections::HashSet::new();
        for a in 0..20 {
            for port in [80, 443, 8080] {
                for weight in [1, 2] {
                    let addr = format!("10.0.{a}.1:{port}");
                    keys.insert(
                        Backend::new_with_weight(&addr, weight)
                            .expect("valid")
                            .hash_key(),
                    );
                    let addr = format!("[fd00::{a}:1]:{port}");
                    keys.insert(
                        Backend::new_with_weight(&addr, weight)
                            .expect("valid")
                            .hash_key(),
                    );
                }
            }
            let path = format!("unix:/run/app{a}.sock");
            keys.insert(Backend::new(&path).expect("valid").hash_key());
        }
        assert_eq!(keys.len(), 20 * 3 * 2 * 2 + 20);
    }

    #[test]
    fn to_socket_addrs_for_peers() {
        let b = Backend::new("127.0.0.1:8080").expect("valid");
        let addrs: Vec<_> = b.to_socket_addrs().expect("inet").collect();
        assert_eq!(addrs, vec!["127.0.0.1:8080".parse().expect("valid")]);
        // Deref gives access to the address
        assert!(matches!(*b, SocketAddr::Inet(_)));
    }
}
