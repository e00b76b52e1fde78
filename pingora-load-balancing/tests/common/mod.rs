//! Local listeners shared by the health check tests. Each test binary uses
//! a subset, hence the dead-code allowance.
#![allow(dead_code)]

use pingora_load_balancing::Backend;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

pub fn backend(addr: SocketAddr) -> Backend {
    Backend::new(&addr.to_string()).expect("valid address")
}

/// A loopback port that refuses connections until [`ClosedPort::listen`].
///
/// The socket stays bound without listening, so no test running alongside
/// can be handed the same port in the meantime (as it could if the port were
/// bound and released).
pub struct ClosedPort {
    socket: TcpSocket,
    pub addr: SocketAddr,
}

impl ClosedPort {
    /// Starts accepting on the very port that refused so far.
    pub fn listen(self) -> TcpListener {
        self.socket.listen(64).expect("listen")
    }
}

pub fn closed_port() -> ClosedPort {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let addr = socket.local_addr().expect("bound");
    ClosedPort { socket, addr }
}

/// Accepts connections and holds them open without a word.
pub async fn silent_listener() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

/// Answers every request on a connection with `status`, keeping the
/// connection alive; counts connections accepted.
pub async fn http_responder(status: u16) -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, status));
        }
    });
    (addr, connections, task)
}

async fn serve(mut stream: TcpStream, status: u16) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        // one request: read up to the end of its header
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.clear();
        let resp = format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 2\r\n\r\nok");
        if stream.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}
