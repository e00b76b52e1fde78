//! HTTP/2 in pingora-core with independent peers: a `ServeHttp` app over h2c (prior
//! knowledge, HTTP/1.1 on the same port) and over TLS with ALPN (curl --http2), and the
//! HTTP connector reaching TLS origins by ALPN: h2 when offered, HTTP/1.1 when HTTP/2 was
//! only preferred, an error when it was required.

#[path = "server_common/mod.rs"]
mod server_common;
mod tls_common;

use async_trait::async_trait;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::apps::{HttpServerOptions, ServerApp};
use pingora_core::connectors::http::Connector;
use pingora_core::listeners::TlsSettings;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Server, ShutdownSignal};
use pingora_core::services::listening::Service;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::upstreams::peer::X509;
use pingora_error::ErrorType;
use pingora_http::RequestHeader;
use server_common::{free_addr, Running};
use std::sync::Arc;
use std::time::Duration;
use tls_common::*;

/// Answers `proto=<h1|h2> host=<Host> body=<request body length>`.
struct Proto;

#[async_trait]
impl ServeHttp for Proto {
    async fn response(&self, s: &mut ServerSession) -> http::Response<Vec<u8>> {
        let mut len = 0;
        while let Ok(Some(piece)) = s.read_request_body().await {
            len += piece.len();
        }
        if s.req_header().uri.path() == "/slow" {
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        let proto = if s.is_http2() { "h2" } else { "h1" };
        let host = String::from_utf8_lossy(s.get_header_bytes("host")).to_string();
        http::Response::builder()
            .status(200)
            .header("x-proto", proto)
            .body(format!("proto={proto} host={host} body={len}").into_bytes())
            .expect("response")
    }
}

fn conf() -> ServerConf {
    ServerConf {
        threads: 1,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

fn start<A: ServerApp + Send + Sync + 'static>(app: A, tls: Option<TlsSettings>) -> (Running, u16) {
    let addr = free_addr();
    let mut server = Server::new_with_opt_and_conf(None, conf());
    server.bootstrap();
    let mut service = Service::new("h2 test".into(), app);
    match tls {
        Some(tls) => service.add_tls_with_settings(&addr, None, tls),
        None => service.add_tcp(&addr),
    }
    server.add_service(service);
    let running = Running::start(server);
    wait_port(port_of(&addr));
    (running, port_of(&addr))
}

fn h2c_app() -> HttpServer<Proto> {
    let mut app = HttpServer::new_app(Proto);
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    app.server_options = Some(options);
    app
}

fn tls_settings(pki: &Pki, h2: bool) -> TlsSettings {
    let mut tls =
        TlsSettings::intermediate(pki.server.cert_str(), pki.server.key_str()).expect("settings");
    if h2 {
        tls.enable_h2();
    }
    tls
}

#[test]
fn h2c_prior_knowledge_and_http11_on_one_port() {
    let (_server, port) = start(h2c_app(), None);
    let url = format!("http://127.0.0.1:{port}/p");
    let (ok, out, err) = curl(&["--http2-prior-knowledge", "-D-", "-d", "12345", &url]);
    assert!(ok, "{err}");
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(
        out.ends_with(&format!("proto=h2 host=127.0.0.1:{port} body=5")),
        "{out}"
    );
    let (ok, out, err) = curl(&["--http1.1", "-D-", &url]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("body=0"),
        "{out}"
    );
    assert!(out.contains("proto=h1"), "{out}");

    // without h2c the preface is not taken for HTTP/2
    let (_plain, port) = start(HttpServer::new_app(Proto), None);
    let url = format!("http://127.0.0.1:{port}/p");
    let (ok, _, _) = curl(&["--http2-prior-knowledge", &url]);
    assert!(!ok, "h2c must be off by default");
}

#[test]
fn alpn_h2_over_tls_with_curl() {
    let pki = Pki::new();
    let (_server, port) = start(HttpServer::new_app(Proto), Some(tls_settings(&pki, true)));
    let url = format!("https://localhost:{port}/t");
    let ca = pki.ca.cert_str();
    let (ok, out, err) = curl(&["--http2", "--cacert", ca, "-D-", "-d", "abc", &url]);
    assert!(ok, "{err}");
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(
        out.ends_with(&format!("proto=h2 host=localhost:{port} body=3")),
        "{out}"
    );
    let (ok, out, err) = curl(&["--http1.1", "--cacert", ca, "-D-", &url]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("HTTP/1.1 200") && out.contains("proto=h1"),
        "{out}"
    );

    // a listener without enable_h2 keeps curl on HTTP/1.1
    let (_h1, port) = start(HttpServer::new_app(Proto), Some(tls_settings(&pki, false)));
    let url = format!("https://localhost:{port}/t");
    let (ok, out, err) = curl(&["--http2", "--cacert", ca, "-D-", &url]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("HTTP/1.1 200") && out.contains("proto=h1"),
        "{out}"
    );
}

fn tls_peer(port: u16, pki: &Pki, max: u8, min: u8) -> HttpPeer {
    let mut p = HttpPeer::new(("127.0.0.1", port), true, "localhost".to_string());
    p.options.ca = Some(Arc::new(
        vec![X509::from_der(pki.ca.cert_der.clone())].into(),
    ));
    p.options.total_connection_timeout = Some(Duration::from_secs(10));
    p.options.set_http_version(max, min);
    p.options.max_h2_streams = 4;
    p
}

async fn fetch(c: &Connector, peer: &HttpPeer) -> pingora_error::Result<(bool, String)> {
    let (mut s, _reused) = c.get_http_session(peer).await?;
    let mut req = RequestHeader::build("GET", b"/u", None).expect("request");
    req.insert_header("Host", "localhost").expect("host");
    s.write_request_header(Box::new(req)).await?;
    s.finish_request_body().await?;
    s.read_response_header().await?;
    let mut body = Vec::new();
    while let Some(piece) = s.read_response_body().await? {
        body.extend_from_slice(&piece);
    }
    let h2 = matches!(s, HttpSession::H2(_));
    c.release_http_session(s, peer, None).await;
    Ok((h2, String::from_utf8_lossy(&body).to_string()))
}

#[test]
fn connector_negotiates_h2_by_alpn_and_falls_back_to_h1() {
    let pki = Pki::new();
    let (_h2_server, h2_port) = start(HttpServer::new_app(Proto), Some(tls_settings(&pki, true)));
    let (_h1_server, h1_port) = start(HttpServer::new_app(Proto), Some(tls_settings(&pki, false)));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let c = Connector::new(None);
        // h2 preferred, offered: h2, and the connection is shared by later requests
        let peer = tls_peer(h2_port, &pki, 2, 1);
        for _ in 0..3 {
            let (h2, body) = fetch(&c, &peer).await.expect("h2 fetch");
            assert!(h2, "{body}");
            assert_eq!(body, "proto=h2 host=localhost body=0");
        }
        assert_eq!(c.h2().open_connections(&peer), 1);

        // h2 preferred, the server only speaks HTTP/1.1: HTTP/1.1
        let peer = tls_peer(h1_port, &pki, 2, 1);
        let (h2, body) = fetch(&c, &peer).await.expect("h1 fallback");
        assert!(!h2);
        assert_eq!(body, "proto=h1 host=localhost body=0");

        // h2 required, the server only speaks HTTP/1.1: an error, no silent downgrade
        let peer = tls_peer(h1_port, &pki, 2, 2);
        let e = fetch(&c, &peer).await.expect_err("h2 required");
        assert_eq!(e.etype(), &ErrorType::H2Downgrade, "{e}");
    });
}

#[test]
fn shutdown_sends_goaway_and_streams_in_flight_complete() {
    let (server, port) = start(h2c_app(), None);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let (send, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
        let conn = tokio::spawn(conn);
        let mut send = send.ready().await.expect("ready");
        let req = http::Request::get(format!("http://127.0.0.1:{port}/slow"))
            .body(())
            .expect("request");
        let (resp, _) = send.send_request(req, true).expect("send");
        tokio::time::sleep(Duration::from_millis(150)).await;
        server.send(ShutdownSignal::GracefulTerminate);
        let resp = tokio::time::timeout(Duration::from_secs(10), resp)
            .await
            .expect("in time")
            .expect("the stream in flight completes");
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut text = Vec::new();
        while let Some(piece) = body.data().await {
            text.extend_from_slice(&piece.expect("data"));
        }
        assert!(String::from_utf8_lossy(&text).starts_with("proto=h2"));
        // after the GOAWAY the server closes the connection cleanly
        let closed = tokio::time::timeout(Duration::from_secs(10), conn)
            .await
            .expect("connection ends");
        assert!(
            closed.expect("join").is_ok(),
            "connection must end without error"
        );
    });
}
