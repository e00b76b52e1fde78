use super::*;
use crate::upstreams::peer::{BasicPeer, HttpPeer};
use pingora_error::OrErr;
use std::os::unix::io::AsRawFd;
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
    // SAFETY: `stream` owns the fd and outlives the borrow.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let sock = socket2::SockRef::from(&fd);
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
    peer.options.bind_to = Some(BindTo::new("127.0.0.1:0".parse().expect("literal")));
    let stream = connect(&peer, bind_to_random(&peer, &[], &[]))
        .await
        .expect("connect");
    // SAFETY: `stream` owns the fd and outlives the borrow.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let sock = socket2::SockRef::from(&fd);
    assert!(sock.keepalive().expect("keepalive"));
    assert_eq!(sock.tos().expect("tos"), 46 << 2);
    assert!(sock.recv_buffer_size().expect("rcvbuf") >= 64 * 1024);
}

#[tokio::test]
async fn refused_is_retryable_upstream_error() {
    let (_held, addr) = crate::protocols::l4::refusing_socket();
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
    let e = connect(&BasicPeer::new_from_inet(addr), Some(BindTo::new(busy)))
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

fn bound_addr(b: Option<BindTo>) -> Option<InetSocketAddr> {
    b.and_then(|b| b.addr)
}

#[test]
fn bind_to_random_respects_family_and_peer_choice() {
    let v4: Vec<InetSocketAddr> = vec!["127.0.0.2:0".parse().expect("v4")];
    let v6: Vec<InetSocketAddr> = vec!["[::1]:0".parse().expect("v6")];
    let mut peer = BasicPeer::new("127.0.0.1:80");
    assert_eq!(bound_addr(bind_to_random(&peer, &v4, &v6)), Some(v4[0]));
    let peer6 = BasicPeer::new("[::1]:80");
    assert_eq!(bound_addr(bind_to_random(&peer6, &v4, &v6)), Some(v6[0]));
    assert_eq!(bind_to_random(&peer, &[], &v6), None);
    let many: Vec<InetSocketAddr> = (2..6)
        .map(|i| format!("127.0.0.{i}:0").parse().expect("v4"))
        .collect();
    let picked = bound_addr(bind_to_random(&peer, &many, &[])).expect("one picked");
    assert!(many.contains(&picked));

    // the peer's own address wins; its port range survives the pick
    let own: InetSocketAddr = "127.0.0.9:0".parse().expect("v4");
    peer.options.bind_to = Some(BindTo::new(own));
    assert_eq!(bound_addr(bind_to_random(&peer, &v4, &v6)), Some(own));
    let mut ranged = BindTo::default();
    ranged.set_port_range(Some((40000, 40100))).expect("range");
    peer.options.bind_to = Some(ranged);
    let b = bind_to_random(&peer, &v4, &v6).expect("bind");
    assert_eq!(b.addr, Some(v4[0]));
    assert_eq!(b.port_range(), Some((40000, 40100)));
}

#[tokio::test]
async fn port_range_and_tweak_hook_are_applied() {
    let (_l, addr) = local_listener().await;
    let mut peer = BasicPeer::new_from_inet(addr);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    peer.options.upstream_tcp_sock_tweak_hook = Some(std::sync::Arc::new(move |_s: &TcpSocket| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }));
    let mut bind = BindTo::default();
    bind.set_port_range(Some((41000, 41999))).expect("range");
    bind.set_fallback(true);
    peer.options.bind_to = Some(bind.clone());
    let stream = connect(&peer, Some(bind)).await.expect("connect");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // SAFETY: `stream` owns the fd and outlives the borrow.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let local = socket2::SockRef::from(&fd)
        .local_addr()
        .expect("local")
        .as_socket()
        .expect("inet");
    // kernels before 6.3 ignore the range; newer ones honour it
    if !(41000..=41999).contains(&local.port()) {
        eprintln!(
            "IP_LOCAL_PORT_RANGE not honoured by this kernel (port {})",
            local.port()
        );
    }

    // a failing hook aborts the connect
    peer.options.upstream_tcp_sock_tweak_hook = Some(std::sync::Arc::new(|_s: &TcpSocket| {
        pingora_error::Error::e_explain(SocketError, "hook says no")
    }));
    let e = connect(&peer, None).await.expect_err("hook failed");
    assert_eq!(e.etype(), &SocketError);
}

/// A one-shot CONNECT proxy on a Unix socket answering with `answer`; it
/// returns the request it received.
async fn mock_proxy(
    answer: &'static [u8],
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    tokio::task::JoinHandle<Vec<u8>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.sock");
    let l = tokio::net::UnixListener::bind(&path).expect("bind uds");
    let task = tokio::spawn(async move {
        let (mut conn, _) = l.accept().await.expect("accept");
        let mut req = Vec::new();
        let mut buf = [0u8; 256];
        while !req.ends_with(b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        conn.write_all(answer).await.expect("answer");
        // keep the tunnel open a moment for the client to read
        tokio::time::sleep(Duration::from_millis(100)).await;
        req
    });
    (dir, path, task)
}

fn proxied_peer(path: &std::path::Path) -> HttpPeer {
    let mut headers = std::collections::BTreeMap::new();
    headers.insert("x-tenant".to_string(), b"blue".to_vec());
    HttpPeer::new_proxy(
        path.to_str().expect("utf-8 path"),
        "10.9.8.7".parse().expect("ip"),
        8443,
        false,
        "",
        headers,
    )
}

#[tokio::test]
async fn connect_proxy_tunnel() {
    use crate::protocols::GetProxyDigest;
    use tokio::io::AsyncReadExt;
    let (_dir, path, proxy) =
        mock_proxy(b"HTTP/1.1 200 Connection established\r\nVia: mock\r\n\r\nearly").await;
    let peer = proxied_peer(&path);
    let mut stream = connect(&peer, None).await.expect("tunnel");
    let digest = stream.get_proxy_digest().expect("proxy digest");
    assert_eq!(digest.response.status.as_u16(), 200);
    let mut early = [0u8; 5];
    stream.read_exact(&mut early).await.expect("early bytes");
    assert_eq!(&early, b"early");
    assert!(peer.matches_fd(stream.as_raw_fd()));
    let req = proxy.await.expect("proxy task");
    let req = String::from_utf8(req).expect("ascii");
    assert!(req.starts_with("CONNECT 10.9.8.7:8443 HTTP/1.1\r\n"));
    assert!(req.contains("x-tenant: blue\r\n"));
}

#[tokio::test]
async fn connect_proxy_refusal_is_an_error() {
    let (_dir, path, _proxy) = mock_proxy(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
    let e = connect(&proxied_peer(&path), None)
        .await
        .expect_err("refused tunnel");
    assert_eq!(e.etype(), &ConnectProxyFailure);
    assert!(!e.retry());
}
