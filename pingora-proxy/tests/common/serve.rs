//! The accept loop shared by the proxy test harnesses (`common` and `h2/harness.rs`).

use pingora_core::apps::ServerApp;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::Stream;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serve `app` on a fresh loopback port, every connection through `process_new` (and again
/// for as long as it hands the connection back for reuse).
pub async fn serve_app<A: ServerApp + Send + Sync + 'static>(app: Arc<A>) -> SocketAddr {
    let _ = env_logger::builder().is_test(true).try_init();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        // Never flips: the test runtime ends the tasks.
        let (tx, rx) = tokio::sync::watch::channel(false);
        let _keep = tx;
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let app = app.clone();
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut stream: Stream = Box::new(L4Stream::from(sock));
                while let Some(next) = app.process_new(stream, &rx).await {
                    stream = next;
                }
            });
        }
    });
    addr
}
