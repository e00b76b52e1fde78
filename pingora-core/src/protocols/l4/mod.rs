//! Layer 4: TCP and Unix domain socket connections.

pub mod ext;
pub mod socket;
pub mod stream;

/// A loopback TCP socket bound to a free port but never listening, for tests that need an
/// address that refuses connections. While it lives, no concurrent test can be handed the port
/// (as one could if the port were bound and released) and the kernel never picks it as a
/// source port.
#[cfg(test)]
pub(crate) fn refusing_socket() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(([127, 0, 0, 1], 0).into()).expect("bind");
    let addr = socket.local_addr().expect("addr");
    (socket, addr)
}
