//! The server side of an HTTP/2 connection, without I/O: the client's bytes
//! go in ([`ServerConn::recv`]), request events and the bytes to send back
//! come out ([`ServerConn::poll_event`], [`ServerConn::output_slices`]).
//!
//! Receiving: the preface, SETTINGS, PING, GOAWAY, header blocks across
//! CONTINUATION frames, stream-id and concurrency rules, and flow control of
//! what the client sends (windows are given back as the application takes
//! the data, see [`ServerConn::release`]).
//!
//! Sending: response heads and trailers ([`ServerConn::send_headers`]) and
//! bodies ([`ServerConn::send_data`]) as the client's windows and our output
//! buffer allow; large body chunks are queued uncopied, so that the output is
//! a list of slices for one vectored write. Graceful shutdown:
//! [`ServerConn::go_away`].

mod send;

pub use super::hpack::Field;
pub use send::SendError;

use super::frame::{self, ErrorCode, Frame, FrameError, Settings, MAX_WINDOW_SIZE};
use super::hpack::{DecodedField, Decoder, Encoder, HpackError};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// What every client sends first (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The window every stream and the connection start with.
const DEFAULT_WINDOW: u32 = 65_535;

/// The largest HPACK table we keep for the client's decoder, whatever it
/// allows: a larger one costs memory for little gain.
const MAX_ENCODER_TABLE: u32 = 4096;

/// How many streams we reset are remembered, so that the frames the client
/// sent on them before it saw the reset are ignored, not taken for a
/// protocol violation.
const RECENT_RESETS: usize = 64;

/// What we tell the client, and hold it to.
#[derive(Debug, Clone, Copy)]
pub struct ConnConfig {
    /// Streams the client may have open at once.
    pub max_concurrent_streams: u32,
    /// The receive window of each stream.
    pub stream_window: u32,
    /// The receive window of the connection.
    pub connection_window: u32,
    /// The largest frame payload we accept.
    pub max_frame_size: u32,
    /// The largest header list we accept.
    pub max_header_list_size: u32,
    /// Output bytes queued for the socket at which [`ServerConn::send_data`]
    /// stops taking more: a slow reader bounds our memory, not the window.
    pub max_send_buffer: usize,
    /// Accept extended CONNECT (RFC 8441, e.g. WebSocket over HTTP/2).
    pub enable_connect_protocol: bool,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            max_concurrent_streams: 100,
            stream_window: 1 << 20,
            connection_window: 1 << 22,
            max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            max_header_list_size: 64 << 10,
            max_send_buffer: 256 * 1024,
            enable_connect_protocol: false,
        }
    }
}

/// Something the client did that the application must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new request's head.
    Request {
        /// Its stream.
        stream_id: u32,
        /// The fields, pseudo-headers included, as sent (not yet checked
        /// against HTTP's rules).
        fields: Vec<DecodedField>,
        /// No body follows.
        end_stream: bool,
    },
    /// Trailers, which end the request body.
    Trailers {
        /// Its stream.
        stream_id: u32,
        /// The fields.
        fields: Vec<DecodedField>,
    },
    /// Request body data; give its window back with [`ServerConn::release`]
    /// once it is taken.
    Data {
        /// Its stream.
        stream_id: u32,
        /// The data.
        data: Bytes,
        /// The body is complete.
        end_stream: bool,
    },
    /// A request head larger than the header list limit: answer 431 or
    /// reset the stream.
    HeadersTooLarge {
        /// Its stream.
        stream_id: u32,
        /// No body follows.
        end_stream: bool,
    },
    /// The client reset the stream.
    Reset {
        /// Its stream.
        stream_id: u32,
        /// Why.
        code: ErrorCode,
    },
    /// We reset the stream for the client's misuse of it (flow control,
    /// frames after its end): its request will not complete.
    StreamError {
        /// Its stream.
        stream_id: u32,
        /// The code sent.
        code: ErrorCode,
    },
    /// The client is closing the connection.
    GoAway {
        /// The last stream it will process (meaningless for a server, which
        /// receives no pushed streams; kept for logging).
        last_stream_id: u32,
        /// Why.
        code: ErrorCode,
    },
}

/// The connection must end: a GOAWAY with this code was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnError {
    /// The code sent.
    pub code: ErrorCode,
    /// What was wrong, for the log.
    pub why: &'static str,
}

#[derive(Debug)]
struct StreamState {
    /// The client ended its side.
    remote_ended: bool,
    /// What the client may still send.
    recv_window: i64,
    /// Taken by the application and not yet given back.
    unreleased: u32,
    /// What we may still send.
    send_window: i64,
    /// We ended our side (the response is complete).
    local_ended: bool,
}

/// A header block waiting for its CONTINUATION frames.
#[derive(Debug)]
struct Partial {
    stream_id: u32,
    block: BytesMut,
    end_stream: bool,
}

/// A server connection without I/O; see the module docs.
#[derive(Debug)]
pub struct ServerConn {
    config: ConnConfig,
    preface_seen: bool,
    settings_seen: bool,
    decoder: Decoder,
    encoder: Encoder,
    /// Where a header block is encoded before it is framed (kept to reuse
    /// its allocation).
    block: BytesMut,
    peer_initial_window: u32,
    peer_max_frame_size: u32,
    streams: StreamMap<StreamState>,
    /// The highest stream id the client has used.
    last_stream_id: u32,
    /// The highest stream id we accepted (what a GOAWAY of ours names).
    last_accepted_id: u32,
    /// Streams we reset lately, newest last (see [`RECENT_RESETS`]).
    recent_resets: VecDeque<u32>,
    partial: Option<Partial>,
    conn_recv_window: i64,
    conn_unreleased: u32,
    conn_send_window: i64,
    /// Output not sealed yet: small frames are written here, and it is
    /// sealed into `chunks` before an uncopied body chunk, so the order is
    /// `chunks` then `out`.
    out: BytesMut,
    /// Sealed output, oldest first.
    chunks: VecDeque<Bytes>,
    /// The bytes in `chunks`.
    chunks_len: usize,
    /// A send window grew or output was drained since the application last
    /// asked.
    window_grew: bool,
    /// The code of the GOAWAY [`ServerConn::go_away`] sent.
    going_away: Option<ErrorCode>,
    events: VecDeque<Event>,
    failed: Option<ConnError>,
}

impl ServerConn {
    /// A connection that has sent nothing yet; our SETTINGS (and the
    /// connection window's increase) are queued at once.
    pub fn new(config: ConnConfig) -> Self {
        let mut out = BytesMut::with_capacity(64);
        Settings {
            max_concurrent_streams: Some(config.max_concurrent_streams),
            initial_window_size: Some(config.stream_window.min(MAX_WINDOW_SIZE)),
            max_frame_size: Some(config.max_frame_size),
            max_header_list_size: Some(config.max_header_list_size),
            enable_push: Some(false),
            enable_connect_protocol: config.enable_connect_protocol.then_some(true),
            ..Default::default()
        }
        .write(&mut out);
        let conn_window = config.connection_window.min(MAX_WINDOW_SIZE);
        if conn_window > DEFAULT_WINDOW {
            frame::write_window_update(0, conn_window - DEFAULT_WINDOW, &mut out);
        }
        let mut decoder = Decoder::new(4096);
        decoder.set_max_header_list_size(config.max_header_list_size as usize);
        ServerConn {
            config,
            preface_seen: false,
            settings_seen: false,
            decoder,
            encoder: Encoder::new(MAX_ENCODER_TABLE as usize),
            block: BytesMut::new(),
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
            streams: StreamMap::default(),
            last_stream_id: 0,
            last_accepted_id: 0,
            recent_resets: VecDeque::new(),
            partial: None,
            conn_recv_window: i64::from(conn_window),
            conn_unreleased: 0,
            conn_send_window: i64::from(DEFAULT_WINDOW),
            out,
            chunks: VecDeque::new(),
            chunks_len: 0,
            window_grew: false,
            going_away: None,
            events: VecDeque::new(),
            failed: None,
        }
    }

    /// Process what the client sent: every complete frame is taken off
    /// `buf`, what is left is an incomplete frame. After an error the
    /// connection only has its GOAWAY to send.
    pub fn recv(&mut self, buf: &mut BytesMut) -> Result<(), ConnError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let res = self.recv_frames(buf);
        if let Err(e) = res {
            frame::write_goaway(self.last_stream_id, e.code, e.why.as_bytes(), &mut self.out);
            self.failed = Some(e);
        }
        res
    }

    /// The next event, in the order the client caused them.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The largest frame payload the client accepts.
    pub fn peer_max_frame_size(&self) -> u32 {
        self.peer_max_frame_size
    }

    /// What we may send on `stream_id` now (the smaller of its window and the
    /// connection's); `None` for a stream that is not open.
    pub fn send_window(&self, stream_id: u32) -> Option<u32> {
        let stream = self.streams.get(&stream_id)?;
        let window = stream.send_window.min(self.conn_send_window).max(0);
        Some(window.min(i64::from(MAX_WINDOW_SIZE)) as u32)
    }

    /// The application took `n` bytes of `stream_id`'s body: the client may
    /// send that much more. Window updates go out once half a window is due,
    /// not for every chunk.
    pub fn release(&mut self, stream_id: u32, n: u32) {
        self.release_connection(n);
        let half = self.config.stream_window / 2;
        if let Some(stream) = self.streams.get_mut(&stream_id) {
            stream.unreleased = stream.unreleased.saturating_add(n);
            // an ended stream gets no more data: its window does not matter
            if !stream.remote_ended && stream.unreleased >= half {
                frame::write_window_update(stream_id, stream.unreleased, &mut self.out);
                stream.recv_window += i64::from(stream.unreleased);
                stream.unreleased = 0;
            }
        }
    }

    /// Give `n` bytes back to the connection's window only (data no stream
    /// will take).
    fn release_connection(&mut self, n: u32) {
        self.conn_unreleased = self.conn_unreleased.saturating_add(n);
        if self.conn_unreleased >= self.config.connection_window / 2 {
            frame::write_window_update(0, self.conn_unreleased, &mut self.out);
            self.conn_recv_window += i64::from(self.conn_unreleased);
            self.conn_unreleased = 0;
        }
    }

    /// The application is done with `stream_id`: forget it. If the exchange
    /// is not complete, the client is told to stop: an unfinished response
    /// is cancelled (CANCEL); after a complete one, the rest of the request
    /// body is declined (NO_ERROR, RFC 9113 §8.1).
    pub fn close_stream(&mut self, stream_id: u32) {
        // a stream ended on both sides has left the map already
        let Some(stream) = self.streams.get(&stream_id) else {
            return;
        };
        let code = if stream.local_ended {
            ErrorCode::NO_ERROR
        } else {
            ErrorCode::CANCEL
        };
        self.reset(stream_id, code);
    }

    /// Reset `stream_id` with `code` and forget it.
    pub fn reset_stream(&mut self, stream_id: u32, code: ErrorCode) {
        if self.streams.contains_key(&stream_id) {
            self.reset(stream_id, code);
        }
    }

    fn recv_frames(&mut self, buf: &mut BytesMut) -> Result<(), ConnError> {
        if !self.preface_seen {
            let n = buf.len().min(PREFACE.len());
            if buf[..n] != PREFACE[..n] {
                return Err(ConnError {
                    code: ErrorCode::PROTOCOL_ERROR,
                    why: "not the HTTP/2 client preface",
                });
            }
            if n < PREFACE.len() {
                return Ok(());
            }
            buf.advance(PREFACE.len());
            self.preface_seen = true;
        }
        loop {
            let frame = match frame::read_frame(buf, self.config.max_frame_size) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(FrameError::Connection(code, why)) => return Err(ConnError { code, why }),
                Err(FrameError::Stream(id, code, _)) => {
                    self.refuse(id, code);
                    continue;
                }
            };
            if !self.settings_seen && !matches!(frame, Frame::Settings(_)) {
                return conn_err(ErrorCode::PROTOCOL_ERROR, "first frame not SETTINGS");
            }
            self.on_frame(frame)?;
        }
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), ConnError> {
        if let Some(partial) = &self.partial {
            let continues = matches!(&frame, Frame::Continuation { stream_id, .. } if *stream_id == partial.stream_id);
            if !continues {
                return conn_err(ErrorCode::PROTOCOL_ERROR, "frame inside a header block");
            }
        }
        match frame {
            Frame::Settings(s) => self.on_settings(s),
            Frame::SettingsAck | Frame::Priority { .. } | Frame::Unknown(_) => Ok(()),
            Frame::Ping { ack, payload } => {
                if !ack {
                    frame::write_ping(payload, true, &mut self.out);
                }
                Ok(())
            }
            Frame::GoAway {
                last_stream_id,
                code,
                ..
            } => {
                self.events.push_back(Event::GoAway {
                    last_stream_id,
                    code,
                });
                Ok(())
            }
            Frame::WindowUpdate {
                stream_id,
                increment,
            } => self.on_window_update(stream_id, increment),
            Frame::Headers {
                stream_id,
                fragment,
                end_stream,
                end_headers,
                ..
            } => {
                if !end_headers {
                    // only a block that continues is copied, to be joined
                    self.partial = Some(Partial {
                        stream_id,
                        block: BytesMut::from(&fragment[..]),
                        end_stream,
                    });
                    return Ok(());
                }
                self.on_header_block(stream_id, fragment, end_stream)
            }
            Frame::Continuation {
                fragment,
                end_headers,
                ..
            } => {
                let Some(mut partial) = self.partial.take() else {
                    return conn_err(ErrorCode::PROTOCOL_ERROR, "CONTINUATION without HEADERS");
                };
                if partial.block.len() + fragment.len()
                    > self.config.max_header_list_size as usize * 2
                {
                    // the encoded block alone is past any sensible list
                    return conn_err(ErrorCode::ENHANCE_YOUR_CALM, "header block too large");
                }
                partial.block.extend_from_slice(&fragment);
                if !end_headers {
                    self.partial = Some(partial);
                    return Ok(());
                }
                self.on_header_block(
                    partial.stream_id,
                    partial.block.freeze(),
                    partial.end_stream,
                )
            }
            Frame::Data {
                stream_id,
                data,
                end_stream,
                flow_len,
            } => self.on_data(stream_id, data, end_stream, flow_len),
            Frame::RstStream { stream_id, code } => {
                if stream_id > self.last_stream_id {
                    return conn_err(ErrorCode::PROTOCOL_ERROR, "RST_STREAM on an idle stream");
                }
                if self.streams.remove(&stream_id).is_some() {
                    self.events.push_back(Event::Reset { stream_id, code });
                }
                Ok(())
            }
            Frame::PushPromise { .. } => {
                conn_err(ErrorCode::PROTOCOL_ERROR, "PUSH_PROMISE from a client")
            }
        }
    }

    fn on_settings(&mut self, s: Settings) -> Result<(), ConnError> {
        self.settings_seen = true;
        if let Some(size) = s.max_frame_size {
            self.peer_max_frame_size = size;
        }
        if let Some(size) = s.header_table_size {
            self.encoder
                .set_max_table_size(size.min(MAX_ENCODER_TABLE) as usize);
        }
        if let Some(window) = s.initial_window_size {
            // the change applies to every open stream's window (RFC 9113 §6.9.2)
            let delta = i64::from(window) - i64::from(self.peer_initial_window);
            for stream in self.streams.values_mut() {
                stream.send_window += delta;
                if stream.send_window > i64::from(MAX_WINDOW_SIZE) {
                    return conn_err(ErrorCode::FLOW_CONTROL_ERROR, "window above 2^31-1");
                }
            }
            self.peer_initial_window = window;
            if delta > 0 {
                self.window_grew = true;
            }
        }
        frame::write_settings_ack(&mut self.out);
        Ok(())
    }

    fn on_window_update(&mut self, stream_id: u32, increment: u32) -> Result<(), ConnError> {
        if stream_id == 0 {
            self.conn_send_window += i64::from(increment);
            if self.conn_send_window > i64::from(MAX_WINDOW_SIZE) {
                return conn_err(
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "connection window above 2^31-1",
                );
            }
            self.window_grew = true;
            return Ok(());
        }
        if stream_id > self.last_stream_id {
            return conn_err(ErrorCode::PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
        }
        if let Some(stream) = self.streams.get_mut(&stream_id) {
            stream.send_window += i64::from(increment);
            if stream.send_window > i64::from(MAX_WINDOW_SIZE) {
                self.refuse(stream_id, ErrorCode::FLOW_CONTROL_ERROR);
            } else {
                self.window_grew = true;
            }
        }
        Ok(())
    }

    fn on_header_block(
        &mut self,
        stream_id: u32,
        block: Bytes,
        end_stream: bool,
    ) -> Result<(), ConnError> {
        // decoded in every case, so that the compression context stays in step
        let mut fields = Vec::new();
        let decoded = self.decoder.decode(&block, |f| fields.push(f));
        let too_large = match decoded {
            Ok(()) => false,
            Err(HpackError::HeaderListTooLarge) => true,
            Err(_) => return conn_err(ErrorCode::COMPRESSION_ERROR, "header block undecodable"),
        };
        if let Some(stream) = self.streams.get(&stream_id) {
            // a second header block on an open stream: trailers, which must
            // end it; a block after the end is a stream error (half-closed
            // remote, RFC 9113 §5.1)
            if stream.remote_ended {
                self.refuse(stream_id, ErrorCode::STREAM_CLOSED);
                return Ok(());
            }
            if !end_stream {
                self.refuse(stream_id, ErrorCode::PROTOCOL_ERROR);
                return Ok(());
            }
            self.remote_end(stream_id);
            self.events.push_back(Event::Trailers { stream_id, fields });
            return Ok(());
        }
        if stream_id % 2 == 0 {
            return conn_err(ErrorCode::PROTOCOL_ERROR, "client stream id even");
        }
        if stream_id <= self.last_stream_id {
            // the client may have sent it before it saw our reset (trailers
            // of a refused upload): ignored (RFC 9113 §5.1, "closed")
            if self.recent_resets.contains(&stream_id) {
                return Ok(());
            }
            return conn_err(ErrorCode::STREAM_CLOSED, "HEADERS on a closed stream");
        }
        self.last_stream_id = stream_id;
        if self.going_away.is_some()
            || self.streams.len() >= self.config.max_concurrent_streams as usize
        {
            self.refuse(stream_id, ErrorCode::REFUSED_STREAM);
            return Ok(());
        }
        self.last_accepted_id = stream_id;
        self.streams.insert(
            stream_id,
            StreamState {
                remote_ended: end_stream,
                recv_window: i64::from(self.config.stream_window),
                unreleased: 0,
                send_window: i64::from(self.peer_initial_window),
                local_ended: false,
            },
        );
        self.events.push_back(if too_large {
            Event::HeadersTooLarge {
                stream_id,
                end_stream,
            }
        } else {
            Event::Request {
                stream_id,
                fields,
                end_stream,
            }
        });
        Ok(())
    }

    fn on_data(
        &mut self,
        stream_id: u32,
        data: Bytes,
        end_stream: bool,
        flow_len: u32,
    ) -> Result<(), ConnError> {
        if stream_id > self.last_stream_id {
            return conn_err(ErrorCode::PROTOCOL_ERROR, "DATA on an idle stream");
        }
        // the connection window counts every DATA frame, even one for a
        // stream already gone
        self.conn_recv_window -= i64::from(flow_len);
        if self.conn_recv_window < 0 {
            return conn_err(
                ErrorCode::FLOW_CONTROL_ERROR,
                "client overran the connection window",
            );
        }
        let state = self
            .streams
            .get(&stream_id)
            .map(|s| (s.remote_ended, s.recv_window));
        match state {
            None => {
                // a stream that ended or was reset (the client may have sent
                // this before it saw our reset): give the window back at
                // once, and ignore it (RFC 9113 §5.1, "closed")
                self.release_connection(flow_len);
                return Ok(());
            }
            Some((true, _)) => {
                self.release_connection(flow_len);
                self.refuse(stream_id, ErrorCode::STREAM_CLOSED);
                return Ok(());
            }
            Some((false, window)) if window < i64::from(flow_len) => {
                self.release_connection(flow_len);
                self.refuse(stream_id, ErrorCode::FLOW_CONTROL_ERROR);
                return Ok(());
            }
            Some(_) => {}
        }
        if let Some(stream) = self.streams.get_mut(&stream_id) {
            stream.recv_window -= i64::from(flow_len);
        }
        if end_stream {
            self.remote_end(stream_id);
        }
        // padding is not the application's to release: release it here
        let padding = flow_len - data.len() as u32;
        if padding > 0 {
            self.release(stream_id, padding);
        }
        self.events.push_back(Event::Data {
            stream_id,
            data,
            end_stream,
        });
        Ok(())
    }

    /// The client ended its side of `stream_id`; a stream ended on both
    /// sides is forgotten, which frees its place among the open streams.
    fn remote_end(&mut self, stream_id: u32) {
        if let Some(stream) = self.streams.get_mut(&stream_id) {
            stream.remote_ended = true;
            if stream.local_ended {
                self.streams.remove(&stream_id);
            }
        }
    }

    /// Reset `stream_id`, which the client misused or which is refused,
    /// and tell the application.
    fn refuse(&mut self, stream_id: u32, code: ErrorCode) {
        if self.streams.contains_key(&stream_id) {
            // the application may be waiting for the rest of the request
            self.events
                .push_back(Event::StreamError { stream_id, code });
        }
        self.reset(stream_id, code);
    }

    /// Reset `stream_id` and forget it; frames still in flight for it are
    /// ignored.
    fn reset(&mut self, stream_id: u32, code: ErrorCode) {
        self.streams.remove(&stream_id);
        if self.failed.is_some() {
            // only the GOAWAY matters now
            return;
        }
        frame::write_rst_stream(stream_id, code, &mut self.out);
        if self.recent_resets.len() == RECENT_RESETS {
            self.recent_resets.pop_front();
        }
        self.recent_resets.push_back(stream_id);
    }
}

/// A map keyed by stream id.
pub(crate) type StreamMap<V> = HashMap<u32, V, BuildHasherDefault<StreamIdHasher>>;

/// Hashes a stream id with one multiply instead of SipHash. The ids are
/// the client's choice, but a map holds at most the concurrent-stream limit
/// of them, so even ids chosen to collide cost little.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StreamIdHasher(u64);

impl Hasher for StreamIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // only ids are hashed; any other key still hashes correctly
        for b in bytes {
            self.write_u32(u32::from(*b) ^ (self.0 as u32));
        }
    }

    fn write_u32(&mut self, id: u32) {
        // the product's high bits are well mixed, its low bits (which pick
        // the bucket) much less: client ids are all odd. Fold them down.
        let x = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

fn conn_err<T>(code: ErrorCode, why: &'static str) -> Result<T, ConnError> {
    Err(ConnError { code, why })
}

#[cfg(test)]
mod send_tests;
#[cfg(test)]
mod tests;
