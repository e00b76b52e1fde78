//! The SETTINGS frame's parameters (RFC 9113 §6.5.2, RFC 8441 §3).

use super::{
    conn_err, write_header, ErrorCode, FrameError, DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE,
    MAX_WINDOW_SIZE, SETTINGS,
};
use bytes::{BufMut, BytesMut};

const HEADER_TABLE_SIZE: u16 = 0x1;
const ENABLE_PUSH: u16 = 0x2;
const MAX_CONCURRENT_STREAMS: u16 = 0x3;
const INITIAL_WINDOW_SIZE: u16 = 0x4;
const MAX_FRAME_SIZE: u16 = 0x5;
const MAX_HEADER_LIST_SIZE: u16 = 0x6;
const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

/// The parameters one SETTINGS frame carries; `None` for those it leaves
/// as they were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    /// The largest HPACK table the sender's decoder keeps.
    pub header_table_size: Option<u32>,
    /// Whether the sender accepts server push (a server must not send 1).
    pub enable_push: Option<bool>,
    /// The most streams the sender lets the peer open at once.
    pub max_concurrent_streams: Option<u32>,
    /// The window of every stream the sender receives on, at its start.
    pub initial_window_size: Option<u32>,
    /// The largest frame payload the sender accepts.
    pub max_frame_size: Option<u32>,
    /// The largest header list the sender accepts (advisory).
    pub max_header_list_size: Option<u32>,
    /// Whether the sender accepts extended CONNECT (RFC 8441).
    pub enable_connect_protocol: Option<bool>,
}

impl Settings {
    /// Parse and check a SETTINGS payload; unknown parameters are ignored.
    pub(super) fn parse(payload: &[u8]) -> Result<Settings, FrameError> {
        if payload.len() % 6 != 0 {
            return conn_err(
                ErrorCode::FRAME_SIZE_ERROR,
                "SETTINGS not a multiple of 6 bytes",
            );
        }
        let mut s = Settings::default();
        for p in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([p[0], p[1]]);
            let value = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
            match id {
                HEADER_TABLE_SIZE => s.header_table_size = Some(value),
                ENABLE_PUSH => s.enable_push = Some(flag(value, "ENABLE_PUSH not 0 or 1")?),
                MAX_CONCURRENT_STREAMS => s.max_concurrent_streams = Some(value),
                INITIAL_WINDOW_SIZE => {
                    if value > MAX_WINDOW_SIZE {
                        return conn_err(
                            ErrorCode::FLOW_CONTROL_ERROR,
                            "INITIAL_WINDOW_SIZE above 2^31-1",
                        );
                    }
                    s.initial_window_size = Some(value);
                }
                MAX_FRAME_SIZE => {
                    if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) {
                        return conn_err(ErrorCode::PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range");
                    }
                    s.max_frame_size = Some(value);
                }
                MAX_HEADER_LIST_SIZE => s.max_header_list_size = Some(value),
                ENABLE_CONNECT_PROTOCOL => {
                    s.enable_connect_protocol =
                        Some(flag(value, "ENABLE_CONNECT_PROTOCOL not 0 or 1")?)
                }
                _ => {}
            }
        }
        Ok(s)
    }

    /// Write these settings as a SETTINGS frame.
    pub fn write(&self, dst: &mut BytesMut) {
        let params = [
            (HEADER_TABLE_SIZE, self.header_table_size),
            (ENABLE_PUSH, self.enable_push.map(u32::from)),
            (MAX_CONCURRENT_STREAMS, self.max_concurrent_streams),
            (INITIAL_WINDOW_SIZE, self.initial_window_size),
            (MAX_FRAME_SIZE, self.max_frame_size),
            (MAX_HEADER_LIST_SIZE, self.max_header_list_size),
            (
                ENABLE_CONNECT_PROTOCOL,
                self.enable_connect_protocol.map(u32::from),
            ),
        ];
        let count = params.iter().filter(|(_, v)| v.is_some()).count();
        write_header(count * 6, SETTINGS, 0, 0, dst);
        for (id, value) in params {
            if let Some(value) = value {
                dst.put_u16(id);
                dst.put_u32(value);
            }
        }
    }
}

fn flag(value: u32, why: &'static str) -> Result<bool, FrameError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => conn_err(ErrorCode::PROTOCOL_ERROR, why),
    }
}
