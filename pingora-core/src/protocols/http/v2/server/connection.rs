//! A downstream HTTP/2 connection on our own codec: the socket, read into
//! [`ServerConn`] and written from it with vectored writes of what the
//! streams queued (response bodies are not copied), and the requests it
//! accepts, each handed out with a [`StreamHandle`].

use super::head;
use super::shared::{Shared, Slot};
use super::stream::StreamHandle;
use crate::protocols::http::v2::conn::{ConnConfig, ConnError, Event, ServerConn};
use crate::protocols::http::v2::frame::ErrorCode;
use crate::protocols::http::v2::hpack::Field;
use crate::protocols::http::v2::{H2Limits, ResetTracker};
use crate::protocols::Stream;
use bytes::BytesMut;
use http::HeaderValue;
use log::debug;
use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much is read from the socket at a time.
const READ_SIZE: usize = 16 * 1024;
/// Reads in one poll before the task yields to others (a client that keeps
/// the socket full must not monopolize its thread).
const READ_BUDGET: usize = 32;
/// Slices per vectored write.
const MAX_SLICES: usize = 64;
/// The most output gathered into one write for a stream that cannot write
/// vectors.
const GATHER_LIMIT: usize = 64 * 1024;

/// A request accepted on a connection, with the stream to answer it on.
pub(crate) struct Accepted {
    pub header: RequestHeader,
    pub stream: StreamHandle,
}

/// The connection's settings, from the server's HTTP/2 limits.
pub(crate) fn conn_config(limits: &H2Limits) -> ConnConfig {
    ConnConfig {
        max_concurrent_streams: limits.max_concurrent_streams,
        stream_window: limits.initial_window_size,
        connection_window: limits.initial_connection_window_size,
        max_header_list_size: limits.max_header_list_size,
        max_send_buffer: limits.max_send_buffer_size,
        enable_connect_protocol: true,
        ..ConnConfig::default()
    }
}

/// The connection task's side of a downstream connection.
pub(crate) struct Connection {
    shared: Arc<Mutex<Shared>>,
    io: Io,
    events: EventState,
}

/// The socket and its buffers.
struct Io {
    stream: Stream,
    read_buf: BytesMut,
    /// For a stream that writes one slice at a time (TLS): the queued
    /// output, gathered to be written in large pieces; `[written..]` is left.
    gathered: Vec<u8>,
    written: usize,
}

/// What handling the client's events keeps from one to the next.
struct EventState {
    /// The `Host` value of the previous request, shared with the next one.
    last_host: Option<HeaderValue>,
    resets: Option<Arc<ResetTracker>>,
    /// We sent GOAWAY: the connection ends when its last stream does.
    going_away: bool,
}

impl Connection {
    /// Serve `stream`, whose client preface is still to be read; our
    /// SETTINGS go out with the first write.
    pub fn new(stream: Stream, config: ConnConfig) -> Self {
        Connection {
            shared: Arc::new(Mutex::new(Shared::new(ServerConn::new(config)))),
            io: Io {
                stream,
                read_buf: BytesMut::new(),
                gathered: Vec::new(),
                written: 0,
            },
            events: EventState {
                last_host: None,
                resets: None,
                going_away: false,
            },
        }
    }

    /// Count client resets of streams in `tracker`.
    pub fn set_reset_tracker(&mut self, tracker: Arc<ResetTracker>) {
        self.events.resets = Some(tracker);
    }

    /// The streams are polled on this connection's task right before the
    /// connection: what they queue is written without waking the task.
    pub fn set_driver_inline(&mut self, inline: bool) {
        self.shared.lock().driver_inline = inline;
    }

    /// Stop taking new streams: GOAWAY with `code`. With `NO_ERROR` the
    /// open streams finish; with an error code the connection ends once the
    /// GOAWAY is written.
    pub fn go_away(&mut self, code: ErrorCode) {
        self.events.going_away = true;
        self.shared.lock().conn.go_away(code);
    }

    /// Wait for the next request. `Ok(None)`: the connection is over (the
    /// client closed it, or it went away with no stream left open).
    pub fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Accepted>>> {
        let Connection { shared, io, events } = self;
        let mut guard = shared.lock();
        let sh = &mut *guard;
        if sh.closed {
            return Poll::Ready(Ok(None));
        }
        let mut budget = READ_BUDGET;
        loop {
            if let Some(accepted) = events.handle(sh, shared) {
                return Poll::Ready(Ok(Some(accepted)));
            }
            if let Err(e) = io.poll_flush(sh, cx) {
                sh.close();
                return Poll::Ready(Err(e));
            }
            let flushed = !sh.conn.has_output() && io.gathered.is_empty();
            let idle = sh.conn.open_streams() == 0;
            if flushed && (sh.conn.is_failed() || events.going_away && idle) {
                sh.close();
                return Poll::Ready(Ok(None));
            }
            if sh.conn.is_failed() {
                // only the GOAWAY is left to write
                return park(sh, cx);
            }
            if budget == 0 {
                cx.waker().wake_by_ref();
                return park(sh, cx);
            }
            budget -= 1;
            match io.poll_read(cx) {
                Poll::Pending => return park(sh, cx),
                Poll::Ready(Ok(0)) => {
                    // the client is gone: its streams cannot be answered
                    sh.close();
                    return Poll::Ready(Ok(None));
                }
                Poll::Ready(Ok(_)) => {
                    if let Err(ConnError { code, why }) = sh.conn.recv(&mut io.read_buf) {
                        debug!("HTTP/2 client broke the protocol ({code:?}): {why}");
                    }
                }
                Poll::Ready(Err(e)) => {
                    debug!("reading from an HTTP/2 client failed: {e}");
                    sh.close();
                    return Poll::Ready(Ok(None));
                }
            }
        }
    }
}

/// Wait for the socket or for a session (whose output wakes `cx`).
fn park(sh: &mut Shared, cx: &mut Context<'_>) -> Poll<Result<Option<Accepted>>> {
    if !sh.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
        sh.driver = Some(cx.waker().clone());
    }
    Poll::Pending
}

fn write_error(e: std::io::Error) -> Box<Error> {
    Error::because(
        ErrorType::WriteError,
        "while writing to an HTTP/2 client",
        e,
    )
}

impl Io {
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.read_buf.capacity() - self.read_buf.len() < READ_SIZE / 2 {
            self.read_buf.reserve(READ_SIZE);
        }
        let mut buf = ReadBuf::uninit(self.read_buf.spare_capacity_mut());
        ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        // SAFETY: `poll_read` initialized the first `n` spare bytes
        unsafe { self.read_buf.set_len(self.read_buf.len() + n) };
        Poll::Ready(Ok(n))
    }

    /// Write what is queued until done or the socket is full.
    fn poll_flush(&mut self, sh: &mut Shared, cx: &mut Context<'_>) -> Result<()> {
        let mut wrote = false;
        let vectored = self.stream.is_write_vectored();
        loop {
            if !vectored && self.gathered.is_empty() {
                self.gather(&mut sh.conn);
            }
            let res = if self.gathered.is_empty() {
                if !sh.conn.has_output() {
                    break;
                }
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let n = sh.conn.output_slices(&mut slices);
                Pin::new(&mut self.stream).poll_write_vectored(cx, &slices[..n])
            } else {
                Pin::new(&mut self.stream).poll_write(cx, &self.gathered[self.written..])
            };
            let n = match res {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) => {
                    return Error::e_explain(ErrorType::WriteError, "HTTP/2 client socket closed")
                }
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Err(write_error(e)),
            };
            wrote = true;
            if self.gathered.is_empty() {
                sh.conn.advance_output(n);
            } else {
                self.written += n;
                if self.written == self.gathered.len() {
                    self.gathered.clear();
                    self.written = 0;
                }
            }
        }
        if wrote {
            // a stream that buffers (TLS) must push what it holds
            if let Poll::Ready(Err(e)) = Pin::new(&mut self.stream).poll_flush(cx) {
                return Err(write_error(e));
            }
        }
        if sh.conn.take_window_grew() {
            sh.wake_senders();
        }
        Ok(())
    }

    /// Move queued output into `gathered`, for a stream that would take it
    /// one slice per call (one TLS record and one system call each).
    fn gather(&mut self, conn: &mut ServerConn) {
        while conn.has_output() && self.gathered.len() < GATHER_LIMIT {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = conn.output_slices(&mut slices);
            let mut taken = 0;
            for s in &slices[..n] {
                let room = GATHER_LIMIT.saturating_sub(self.gathered.len());
                if room == 0 {
                    break;
                }
                let piece = &s[..s.len().min(room)];
                self.gathered.extend_from_slice(piece);
                taken += piece.len();
            }
            conn.advance_output(taken);
        }
    }
}

impl EventState {
    /// Act on what the client did; a new request is returned at once.
    fn handle(&mut self, sh: &mut Shared, shared: &Arc<Mutex<Shared>>) -> Option<Accepted> {
        while let Some(event) = sh.conn.poll_event() {
            match event {
                Event::Request {
                    stream_id,
                    fields,
                    end_stream,
                } => match head::request_from_fields(fields, end_stream, &mut self.last_host) {
                    Ok(req) => {
                        if end_stream && req.content_length.is_some_and(|l| l != 0) {
                            debug!("HTTP/2 request shorter than its content-length");
                            sh.conn.reset_stream(stream_id, ErrorCode::PROTOCOL_ERROR);
                            continue;
                        }
                        let slot = Slot {
                            body_ended: end_stream,
                            content_length: req.content_length,
                            ..Slot::default()
                        };
                        sh.slots.insert(stream_id, slot);
                        return Some(Accepted {
                            header: req.header,
                            stream: StreamHandle::new(shared.clone(), stream_id),
                        });
                    }
                    Err(why) => {
                        debug!("malformed HTTP/2 request: {why}");
                        sh.conn.reset_stream(stream_id, ErrorCode::PROTOCOL_ERROR);
                    }
                },
                Event::Data {
                    stream_id,
                    data,
                    end_stream,
                } => self.on_data(sh, stream_id, data, end_stream),
                Event::Trailers { stream_id, fields } => {
                    let Some(slot) = sh.slots.get_mut(&stream_id) else {
                        continue;
                    };
                    let short = slot.content_length.is_some_and(|l| l != slot.received);
                    match head::trailers_from_fields(fields) {
                        Ok(t) if !short => {
                            slot.trailers = Some(t);
                            slot.body_ended = true;
                            sh.wake_reader(stream_id);
                        }
                        _ => {
                            debug!("malformed HTTP/2 trailers or short body");
                            sh.reject(stream_id, ErrorCode::PROTOCOL_ERROR);
                        }
                    }
                }
                Event::HeadersTooLarge {
                    stream_id,
                    end_stream,
                } => {
                    debug!("HTTP/2 request head over the size limit: 431");
                    let fields = [Field {
                        name: b":status",
                        value: b"431",
                        sensitive: false,
                    }];
                    let _ = sh.conn.send_headers(stream_id, fields, true);
                    if !end_stream {
                        sh.conn.close_stream(stream_id);
                    }
                }
                Event::Reset { stream_id, code } => {
                    if let (Some(t), true) = (&self.resets, sh.slots.contains_key(&stream_id)) {
                        t.record();
                    }
                    sh.fail_stream(stream_id, code);
                }
                // the connection already sent the reset
                Event::StreamError { stream_id, code } => sh.fail_stream(stream_id, code),
                Event::GoAway { code, .. } => {
                    debug!("HTTP/2 client going away ({code:?})");
                }
            }
        }
        None
    }

    fn on_data(&mut self, sh: &mut Shared, stream_id: u32, data: bytes::Bytes, end: bool) {
        let Some(slot) = sh.slots.get_mut(&stream_id) else {
            // no session takes it: give the window back
            sh.conn.release(stream_id, data.len() as u32);
            return;
        };
        slot.received += data.len() as u64;
        let wrong_length = slot
            .content_length
            .is_some_and(|l| slot.received > l || end && slot.received != l);
        if wrong_length {
            debug!("HTTP/2 request body does not match its content-length");
            sh.conn.release(stream_id, data.len() as u32);
            sh.reject(stream_id, ErrorCode::PROTOCOL_ERROR);
            return;
        }
        if !data.is_empty() {
            slot.inbound.push_back(data);
        }
        slot.body_ended |= end;
        sh.wake_reader(stream_id);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.lock().close();
    }
}
