//! A listening service on a Unix socket, with the socket file's permissions.

mod server_common;

use async_trait::async_trait;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Server, ShutdownSignal};
use pingora_core::services::listening::Service;
use server_common::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

struct Hello;

#[async_trait]
impl ServeHttp for Hello {
    async fn response(&self, _s: &mut ServerSession) -> http::Response<Vec<u8>> {
        http::Response::new(b"hello over uds".to_vec())
    }
}

#[test]
fn uds_service_with_permissions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("http.sock");
    let p = path.to_str().expect("utf8").to_string();
    // a stale socket file from an earlier run is replaced
    std::fs::write(&path, b"stale").expect("write");

    let conf = ServerConf {
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    // the app used directly: every ServeHttp is an HTTP server app
    let mut service = Service::new("uds".into(), Hello);
    service.add_uds(&p, Some(std::fs::Permissions::from_mode(0o600)));
    server.add_service(service);
    let running = Running::start(server);

    let start = Instant::now();
    let mut c = loop {
        match UnixStream::connect(&path) {
            Ok(c) => break c,
            Err(e) if start.elapsed() > WAIT => panic!("cannot connect: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    c.set_read_timeout(Some(WAIT)).expect("timeout");
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    for _ in 0..2 {
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let r = read_response(&mut c);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"hello over uds");
    }
    running.send(ShutdownSignal::GracefulTerminate);
    running.wait_exit(WAIT);
}
