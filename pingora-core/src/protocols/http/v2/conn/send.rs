//! The sending half of [`ServerConn`]: response heads, bodies and trailers
//! under the client's flow control, graceful shutdown, and the output queue
//! the socket is written from.

use super::{ConnError, ServerConn};
use crate::protocols::http::v2::frame::{self, ErrorCode};
use crate::protocols::http::v2::hpack::Field;
use bytes::{Buf, Bytes, BytesMut};
use std::io::IoSlice;

/// Body chunks smaller than this are copied next to their frame header:
/// below it, one more slice in the vectored write costs more than the copy.
const COPY_BELOW: usize = 256;

/// Why a stream cannot send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The stream is not open for sending: reset (by either side), closed,
    /// or we already ended it.
    StreamClosed,
    /// The connection failed or was shut down.
    ConnectionClosed,
}

impl ServerConn {
    /// Send a header block on `stream_id`: a response head (interim 1xx
    /// heads first, if any), or trailers with `end_stream`. `fields` are
    /// encoded in the order given, so `:status` comes first. Header blocks
    /// are not flow-controlled: this never waits for a window.
    pub fn send_headers<'a>(
        &mut self,
        stream_id: u32,
        fields: impl IntoIterator<Item = Field<'a>>,
        end_stream: bool,
    ) -> Result<(), SendError> {
        self.check_send(stream_id)?;
        self.block.clear();
        self.encoder.encode(fields, &mut self.block);
        frame::write_headers(
            stream_id,
            &self.block,
            end_stream,
            self.peer_max_frame_size,
            &mut self.out,
        );
        if end_stream {
            self.local_end(stream_id);
        }
        Ok(())
    }

    /// Send what the windows and the output buffer allow of `data` on
    /// `stream_id`, taken from its front; with `end_stream`, the last frame
    /// ends the stream once all of `data` is taken. What is left in `data`
    /// waits for [`ServerConn::take_window_grew`]: call again then.
    ///
    /// Chunks of 256 bytes or more are queued as slices of `data`, not
    /// copied.
    pub fn send_data(
        &mut self,
        stream_id: u32,
        data: &mut Bytes,
        end_stream: bool,
    ) -> Result<(), SendError> {
        let stream_window = self.check_send(stream_id)?;
        let window = stream_window.min(self.conn_send_window).max(0);
        let room = self
            .config
            .max_send_buffer
            .saturating_sub(self.queued_output());
        let mut allowed = room.min(usize::try_from(window).unwrap_or(usize::MAX));
        let max_frame = self.peer_max_frame_size as usize;
        let mut sent = 0;
        while !data.is_empty() && allowed > 0 {
            let n = data.len().min(allowed).min(max_frame);
            let last = end_stream && n == data.len();
            let chunk = data.split_to(n);
            self.queue_data(stream_id, chunk, last);
            allowed -= n;
            sent += n;
        }
        if sent > 0 {
            // sent <= window <= 2^31-1: the conversion is lossless
            let sent = sent as i64;
            if let Some(stream) = self.streams.get_mut(&stream_id) {
                stream.send_window -= sent;
            }
            self.conn_send_window -= sent;
        }
        if end_stream && data.is_empty() {
            if sent == 0 {
                // an empty DATA frame uses no window: it may always go
                frame::write_data_header(stream_id, 0, true, &mut self.out);
            }
            self.local_end(stream_id);
        }
        Ok(())
    }

    /// Whether a send window grew, or queued output was written, since the
    /// last call: a [`ServerConn::send_data`] that left data behind may take
    /// more now.
    pub fn take_window_grew(&mut self) -> bool {
        std::mem::take(&mut self.window_grew)
    }

    /// Shut the connection down: a GOAWAY naming the last stream we
    /// accepted. With NO_ERROR the open streams finish and new ones are
    /// refused (REFUSED_STREAM, so the client may retry them elsewhere);
    /// with an error code the connection fails at once. Calling it again
    /// only escalates NO_ERROR to an error.
    pub fn go_away(&mut self, code: ErrorCode) {
        if self.failed.is_some() {
            // the GOAWAY of the failure was sent
            return;
        }
        if let Some(sent) = self.going_away {
            if sent != ErrorCode::NO_ERROR || code == ErrorCode::NO_ERROR {
                return;
            }
        }
        frame::write_goaway(self.last_accepted_id, code, b"", &mut self.out);
        self.going_away = Some(code);
        if code != ErrorCode::NO_ERROR {
            self.failed = Some(ConnError {
                code,
                why: "shut down by the server",
            });
        }
    }

    /// The streams in progress (not yet ended on both sides, nor reset):
    /// after [`ServerConn::go_away`], the connection may close at 0.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Whether a connection error ended the connection (its GOAWAY is
    /// queued): send what is queued, then close.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Whether there are bytes to write to the socket.
    pub fn has_output(&self) -> bool {
        self.queued_output() > 0
    }

    /// The bytes queued for the socket: what [`ConnConfig::max_send_buffer`]
    /// is compared with.
    ///
    /// [`ConnConfig::max_send_buffer`]: super::ConnConfig::max_send_buffer
    pub fn queued_output(&self) -> usize {
        self.chunks_len + self.out.len()
    }

    /// Fill `dst` with the queued output, in order, for one vectored write;
    /// returns how many slices were filled. Report what was written with
    /// [`ServerConn::advance_output`].
    pub fn output_slices<'a>(&'a mut self, dst: &mut [IoSlice<'a>]) -> usize {
        self.seal();
        let mut filled = 0;
        for (slot, chunk) in dst.iter_mut().zip(self.chunks.iter()) {
            *slot = IoSlice::new(chunk);
            filled += 1;
        }
        filled
    }

    /// `n` bytes of the output were written: drop them from the queue.
    pub fn advance_output(&mut self, mut n: usize) {
        if n == 0 {
            return;
        }
        self.window_grew = true;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if n < front.len() {
                front.advance(n);
                self.chunks_len -= n;
                return;
            }
            n -= front.len();
            self.chunks_len -= front.len();
            self.chunks.pop_front();
        }
        // written without output_slices sealing it first
        let n = n.min(self.out.len());
        self.out.advance(n);
    }

    /// All the queued output in one buffer (a copy when body chunks are
    /// queued), emptied: for callers without vectored writes, and tests.
    pub fn take_output(&mut self) -> BytesMut {
        if self.has_output() {
            self.window_grew = true;
        }
        if self.chunks.is_empty() {
            return self.out.split();
        }
        let mut all = BytesMut::with_capacity(self.queued_output());
        for chunk in self.chunks.drain(..) {
            all.extend_from_slice(&chunk);
        }
        all.extend_from_slice(&self.out);
        self.out.clear();
        self.chunks_len = 0;
        all
    }

    /// Whether `stream_id` may send; its send window if so.
    fn check_send(&self, stream_id: u32) -> Result<i64, SendError> {
        if self.failed.is_some() {
            return Err(SendError::ConnectionClosed);
        }
        match self.streams.get(&stream_id) {
            Some(stream) if !stream.local_ended => Ok(stream.send_window),
            _ => Err(SendError::StreamClosed),
        }
    }

    /// We ended our side of `stream_id`; a stream ended on both sides is
    /// forgotten, which frees its place among the open streams.
    fn local_end(&mut self, stream_id: u32) {
        if let Some(stream) = self.streams.get_mut(&stream_id) {
            stream.local_ended = true;
            if stream.remote_ended {
                self.streams.remove(&stream_id);
            }
        }
    }

    /// Queue one DATA frame: a small chunk is copied after its header, a
    /// large one queued as it is, after its header.
    fn queue_data(&mut self, stream_id: u32, chunk: Bytes, end_stream: bool) {
        frame::write_data_header(stream_id, chunk.len(), end_stream, &mut self.out);
        if chunk.len() < COPY_BELOW {
            self.out.extend_from_slice(&chunk);
            return;
        }
        self.seal();
        self.chunks_len += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// Move what `out` holds to the end of `chunks`.
    fn seal(&mut self) {
        if !self.out.is_empty() {
            let sealed = self.out.split().freeze();
            self.chunks_len += sealed.len();
            self.chunks.push_back(sealed);
        }
    }
}
