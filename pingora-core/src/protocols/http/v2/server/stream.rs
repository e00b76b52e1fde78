//! One stream of a connection served by our codec, as its session sees it:
//! request body to take, response to send under the client's windows.

use super::head;
use super::shared::Shared;
use crate::protocols::http::v2::conn::SendError;
use crate::protocols::http::v2::frame::ErrorCode;
use bytes::Bytes;
use http::HeaderMap;
use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A stream's handle on its connection. Dropping it closes the stream:
/// reset if the response was not complete, `NO_ERROR` reset if the request
/// body was not read to its end.
#[derive(Debug)]
pub(crate) struct StreamHandle {
    shared: Arc<Mutex<Shared>>,
    id: u32,
}

impl StreamHandle {
    pub fn new(shared: Arc<Mutex<Shared>>, id: u32) -> Self {
        StreamHandle { shared, id }
    }

    /// The next piece of request body (its window given back, as the
    /// session takes it), `None` at the end.
    pub fn poll_data(&self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>>> {
        let mut sh = self.shared.lock();
        let sh = &mut *sh;
        let Some(slot) = sh.slots.get_mut(&self.id) else {
            return Poll::Ready(stream_gone());
        };
        if let Some(data) = slot.inbound.pop_front() {
            // a frame's payload is below 2^24: the cast is lossless
            sh.conn.release(self.id, data.len() as u32);
            if sh.conn.has_output() {
                // a window update, or what was already waiting
                sh.output_queued();
            }
            return Poll::Ready(Ok(Some(data)));
        }
        if let Some(code) = slot.reset {
            return Poll::Ready(reset_error(code));
        }
        if slot.body_ended {
            return Poll::Ready(Ok(None));
        }
        if sh.closed {
            return Poll::Ready(connection_gone());
        }
        slot.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The request trailers, once the body ended with them.
    pub fn take_trailers(&self) -> Option<HeaderMap> {
        self.shared.lock().slots.get_mut(&self.id)?.trailers.take()
    }

    /// Whether the request body was received complete and all taken,
    /// trailers included.
    pub fn is_body_done(&self) -> bool {
        let sh = self.shared.lock();
        sh.slots
            .get(&self.id)
            .is_none_or(|s| s.body_ended && s.inbound.is_empty() && s.trailers.is_none())
    }

    /// Whether the client reset the stream (or the connection is gone).
    pub fn is_reset(&self) -> bool {
        let sh = self.shared.lock();
        sh.closed || sh.slots.get(&self.id).is_none_or(|s| s.reset.is_some())
    }

    /// Wait until the client resets the stream or the connection ends.
    pub fn poll_reset(&self, cx: &mut Context<'_>) -> Poll<ErrorCode> {
        let mut sh = self.shared.lock();
        let closed = sh.closed;
        let Some(slot) = sh.slots.get_mut(&self.id) else {
            return Poll::Ready(ErrorCode::CANCEL);
        };
        if let Some(code) = slot.reset {
            return Poll::Ready(code);
        }
        if closed {
            return Poll::Ready(ErrorCode::CANCEL);
        }
        slot.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Send a response head (interim or final); `end`: no body follows.
    pub fn send_head(&self, head: &ResponseHeader, end: bool) -> Result<()> {
        let mut sh = self.shared.lock();
        let res = head::send_response_head(&mut sh.conn, self.id, head, end);
        sh.output_queued();
        res.map_err(|e| send_error(e, "while sending an HTTP/2 response head"))
    }

    /// Send trailers, which end the response.
    pub fn send_trailers(&self, trailers: &HeaderMap) -> Result<()> {
        let mut sh = self.shared.lock();
        let res = sh
            .conn
            .send_headers(self.id, head::header_fields(trailers), true);
        sh.output_queued();
        res.map_err(|e| send_error(e, "while sending HTTP/2 trailers"))
    }

    /// Send `data` from its front as the windows and the send buffer
    /// allow; ready once all of it went (`end`: with END_STREAM).
    pub fn poll_send(&self, cx: &mut Context<'_>, data: &mut Bytes, end: bool) -> Poll<Result<()>> {
        let mut sh = self.shared.lock();
        if sh.closed {
            return Poll::Ready(connection_gone());
        }
        let before = data.len();
        let res = sh.conn.send_data(self.id, data, end);
        if data.len() != before || (end && data.is_empty()) {
            sh.output_queued();
        }
        if let Err(e) = res {
            if let Some(code) = sh.slots.get(&self.id).and_then(|s| s.reset) {
                return Poll::Ready(reset_error(code));
            }
            return Poll::Ready(Err(send_error(e, "while sending HTTP/2 data")));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(()));
        }
        sh.wait_to_send(cx.waker());
        Poll::Pending
    }

    /// End the response with an empty DATA frame, which needs no window.
    pub fn send_end(&self) -> Result<()> {
        let mut sh = self.shared.lock();
        let res = sh.conn.send_data(self.id, &mut Bytes::new(), true);
        sh.output_queued();
        res.map_err(|e| send_error(e, "while ending an HTTP/2 stream"))
    }

    /// Abort the stream with `code`.
    pub fn reset(&self, code: ErrorCode) {
        let mut sh = self.shared.lock();
        sh.reject(self.id, code);
        sh.output_queued();
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        let mut sh = self.shared.lock();
        sh.slots.remove(&self.id);
        sh.conn.close_stream(self.id);
        sh.output_queued();
    }
}

#[cold]
fn reset_error<T>(code: ErrorCode) -> Result<T> {
    Error::e_explain(
        ErrorType::H2Error,
        format!("HTTP/2 stream reset (error code {:#x})", code.0),
    )
}

#[cold]
fn stream_gone<T>() -> Result<T> {
    Error::e_explain(ErrorType::H2Error, "HTTP/2 stream closed")
}

#[cold]
fn connection_gone<T>() -> Result<T> {
    Error::e_explain(ErrorType::ConnectionClosed, "HTTP/2 connection closed")
}

#[cold]
fn send_error(e: SendError, context: &'static str) -> Box<Error> {
    let etype = match e {
        SendError::StreamClosed => ErrorType::H2Error,
        SendError::ConnectionClosed => ErrorType::ConnectionClosed,
    };
    Error::explain(etype, format!("{context}: {e:?}"))
}
