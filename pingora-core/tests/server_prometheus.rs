//! The Prometheus service exposes the default registry in text format.

mod server_common;

use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Server, ShutdownSignal};
use pingora_core::services::listening::Service;
use server_common::*;

#[test]
fn prometheus_endpoint_reports_registered_counter() {
    let counter = prometheus::register_int_counter!(
        "server_test_requests_total",
        "requests seen by the prometheus integration test"
    )
    .expect("register");
    counter.inc_by(7);

    let addr = free_addr();
    let conf = ServerConf {
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = Service::prometheus_http_service();
    service.add_tcp(&addr);
    server.add_service(service);
    let running = Running::start(server);

    let mut c = connect(&addr);
    let r = exchange(&mut c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    let ct = r.header("content-type").expect("content type");
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = String::from_utf8(r.body).expect("utf8");
    assert!(
        text.contains("# TYPE server_test_requests_total counter"),
        "{text}"
    );
    assert!(text.contains("server_test_requests_total 7"), "{text}");
    running.send(ShutdownSignal::GracefulTerminate);
    running.wait_exit(WAIT);
}
