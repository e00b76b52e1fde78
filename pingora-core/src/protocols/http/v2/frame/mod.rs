//! HTTP/2 frames (RFC 9113 §4, §6): reading them from a connection's bytes
//! with every check the frame layout allows, and writing them.
//!
//! What a frame means for the connection (stream states, flow control, the
//! order of HEADERS and CONTINUATION) is the connection's business; this
//! module only refuses frames that are malformed on their own, and says
//! whether the fault ends the connection or only the stream.
//!
//! ```
//! use bytes::BytesMut;
//! use pingora_core::protocols::http::v2::frame::{self, Frame, DEFAULT_MAX_FRAME_SIZE};
//!
//! let mut wire = BytesMut::new();
//! frame::write_window_update(0, 65_535, &mut wire);
//! match frame::read_frame(&mut wire, DEFAULT_MAX_FRAME_SIZE) {
//!     Ok(Some(Frame::WindowUpdate { stream_id: 0, increment })) => assert_eq!(increment, 65_535),
//!     other => panic!("unexpected {other:?}"),
//! }
//! assert!(wire.is_empty());
//! ```

mod settings;

pub use settings::Settings;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The length of a frame header.
pub const HEADER_LEN: usize = 9;
/// The largest frame payload a peer must accept before settings say more.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest `SETTINGS_MAX_FRAME_SIZE` there can be.
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest flow-control window (RFC 9113 §6.9.1).
pub const MAX_WINDOW_SIZE: u32 = (1 << 31) - 1;

/// Frame flags.
pub mod flags {
    /// DATA, HEADERS: the last frame the sender sends on the stream.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: an acknowledgement.
    pub const ACK: u8 = 0x1;
    /// HEADERS, CONTINUATION: the header block is complete.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS: the payload is padded.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: priority fields precede the block.
    pub const PRIORITY: u8 = 0x20;
}

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

/// An HTTP/2 error code (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// Graceful shutdown, or no error.
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    /// A protocol error with no more specific code.
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    /// An unexpected internal error.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    /// The peer broke flow control.
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    /// SETTINGS not acknowledged in time.
    pub const SETTINGS_TIMEOUT: ErrorCode = ErrorCode(0x4);
    /// A frame arrived on a half-closed stream.
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    /// A frame had an invalid size.
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    /// The stream was refused before any processing.
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    /// The stream is no longer needed.
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    /// The header compression context broke.
    pub const COMPRESSION_ERROR: ErrorCode = ErrorCode(0x9);
    /// A CONNECT tunnel failed.
    pub const CONNECT_ERROR: ErrorCode = ErrorCode(0xa);
    /// The peer generates excessive load.
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
    /// The transport does not meet security requirements.
    pub const INADEQUATE_SECURITY: ErrorCode = ErrorCode(0xc);
    /// Use HTTP/1.1 for this request.
    pub const HTTP_1_1_REQUIRED: ErrorCode = ErrorCode(0xd);
}

/// A frame that must not be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The connection must end with a GOAWAY carrying this code.
    Connection(ErrorCode, &'static str),
    /// Only this stream is reset, with this code; the connection goes on
    /// (the frame was consumed).
    Stream(u32, ErrorCode, &'static str),
}

/// The priority fields of HEADERS and PRIORITY frames (deprecated by RFC
/// 9113, still parsed so that a self-dependency can be refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    /// The stream this one depends on.
    pub dependency: u32,
    /// The dependency is exclusive.
    pub exclusive: bool,
    /// The weight, 1 to 256, minus one.
    pub weight: u8,
}

/// One frame read from a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Body data.
    Data {
        /// Its stream.
        stream_id: u32,
        /// The data, padding removed.
        data: Bytes,
        /// The last frame of the stream's body.
        end_stream: bool,
        /// What the frame counts against flow control: its whole payload,
        /// padding included.
        flow_len: u32,
    },
    /// The start of a header block.
    Headers {
        /// Its stream.
        stream_id: u32,
        /// The block fragment, padding and priority fields removed.
        fragment: Bytes,
        /// No DATA follows on the stream.
        end_stream: bool,
        /// No CONTINUATION follows.
        end_headers: bool,
        /// Priority fields, if present.
        priority: Option<Priority>,
    },
    /// A priority signal.
    Priority {
        /// Its stream.
        stream_id: u32,
        /// The fields.
        priority: Priority,
    },
    /// The peer ended a stream.
    RstStream {
        /// Its stream.
        stream_id: u32,
        /// Why.
        code: ErrorCode,
    },
    /// The peer's settings (to apply and acknowledge).
    Settings(Settings),
    /// The peer acknowledged our settings.
    SettingsAck,
    /// A server push; only a server may send one.
    PushPromise {
        /// The stream it was sent on.
        stream_id: u32,
    },
    /// A ping (to answer unless `ack`).
    Ping {
        /// This is the answer to our ping.
        ack: bool,
        /// Opaque data to echo.
        payload: [u8; 8],
    },
    /// The peer is shutting the connection down.
    GoAway {
        /// The last stream the peer processes.
        last_stream_id: u32,
        /// Why.
        code: ErrorCode,
        /// Diagnostic data.
        debug: Bytes,
    },
    /// More flow-control window for a stream (or the connection: stream 0).
    WindowUpdate {
        /// The stream, 0 for the connection.
        stream_id: u32,
        /// The increment, at least 1.
        increment: u32,
    },
    /// More of a header block.
    Continuation {
        /// Its stream.
        stream_id: u32,
        /// The block fragment.
        fragment: Bytes,
        /// The block is complete.
        end_headers: bool,
    },
    /// A frame of a type this endpoint does not know, to be ignored (RFC
    /// 9113 §5.5); the type is kept for logging.
    Unknown(u8),
}

/// The fixed 9-byte header of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    len: u32,
    kind: u8,
    flags: u8,
    stream_id: u32,
}

impl FrameHeader {
    fn parse(b: &[u8]) -> FrameHeader {
        FrameHeader {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            // the reserved bit is ignored on receipt
            stream_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & MAX_WINDOW_SIZE,
        }
    }
}

fn write_header(len: usize, kind: u8, flags: u8, stream_id: u32, dst: &mut BytesMut) {
    debug_assert!(len <= MAX_MAX_FRAME_SIZE as usize);
    let len = (len as u32).to_be_bytes();
    dst.put_slice(&len[1..]);
    dst.put_u8(kind);
    dst.put_u8(flags);
    dst.put_u32(stream_id & MAX_WINDOW_SIZE);
}

fn conn_err<T>(code: ErrorCode, why: &'static str) -> Result<T, FrameError> {
    Err(FrameError::Connection(code, why))
}

/// Take one complete frame off the front of `buf`. `Ok(None)`: the frame is
/// not complete yet (read more). A frame larger than `max_frame_size` (our
/// `SETTINGS_MAX_FRAME_SIZE`) is refused before its payload arrives.
pub fn read_frame(buf: &mut BytesMut, max_frame_size: u32) -> Result<Option<Frame>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let head = FrameHeader::parse(&buf[..HEADER_LEN]);
    if head.len > max_frame_size {
        return conn_err(
            ErrorCode::FRAME_SIZE_ERROR,
            "frame larger than SETTINGS_MAX_FRAME_SIZE",
        );
    }
    let total = HEADER_LEN + head.len as usize;
    if buf.len() < total {
        // no reserve for the announced length: nine bytes claiming a
        // 16 MiB frame must not make us allocate 16 MiB
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let payload = buf.split_to(head.len as usize).freeze();
    parse_payload(head, payload).map(Some)
}

fn parse_payload(head: FrameHeader, mut payload: Bytes) -> Result<Frame, FrameError> {
    let FrameHeader {
        len,
        kind,
        flags,
        stream_id,
    } = head;
    let on_stream = |what: &'static str| {
        if stream_id == 0 {
            conn_err(ErrorCode::PROTOCOL_ERROR, what)
        } else {
            Ok(())
        }
    };
    let on_connection = |what: &'static str| {
        if stream_id != 0 {
            conn_err(ErrorCode::PROTOCOL_ERROR, what)
        } else {
            Ok(())
        }
    };
    match kind {
        DATA => {
            on_stream("DATA on stream 0")?;
            strip_padding(flags, &mut payload)?;
            Ok(Frame::Data {
                stream_id,
                data: payload,
                end_stream: flags & flags::END_STREAM != 0,
                flow_len: len,
            })
        }
        HEADERS => {
            on_stream("HEADERS on stream 0")?;
            strip_padding(flags, &mut payload)?;
            let priority = if flags & flags::PRIORITY != 0 {
                if payload.len() < 5 {
                    return conn_err(
                        ErrorCode::FRAME_SIZE_ERROR,
                        "HEADERS too short for priority",
                    );
                }
                let p = parse_priority(&payload.split_to(5));
                if p.dependency == stream_id {
                    return Err(FrameError::Stream(
                        stream_id,
                        ErrorCode::PROTOCOL_ERROR,
                        "stream depends on itself",
                    ));
                }
                Some(p)
            } else {
                None
            };
            Ok(Frame::Headers {
                stream_id,
                fragment: payload,
                end_stream: flags & flags::END_STREAM != 0,
                end_headers: flags & flags::END_HEADERS != 0,
                priority,
            })
        }
        PRIORITY => {
            on_stream("PRIORITY on stream 0")?;
            if len != 5 {
                return Err(FrameError::Stream(
                    stream_id,
                    ErrorCode::FRAME_SIZE_ERROR,
                    "PRIORITY frame not 5 bytes",
                ));
            }
            let priority = parse_priority(&payload);
            if priority.dependency == stream_id {
                return Err(FrameError::Stream(
                    stream_id,
                    ErrorCode::PROTOCOL_ERROR,
                    "stream depends on itself",
                ));
            }
            Ok(Frame::Priority {
                stream_id,
                priority,
            })
        }
        RST_STREAM => {
            on_stream("RST_STREAM on stream 0")?;
            if len != 4 {
                return conn_err(ErrorCode::FRAME_SIZE_ERROR, "RST_STREAM not 4 bytes");
            }
            Ok(Frame::RstStream {
                stream_id,
                code: ErrorCode(payload.get_u32()),
            })
        }
        SETTINGS => {
            on_connection("SETTINGS on a stream")?;
            if flags & flags::ACK != 0 {
                if len != 0 {
                    return conn_err(ErrorCode::FRAME_SIZE_ERROR, "SETTINGS ack with a payload");
                }
                return Ok(Frame::SettingsAck);
            }
            Settings::parse(&payload).map(Frame::Settings)
        }
        PUSH_PROMISE => {
            on_stream("PUSH_PROMISE on stream 0")?;
            Ok(Frame::PushPromise { stream_id })
        }
        PING => {
            on_connection("PING on a stream")?;
            let payload: [u8; 8] = payload[..]
                .try_into()
                .or_else(|_| conn_err(ErrorCode::FRAME_SIZE_ERROR, "PING not 8 bytes"))?;
            Ok(Frame::Ping {
                ack: flags & flags::ACK != 0,
                payload,
            })
        }
        GOAWAY => {
            on_connection("GOAWAY on a stream")?;
            if len < 8 {
                return conn_err(ErrorCode::FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes");
            }
            let last_stream_id = payload.get_u32() & MAX_WINDOW_SIZE;
            let code = ErrorCode(payload.get_u32());
            Ok(Frame::GoAway {
                last_stream_id,
                code,
                debug: payload,
            })
        }
        WINDOW_UPDATE => {
            if len != 4 {
                return conn_err(ErrorCode::FRAME_SIZE_ERROR, "WINDOW_UPDATE not 4 bytes");
            }
            let increment = payload.get_u32() & MAX_WINDOW_SIZE;
            if increment == 0 {
                let why = "WINDOW_UPDATE of 0";
                return Err(if stream_id == 0 {
                    FrameError::Connection(ErrorCode::PROTOCOL_ERROR, why)
                } else {
                    FrameError::Stream(stream_id, ErrorCode::PROTOCOL_ERROR, why)
                });
            }
            Ok(Frame::WindowUpdate {
                stream_id,
                increment,
            })
        }
        CONTINUATION => {
            on_stream("CONTINUATION on stream 0")?;
            Ok(Frame::Continuation {
                stream_id,
                fragment: payload,
                end_headers: flags & flags::END_HEADERS != 0,
            })
        }
        other => Ok(Frame::Unknown(other)),
    }
}

/// Remove the pad length byte and the padding of a PADDED frame.
fn strip_padding(flags: u8, payload: &mut Bytes) -> Result<(), FrameError> {
    if flags & flags::PADDED == 0 {
        return Ok(());
    }
    let Some(&pad) = payload.first() else {
        return conn_err(
            ErrorCode::FRAME_SIZE_ERROR,
            "padded frame without pad length",
        );
    };
    let pad = usize::from(pad);
    // the padding may not take the whole payload (RFC 9113 §6.1)
    if pad >= payload.len() {
        return conn_err(ErrorCode::PROTOCOL_ERROR, "padding longer than the payload");
    }
    payload.advance(1);
    payload.truncate(payload.len() - pad);
    Ok(())
}

fn parse_priority(b: &[u8]) -> Priority {
    let word = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Priority {
        dependency: word & MAX_WINDOW_SIZE,
        exclusive: word & !MAX_WINDOW_SIZE != 0,
        weight: b[4],
    }
}

/// Write the header of a DATA frame whose `len` bytes of data the caller
/// writes next (or sends in the same vectored write, uncopied).
pub fn write_data_header(stream_id: u32, len: usize, end_stream: bool, dst: &mut BytesMut) {
    let flags = if end_stream { flags::END_STREAM } else { 0 };
    write_header(len, DATA, flags, stream_id, dst);
}

/// Write a header block as a HEADERS frame, followed by CONTINUATION
/// frames when it is larger than `max_frame_size` (the peer's).
pub fn write_headers(
    stream_id: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: u32,
    dst: &mut BytesMut,
) {
    let max = (max_frame_size as usize)
        .clamp(DEFAULT_MAX_FRAME_SIZE as usize, MAX_MAX_FRAME_SIZE as usize);
    let mut chunks = block.chunks(max).peekable();
    let first = chunks.next().unwrap_or(&[]);
    dst.reserve(block.len() + HEADER_LEN * (1 + block.len() / max));
    let mut flags = if end_stream { flags::END_STREAM } else { 0 };
    if chunks.peek().is_none() {
        flags |= flags::END_HEADERS;
    }
    write_header(first.len(), HEADERS, flags, stream_id, dst);
    dst.put_slice(first);
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            flags::END_HEADERS
        } else {
            0
        };
        write_header(chunk.len(), CONTINUATION, flags, stream_id, dst);
        dst.put_slice(chunk);
    }
}

/// Write a RST_STREAM frame.
pub fn write_rst_stream(stream_id: u32, code: ErrorCode, dst: &mut BytesMut) {
    write_header(4, RST_STREAM, 0, stream_id, dst);
    dst.put_u32(code.0);
}

/// Write an acknowledgement of the peer's SETTINGS.
pub fn write_settings_ack(dst: &mut BytesMut) {
    write_header(0, SETTINGS, flags::ACK, 0, dst);
}

/// Write a PING frame (`ack`: the answer to the peer's).
pub fn write_ping(payload: [u8; 8], ack: bool, dst: &mut BytesMut) {
    write_header(8, PING, if ack { flags::ACK } else { 0 }, 0, dst);
    dst.put_slice(&payload);
}

/// Write a GOAWAY frame.
pub fn write_goaway(last_stream_id: u32, code: ErrorCode, debug: &[u8], dst: &mut BytesMut) {
    write_header(8 + debug.len(), GOAWAY, 0, 0, dst);
    dst.put_u32(last_stream_id & MAX_WINDOW_SIZE);
    dst.put_u32(code.0);
    dst.put_slice(debug);
}

/// Write a WINDOW_UPDATE frame (`stream_id` 0: the connection's window).
pub fn write_window_update(stream_id: u32, increment: u32, dst: &mut BytesMut) {
    write_header(4, WINDOW_UPDATE, 0, stream_id, dst);
    dst.put_u32(increment & MAX_WINDOW_SIZE);
}

#[cfg(test)]
mod tests;
