//! A `ProxyHttp` for tests that records the phases each request goes through.

use super::*;
use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The phases of each finished request, in order.
pub type Log = Arc<Mutex<Vec<Vec<&'static str>>>>;

/// Per-request record of the phases run.
#[derive(Default)]
pub struct Ctx {
    pub phases: Vec<&'static str>,
    pub tries: usize,
}

/// A proxy to one or more origins that records the phases of each request.
pub struct TestProxy {
    /// Tried in order, one per attempt (the last one repeats).
    pub peers: Vec<SocketAddr>,
    pub read_timeout: Option<Duration>,
    /// The phases of each finished request, pushed by `logging`.
    pub log: Arc<Mutex<Vec<Vec<&'static str>>>>,
    /// Mark connect failures retryable.
    pub retry_connect: bool,
    /// Mark failures after connecting retryable.
    pub retry_proxy_errors: bool,
    /// Rewrite response bodies to upper case (dropping the upstream length).
    pub uppercase: bool,
}

impl TestProxy {
    pub fn new(peers: Vec<SocketAddr>) -> (Self, Arc<Mutex<Vec<Vec<&'static str>>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        (
            TestProxy {
                peers,
                read_timeout: None,
                log: log.clone(),
                retry_connect: false,
                retry_proxy_errors: false,
                uppercase: false,
            },
            log,
        )
    }
}

#[async_trait]
impl ProxyHttp for TestProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn early_request_filter(&self, _s: &mut Session, ctx: &mut Ctx) -> Result<()> {
        ctx.phases.push("early_request_filter");
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.phases.push("request_filter");
        if session.req_header().uri.path() == "/forbidden" {
            session.respond_error(403).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn proxy_upstream_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.phases.push("proxy_upstream_filter");
        Ok(session.req_header().uri.path() != "/declined")
    }

    async fn upstream_peer(&self, _s: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        ctx.phases.push("upstream_peer");
        let addr = self.peers[ctx.tries.min(self.peers.len() - 1)];
        ctx.tries += 1;
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.read_timeout = self.read_timeout;
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _s: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.phases.push("fail_to_connect");
        e.set_retry(self.retry_connect);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        _s: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        _client_reused: bool,
    ) -> Box<Error> {
        ctx.phases.push("error_while_proxy");
        let mut e = e.more_context(format!("peer {peer}"));
        if self.retry_proxy_errors {
            e.set_retry(true);
        }
        e
    }

    async fn connected_to_upstream(
        &self,
        _s: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora_core::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.phases.push("connected_to_upstream");
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.phases.push("upstream_request_filter");
        if session.get_header("x-rewrite-host").is_some() {
            req.insert_header("Host", "rewritten.test")?;
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _s: &mut Session,
        _body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if end {
            ctx.phases.push("request_body_filter(end)");
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _s: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.phases.push("upstream_response_filter");
        Ok(())
    }

    async fn response_filter(
        &self,
        _s: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.phases.push("response_filter");
        resp.insert_header("X-Proxied", "1")?;
        if self.uppercase {
            resp.remove_header("Content-Length");
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _s: &mut Session,
        _body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if end {
            ctx.phases.push("upstream_response_body_filter(end)");
        }
        Ok(None)
    }

    fn response_body_filter(
        &self,
        _s: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        if end {
            ctx.phases.push("response_body_filter(end)");
        }
        if self.uppercase {
            if let Some(b) = body.as_mut() {
                *b = Bytes::from(b.to_ascii_uppercase());
            }
        }
        Ok(None)
    }

    async fn logging(&self, _s: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if e.is_some() {
            ctx.phases.push("error");
        }
        ctx.phases.push("logging");
        self.log
            .lock()
            .expect("log lock")
            .push(std::mem::take(&mut ctx.phases));
    }
}

/// Wait until `n` requests were logged (logging runs after the response is written).
pub async fn wait_logged(
    log: &Arc<Mutex<Vec<Vec<&'static str>>>>,
    n: usize,
) -> Vec<Vec<&'static str>> {
    for _ in 0..200 {
        let l = log.lock().expect("log lock").clone();
        if l.len() >= n {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    log.lock().expect("log lock").clone()
}

/// A loopback port that refuses connections while this value lives.
///
/// The socket is bound but never listens: a connection attempt gets a reset,
/// no other test can bind the port, and the kernel never picks it as a
/// source port. (Binding, reading the port and closing again races with the
/// tests running alongside, which may be handed the same port.)
pub struct RefusedPort {
    _socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

pub fn refused_port() -> RefusedPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    RefusedPort {
        _socket: socket,
        addr,
    }
}

/// A server that reads `read_at_least` bytes of each connection and then drops it.
pub async fn dropping_origin(read_at_least: usize) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 65_536];
            let mut total = 0;
            while total < read_at_least {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            drop(sock);
        }
    });
    a
}

pub async fn post_echo(addr: SocketAddr, body: &[u8]) -> Resp {
    let mut c = Client::connect(addr).await;
    c.send_raw(
        format!(
            "POST /echo-info HTTP/1.1\r\nHost: client.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    let Client { rd, mut wr } = c;
    let owned = body.to_vec();
    let upload = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = wr.write_all(&owned).await;
        wr
    });
    let mut c = Client {
        rd,
        wr: tokio::time::timeout(STEP, upload)
            .await
            .expect("upload in time")
            .expect("upload task"),
    };
    c.read_resp(false).await.expect("a response")
}
