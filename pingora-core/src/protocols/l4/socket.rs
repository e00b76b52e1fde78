//! One address type for both TCP (IP + port) and Unix domain sockets.

use nix::sys::socket::{getpeername, getsockname, SockaddrLike, SockaddrStorage};
use once_cell::sync::Lazy;
use pingora_error::{Error, ErrorType::SocketError, Result};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr as InetSocketAddr;
use std::os::unix::io::RawFd;
use std::os::unix::net::SocketAddr as UnixSocketAddr;
use std::str::FromStr;

/// The address of either end of a connection.
#[derive(Debug, Clone)]
pub enum SocketAddr {
    /// An IPv4 or IPv6 address with a port.
    Inet(InetSocketAddr),
    /// A Unix domain socket address (a path, or unnamed).
    Unix(UnixSocketAddr),
}

impl SocketAddr {
    /// The IP address and port, when this is an internet address.
    pub fn as_inet(&self) -> Option<&InetSocketAddr> {
        match self {
            SocketAddr::Inet(a) => Some(a),
            SocketAddr::Unix(_) => None,
        }
    }

    /// The Unix socket address, when this is one.
    pub fn as_unix(&self) -> Option<&UnixSocketAddr> {
        match self {
            SocketAddr::Inet(_) => None,
            SocketAddr::Unix(a) => Some(a),
        }
    }

    /// Change the port of an internet address (no-op for Unix sockets).
    pub fn set_port(&mut self, port: u16) {
        if let SocketAddr::Inet(a) = self {
            a.set_port(port)
        }
    }

    /// Look up the peer (`peer_addr == true`) or local address of the open
    /// socket `fd`. `None` when the fd is not a connected socket.
    pub fn from_raw_fd(fd: RawFd, peer_addr: bool) -> Option<SocketAddr> {
        let storage = if peer_addr {
            getpeername::<SockaddrStorage>(fd)
        } else {
            getsockname::<SockaddrStorage>(fd)
        }
        .ok()?;
        from_storage(&storage)
    }
}

/// An unnamed Unix socket address: std has no constructor for one, so take
/// it from an unbound socket once.
static UNNAMED_UNIX: Lazy<Option<UnixSocketAddr>> = Lazy::new(|| {
    std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.local_addr())
        .ok()
});

fn from_storage(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::Inet(InetSocketAddr::V4((*v4).into())));
    }
    if let Some(v6) = storage.as_sockaddr_in6() {
        return Some(SocketAddr::Inet(InetSocketAddr::V6((*v6).into())));
    }
    let unix = storage.as_unix_addr()?;
    if let Some(path) = unix.path() {
        return UnixSocketAddr::from_pathname(path)
            .ok()
            .map(SocketAddr::Unix);
    }
    #[cfg(target_os = "linux")]
    if let Some(name) = unix.as_abstract() {
        use std::os::linux::net::SocketAddrExt;
        return UnixSocketAddr::from_abstract_name(name)
            .ok()
            .map(SocketAddr::Unix);
    }
    // unnamed sockets are legit (e.g. the client side of a UDS connection)
    let _ = storage.family();
    UNNAMED_UNIX.clone().map(SocketAddr::Unix)
}

impl fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddr::Inet(a) => write!(f, "{a}"),
            SocketAddr::Unix(a) => match a.as_pathname() {
                Some(p) => write!(f, "{}", p.display()),
                None => f.write_str("unnamed"),
            },
        }
    }
}

impl PartialEq for SocketAddr {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SocketAddr::Inet(a), SocketAddr::Inet(b)) => a == b,
            (SocketAddr::Unix(a), SocketAddr::Unix(b)) => a.as_pathname() == b.as_pathname(),
            _ => false,
        }
    }
}

impl Eq for SocketAddr {}

impl PartialOrd for SocketAddr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Internet addresses sort before Unix socket addresses; Unix addresses sort
/// by path (unnamed first), consistent with `Eq`.
impl Ord for SocketAddr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self, other) {
            (SocketAddr::Inet(a), SocketAddr::Inet(b)) => a.cmp(b),
            (SocketAddr::Inet(_), SocketAddr::Unix(_)) => Ordering::Less,
            (SocketAddr::Unix(_), SocketAddr::Inet(_)) => Ordering::Greater,
            (SocketAddr::Unix(a), SocketAddr::Unix(b)) => a.as_pathname().cmp(&b.as_pathname()),
        }
    }
}

impl Hash for SocketAddr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            SocketAddr::Inet(a) => {
                0u8.hash(state);
                a.hash(state)
            }
            SocketAddr::Unix(a) => {
                1u8.hash(state);
                a.as_pathname().hash(state)
            }
        }
    }
}

impl FromStr for SocketAddr {
    type Err = Box<Error>;

    /// `"1.2.3.4:80"` / `"[::1]:80"` parse as internet addresses; `"unix:/path"`
    /// (or a bare absolute path) as a Unix socket path.
    fn from_str(s: &str) -> Result<Self> {
        if let Some(path) = s.strip_prefix("unix:") {
            return unix_path(path);
        }
        if s.starts_with('/') {
            return unix_path(s);
        }
        s.parse::<InetSocketAddr>()
            .map(SocketAddr::Inet)
            .map_err(|e| Error::because(SocketError, format!("invalid address {s:?}"), e))
    }
}

fn unix_path(path: &str) -> Result<SocketAddr> {
    UnixSocketAddr::from_pathname(path)
        .map(SocketAddr::Unix)
        .map_err(|e| Error::because(SocketError, format!("invalid unix path {path:?}"), e))
}

impl From<InetSocketAddr> for SocketAddr {
    fn from(a: InetSocketAddr) -> Self {
        SocketAddr::Inet(a)
    }
}

impl From<UnixSocketAddr> for SocketAddr {
    fn from(a: UnixSocketAddr) -> Self {
        SocketAddr::Unix(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(a.to_string(), "127.0.0.1:8080");
        assert_eq!(a.as_inet().unwrap().port(), 8080);
        assert!(a.as_unix().is_none());
        let u: SocketAddr = "unix:/tmp/x.sock".parse().unwrap();
        assert_eq!(u.to_string(), "/tmp/x.sock");
        assert!(u.as_unix().is_some());
        assert_eq!(u, "/tmp/x.sock".parse::<SocketAddr>().unwrap());
        assert_ne!(a, u);
        let b: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let v: SocketAddr = "unix:/tmp/a.sock".parse().unwrap();
        let mut all = vec![u.clone(), b.clone(), v.clone(), a.clone()];
        all.sort();
        assert_eq!(all, vec![a, b, v, u]);
        assert!("nonsense".parse::<SocketAddr>().is_err());
        let mut b: SocketAddr = "[::1]:1".parse().unwrap();
        b.set_port(2);
        assert_eq!(b.to_string(), "[::1]:2");
    }

    #[test]
    fn from_fd() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        use std::os::unix::io::AsRawFd;
        let peer = SocketAddr::from_raw_fd(c.as_raw_fd(), true).unwrap();
        assert_eq!(peer.as_inet(), Some(&l.local_addr().unwrap()));
        assert!(SocketAddr::from_raw_fd(-1, true).is_none());
    }
}
