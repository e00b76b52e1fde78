//! L4 listening endpoints: binding TCP and Unix sockets and accepting from
//! them.

use log::{debug, warn};
use pingora_error::{
    Error,
    ErrorType::{AcceptError, BindError},
    OkOrErr, OrErr, Result,
};
use std::fs::Permissions;
use std::io::ErrorKind;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener};

pub use crate::protocols::l4::stream::Stream;
use crate::protocols::TcpKeepalive;
use crate::server::ListenFds;

/// How often and how long binding a TCP address still in use is retried
/// (e.g. while an old process is releasing it).
const TCP_BIND_MAX_TRY: usize = 30;
const TCP_BIND_TRY_STEP: Duration = Duration::from_secs(1);
/// The listen backlog unless [`TcpSocketOptions::backlog`] says otherwise.
const DEFAULT_BACKLOG: u32 = 65535;
/// The mode of a Unix socket file unless the caller gives one: everyone may
/// connect.
const DEFAULT_UDS_MODE: u32 = 0o666;

/// The address of a listening endpoint.
#[derive(Clone, Debug)]
pub enum ServerAddress {
    /// A TCP address such as `0.0.0.0:80` or `[::1]:8080`, with its options.
    Tcp(String, Option<TcpSocketOptions>),
    /// A Unix socket path, with the socket file's permissions
    /// (default `0o666`).
    Uds(String, Option<Permissions>),
}

impl AsRef<str> for ServerAddress {
    fn as_ref(&self) -> &str {
        match self {
            ServerAddress::Tcp(addr, _) => addr,
            ServerAddress::Uds(path, _) => path,
        }
    }
}

impl ServerAddress {
    fn tcp_sock_opts(&self) -> Option<&TcpSocketOptions> {
        match self {
            ServerAddress::Tcp(_, opt) => opt.as_ref(),
            ServerAddress::Uds(..) => None,
        }
    }
}

/// Options of a TCP listening socket and of the connections it accepts.
#[non_exhaustive]
#[derive(Clone, Debug, Default)]
pub struct TcpSocketOptions {
    /// `IPV6_V6ONLY`: with `true`, a socket bound to `[::]` does not also
    /// accept IPv4.
    pub ipv6_only: Option<bool>,
    /// Enable TCP Fast Open with this queue length for pending requests.
    pub tcp_fastopen: Option<usize>,
    /// TCP keepalive for accepted connections.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// DSCP value set on the packets of accepted connections.
    pub dscp: Option<u8>,
    /// `SO_REUSEPORT`: let several sockets (processes) bind the same address
    /// and have the kernel balance connections among them.
    pub so_reuseport: Option<bool>,
    /// The listen backlog (default 65535, capped by `net.core.somaxconn`).
    pub backlog: Option<u32>,
}

/// A bound listening socket.
#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }
}

fn set_dscp(fd: &impl std::os::fd::AsFd, dscp: u8, v6: bool) -> std::io::Result<()> {
    let sock = socket2::SockRef::from(fd);
    // DSCP is the upper 6 bits of the TOS / traffic class byte
    let tos = u32::from(dscp) << 2;
    if v6 {
        sock.set_tclass_v6(tos)
    } else {
        sock.set_tos(tos)
    }
}

fn set_tcp_fastopen(fd: RawFd, backlog: usize) -> std::io::Result<()> {
    let value = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
    // SAFETY: fd is an open socket and value outlives the call
    let ret = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_FASTOPEN,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Options applied before `bind()`.
fn apply_tcp_socket_options(
    sock: &TcpSocket,
    addr: &SocketAddr,
    opt: Option<&TcpSocketOptions>,
) -> Result<()> {
    let Some(opt) = opt else {
        return Ok(());
    };
    let sock_ref = socket2::SockRef::from(sock);
    if let (Some(v6only), SocketAddr::V6(_)) = (opt.ipv6_only, addr) {
        sock_ref
            .set_only_v6(v6only)
            .or_err(BindError, "failed to set IPV6_V6ONLY")?;
    }
    if let Some(reuse) = opt.so_reuseport {
        sock_ref
            .set_reuse_port(reuse)
            .or_err(BindError, "failed to set SO_REUSEPORT")?;
    }
    if let Some(backlog) = opt.tcp_fastopen {
        set_tcp_fastopen(sock.as_raw_fd(), backlog)
            .or_err(BindError, "failed to set TCP_FASTOPEN")?;
    }
    if let Some(dscp) = opt.dscp {
        set_dscp(sock, dscp, addr.is_ipv6()).or_err(BindError, "failed to set DSCP")?;
    }
    Ok(())
}

async fn bind_tcp(addr: &str, opt: Option<&TcpSocketOptions>) -> Result<Listener> {
    let backlog = opt.and_then(|o| o.backlog).unwrap_or(DEFAULT_BACKLOG);
    let mut tries = 0;
    loop {
        let sock_addr = addr
            .to_socket_addrs()
            .or_err_with(BindError, || format!("invalid listen address {addr}"))?
            .next()
            .or_err_with(BindError, || {
                format!("listen address {addr} resolves to nothing")
            })?;
        let socket = match sock_addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .or_err_with(BindError, || format!("cannot create a socket for {addr}"))?;
        // allow rebinding while old connections of a previous server linger
        socket
            .set_reuseaddr(true)
            .or_err_with(BindError, || format!("cannot set SO_REUSEADDR for {addr}"))?;
        apply_tcp_socket_options(&socket, &sock_addr, opt)
            .map_err(|e| e.more_context(format!("listening on {addr}")))?;
        match socket.bind(sock_addr) {
            Ok(()) => {
                let l = socket
                    .listen(backlog)
                    .or_err_with(BindError, || format!("listen() failed on {addr}"))?;
                return Ok(Listener::Tcp(l));
            }
            Err(e) if e.kind() == ErrorKind::AddrInUse && tries + 1 < TCP_BIND_MAX_TRY => {
                tries += 1;
                warn!("{addr} is in use, retrying bind ({tries}/{TCP_BIND_MAX_TRY})");
                tokio::time::sleep(TCP_BIND_TRY_STEP).await;
            }
            Err(e) => return Error::e_because(BindError, format!("bind() failed on {addr}"), e),
        }
    }
}

fn set_uds_perms(path: &str, perm: Option<Permissions>) -> Result<()> {
    let perm = perm.unwrap_or_else(|| Permissions::from_mode(DEFAULT_UDS_MODE));
    std::fs::set_permissions(path, perm)
        .or_err_with(BindError, || format!("cannot set permissions of {path}"))
}

fn bind_uds(path: &str, perm: Option<Permissions>) -> Result<Listener> {
    // a socket file left by a previous process would make bind() fail
    match std::fs::remove_file(path) {
        Ok(()) => debug!("removed stale socket file {path}"),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => warn!("cannot remove old socket file {path}: {e}"),
    }
    let std_listener = std::os::unix::net::UnixListener::bind(path)
        .or_err_with(BindError, || format!("bind() failed on {path}"))?;
    set_uds_perms(path, perm)?;
    let sock = socket2::Socket::from(std_listener);
    // listen() again to raise the backlog from std's default
    sock.listen(DEFAULT_BACKLOG as i32)
        .or_err_with(BindError, || format!("listen() failed on {path}"))?;
    sock.set_nonblocking(true)
        .or_err_with(BindError, || format!("cannot make {path} non-blocking"))?;
    let l = UnixListener::from_std(sock.into()).or_err_with(BindError, || {
        format!("cannot register {path} with the runtime")
    })?;
    Ok(Listener::Unix(l))
}

/// Duplicate a listening socket recorded in the process's fd table, so the
/// new listener owns its own descriptor (closing it never closes the
/// recorded one).
fn dup_fd(fd: RawFd, addr: &str) -> Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) creates a new descriptor or fails
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Error::e_because(
            BindError,
            format!("cannot reuse the recorded socket of {addr}"),
            std::io::Error::last_os_error(),
        );
    }
    // SAFETY: `new` was just created and nothing else owns it
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Check that a recorded (e.g. handed-over) socket is a listening socket of
/// the kind `addr` asks for, so that a changed configuration cannot make a
/// TCP endpoint accept on a Unix socket or on a connected stream.
fn check_adopted(addr: &ServerAddress, fd: &OwnedFd) -> Result<()> {
    let sock = socket2::SockRef::from(fd);
    let listening = sock.is_listener().or_err_with(BindError, || {
        format!("the recorded socket of {} is not usable", addr.as_ref())
    })?;
    let local = sock.local_addr().or_err_with(BindError, || {
        format!("the recorded socket of {} is not usable", addr.as_ref())
    })?;
    let kind_ok = match addr {
        ServerAddress::Tcp(..) => local.as_socket().is_some(),
        ServerAddress::Uds(..) => local.is_unix(),
    };
    if !listening || !kind_ok {
        return Error::e_explain(
            BindError,
            format!(
                "the recorded socket of {} is not a listening socket of that kind",
                addr.as_ref()
            ),
        );
    }
    Ok(())
}

/// Adopt the listening socket recorded for `addr`.
fn from_raw_fd(addr: &ServerAddress, fd: RawFd) -> Result<Listener> {
    let owned = dup_fd(fd, addr.as_ref())?;
    check_adopted(addr, &owned)?;
    match addr {
        ServerAddress::Tcp(a, _) => {
            let std_l = std::net::TcpListener::from(owned);
            std_l
                .set_nonblocking(true)
                .or_err_with(BindError, || format!("cannot make {a} non-blocking"))?;
            let l = TcpListener::from_std(std_l).or_err_with(BindError, || {
                format!("cannot register {a} with the runtime")
            })?;
            Ok(Listener::Tcp(l))
        }
        ServerAddress::Uds(p, perm) => {
            let std_l = std::os::unix::net::UnixListener::from(owned);
            set_uds_perms(p, perm.clone())?;
            std_l
                .set_nonblocking(true)
                .or_err_with(BindError, || format!("cannot make {p} non-blocking"))?;
            let l = UnixListener::from_std(std_l).or_err_with(BindError, || {
                format!("cannot register {p} with the runtime")
            })?;
            Ok(Listener::Unix(l))
        }
    }
}

async fn bind(addr: &ServerAddress) -> Result<Listener> {
    match addr {
        ServerAddress::Tcp(a, opt) => bind_tcp(a, opt.as_ref()).await,
        ServerAddress::Uds(p, perm) => bind_uds(p, perm.clone()),
    }
}

/// A listening socket with the settings to apply to what it accepts.
#[derive(Clone, Debug)]
pub(crate) struct ListenerEndpoint {
    addr: ServerAddress,
    listener: Arc<Listener>,
}

impl ListenerEndpoint {
    /// Bind `addr`, or adopt the socket recorded for it in `fds`; a newly
    /// bound socket is recorded there.
    pub(crate) async fn listen(addr: ServerAddress, fds: Option<ListenFds>) -> Result<Self> {
        let listener = match fds {
            Some(fds) => {
                let mut table = fds.lock().await;
                match table.get(addr.as_ref()) {
                    Some(fd) => {
                        debug!("listening on {} with a recorded socket", addr.as_ref());
                        let l = from_raw_fd(&addr, *fd)?;
                        table.mark_adopted(addr.as_ref());
                        l
                    }
                    None => {
                        let l = bind(&addr).await?;
                        // the table keeps its own copy: it outlives this
                        // listener until the server closes it, and can be
                        // handed to a new process on upgrade
                        let copy = dup_fd(l.as_raw_fd(), addr.as_ref())?;
                        table.add(addr.as_ref().to_string(), copy.into_raw_fd());
                        table.mark_adopted(addr.as_ref());
                        l
                    }
                }
            }
            None => bind(&addr).await?,
        };
        Ok(ListenerEndpoint {
            addr,
            listener: Arc::new(listener),
        })
    }

    /// The address as configured.
    pub(crate) fn as_str(&self) -> &str {
        self.addr.as_ref()
    }

    /// The bound TCP address (resolves a port 0), `None` for Unix sockets.
    pub(crate) fn tcp_local_addr(&self) -> Option<SocketAddr> {
        match self.listener.as_ref() {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(_) => None,
        }
    }

    /// Per-connection options of a TCP endpoint.
    fn apply_stream_settings(&self, tcp: TcpStream) -> Result<Stream> {
        let opt = self.addr.tcp_sock_opts();
        if let Some(dscp) = opt.and_then(|o| o.dscp) {
            let v6 = tcp.local_addr().is_ok_and(|a| a.is_ipv6());
            set_dscp(&tcp, dscp, v6).or_err(AcceptError, "cannot set DSCP")?;
        }
        let mut stream = Stream::from(tcp);
        stream.set_nodelay()?;
        if let Some(ka) = opt.and_then(|o| o.tcp_keepalive.as_ref()) {
            stream.set_keepalive(ka)?;
        }
        Ok(stream)
    }

    /// Wait for the next connection.
    pub(crate) async fn accept(&self) -> Result<Stream> {
        match self.listener.as_ref() {
            Listener::Tcp(l) => {
                let (tcp, _) = l.accept().await.or_err_with(AcceptError, || {
                    format!("accept() failed on {}", self.as_str())
                })?;
                self.apply_stream_settings(tcp)
            }
            Listener::Unix(l) => {
                let (uds, _) = l.accept().await.or_err_with(AcceptError, || {
                    format!("accept() failed on {}", self.as_str())
                })?;
                Ok(uds.into())
            }
        }
    }
}
