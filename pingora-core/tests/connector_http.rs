//! http::Connector against a local HTTP/1.1 server: keep-alive reuse,
//! `Connection: close`, and HTTP/2-only peers.

use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::ErrorType;
use pingora_http::RequestHeader;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A minimal HTTP/1.1 server answering every request with `hi`; it closes
/// the connection after answering when `close` is set.
async fn start_server(close: bool) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(conn, close));
        }
    });
    (addr, accepted, task)
}

async fn serve(conn: TcpStream, close: bool) {
    let mut conn = BufReader::new(conn);
    loop {
        // read one request head (requests here have no body)
        let mut line = String::new();
        loop {
            line.clear();
            match conn.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let resp: &[u8] = if close {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        };
        if conn.get_mut().write_all(resp).await.is_err() || close {
            return;
        }
    }
}

async fn get(session: &mut HttpSession) {
    let mut req = RequestHeader::build("GET", b"/", None).expect("request");
    req.insert_header("Host", "test.example").expect("host");
    session
        .write_request_header(Box::new(req))
        .await
        .expect("write request");
    session.finish_request_body().await.expect("finish request");
    tokio::time::timeout(Duration::from_secs(5), session.read_response_header())
        .await
        .expect("response in time")
        .expect("response header");
    assert_eq!(
        session.response_header().map(|r| r.status.as_u16()),
        Some(200)
    );
    let mut body = Vec::new();
    while let Some(chunk) = session.read_response_body().await.expect("body") {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(body, b"hi");
}

#[tokio::test]
async fn keepalive_sessions_reuse_the_connection() {
    let (addr, accepted, task) = start_server(false).await;
    let connector = Connector::new(None);
    let peer = HttpPeer::new(addr, false, String::new());

    let (mut s, reused) = connector.get_http_session(&peer).await.expect("connect");
    assert!(!reused);
    get(&mut s).await;
    connector.release_http_session(s, &peer, None).await;

    let (mut s, reused) = connector.get_http_session(&peer).await.expect("reuse");
    assert!(reused);
    get(&mut s).await;
    connector.release_http_session(s, &peer, None).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    task.abort();
}

/// The digest describes the connection, so a reused connection comes with the one its last
/// session had (gathered once per connection, not once per request).
#[tokio::test]
async fn reused_connection_keeps_its_digest() {
    let (addr, accepted, task) = start_server(false).await;
    let connector = Connector::new(None);
    let peer = HttpPeer::new(addr, false, String::new());

    let (mut s, _) = connector.get_http_session(&peer).await.expect("connect");
    get(&mut s).await;
    let HttpSession::H1(mut h1) = s else {
        panic!("an HTTP/1 session was expected");
    };
    let timing = h1.digest().timing_digest.len();
    // a mark only the same digest can carry
    h1.digest_mut().timing_digest.push(None);
    assert!(connector
        .release_reusable_h1_session(h1, &peer, None)
        .is_none());

    let (mut s, reused) = connector.get_http_session(&peer).await.expect("reuse");
    assert!(reused);
    assert_eq!(s.digest().map(|d| d.timing_digest.len()), Some(timing + 1));
    get(&mut s).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    task.abort();
}

#[tokio::test]
async fn unfinished_session_is_not_pooled() {
    let (addr, _accepted, task) = start_server(false).await;
    let connector = Connector::new(None);
    let peer = HttpPeer::new(addr, false, String::new());
    let (s, _) = connector.get_http_session(&peer).await.expect("connect");
    // nothing was exchanged: the session cannot vouch for the connection
    connector.release_http_session(s, &peer, None).await;
    let (_s, reused) = connector.get_http_session(&peer).await.expect("connect");
    assert!(!reused);
    task.abort();
}

#[tokio::test]
async fn connection_close_is_not_reused() {
    let (addr, accepted, task) = start_server(true).await;
    let connector = Connector::new(None);
    let peer = HttpPeer::new(addr, false, String::new());
    for _ in 0..2 {
        let (mut s, reused) = connector.get_http_session(&peer).await.expect("connect");
        assert!(!reused);
        get(&mut s).await;
        connector.release_http_session(s, &peer, None).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    task.abort();
}

#[tokio::test]
async fn h2_only_peer_is_rejected_and_h2h1_gets_h1() {
    let (addr, _accepted, task) = start_server(false).await;
    let connector = Connector::new(None);
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.set_http_version(2, 2);
    let e = connector
        .get_http_session(&peer)
        .await
        .err()
        .expect("an HTTP/1-only server cannot serve an h2-only peer");
    assert_eq!(e.etype(), &ErrorType::H2Downgrade);

    peer.options.set_http_version(2, 1);
    connector.prefer_h1(&peer);
    let (mut s, _) = connector
        .get_http_session(&peer)
        .await
        .expect("h1 fallback");
    assert!(matches!(s, HttpSession::H1(_)));
    get(&mut s).await;
    task.abort();
}
