//! Socket options and connect helpers for L4 streams.

use pingora_error::{Error, ErrorType::*, OrErr, Result};
use socket2::{SockRef, TcpKeepalive as SockKeepalive};
use std::fmt;
use std::io::ErrorKind;
use std::net::SocketAddr as InetSocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream, UnixStream};

/// TCP keepalive probing settings, to detect dead peers on idle connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped.
    pub count: usize,
    /// How long sent data may stay unacknowledged before the connection is
    /// dropped (`TCP_USER_TIMEOUT`); zero leaves the system default.
    #[cfg(target_os = "linux")]
    pub user_timeout: Duration,
}

impl fmt::Display for TcpKeepalive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}/{:?}/{}", self.idle, self.interval, self.count)
    }
}

/// Turn TCP keepalive on for `stream` with the given settings.
pub fn set_tcp_keepalive(stream: &TcpStream, ka: &TcpKeepalive) -> Result<()> {
    let sock = SockRef::from(stream);
    let mut conf = SockKeepalive::new()
        .with_time(ka.idle)
        .with_interval(ka.interval);
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    {
        let retries = u32::try_from(ka.count).unwrap_or(u32::MAX);
        conf = conf.with_retries(retries);
    }
    sock.set_tcp_keepalive(&conf)
        .or_err(SocketError, "failed to set TCP keepalive")?;
    #[cfg(target_os = "linux")]
    if !ka.user_timeout.is_zero() {
        sock.set_tcp_user_timeout(Some(ka.user_timeout))
            .or_err(SocketError, "failed to set TCP_USER_TIMEOUT")?;
    }
    Ok(())
}

fn connect_error(e: std::io::Error, what: String) -> Box<Error> {
    let etype = match e.kind() {
        ErrorKind::ConnectionRefused => ConnectRefused,
        ErrorKind::TimedOut => ConnectTimedout,
        _ if e.raw_os_error() == Some(libc::ENETUNREACH)
            || e.raw_os_error() == Some(libc::EHOSTUNREACH) =>
        {
            ConnectNoRoute
        }
        _ => ConnectError,
    };
    Error::because(etype, what, e)
}

/// Open a TCP connection to `addr`, optionally from the local address
/// `bind_to`. Failures carry ConnectRefused / ConnectNoRoute / ConnectError /
/// BindError so callers can decide about retries.
pub async fn connect(addr: &InetSocketAddr, bind_to: Option<&InetSocketAddr>) -> Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .or_err(SocketError, "failed to create socket")?;
    if let Some(local) = bind_to {
        socket
            .bind(*local)
            .or_err_with(BindError, || format!("failed to bind to {local}"))?;
    }
    socket
        .connect(*addr)
        .await
        .map_err(|e| connect_error(e, format!("connecting to {addr}")))
}

/// Open a Unix domain socket connection to `path`.
pub async fn connect_uds(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path)
        .await
        .map_err(|e| connect_error(e, format!("connecting to {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_and_keepalive() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let s = connect(&addr, None).await.unwrap();
        let ka = TcpKeepalive {
            idle: Duration::from_secs(30),
            interval: Duration::from_secs(5),
            count: 3,
            #[cfg(target_os = "linux")]
            user_timeout: Duration::from_secs(10),
        };
        set_tcp_keepalive(&s, &ka).unwrap();
        assert!(SockRef::from(&s).keepalive().unwrap());
        drop(l);
        // not the port just released: a concurrent test may have been handed it
        let (_held, refusing) = crate::protocols::l4::refusing_socket();
        let e = connect(&refusing, None).await.unwrap_err();
        assert_eq!(e.etype(), &ConnectRefused);
    }
}
