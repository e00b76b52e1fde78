//! The HTTP/1.x client session: sends one request to an upstream and reads
//! its response; [`HttpSession::reuse`] returns the connection for pooling
//! when the exchange left it clean.
//!
//! Responses are validated as strictly as requests on the server side:
//! ambiguous framing (both Content-Length and Transfer-Encoding, bad
//! Content-Length, bad chunks) is an `Upstream` error, never a guess.

use super::body::{BodyReader, BodyWriter};
use super::common::*;
use super::head;
use crate::protocols::http::HttpTask;
use crate::protocols::{Digest, SocketAddr, Stream, UniqueID, UniqueIDType};
use bytes::{Bytes, BytesMut};
use http::header::AsHeaderName;
use http::{HeaderValue, Method, StatusCode};
use log::debug;
use pingora_error::{Error, ErrorType::*, OkOrErr, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The HTTP/1.x client side of one request/response exchange.
pub struct HttpSession {
    underlying_stream: Stream,
    buf: BytesMut,
    raw_header: Option<Bytes>,
    request_written: Option<Box<RequestHeader>>,
    response_header: Option<Box<ResponseHeader>>,
    /// The status of the last response head read: kept when the head itself was handed over
    /// by [`HttpSession::read_response_task_owned`].
    response_status: Option<StatusCode>,
    body_reader: BodyReader,
    body_writer: BodyWriter,
    /// The request was sent without a body and nothing was written after its head: ending
    /// the body has nothing to write or flush.
    bodiless_request: bool,
    last_body: Bytes,
    keepalive: KeepaliveStatus,
    upgraded: bool,
    digest: Box<Digest>,
    /// The reuse hash the connector obtained the connection under, so that giving it back
    /// does not hash the peer again.
    pool_key: Option<u64>,
    /// Limit for each read from the upstream (`None`: no limit).
    pub read_timeout: Option<Duration>,
    /// Limit for each write to the upstream (`None`: no limit).
    pub write_timeout: Option<Duration>,
}

impl HttpSession {
    /// A session over an established (new or pooled) connection.
    pub fn new(stream: Stream) -> Self {
        let digest = stream_digest(&stream);
        Self::with_digest(stream, digest)
    }

    fn with_digest(stream: Stream, digest: Box<Digest>) -> Self {
        HttpSession {
            underlying_stream: stream,
            buf: BytesMut::new(),
            raw_header: None,
            request_written: None,
            response_header: None,
            response_status: None,
            body_reader: BodyReader::new(),
            body_writer: BodyWriter::new(),
            bodiless_request: false,
            last_body: Bytes::new(),
            keepalive: KeepaliveStatus::Off,
            upgraded: false,
            digest,
            pool_key: None,
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// A session over a connection obtained from a connector for peers whose reuse hash is
    /// `key`, with the digest an earlier session on the same connection gathered (a digest
    /// describes the connection, so it is gathered once per connection, not per request).
    pub(crate) fn new_keyed(stream: Stream, key: u64, digest: Option<Box<Digest>>) -> Self {
        let digest = digest.unwrap_or_else(|| stream_digest(&stream));
        let mut session = Self::with_digest(stream, digest);
        session.pool_key = Some(key);
        session
    }

    /// The reuse hash of the peer the connection was obtained for, when a connector handed
    /// it out ([`crate::connectors::http::Connector::get_http_session`]).
    pub fn pool_key(&self) -> Option<u64> {
        self.pool_key
    }

    /// Limit each read from the upstream.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.read_timeout = Some(timeout);
    }

    /// Limit each write to the upstream.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        self.write_timeout = Some(timeout);
    }

    /// Send the request head; returns the bytes written. The body framing
    /// follows the head: chunked, Content-Length, raw for upgrade requests,
    /// otherwise no body. Ambiguous framing is refused (`Internal` source).
    pub async fn write_request_header(&mut self, req: Box<RequestHeader>) -> Result<usize> {
        let cl = head_content_length(&*req)
            .map_err(|m| Error::explain(InvalidHTTPHeader, m).into_in())?;
        self.bodiless_request = false;
        match (head_transfer_coding(&*req), cl) {
            (TransferCoding::Absent, Some(len)) => {
                self.bodiless_request = len == 0;
                self.body_writer.init_content_length(len)
            }
            (TransferCoding::Absent, None) if is_upgrade_req(&req) => {
                self.body_writer.init_until_close()
            }
            (TransferCoding::Absent, None) => {
                self.bodiless_request = true;
                self.body_writer.init_content_length(0)
            }
            (TransferCoding::ChunkedOnly | TransferCoding::ChunkedFinal, None) => {
                self.body_writer.init_chunked()
            }
            _ => {
                return Err(Error::explain(
                    InvalidHTTPHeader,
                    "request framing is ambiguous (Transfer-Encoding)",
                )
                .into_in())
            }
        }
        // Sized for a typical head, and kept afterwards as the buffer the response head is read
        // into: one allocation for both.
        let mut buf = BytesMut::with_capacity(INIT_HEADER_BUF_SIZE);
        head::write_request_head(&req, &mut buf).map_err(|e| e.into_in())?;
        write_within(
            &mut self.underlying_stream,
            &buf,
            true,
            self.write_timeout,
            "writing request header",
        )
        .await
        .map_err(|e| e.into_up())?;
        self.request_written = Some(req);
        let written = buf.len();
        if self.buf.capacity() == 0 {
            buf.clear();
            self.buf = buf;
        }
        Ok(written)
    }

    /// Send a piece of request body. `Ok(None)` when the body is complete.
    pub async fn write_body(&mut self, buf: &[u8]) -> Result<Option<usize>> {
        self.bodiless_request = false;
        with_timeout(
            self.write_timeout,
            WriteTimedout,
            "writing request body",
            self.body_writer
                .write_body(&mut self.underlying_stream, b"", buf),
        )
        .await
        .map_err(|e| e.into_up())
    }

    /// End the request body (the last chunk for chunked bodies) and flush.
    /// On an upgraded connection this half-closes it: the end of the tunnel bytes we send is
    /// the end of our write side, which the upstream sees as EOF.
    pub async fn finish_body(&mut self) -> Result<Option<usize>> {
        if self.body_writer.need_init() || self.bodiless_request {
            // Nothing to end: the head said there is no body (and was flushed).
            return Ok(None);
        }
        let half_close = self.upgraded && self.body_writer.is_until_close();
        let res = finish_within(
            &mut self.body_writer,
            &mut self.underlying_stream,
            b"",
            None,
            self.write_timeout,
            "finishing request body",
        )
        .await
        .map_err(|e| e.into_up())?;
        if half_close {
            if let Err(e) = tokio::io::AsyncWriteExt::shutdown(&mut self.underlying_stream).await {
                debug!("half-closing the upgraded upstream connection: {e}");
            }
        }
        Ok(res)
    }

    /// End a chunked request body with `trailers` after its last chunk, and flush. Bodies
    /// framed otherwise cannot carry trailers: they are ended and the trailers dropped.
    pub async fn write_trailers(&mut self, trailers: &http::HeaderMap) -> Result<Option<usize>> {
        if self.body_writer.need_init() {
            return Ok(None);
        }
        if !self.body_writer.is_chunked() && !trailers.is_empty() {
            debug!("request body is not chunked: dropping its trailers");
        }
        finish_within(
            &mut self.body_writer,
            &mut self.underlying_stream,
            b"",
            Some(trailers),
            self.write_timeout,
            "finishing request body with trailers",
        )
        .await
        .map_err(|e| e.into_up())
    }

    /// Read the next response head; returns its size in bytes.
    /// `100 Continue` and `102 Processing` are skipped; other informational
    /// heads (e.g. `103`) are returned and the caller reads again. Errors
    /// have `Upstream` source; a connection that closed before sending a
    /// byte may be retried if it was a reused one.
    pub async fn read_response(&mut self) -> Result<usize> {
        loop {
            let parsed = head::parse_response(&mut self.buf).map_err(|e| e.into_up())?;
            let Some((resp, raw)) = parsed else {
                self.read_more_head().await?;
                continue;
            };
            let code = resp.status.as_u16();
            if code == 100 || code == 102 {
                debug!("skipping informational response {code}");
                continue;
            }
            let len = raw.len();
            self.raw_header = Some(raw);
            if !(resp.status.is_informational() && code != 101) {
                self.init_body_reader(&resp)?;
            }
            self.response_status = Some(resp.status);
            self.response_header = Some(resp);
            return Ok(len);
        }
    }

    async fn read_more_head(&mut self) -> Result<()> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            let grow = self.buf.len().max(INIT_HEADER_BUF_SIZE);
            self.buf.reserve(grow);
        }
        let nothing_yet = self.buf.is_empty() && self.response_status.is_none();
        let read = async { Ok(self.underlying_stream.read_buf(&mut self.buf).await) };
        let res = with_timeout(
            self.read_timeout,
            ReadTimedout,
            "reading response header",
            read,
        )
        .await
        .map_err(|e| e.into_up())?;
        let mut err = match res {
            Ok(0) => Error::explain(ConnectionClosed, "upstream closed while reading header"),
            Ok(_) => return Ok(()),
            Err(e) => Error::because(ReadError, "reading response header", e),
        };
        if nothing_yet {
            // a pooled connection the upstream had already closed
            err.set_retry_reused_only();
        }
        Err(err.into_up())
    }

    fn init_body_reader(&mut self, resp: &ResponseHeader) -> Result<()> {
        let preread = self.buf.split();
        let code = resp.status.as_u16();
        let method = self.request_written.as_ref().map(|r| &r.method);
        self.keepalive = if head_is_keepalive(resp)
            && self
                .request_written
                .as_ref()
                .is_none_or(|r| head_is_keepalive(&**r))
        {
            KeepaliveStatus::Infinite
        } else {
            KeepaliveStatus::Off
        };
        let upgrade_req = self.request_written.as_deref().is_some_and(is_upgrade_req);
        if code == 101 || (method == Some(&Method::CONNECT) && resp.status.is_success()) {
            self.upgraded = code != 101 || (upgrade_req && is_upgrade_resp(resp));
            self.keepalive = KeepaliveStatus::Off;
            self.body_reader.init_until_close(preread);
            return Ok(());
        }
        if method == Some(&Method::HEAD) || code == 204 || code == 304 {
            self.body_reader.init_content_length(0, preread);
            return Ok(());
        }
        let cl = head_content_length(resp);
        match head_transfer_coding(resp) {
            TransferCoding::Absent => match cl {
                Ok(Some(len)) => self.body_reader.init_content_length(len, preread),
                Ok(None) => {
                    self.keepalive = KeepaliveStatus::Off;
                    self.body_reader.init_until_close(preread);
                }
                Err(m) => return Err(Error::explain(InvalidHTTPHeader, m).into_up()),
            },
            _ if resp.has(pingora_http::known::CONTENT_LENGTH) => {
                return Err(Error::explain(
                    InvalidHTTPHeader,
                    "response has both Content-Length and Transfer-Encoding",
                )
                .into_up())
            }
            TransferCoding::ChunkedOnly | TransferCoding::ChunkedFinal => {
                self.body_reader.init_chunked(preread)
            }
            TransferCoding::Other => {
                self.keepalive = KeepaliveStatus::Off;
                self.body_reader.init_until_close(preread);
            }
        }
        Ok(())
    }

    /// Read the response head and return a copy of it.
    pub async fn read_resp_header_parts(&mut self) -> Result<Box<ResponseHeader>> {
        self.read_response().await?;
        self.response_header
            .clone()
            .or_err(InternalError, "no response header after reading one")
    }

    /// The last response head read.
    pub fn resp_header(&self) -> Option<&ResponseHeader> {
        self.response_header.as_deref()
    }

    /// The first value of response header `name`.
    pub fn get_header(&self, name: impl AsHeaderName) -> Option<&HeaderValue> {
        self.response_header.as_ref()?.headers.get(name)
    }

    /// The first value of response header `name` as bytes (empty if absent).
    pub fn get_header_bytes(&self, name: impl AsHeaderName) -> &[u8] {
        self.get_header(name).map_or(b"", |v| v.as_bytes())
    }

    /// The response status, once read.
    pub fn get_status(&self) -> Option<StatusCode> {
        self.response_status
    }

    /// The response head exactly as received.
    pub fn get_headers_raw_bytes(&self) -> Bytes {
        self.raw_header.clone().unwrap_or_default()
    }

    /// The next piece of response body; `Ok(None)` when complete.
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        if self.body_reader.need_init() {
            return Ok(None);
        }
        let res = with_timeout(
            self.read_timeout,
            ReadTimedout,
            "reading response body",
            self.body_reader.read_body(&mut self.underlying_stream),
        )
        .await;
        res.map_err(|e| {
            self.keepalive = KeepaliveStatus::Off;
            e.into_up()
        })
    }

    /// Like [`Self::read_body_bytes`], borrowing the piece.
    pub async fn read_body_ref(&mut self) -> Result<Option<&[u8]>> {
        match self.read_body_bytes().await? {
            Some(b) => {
                self.last_body = b;
                Ok(Some(&self.last_body[..]))
            }
            None => Ok(None),
        }
    }

    /// Whether no (more) response body is to be read.
    pub fn is_body_done(&mut self) -> bool {
        self.body_reader.body_done()
    }

    /// The trailers that followed a chunked response body.
    pub fn take_trailers(&mut self) -> Option<Box<http::HeaderMap>> {
        self.body_reader.take_trailers()
    }

    /// The next step of the response for the proxy: the head first, then
    /// body pieces, then `Done` (or trailers).
    pub async fn read_response_task(&mut self) -> Result<HttpTask> {
        self.next_response_task(false).await
    }

    /// Like [`Self::read_response_task`], but a response head is handed over rather than
    /// copied: once it is returned, [`Self::resp_header`] and [`Self::get_header`] no longer
    /// see it. The status ([`Self::get_status`]), keep-alive and body framing stay as read.
    /// Meant for a caller (such as a proxy) that takes the head over anyway.
    pub async fn read_response_task_owned(&mut self) -> Result<HttpTask> {
        self.next_response_task(true).await
    }

    async fn next_response_task(&mut self, take_head: bool) -> Result<HttpTask> {
        let need_head = self
            .response_status
            .is_none_or(|s| s.is_informational() && s != 101);
        if need_head {
            self.read_response().await?;
            let resp = if take_head {
                self.response_header.take()
            } else {
                self.response_header.clone()
            }
            .or_err(InternalError, "no response header after reading one")?;
            let end = !(resp.status.is_informational() && resp.status != 101)
                && self.body_reader.body_done();
            return Ok(HttpTask::Header(resp, end));
        }
        match self.read_body_bytes().await? {
            Some(data) => Ok(HttpTask::Body(Some(data), self.body_reader.body_done())),
            None => match self.body_reader.take_trailers() {
                Some(t) => Ok(HttpTask::Trailer(Some(t))),
                None => Ok(HttpTask::Done),
            },
        }
    }

    /// Apply the keep-alive rules to the response read (done automatically
    /// by [`Self::read_response`]).
    pub fn respect_keepalive(&mut self) {
        if !self.body_reader.need_init() {
            // The final response head was read: its keep-alive rules were applied then.
            return;
        }
        if let Some(r) = &self.response_header {
            if !head_is_keepalive(&**r) {
                self.keepalive = KeepaliveStatus::Off;
            }
        }
    }

    /// Whether the connection can be reused after this exchange.
    pub fn will_keepalive(&self) -> bool {
        self.keepalive != KeepaliveStatus::Off
    }

    /// `Some(true)`: the request asked for an upgrade and `resp` accepts it;
    /// `Some(false)`: refused; `None`: not an upgrade request.
    pub fn is_upgrade(&self, resp: &ResponseHeader) -> Option<bool> {
        self.request_written
            .as_deref()
            .is_some_and(is_upgrade_req)
            .then(|| is_upgrade_resp(resp))
    }

    /// Whether the connection switched protocols (101 or CONNECT tunnel).
    pub fn was_upgraded(&self) -> bool {
        self.upgraded
    }

    /// Facts about the connection.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Facts about the connection, mutable.
    pub fn digest_mut(&mut self) -> &mut Digest {
        &mut self.digest
    }

    /// The upstream's address.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        self.digest.socket_digest.as_ref()?.peer_addr()
    }

    /// Our local address on this connection.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        self.digest.socket_digest.as_ref()?.local_addr()
    }

    /// Close the connection now.
    pub async fn shutdown(&mut self) {
        crate::protocols::Shutdown::shutdown(self.underlying_stream.as_mut()).await;
    }

    /// The connection.
    pub fn stream(&self) -> &Stream {
        &self.underlying_stream
    }

    /// Give up HTTP and take the connection.
    pub fn into_inner(mut self) -> Stream {
        let rest = self.body_reader.take_leftover();
        let rest = if rest.is_empty() {
            self.buf.split()
        } else {
            rest
        };
        crate::protocols::Rewind::wrap(self.underlying_stream, rest.freeze())
    }

    /// End the exchange: the connection is returned for reuse when
    /// keep-alive holds, the request body was fully sent and the response
    /// fully read with nothing after it; otherwise it is closed.
    pub async fn reuse(mut self) -> Option<Stream> {
        if self.is_reusable() {
            Some(self.underlying_stream)
        } else {
            debug!("closing upstream connection instead of reusing it");
            self.shutdown().await;
            None
        }
    }

    /// Whether [`Self::reuse`] would hand the connection back: keep-alive holds, the request
    /// body was fully sent and the response fully read with nothing after it.
    fn is_reusable(&self) -> bool {
        self.will_keepalive()
            && self.response_status.is_some()
            && self.body_reader.body_done()
            && !self.body_reader.has_leftover()
            && self.buf.is_empty()
            && (self.body_writer.is_complete() || self.body_writer.need_init())
    }

    /// [`Self::respect_keepalive`] then [`Self::reuse`] without waiting: the connection when
    /// it is reusable, else the session back (to be shut down or dropped by the caller).
    pub fn reuse_now(self) -> std::result::Result<Stream, Box<Self>> {
        self.reuse_now_with_digest().map(|(stream, _)| stream)
    }

    /// [`Self::reuse_now`], with the connection's digest for the next session on it.
    pub(crate) fn reuse_now_with_digest(
        mut self,
    ) -> std::result::Result<(Stream, Box<Digest>), Box<Self>> {
        self.respect_keepalive();
        if self.is_reusable() {
            Ok((self.underlying_stream, self.digest))
        } else {
            // boxed: the rare way, and it keeps the usual answer small
            Err(Box::new(self))
        }
    }
}

/// The id of the underlying connection.
impl UniqueID for HttpSession {
    fn id(&self) -> UniqueIDType {
        self.underlying_stream.id()
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
