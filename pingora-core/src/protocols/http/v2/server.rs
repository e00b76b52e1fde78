//! One stream of a downstream HTTP/2 connection, seen as a request and its
//! response.
//!
//! [`handshake`] turns an accepted connection into an `h2` server connection;
//! [`HttpSession::from_h2_conn`] waits for its next stream. Each stream is
//! then served on its own, concurrently with the others; the connection task
//! must keep calling `from_h2_conn` so that the connection makes progress.

use super::write_batch::BatchedIo;
pub(crate) use super::write_batch::WriteBatch;
use super::{h2_error, send_end, send_flow_controlled, strip_connection_headers, ResetTracker};
use crate::protocols::http::body_buffer::FixedBuffer;
use crate::protocols::http::v1::common::BODY_BUF_LIMIT;
use crate::protocols::http::HttpTask;
use crate::protocols::{Digest, SocketAddr, Stream};
use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use log::debug;
use pingora_error::{Error, ErrorType, OrErr, Result};
use pingora_http::{known, RequestHeader, ResponseHeader};
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
    request_body: RecvStream,
    send_response: SendResponse<Bytes>,
    send_body: Option<SendStream<Bytes>>,
    response_written: Option<Box<ResponseHeader>>,
    /// The response stream was ended (END_STREAM or reset sent).
    ended: bool,
    /// The client reset the stream.
    reset_by_client: bool,
    /// The request body was seen complete (it stays so): asking `h2` again
    /// takes its lock.
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
                if let Some(host) = host_value(authority.as_str(), last_host) {
                    let _ = slot.try_insert(host);
                }
            }
        }
        let mut request_header: RequestHeader = parts.into();
        request_header.set_version(Version::HTTP_2);
        let body_ended = request_body.is_end_stream();
        request_header.set_send_end_stream(body_ended);
        HttpSession {
            request_header,
            request_body,
            send_response,
            send_body: None,
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
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        if let std::task::Poll::Ready(Ok(_)) = self.send_response.poll_reset(&mut cx) {
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

    fn note_error(&mut self, e: &h2::Error) {
        if e.is_remote() && e.is_reset() {
            self.mark_reset();
        }
    }

    /// The next piece of request body; `Ok(None)` at its end. Its
    /// flow-control window is released as the piece is handed out.
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        loop {
            let next = match self.rare.as_ref().and_then(|r| r.read_timeout) {
                Some(t) => tokio::time::timeout(t, self.request_body.data())
                    .await
                    .or_err(ErrorType::ReadTimedout, "reading HTTP/2 request body")?,
                None => self.request_body.data().await,
            };
            match next {
                None => {
                    self.read_request_trailers().await?;
                    return Ok(None);
                }
                Some(Err(e)) => {
                    self.note_error(&e);
                    return Err(h2_error(
                        e,
                        ErrorType::ReadError,
                        "while reading HTTP/2 request body",
                    ));
                }
                Some(Ok(data)) => {
                    // hand back the window: the caller only asks for more
                    // once this piece went on, so the client follows our pace
                    let _ = self
                        .request_body
                        .flow_control()
                        .release_capacity(data.len());
                    if data.is_empty() {
                        continue;
                    }
                    self.body_read += data.len();
                    if let Some(b) = self.retry_buffer.as_mut() {
                        b.write_to_buffer(&data);
                    }
                    return Ok(Some(data));
                }
            }
        }
    }

    async fn read_request_trailers(&mut self) -> Result<()> {
        if self.request_trailers().is_none() {
            let trailers = poll_fn(|cx| self.request_body.poll_trailers(cx)).await;
            match trailers {
                Ok(Some(t)) => self.rare_mut().request_trailers = Some(t),
                Err(e) => {
                    self.note_error(&e);
                    return Err(h2_error(
                        e,
                        ErrorType::ReadError,
                        "reading request trailers",
                    ));
                }
                Ok(None) => {}
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
        self.body_ended || self.request_body.is_end_stream()
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
        let reset = match self.send_body.as_mut() {
            Some(body) => poll_fn(|cx| body.poll_reset(cx)).await,
            None => poll_fn(|cx| self.send_response.poll_reset(cx)).await,
        };
        match reset {
            Ok(reason) => {
                self.mark_reset();
                Error::e_explain(
                    ErrorType::ConnectionClosed,
                    format!("client reset the HTTP/2 stream: {reason}"),
                )
            }
            Err(e) => Err(h2_error(e, ErrorType::ReadError, "HTTP/2 stream failed")),
        }
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
        let mut parts = header.as_owned_parts();
        strip_forbidden(&header, &mut parts.headers);
        let resp = http::Response::from_parts(parts, ());
        let body = self
            .send_response
            .send_response(resp, end)
            .map_err(|e| h2_error(e, ErrorType::WriteError, "while sending HTTP/2 response"))?;
        self.response_written = Some(header);
        if end {
            self.ended = true;
        } else {
            self.send_body = Some(body);
        }
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
        let mut parts = header.as_owned_parts();
        strip_forbidden(&header, &mut parts.headers);
        self.send_response
            .send_informational(http::Response::from_parts(parts, ()))
            .map_err(|e| {
                h2_error(
                    e,
                    ErrorType::WriteError,
                    "while sending an HTTP/2 informational response",
                )
            })
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
        let Some(body) = self.send_body.as_mut() else {
            return Error::e_explain(ErrorType::H2Error, "response body before its header");
        };
        let len = data.len();
        let sent = match self.rare.as_ref().and_then(|r| r.write_timeout) {
            Some(t) => tokio::time::timeout(t, send_flow_controlled(body, data, end))
                .await
                .or_err(ErrorType::WriteTimedout, "writing HTTP/2 response body")?,
            None => send_flow_controlled(body, data, end).await,
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
        let Some(body) = self.send_body.as_mut() else {
            return Error::e_explain(ErrorType::H2Error, "trailers before the response header");
        };
        body.send_trailers(trailers)
            .map_err(|e| h2_error(e, ErrorType::WriteError, "while sending HTTP/2 trailers"))?;
        self.ended = true;
        Ok(())
    }

    /// End the response (an empty final DATA frame when the body is open).
    pub fn finish_body(&mut self) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        match self.send_body.as_mut() {
            Some(body) => send_end(body)?,
            None => return Error::e_explain(ErrorType::H2Error, "finished before any response"),
        }
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
            match self.send_body.as_mut() {
                Some(body) => body.send_reset(Reason::INTERNAL_ERROR),
                None => self.send_response.send_reset(Reason::INTERNAL_ERROR),
            }
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

/// The `Host` value for `authority`: the one in `last` when it is the same,
/// else a new one, kept in `last` for the next stream.
fn host_value(authority: &str, last: &mut Option<HeaderValue>) -> Option<HeaderValue> {
    if let Some(v) = last
        .as_ref()
        .filter(|v| v.as_bytes() == authority.as_bytes())
    {
        return Some(v.clone());
    }
    let v = HeaderValue::from_str(authority).ok()?;
    *last = Some(v.clone());
    Some(v)
}

/// [`strip_connection_headers`] on `headers`, a copy of `header`'s map, unless
/// `header`'s known bits show that none of the names it removes is present
/// (the usual case: the proxy already stripped the hop-by-hop headers).
fn strip_forbidden(header: &ResponseHeader, headers: &mut HeaderMap) {
    // every name `strip_connection_headers` may remove is either one of these
    // or named by a `Connection` header, which is one of these
    const FORBIDDEN: u16 = known::HOP_BY_HOP | known::TRANSFER_ENCODING;
    if header.known_headers() & FORBIDDEN != 0 {
        strip_connection_headers(headers);
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
mod tests {
    use super::*;
    use std::future::poll_fn;

    /// A client (the `h2` crate) talking to our server session over memory.
    async fn pair() -> (h2::client::SendRequest<Bytes>, H2Connection<Stream>) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(async move { handshake(Box::new(a), None).await });
        let (send, conn) = h2::client::handshake(b).await.expect("client handshake");
        tokio::spawn(conn);
        let server = server.await.expect("join").expect("server handshake");
        (send, server)
    }

    /// The first stream of `conn`; the connection keeps being served in the background.
    async fn first_stream(mut conn: H2Connection<Stream>) -> HttpSession {
        let digest = Arc::new(Digest::default());
        let s = HttpSession::from_h2_conn(&mut conn, digest)
            .await
            .expect("accept")
            .expect("a stream");
        tokio::spawn(async move { while let Some(Ok(_)) = conn.accept().await {} });
        s
    }

    #[test]
    fn session_is_no_larger_than_an_http1_one() {
        // `ServerSession` is as large as its largest variant and is moved
        // several times per request: an HTTP/2 stream must not grow it
        // (448 B: the HTTP/1 session's size when this was written)
        let h2 = std::mem::size_of::<HttpSession>();
        let h1 = std::mem::size_of::<crate::protocols::http::v1::server::HttpSession>();
        assert!(
            h2 <= h1.max(448),
            "HTTP/2 session {h2} B, HTTP/1 session {h1} B"
        );
    }

    #[tokio::test]
    async fn request_body_response_and_trailers() {
        let (send, conn) = pair().await;
        let client = tokio::spawn(async move {
            let mut send = send.ready().await.expect("ready");
            let req = http::Request::post("http://a.test/up")
                .body(())
                .expect("req");
            let (resp, mut body) = send.send_request(req, false).expect("send");
            body.send_data(Bytes::from_static(b"hello "), false)
                .expect("data");
            body.send_data(Bytes::from_static(b"world"), true)
                .expect("data");
            let resp = resp.await.expect("response");
            assert_eq!(resp.status(), 201);
            assert!(resp.headers().get("connection").is_none());
            let mut body = resp.into_body();
            let mut got = Vec::new();
            while let Some(piece) = body.data().await {
                got.extend_from_slice(&piece.expect("data"));
            }
            let trailers = poll_fn(|cx| body.poll_trailers(cx)).await;
            (got, trailers.expect("trailers").expect("some"))
        });
        let mut s = first_stream(conn).await;
        assert_eq!(s.req_header().method, Method::POST);
        assert_eq!(
            s.req_header().headers.get("host").map(|v| v.as_bytes()),
            Some(&b"a.test"[..])
        );
        assert_eq!(s.req_header().send_end_stream(), Some(false));
        s.enable_retry_buffering();
        let mut body = Vec::new();
        while let Some(piece) = s.read_body_bytes().await.expect("body") {
            body.extend_from_slice(&piece);
        }
        assert_eq!(body, b"hello world");
        assert!(s.is_body_done());
        assert_eq!(s.get_retry_buffer().as_deref(), Some(&b"hello world"[..]));
        let mut resp = ResponseHeader::build(201, None).expect("resp");
        resp.insert_header("connection", "keep-alive").expect("hdr");
        s.write_response_header(Box::new(resp), false)
            .expect("header");
        s.write_body(Bytes::from_static(b"done"), false)
            .await
            .expect("body");
        let mut t = HeaderMap::new();
        t.insert("grpc-status", "0".parse().expect("value"));
        s.write_trailers(t).expect("trailers");
        assert_eq!(s.body_bytes_sent(), 4);
        assert!(s.finish().is_ok());
        let (got, trailers) = client.await.expect("client");
        assert_eq!(got, b"done");
        assert_eq!(trailers.get("grpc-status").expect("status"), "0");
    }

    #[tokio::test]
    async fn informational_heads_go_before_the_final_one() {
        let (send, conn) = pair().await;
        let client = tokio::spawn(async move {
            let mut send = send.ready().await.expect("ready");
            let req = http::Request::get("http://a.test/").body(()).expect("req");
            let (mut resp, _) = send.send_request(req, true).expect("send");
            let mut interim = Vec::new();
            while let Some(info) = poll_fn(|cx| resp.poll_informational(cx)).await {
                let info = info.expect("informational");
                let link = info.headers().get("link").map(|v| v.as_bytes().to_vec());
                interim.push((info.status().as_u16(), link));
            }
            let resp = resp.await.expect("response");
            (interim, resp.status().as_u16())
        });
        let mut s = first_stream(conn).await;
        let mut hints = ResponseHeader::build(103, None).expect("resp");
        hints.insert_header("link", "</a.css>").expect("hdr");
        hints
            .insert_header("connection", "keep-alive")
            .expect("hdr");
        s.write_response_header(Box::new(hints), false)
            .expect("103");
        // HTTP/2 has no protocol switch: a 101 is dropped, not sent
        let switch = ResponseHeader::build(101, None).expect("resp");
        s.write_response_header(Box::new(switch), false)
            .expect("101 dropped");
        assert!(s.response_written().is_none());
        let resp = ResponseHeader::build(204, None).expect("resp");
        s.write_response_header(Box::new(resp), true)
            .expect("final");
        let (interim, status) = client.await.expect("client");
        assert_eq!(interim, vec![(103, Some(b"</a.css>".to_vec()))]);
        assert_eq!(status, 204);
    }

    #[test]
    fn host_value_is_shared_while_the_authority_stays() {
        let mut last = None;
        let a = host_value("a.test", &mut last).expect("host");
        let b = host_value("a.test", &mut last).expect("host");
        // the same bytes, not a copy of them
        assert_eq!(a.as_bytes().as_ptr(), b.as_bytes().as_ptr());
        let c = host_value("b.test:8080", &mut last).expect("host");
        assert_eq!(c, "b.test:8080");
        assert!(host_value("bad\nhost", &mut last).is_none());
    }

    #[tokio::test]
    async fn head_response_ends_with_its_header() {
        let (send, conn) = pair().await;
        let client = tokio::spawn(async move {
            let mut send = send.ready().await.expect("ready");
            let req = http::Request::head("http://a.test/").body(()).expect("req");
            let (resp, _) = send.send_request(req, true).expect("send");
            let resp = resp.await.expect("response");
            resp.body().is_end_stream()
        });
        let mut s = first_stream(conn).await;
        assert!(s.is_body_empty());
        let mut resp = ResponseHeader::build(200, None).expect("resp");
        resp.insert_header("content-length", "10").expect("hdr");
        s.write_response_header(Box::new(resp), false)
            .expect("header");
        // the body is already ended: nothing more may be sent, finishing is a no-op
        assert!(s.finish_body().is_ok());
        assert!(client.await.expect("client"));
    }
}
