use super::*;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex as AsyncMutex;

fn meta(key: u64, id: i32) -> ConnectionMeta {
    ConnectionMeta::new(key, id)
}

#[test]
fn get_returns_only_same_group() {
    let pool: ConnectionPool<String> = ConnectionPool::new(4);
    pool.put(&meta(1, 10), "a10".into());
    pool.put(&meta(2, 20), "b20".into());
    pool.put(&meta(1, 11), "a11".into());
    assert_eq!(pool.len(), 3);

    assert_eq!(pool.get(&2).as_deref(), Some("b20"));
    assert_eq!(pool.get(&2), None);
    let mut got = vec![pool.get(&1).expect("first"), pool.get(&1).expect("second")];
    got.sort();
    assert_eq!(got, ["a10", "a11"]);
    assert_eq!(pool.get(&1), None);
    assert_eq!(pool.get(&3), None);
    assert!(pool.is_empty());
}

#[tokio::test]
async fn get_tells_watcher_it_was_taken() {
    let pool: ConnectionPool<u8> = ConnectionPool::new(4);
    let (_evicted, used) = pool.put(&meta(1, 1), 7);
    assert_eq!(pool.get(&1), Some(7));
    assert_eq!(used.await, Ok(true));
}

#[tokio::test]
async fn per_key_cap_drops_oldest() {
    let pool: ConnectionPool<&'static str> = ConnectionPool::new(2);
    let (evicted1, used1) = pool.put(&meta(1, 1), "one");
    let (_e2, _u2) = pool.put(&meta(1, 2), "two");
    let (_e3, _u3) = pool.put(&meta(1, 3), "three");
    // another group is unaffected by group 1's cap
    pool.put(&meta(2, 4), "four");
    assert_eq!(pool.len(), 3);

    tokio::time::timeout(Duration::from_secs(1), evicted1.notified())
        .await
        .expect("oldest connection of the group is evicted");
    assert!(
        used1.await.is_err(),
        "evicted connection is dropped, not taken"
    );

    let mut left = vec![pool.get(&1).expect("a"), pool.get(&1).expect("b")];
    left.sort();
    assert_eq!(left, ["three", "two"]);
    assert_eq!(pool.get(&1), None);
    assert_eq!(pool.get(&2), Some("four"));
}

#[tokio::test]
async fn global_cap_evicts_least_recently_released() {
    let pool: ConnectionPool<u32> = ConnectionPool::with_limits(10, 2);
    let (evicted1, _u1) = pool.put(&meta(1, 1), 1);
    let (evicted2, _u2) = pool.put(&meta(2, 2), 2);
    let (_e3, _u3) = pool.put(&meta(1, 3), 3);
    tokio::time::timeout(Duration::from_secs(1), evicted1.notified())
        .await
        .expect("least recent connection is evicted");
    assert_eq!(pool.get(&1), Some(3));
    assert_eq!(pool.get(&1), None);
    assert_eq!(pool.get(&2), Some(2));
    // taken, not evicted: no permit is stored for it
    assert!(
        tokio::time::timeout(Duration::from_millis(20), evicted2.notified())
            .await
            .is_err()
    );
}

#[test]
fn zero_size_keeps_nothing() {
    let pool: ConnectionPool<u8> = ConnectionPool::new(0);
    pool.put(&meta(1, 1), 1);
    assert_eq!(pool.get(&1), None);
    assert!(pool.is_empty());
}

#[test]
fn pop_closed_removes_only_that_connection() {
    let pool: ConnectionPool<u8> = ConnectionPool::new(8);
    pool.put(&meta(1, 1), 1);
    pool.put(&meta(1, 2), 2);
    pool.pop_closed(&meta(1, 1));
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.get(&1), Some(2));
    assert_eq!(pool.get(&1), None);
    // unknown connections are ignored
    pool.pop_closed(&meta(9, 9));
}

#[test]
fn empty_groups_are_forgotten_on_close_and_eviction() {
    let pool: ConnectionPool<u8> = ConnectionPool::with_limits(4, 2);
    pool.put(&meta(1, 1), 1);
    pool.pop_closed(&meta(1, 1));
    assert_eq!(pool.group_count(), 0);
    for key in 10..20u64 {
        pool.put(&meta(key, key as i32), 0);
    }
    // the global cap of 2 evicted all but the last two groups
    assert_eq!(pool.group_count(), 2);
    assert_eq!(pool.get(&19), Some(0));
}

/// A connected TCP pair over loopback: (client side, server side).
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.expect("connect"), accepted.expect("accept").0)
}

type Shared = Arc<AsyncMutex<TcpStream>>;

/// Pool `client` and spawn its idle_poll watcher, as a connector does.
fn pool_and_watch(
    pool: &Arc<ConnectionPool<Shared>>,
    m: ConnectionMeta,
    client: TcpStream,
    timeout: Option<Duration>,
) -> tokio::task::JoinHandle<()> {
    let shared = Arc::new(AsyncMutex::new(client));
    let guard = shared
        .clone()
        .try_lock_owned()
        .expect("fresh mutex is unlocked");
    let (evicted, used) = pool.put(&m, shared);
    let pool = pool.clone();
    tokio::spawn(async move { pool.idle_poll(guard, &m, timeout, evicted, used).await })
}

async fn join(task: tokio::task::JoinHandle<()>) {
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("watcher finishes")
        .expect("watcher does not panic");
}

#[tokio::test]
async fn idle_poll_evicts_when_peer_closes() {
    let pool = Arc::new(ConnectionPool::new(4));
    let (client, server) = tcp_pair().await;
    let watcher = pool_and_watch(&pool, meta(1, 1), client, None);
    drop(server);
    join(watcher).await;
    assert!(pool.get(&1).is_none());
    assert!(pool.is_empty());
}

#[tokio::test]
async fn idle_poll_evicts_on_unexpected_data() {
    let pool = Arc::new(ConnectionPool::new(4));
    let (client, mut server) = tcp_pair().await;
    let watcher = pool_and_watch(&pool, meta(1, 1), client, None);
    server
        .write_all(b"HTTP/1.1 408 late\r\n\r\n")
        .await
        .expect("write");
    join(watcher).await;
    assert!(pool.get(&1).is_none());
}

#[tokio::test]
async fn idle_poll_evicts_after_timeout() {
    let pool = Arc::new(ConnectionPool::new(4));
    let (client, _server) = tcp_pair().await;
    let watcher = pool_and_watch(&pool, meta(1, 1), client, Some(Duration::from_millis(50)));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(pool.len(), 1, "still pooled before the timeout");
    join(watcher).await;
    assert!(pool.get(&1).is_none());
}

#[tokio::test]
async fn idle_poll_lets_go_when_taken() {
    let pool = Arc::new(ConnectionPool::new(4));
    let (client, mut server) = tcp_pair().await;
    let watcher = pool_and_watch(&pool, meta(1, 1), client, None);
    // let the watcher start reading
    tokio::time::sleep(Duration::from_millis(10)).await;
    let shared = pool.get(&1).expect("pooled");
    let mut stream = tokio::time::timeout(Duration::from_secs(2), shared.lock())
        .await
        .expect("watcher releases the lock");
    join(watcher).await;
    // the connection is intact: a byte written by the peer arrives here
    server.write_all(b"x").await.expect("write");
    let mut buf = [0u8; 1];
    tokio::io::AsyncReadExt::read_exact(&mut *stream, &mut buf)
        .await
        .expect("read");
    assert_eq!(&buf, b"x");
}

#[tokio::test]
async fn idle_poll_exits_on_eviction() {
    let pool = Arc::new(ConnectionPool::new(1));
    let (c1, _s1) = tcp_pair().await;
    let (c2, _s2) = tcp_pair().await;
    let w1 = pool_and_watch(&pool, meta(1, 1), c1, None);
    let w2 = pool_and_watch(&pool, meta(1, 2), c2, None);
    join(w1).await; // evicted by the per-key cap of 1
    assert_eq!(pool.len(), 1);
    assert!(!w2.is_finished());
    w2.abort();
}

#[tokio::test]
async fn clear_closes_everything() {
    let pool = Arc::new(ConnectionPool::new(4));
    let (c1, _s1) = tcp_pair().await;
    let (c2, mut s2) = tcp_pair().await;
    let w1 = pool_and_watch(&pool, meta(1, 1), c1, None);
    let w2 = pool_and_watch(&pool, meta(2, 2), c2, None);
    pool.clear();
    join(w1).await;
    join(w2).await;
    assert!(pool.is_empty());
    assert_eq!(pool.group_count(), 0);
    // the upstream side sees the connection closed
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::io::AsyncReadExt::read(&mut s2, &mut buf),
    )
    .await
    .expect("closed in time")
    .expect("read");
    assert_eq!(n, 0);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_drops_after_deadline() {
    let pool = Arc::new(ConnectionPool::new(4));
    let m = meta(5, 1);
    let (evicted, used) = pool.put(&m, ());
    let (_closed_tx, closed_rx) = watch::channel(false);
    let p = pool.clone();
    let task = tokio::spawn(async move {
        p.idle_timeout(&m, Duration::from_secs(30), evicted, closed_rx, used)
            .await
    });
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(pool.len(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    task.await.expect("watcher");
    assert!(pool.get(&5).is_none());
}

#[tokio::test]
async fn idle_timeout_drops_when_closed() {
    let pool = Arc::new(ConnectionPool::new(4));
    let m = meta(5, 1);
    let (evicted, used) = pool.put(&m, ());
    let (closed_tx, closed_rx) = watch::channel(false);
    let p = pool.clone();
    let task = tokio::spawn(async move {
        p.idle_timeout(&m, Duration::from_secs(300), evicted, closed_rx, used)
            .await
    });
    closed_tx.send(true).expect("watcher listens");
    join(task).await;
    assert!(pool.get(&5).is_none());
}

#[test]
fn concurrent_put_get_keeps_counts_consistent() {
    let pool: Arc<ConnectionPool<u64>> = Arc::new(ConnectionPool::with_limits(64, 4096));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for i in 0..2000i32 {
                    let key = (i % 8) as u64;
                    pool.put(&meta(key, t * 100_000 + i), key);
                    if i % 2 == 0 {
                        if let Some(v) = pool.get(&key) {
                            assert_eq!(v, key);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let mut drained = 0;
    for key in 0..8u64 {
        while let Some(v) = pool.get(&key) {
            assert_eq!(v, key);
            drained += 1;
        }
    }
    assert!(drained <= 8 * 64, "per-key cap holds: {drained}");
    assert!(pool.is_empty());
}

#[tokio::test]
async fn retain_drops_rejected_and_forgets_them() {
    let pool: ConnectionPool<u32> = ConnectionPool::new(4);
    let (_e, used) = pool.put(&meta(1, 1), 10);
    pool.put_unwatched(&meta(1, 2), 20);
    pool.put_unwatched(&meta(2, 3), 31);
    assert_eq!(pool.retain(|_, v| *v % 2 == 0), 1);
    assert_eq!(pool.len(), 2);
    // the emptied group is forgotten, the others stay
    assert_eq!(pool.group_count(), 1);
    assert_eq!(pool.retain(|m, _| m.id != 1), 1);
    assert!(used.await.is_err(), "dropped, not taken");
    assert_eq!(pool.get(&1), Some(20));
    assert!(pool.is_empty());
}

#[test]
fn unwatched_connections_obey_both_caps() {
    let pool: ConnectionPool<i32> = ConnectionPool::with_limits(2, 3);
    for id in 0..3 {
        pool.put_unwatched(&meta(1, id), id);
    }
    assert_eq!(pool.len(), 2, "per-group cap");
    pool.put_unwatched(&meta(2, 10), 10);
    pool.put_unwatched(&meta(3, 11), 11);
    assert_eq!(pool.len(), 3, "global cap");
    // the least recently released (group 1's id 1) went first
    assert_eq!(pool.get(&1), Some(2));
    assert_eq!(pool.get(&1), None);
}
