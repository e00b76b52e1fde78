//! Requests to an upstream over a shared HTTP/2 connection.
//!
//! A connection is represented by a [`ConnectionRef`] (cheap to clone, kept
//! in the connector's pool) whose background task, [`drive_connection`],
//! reads and writes the socket, pings it and notices when it ends. Each
//! request takes a stream slot of the connection as an [`Http2Session`] and
//! gives it back when dropped.

use super::{h2_error, send_end, send_flow_controlled, strip_connection_headers};
use crate::protocols::{Digest, SocketAddr, Stream, UniqueID, UniqueIDType};
use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, RecvStream, SendStream};
use http::{header, HeaderMap, Uri, Version};
use log::{debug, warn};
use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, OrErr, Result, RetryType};
use pingora_http::{RequestHeader, ResponseHeader};
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// An upstream HTTP/2 connection.
pub type H2Connection = h2::client::Connection<Stream, Bytes>;

struct ConnectionInner {
    send_req: SendRequest<Bytes>,
    closed: watch::Receiver<bool>,
    id: UniqueIDType,
    digest: Digest,
    tls: bool,
    /// Our own cap on concurrent streams (the peer's `max_h2_streams`).
    max_streams: usize,
    current_streams: AtomicUsize,
    /// No new streams: GOAWAY received, a ping went unanswered, or it failed.
    retired: AtomicBool,
    last_used: Mutex<Instant>,
}

/// A shared handle to an upstream HTTP/2 connection.
#[derive(Clone)]
pub struct ConnectionRef(Arc<ConnectionInner>);

impl ConnectionRef {
    /// Wrap an established connection's request handle. `closed` turns
    /// `true` when [`drive_connection`] ends.
    pub fn new(
        send_req: SendRequest<Bytes>,
        closed: watch::Receiver<bool>,
        digest: Digest,
        id: UniqueIDType,
        max_streams: usize,
        tls: bool,
    ) -> Self {
        ConnectionRef(Arc::new(ConnectionInner {
            send_req,
            closed,
            id,
            digest,
            tls,
            max_streams: max_streams.max(1),
            current_streams: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
        }))
    }

    /// Whether the connection ended or takes no new streams.
    pub fn is_closed(&self) -> bool {
        *self.0.closed.borrow() || self.0.retired.load(Ordering::Acquire)
    }

    /// Stop handing out streams of this connection (the ones in flight go on).
    pub fn retire(&self) {
        self.0.retired.store(true, Ordering::Release);
    }

    /// Streams in use.
    pub fn current_streams(&self) -> usize {
        self.0.current_streams.load(Ordering::Acquire)
    }

    /// Whether no stream is in use, and since when nothing was released.
    pub fn idle_since(&self) -> Option<Instant> {
        (self.current_streams() == 0).then(|| *self.0.last_used.lock())
    }

    /// The most streams this connection may carry now: the lower of our cap
    /// and the peer's `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub fn max_streams(&self) -> usize {
        self.0
            .max_streams
            .min(self.0.send_req.current_max_send_streams())
    }

    /// Take a stream slot for a new request. `None` when the connection is
    /// full, retired or closed.
    pub fn spawn_stream(&self) -> Option<Http2Session> {
        if self.is_closed() {
            return None;
        }
        let max = self.max_streams();
        let taken = self
            .0
            .current_streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        if taken.is_err() {
            return None;
        }
        let mut send_req = self.0.send_req.clone();
        // The connection refuses new streams after a GOAWAY or failure.
        let waker = futures::task::noop_waker();
        if let Poll::Ready(Err(e)) = send_req.poll_ready(&mut Context::from_waker(&waker)) {
            debug!(
                "upstream h2 connection {} cannot open streams: {e}",
                self.0.id
            );
            self.retire();
            self.release_stream();
            return None;
        }
        Some(Http2Session::new(send_req, self.clone()))
    }

    fn release_stream(&self) {
        *self.0.last_used.lock() = Instant::now();
        self.0.current_streams.fetch_sub(1, Ordering::AcqRel);
    }

    /// Facts about the connection.
    pub fn digest(&self) -> &Digest {
        &self.0.digest
    }

    /// The connection's id (its fd).
    pub fn id(&self) -> UniqueIDType {
        self.0.id
    }
}

/// Drive `conn` until it ends: read and write its frames, send a PING every
/// `ping_interval` (a PING unanswered within the interval closes it), and
/// close it once it was idle for `idle_timeout`. Sets `closed` at the end.
///
/// Before handing the connection out, [`sync_settings`] makes sure the
/// server's SETTINGS (its stream limit above all) are known.
/// `ping_pong` is the connection's PING handle (`conn.ping_pong()`, which can
/// be taken once), needed for `ping_interval`.
pub async fn drive_connection(
    mut conn: H2Connection,
    ping_pong: Option<h2::PingPong>,
    conn_ref: ConnectionRef,
    closed: watch::Sender<bool>,
    ping_interval: Option<Duration>,
    idle_timeout: Option<Duration>,
) {
    let id = conn_ref.id();
    let pinger = async {
        let (Some(interval), Some(mut pp)) = (ping_interval, ping_pong) else {
            return std::future::pending::<()>().await;
        };
        loop {
            tokio::time::sleep(interval).await;
            match tokio::time::timeout(interval, pp.ping(h2::Ping::opaque())).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    debug!("upstream h2 connection {id}: ping failed: {e}");
                    return;
                }
                Err(_) => {
                    warn!("upstream h2 connection {id}: ping not answered in {interval:?}");
                    return;
                }
            }
        }
    };
    let idle_watch = async {
        let Some(limit) = idle_timeout else {
            return std::future::pending::<()>().await;
        };
        loop {
            let wait = match conn_ref.idle_since() {
                Some(since) if since.elapsed() >= limit => {
                    // no new stream may start on it from now on
                    conn_ref.retire();
                    if conn_ref.current_streams() == 0 {
                        return;
                    }
                    limit
                }
                Some(since) => limit - since.elapsed(),
                None => limit,
            };
            tokio::time::sleep(wait).await;
        }
    };
    tokio::select! {
        res = &mut conn => {
            if let Err(e) = res {
                debug!("upstream h2 connection {id} ended: {e}");
            }
        }
        _ = pinger => {}
        _ = idle_watch => debug!("upstream h2 connection {id} idle, closing"),
    }
    conn_ref.retire();
    let _ = closed.send(true);
}

/// Wait until the server's first SETTINGS were processed, by a PING round
/// trip (a server sends its SETTINGS before it answers anything), so that
/// its `SETTINGS_MAX_CONCURRENT_STREAMS` bounds the first burst of requests.
pub async fn sync_settings(
    conn: &mut H2Connection,
    ping_pong: &mut h2::PingPong,
    limit: Duration,
) -> Result<()> {
    let round_trip = async {
        tokio::select! {
            res = &mut *conn => match res {
                Ok(()) => Error::e_explain(ErrorType::H2Error, "connection closed at once"),
                Err(e) => Err(h2_error(e, ErrorType::H2Error, "HTTP/2 connection failed")),
            },
            pong = ping_pong.ping(h2::Ping::opaque()) => pong
                .map(|_| ())
                .map_err(|e| h2_error(e, ErrorType::H2Error, "first PING failed")),
        }
    };
    tokio::time::timeout(limit, round_trip)
        .await
        .or_err(ErrorType::H2Error, "no answer to the first PING")?
}

/// One request/response exchange on a shared upstream HTTP/2 connection.
pub struct Http2Session {
    send_req: SendRequest<Bytes>,
    send_body: Option<SendStream<Bytes>>,
    resp_fut: Option<ResponseFuture>,
    req_sent: Option<Box<RequestHeader>>,
    response_header: Option<ResponseHeader>,
    response_body: Option<RecvStream>,
    request_ended: bool,
    response_ended: bool,
    body_read: usize,
    /// Limit on each read from the upstream.
    pub read_timeout: Option<Duration>,
    /// Limit on each write to the upstream.
    pub write_timeout: Option<Duration>,
    conn: ConnectionRef,
}

impl Http2Session {
    fn new(send_req: SendRequest<Bytes>, conn: ConnectionRef) -> Self {
        Http2Session {
            send_req,
            send_body: None,
            resp_fut: None,
            req_sent: None,
            response_header: None,
            response_body: None,
            request_ended: false,
            response_ended: false,
            body_read: 0,
            read_timeout: None,
            write_timeout: None,
            conn,
        }
    }

    /// Build the HTTP/2 form of `req`: `:authority` from the URI or the
    /// `Host` header, `:scheme` from the connection, no hop-by-hop headers.
    fn to_h2_request(&self, req: &RequestHeader) -> Result<http::Request<()>> {
        let mut parts = req.as_owned_parts();
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        parts.headers.remove(header::HOST);
        strip_connection_headers(&mut parts.headers);
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let mut uri = Uri::builder()
            .scheme(if self.conn.0.tls { "https" } else { "http" })
            .path_and_query(path);
        if let Some(a) = authority {
            uri = uri.authority(a);
        }
        parts.uri = uri.build().or_err(
            ErrorType::InvalidHTTPHeader,
            "request URI not valid for HTTP/2",
        )?;
        parts.version = Version::HTTP_2;
        Ok(http::Request::from_parts(parts, ()))
    }

    /// Send the request head; `end` when the request has no body. The
    /// stream slot was reserved when this session was made, so this does not
    /// wait: the frames go out with the connection's next write.
    pub fn write_request_header(&mut self, req: Box<RequestHeader>, end: bool) -> Result<()> {
        if self.req_sent.is_some() {
            return Error::e_explain(ErrorType::H2Error, "request header already sent");
        }
        let request = self.to_h2_request(&req)?;
        let (resp_fut, send_body) = match self.send_req.send_request(request, end) {
            Ok(s) => s,
            Err(e) => {
                // nothing reached the upstream: safe to try elsewhere
                self.conn.retire();
                let mut e = h2_error(e, ErrorType::WriteError, "while sending HTTP/2 request");
                e.retry = RetryType::Decided(true);
                return Err(e);
            }
        };
        self.resp_fut = Some(resp_fut);
        self.request_ended = end;
        self.send_body = Some(send_body);
        self.req_sent = Some(req);
        Ok(())
    }

    /// Send a piece of request body (waits for the upstream's window).
    pub async fn write_request_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        if self.request_ended {
            return if data.is_empty() {
                Ok(())
            } else {
                Error::e_explain(ErrorType::WriteError, "HTTP/2 request body already ended")
            };
        }
        let Some(body) = self.send_body.as_mut() else {
            return Error::e_explain(ErrorType::H2Error, "request body before its header");
        };
        match self.write_timeout {
            Some(t) => tokio::time::timeout(t, send_flow_controlled(body, data, end))
                .await
                .or_err(ErrorType::WriteTimedout, "writing HTTP/2 request body")??,
            None => send_flow_controlled(body, data, end).await?,
        }
        self.request_ended |= end;
        Ok(())
    }

    /// End the request body.
    pub fn finish_request_body(&mut self) -> Result<()> {
        if self.request_ended {
            return Ok(());
        }
        let Some(body) = self.send_body.as_mut() else {
            return Error::e_explain(ErrorType::H2Error, "request body before its header");
        };
        send_end(body)?;
        self.request_ended = true;
        Ok(())
    }

    /// Send request trailers, ending the request.
    pub fn write_request_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        let Some(body) = self.send_body.as_mut().filter(|_| !self.request_ended) else {
            return Error::e_explain(ErrorType::H2Error, "no open request body for trailers");
        };
        body.send_trailers(trailers)
            .map_err(|e| h2_error(e, ErrorType::WriteError, "while sending trailers"))?;
        self.request_ended = true;
        Ok(())
    }

    /// Wait for the response head. Cancel safe: the pending response stays
    /// in the session when the wait is dropped.
    pub async fn read_response_header(&mut self) -> Result<()> {
        let Some(fut) = self.resp_fut.as_mut() else {
            return Error::e_explain(ErrorType::H2Error, "no request sent, or header read");
        };
        let resp = match self.read_timeout {
            Some(t) => tokio::time::timeout(t, fut)
                .await
                .or_err(ErrorType::ReadTimedout, "reading HTTP/2 response header")?,
            None => fut.await,
        };
        self.resp_fut = None;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Err(self.response_error(e)),
        };
        let (parts, body) = resp.into_parts();
        self.response_ended = body.is_end_stream();
        self.response_header = Some(parts.into());
        self.response_body = Some(body);
        Ok(())
    }

    /// The next interim (1xx) response head the upstream sent before its
    /// final one, e.g. `103 Early Hints`; `Ok(None)` once the final head is
    /// next (read it with [`Self::read_response_header`]). Cancel safe.
    pub async fn read_informational(&mut self) -> Result<Option<ResponseHeader>> {
        let Some(fut) = self.resp_fut.as_mut() else {
            return Ok(None);
        };
        let next = poll_fn(|cx| fut.poll_informational(cx));
        let next = match self.read_timeout {
            Some(t) => tokio::time::timeout(t, next)
                .await
                .or_err(ErrorType::ReadTimedout, "reading HTTP/2 response header")?,
            None => next.await,
        };
        match next {
            Some(Ok(resp)) => Ok(Some(resp.into_parts().0.into())),
            Some(Err(e)) => Err(self.response_error(e)),
            None => Ok(None),
        }
    }

    /// Classify a failure before the response started: requests the
    /// upstream did not process (refused, or beyond a GOAWAY) are retryable.
    fn response_error(&mut self, e: h2::Error) -> Box<Error> {
        let unprocessed =
            (e.is_go_away() && e.is_remote()) || e.reason() == Some(Reason::REFUSED_STREAM);
        let downgrade = super::is_remote_reset(&e, Reason::HTTP_1_1_REQUIRED);
        if e.is_go_away() || e.is_io() {
            self.conn.retire();
        }
        let mut err = if downgrade {
            Error::because(ErrorType::H2Downgrade, "upstream asked for HTTP/1.1", e)
        } else {
            h2_error(e, ErrorType::ReadError, "while reading HTTP/2 response")
        };
        if unprocessed || downgrade {
            err.retry = RetryType::Decided(true);
        }
        err
    }

    /// The next piece of response body; `Ok(None)` at its end (then the
    /// trailers, if any, are in [`Self::read_trailers`]).
    pub async fn read_response_body(&mut self) -> Result<Option<Bytes>> {
        if self.response_ended {
            return Ok(None);
        }
        let Some(body) = self.response_body.as_mut() else {
            return Error::e_explain(ErrorType::H2Error, "response body before its header");
        };
        loop {
            let next = match self.read_timeout {
                Some(t) => tokio::time::timeout(t, body.data())
                    .await
                    .or_err(ErrorType::ReadTimedout, "reading HTTP/2 response body")?,
                None => body.data().await,
            };
            match next {
                Some(Ok(data)) => {
                    // the proxy asks for the next piece only after this one
                    // went downstream: the upstream's window follows the client
                    let _ = body.flow_control().release_capacity(data.len());
                    if data.is_empty() {
                        continue;
                    }
                    self.body_read += data.len();
                    return Ok(Some(data));
                }
                Some(Err(e)) => {
                    return Err(h2_error(
                        e,
                        ErrorType::ReadError,
                        "reading HTTP/2 response body",
                    ))
                }
                None => {
                    self.response_ended = true;
                    return Ok(None);
                }
            }
        }
    }

    /// The response trailers, once the body was read to its end: `None`
    /// when the response had none (or the upstream ended the stream with
    /// `NO_ERROR` instead, which RFC 9113 §8.1 allows).
    pub async fn read_trailers(&mut self) -> Result<Option<HeaderMap>> {
        let Some(body) = self.response_body.as_mut() else {
            return Ok(None);
        };
        let read = poll_fn(|cx| body.poll_trailers(cx));
        let res = match self.read_timeout {
            Some(t) => tokio::time::timeout(t, read)
                .await
                .or_err(ErrorType::ReadTimedout, "reading HTTP/2 trailers")?,
            None => read.await,
        };
        match res {
            Ok(t) => Ok(t),
            Err(e) if e.is_remote() && e.reason() == Some(Reason::NO_ERROR) => Ok(None),
            Err(e) => Err(h2_error(e, ErrorType::ReadError, "reading HTTP/2 trailers")),
        }
    }

    /// Whether the response was read to its end.
    pub fn response_finished(&self) -> bool {
        self.response_ended
    }

    /// The response head, once read.
    pub fn response_header(&self) -> Option<&ResponseHeader> {
        self.response_header.as_ref()
    }

    /// The request head as sent.
    pub fn request_header(&self) -> Option<&RequestHeader> {
        self.req_sent.as_deref()
    }

    /// Response body bytes read so far.
    pub fn body_bytes_read(&self) -> usize {
        self.body_read
    }

    /// Abort the exchange: reset the stream unless it completed.
    pub fn shutdown(&mut self) {
        if !(self.request_ended && self.response_ended) {
            if let Some(body) = self.send_body.as_mut() {
                body.send_reset(Reason::CANCEL);
            }
            self.request_ended = true;
            self.response_ended = true;
        }
    }

    /// The shared connection this stream runs on.
    pub fn conn(&self) -> ConnectionRef {
        self.conn.clone()
    }

    /// Facts about the connection (timing reflects its first use).
    pub fn digest(&self) -> Option<&Digest> {
        Some(self.conn.digest())
    }

    /// Facts about the connection, mutable: `None`, as the connection and
    /// its digest are shared with the pool and the other streams.
    pub fn digest_mut(&mut self) -> Option<&mut Digest> {
        None
    }

    /// The id (fd) of the underlying connection.
    pub fn fd(&self) -> UniqueIDType {
        self.conn.id()
    }

    /// The upstream's address.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        self.conn.digest().socket_digest.as_ref()?.peer_addr()
    }

    /// Our local address.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        self.conn.digest().socket_digest.as_ref()?.local_addr()
    }
}

impl UniqueID for Http2Session {
    fn id(&self) -> UniqueIDType {
        self.conn.id()
    }
}

impl Drop for Http2Session {
    fn drop(&mut self) {
        self.shutdown();
        self.conn.release_stream();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our client connection to an `h2` crate server over memory; the server
    /// answers each request with its body echoed and a trailer.
    async fn connect(max_streams: usize) -> ConnectionRef {
        let (a, b) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            let mut conn = h2::server::handshake(b).await.expect("server handshake");
            while let Some(Ok((req, mut respond))) = conn.accept().await {
                tokio::spawn(async move {
                    let mut body = req.into_body();
                    let mut got = Vec::new();
                    while let Some(Ok(piece)) = body.data().await {
                        let _ = body.flow_control().release_capacity(piece.len());
                        got.extend_from_slice(&piece);
                    }
                    let resp = http::Response::builder()
                        .status(200)
                        .body(())
                        .expect("resp");
                    let mut send = respond.send_response(resp, false).expect("respond");
                    send.send_data(Bytes::from(got), false).expect("data");
                    let mut t = HeaderMap::new();
                    t.insert("x-trailer", "yes".parse().expect("value"));
                    send.send_trailers(t).expect("trailers");
                });
            }
        });
        let stream: Stream = Box::new(a);
        let (send_req, mut conn) = h2::client::handshake(stream).await.expect("handshake");
        let mut pp = conn.ping_pong().expect("ping pong");
        sync_settings(&mut conn, &mut pp, Duration::from_secs(5))
            .await
            .expect("settings");
        let (tx, rx) = watch::channel(false);
        let conn_ref = ConnectionRef::new(send_req, rx, Digest::default(), 7, max_streams, false);
        tokio::spawn(drive_connection(
            conn,
            Some(pp),
            conn_ref.clone(),
            tx,
            None,
            None,
        ));
        conn_ref
    }

    #[tokio::test]
    async fn exchange_with_body_and_trailers() {
        let conn = connect(2).await;
        let mut s = conn.spawn_stream().expect("a stream");
        let mut req = RequestHeader::build("POST", b"/x", None).expect("req");
        req.insert_header("host", "up.test").expect("host");
        req.insert_header("connection", "close").expect("hdr");
        s.write_request_header(Box::new(req), false)
            .expect("header");
        s.write_request_body(Bytes::from_static(b"ping"), true)
            .await
            .expect("body");
        s.read_response_header().await.expect("response");
        assert_eq!(s.response_header().expect("header").status, 200);
        let mut body = Vec::new();
        while let Some(piece) = s.read_response_body().await.expect("body") {
            body.extend_from_slice(&piece);
        }
        assert_eq!(body, b"ping");
        assert!(s.response_finished());
        let trailers = s.read_trailers().await.expect("trailers").expect("some");
        assert_eq!(trailers.get("x-trailer").expect("trailer"), "yes");
        assert_eq!(s.id(), 7);
    }

    #[tokio::test]
    async fn streams_are_capped_and_given_back() {
        let conn = connect(2).await;
        let a = conn.spawn_stream().expect("first");
        let b = conn.spawn_stream().expect("second");
        assert!(conn.spawn_stream().is_none(), "the cap is 2");
        assert_eq!(conn.current_streams(), 2);
        drop(a);
        assert_eq!(conn.current_streams(), 1);
        assert!(conn.idle_since().is_none());
        drop(b);
        assert!(conn.idle_since().is_some());
        conn.retire();
        assert!(conn.is_closed());
        assert!(conn.spawn_stream().is_none(), "retired");
    }
}
