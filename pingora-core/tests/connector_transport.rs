//! TransportConnector against local TCP servers: reuse, eviction of dead
//! idle connections, pool keys, and connect errors.

use pingora_core::connectors::{ConnectorOptions, TransportConnector};
use pingora_core::protocols::Stream;
use pingora_core::upstreams::peer::{BasicPeer, HttpPeer, Peer};
use pingora_core::{ErrorSource, ErrorType};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the test server does after answering one ping.
#[derive(Clone, Copy)]
enum After {
    /// Wait for more pings.
    KeepOpen,
    /// Close the connection.
    Close,
    /// Send unsolicited bytes a little later.
    Chatter,
}

struct Server {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(after: After) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (count, done) = (accepted.clone(), closed.clone());
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let done = done.clone();
                tokio::spawn(async move {
                    serve(conn, after).await;
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Server {
            addr,
            accepted,
            closed,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut conn: TcpStream, after: After) {
    let mut buf = [0u8; 4];
    while conn.read_exact(&mut buf).await.is_ok() {
        if conn.write_all(b"pong").await.is_err() {
            return;
        }
        match after {
            After::KeepOpen => {}
            After::Close => return,
            After::Chatter => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = conn.write_all(b"surprise").await;
            }
        }
    }
}

async fn ping(stream: &mut Stream) {
    stream.write_all(b"ping").await.expect("write ping");
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .expect("pong in time")
        .expect("read pong");
    assert_eq!(&buf, b"pong");
}

fn peer(addr: SocketAddr) -> HttpPeer {
    HttpPeer::new(addr, false, String::new())
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let server = Server::start(After::KeepOpen).await;
    let connector = TransportConnector::new(None);
    let peer = peer(server.addr);

    let (mut s, reused) = connector.get_stream(&peer).await.expect("connect");
    assert!(!reused);
    ping(&mut s).await;
    connector.release_stream(s, peer.reuse_hash(), None);

    let (mut s, reused) = connector.get_stream(&peer).await.expect("reuse");
    assert!(reused);
    ping(&mut s).await;
    connector.release_stream(s, peer.reuse_hash(), None);

    let (mut s, reused) = connector.get_stream(&peer).await.expect("reuse again");
    assert!(reused);
    ping(&mut s).await;
    assert_eq!(server.accepted(), 1);
}

/// Wait (bounded) until `cond` holds.
async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in time");
}

#[tokio::test]
async fn upstream_closing_idle_connection_is_not_reused() {
    let server = Server::start(After::Close).await;
    let connector = TransportConnector::new(None);
    let peer = peer(server.addr);

    let (mut s, _) = connector.get_stream(&peer).await.expect("connect");
    ping(&mut s).await;
    connector.release_stream(s, peer.reuse_hash(), None);
    // give the FIN time to arrive; the idle watcher or the checkout probe
    // must notice it
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (mut s, reused) = connector.get_stream(&peer).await.expect("connect again");
    assert!(!reused, "a connection closed by the upstream was reused");
    ping(&mut s).await;
    eventually(|| server.accepted() == 2).await;
}

#[tokio::test]
async fn close_racing_checkout_is_caught_by_probe() {
    let server = Server::start(After::Close).await;
    let connector = TransportConnector::new(None);
    let peer = peer(server.addr);
    for _ in 0..20 {
        let (mut s, reused) = connector.get_stream(&peer).await.expect("connect");
        assert!(!reused, "a closed connection was handed out");
        ping(&mut s).await;
        // read the FIN on our side so we know it arrived, then release
        tokio::time::sleep(Duration::from_millis(5)).await;
        connector.release_stream(s, peer.reuse_hash(), None);
    }
}

#[tokio::test]
async fn unsolicited_data_evicts_idle_connection() {
    let server = Server::start(After::Chatter).await;
    let connector = TransportConnector::new(None);
    let peer = peer(server.addr);

    let (mut s, _) = connector.get_stream(&peer).await.expect("connect");
    ping(&mut s).await;
    connector.release_stream(s, peer.reuse_hash(), None);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (_s, reused) = connector.get_stream(&peer).await.expect("connect again");
    assert!(!reused);
    eventually(|| server.accepted() == 2).await;
}

#[tokio::test]
async fn idle_timeout_drops_pooled_connection() {
    let server = Server::start(After::KeepOpen).await;
    let connector = TransportConnector::new(None);
    let peer = peer(server.addr);

    let (s, _) = connector.get_stream(&peer).await.expect("connect");
    connector.release_stream(s, peer.reuse_hash(), Some(Duration::from_millis(30)));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_s, reused) = connector.get_stream(&peer).await.expect("connect again");
    assert!(!reused);

    // a generous timeout keeps it
    let (s, _) = connector.get_stream(&peer).await.expect("connect");
    connector.release_stream(s, peer.reuse_hash(), Some(Duration::from_secs(30)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_s, reused) = connector.get_stream(&peer).await.expect("reuse");
    assert!(reused);
}

#[tokio::test]
async fn different_connection_shapes_use_different_pools() {
    let server = Server::start(After::KeepOpen).await;
    let connector = TransportConnector::new(None);
    let base = peer(server.addr);
    let mut grouped = base.clone();
    grouped.group_key = 1;
    let mut no_verify = base.clone();
    no_verify.options.verify_hostname = false;
    let other_sni = HttpPeer::new(server.addr, false, "other.example".into());

    let (s, _) = connector.get_stream(&base).await.expect("connect");
    connector.release_stream(s, base.reuse_hash(), None);
    for other in [&grouped, &no_verify, &other_sni] {
        assert_ne!(other.reuse_hash(), base.reuse_hash());
        let (_s, reused) = connector.get_stream(other).await.expect("connect");
        assert!(!reused, "{other} took a connection of another pool");
    }
    let (_s, reused) = connector.get_stream(&base).await.expect("reuse");
    assert!(reused);
    eventually(|| server.accepted() == 4).await;
}

#[tokio::test]
async fn pool_keeps_at_most_keepalive_pool_size_per_key() {
    let server = Server::start(After::KeepOpen).await;
    let connector = TransportConnector::new(Some(ConnectorOptions::new(1)));
    let peer = peer(server.addr);
    let (a, _) = connector.get_stream(&peer).await.expect("a");
    let (b, _) = connector.get_stream(&peer).await.expect("b");
    connector.release_stream(a, peer.reuse_hash(), None);
    connector.release_stream(b, peer.reuse_hash(), None);
    let (_x, reused) = connector.get_stream(&peer).await.expect("x");
    assert!(reused);
    let (_y, reused) = connector.get_stream(&peer).await.expect("y");
    assert!(!reused, "only one idle connection may be kept");
    eventually(|| server.accepted() == 3).await;
}

#[tokio::test]
async fn refused_connect_is_retryable() {
    // Bound but not listening: refuses, and no concurrent test can take the
    // port (as one could if it were bound and released).
    let held = tokio::net::TcpSocket::new_v4().expect("socket");
    held.bind(([127, 0, 0, 1], 0).into()).expect("bind");
    let addr = held.local_addr().expect("addr");
    let connector = TransportConnector::new(None);
    let e = connector
        .get_stream(&peer(addr))
        .await
        .expect_err("nothing listens");
    assert_eq!(e.etype(), &ErrorType::ConnectRefused);
    assert_eq!(e.esource(), &ErrorSource::Upstream);
    assert!(e.retry());
}

#[tokio::test]
async fn tls_peer_fails_instead_of_plaintext() {
    let server = Server::start(After::KeepOpen).await;
    let connector = TransportConnector::new(None);
    let tls_peer = HttpPeer::new(server.addr, true, "secure.example".into());
    let e = connector
        .new_stream(&tls_peer)
        .await
        .expect_err("no TLS backend");
    assert_eq!(e.etype(), &ErrorType::TLSHandshakeFailure);
    assert!(e.to_string().contains("TLS"));
    let mut basic = BasicPeer::new_from_inet(server.addr);
    basic.sni = "secure.example".into();
    assert!(connector.new_stream(&basic).await.is_err());
    tokio::time::sleep(Duration::from_millis(20)).await;
    // with a TLS backend both handshakes are attempted and fail (the server
    // speaks no TLS); without one no connection is made at all
    let tls_built = cfg!(any(feature = "openssl", feature = "boringssl"));
    assert_eq!(server.accepted(), if tls_built { 2 } else { 0 });
}

#[tokio::test]
async fn offloaded_connects_work() {
    let server = Server::start(After::KeepOpen).await;
    let mut options = ConnectorOptions::new(4);
    options.offload_threadpool = Some((2, 1));
    let connector = TransportConnector::new(Some(options));
    let peer = peer(server.addr);
    let (mut s, reused) = connector.get_stream(&peer).await.expect("connect");
    assert!(!reused);
    ping(&mut s).await;
    connector.release_stream(s, peer.reuse_hash(), None);
    let (mut s, reused) = connector.get_stream(&peer).await.expect("reuse");
    assert!(reused);
    ping(&mut s).await;
    drop(connector); // dropping offload runtimes inside async code is fine
}

#[test]
fn options_from_server_conf() {
    let conf = pingora_core::server::configuration::ServerConf {
        upstream_keepalive_pool_size: 7,
        client_bind_to_ipv4: vec!["127.0.0.2".into(), "not an ip".into()],
        client_bind_to_ipv6: vec!["::1".into()],
        upstream_connect_offload_threadpools: Some(2),
        upstream_connect_offload_thread_per_pool: Some(0),
        ..Default::default()
    };
    let o = ConnectorOptions::from_server_conf(&conf);
    assert_eq!(o.keepalive_pool_size, 7);
    assert_eq!(
        o.bind_to_v4,
        vec!["127.0.0.2:0".parse::<SocketAddr>().expect("v4")]
    );
    assert_eq!(
        o.bind_to_v6,
        vec!["[::1]:0".parse::<SocketAddr>().expect("v6")]
    );
    assert_eq!(
        o.offload_threadpool, None,
        "zero threads disables offloading"
    );
}

/// Connects to a fixed address whatever the peer says.
#[derive(Debug)]
struct Redirect(SocketAddr);

#[async_trait::async_trait]
impl pingora_core::connectors::L4Connect for Redirect {
    async fn connect(
        &self,
        _addr: &pingora_core::protocols::l4::socket::SocketAddr,
    ) -> pingora_core::Result<pingora_core::protocols::l4::stream::Stream> {
        let s = TcpStream::connect(self.0)
            .await
            .map_err(|e| pingora_core::Error::because(ErrorType::ConnectError, "redirect", e))?;
        Ok(s.into())
    }
}

#[tokio::test]
async fn custom_l4_connections_are_reused() {
    let server = Server::start(After::KeepOpen).await;
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let nowhere = dead.local_addr().expect("addr");
    drop(dead);
    let connector = TransportConnector::new(None);
    let mut peer = peer(nowhere);
    peer.options.custom_l4 = Some(Arc::new(Redirect(server.addr)));
    let (mut s, reused) = connector.get_stream(&peer).await.expect("connect");
    assert!(!reused);
    ping(&mut s).await;
    connector.release_stream(s, peer.reuse_hash(), None);
    let (mut s, reused) = connector.get_stream(&peer).await.expect("reuse");
    assert!(reused);
    ping(&mut s).await;
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn dropping_the_connector_closes_pooled_connections() {
    let server = Server::start(After::KeepOpen).await;
    let connector = TransportConnector::new(None);
    let peer = peer(server.addr);
    let (a, _) = connector.get_stream(&peer).await.expect("a");
    let (b, _) = connector.get_stream(&peer).await.expect("b");
    connector.release_stream(a, peer.reuse_hash(), None);
    connector.release_stream(b, peer.reuse_hash(), None);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(server.closed(), 0);
    drop(connector);
    eventually(|| server.closed() == 2).await;
}
