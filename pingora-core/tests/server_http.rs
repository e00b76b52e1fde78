//! A `Server` running a `ServeHttp` app, exercised by real TCP clients.

mod server_common;

use async_trait::async_trait;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::apps::HttpServerOptions;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Server, ShutdownSignal};
use pingora_core::services::listening::Service;
use server_common::*;
use std::io::Write;
use std::time::Duration;

/// Answers `<method> <path> <body>`; `/panic` panics, `/skip` ignores the
/// request body.
struct Echo;

#[async_trait]
impl ServeHttp for Echo {
    async fn response(&self, s: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = s.req_header().uri.path().to_string();
        if path == "/panic" {
            panic!("app failure on purpose");
        }
        if path == "/slow" {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut body = Vec::new();
        if path != "/skip" {
            while let Ok(Some(chunk)) = s.read_request_body().await {
                body.extend_from_slice(&chunk);
            }
        }
        let text = format!(
            "{} {} {}",
            s.req_header().method,
            path,
            String::from_utf8_lossy(&body)
        );
        http::Response::builder()
            .status(200)
            .header("x-app", "echo")
            .body(text.into_bytes())
            .expect("valid response")
    }
}

fn conf(work_stealing: bool, grace: u64) -> ServerConf {
    ServerConf {
        threads: 2,
        work_stealing,
        grace_period_seconds: Some(grace),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    }
}

fn start(conf: ServerConf, addr: &str) -> Running {
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = Service::new("echo http".into(), HttpServer::new_app(Echo));
    service.add_tcp(addr);
    server.add_service(service);
    Running::start(server)
}

fn keepalive_exchanges(addr: &str) {
    let mut c = connect(addr);
    let r = exchange(&mut c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"GET /a ");
    assert_eq!(r.header("x-app"), Some("echo"));
    // the same connection again, with a body
    let r = exchange(
        &mut c,
        "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"POST /b hello");
    // a body the app does not read is drained, the connection stays usable
    let r = exchange(
        &mut c,
        "POST /skip HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(r.body, b"POST /skip ");
    let r = exchange(&mut c, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.body, b"GET /c ");
    // HTTP/1.0 without keep-alive: answered, then closed
    let mut c = connect(addr);
    let r = exchange(&mut c, "GET /d HTTP/1.0\r\n\r\n");
    assert_eq!(r.body, b"GET /d ");
    assert!(is_closed(&mut c));
}

#[test]
fn work_stealing_server_keeps_alive() {
    let addr = free_addr();
    let running = start(conf(true, 0), &addr);
    keepalive_exchanges(&addr);
    running.send(ShutdownSignal::GracefulTerminate);
    running.wait_exit(WAIT);
}

#[test]
fn no_steal_server_serves_many_connections() {
    let addr = free_addr();
    let running = start(conf(false, 0), &addr);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || keepalive_exchanges(&addr))
        })
        .collect();
    for c in clients {
        c.join().expect("client ok");
    }
    running.send(ShutdownSignal::FastShutdown);
    running.wait_exit(WAIT);
}

#[test]
fn bad_requests_and_app_panics_get_error_responses() {
    let addr = free_addr();
    let running = start(conf(true, 0), &addr);
    let mut c = connect(&addr);
    let r = exchange(&mut c, "GARBAGE\r\n\r\n");
    assert_eq!(r.status, 400);
    let mut c = connect(&addr);
    let r = exchange(&mut c, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 500);
    assert!(is_closed(&mut c));
    // the server is still fine
    let mut c = connect(&addr);
    assert_eq!(exchange(&mut c, "GET /ok HTTP/1.1\r\n\r\n").status, 200);
    running.send(ShutdownSignal::FastShutdown);
    running.wait_exit(WAIT);
}

#[test]
fn graceful_shutdown_serves_the_grace_period_then_closes_after_the_request() {
    let addr = free_addr();
    let running = start(conf(true, 1), &addr);
    let mut c = connect(&addr);
    assert_eq!(exchange(&mut c, "GET /1 HTTP/1.1\r\n\r\n").status, 200);
    let mut idle = connect(&addr);
    assert_eq!(exchange(&mut idle, "GET /2 HTTP/1.1\r\n\r\n").status, 200);

    running.send(ShutdownSignal::GracefulTerminate);
    // still accepting, and serving normally, during the grace period
    let mut during = connect(&addr);
    let r = exchange(&mut during, "GET /3 HTTP/1.1\r\n\r\n");
    // no `Connection: close`: the connection stays open (HTTP/1.1's default)
    assert_eq!(r.header("connection"), None);
    // shut down while a request is being served: the grace period (1s)
    // ends during the 500ms request
    std::thread::sleep(Duration::from_millis(700));
    c.write_all(b"GET /slow HTTP/1.1\r\n\r\n").expect("write");
    // new connections are refused once the accept loop has stopped
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(&addr).is_ok() {
        assert!(start.elapsed() < WAIT, "still accepting");
        std::thread::sleep(Duration::from_millis(20));
    }
    // the request in flight is answered, then the connection is closed
    let r = read_response(&mut c);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"GET /slow ");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(is_closed(&mut c));
    // the idle keep-alive connection is closed too
    assert!(is_closed(&mut idle));
    // the server exits once drained, well before the drain limit
    let took = running.wait_exit(WAIT);
    assert!(took < Duration::from_secs(3), "drain took {took:?}");
}

#[test]
fn curl_client_if_installed() {
    let Ok(out) = std::process::Command::new("curl").arg("--version").output() else {
        eprintln!("curl is not installed; covered by the raw TCP tests");
        return;
    };
    assert!(out.status.success());
    let addr = free_addr();
    let running = start(conf(true, 0), &addr);
    let _ = connect(&addr);
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "--data", "xyz"])
        .arg(format!("http://{addr}/p"))
        .arg(format!("http://{addr}/q"))
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"POST /p xyzPOST /q xyz");
    running.send(ShutdownSignal::GracefulTerminate);
    running.wait_exit(WAIT);
    let _ = std::io::stderr().flush();
}

#[test]
fn h2c_preface_is_served_as_http2() {
    let addr = free_addr();
    let mut server = Server::new_with_opt_and_conf(None, conf(true, 0));
    server.bootstrap();
    let mut app = HttpServer::new_app(Echo);
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    app.server_options = Some(options);
    let mut service = Service::new("h2c".into(), app);
    service.add_tcp(&addr);
    server.add_service(service);
    let running = Running::start(server);

    let mut c = connect(&addr);
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .expect("write");
    // the server's first frame is its SETTINGS (type 4)
    let mut frame_head = [0u8; 9];
    std::io::Read::read_exact(&mut c, &mut frame_head).expect("settings frame");
    assert_eq!(frame_head[3], 4);
    // HTTP/1 is still served on an h2c-enabled service
    let mut c = connect(&addr);
    let r = exchange(&mut c, "GET /h1 HTTP/1.1\r\n\r\n");
    assert_eq!(r.body, b"GET /h1 ");
    running.send(ShutdownSignal::FastShutdown);
    running.wait_exit(WAIT);
}

#[test]
fn keepalive_request_limit_closes_after_the_last_allowed_request() {
    let addr = free_addr();
    let mut server = Server::new_with_opt_and_conf(None, conf(true, 0));
    server.bootstrap();
    let mut app = HttpServer::new_app(Echo);
    let mut options = HttpServerOptions::default();
    // the first request and one reuse
    options.keepalive_request_limit = Some(1);
    app.server_options = Some(options);
    let mut service = Service::new("limited".into(), app);
    service.add_tcp(&addr);
    server.add_service(service);
    let running = Running::start(server);

    let mut c = connect(&addr);
    let r = exchange(&mut c, "GET /1 HTTP/1.1\r\n\r\n");
    // reuse, HTTP/1.1's default, goes unannounced
    assert_eq!(r.header("connection"), None);
    // the persisted settings carry the remaining count to the next request
    let r = exchange(&mut c, "GET /2 HTTP/1.1\r\n\r\n");
    assert_eq!(r.body, b"GET /2 ");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(is_closed(&mut c));
    running.send(ShutdownSignal::FastShutdown);
    running.wait_exit(WAIT);
}
