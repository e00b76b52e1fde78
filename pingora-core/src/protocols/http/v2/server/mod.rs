//! One stream of a downstream HTTP/2 connection, seen as a request and its
//! response.
//!
//! Servers run downstream HTTP/2 on our own codec (the connection in
//! [`connection`], its streams' state in [`shared`] and [`stream`]). The
//! `h2` crate's server stays available for code written against it:
//! [`handshake`] turns an accepted connection into an `h2` server
//! connection and [`HttpSession::from_h2_conn`] waits for its next stream;
//! the connection task must keep calling `from_h2_conn` so that the
//! connection makes progress. Either way, each stream is then served on its
//! own, concurrently with the others.

mod backend;
pub(crate) mod connection;
mod head;
mod shared;
mod stream;

use super::write_batch::BatchedIo;
pub(crate) use super::write_batch::WriteBatch;
use super::{h2_error, ResetTracker};
use crate::protocols::http::body_buffer::FixedBuffer;
use crate::protocols::http::v1::common::BODY_BUF_LIMIT;
use crate::protocols::http::HttpTask;
use crate::protocols::{Digest, SocketAddr, Stream};
use backend::Backend;
use bytes::Bytes;
pub(crate) use connection::{conn_config, Accepted, Connection};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use log::debug;
use pingora_error::{Error, ErrorType, OrErr, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

/// The settings of a downstream HTTP/2 connection (the `h2` crate's builder).
pub use h2::server::Builder as H2Options;

/// A downstream HTTP/2 connection.
pub type H2Connection<S> = h2::server::Connection<S, Bytes>;

/// Run the server side of the HTTP/2 connection preface on `io`: read the
/// client preface, exchange SETTINGS. `options` default to [`super::H2Limits`].
pub async fn handshake(io: Stream, options: Option<H2Options>) -> Result<H2Connection<Stream>> {
    let options = options.unwrap_or_else(|| super::H2Limits::default().h2_options());
    options
        .handshake(BatchedIo::wrap(io))
        .await
        .map_err(|e| h2_error(e, ErrorType::HandshakeError, "HTTP/2 handshake failed"))
}

/// An accepted stream before it becomes an [`HttpSession`].
pub(crate) type AcceptedStream = (http::Request<RecvStream>, SendResponse<Bytes>);

/// [`HttpSession::from_h2_conn`] without building the session: the caller
/// builds it where it is kept (the session is large, and every move of a
/// future's output copies it).
pub(crate) async fn accept_stream(
    conn: &mut H2Connection<Stream>,
) -> Result<Option<AcceptedStream>> {
    let mut batch = WriteBatch::default();
    poll_fn(|cx| poll_accept_stream(conn, &mut batch, cx)).await
}

/// One poll of [`accept_stream`], with the connection's writes gathered in
/// `batch` (kept by the caller from one poll to the next).
pub(crate) fn poll_accept_stream(
    conn: &mut H2Connection<Stream>,
    batch: &mut WriteBatch,
    cx: &mut Context<'_>,
) -> Poll<Result<Option<AcceptedStream>>> {
    match ready!(batch.poll(cx, |cx| conn.poll_accept(cx))) {
        None => Poll::Ready(Ok(None)),
        Some(Ok(stream)) => Poll::Ready(Ok(Some(stream))),
        Some(Err(e)) => Poll::Ready(Err(accept_error(e))),
    }
}

#[cold]
fn accept_error(e: h2::Error) -> Box<Error> {
    h2_error(e, ErrorType::ReadError, "while accepting an HTTP/2 stream")
}

/// What most streams never use, out of line: the session is moved several
/// times per request, and it sets the size of every server session (HTTP/1
/// ones included).
#[derive(Default)]
struct Rare {
    request_trailers: Option<HeaderMap>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

/// One request stream of a downstream HTTP/2 connection.
pub struct HttpSession {
    request_header: RequestHeader,
    backend: Backend,
    response_written: Option<Box<ResponseHeader>>,
    /// The response stream was ended (END_STREAM or reset sent).
    ended: bool,
    /// The client reset the stream.
    reset_by_client: bool,
    /// The request body was seen complete (it stays so): asking the
    /// connection again takes its lock.
    body_ended: bool,
    body_read: usize,
    body_sent: usize,
    retry_buffer: Option<FixedBuffer>,
    rare: Option<Box<Rare>>,
    digest: Arc<Digest>,
    resets: Option<Arc<ResetTracker>>,
}

impl HttpSession {
    /// Wait for the next request stream on `conn`. `Ok(None)`: the
    /// connection is done (client closed it, or GOAWAY completed).
    pub async fn from_h2_conn(
        conn: &mut H2Connection<Stream>,
        digest: Arc<Digest>,
    ) -> Result<Option<Self>> {
        let Some((req, send_response)) = accept_stream(conn).await? else {
            return Ok(None);
        };
        Ok(Some(Self::new(req, send_response, digest)))
    }

    /// A session for an accepted stream.
    pub fn new(
        req: http::Request<RecvStream>,
        send_response: SendResponse<Bytes>,
        digest: Arc<Digest>,
    ) -> Self {
        Self::new_with_host(req, send_response, digest, &mut None)
    }

    /// [`HttpSession::new`] for the streams of one connection: `last_host`
    /// keeps the `Host` value made for the previous stream, which the next
    /// one with the same `:authority` shares. A fresh value costs a copy, and
    /// its first clone (the proxy clones the request head) another
    /// allocation; a shared one costs neither.
    pub(crate) fn new_with_host(
        req: http::Request<RecvStream>,
        send_response: SendResponse<Bytes>,
        digest: Arc<Digest>,
        last_host: &mut Option<HeaderValue>,
    ) -> Self {
        let (mut parts, request_body) = req.into_parts();
        // code written for HTTP/1 looks for `Host`: mirror `:authority` there,
        // in the map before the head is built from it (no case to record yet)
        if let Some(authority) = parts.uri.authority() {
            // one lookup for "is there a `Host`" and the insert; a map at
            // its size limit gets none (`entry` would panic)
            let entry = parts.headers.try_entry(http::header::HOST);
            if let Ok(http::header::Entry::Vacant(slot)) = entry {
                if let Some(host) = head::host_value(authority.as_str().as_bytes(), last_host) {
                    let _ = slot.try_insert(host);
                }
            }
        }
        let mut request_header: RequestHeader = parts.into();
        request_header.set_version(Version::HTTP_2);
        let body_ended = request_body.is_end_stream();
        request_header.set_send_end_stream(body_ended);
        let backend = Backend::Crate {
            request_body,
            send_response,
            send_body: None,
        };
        Self::with_backend(request_header, backend, body_ended, digest)
    }

    /// A session for a request accepted by our codec's connection.
    pub(crate) fn from_codec(accepted: Accepted, digest: Arc<Digest>) -> Self {
        let body_ended = accepted.header.send_end_stream() == Some(true);
        Self::with_backend(
            accepted.header,
            Backend::Codec(accepted.stream),
            body_ended,
            digest,
        )
    }

    fn with_backend(
        request_header: RequestHeader,
        backend: Backend,
        body_ended: bool,
        digest: Arc<Digest>,
    ) -> Self {
        HttpSession {
            request_header,
            backend,
            response_written: None,
            ended: false,
            reset_by_client: false,
            body_ended,
            body_read: 0,
            body_sent: 0,
            retry_buffer: None,
            rare: None,
            digest,
            resets: None,
        }
    }

    /// Count client resets of this stream in `tracker` (rapid-reset defence).
    pub fn set_reset_tracker(&mut self, tracker: Arc<ResetTracker>) {
        self.resets = Some(tracker);
    }

    /// Whether the client already reset this stream (checked without waiting).
    pub fn poll_client_reset(&mut self) -> bool {
        if !self.reset_by_client && self.backend.is_reset() {
            self.mark_reset();
        }
        self.reset_by_client
    }

    fn mark_reset(&mut self) {
        if !self.reset_by_client {
            self.reset_by_client = true;
            self.ended = true;
            if let Some(t) = &self.resets {
                t.record();
            }
        }
    }

    /// Whether the client reset this stream.
    pub fn reset_by_client(&self) -> bool {
        self.reset_by_client
    }

    /// The request head.
    pub fn req_header(&self) -> &RequestHeader {
        &self.request_header
    }

    /// The request head, mutable.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.request_header
    }

    /// After a failed read or write: was it the client resetting the stream?
    fn note_error(&mut self) {
        if self.backend.is_reset() {
            self.mark_reset();
        }
    }

    /// The next piece of request body; `Ok(None)` at its end. Its
    /// flow-control window is released as the piece is handed out.
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        let next = match self.rare.as_ref().and_then(|r| r.read_timeout) {
            Some(t) => tokio::time::timeout(t, self.backend.data())
                .await
                .or_err(ErrorType::ReadTimedout, "reading HTTP/2 request body")?,
            None => self.backend.data().await,
        };
        match next {
            None => {
                self.read_request_trailers().await?;
                self.body_ended = true;
                Ok(None)
            }
            Some(Err(e)) => {
                self.note_error();
                Err(e)
            }
            Some(Ok(data)) => {
                self.body_read += data.len();
                if let Some(b) = self.retry_buffer.as_mut() {
                    b.write_to_buffer(&data);
                }
                Ok(Some(data))
            }
        }
    }

    async fn read_request_trailers(&mut self) -> Result<()> {
        if self.request_trailers().is_none() {
            match self.backend.trailers().await {
                Ok(Some(t)) => self.rare_mut().request_trailers = Some(t),
                Ok(None) => {}
                Err(e) => {
                    self.note_error();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The request trailers, once the body was read to its end.
    pub fn request_trailers(&self) -> Option<&HeaderMap> {
        self.rare.as_ref()?.request_trailers.as_ref()
    }

    /// Read and discard the rest of the request body.
    pub async fn drain_request_body(&mut self) -> Result<()> {
        while self.read_body_bytes().await?.is_some() {}
        Ok(())
    }

    /// Whether the request body was read to its end.
    pub fn is_body_done(&self) -> bool {
        self.body_ended || self.backend.is_body_done()
    }

    /// Whether the request has no body at all.
    pub fn is_body_empty(&self) -> bool {
        self.body_read == 0 && self.is_body_done()
    }

    /// Read body, or once it is complete wait until the client resets the
    /// stream (which returns an error).
    pub async fn read_body_or_idle(&mut self, no_body_expected: bool) -> Result<Option<Bytes>> {
        if !no_body_expected && !self.is_body_done() {
            return self.read_body_bytes().await;
        }
        let reason = self.backend.reset_wait().await?;
        self.mark_reset();
        Error::e_explain(
            ErrorType::ConnectionClosed,
            format!("client reset the HTTP/2 stream: {reason}"),
        )
    }

    /// Keep a bounded copy of the request body for retries.
    pub fn enable_retry_buffering(&mut self) {
        if self.retry_buffer.is_none() {
            self.retry_buffer = Some(FixedBuffer::new(BODY_BUF_LIMIT));
        }
    }

    /// The buffered request body, unless truncated.
    pub fn get_retry_buffer(&self) -> Option<Bytes> {
        self.retry_buffer.as_ref().and_then(|b| b.get_buffer())
    }

    /// Whether the request body outgrew the retry buffer.
    pub fn retry_buffer_truncated(&self) -> bool {
        self.retry_buffer.as_ref().is_some_and(|b| b.is_truncated())
    }

    /// Whether a response to this request can carry a body.
    fn response_may_have_body(&self, status: StatusCode) -> bool {
        !(self.request_header.method == Method::HEAD
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED)
    }

    /// Send the response head; `end` when no body follows. Informational
    /// heads (e.g. `100 Continue`, `103 Early Hints`) go out as interim
    /// HEADERS frames before the final one, any number of them; `101` is
    /// dropped (HTTP/2 has no protocol switch).
    pub fn write_response_header(
        &mut self,
        mut header: Box<ResponseHeader>,
        end: bool,
    ) -> Result<()> {
        if self.ended {
            return Error::e_explain(ErrorType::WriteError, "HTTP/2 response already ended");
        }
        if self.response_written.is_some() {
            return Error::e_explain(ErrorType::H2Error, "response header already sent");
        }
        if header.status.is_informational() {
            return self.write_informational(*header);
        }
        let end = end || !self.response_may_have_body(header.status);
        header.set_version(Version::HTTP_2);
        self.backend.send_head(&header, end)?;
        self.response_written = Some(header);
        self.ended = end;
        Ok(())
    }

    /// Send an interim (1xx) response head; `101 Switching Protocols` is
    /// dropped.
    fn write_informational(&mut self, mut header: ResponseHeader) -> Result<()> {
        if header.status == StatusCode::SWITCHING_PROTOCOLS {
            debug!("dropping 101 on HTTP/2");
            return Ok(());
        }
        header.set_version(Version::HTTP_2);
        self.backend.send_informational(&header)
    }

    /// Send a piece of response body (waits for the client's window);
    /// `end` finishes the response.
    pub async fn write_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        if self.ended {
            if data.is_empty() {
                return Ok(());
            }
            return Error::e_explain(ErrorType::WriteError, "HTTP/2 response already ended");
        }
        if self.response_written.is_none() {
            return Error::e_explain(ErrorType::H2Error, "response body before its header");
        }
        let len = data.len();
        let sent = match self.rare.as_ref().and_then(|r| r.write_timeout) {
            Some(t) => tokio::time::timeout(t, self.backend.send_data(data, end))
                .await
                .or_err(ErrorType::WriteTimedout, "writing HTTP/2 response body")?,
            None => self.backend.send_data(data, end).await,
        };
        if sent.is_err() && self.poll_client_reset() {
            return Error::e_explain(
                ErrorType::ConnectionClosed,
                "client reset the HTTP/2 stream",
            );
        }
        sent?;
        self.body_sent += len;
        if end {
            self.ended = true;
        }
        Ok(())
    }

    /// Send trailers, ending the response.
    pub fn write_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        if self.ended {
            return Error::e_explain(ErrorType::WriteError, "HTTP/2 response already ended");
        }
        if self.response_written.is_none() {
            return Error::e_explain(ErrorType::H2Error, "trailers before the response header");
        }
        self.backend.send_trailers(trailers)?;
        self.ended = true;
        Ok(())
    }

    /// End the response (an empty final DATA frame when the body is open).
    pub fn finish_body(&mut self) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        if self.response_written.is_none() {
            return Error::e_explain(ErrorType::H2Error, "finished before any response");
        }
        self.backend.send_end()?;
        self.ended = true;
        Ok(())
    }

    /// Write a batch of response tasks; returns whether the response ended.
    pub async fn response_duplex_vec(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        for task in tasks {
            match task {
                HttpTask::Header(h, end) => self.write_response_header(h, end)?,
                HttpTask::Body(data, end) => match data {
                    Some(d) => self.write_body(d, end).await?,
                    None if end => self.finish_body()?,
                    None => {}
                },
                HttpTask::Trailer(Some(t)) => self.write_trailers(*t)?,
                HttpTask::Trailer(None) | HttpTask::Done => self.finish_body()?,
                HttpTask::Failed(e) => {
                    self.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(self.ended)
    }

    /// End the exchange cleanly if the response is complete; reset the
    /// stream otherwise (so the client does not wait for more).
    pub fn finish(&mut self) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        if self.response_written.is_some() {
            return self.finish_body();
        }
        self.shutdown();
        Error::e_explain(ErrorType::H2Error, "HTTP/2 stream ended without a response")
    }

    /// Abort the stream with `INTERNAL_ERROR` unless it already ended.
    pub fn shutdown(&mut self) {
        if !self.ended {
            self.backend.reset();
            self.ended = true;
        }
    }

    /// The final response head, once sent.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        self.response_written.as_deref()
    }

    /// Limit each wait for request body.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.rare_mut().read_timeout = Some(timeout);
    }

    /// Limit each wait to send response body.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        self.rare_mut().write_timeout = Some(timeout);
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// `METHOD path, Host: authority`, for logs.
    pub fn request_summary(&self) -> String {
        format!(
            "{} {}, Host: {}",
            self.request_header.method,
            self.request_header.uri,
            self.request_header.host().unwrap_or_default()
        )
    }

    /// The request head in HTTP/1 wire format (for logs and caches).
    pub fn to_h1_raw(&self) -> Bytes {
        let mut buf = bytes::BytesMut::with_capacity(256);
        buf.extend_from_slice(self.request_header.method.as_str().as_bytes());
        buf.extend_from_slice(b" ");
        buf.extend_from_slice(self.request_header.raw_path());
        buf.extend_from_slice(b" HTTP/2\r\n");
        if let Some(host) = self.request_header.uri.authority() {
            buf.extend_from_slice(b"host: ");
            buf.extend_from_slice(host.as_str().as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        for (name, value) in self.request_header.headers.iter() {
            buf.extend_from_slice(name.as_str().as_bytes());
            buf.extend_from_slice(b": ");
            buf.extend_from_slice(value.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        buf.extend_from_slice(b"\r\n");
        buf.freeze()
    }

    /// Response body bytes sent so far.
    pub fn body_bytes_sent(&self) -> usize {
        self.body_sent
    }

    /// Request body bytes read so far.
    pub fn body_bytes_read(&self) -> usize {
        self.body_read
    }

    /// Facts about the connection.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Facts about the connection, mutable while this stream is the only
    /// user of the connection digest.
    pub fn digest_mut(&mut self) -> Option<&mut Digest> {
        Arc::get_mut(&mut self.digest)
    }

    /// The client's address.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        self.digest.socket_digest.as_ref()?.peer_addr()
    }

    /// The local address the client connected to.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        self.digest.socket_digest.as_ref()?.local_addr()
    }
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        if !self.ended {
            // a session given up half way: tell the client instead of
            // leaving the stream hanging
            self.shutdown();
        }
    }
}

#[cfg(test)]
mod codec_tests;
#[cfg(test)]
mod tests;
