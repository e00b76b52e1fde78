//! WebSocket (HTTP/1.1 `Upgrade`) through the proxy: the upgrade request and the `101` are
//! relayed, then bytes flow both ways until a side closes or the tunnel stays idle too long;
//! a refused upgrade stays a plain HTTP exchange.

mod common;
#[path = "py/peers.rs"]
mod peers;

use async_trait::async_trait;
use common::{read_head, start_proxy, start_proxy_h2c, Client, STEP};
use pingora_core::listeners::TlsSettings;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::{HttpPeer, X509};
use pingora_error::Result;
use pingora_proxy::{http_proxy_service, ProxyHttp, Session};
use std::net::SocketAddr;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Proxies everything to one origin and records, per request, whether the phases saw an
/// upgrade request and the final status.
struct WsProxy {
    origin: SocketAddr,
    read_timeout: Option<Duration>,
    seen: Seen,
    /// Reach the origin over TLS (SNI `localhost`), trusting this CA set.
    origin_ca: Option<Arc<Box<[X509]>>>,
}

/// Per request: whether `request_filter` saw an upgrade request, and the final status.
type Seen = Arc<Mutex<Vec<(bool, u16)>>>;

impl WsProxy {
    /// A proxy to a plain origin, and what its phases will record.
    fn to(origin: SocketAddr, read_timeout: Option<Duration>) -> (WsProxy, Seen) {
        let seen = Seen::default();
        let proxy = WsProxy {
            origin,
            read_timeout,
            seen: seen.clone(),
            origin_ca: None,
        };
        (proxy, seen)
    }
}

#[async_trait]
impl ProxyHttp for WsProxy {
    type CTX = bool;

    fn new_ctx(&self) -> bool {
        false
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut bool) -> Result<bool> {
        *ctx = session.is_upgrade_req();
        Ok(false)
    }

    async fn upstream_peer(&self, _s: &mut Session, _ctx: &mut bool) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.origin, self.origin_ca.is_some(), "localhost".into());
        peer.options.ca = self.origin_ca.clone();
        peer.options.read_timeout = self.read_timeout;
        Ok(Box::new(peer))
    }

    async fn logging(
        &self,
        session: &mut Session,
        _e: Option<&pingora_error::Error>,
        ctx: &mut bool,
    ) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        self.seen.lock().expect("lock").push((*ctx, status));
    }
}

/// A raw origin: `Upgrade` requests to `/refuse` get a `403` with a body (keep-alive), other
/// upgrade requests a `101` and then every byte echoed until the proxy closes; plain requests
/// get "plain". Reports each request head's `upgrade` and `connection` headers.
async fn start_origin() -> (SocketAddr, Arc<Mutex<Vec<(String, String, String)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("origin addr");
    let heads = Arc::new(Mutex::new(Vec::new()));
    let h = heads.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let h = h.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut rd = BufReader::new(rd);
                while let Some(head) = read_head(&mut rd).await {
                    let path = head.first.1.clone();
                    let upgrade = head.get("upgrade").unwrap_or("").to_string();
                    let conn = head.get("connection").unwrap_or("").to_string();
                    h.lock()
                        .expect("lock")
                        .push((path.clone(), upgrade.clone(), conn));
                    if upgrade.is_empty() {
                        let _ = wr
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain")
                            .await;
                    } else if path == "/refuse" {
                        let _ = wr
                            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
                            .await;
                    } else {
                        let _ = wr
                            .write_all(
                                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                                  Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
                            )
                            .await;
                        // Echo everything; EOF from the proxy ends it.
                        let mut buf = vec![0u8; 64 * 1024];
                        let pre = rd.buffer().to_vec();
                        if !pre.is_empty() && wr.write_all(&pre).await.is_err() {
                            return;
                        }
                        let mut inner = rd.into_inner();
                        loop {
                            match inner.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    if wr.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                        let _ = wr.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    (addr, heads)
}

const UPGRADE_REQ: &[u8] = b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

async fn proxy_to(origin: SocketAddr, read_timeout: Option<Duration>) -> (SocketAddr, Seen) {
    let (proxy, seen) = WsProxy::to(origin, read_timeout);
    (start_proxy(proxy).await, seen)
}

/// Like [`proxy_to`], also serving HTTP/2 with prior knowledge (h2c).
async fn h2c_proxy_to(origin: SocketAddr) -> (SocketAddr, Seen) {
    let (proxy, seen) = WsProxy::to(origin, None);
    (start_proxy_h2c(proxy).await, seen)
}

/// Wait (up to [`STEP`]) until logging recorded `n` requests; returns all recorded.
async fn wait_seen(seen: &Seen, n: usize) -> Vec<(bool, u16)> {
    let deadline = Instant::now() + STEP;
    while seen.lock().expect("lock").len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen.lock().expect("lock").clone()
}

/// The client echoed `count` messages and closed with code 1000.
fn assert_echoed(out: &Output, count: usize) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("OK {count} close=1000")),
        "client failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Read exactly `n` bytes from the client connection.
async fn read_n(client: &mut Client, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    tokio::time::timeout(STEP, client.rd.read_exact(&mut out))
        .await
        .expect("tunnel bytes in time")
        .expect("tunnel bytes");
    out
}

#[tokio::test]
async fn upgrade_is_tunnelled_both_ways_until_close() {
    let (origin, heads) = start_origin().await;
    let (proxy, seen) = proxy_to(origin, None).await;
    let mut client = Client::connect(proxy).await;
    client.send_raw(UPGRADE_REQ).await;
    let head = tokio::time::timeout(STEP, read_head(&mut client.rd))
        .await
        .expect("101 in time")
        .expect("a response head");
    assert_eq!(head.first.1, "101");
    assert_eq!(head.get("upgrade"), Some("websocket"));
    assert!(head
        .get("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("upgrade")));
    assert_eq!(head.get("sec-websocket-accept"), Some("x"));
    assert!(head.get("transfer-encoding").is_none());

    // Bytes both ways, many round trips and one large burst.
    for i in 0..50u32 {
        let msg = format!("message {i}");
        client.send_raw(msg.as_bytes()).await;
        assert_eq!(read_n(&mut client, msg.len()).await, msg.as_bytes());
    }
    let big = common::pattern(3 * 1024 * 1024 + 7);
    let (mut rd, mut wr) = (client.rd, client.wr);
    let send = tokio::spawn(async move {
        wr.write_all(&big).await.expect("send burst");
        wr
    });
    let mut back = vec![0u8; 3 * 1024 * 1024 + 7];
    tokio::time::timeout(STEP, rd.read_exact(&mut back))
        .await
        .expect("burst echoed in time")
        .expect("burst echoed");
    assert_eq!(
        common::fnv(&back),
        common::fnv(&common::pattern(back.len()))
    );
    let mut wr = send.await.expect("sender");

    // The client half-closes: the origin sees EOF, closes, and the proxy closes to us.
    wr.shutdown().await.expect("half-close");
    let mut rest = Vec::new();
    tokio::time::timeout(STEP, rd.read_to_end(&mut rest))
        .await
        .expect("proxy closes after the origin")
        .expect("clean EOF");
    assert!(rest.is_empty());

    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].1, "websocket", "Upgrade reaches the origin");
    assert!(heads[0].2.eq_ignore_ascii_case("upgrade"));
    // logging ran once, and request_filter saw an upgrade request
    assert_eq!(wait_seen(&seen, 1).await, vec![(true, 101)]);
}

#[tokio::test]
async fn origin_closing_ends_the_tunnel() {
    // A raw origin that switches, says one thing and closes at once.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let closing = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                  Connection: upgrade\r\n\r\nbye",
            )
            .await;
        let _ = s.shutdown().await;
    });
    let (proxy, _seen) = proxy_to(closing, None).await;
    let mut client = Client::connect(proxy).await;
    client.send_raw(UPGRADE_REQ).await;
    let head = read_head(&mut client.rd).await.expect("head");
    assert_eq!(head.first.1, "101");
    let mut rest = Vec::new();
    tokio::time::timeout(STEP, client.rd.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .expect("clean EOF");
    assert_eq!(rest, b"bye");
}

#[tokio::test]
async fn idle_tunnel_is_closed_after_the_timeout() {
    let (origin, _heads) = start_origin().await;
    let (proxy, _seen) = proxy_to(origin, Some(Duration::from_millis(800))).await;
    let mut client = Client::connect(proxy).await;
    client.send_raw(UPGRADE_REQ).await;
    let head = read_head(&mut client.rd).await.expect("head");
    assert_eq!(head.first.1, "101");
    let start = Instant::now();
    // Traffic every 400 ms keeps it open well past one timeout.
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let msg = format!("ping {i}");
        client.send_raw(msg.as_bytes()).await;
        assert_eq!(read_n(&mut client, msg.len()).await, msg.as_bytes());
    }
    assert!(start.elapsed() > Duration::from_millis(1500));
    // Then silence: closed after about 800 ms.
    let quiet = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(STEP, client.rd.read_to_end(&mut rest))
        .await
        .expect("idle tunnel closed in time")
        .expect("clean EOF");
    let waited = quiet.elapsed();
    assert!(rest.is_empty());
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn refused_upgrade_stays_plain_http() {
    let (origin, heads) = start_origin().await;
    let (proxy, seen) = proxy_to(origin, None).await;
    let mut client = Client::connect(proxy).await;
    client
        .send_raw(
            String::from_utf8_lossy(UPGRADE_REQ)
                .replacen("/chat", "/refuse", 1)
                .as_bytes(),
        )
        .await;
    let resp = client.read_resp(false).await.expect("403 response");
    assert_eq!(resp.status, 403);
    assert_eq!(resp.body, b"no");
    assert!(resp.head.get("upgrade").is_none());
    // The same client connection carries a plain request next.
    let resp = client.get("/after").await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"plain");
    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads[0].0, "/refuse");
    assert_eq!(heads[0].1, "websocket");
    assert_eq!(heads.last().map(|h| h.0.as_str()), Some("/after"));
    let seen = wait_seen(&seen, 2).await;
    assert_eq!(seen[0], (true, 403));
    assert_eq!(seen[1], (false, 200));
}

/// The test: Python `websockets` client and server through the proxy, 1,000 echoed
/// messages (text and binary) including one of 1 MiB, then a clean close handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_echo_through_proxy() {
    let server = peers::PyServer::start("ws_echo.py", &["server"]);
    let origin: SocketAddr = ([127, 0, 0, 1], server.port).into();
    let (proxy, seen) = proxy_to(origin, None).await;
    let args = vec!["client".into(), format!("ws://{proxy}/echo"), "1000".into()];
    let out = peers::run_client_async("ws_echo.py", args, Duration::from_secs(60)).await;
    assert_echoed(&out, 1000);
    assert_eq!(wait_seen(&seen, 1).await, vec![(true, 101)]);
    // a plain TCP connect still works afterwards (the proxy is healthy)
    TcpStream::connect(proxy)
        .await
        .expect("proxy still accepts");
}

/// Serve `sv` from a [`Server`] with a TLS listener (`cert` / `key`) on a free port, in a
/// thread of its own that lives as long as the test process; returns the port.
fn start_tls_proxy(sv: WsProxy, cert: &str, key: &str) -> u16 {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let conf = ServerConf {
        threads: 1,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(&server.configuration, sv);
    let tls = TlsSettings::intermediate(cert, key).expect("TLS settings");
    service.add_tls_with_settings(&format!("127.0.0.1:{port}"), None, tls);
    server.add_service(service);
    std::thread::spawn(move || server.run_forever());
    let deadline = Instant::now() + STEP;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the TLS proxy does not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    port
}

/// wss end to end: the Python `websockets` client speaks TLS to the proxy, which opens its own
/// TLS connection (verified against the test CA) to a `wss` Python server; 1,000 echoed
/// messages including one of 1 MiB, then a clean close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_over_tls_through_proxy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_string_lossy().into_owned();
    let out = peers::run_client("grpc_peer.py", &["certs", &d], STEP);
    assert!(out.status.success(), "{out:?}");
    let (ca, cert, key) = (
        format!("{d}/ca.pem"),
        format!("{d}/server.pem"),
        format!("{d}/server.key"),
    );
    let server = peers::PyServer::start("ws_echo.py", &["server", "--tls", &cert, &key]);
    let ca_der = pingora_core::tls::x509::X509::from_pem(&std::fs::read(&ca).expect("CA"))
        .and_then(|c| c.to_der())
        .expect("CA to DER");
    let (mut sv, seen) = WsProxy::to(([127, 0, 0, 1], server.port).into(), None);
    sv.origin_ca = Some(Arc::new(vec![X509::from_der(ca_der)].into()));
    let port = start_tls_proxy(sv, &cert, &key);

    let url = format!("wss://localhost:{port}/echo");
    let args = vec![
        "client".into(),
        url.clone(),
        "1000".into(),
        "--ca".into(),
        ca.clone(),
    ];
    let out = peers::run_client_async("ws_echo.py", args, Duration::from_secs(60)).await;
    assert_echoed(&out, 1000);
    assert_eq!(wait_seen(&seen, 1).await, vec![(true, 101)]);

    // a client that does not trust the proxy's certificate gets no tunnel
    let args = vec!["client".into(), url, "1".into()];
    let out = peers::run_client_async("ws_echo.py", args, STEP).await;
    assert!(!out.status.success(), "an untrusted server was accepted");
    assert_eq!(seen.lock().expect("lock").len(), 1);
}

/// RFC 8441: a WebSocket opened with extended CONNECT on an HTTP/2 connection to the proxy,
/// tunnelled to an HTTP/1.1 WebSocket server (Python `websockets`); the client is Python `h2`
/// with `wsproto` framing. 1,000 echoed messages including one of 1 MiB, then a clean close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_h2_extended_connect() {
    let server = peers::PyServer::start("ws_echo.py", &["server"]);
    let (proxy, seen) = h2c_proxy_to(([127, 0, 0, 1], server.port).into()).await;
    let args = vec![
        "127.0.0.1".into(),
        proxy.port().to_string(),
        "/echo".into(),
        "1000".into(),
    ];
    let out = peers::run_client_async("ws_h2_client.py", args, Duration::from_secs(60)).await;
    assert_echoed(&out, 1000);
    // the phases saw an upgrade request, answered 200 on the HTTP/2 stream
    assert_eq!(wait_seen(&seen, 1).await, vec![(true, 200)]);
}

/// An extended CONNECT the upstream refuses gets the refusal (here `403`) on its stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_extended_connect_gets_the_upstream_answer() {
    let (origin, heads) = start_origin().await;
    let (proxy, _seen) = h2c_proxy_to(origin).await;
    let args = vec![
        "127.0.0.1".into(),
        proxy.port().to_string(),
        "/refuse".into(),
        "1".into(),
    ];
    let out = peers::run_client_async("ws_h2_client.py", args, Duration::from_secs(30)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("extended CONNECT refused") && stderr.contains("'403'"),
        "{stderr}"
    );
    // the origin got an HTTP/1.1 upgrade request for the path
    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].0, "/refuse");
    assert_eq!(heads[0].1, "websocket");
}
