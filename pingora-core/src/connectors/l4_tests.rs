use super::*;
use crate::upstreams::peer::{BasicPeer, HttpPeer};
use std::os::unix::io::AsRawFd;
use pingora_error::OrErr;
use tokio::net::TcpListener;

async fn local_listener() -> (TcpListener, InetSocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    (l, addr)
}

#[tokio::test]
async fn connects_tcp_with_nodelay() {
    let (l, addr) = local_listener().await;
    let stream = connect(&BasicPeer::new_from_inet(addr), None)
        .await
        .expect("connect");
    let (_accepted, from) = l.accept().await.expect("accept");
    let sock = socket2::SockRef::from(&stream);
    assert!(sock.nodelay().expect("nodelay"));
    assert_eq!(sock.local_addr().expect("local").as_socket(), Some(from));
}

#[tokio::test]
async fn applies_socket_options() {
    let (_l, addr) = local_listener().await;
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.tcp_keepalive = Some(crate::protocols::TcpKeepalive {
        idle: Duration::from_secs(60),
        interval: Duration::from_secs(5),
        count: 3,
        #[cfg(target_os = "linux")]
        user_timeout: Duration::ZERO,
    });
    peer.options.tcp_recv_buf = Some(64 * 1024);
    peer.options.dscp = Some(46);
    peer.options.bind_to = Some("127.0.0.1:0".parse().expect("literal"));
    let stream = connect(&peer, bind_to_random(&peer, &[], &[]))
        .await
        .expect("connect");
    let sock = socket2::SockRef::from(&stream);
    assert!(sock.keepalive().expect("keepalive"));
    assert_eq!(sock.tos().expect("tos"), 46 << 2);
    assert!(sock.recv_buffer_size().expect("rcvbuf") >= 64 * 1024);
}

#[tokio::test]
async fn refused_is_retryable_upstream_error() {
    let (l, addr) = local_listener().await;
    drop(l);
    let e = connect(&BasicPeer::new_from_inet(addr), None)
        .await
        .expect_err("nothing listens");
    assert_eq!(e.etype(), &ConnectRefused);
    assert_eq!(e.esource(), &ErrorSource::Upstream);
    assert!(e.retry());
}

#[tokio::test]
async fn within_times_out_pending_future() {
    let e = within(
        Some(Duration::from_millis(10)),
        || "waiting".to_string(),
        std::future::pending::<Result<()>>(),
    )
    .await
    .expect_err("never completes");
    assert_eq!(e.etype(), &ConnectTimedout);
    assert!(e.retry());
    assert!(within(None, String::new, async { Ok(3) }).await.is_ok());
}

/// A loopback listener whose accept queue is full, so further connects hang
/// in SYN_SENT. Returns the clients that fill the queue (kept alive) or None
/// when the platform completes connects regardless.
async fn saturated_listener() -> Option<(socket2::Socket, InetSocketAddr, Vec<TcpStream>)> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    let bind: InetSocketAddr = "127.0.0.1:0".parse().ok()?;
    sock.bind(&bind.into()).ok()?;
    sock.listen(0).ok()?;
    let addr = sock.local_addr().ok()?.as_socket()?;
    let mut fillers = Vec::new();
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => fillers.push(s),
            Ok(Err(_)) => return None,
            Err(_) => return Some((sock, addr, fillers)),
        }
    }
    None
}

#[tokio::test]
async fn connect_timeout_against_full_backlog() {
    let Some((_listener, addr, _fillers)) = saturated_listener().await else {
        panic!("could not saturate a loopback accept queue");
    };
    let mut peer = BasicPeer::new_from_inet(addr);
    peer.options.connection_timeout = Some(Duration::from_millis(50));
    let e = connect(&peer, None).await.expect_err("queue is full");
    assert_eq!(e.etype(), &ConnectTimedout);
    assert!(e.retry());
}

#[tokio::test]
async fn bind_failure_is_local_and_final() {
    let (_l, addr) = local_listener().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("addr");
    let e = connect(&BasicPeer::new_from_inet(addr), Some(busy))
        .await
        .expect_err("address in use");
    assert_eq!(e.etype(), &BindError);
    assert!(!e.retry());
}

#[tokio::test]
async fn connects_unix_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("up.sock");
    let l = tokio::net::UnixListener::bind(&path).expect("bind uds");
    let peer = BasicPeer::new_uds(&path).expect("peer");
    let stream = connect(&peer, None).await.expect("connect");
    let _accepted = l.accept().await.expect("accept");
    assert!(!stream.is_tcp());
    assert!(peer.matches_fd(stream.as_raw_fd()));
    drop(l);
    std::fs::remove_file(&path).expect("cleanup");
    let e = connect(&peer, None).await.expect_err("socket gone");
    assert!(e.retry());
}

#[derive(Debug)]
struct Redirect(InetSocketAddr);

#[async_trait]
impl Connect for Redirect {
    async fn connect(&self, _addr: &SocketAddr) -> Result<Stream> {
        let s = TcpStream::connect(self.0)
            .await
            .or_err(ConnectError, "redirect")?;
        Ok(s.into())
    }
}

#[tokio::test]
async fn custom_l4_connector_is_used() {
    let (l, real) = local_listener().await;
    let (dead, nowhere) = local_listener().await;
    drop(dead);
    let mut peer = BasicPeer::new_from_inet(nowhere);
    peer.options.custom_l4 = Some(std::sync::Arc::new(Redirect(real)));
    let _stream = connect(&peer, None).await.expect("custom connect");
    let _accepted = l.accept().await.expect("accept");
}

#[test]
fn bind_to_random_respects_family_and_peer_choice() {
    let v4: Vec<InetSocketAddr> = vec!["127.0.0.2:0".parse().expect("v4")];
    let v6: Vec<InetSocketAddr> = vec!["[::1]:0".parse().expect("v6")];
    let peer = BasicPeer::new("127.0.0.1:80");
    assert_eq!(bind_to_random(&peer, &v4, &v6), Some(v4[0]));
    let peer6 = BasicPeer::new("[::1]:80");
    assert_eq!(bind_to_random(&peer6, &v4, &v6), Some(v6[0]));
    assert_eq!(bind_to_random(&peer, &[], &v6), None);
    let many: Vec<InetSocketAddr> = (2..6)
        .map(|i| format!("127.0.0.{i}:0").parse().expect("v4"))
        .collect();
    let picked = bind_to_random(&peer, &many, &[]).expect("one picked");
    assert!(many.contains(&picked));
}
