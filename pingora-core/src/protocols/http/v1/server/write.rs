//! The response half of the HTTP/1 server session.

use super::HttpSession;
use crate::protocols::http::v1::common::*;
use crate::protocols::http::v1::head;
use crate::protocols::http::{date, error_resp, HttpTask};
use bytes::BufMut;
use http::{header, HeaderMap, Method, Version};
use log::{debug, warn};
use pingora_error::{Error, ErrorType::*, OrErr, Result};
use pingora_http::ResponseHeader;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

impl HttpSession {
    /// The time limit for writing `len` bytes: from the minimum send rate
    /// if set (at least 1 s), else the write timeout.
    fn write_limit(&self, len: usize) -> Option<Duration> {
        match self.min_send_rate {
            Some(rate) => Some(Duration::from_millis(
                (len.max(rate) as u64).saturating_mul(1000) / rate as u64,
            )),
            None => self.write_timeout,
        }
    }

    /// Decide how the response body is framed, adjusting `resp`'s framing
    /// headers, and whether the connection can stay open afterwards.
    fn init_body_writer(&mut self, resp: &mut ResponseHeader) -> Result<()> {
        let status = resp.status.as_u16();
        let request_11 = self
            .request_header
            .as_ref()
            .is_none_or(|r| r.version == Version::HTTP_11);
        if status == 101 {
            self.keepalive = KeepaliveStatus::Off;
            if self.is_upgrade(resp) == Some(true) {
                self.upgraded = true;
                self.body_writer.init_until_close();
                if self.body_reader.body_done() {
                    self.body_reader.convert_to_until_close();
                }
            } else {
                self.body_writer.init_content_length(0);
            }
            return Ok(());
        }
        if self.get_method() == Some(&Method::HEAD) || status == 204 || status == 304 {
            self.body_writer.init_content_length(0);
            return Ok(());
        }
        match head_transfer_coding(&*resp) {
            TransferCoding::Absent => match head_content_length(&*resp) {
                Ok(Some(len)) => self.body_writer.init_content_length(len),
                Ok(None) if request_11 => {
                    resp.insert_header(header::TRANSFER_ENCODING, "chunked")?;
                    self.body_writer.init_chunked();
                }
                Ok(None) => self.close_delimited(),
                Err(msg) => {
                    return Err(Error::explain(InvalidHTTPHeader, msg).into_in());
                }
            },
            TransferCoding::ChunkedOnly | TransferCoding::ChunkedFinal if request_11 => {
                resp.remove_header(&header::CONTENT_LENGTH);
                self.body_writer.init_chunked();
            }
            // HTTP/1.0 clients cannot decode chunks; other codings are not framing
            _ => {
                resp.remove_header(&header::TRANSFER_ENCODING);
                resp.remove_header(&header::CONTENT_LENGTH);
                self.close_delimited();
            }
        }
        Ok(())
    }

    fn close_delimited(&mut self) {
        self.body_writer.init_until_close();
        self.keepalive = KeepaliveStatus::Off;
    }

    /// `Some(true)`: the request asked for an upgrade and `resp` accepts it;
    /// `Some(false)`: asked but refused; `None`: not an upgrade request.
    pub fn is_upgrade(&self, resp: &ResponseHeader) -> Option<bool> {
        self.is_upgrade_req().then(|| is_upgrade_resp(resp))
    }

    fn expects_continue(&self) -> bool {
        self.request_header
            .as_deref()
            .is_some_and(is_expect_continue_req)
    }

    pub(super) async fn send_now(&mut self, flush: bool) -> Result<()> {
        let limit = self.write_limit(self.pending_head.len());
        let res = write_within(
            &mut self.underlying_stream,
            &self.pending_head,
            flush,
            limit,
            "writing response header",
        )
        .await;
        self.pending_head.clear();
        res.map_err(|e| {
            self.keepalive = KeepaliveStatus::Off;
            e.into_down()
        })
    }

    /// Send the response head. Informational (1xx) heads may precede the
    /// final one; anything after the final head is ignored with a warning.
    /// `Date` is added if missing and `Connection` follows the session's
    /// keep-alive decision (use [`Self::set_server_keepalive`] to close):
    /// `close`, or `keep-alive` for an HTTP/1.0 client; an HTTP/1.1 client
    /// that may reuse the connection gets no `Connection` header (reuse is
    /// its default), whatever the app or an upstream put there.
    /// Without `Content-Length`, bodies are chunked for HTTP/1.1 clients and
    /// delimited by closing the connection for HTTP/1.0 ones. A head with a
    /// `Content-Length` body is held back to share a write with the body.
    pub async fn write_response_header(&mut self, mut resp: Box<ResponseHeader>) -> Result<()> {
        if self.response_written.is_some() {
            warn!("response header already sent; ignoring another one");
            return Ok(());
        }
        let status = resp.status.as_u16();
        resp.set_version(Version::HTTP_11);
        if resp.status.is_informational() && status != 101 {
            let asked = status == 100 && self.expects_continue();
            if (self.ignore_info_resp && !asked) || (status == 100 && self.continue_sent) {
                return Ok(());
            }
            self.continue_sent |= status == 100;
            self.pending_head.clear();
            head::write_response_head(&resp, &mut self.pending_head);
            return self.send_now(true).await;
        }
        self.init_body_writer(&mut resp)?;
        if status != 101 {
            if !resp.has(pingora_http::known::DATE) {
                resp.insert_header(header::DATE, date::get_cached_date())?;
            }
            // the session decides reuse (see set_server_keepalive); whatever
            // Connection value the app or an upstream put there goes
            let keepalive = self.will_keepalive();
            if keepalive && self.client_is_http11() {
                // persistence is HTTP/1.1's default: nothing to say, nothing for
                // the client to parse (the bit check spares the scan of the names)
                if resp.has(pingora_http::known::CONNECTION) {
                    resp.remove_header_named(&header::CONNECTION);
                }
            } else {
                let value = if keepalive { "keep-alive" } else { "close" };
                // static: a `&str` value would be copied into a new allocation
                resp.insert_header(header::CONNECTION, http::HeaderValue::from_static(value))?;
            }
        }
        self.pending_head.clear();
        self.head_room();
        head::write_response_head(&resp, &mut self.pending_head);
        let hold = self.body_writer.need_init()
            || (!self.body_writer.finished()
                && resp.has(pingora_http::known::CONTENT_LENGTH)
                && !self.upgraded);
        self.response_written = Some(resp);
        if !hold {
            self.send_now(true).await?;
        }
        Ok(())
    }

    /// Whether the request being answered is HTTP/1.1 (a client that spoke 1.0, or sent no
    /// parsable request, is told about reuse explicitly).
    fn client_is_http11(&self) -> bool {
        self.request_header
            .as_ref()
            .is_some_and(|r| r.version == Version::HTTP_11)
    }

    /// Give the response head, when it has no buffer yet, the spare end of the buffer the
    /// request head was read into: one allocation less per request. Once the head is parsed
    /// that part holds nothing (what followed the head went to the body reader), and it never
    /// overlaps the request's bytes.
    fn head_room(&mut self) {
        if self.pending_head.capacity() == 0 && self.buf.is_empty() {
            self.pending_head = std::mem::take(&mut self.buf);
        }
    }

    /// Same as [`Self::write_response_header`], cloning `resp`.
    pub async fn write_response_header_ref(&mut self, resp: &ResponseHeader) -> Result<()> {
        self.write_response_header(Box::new(resp.clone())).await
    }

    /// The final response head, once sent.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        self.response_written.as_deref()
    }

    /// Send `100 Continue` unless a response was already sent.
    pub async fn write_continue_response(&mut self) -> Result<()> {
        if self.response_written.is_some() || self.continue_sent {
            return Ok(());
        }
        self.continue_sent = true;
        self.pending_head.clear();
        self.pending_head
            .put_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        self.send_now(true).await
    }

    /// Send a piece of response body (framed as decided by the head).
    /// `Ok(None)` when the body is already complete (e.g. Content-Length
    /// reached); bytes beyond the Content-Length are dropped.
    pub async fn write_body(&mut self, buf: &[u8]) -> Result<Option<usize>> {
        let limit = self.write_limit(buf.len() + self.pending_head.len());
        let res = with_timeout(
            limit,
            WriteTimedout,
            "writing response body",
            self.body_writer
                .write_body(&mut self.underlying_stream, &self.pending_head, buf),
        )
        .await;
        self.pending_head.clear();
        match res {
            Ok(n) => {
                self.body_bytes_sent += n.unwrap_or(0);
                Ok(n)
            }
            Err(e) => {
                self.keepalive = KeepaliveStatus::Off;
                Err(e.into_down())
            }
        }
    }

    async fn finish_inner(&mut self, trailers: Option<&HeaderMap>) -> Result<Option<usize>> {
        if self.body_writer.need_init() {
            return Ok(None);
        }
        let res = match self.finish_without_writing(trailers) {
            Some(Ok(n)) => self.flush_within_limit().await.map(|()| n),
            Some(Err(e)) => Err(e),
            None => self.finish_waiting(trailers).await,
        };
        self.pending_head.clear();
        if self.upgraded && !self.body_reader.body_done() {
            // the exchange is over: stop reading the client's stream
            self.body_reader.init_content_length(0, Default::default());
        }
        res.map_err(|e| {
            self.keepalive = KeepaliveStatus::Off;
            e.into_down()
        })
    }

    /// The usual end of a length-delimited response whose bytes all went out already: the
    /// writer has nothing left to write and only records the end, without waiting. `None`
    /// when something is left to write (a held-back head, a last chunk).
    fn finish_without_writing(
        &mut self,
        trailers: Option<&HeaderMap>,
    ) -> Option<Result<Option<usize>>> {
        use futures::FutureExt;
        if !self.pending_head.is_empty() || self.body_writer.is_chunked() {
            return None;
        }
        // With no head and no last chunk the writer never waits, so this poll completes
        // (and had it not, nothing would have changed: the waiting path would start over).
        self.body_writer
            .finish_with_trailers(&mut self.underlying_stream, &[], trailers)
            .now_or_never()
    }

    /// Flush, setting up the write limit only if the flush has to wait (a plain socket
    /// flushes at once).
    async fn flush_within_limit(&mut self) -> Result<()> {
        use futures::FutureExt;
        const WHAT: &str = "finishing response body";
        if let Some(res) = self.underlying_stream.flush().now_or_never() {
            return res.or_err(WriteError, WHAT);
        }
        let limit = self.write_limit(64);
        let stream = &mut self.underlying_stream;
        with_timeout(limit, WriteTimedout, WHAT, async {
            stream.flush().await.or_err(WriteError, WHAT)
        })
        .await
    }

    /// End the body, waiting for the writes and the flush within the write limit.
    async fn finish_waiting(&mut self, trailers: Option<&HeaderMap>) -> Result<Option<usize>> {
        let limit = self.write_limit(self.pending_head.len() + 64);
        finish_within(
            &mut self.body_writer,
            &mut self.underlying_stream,
            &self.pending_head,
            trailers,
            limit,
            "finishing response body",
        )
        .await
    }

    /// End the response body: sends the last chunk of a chunked body and
    /// flushes. Idempotent.
    pub async fn finish_body(&mut self) -> Result<Option<usize>> {
        self.finish_inner(None).await
    }

    /// Send an error response with an empty body (see
    /// [`error_resp::gen_error_response`]) and disable keep-alive.
    pub async fn respond_error(&mut self, code: u16) -> Result<()> {
        self.keepalive = KeepaliveStatus::Off;
        let resp = error_resp::gen_error_response(code);
        self.write_response_header(Box::new(resp)).await?;
        self.finish_body().await.map(|_| ())
    }

    /// Write a batch of response tasks (from the proxy), gathering body
    /// pieces into one write. Returns whether the response is complete.
    pub async fn response_duplex_vec(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        let mut end = false;
        let mut trailers = None;
        let gather = tasks.len() > 1;
        for task in tasks {
            end = match task {
                HttpTask::Header(resp, end) => {
                    self.write_response_header(resp).await?;
                    end
                }
                HttpTask::Body(Some(data), end) if gather => {
                    if !self.body_writer.finished() {
                        self.body_write_buf.extend_from_slice(&data);
                    }
                    end
                }
                HttpTask::Body(Some(data), end) => {
                    if !data.is_empty() {
                        self.write_body(&data).await?;
                    }
                    end
                }
                HttpTask::Body(None, end) => end,
                HttpTask::Trailer(t) => {
                    trailers = t;
                    true
                }
                HttpTask::Done => true,
                HttpTask::Failed(e) => {
                    self.flush_gathered().await?;
                    if let Err(fe) = self.underlying_stream.flush().await {
                        debug!("flush after failed task: {fe}");
                    }
                    return Err(e);
                }
            };
        }
        self.flush_gathered().await?;
        if end {
            self.finish_inner(trailers.as_deref()).await?;
        }
        Ok(end || self.body_writer.finished())
    }

    async fn flush_gathered(&mut self) -> Result<()> {
        if self.body_write_buf.is_empty() {
            return Ok(());
        }
        let mut data = std::mem::take(&mut self.body_write_buf);
        let res = self.write_body(&data).await;
        // keep the allocation for the next batch
        data.clear();
        self.body_write_buf = data;
        res.map(|_| ())
    }
}
