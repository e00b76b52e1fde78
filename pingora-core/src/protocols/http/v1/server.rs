//! The HTTP/1.x server session: reads one request from a client connection
//! and writes its response; [`HttpSession::reuse`] hands the connection on
//! for the next (possibly already pipelined) request.
//!
//! Requests are validated strictly (see [`super::common`] and the chunked
//! decoder) because a proxy that frames a request differently from the
//! server behind it enables request smuggling. A request that cannot be
//! parsed is answered (400 / 414 / 431) and the connection closed by the
//! session itself before the error is returned.

mod close;
mod write;

use super::body::BodyReader;
use super::common::*;
use super::head;
use crate::protocols::http::body_buffer::FixedBuffer;
use crate::protocols::{Digest, Rewind, SocketAddr, Stream};
use bytes::{Bytes, BytesMut};
use http::header::{self, AsHeaderName};
use http::{HeaderValue, Method, Version};
use log::debug;
use pingora_error::{Error, ErrorType::*, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Size of the stack buffer the first bytes of a request are read into.
const FIRST_READ_SIZE: usize = 2048;

/// Room left behind the bytes of a first read for the response head, which is written there
/// (a typical proxied head; a larger one gets a buffer of its own).
const RESPONSE_HEAD_ROOM: usize = 512;

/// One poll of the first read of a session: the bytes land in a buffer on the
/// stack and are copied into `buf`, which is allocated at their size (plus
/// [`RESPONSE_HEAD_ROOM`]). A pending read fills nothing (the `AsyncRead`
/// contract), so nothing is lost.
/// Also used by the apps' wait for the next request on an idle connection
/// (see [`HttpSession::preload`]).
pub(crate) fn read_first(
    stream: &mut Stream,
    buf: &mut BytesMut,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<std::io::Result<usize>> {
    // left uninitialized: zeroing 2 KiB per poll cost more than the read's own bookkeeping,
    // and `ReadBuf` only exposes the bytes the read filled
    let mut landing = [std::mem::MaybeUninit::<u8>::uninit(); FIRST_READ_SIZE];
    let mut read_buf = tokio::io::ReadBuf::uninit(&mut landing);
    match std::pin::Pin::new(stream).poll_read(cx, &mut read_buf) {
        std::task::Poll::Ready(Ok(())) => {
            let filled = read_buf.filled();
            if buf.capacity() == 0 && !filled.is_empty() {
                // One allocation for the request and, behind it, the response head (see
                // `head_room`): both are needed for as long as the exchange lasts.
                // (made afresh: `reserve` on an empty buffer takes a much longer way)
                *buf = BytesMut::with_capacity(filled.len() + RESPONSE_HEAD_ROOM);
            }
            buf.extend_from_slice(filled);
            std::task::Poll::Ready(Ok(filled.len()))
        }
        std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
        std::task::Poll::Pending => std::task::Poll::Pending,
    }
}

/// The HTTP/1.x server side of one request/response exchange.
pub struct HttpSession {
    underlying_stream: Stream,
    /// Read buffer; once the head is parsed its rest moves to `body_reader`.
    buf: BytesMut,
    raw_header: Option<Bytes>,
    request_header: Option<Box<RequestHeader>>,
    body_reader: BodyReader,
    body_writer: super::body::BodyWriter,
    /// A response head not sent yet, to go out with the first body bytes.
    pending_head: BytesMut,
    /// Body pieces gathered by [`Self::response_duplex_vec`] for one write.
    body_write_buf: BytesMut,
    body_bytes_sent: usize,
    body_bytes_read: usize,
    keepalive: KeepaliveStatus,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    total_drain_timeout: Option<Duration>,
    min_send_rate: Option<usize>,
    response_written: Option<Box<ResponseHeader>>,
    retry_buffer: Option<FixedBuffer>,
    upgraded: bool,
    continue_sent: bool,
    ignore_info_resp: bool,
    /// Set once the connection was shut down (see `close.rs`).
    closed: bool,
    /// How many more times the connection may be reused (`None`: no limit).
    keepalive_reuses_remaining: Option<u32>,
    /// Collected from the stream on first use: most exchanges never look at it.
    digest: OnceLock<Box<Digest>>,
}

impl HttpSession {
    /// A session over an established connection. Call
    /// [`Self::read_request`] first.
    pub fn new(underlying_stream: Stream) -> Self {
        HttpSession {
            underlying_stream,
            buf: BytesMut::new(),
            raw_header: None,
            request_header: None,
            body_reader: BodyReader::new(),
            body_writer: super::body::BodyWriter::new(),
            pending_head: BytesMut::new(),
            body_write_buf: BytesMut::new(),
            body_bytes_sent: 0,
            body_bytes_read: 0,
            keepalive: KeepaliveStatus::Off,
            read_timeout: None,
            write_timeout: None,
            total_drain_timeout: None,
            min_send_rate: None,
            response_written: None,
            retry_buffer: None,
            upgraded: false,
            continue_sent: false,
            ignore_info_resp: false,
            closed: false,
            keepalive_reuses_remaining: None,
            digest: OnceLock::new(),
        }
    }

    /// Hand the session the first bytes of its request, already read from
    /// the stream (by the wait for the next request on an idle connection):
    /// [`Self::read_request`] parses them before reading more.
    pub(crate) fn preload(&mut self, bytes: BytesMut) {
        self.buf = bytes;
    }

    /// Read and validate the request head.
    ///
    /// `Ok(Some(n))`: a request of `n` head bytes was read. `Ok(None)`: the
    /// client closed (or stayed idle past the keep-alive timeout, default
    /// [`DEFAULT_IDLE_TIMEOUT`]) before sending a byte, which is normal on a
    /// reused connection. Errors come with `Downstream` source; for
    /// malformed or over-limit requests the matching response (see
    /// [`error_status`]) was already sent and the connection closed.
    pub async fn read_request(&mut self) -> Result<Option<usize>> {
        let idle = match self.keepalive {
            KeepaliveStatus::Timeout(d) => Some(d),
            KeepaliveStatus::Infinite => None,
            KeepaliveStatus::Off => Some(DEFAULT_IDLE_TIMEOUT),
        };
        let mut deadline: Option<Instant> = None;
        // bytes handed over by `preload` are parsed before anything is read
        let mut parse_first = !self.buf.is_empty();
        loop {
            if parse_first {
                parse_first = false;
                if let Some(done) = self.parse_request_head().await {
                    return done;
                }
                // The rest of the head has to come within the read timeout. (Not timed before
                // the parse: a whole head is usually there, and needs no clock read.)
                let limit = self.read_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT);
                deadline = Some(Instant::now() + limit);
                continue;
            }
            // The first read of a fresh session lands in a buffer on the stack
            // of the `poll` call (not in this future) and is copied to a heap
            // buffer of just its size: an idle keep-alive connection, waiting
            // for its next request, holds neither a read buffer nor its space.
            let first = self.buf.capacity() == 0;
            if !first && self.buf.capacity() - self.buf.len() < 1024 {
                let grow = self.buf.len().max(INIT_HEADER_BUF_SIZE);
                self.buf.reserve(grow);
            }
            let (stream, buf) = (&mut self.underlying_stream, &mut self.buf);
            let read = async move {
                if first {
                    std::future::poll_fn(|cx| read_first(stream, buf, cx)).await
                } else {
                    stream.read_buf(buf).await
                }
            };
            let res = match (deadline, idle) {
                (Some(at), _) => match tokio::time::timeout_at(at, read).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.keepalive = KeepaliveStatus::Off;
                        // rejections are boxed: rare, they would otherwise enlarge
                        // the state an idle connection waits in
                        Box::pin(self.reject(408)).await;
                        return Error::e_explain(ReadTimedout, "reading request header")
                            .map_err(|e| e.into_down());
                    }
                },
                (None, Some(t)) => match tokio::time::timeout(t, read).await {
                    Ok(r) => r,
                    Err(_) => {
                        debug!("idle timeout {t:?} before a request");
                        return Ok(None);
                    }
                },
                (None, None) => read.await,
            };
            let n = match res {
                Ok(n) => n,
                Err(e) if self.buf.is_empty() => {
                    debug!("read error before a request: {e}");
                    return Ok(None);
                }
                Err(e) => {
                    return Err(Error::because(ReadError, "reading request header", e).into_down())
                }
            };
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(Error::explain(
                    ConnectionClosed,
                    format!("client closed after {} header bytes", self.buf.len()),
                )
                .into_down());
            }
            if deadline.is_none() {
                let limit = self.read_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT);
                deadline = Some(Instant::now() + limit);
            }
            if let Some(done) = self.parse_request_head().await {
                return done;
            }
        }
    }

    /// Parse the request head from the bytes read so far: `None` when more
    /// are needed, else what [`Self::read_request`] returns.
    async fn parse_request_head(&mut self) -> Option<Result<Option<usize>>> {
        match head::parse_request(&mut self.buf) {
            Ok(None) => None,
            Ok(Some((req, raw))) => {
                let len = raw.len();
                if let Err(e) = self.accept_request(req, raw) {
                    Box::pin(self.reject(error_status(&e))).await;
                    return Some(Err(e.into_down()));
                }
                Some(Ok(Some(len)))
            }
            Err(e) => {
                debug!("bad request head: {e}");
                Box::pin(self.reject(error_status(&e))).await;
                Some(Err(e.into_down()))
            }
        }
    }

    /// Check the framing of a parsed request and set up body reading.
    fn accept_request(&mut self, req: Box<RequestHeader>, raw: Bytes) -> Result<()> {
        let cl =
            head_content_length(&*req).map_err(|msg| Error::explain(InvalidHTTPHeader, msg))?;
        let te = head_transfer_coding(&*req);
        if te != TransferCoding::Absent {
            if req.version == Version::HTTP_10 {
                return Error::e_explain(InvalidHTTPHeader, "Transfer-Encoding in HTTP/1.0");
            }
            if cl.is_some() {
                return Error::e_explain(
                    InvalidHTTPHeader,
                    "both Content-Length and Transfer-Encoding",
                );
            }
            if te != TransferCoding::ChunkedOnly {
                return Error::e_explain(InvalidHTTPHeader, "unsupported Transfer-Encoding");
            }
        }
        if req.has(pingora_http::known::REPEATED_HOST) {
            return Error::e_explain(InvalidHTTPHeader, "more than one Host header");
        }
        let preread = self.buf.split();
        match (te, cl) {
            (TransferCoding::ChunkedOnly, _) => self.body_reader.init_chunked(preread),
            // without framing a request has no body (RFC 9112 section 6.3)
            (_, cl) => self
                .body_reader
                .init_content_length(cl.unwrap_or(0), preread),
        }
        self.raw_header = Some(raw);
        self.request_header = Some(req);
        self.respect_keepalive();
        Ok(())
    }

    /// The request head.
    /// # Panics
    /// When no request was read (call [`Self::read_request`] first).
    pub fn req_header(&self) -> &RequestHeader {
        self.request_header
            .as_deref()
            .expect("read_request() must succeed before req_header()")
    }

    /// The request head, mutable.
    /// # Panics
    /// When no request was read (call [`Self::read_request`] first).
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        self.request_header
            .as_deref_mut()
            .expect("read_request() must succeed before req_header_mut()")
    }

    /// The first value of request header `name`.
    pub fn get_header(&self, name: impl AsHeaderName) -> Option<&HeaderValue> {
        self.request_header.as_ref()?.headers.get(name)
    }

    /// The first value of request header `name` as bytes (empty if absent).
    pub fn get_header_bytes(&self, name: impl AsHeaderName) -> &[u8] {
        self.get_header(name).map_or(b"", |v| v.as_bytes())
    }

    fn get_method(&self) -> Option<&Method> {
        self.request_header.as_ref().map(|r| &r.method)
    }

    /// `METHOD path, Host: host`, for logs.
    pub fn request_summary(&self) -> String {
        format!(
            "{} {}, Host: {}",
            self.get_method().map_or("-", |m| m.as_str()),
            self.request_header
                .as_ref()
                .map_or("".into(), |r| String::from_utf8_lossy(r.raw_path())),
            String::from_utf8_lossy(self.get_header_bytes(header::HOST))
        )
    }

    /// Whether the request asks for a protocol upgrade (e.g. WebSocket).
    pub fn is_upgrade_req(&self) -> bool {
        self.request_header.as_deref().is_some_and(is_upgrade_req)
    }

    /// The request head exactly as received.
    pub fn get_headers_raw_bytes(&self) -> Bytes {
        self.raw_header.clone().unwrap_or_default()
    }

    async fn maybe_send_continue(&mut self) -> Result<()> {
        let expects = self
            .request_header
            .as_deref()
            .is_some_and(is_expect_continue_req);
        if expects
            && !self.continue_sent
            && self.response_written.is_none()
            && !self.body_reader.body_done()
        {
            self.write_continue_response().await?;
        }
        Ok(())
    }

    /// Read the next piece of request body; `Ok(None)` once it is complete.
    /// Sends `100 Continue` first if the client expects it. A failure
    /// (timeout, bad chunk, early close) disables keep-alive.
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        if self.body_reader.need_init() {
            return Ok(None);
        }
        self.maybe_send_continue().await?;
        let res = with_timeout(
            self.read_timeout,
            ReadTimedout,
            "reading request body",
            self.body_reader.read_body(&mut self.underlying_stream),
        )
        .await;
        match res {
            Ok(Some(data)) => {
                self.body_bytes_read += data.len();
                if let Some(b) = self.retry_buffer.as_mut() {
                    b.write_to_buffer(&data);
                }
                Ok(Some(data))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.keepalive = KeepaliveStatus::Off;
                Err(e.into_down())
            }
        }
    }

    /// Read and discard the rest of the request body (bounded by the total
    /// drain timeout, if set).
    pub async fn drain_request_body(&mut self) -> Result<()> {
        if self.is_body_done() {
            return Ok(());
        }
        let limit = self.total_drain_timeout;
        let drain = async {
            while self.read_body_bytes().await?.is_some() {}
            Ok(())
        };
        with_timeout(limit, ReadTimedout, "draining request body", drain)
            .await
            .map_err(|e| e.into_down())
    }

    /// Whether no (more) request body is to be read.
    pub fn is_body_done(&mut self) -> bool {
        self.body_reader.need_init() || self.body_reader.body_done()
    }

    /// The trailer fields that ended a chunked request body, once the body
    /// was read to its end.
    pub fn request_trailers(&self) -> Option<&http::HeaderMap> {
        self.body_reader.trailers()
    }

    /// Whether the request has no body at all (known right after the head).
    pub fn is_body_empty(&mut self) -> bool {
        self.body_reader.need_init() || self.body_reader.body_empty()
    }

    /// Wait while the client is idle. Pipelined bytes it sends meanwhile
    /// are kept for the next request. Returns the bytes read (0: closed).
    pub async fn idle(&mut self) -> Result<usize> {
        self.body_reader
            .read_after_body(&mut self.underlying_stream)
            .await
            .map_err(|e| e.into_down())
    }

    /// Like [`Self::read_body_bytes`], but once the body is complete (or
    /// `no_body_expected`) wait until the client closes the connection and
    /// report that as `ConnectionClosed`: lets a proxy notice a client giving
    /// up while it waits for the upstream.
    pub async fn read_body_or_idle(&mut self, no_body_expected: bool) -> Result<Option<Bytes>> {
        if !(no_body_expected || self.is_body_done()) {
            return self.read_body_bytes().await;
        }
        loop {
            if self.idle().await? == 0 {
                let when = if self.response_written.is_none() {
                    "before the response header was sent"
                } else {
                    "before the response body was complete"
                };
                return Err(
                    Error::explain(ConnectionClosed, format!("client closed {when}")).into_down(),
                );
            }
            if self.body_reader.leftover_len() > MAX_HEADER_SIZE {
                // stop buffering the next request; just wait
                std::future::pending::<()>().await;
            }
        }
    }

    /// Keep a copy of the request body (up to [`BODY_BUF_LIMIT`]) so that
    /// the request can be retried.
    pub fn enable_retry_buffering(&mut self) {
        if self.retry_buffer.is_none() {
            self.retry_buffer = Some(FixedBuffer::new(BODY_BUF_LIMIT))
        }
    }

    /// The buffered request body, unless it outgrew the retry buffer.
    pub fn get_retry_buffer(&self) -> Option<Bytes> {
        self.retry_buffer.as_ref().and_then(|b| b.get_buffer())
    }

    /// Whether the request body outgrew the retry buffer.
    pub fn retry_buffer_truncated(&self) -> bool {
        self.retry_buffer.as_ref().is_some_and(|b| b.is_truncated())
    }

    /// Request body bytes read so far (decoded, not wire bytes).
    pub fn body_bytes_read(&self) -> usize {
        self.body_bytes_read
    }

    /// Response body bytes sent so far (not counting framing).
    pub fn body_bytes_sent(&self) -> usize {
        self.body_bytes_sent
    }

    /// Follow the client's wish: keep-alive for HTTP/1.1 unless
    /// `Connection: close`, for HTTP/1.0 only with `Connection: keep-alive`.
    pub fn respect_keepalive(&mut self) {
        let wants = self
            .request_header
            .as_ref()
            .is_some_and(|r| head_is_keepalive(&**r));
        if !wants {
            self.keepalive = KeepaliveStatus::Off;
        } else if self.keepalive == KeepaliveStatus::Off {
            self.keepalive = KeepaliveStatus::Infinite;
        }
    }

    /// Set reuse unconditionally (unlike [`Self::set_server_keepalive`], a
    /// client's `Connection: close` is not consulted): `None` closes,
    /// `Some(0)` keeps without idle limit, `Some(s)` keeps for `s` seconds.
    pub fn set_keepalive(&mut self, seconds: Option<u64>) {
        self.keepalive = match seconds {
            None => KeepaliveStatus::Off,
            Some(0) => KeepaliveStatus::Infinite,
            Some(s) => KeepaliveStatus::Timeout(Duration::from_secs(s)),
        };
    }

    /// Allow or forbid reusing the connection: `None` closes it after this
    /// exchange, `Some(0)` keeps it without idle limit, `Some(s)` keeps it
    /// for up to `s` seconds of idleness. A client that asked to close wins.
    /// Called before [`Self::read_request`], it sets the idle limit while
    /// waiting for the request.
    pub fn set_server_keepalive(&mut self, keepalive: Option<u64>) {
        let client_closes = self
            .request_header
            .as_ref()
            .is_some_and(|r| !head_is_keepalive(&**r));
        if client_closes {
            self.keepalive = KeepaliveStatus::Off;
        } else {
            self.set_keepalive(keepalive);
        }
    }

    /// Whether the connection will be offered for reuse.
    pub fn will_keepalive(&self) -> bool {
        self.keepalive != KeepaliveStatus::Off && self.keepalive_reuses_remaining != Some(0)
    }

    /// The keep-alive setting in [`Self::set_keepalive`] terms: `None` off,
    /// `Some(0)` without idle limit, `Some(s)` for `s` seconds.
    pub fn get_keepalive_timeout(&self) -> Option<u64> {
        match self.keepalive {
            KeepaliveStatus::Off => None,
            KeepaliveStatus::Infinite => Some(0),
            KeepaliveStatus::Timeout(d) => Some(d.as_secs()),
        }
    }

    /// Limit how many more requests the connection may serve after this one
    /// (`Some(0)`: close after this one; `None`: no limit).
    pub fn set_keepalive_reuses_remaining(&mut self, remaining: Option<u32>) {
        self.keepalive_reuses_remaining = remaining;
    }

    /// How many more requests the connection may serve after this one.
    pub fn get_keepalive_reuses_remaining(&self) -> Option<u32> {
        self.keepalive_reuses_remaining
    }

    /// Limit each read (header: in total after the first byte; body: each read).
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.read_timeout = Some(timeout);
    }

    /// Limit each write.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        self.write_timeout = Some(timeout);
    }

    /// Limit how long [`Self::reuse`] may spend draining an unread body.
    pub fn set_total_drain_timeout(&mut self, timeout: Duration) {
        self.total_drain_timeout = Some(timeout);
    }

    /// Require the client to accept at least `rate` bytes per second: each
    /// write may take `len / rate` seconds (at least one). 0 is ignored.
    pub fn set_min_send_rate(&mut self, rate: usize) {
        if rate > 0 {
            self.min_send_rate = Some(rate);
        }
    }

    /// Drop informational (1xx) responses instead of sending them, except
    /// `101` and a `100` the client asked for.
    pub fn set_ignore_info_resp(&mut self, ignore: bool) {
        self.ignore_info_resp = ignore;
    }

    /// Facts about the connection.
    pub fn digest(&self) -> &Digest {
        self.digest
            .get_or_init(|| stream_digest(&self.underlying_stream))
    }

    /// Facts about the connection, mutable.
    pub fn digest_mut(&mut self) -> &mut Digest {
        self.digest();
        match self.digest.get_mut() {
            Some(digest) => digest,
            // initialized by `digest()` right above
            None => unreachable!("digest initialized above"),
        }
    }

    /// The client's address.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        self.digest().socket_digest.as_ref()?.peer_addr()
    }

    /// The local address the client connected to.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        self.digest().socket_digest.as_ref()?.local_addr()
    }

    /// Close the connection now: shut its write side down and, when the
    /// client may still be sending (unread body, pipelined requests), read
    /// and discard its bytes for a bounded time first so that the response
    /// already sent is not destroyed by a reset (see `close.rs`).
    pub async fn shutdown(&mut self) {
        self.close().await;
    }

    /// The connection.
    pub fn stream(&self) -> &Stream {
        &self.underlying_stream
    }

    /// Give up HTTP and take the connection (e.g. after an upgrade).
    /// Buffered unread bytes are put back in front of it.
    pub fn into_inner(self) -> Stream {
        self.into_reused_stream()
    }

    /// Finish this exchange. If the connection may carry another request
    /// (keep-alive, response complete, request body drained) it is returned,
    /// with any pipelined bytes already read put back in front, for a new
    /// session; otherwise it is closed and `None` returned. An error while
    /// draining the request body is returned (the connection is closed).
    pub async fn reuse(mut self) -> Result<Option<Stream>> {
        if !self.pending_head.is_empty() {
            self.send_now(false).await?;
        }
        if !self.exchange_reusable() {
            debug!("closing connection after {}", self.request_summary());
            self.close().await;
            return Ok(None);
        }
        if let Err(e) = self.drain_request_body().await {
            self.close().await;
            return Err(e);
        }
        if let Err(e) = self.underlying_stream.flush().await {
            debug!("flush before reuse failed: {e}");
            return Ok(None);
        }
        Ok(Some(self.into_reused_stream()))
    }

    /// [`Self::reuse`] without waiting, for the usual end of a keep-alive exchange: the
    /// response went out whole, the request body was read and nothing waits to be flushed.
    /// Otherwise (closing, draining, a pending write) the session comes back for
    /// [`Self::reuse`], which then does exactly what it would have done.
    pub fn reuse_now(mut self) -> std::result::Result<Stream, Box<Self>> {
        use futures::FutureExt;
        let ready = self.pending_head.is_empty()
            && self.exchange_reusable()
            && self.is_body_done()
            // A plain socket flushes at once; anything else (a TLS layer holding bytes) gets
            // the waiting path.
            && matches!(self.underlying_stream.flush().now_or_never(), Some(Ok(())));
        if ready {
            Ok(self.into_reused_stream())
        } else {
            // boxed: the rare way, and it keeps the usual answer small
            Err(Box::new(self))
        }
    }

    /// Whether the exchange left the connection fit for another request: keep-alive, not
    /// upgraded, and the whole response written.
    fn exchange_reusable(&self) -> bool {
        self.will_keepalive()
            && !self.upgraded
            && self.response_written.is_some()
            && self.body_writer.is_complete()
    }

    /// The connection, with the pipelined bytes already read put back in front of it.
    fn into_reused_stream(mut self) -> Stream {
        let rest = self.body_reader.take_leftover();
        if rest.is_empty() {
            return self.underlying_stream;
        }
        Rewind::wrap(self.underlying_stream, rest.freeze())
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "server_security_tests.rs"]
mod security_tests;
