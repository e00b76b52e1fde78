//! The proxy run as a real listening service (`http_proxy_service`) on a Unix socket.

mod common;

use common::test_proxy::*;
use common::*;
use pingora_core::server::configuration::ServerConf;
use pingora_core::services::Service as ServiceTrait;
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_service_serves_and_shuts_down() {
    let origin = Origin::start().await;
    let (proxy, log) = TestProxy::new(vec![origin.addr]);
    let conf = Arc::new(ServerConf::default());
    let mut service =
        pingora_proxy::http_proxy_service_with_name(&conf, proxy, "test proxy service");
    assert_eq!(service.name(), "test proxy service");

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("proxy.sock");
    let path_str = path.to_str().expect("utf-8 path").to_string();
    service.add_uds(&path_str, None);

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(async move {
        service.start_service(None, shutdown_rx, 1).await;
    });

    // Wait for the socket to appear.
    let mut sock = None;
    for _ in 0..200 {
        if let Ok(s) = UnixStream::connect(&path).await {
            sock = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let sock = sock.expect("service listens on its unix socket");
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::new(rd);
    for _ in 0..2 {
        wr.write_all(b"GET / HTTP/1.1\r\nHost: uds.test\r\n\r\n")
            .await
            .expect("write request");
        let head = tokio::time::timeout(STEP, read_head(&mut rd))
            .await
            .expect("head in time")
            .expect("a response");
        assert_eq!(head.first.1, "200");
        assert_eq!(read_body(&mut rd, &head, false).await, b"hello");
    }
    assert_eq!(origin.connections(), 1);
    assert_eq!(wait_logged(&log, 2).await.len(), 2);

    shutdown_tx.send(true).expect("service still running");
    tokio::time::timeout(STEP, running)
        .await
        .expect("service stops after shutdown")
        .expect("service task");
}
