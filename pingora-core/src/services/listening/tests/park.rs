//! Idle HTTP/1 keep-alive connections parked by an HTTP app in a listening service: resumed
//! when a request comes, closed at their keep-alive deadline and at shutdown.
//!
//! Whether connections are parked is read from the test runtime's count of live tasks: a
//! waiting connection has a task, a parked one has none (the lot has one task for all).

use super::*;
use crate::apps::http_app::{HttpServer, ServeHttp};
use crate::protocols::http::ServerSession;
use std::time::Instant;

/// Parked after `PARK_AFTER` (0.5 s) on the coarse timer: well within this.
const PARKED_BY: Duration = Duration::from_millis(1500);
const SHUTDOWN_GRACE: Duration = crate::server::SHUTDOWN_IDLE_TIMEOUT;

/// Answers "hello"; the keep-alive timeout it gives its connections, when set.
struct Hello {
    requests: Arc<AtomicUsize>,
    keepalive_secs: Option<u64>,
}

#[async_trait]
impl ServeHttp for Hello {
    async fn response(&self, http: &mut ServerSession) -> http::Response<Vec<u8>> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if self.keepalive_secs.is_some() {
            http.set_keepalive(self.keepalive_secs);
        }
        http::Response::new(b"hello".to_vec())
    }
}

fn live_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Wait until the runtime has `n` live tasks.
async fn until_tasks(n: usize) {
    tasks_within(n, WAIT).await;
}

/// Wait until the runtime has `n` live tasks, for at most `limit`.
async fn tasks_within(n: usize, limit: Duration) {
    let start = Instant::now();
    while live_tasks() != n {
        assert!(
            start.elapsed() < limit,
            "{} live tasks, waited for {n}",
            live_tasks()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Start an HTTP service on a fresh address; returns the address, the request counter, the
/// shutdown sender and the service's task.
async fn start(
    keepalive_secs: Option<u64>,
) -> (
    String,
    Arc<AtomicUsize>,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let addr = free_addr();
    let requests = Arc::new(AtomicUsize::new(0));
    let app = HttpServer::new_app(Hello {
        requests: requests.clone(),
        keepalive_secs,
    });
    let mut service = Service::new("park".into(), app);
    service.add_tcp(&addr);
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move { service.start_service(None, rx, 1).await });
    (addr, requests, tx, task)
}

/// Send a GET and read its whole response; returns the response head.
async fn get<S>(c: &mut S) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    c.write_all(b"GET / HTTP/1.1\r\nHost: park\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = timeout(WAIT, c.read(&mut buf))
            .await
            .expect("in time")
            .expect("read");
        assert!(n > 0, "closed before the response: {got:?}");
        got.extend_from_slice(&buf[..n]);
        if got.ends_with(b"\r\n\r\nhello") {
            let text = String::from_utf8(got).expect("ascii");
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            return text;
        }
    }
}

/// Wait for the server to close `c`; returns how long that took.
async fn closed_after<S>(c: &mut S, limit: Duration) -> Duration
where
    S: tokio::io::AsyncRead + Unpin,
{
    let start = Instant::now();
    let mut rest = Vec::new();
    let n = timeout(limit, c.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .expect("eof");
    assert_eq!(n, 0, "unexpected bytes {rest:?}");
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_connections_are_resumed_and_kept_alive() {
    let base = live_tasks();
    let (addr, requests, tx, task) = start(None).await;
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut c = connect(&addr).await;
        get(&mut c).await;
        conns.push(c);
    }
    // the service and its accept loop, and a task per connection
    until_tasks(base + 2 + 3).await;
    // the connections' tasks are gone; the lot has one
    tasks_within(base + 2 + 1, PARKED_BY).await;

    // a parked connection serves its next request, then more on the same connection
    get(&mut conns[0]).await;
    get(&mut conns[0]).await;
    until_tasks(base + 2 + 1 + 1).await;
    // ... and is parked again once idle
    tasks_within(base + 2 + 1, PARKED_BY).await;
    for c in &mut conns {
        get(c).await;
    }
    assert_eq!(requests.load(Ordering::SeqCst), 3 + 2 + 3);

    // a client closing its parked connection leaves no task behind
    tasks_within(base + 2 + 1, PARKED_BY).await;
    conns.clear();
    let mut c = connect(&addr).await;
    get(&mut c).await;
    until_tasks(base + 2 + 1 + 1).await;

    tx.send(true).expect("send");
    timeout(WAIT, task).await.expect("stops").expect("no panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_connection_closes_at_its_keepalive_deadline() {
    let base = live_tasks();
    let (addr, _requests, tx, task) = start(Some(2)).await;
    // two connections: two tasks before parking, the lot's one after
    let mut c = connect(&addr).await;
    let mut c2 = connect(&addr).await;
    get(&mut c2).await;
    get(&mut c).await;
    let idle_since = Instant::now();
    until_tasks(base + 2 + 2).await;
    tasks_within(base + 2 + 1, PARKED_BY).await;
    closed_after(&mut c, WAIT).await;
    let idle = idle_since.elapsed();
    // never early; late by at most the lot's sweep interval (1 s) and some slack
    assert!(idle >= Duration::from_secs(2), "{idle:?}");
    assert!(idle < Duration::from_millis(3500), "{idle:?}");
    closed_after(&mut c2, WAIT).await;
    tx.send(true).expect("send");
    timeout(WAIT, task).await.expect("stops").expect("no panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_connections_close_on_shutdown() {
    let base = live_tasks();
    let (addr, requests, tx, task) = start(None).await;
    let mut served = connect(&addr).await;
    get(&mut served).await;
    let mut idle = connect(&addr).await;
    get(&mut idle).await;
    tasks_within(base + 2 + 1, PARKED_BY).await;

    let stop = Instant::now();
    tx.send(true).expect("send");
    // a request that comes within the grace is still served, and the connection closed
    let head = get(&mut served).await;
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    closed_after(&mut served, WAIT).await;
    // an idle one is closed after the grace; the service counted it until then
    closed_after(&mut idle, WAIT).await;
    let waited = stop.elapsed();
    assert!(waited >= SHUTDOWN_GRACE, "{waited:?}");
    timeout(WAIT, task).await.expect("stops").expect("no panic");
    assert!(stop.elapsed() < SHUTDOWN_GRACE * 3, "{:?}", stop.elapsed());
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_unix_connection_is_resumed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("park.sock");
    let path = path.to_str().expect("utf-8 path").to_string();
    let base = live_tasks();
    let requests = Arc::new(AtomicUsize::new(0));
    let app = HttpServer::new_app(Hello {
        requests: requests.clone(),
        keepalive_secs: None,
    });
    let mut service = Service::new("park-uds".into(), app);
    service.add_uds(&path, None);
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move { service.start_service(None, rx, 1).await });
    let start = Instant::now();
    let mut c = loop {
        match tokio::net::UnixStream::connect(&path).await {
            Ok(c) => break c,
            Err(e) => assert!(start.elapsed() < WAIT, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut c2 = tokio::net::UnixStream::connect(&path)
        .await
        .expect("connect");
    get(&mut c).await;
    get(&mut c2).await;
    // two connections: two tasks before parking, the lot's one after
    until_tasks(base + 2 + 2).await;
    tasks_within(base + 2 + 1, PARKED_BY).await;
    get(&mut c).await;
    get(&mut c).await;
    get(&mut c2).await;
    assert_eq!(requests.load(Ordering::SeqCst), 5);
    tx.send(true).expect("send");
    timeout(WAIT, task).await.expect("stops").expect("no panic");
}
