//! [`BindTo`]: the local side of outgoing connections.

use pingora_error::{Error, ErrorType::InternalError, Result};
use std::net::SocketAddr;

/// Where outgoing connections bind locally: a source address and,
/// optionally, the range of source ports the kernel may pick from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BindTo {
    /// Local address (port 0: any port); `None` lets the system choose.
    pub addr: Option<SocketAddr>,
    port_range: Option<(u16, u16)>,
    fallback: bool,
}

impl BindTo {
    /// Bind to `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        BindTo {
            addr: Some(addr),
            ..Default::default()
        }
    }

    /// Restrict source ports to `lower..=upper` (Linux 6.3+
    /// `IP_LOCAL_PORT_RANGE`; ignored where unsupported). `None` or
    /// `Some((0, 0))` removes the restriction. Fails when `lower > upper`.
    pub fn set_port_range(&mut self, range: Option<(u16, u16)>) -> Result<()> {
        match range {
            None | Some((0, 0)) => self.port_range = None,
            Some((lower, upper)) if lower <= upper => self.port_range = Some((lower, upper)),
            Some((lower, upper)) => {
                return Error::e_explain(
                    InternalError,
                    format!("invalid port range: {lower} > {upper}"),
                )
            }
        }
        Ok(())
    }

    /// When the port range is exhausted, retry once without it instead of
    /// failing.
    pub fn set_fallback(&mut self, fallback: bool) {
        self.fallback = fallback;
    }

    /// The configured source port range.
    pub fn port_range(&self) -> Option<(u16, u16)> {
        self.port_range
    }

    /// Whether an exhausted port range falls back to any port.
    pub fn will_fallback(&self) -> bool {
        self.fallback && self.port_range.is_some()
    }
}

/// Apply `IP_LOCAL_PORT_RANGE` to `socket`. Kernels without the option
/// ignore the range (as documented on [`BindTo::set_port_range`]).
#[cfg(target_os = "linux")]
pub(crate) fn apply_port_range(
    socket: &tokio::net::TcpSocket,
    (lower, upper): (u16, u16),
) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // Not exported by libc for every target yet; value from linux/in.h.
    const IP_LOCAL_PORT_RANGE: libc::c_int = 51;
    let value: u32 = (u32::from(upper) << 16) | u32::from(lower);
    // SAFETY: the fd is owned by `socket` and open for this call; the option
    // value points to a live u32 whose size is passed along.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            IP_LOCAL_PORT_RANGE,
            (&value as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOPROTOOPT) {
        log::debug!("IP_LOCAL_PORT_RANGE unsupported by this kernel, ignoring");
        return Ok(());
    }
    Err(err)
}

/// Port ranges are a Linux feature; elsewhere they are ignored.
#[cfg(not(target_os = "linux"))]
pub(crate) fn apply_port_range(
    _socket: &tokio::net::TcpSocket,
    _range: (u16, u16),
) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_validation() {
        let mut b = BindTo::default();
        assert!(b.set_port_range(Some((2000, 1000))).is_err());
        b.set_port_range(Some((1000, 2000))).expect("valid");
        assert_eq!(b.port_range(), Some((1000, 2000)));
        b.set_fallback(true);
        assert!(b.will_fallback());
        b.set_port_range(Some((0, 0))).expect("reset");
        assert_eq!(b.port_range(), None);
        assert!(!b.will_fallback());
    }
}
