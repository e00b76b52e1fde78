use super::*;
use crate::server::Fds;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn tcp_endpoints_accept() {
    let mut listeners = Listeners::tcp("127.0.0.1:0");
    listeners.add_tcp_with_settings(
        "127.0.0.1:0",
        TcpSocketOptions {
            backlog: Some(16),
            so_reuseport: Some(true),
            dscp: Some(10),
            ..Default::default()
        },
    );
    assert_eq!(listeners.addresses().count(), 2);
    let stacks = listeners.build(None).await.expect("bind");
    assert_eq!(stacks.len(), 2);
    for stack in stacks {
        let addr = stack.tcp_local_addr().expect("tcp");
        assert_ne!(addr.port(), 0);
        let client = tokio::net::TcpStream::connect(addr);
        let (client, accepted) = tokio::join!(client, timeout(WAIT, stack.accept()));
        client.expect("connect");
        let stream = accepted.expect("in time").expect("accept");
        stream.handshake().await.expect("plain handshake");
    }
}

#[tokio::test]
async fn bind_failure_names_address_and_cause() {
    let listeners = Listeners::tcp("not-an-address");
    let e = listeners
        .build(None)
        .await
        .err()
        .expect("must fail")
        .to_string();
    assert!(e.contains("not-an-address"), "{e}");
    assert!(e.contains("BindError"), "{e}");

    // TEST-NET-1 is never a local address: bind() fails with EADDRNOTAVAIL
    let listeners = Listeners::tcp("192.0.2.1:80");
    let e = listeners
        .build(None)
        .await
        .err()
        .expect("must fail")
        .to_string();
    assert!(e.contains("bind() failed on 192.0.2.1:80"), "{e}");
    assert!(e.contains("cause:"), "{e}");
}

#[tokio::test]
async fn uds_permissions_and_stale_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.sock");
    let p = path.to_str().expect("utf8");
    // a leftover file from an earlier process must not prevent binding
    std::fs::write(&path, b"stale").expect("write");
    let listeners = Listeners::uds(p, Some(std::fs::Permissions::from_mode(0o600)));
    let stack = listeners.build(None).await.expect("bind").remove(0);
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let client = tokio::net::UnixStream::connect(&path);
    let (client, accepted) = tokio::join!(client, timeout(WAIT, stack.accept()));
    client.expect("connect");
    accepted.expect("in time").expect("accept");

    // default permissions: everyone may connect
    let path2 = dir.path().join("d.sock");
    let p2 = path2.to_str().expect("utf8");
    let _stack = Listeners::uds(p2, None).build(None).await.expect("bind");
    let mode = std::fs::metadata(&path2)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o666);
}

#[tokio::test]
async fn fd_table_records_and_reuses_sockets() {
    let table = Arc::new(tokio::sync::Mutex::new(Fds::new()));
    // bind a port first, then listen on it by its exact address
    let first = Listeners::tcp("127.0.0.1:0")
        .build(Some(table.clone()))
        .await
        .expect("bind")
        .remove(0);
    assert!(table.lock().await.get("127.0.0.1:0").is_some());
    let addr = first.tcp_local_addr().expect("tcp");
    // same address string again: adopts the recorded socket instead of
    // binding a new one (which would get another port)
    let adopted = Listeners::tcp("127.0.0.1:0")
        .build(Some(table.clone()))
        .await
        .expect("adopt")
        .remove(0);
    assert_eq!(adopted.tcp_local_addr(), Some(addr));
    assert_eq!(table.lock().await.len(), 1);
    drop(first);
    // the adopted listener owns its own descriptor: still accepting
    let client = tokio::net::TcpStream::connect(addr);
    let (client, accepted) = tokio::join!(client, timeout(WAIT, adopted.accept()));
    client.expect("connect");
    accepted.expect("in time").expect("accept");
}
