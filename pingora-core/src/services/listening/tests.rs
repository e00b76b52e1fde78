use super::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

/// Echoes one line per round; "bye" ends the connection.
#[derive(Default)]
struct LineEcho {
    rounds: Arc<AtomicUsize>,
    cleaned: Arc<AtomicBool>,
}

#[async_trait]
impl ServerApp for LineEcho {
    async fn process_new(
        self: &Arc<Self>,
        mut io: Stream,
        _shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.rounds.fetch_add(1, Ordering::SeqCst);
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            if io.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            line.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        io.write_all(&line).await.ok()?;
        io.flush().await.ok()?;
        (line != b"bye\n").then_some(io)
    }

    async fn cleanup(&self) {
        self.cleaned.store(true, Ordering::SeqCst);
    }
}

/// A loopback address that was free a moment ago, below the ephemeral port
/// range so that no outgoing connection can be holding it (or connect to
/// itself on it) when the service binds it.
fn free_addr() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    let low_ephemeral: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let span = low_ephemeral.saturating_sub(LOW).max(1_000);
    // a different region than the integration tests' sequence
    let seed = std::process::id().wrapping_mul(104_729);
    for _ in 0..span {
        let port = LOW + seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(port).expect("below 65536");
        if port_is_free(port) {
            return format!("127.0.0.1:{port}");
        }
    }
    panic!("no free port below the ephemeral range");
}

/// Whether `port` can be bound on loopback. The probe binds without
/// listening: a listening probe could outlive its close in a child process
/// forked meanwhile by a parallel test (until that child execs), and a
/// client connecting then would reach that dying listener instead of the
/// server, and be reset. A bound socket that never listened refuses such
/// connections and does not keep the server (`SO_REUSEADDR`) from binding.
fn port_is_free(port: u16) -> bool {
    let Ok(sock) = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None) else {
        return false;
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    sock.set_reuse_address(true).is_ok() && sock.bind(&addr.into()).is_ok()
}

async fn connect(addr: &str) -> tokio::net::TcpStream {
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("service at {addr} never came up");
}

async fn round(c: &mut tokio::net::TcpStream, line: &[u8]) -> Vec<u8> {
    c.write_all(line).await.expect("write");
    let mut buf = vec![0u8; line.len()];
    timeout(WAIT, c.read_exact(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_reuses_and_stops_on_shutdown() {
    let addr = free_addr();
    let app = LineEcho::default();
    let (rounds, cleaned) = (app.rounds.clone(), app.cleaned.clone());
    let mut service = Service::new("echo".into(), app);
    service.add_tcp(&addr);
    assert!(service.app_logic().is_some());
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        service.start_service(None, rx, 2).await;
        service
    });

    let mut c = connect(&addr).await;
    assert_eq!(round(&mut c, b"one\n").await, b"one\n");
    assert_eq!(round(&mut c, b"two\n").await, b"two\n");
    let mut c2 = connect(&addr).await;
    assert_eq!(round(&mut c2, b"bye\n").await, b"bye\n");
    let mut rest = Vec::new();
    let n = timeout(WAIT, c2.read_to_end(&mut rest))
        .await
        .expect("closed");
    assert_eq!(n.expect("eof"), 0);

    // wait until the first connection is back in process_new for its next
    // line: rounds one, two, bye and the waiting one
    let start = std::time::Instant::now();
    while rounds.load(Ordering::SeqCst) < 4 {
        assert!(start.elapsed() < WAIT, "connection not reused");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tx.send(true).expect("send");
    // the listening socket is closed once every accept loop has ended
    let start = std::time::Instant::now();
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(start.elapsed() < WAIT, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // the round in progress is still served: the service drains it, and
    // the connection is not reused after it
    assert_eq!(round(&mut c, b"three\n").await, b"three\n");
    let mut rest = Vec::new();
    let n = timeout(WAIT, c.read_to_end(&mut rest))
        .await
        .expect("closed");
    assert_eq!(n.expect("eof"), 0);
    assert!(cleaned.load(Ordering::SeqCst));
    let service = timeout(WAIT, task).await.expect("stops").expect("no panic");
    // the app moved into the running service
    assert!(service.app_logic().is_none());
}

#[tokio::test]
async fn already_shut_down_stops_at_once() {
    let addr = free_addr();
    let app = LineEcho::default();
    let cleaned = app.cleaned.clone();
    let mut service = Service::new("echo".into(), app);
    service.add_tcp(&addr);
    let (tx, rx) = watch::channel(false);
    tx.send(true).expect("send");
    timeout(WAIT, service.start_service(None, rx, 1))
        .await
        .expect("stops");
    assert!(cleaned.load(Ordering::SeqCst));
}

#[tokio::test]
async fn bind_failure_does_not_panic() {
    let mut service = Service::new("bad".into(), LineEcho::default());
    service.add_tcp("192.0.2.1:80");
    let (_tx, rx) = watch::channel(false);
    timeout(WAIT, service.start_service(None, rx.clone(), 1))
        .await
        .expect("returns");
    // a second start has no app left: returns at once
    timeout(WAIT, service.start_service(None, rx, 1))
        .await
        .expect("returns");
}

#[test]
fn prometheus_service_is_named() {
    let s = Service::prometheus_http_service();
    assert_eq!(ServiceTrait::name(&s), "Prometheus metric HTTP");
    assert_eq!(s.threads, None);
}

mod park;
