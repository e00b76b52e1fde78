//! gRPC-web end to end: an HTTP/1.1 client speaks gRPC-web (binary and text) to the proxy,
//! whose gRPC-web module bridges it to a Python `grpcio` server over h2c.

mod common;
#[path = "py/peers.rs"]
mod peers;

use async_trait::async_trait;
use common::{start_proxy, start_proxy_h2c, Client, Resp};
use pingora_core::modules::http::grpc_web::{GrpcWeb, GrpcWebBridge};
use pingora_core::modules::http::HttpModules;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;

struct GrpcWebProxy {
    origin: SocketAddr,
}

#[async_trait]
impl ProxyHttp for GrpcWebProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(Box::new(GrpcWeb));
    }

    async fn early_request_filter(&self, session: &mut Session, _c: &mut ()) -> Result<()> {
        if let Some(bridge) = session.downstream_modules_ctx.get_mut::<GrpcWebBridge>() {
            bridge.init();
        }
        Ok(())
    }

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.origin, false, String::new());
        peer.options.set_http_version(2, 2);
        Ok(Box::new(peer))
    }
}

/// A gRPC / gRPC-web message frame.
fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![flag];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Split a gRPC-web body into (flag, payload) frames.
fn frames(mut body: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while !body.is_empty() {
        assert!(body.len() >= 5, "truncated frame header: {body:?}");
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        assert!(body.len() >= 5 + len, "truncated frame");
        out.push((body[0], body[5..5 + len].to_vec()));
        body = &body[5 + len..];
    }
    out
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decode base64 made of independently padded segments.
fn b64_decode(text: &[u8]) -> Vec<u8> {
    assert_eq!(text.len() % 4, 0, "whole quanta");
    let mut out = Vec::new();
    for q in text.chunks(4) {
        let pad = q.iter().filter(|c| **c == b'=').count();
        let mut n = 0u32;
        for c in &q[..4 - pad] {
            let v = B64.iter().position(|b| b == c).expect("base64 char") as u32;
            n = n << 6 | v;
        }
        n <<= 6 * pad;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    out
}

/// POST one gRPC-web call over HTTP/1.1 and read the response.
async fn call(proxy: SocketAddr, method: &str, content_type: &str, body: &[u8]) -> Resp {
    let mut client = Client::connect(proxy).await;
    let head = format!(
        "POST /test.Echo/{method} HTTP/1.1\r\nHost: grpc.test\r\nContent-Type: {content_type}\r\n\
         X-Grpc-Web: 1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.send_raw(head.as_bytes()).await;
    client.send_raw(body).await;
    client.read_resp(false).await.expect("a response")
}

fn trailer_text(frames: &[(u8, Vec<u8>)]) -> String {
    let (flag, block) = frames.last().expect("a trailer frame");
    assert_eq!(*flag, 0x80, "last frame is the trailer frame");
    String::from_utf8_lossy(block).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_binary_and_text_to_grpcio() {
    let server = peers::PyServer::start("grpc_peer.py", &["server"]);
    let proxy = start_proxy(GrpcWebProxy {
        origin: ([127, 0, 0, 1], server.port).into(),
    })
    .await;

    // binary, unary
    let resp = call(
        proxy,
        "Unary",
        "application/grpc-web+proto",
        &frame(0, b"hello"),
    )
    .await;
    assert_eq!(resp.status, 200);
    // grpcio answers `application/grpc` whatever the request's codec suffix
    assert_eq!(resp.head.get("content-type"), Some("application/grpc-web"));
    let got = frames(&resp.body);
    assert_eq!(got[0], (0, b"hello".to_vec()));
    let trailers = trailer_text(&got);
    assert!(trailers.contains("grpc-status: 0\r\n"), "{trailers}");
    assert!(
        trailers.contains("x-upstream-trailer: unary\r\n"),
        "{trailers}"
    );

    // binary, server streaming
    let resp = call(
        proxy,
        "ServerStream",
        "application/grpc-web",
        &frame(0, b"5"),
    )
    .await;
    let got = frames(&resp.body);
    assert_eq!(got.len(), 6, "5 replies and the trailers");
    for (i, (flag, payload)) in got[..5].iter().enumerate() {
        assert_eq!(
            (*flag, payload.as_slice()),
            (0, format!("reply {i}").as_bytes())
        );
    }
    assert!(trailer_text(&got).contains("grpc-status: 0"));

    // text, unary with a larger message
    let msg: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let body = b64_encode(&frame(0, &msg));
    let resp = call(proxy, "Unary", "application/grpc-web-text", body.as_bytes()).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.head.get("content-type"),
        Some("application/grpc-web-text")
    );
    let got = frames(&b64_decode(&resp.body));
    assert_eq!(got[0], (0, msg));
    assert!(trailer_text(&got).contains("grpc-status: 0"));

    // an error status from the upstream ("trailers-only": status in the header block)
    let resp = call(
        proxy,
        "Unary",
        "application/grpc-web",
        &frame(0, b"fail:not here"),
    )
    .await;
    assert_eq!(resp.status, 200);
    let status_in_head = resp.head.get("grpc-status").map(str::to_string);
    let status = match status_in_head {
        Some(s) => s,
        None => {
            let t = trailer_text(&frames(&resp.body));
            assert!(t.contains("grpc-message: not here"), "{t}");
            t.lines()
                .find_map(|l| l.strip_prefix("grpc-status: "))
                .expect("status trailer")
                .trim()
                .to_string()
        }
    };
    assert_eq!(status, "5");

    // a gRPC-web-text body that is not base64: refused in gRPC terms (INTERNAL, from the 400)
    let resp = call(
        proxy,
        "Unary",
        "application/grpc-web-text",
        b"AAAA*not-base64",
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.head.get("grpc-status"), Some("13"), "{:?}", resp.head);
}

#[tokio::test]
async fn grpc_web_upstream_down_gets_grpc_status() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let proxy = start_proxy(GrpcWebProxy { origin: dead }).await;
    let resp = call(proxy, "Unary", "application/grpc-web", &frame(0, b"x")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.head.get("content-type"), Some("application/grpc-web"));
    assert_eq!(resp.head.get("grpc-status"), Some("14"));
    assert!(resp
        .head
        .get("grpc-message")
        .is_some_and(|m| m.starts_with("proxy error 502")));
    assert!(resp.body.is_empty());
}

/// Browsers on HTTP/2 send gRPC-web over HTTP/2 too: the same bridge works on an h2
/// downstream stream (client: Python `httpx` with h2c prior knowledge).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_over_h2_downstream() {
    let server = peers::PyServer::start("grpc_peer.py", &["server"]);
    let proxy = start_proxy_h2c(GrpcWebProxy {
        origin: ([127, 0, 0, 1], server.port).into(),
    })
    .await;
    let url = format!("http://{proxy}/test.Echo/Unary");
    let limit = std::time::Duration::from_secs(30);
    let out = peers::run_client_async("grpc_web_h2_client.py", vec![url], limit).await;
    let stdout = peers::success_stdout("grpc-web h2 client", &out);
    assert!(stdout.contains("HTTP HTTP/2 200"), "{stdout}");
    assert!(stdout.contains("CT application/grpc-web\n"), "{stdout}");
    assert!(stdout.contains(r#"[0, "hello"]"#), "{stdout}");
    assert!(stdout.contains("grpc-status: 0\\r\\n"), "{stdout}");
}
