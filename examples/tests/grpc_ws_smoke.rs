//! The WebSocket and gRPC examples, each run as its own process between independent Python
//! peers (`websockets`, `grpcio`).

mod common;

use common::{example, peers, run_py_ok};
use pingora_e2e::Proxy;
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn websocket_proxy_echoes_through() {
    let origin = peers::PyServer::start("ws_echo.py", &["server"]);
    let proxy = Proxy::start(&example("websocket_proxy"), &[origin.port]);
    let url = format!("ws://127.0.0.1:{}/", proxy.port);
    let out = run_py_ok("ws_echo.py", &["client", &url, "200"]);
    assert!(out.contains("OK 200 close=1000"), "{out}");
}

#[test]
fn grpc_proxy_serves_all_call_kinds_and_tags_trailers() {
    let origin = peers::PyServer::start("grpc_peer.py", &["server"]);
    let proxy = Proxy::start(&example("grpc_proxy"), &[origin.port]);
    let out = run_py_ok(
        "grpc_peer.py",
        &["client", &format!("127.0.0.1:{}", proxy.port)],
    );
    peers::assert_grpc_checks(&out);
    assert!(out.contains(r#""x-proxied-by": "pingora-rs""#), "{out}");
}

#[test]
fn grpc_web_bridges_to_grpcio() {
    let origin = peers::PyServer::start("grpc_peer.py", &["server"]);
    let proxy = Proxy::start(&example("grpc_web"), &[origin.port]);
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    // one message frame: flag 0, length 2, "hi"; `Connection: close` so we can read to EOF
    let frame = [0u8, 0, 0, 0, 2, b'h', b'i'];
    let head =
        "POST /test.Echo/Unary HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc-web\r\n\
                Content-Length: 7\r\nConnection: close\r\n\r\n";
    sock.write_all(head.as_bytes()).expect("head");
    sock.write_all(&frame).expect("body");
    let mut resp = Vec::new();
    sock.read_to_end(&mut resp).expect("response");
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/grpc-web\r\n"),
        "{text}"
    );
    // the echoed frame, then the trailer frame (chunk framing in between)
    let at = resp
        .windows(frame.len())
        .position(|w| w == frame)
        .expect("echoed message frame");
    assert!(text[at..].contains("grpc-status: 0\r\n"), "{text}");
}

#[test]
fn grpc_proxy_over_tls_on_both_sides() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_string_lossy().into_owned();
    run_py_ok("grpc_peer.py", &["certs", &d]);
    let (ca, cert, key) = (
        format!("{d}/ca.pem"),
        format!("{d}/server.pem"),
        format!("{d}/server.key"),
    );
    let origin = peers::PyServer::start("grpc_peer.py", &["server", "--tls", &cert, &key]);
    let proxy = Proxy::start_with_env(
        &example("grpc_proxy"),
        &[origin.port],
        &[("TLS_CERT", &cert), ("TLS_KEY", &key), ("UPSTREAM_CA", &ca)],
    );
    let target = format!("localhost:{}", proxy.port);
    let out = run_py_ok("grpc_peer.py", &["client", &target, "--tls", &ca]);
    peers::assert_grpc_checks(&out);
    assert!(out.contains(r#""x-proxied-by": "pingora-rs""#), "{out}");
}
