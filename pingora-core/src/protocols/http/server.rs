//! The protocol-independent server session handed to HTTP applications.

use super::error_resp;
use super::v1::server::HttpSession as SessionV1;
use super::v2::server::HttpSession as SessionV2;
use super::HttpTask;
use crate::protocols::{Digest, SocketAddr, Stream};
use bytes::Bytes;
use http::header::AsHeaderName;
use http::{HeaderMap, HeaderValue};
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use std::time::Duration;

/// A server session over HTTP/1.x or one stream of an HTTP/2 connection.
pub enum Session {
    /// An HTTP/1.x session.
    H1(SessionV1),
    /// One stream of an HTTP/2 connection.
    H2(SessionV2),
}

impl Session {
    /// A session over a freshly accepted (or reused) HTTP/1 connection.
    pub fn new_http1(stream: Stream) -> Self {
        Session::H1(SessionV1::new(stream))
    }

    /// A session over one accepted HTTP/2 stream.
    pub fn new_http2(session: SessionV2) -> Self {
        Session::H2(session)
    }

    /// Whether this is an HTTP/2 stream.
    pub fn is_http2(&self) -> bool {
        matches!(self, Session::H2(_))
    }

    /// The HTTP/2 session.
    pub fn as_http2(&self) -> Option<&SessionV2> {
        match self {
            Session::H2(s) => Some(s),
            Session::H1(_) => None,
        }
    }

    /// Read the request head. `Ok(false)`: the client went away before
    /// sending anything (normal on reused connections): drop the session.
    pub async fn read_request(&mut self) -> Result<bool> {
        match self {
            Session::H1(s) => Ok(s.read_request().await?.is_some()),
            Session::H2(_) => Ok(true),
        }
    }

    /// The request head.
    /// # Panics
    /// When [`Self::read_request`] did not succeed.
    pub fn req_header(&self) -> &RequestHeader {
        match self {
            Session::H1(s) => s.req_header(),
            Session::H2(s) => s.req_header(),
        }
    }

    /// The request head, mutable.
    /// # Panics
    /// When [`Self::read_request`] did not succeed.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        match self {
            Session::H1(s) => s.req_header_mut(),
            Session::H2(s) => s.req_header_mut(),
        }
    }

    /// The first value of request header `key`.
    pub fn get_header<K: AsHeaderName>(&self, key: K) -> Option<&HeaderValue> {
        self.req_header().headers.get(key)
    }

    /// The first value of request header `key` as bytes (empty if absent).
    pub fn get_header_bytes<K: AsHeaderName>(&self, key: K) -> &[u8] {
        self.get_header(key).map_or(b"", |v| v.as_bytes())
    }

    /// The next piece of request body; `Ok(None)` when complete.
    pub async fn read_request_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            Session::H1(s) => s.read_body_bytes().await,
            Session::H2(s) => s.read_body_bytes().await,
        }
    }

    /// Read and discard the rest of the request body.
    pub async fn drain_request_body(&mut self) -> Result<()> {
        match self {
            Session::H1(s) => s.drain_request_body().await,
            Session::H2(s) => s.drain_request_body().await,
        }
    }

    /// Send the response head (1xx heads may come before the final one).
    pub async fn write_response_header(&mut self, resp: Box<ResponseHeader>) -> Result<()> {
        match self {
            Session::H1(s) => s.write_response_header(resp).await,
            Session::H2(s) => s.write_response_header(resp, false),
        }
    }

    /// Same as [`Self::write_response_header`], cloning `resp`.
    pub async fn write_response_header_ref(&mut self, resp: &ResponseHeader) -> Result<()> {
        match self {
            Session::H1(s) => s.write_response_header_ref(resp).await,
            Session::H2(s) => s.write_response_header(Box::new(resp.clone()), false),
        }
    }

    /// Send a piece of response body; `end` finishes the body.
    pub async fn write_response_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        match self {
            Session::H1(s) => {
                if !data.is_empty() {
                    s.write_body(&data).await?;
                }
                if end {
                    s.finish_body().await?;
                }
                Ok(())
            }
            Session::H2(s) => s.write_body(data, end).await,
        }
    }

    /// Send trailers, ending the body (HTTP/1.1 chunked bodies only; dropped
    /// otherwise).
    pub async fn write_response_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        match self {
            Session::H1(s) => s
                .response_duplex_vec(vec![HttpTask::Trailer(Some(Box::new(trailers)))])
                .await
                .map(|_| ()),
            Session::H2(s) => s.write_trailers(trailers),
        }
    }

    /// End the exchange. Returns the connection when it can serve another
    /// request (pass it to [`Self::new_http1`]); HTTP/2 streams never do (the
    /// connection goes on serving its other streams).
    pub async fn finish(mut self) -> Result<Option<Stream>> {
        // The HTTP/1 session (a large value) is ended in place, and only moved out when the
        // connection is handed back, by a call that does not wait (the usual case).
        match &mut self {
            Session::H1(s) => {
                s.finish_body().await?;
            }
            Session::H2(s) => {
                s.finish()?;
                return Ok(None);
            }
        }
        match self {
            Session::H1(s) => match s.reuse_now() {
                Ok(stream) => Ok(Some(stream)),
                Err(s) => s.reuse().await,
            },
            Session::H2(_) => Ok(None),
        }
    }

    /// Write a batch of response tasks; returns whether the response is done.
    pub async fn response_duplex_vec(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        match self {
            Session::H1(s) => s.response_duplex_vec(tasks).await,
            Session::H2(s) => s.response_duplex_vec(tasks).await,
        }
    }

    /// Allow reuse of the connection for `duration` seconds of idleness
    /// (`Some(0)`: no limit), or forbid it (`None`).
    pub fn set_keepalive(&mut self, duration: Option<u64>) {
        match self {
            Session::H1(s) => s.set_server_keepalive(duration),
            Session::H2(_) => {}
        }
    }

    /// The keep-alive setting: `None` closes after this exchange, `Some(0)`
    /// keeps the connection without idle limit, `Some(s)` for `s` seconds.
    pub fn get_keepalive(&self) -> Option<u64> {
        match self {
            Session::H1(s) => s.get_keepalive_timeout(),
            Session::H2(_) => None,
        }
    }

    /// Limit how many more requests the connection may serve after this one
    /// (`Some(0)`: close after this one; `None`: no limit).
    pub fn set_keepalive_reuses_remaining(&mut self, remaining: Option<u32>) {
        match self {
            Session::H1(s) => s.set_keepalive_reuses_remaining(remaining),
            Session::H2(_) => {}
        }
    }

    /// How many more requests the connection may serve after this one.
    pub fn get_keepalive_reuses_remaining(&self) -> Option<u32> {
        match self {
            Session::H1(s) => s.get_keepalive_reuses_remaining(),
            Session::H2(_) => None,
        }
    }

    /// Limit reads from the client.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        match self {
            Session::H1(s) => s.set_read_timeout(timeout),
            Session::H2(s) => s.set_read_timeout(timeout),
        }
    }

    /// Limit writes to the client.
    pub fn set_write_timeout(&mut self, timeout: Duration) {
        match self {
            Session::H1(s) => s.set_write_timeout(timeout),
            Session::H2(s) => s.set_write_timeout(timeout),
        }
    }

    /// Limit how long draining an unread request body may take.
    pub fn set_total_drain_timeout(&mut self, timeout: Duration) {
        match self {
            Session::H1(s) => s.set_total_drain_timeout(timeout),
            Session::H2(s) => s.set_read_timeout(timeout),
        }
    }

    /// Require a minimum send rate (bytes per second) from the client.
    pub fn set_min_send_rate(&mut self, rate: usize) {
        match self {
            Session::H1(s) => s.set_min_send_rate(rate),
            Session::H2(_) => {}
        }
    }

    /// Drop informational responses instead of sending them.
    pub fn set_ignore_info_resp(&mut self, ignore: bool) {
        match self {
            Session::H1(s) => s.set_ignore_info_resp(ignore),
            Session::H2(_) => {}
        }
    }

    /// `METHOD path, Host: host`, for logs.
    pub fn request_summary(&self) -> String {
        match self {
            Session::H1(s) => s.request_summary(),
            Session::H2(s) => s.request_summary(),
        }
    }

    /// The final response head, once sent.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        match self {
            Session::H1(s) => s.response_written(),
            Session::H2(s) => s.response_written(),
        }
    }

    /// Abort: close the connection.
    pub async fn shutdown(&mut self) {
        match self {
            Session::H1(s) => s.shutdown().await,
            Session::H2(s) => s.shutdown(),
        }
    }

    /// The request head as raw HTTP/1 bytes.
    pub fn to_h1_raw(&self) -> Bytes {
        match self {
            Session::H1(s) => s.get_headers_raw_bytes(),
            Session::H2(s) => s.to_h1_raw(),
        }
    }

    /// Whether the whole request body was read.
    pub fn is_body_done(&mut self) -> bool {
        match self {
            Session::H1(s) => s.is_body_done(),
            Session::H2(s) => s.is_body_done(),
        }
    }

    /// End the response body (last chunk for chunked bodies).
    pub async fn finish_body(&mut self) -> Result<()> {
        match self {
            Session::H1(s) => s.finish_body().await.map(|_| ()),
            Session::H2(s) => s.finish_body(),
        }
    }

    /// A ready response header for error status `error`.
    pub fn generate_error(error: u16) -> ResponseHeader {
        match error {
            502 => error_resp::HTTP_502_RESPONSE.clone(),
            400 => error_resp::HTTP_400_RESPONSE.clone(),
            _ => error_resp::gen_error_response(error),
        }
    }

    /// Answer with error status `error` and an empty body; closes the
    /// connection afterwards.
    pub async fn respond_error(&mut self, error: u16) -> Result<()> {
        self.respond_error_with_body(error, Bytes::new()).await
    }

    /// Answer with error status `error` and `body`; closes the connection
    /// afterwards.
    pub async fn respond_error_with_body(&mut self, error: u16, body: Bytes) -> Result<()> {
        let mut resp = Self::generate_error(error);
        if !body.is_empty() {
            resp.set_content_length(body.len())?;
        }
        self.write_error_response(resp, body).await
    }

    /// Send `resp` with `body` and close the connection afterwards.
    pub async fn write_error_response(&mut self, resp: ResponseHeader, body: Bytes) -> Result<()> {
        self.set_keepalive(None);
        self.write_response_header(Box::new(resp)).await?;
        self.write_response_body(body, true).await
    }

    /// Whether the request has no body.
    pub fn is_body_empty(&mut self) -> bool {
        match self {
            Session::H1(s) => s.is_body_empty(),
            Session::H2(s) => s.is_body_empty(),
        }
    }

    /// Whether the request body outgrew the retry buffer.
    pub fn retry_buffer_truncated(&self) -> bool {
        match self {
            Session::H1(s) => s.retry_buffer_truncated(),
            Session::H2(s) => s.retry_buffer_truncated(),
        }
    }

    /// Keep a bounded copy of the request body for retries.
    pub fn enable_retry_buffering(&mut self) {
        match self {
            Session::H1(s) => s.enable_retry_buffering(),
            Session::H2(s) => s.enable_retry_buffering(),
        }
    }

    /// The buffered request body, unless truncated.
    pub fn get_retry_buffer(&self) -> Option<Bytes> {
        match self {
            Session::H1(s) => s.get_retry_buffer(),
            Session::H2(s) => s.get_retry_buffer(),
        }
    }

    /// Read body, or once it is complete wait until the client disconnects.
    pub async fn read_body_or_idle(&mut self, no_body_expected: bool) -> Result<Option<Bytes>> {
        match self {
            Session::H1(s) => s.read_body_or_idle(no_body_expected).await,
            Session::H2(s) => s.read_body_or_idle(no_body_expected).await,
        }
    }

    /// The HTTP/1 session.
    pub fn as_http1(&self) -> Option<&SessionV1> {
        match self {
            Session::H1(s) => Some(s),
            Session::H2(_) => None,
        }
    }

    /// Send `100 Continue`.
    pub async fn write_continue_response(&mut self) -> Result<()> {
        match self {
            Session::H1(s) => s.write_continue_response().await,
            Session::H2(_) => Ok(()),
        }
    }

    /// Whether the request asks for a protocol upgrade: an HTTP/1.1 `Upgrade`, or an HTTP/2
    /// extended CONNECT (RFC 8441, e.g. WebSocket over HTTP/2).
    pub fn is_upgrade_req(&self) -> bool {
        match self {
            Session::H1(s) => s.is_upgrade_req(),
            Session::H2(_) => self.extended_connect_protocol().is_some(),
        }
    }

    /// The protocol an HTTP/2 extended CONNECT request (RFC 8441) asks for (its `:protocol`,
    /// e.g. `websocket`); `None` for any other request.
    pub fn extended_connect_protocol(&self) -> Option<&str> {
        match self {
            Session::H1(_) => None,
            Session::H2(s) => {
                let req = s.req_header();
                if req.method != http::Method::CONNECT {
                    return None;
                }
                req.extensions
                    .get::<h2::ext::Protocol>()
                    .map(|p| p.as_str())
            }
        }
    }

    /// Response body bytes sent so far.
    pub fn body_bytes_sent(&self) -> usize {
        match self {
            Session::H1(s) => s.body_bytes_sent(),
            Session::H2(s) => s.body_bytes_sent(),
        }
    }

    /// Request body bytes read so far.
    pub fn body_bytes_read(&self) -> usize {
        match self {
            Session::H1(s) => s.body_bytes_read(),
            Session::H2(s) => s.body_bytes_read(),
        }
    }

    /// Facts about the connection.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Session::H1(s) => Some(s.digest()),
            Session::H2(s) => Some(s.digest()),
        }
    }

    /// Facts about the connection, mutable.
    pub fn digest_mut(&mut self) -> Option<&mut Digest> {
        match self {
            Session::H1(s) => Some(s.digest_mut()),
            Session::H2(s) => s.digest_mut(),
        }
    }

    /// The client's address.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        match self {
            Session::H1(s) => s.client_addr(),
            Session::H2(s) => s.client_addr(),
        }
    }

    /// The local address the client connected to.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        match self {
            Session::H1(s) => s.server_addr(),
            Session::H2(s) => s.server_addr(),
        }
    }

    /// The HTTP/1 connection.
    pub fn stream(&self) -> Option<&Stream> {
        match self {
            Session::H1(s) => Some(s.stream()),
            Session::H2(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn session_roundtrip_and_reuse() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        b.write_all(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\nGET /y HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut s = Session::new_http1(Box::new(a));
        assert!(s.read_request().await.unwrap());
        assert_eq!(s.get_header_bytes("host"), b"h");
        assert!(s.is_body_empty() && !s.is_http2());
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("Content-Length", "2").unwrap();
        s.write_response_header(Box::new(resp)).await.unwrap();
        s.write_response_body(Bytes::from_static(b"ok"), true)
            .await
            .unwrap();
        let stream = s.finish().await.unwrap().expect("keep-alive");

        let mut s = Session::new_http1(stream);
        assert!(s.read_request().await.unwrap());
        assert_eq!(s.req_header().uri.path(), "/y");
        s.respond_error_with_body(404, Bytes::from_static(b"gone"))
            .await
            .unwrap();
        assert!(s.finish().await.unwrap().is_none());
        let mut out = String::new();
        b.read_to_string(&mut out).await.unwrap();
        assert!(
            out.contains("\r\n\r\nokHTTP/1.1 404 Not Found\r\n"),
            "{out}"
        );
        assert!(out.ends_with("\r\n\r\ngone"), "{out}");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_wait_keeps_pipelined_request() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        b.write_all(b"GET /1 HTTP/1.1\r\n\r\n").await.unwrap();
        let mut s = Session::new_http1(Box::new(a));
        assert!(s.read_request().await.unwrap());
        b.write_all(b"GET /2 HTTP/1.1\r\n\r\n").await.unwrap();
        // the client is still there: waiting while idle times out, nothing lost
        let idle = tokio::time::timeout(Duration::from_secs(1), s.read_body_or_idle(false));
        assert!(idle.await.is_err());
        let mut resp = ResponseHeader::build(204, None).unwrap();
        resp.insert_header("X", "y").unwrap();
        s.write_response_header(Box::new(resp)).await.unwrap();
        let stream = s.finish().await.unwrap().expect("keep-alive");
        let mut s = Session::new_http1(stream);
        assert!(s.read_request().await.unwrap());
        assert_eq!(s.req_header().uri.path(), "/2");
    }
}
