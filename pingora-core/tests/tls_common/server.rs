//! An app served on a TLS listener of an in-process `Server`, for the
//! `tls_*` tests (kept apart from `tls_common/mod.rs`, which the example
//! smoke tests also include and which must not need `pingora_core`).

use crate::server_common::{free_addr, Running};
use crate::tls_common::wait_port;
use pingora_core::apps::ServerApp;
use pingora_core::listeners::TlsSettings;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::services::listening::Service;

/// One worker thread, no grace period, a short graceful shutdown.
pub fn conf() -> ServerConf {
    ServerConf {
        threads: 1,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    }
}

/// Serve `app` with `tls` on a free loopback port; returns the running
/// server (stopped when dropped) once the port accepts, and the port.
pub fn start_tls<A: ServerApp + Send + Sync + 'static>(app: A, tls: TlsSettings) -> (Running, u16) {
    let addr = free_addr();
    let port: u16 = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let mut server = Server::new_with_opt_and_conf(None, conf());
    server.bootstrap();
    let mut service = Service::new("tls test".into(), app);
    service.add_tls_with_settings(&addr, None, tls);
    server.add_service(service);
    let running = Running::start(server);
    wait_port(port);
    (running, port)
}
