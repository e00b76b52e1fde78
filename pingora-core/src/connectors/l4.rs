//! Establishing L4 (TCP or Unix socket) connections to peers.

use super::bind_to::apply_port_range;
pub use super::bind_to::BindTo;
use crate::protocols::l4::socket::SocketAddr;
use crate::protocols::l4::stream::Stream;
use crate::upstreams::peer::Peer;
use async_trait::async_trait;
use log::debug;
use pingora_error::{Error, ErrorSource, ErrorType, ErrorType::*, OkOrErr, Result};
use std::future::Future;
use std::io;
use std::net::SocketAddr as InetSocketAddr;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream, UnixStream};

/// A custom way to establish L4 connections (e.g. through a tunnel), set per
/// peer in [`PeerOptions::custom_l4`](crate::upstreams::peer::PeerOptions).
#[async_trait]
pub trait Connect: std::fmt::Debug {
    /// Connect to `addr`.
    async fn connect(&self, addr: &SocketAddr) -> Result<Stream>;
}

/// Run `fut` within `limit` (if any); running out is a retryable
/// `ConnectTimedout` upstream error.
pub(crate) async fn within<T, F, D>(limit: Option<Duration>, what: D, fut: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
    D: FnOnce() -> String,
{
    let Some(limit) = limit else {
        return fut.await;
    };
    match pingora_timeout::timeout(limit, fut).await {
        Ok(res) => res,
        Err(_) => {
            let mut e = Error::explain(ConnectTimedout, format!("{} (timeout {limit:?})", what()));
            e.esource = ErrorSource::Upstream;
            e.set_retry(true);
            Err(e)
        }
    }
}

/// Classify an OS connect failure. Failures of the connection attempt itself
/// are retryable (another attempt, or another upstream, may succeed).
fn connect_failure(e: io::Error, context: String) -> Box<Error> {
    let etype = match e.kind() {
        io::ErrorKind::ConnectionRefused => ConnectRefused,
        io::ErrorKind::TimedOut => ConnectTimedout,
        _ => match e.raw_os_error() {
            Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) => ConnectNoRoute,
            _ => ConnectError,
        },
    };
    let mut err = Error::because(etype, context, e);
    err.esource = ErrorSource::Upstream;
    err.set_retry(true);
    err
}

/// A local (non-retryable) failure while preparing the socket.
fn local_failure(etype: ErrorType, e: io::Error, context: String) -> Box<Error> {
    let mut err = Error::because(etype, context, e);
    err.esource = ErrorSource::Internal;
    err
}

/// Create the TCP socket for `peer`, with the peer's socket options applied
/// before connecting (some, like the receive buffer, only work then).
fn tcp_socket<P: Peer>(
    peer: &P,
    addr: &InetSocketAddr,
    bind_to: Option<&BindTo>,
) -> Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| local_failure(SocketError, e, "failed to create TCP socket".into()))?;
    if let Some(size) = peer.tcp_recv_buf() {
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        socket
            .set_recv_buffer_size(size)
            .map_err(|e| local_failure(SocketError, e, "failed to set SO_RCVBUF".into()))?;
    }
    let sock = socket2::SockRef::from(&socket);
    if let Some(dscp) = peer.dscp() {
        // DSCP is the upper six bits of the TOS / traffic class byte.
        let tos = u32::from(dscp) << 2;
        let res = if addr.is_ipv4() {
            sock.set_tos(tos)
        } else {
            sock.set_tclass_v6(tos)
        };
        res.map_err(|e| local_failure(SocketError, e, "failed to set DSCP".into()))?;
    }
    #[cfg(target_os = "linux")]
    if peer.tcp_fast_open() {
        set_fastopen_connect(&socket)
            .map_err(|e| local_failure(SocketError, e, "failed to enable TCP fast open".into()))?;
    }
    if let Some(hook) = peer.upstream_tcp_sock_tweak_hook() {
        hook(&socket)?;
    }
    if let Some(range) = bind_to.and_then(BindTo::port_range) {
        apply_port_range(&socket, range)
            .map_err(|e| local_failure(SocketError, e, "failed to set source port range".into()))?;
    }
    if let Some(local) = bind_to.and_then(|b| b.addr) {
        socket
            .bind(local)
            .map_err(|e| local_failure(BindError, e, format!("failed to bind to {local}")))?;
    }
    Ok(socket)
}

/// Enable `TCP_FASTOPEN_CONNECT`: the first write is sent with the SYN.
#[cfg(target_os = "linux")]
fn set_fastopen_connect(socket: &TcpSocket) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: the fd is owned by `socket` and stays open for this call; the
    // option value points to a live c_int whose size is passed along.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_FASTOPEN_CONNECT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether a failure means the source port range ran out.
fn ports_exhausted(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse
    )
}

async fn connect_tcp<P: Peer>(
    peer: &P,
    addr: &InetSocketAddr,
    bind_to: Option<&BindTo>,
) -> Result<TcpStream> {
    let attempt = async {
        let socket = tcp_socket(peer, addr, bind_to)?;
        match socket.connect(*addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) if !(ports_exhausted(&e) && bind_to.is_some_and(BindTo::will_fallback)) => {
                return Err(connect_failure(e, format!("failed to connect to {peer}")));
            }
            Err(e) => debug!("source port range exhausted ({e}), retrying without it"),
        }
        let any_port = bind_to.and_then(|b| b.addr).map(BindTo::new);
        tcp_socket(peer, addr, any_port.as_ref())?
            .connect(*addr)
            .await
            .map_err(|e| connect_failure(e, format!("failed to connect to {peer}")))
    };
    within(
        peer.connection_timeout(),
        || format!("connecting to {peer}"),
        attempt,
    )
    .await
}

async fn connect_unix<P: Peer>(peer: &P, path: &std::path::Path) -> Result<UnixStream> {
    let attempt = async {
        UnixStream::connect(path)
            .await
            .map_err(|e| connect_failure(e, format!("failed to connect to {peer}")))
    };
    within(
        peer.connection_timeout(),
        || format!("connecting to {peer}"),
        attempt,
    )
    .await
}

/// Open an L4 connection to `peer` (optionally from the local address
/// `bind_to`), honouring its connect timeout, socket options, TCP keepalive,
/// and custom connector. `TCP_NODELAY` is always set. Peers with a
/// [`Proxy`](crate::upstreams::peer::Proxy) are reached through an HTTP
/// CONNECT tunnel via the proxy's Unix socket.
///
/// Connection failures are `ConnectRefused`, `ConnectTimedout`,
/// `ConnectNoRoute` or `ConnectError` from the upstream, marked retryable;
/// local failures (`SocketError`, `BindError`) are not retryable.
pub async fn connect<P>(peer: &P, bind_to: Option<BindTo>) -> Result<Stream>
where
    P: Peer + Send + Sync,
{
    if let Some(proxy) = peer.get_proxy() {
        let tunnel = super::proxy::connect(peer, proxy);
        return within(
            peer.connection_timeout(),
            || format!("establishing CONNECT tunnel to {peer}"),
            tunnel,
        )
        .await;
    }
    let custom = peer.get_peer_options().and_then(|o| o.custom_l4.as_ref());
    let mut stream: Stream = match (custom, peer.address()) {
        (Some(custom), addr) => {
            let attempt = custom.connect(addr);
            within(
                peer.connection_timeout(),
                || format!("connecting to {peer}"),
                attempt,
            )
            .await?
        }
        (None, SocketAddr::Inet(addr)) => connect_tcp(peer, addr, bind_to.as_ref()).await?.into(),
        (None, SocketAddr::Unix(addr)) => {
            let path = addr
                .as_pathname()
                .or_err(ConnectError, "peer Unix socket address has no path")?;
            connect_unix(peer, path).await?.into()
        }
    };
    if let Some(ka) = peer.tcp_keepalive() {
        stream.set_keepalive(ka)?;
    }
    stream.set_nodelay()?;
    debug!("connected to {peer}");
    Ok(stream)
}

/// The local binding for a connection to `peer`: the peer's own
/// [`BindTo`], with its address (when unset) picked at random from the
/// connector's addresses of the peer's IP family.
pub(crate) fn bind_to_random<P: Peer>(
    peer: &P,
    v4_list: &[InetSocketAddr],
    v6_list: &[InetSocketAddr],
) -> Option<BindTo> {
    let mut bind_to = peer.bind_to().cloned();
    if bind_to.as_ref().is_some_and(|b| b.addr.is_some()) {
        return bind_to;
    }
    let candidates = match peer.address() {
        SocketAddr::Inet(InetSocketAddr::V4(_)) => v4_list,
        SocketAddr::Inet(InetSocketAddr::V6(_)) => v6_list,
        SocketAddr::Unix(_) => return None,
    };
    let picked = match candidates {
        [] => None,
        [one] => Some(*one),
        many => {
            // A randomly keyed hasher is a cheap, dependency-free random pick.
            use std::hash::{BuildHasher, Hasher};
            let r = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            many.get((r % many.len() as u64) as usize).copied()
        }
    };
    if let Some(addr) = picked {
        bind_to.get_or_insert_with(BindTo::default).addr = Some(addr);
    }
    bind_to
}

#[cfg(test)]
#[path = "l4_tests.rs"]
mod tests;
