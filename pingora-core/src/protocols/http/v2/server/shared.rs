//! The state one downstream connection of our codec shares with its
//! streams: the connection's [`ServerConn`] and, per stream, what the client
//! sent that the stream's session has not taken yet.
//!
//! The connection task and the sessions run on the same task when served by
//! `serve_h2` (the lock is then never contended); sessions may also run on
//! tasks of their own, so the state sits behind a lock and wakers.

use super::super::conn::{ServerConn, StreamMap};
use super::super::frame::ErrorCode;
use bytes::Bytes;
use http::HeaderMap;
use std::collections::VecDeque;
use std::task::Waker;

/// What a stream has received and not yet handed to its session.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub inbound: VecDeque<Bytes>,
    /// The client ended the request (END_STREAM seen).
    pub body_ended: bool,
    pub trailers: Option<HeaderMap>,
    /// The stream was reset (by the client, or by us for its misuse).
    pub reset: Option<ErrorCode>,
    /// The session waiting for body or a reset.
    pub reader: Option<Waker>,
    /// The body must be this long (`content-length`).
    pub content_length: Option<u64>,
    pub received: u64,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub conn: ServerConn,
    pub slots: StreamMap<Slot>,
    /// Sessions waiting for window or for room in the send buffer.
    pub send_waiters: Vec<Waker>,
    /// The connection task, woken when a session queued output, unless
    /// `driver_inline` says the task polls the connection after its streams.
    pub driver: Option<Waker>,
    pub driver_inline: bool,
    /// The connection is gone: every wait ends, every send fails.
    pub closed: bool,
}

impl Shared {
    pub fn new(conn: ServerConn) -> Self {
        Shared {
            conn,
            slots: StreamMap::default(),
            send_waiters: Vec::new(),
            driver: None,
            driver_inline: false,
            closed: false,
        }
    }

    /// A session queued output: the connection task must write it.
    pub fn output_queued(&mut self) {
        if !self.driver_inline {
            if let Some(w) = &self.driver {
                w.wake_by_ref();
            }
        }
    }

    /// Wait for window or buffer room with `waker`.
    pub fn wait_to_send(&mut self, waker: &Waker) {
        if !self.send_waiters.iter().any(|w| w.will_wake(waker)) {
            self.send_waiters.push(waker.clone());
        }
    }

    pub fn wake_senders(&mut self) {
        for w in self.send_waiters.drain(..) {
            w.wake();
        }
    }

    /// Wake the session of `stream_id`, if it waits.
    pub fn wake_reader(&mut self, stream_id: u32) {
        if let Some(w) = self.slots.get_mut(&stream_id).and_then(|s| s.reader.take()) {
            w.wake();
        }
    }

    /// `stream_id` will not complete (reset with `code`, by either side):
    /// its session learns so at its next read or send, or now if it waits.
    pub fn fail_stream(&mut self, stream_id: u32, code: ErrorCode) {
        let Some(slot) = self.slots.get_mut(&stream_id) else {
            return;
        };
        slot.reset.get_or_insert(code);
        if let Some(w) = slot.reader.take() {
            w.wake();
        }
        self.wake_senders();
    }

    /// Reset `stream_id` for the client's misuse of it, and fail it.
    pub fn reject(&mut self, stream_id: u32, code: ErrorCode) {
        self.conn.reset_stream(stream_id, code);
        self.fail_stream(stream_id, code);
    }

    /// The connection ended: every session waiting on it learns so.
    pub fn close(&mut self) {
        self.closed = true;
        for slot in self.slots.values_mut() {
            if let Some(w) = slot.reader.take() {
                w.wake();
            }
        }
        self.wake_senders();
    }
}
