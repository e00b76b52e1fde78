//! Test harness: an in-process HTTP/1 origin that counts its connections, a raw HTTP/1 client,
//! and a helper that serves a `ProxyHttp` on a loopback listener.
#![allow(dead_code)]

mod serve;
pub mod test_proxy;

pub use serve::serve_app;

use pingora_core::server::configuration::ServerConf;
use pingora_proxy::{http_proxy, ProxyHttp};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound for any single test step.
pub const STEP: Duration = Duration::from_secs(20);

/// FNV-1a, to compare large bodies without echoing them.
pub fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// A deterministic body of `n` bytes.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A parsed HTTP/1 message head.
#[derive(Debug, Clone)]
pub struct Head {
    /// Request line parts or status line parts.
    pub first: (String, String),
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// First value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read one message head; `None` on clean EOF before any byte.
pub async fn read_head<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Option<Head> {
    let mut first = String::new();
    if r.read_line(&mut first).await.ok()? == 0 {
        return None;
    }
    let mut parts = first.trim_end().splitn(3, ' ');
    let a = parts.next()?.to_string();
    let b = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Some(Head {
        first: (a, b),
        headers,
    })
}

/// Read a body framed by `head` (content-length or chunked; `to_close` reads until EOF).
pub async fn read_body<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
    head: &Head,
    to_close: bool,
) -> Vec<u8> {
    let mut body = Vec::new();
    if head
        .get("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().ends_with("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).await.expect("chunk size line");
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .expect("hex chunk size");
            if size == 0 {
                // trailers until the empty line
                loop {
                    let mut l = String::new();
                    r.read_line(&mut l).await.expect("trailer line");
                    if l.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..]).await.expect("chunk data");
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf).await.expect("chunk crlf");
        }
    } else if let Some(len) = head.get("content-length") {
        let len: usize = len.parse().expect("numeric content-length");
        body.resize(len, 0);
        r.read_exact(&mut body).await.expect("body");
    } else if to_close {
        r.read_to_end(&mut body).await.expect("body to close");
    }
    body
}

/// What the origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub head: Head,
    pub body_len: usize,
    pub body_hash: u64,
    pub chunked: bool,
}

/// An HTTP/1 origin server on 127.0.0.1 with keep-alive.
///
/// Paths: `/big/N` answers N pattern bytes; `/chunked/N` the same, chunked; `/slow` answers
/// after 3 s; `/echo-info` answers "len hash"; `/truncated` breaks off its body; `/close`
/// closes after answering; `/early` answers before reading the upload; else "hello".
pub struct Origin {
    pub addr: SocketAddr,
    pub conns: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    pub async fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let conns = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, s) = (conns.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_origin_conn(sock, s.clone()));
            }
        });
        Origin {
            addr,
            conns,
            seen,
            task,
        }
    }

    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }
}

async fn serve_origin_conn(sock: TcpStream, seen: Arc<Mutex<Vec<Seen>>>) {
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::new(rd);
    while let Some(head) = read_head(&mut rd).await {
        let path = head.first.1.clone();
        if path == "/early" {
            // Answer before reading the upload, then take the rest of it and close.
            let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nearly";
            if wr.write_all(resp).await.is_err() {
                return;
            }
            let body = read_body(&mut rd, &head, false).await;
            seen.lock().expect("seen lock").push(Seen {
                method: head.first.0.clone(),
                path,
                head: head.clone(),
                body_len: body.len(),
                body_hash: fnv(&body),
                chunked: false,
            });
            return;
        }
        let body = read_body(&mut rd, &head, false).await;
        let chunked = head.get("transfer-encoding").is_some();
        seen.lock().expect("seen lock").push(Seen {
            method: head.first.0.clone(),
            path: path.clone(),
            head: head.clone(),
            body_len: body.len(),
            body_hash: fnv(&body),
            chunked,
        });
        let resp = if let Some(n) = path.strip_prefix("/big/") {
            let n: usize = n.parse().unwrap_or(0);
            let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes();
            r.extend_from_slice(&pattern(n));
            r
        } else if let Some(n) = path.strip_prefix("/chunked/") {
            let n: usize = n.parse().unwrap_or(0);
            let data = pattern(n);
            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for c in data.chunks(10_000) {
                r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                r.extend_from_slice(c);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            r
        } else if path == "/slow" {
            tokio::time::sleep(Duration::from_secs(3)).await;
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow".to_vec()
        } else if path == "/truncated" {
            // Promises 100 bytes, sends 50, closes.
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
            r.extend_from_slice(&pattern(50));
            let _ = wr.write_all(&r).await;
            let _ = wr.shutdown().await;
            return;
        } else if path == "/close" {
            // Keep-alive by the headers, but the connection is closed right after.
            let _ = wr
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye")
                .await;
            let _ = wr.shutdown().await;
            return;
        } else if path == "/echo-info" {
            let b = format!("{} {}", body.len(), fnv(&body));
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{b}", b.len()).into_bytes()
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello".to_vec()
        };
        if wr.write_all(&resp).await.is_err() {
            return;
        }
    }
}

/// Serve `sv` with an `HttpProxy` on a fresh loopback listener; returns its address.
pub async fn start_proxy<SV>(sv: SV) -> SocketAddr
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    start_proxy_with_conf(sv, ServerConf::default()).await
}

/// Like [`start_proxy`] with a given server configuration.
pub async fn start_proxy_with_conf<SV>(sv: SV, conf: ServerConf) -> SocketAddr
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    start_proxy_with(sv, conf, None).await
}

/// Like [`start_proxy`], also serving HTTP/2 with prior knowledge (h2c) on the same port.
pub async fn start_proxy_h2c<SV>(sv: SV) -> SocketAddr
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let mut options = pingora_core::apps::HttpServerOptions::default();
    options.h2c = true;
    start_proxy_with(sv, ServerConf::default(), Some(options)).await
}

/// Serve `sv` with a server configuration and HTTP server options.
pub async fn start_proxy_with<SV>(
    sv: SV,
    conf: ServerConf,
    options: Option<pingora_core::apps::HttpServerOptions>,
) -> SocketAddr
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let conf = Arc::new(conf);
    let mut proxy = http_proxy(&conf, sv);
    proxy.server_options = options;
    serve_app(Arc::new(proxy)).await
}

/// A keep-alive HTTP/1 client connection.
pub struct Client {
    pub rd: BufReader<tokio::net::tcp::OwnedReadHalf>,
    pub wr: tokio::net::tcp::OwnedWriteHalf,
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub head: Head,
    pub body: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let sock = TcpStream::connect(addr).await.expect("connect to proxy");
        let (rd, wr) = sock.into_split();
        Client {
            rd: BufReader::new(rd),
            wr,
        }
    }

    /// Write raw bytes.
    pub async fn send_raw(&mut self, data: &[u8]) {
        self.wr.write_all(data).await.expect("write to proxy");
    }

    /// Read one response (`head_req` for a HEAD request: no body).
    pub async fn read_resp(&mut self, head_req: bool) -> Option<Resp> {
        let head = tokio::time::timeout(STEP, read_head(&mut self.rd))
            .await
            .expect("response head in time")?;
        let status: u16 = head.first.1.parse().expect("numeric status");
        let body = if head_req || status == 204 || status == 304 {
            Vec::new()
        } else {
            let close = head
                .get("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            tokio::time::timeout(STEP, read_body(&mut self.rd, &head, close))
                .await
                .expect("response body in time")
        };
        Some(Resp { status, head, body })
    }

    /// Send a GET for `path` and read the response.
    pub async fn get(&mut self, path: &str) -> Resp {
        self.send_raw(format!("GET {path} HTTP/1.1\r\nHost: client.test\r\n\r\n").as_bytes())
            .await;
        self.read_resp(false).await.expect("a response")
    }

    /// Whether the server closed the connection (EOF within a short wait).
    pub async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.rd.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
