//! Shared pieces of the HTTP/2 proxy tests: an origin app speaking HTTP/1.1 and h2c on one
//! port, a proxy to a fixed peer, accept loops, and child processes killed on drop.
#![allow(dead_code)]

#[path = "../common/serve.rs"]
mod serve;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::ShutdownWatch;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::{http_proxy, HttpProxy, ProxyHttp, Session};
use serve::serve_app;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bound for a single test step.
pub const STEP: Duration = Duration::from_secs(60);

/// Serve `app` on a fresh loopback port (every connection through `process_new`).
pub async fn serve<A: ServerApp + Send + Sync + 'static>(app: Arc<A>) -> SocketAddr {
    serve_app(app).await
}

/// An origin for the tests, HTTP/1.1 and h2c (prior knowledge) on the same port:
/// * `/echo`: echoes the request body; with `x-want-trailers` it answers without a length
///   and ends with trailers `x-origin-trailer: done` and `grpc-status: 0`;
/// * `/big?n=BYTES`: streams `n` bytes (64 KiB pieces);
/// * anything else: `hello <proto>`; headers `x-origin-proto` and `x-seen-host`.
pub struct Origin {
    options: HttpServerOptions,
    /// Client addresses seen, to count upstream connections.
    pub peers: Mutex<HashSet<SocketAddr>>,
}

impl Origin {
    /// A new origin (not yet listening).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::bare())
    }

    /// A new origin, not shared (for a listening `Service`).
    pub fn bare() -> Self {
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        Origin {
            options,
            peers: Mutex::new(HashSet::new()),
        }
    }

    /// How many distinct client connections reached the origin.
    pub fn connections(&self) -> usize {
        self.peers.lock().expect("lock").len()
    }
}

fn query_n(q: Option<&str>) -> usize {
    q.and_then(|q| q.strip_prefix("n="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn respond(s: &mut ServerSession) -> Result<()> {
    let proto = if s.is_http2() { "h2" } else { "h1" };
    let path = s.req_header().uri.path().to_string();
    let host = String::from_utf8_lossy(s.get_header_bytes("host")).to_string();
    let mut resp = ResponseHeader::build(200, None)?;
    resp.insert_header("x-origin-proto", proto)?;
    resp.insert_header("x-seen-host", host)?;
    match path.as_str() {
        "/echo" => {
            let mut body = Vec::new();
            while let Some(piece) = s.read_request_body().await? {
                body.extend_from_slice(&piece);
            }
            // an HTTP/2 client's request trailer, reported back
            let req_trailer = s
                .as_http2()
                .and_then(|h| h.request_trailers())
                .and_then(|t| t.get("x-req-trailer"))
                .cloned();
            if let Some(v) = req_trailer {
                resp.insert_header("x-seen-req-trailer", v)?;
            }
            let trailers = s.get_header("x-want-trailers").is_some();
            if trailers {
                if !s.is_http2() {
                    resp.insert_header("transfer-encoding", "chunked")?;
                }
            } else {
                resp.insert_header("content-length", body.len())?;
            }
            s.write_response_header(Box::new(resp)).await?;
            s.write_response_body(Bytes::from(body), !trailers).await?;
            if trailers {
                let mut t = http::HeaderMap::new();
                t.insert("x-origin-trailer", "done".parse().expect("value"));
                t.insert("grpc-status", "0".parse().expect("value"));
                s.write_response_trailers(t).await?;
            }
        }
        "/big" => {
            let n = query_n(s.req_header().uri.query());
            resp.insert_header("content-length", n)?;
            s.write_response_header(Box::new(resp)).await?;
            let piece = Bytes::from(vec![b'x'; 64 * 1024]);
            let mut left = n;
            while left > 0 {
                let take = left.min(piece.len());
                left -= take;
                s.write_response_body(piece.slice(..take), left == 0)
                    .await?;
            }
        }
        _ => {
            s.drain_request_body().await?;
            let body = format!("hello {proto}");
            resp.insert_header("content-length", body.len())?;
            s.write_response_header(Box::new(resp)).await?;
            s.write_response_body(Bytes::from(body), true).await?;
        }
    }
    Ok(())
}

#[async_trait]
impl HttpServerApp for Origin {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match session.read_request().await {
            Ok(true) => {}
            _ => return None,
        }
        if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()).copied() {
            self.peers.lock().expect("lock").insert(addr);
        }
        if respond(&mut session).await.is_err() {
            session.shutdown().await;
            return None;
        }
        session
            .finish()
            .await
            .ok()
            .flatten()
            .map(|s| ReusedHttpStream::new(s, None))
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }
}

/// A proxy to one fixed peer.
pub struct ToPeer(pub HttpPeer);

#[async_trait]
impl ProxyHttp for ToPeer {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.0.clone()))
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        let proto = if session.is_http2() { "h2" } else { "h1" };
        resp.insert_header("x-downstream-proto", proto)
    }
}

/// A plaintext peer at `addr` speaking HTTP/2 (prior knowledge) with up to `streams`
/// concurrent streams per connection.
pub fn h2_peer(addr: SocketAddr, streams: usize) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.set_http_version(2, 2);
    peer.options.max_h2_streams = streams;
    peer
}

/// A plaintext HTTP/1.1 peer at `addr`.
pub fn h1_peer(addr: SocketAddr) -> HttpPeer {
    HttpPeer::new(addr, false, String::new())
}

/// A proxy app for `sv` with h2c enabled.
pub fn h2c_proxy<SV: ProxyHttp>(sv: SV) -> Arc<HttpProxy<SV>> {
    let conf = Arc::new(ServerConf::default());
    let mut proxy = http_proxy(&conf, sv);
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    proxy.server_options = Some(options);
    Arc::new(proxy)
}

/// A child process that is killed when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `program args..` to completion, killed (by `timeout`) after `limit`.
pub async fn run_for(program: &str, args: &[String], limit: Duration) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("--kill-after=5")
        .arg(format!("{}", limit.as_secs().max(1)))
        .arg(program)
        .args(args)
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || cmd.output().expect("run command"))
        .await
        .expect("join")
}

/// Run the python helper `script` (under tests/h2/) with `args`, within `limit`.
pub async fn run_py(script: &str, args: &[String], limit: Duration) -> Output {
    let mut all = vec![format!("{}/tests/h2/{script}", env!("CARGO_MANIFEST_DIR"))];
    all.extend_from_slice(args);
    run_for("python3", &all, limit).await
}

/// Send one request with the python h2 client (tests/h2/h2_client.py: `extra` holds the body
/// size, `name:value` headers and `trailer=name:value` trailers) and return its JSON report.
pub async fn py_client(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &[&str],
) -> serde_json::Value {
    let mut args = vec![
        "127.0.0.1".to_string(),
        addr.port().to_string(),
        method.to_string(),
        path.to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let out = run_py("h2_client.py", &args, STEP).await;
    assert!(out.status.success(), "h2_client.py failed: {}", text(&out));
    serde_json::from_slice(&out.stdout).expect("json from h2_client.py")
}

/// Text of a command's output, for assertions.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Start the python h2c origin (tests/h2/h2_origin.py) with `args`; it is killed when the
/// guard drops.
pub fn python_origin(args: &[&str]) -> (ChildGuard, SocketAddr) {
    python_server("h2_origin.py", args)
}

/// Start the python server `script` (under tests/h2/, printing its port first) with `args`;
/// it is killed when the guard drops.
pub fn python_server(script: &str, args: &[&str]) -> (ChildGuard, SocketAddr) {
    use std::io::BufRead;
    let mut child = Command::new("python3")
        .arg(format!("{}/tests/h2/{script}", env!("CARGO_MANIFEST_DIR")))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a python server");
    let stdout = child.stdout.take().expect("stdout");
    let guard = ChildGuard(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("origin port");
    let port: u16 = line.trim().parse().expect("port number");
    (guard, SocketAddr::from(([127, 0, 0, 1], port)))
}
