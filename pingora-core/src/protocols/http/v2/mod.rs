//! HTTP/2 sessions: [`server::HttpSession`] serves one stream of a
//! downstream connection, [`client::Http2Session`] sends one request over a
//! shared upstream connection (on the `h2` crate).
//!
//! Both sides move bodies under HTTP/2 flow control: data is sent only as
//! the peer's window allows (so a slow reader slows the sender instead of
//! growing buffers), and received data is acknowledged (its window released)
//! only when the caller takes it, so the peer's sending follows our reading.
//!
//! Downstream connections run on a codec of our own, in layers: [`hpack`]
//! (header compression), [`frame`] (frames read and written with their
//! checks), [`conn`] (the connection's protocol state, without I/O) and
//! [`server`] (the connection on a socket, and its streams as sessions).
//! The `h2` crate serves downstream connections only for apps that
//! configure it through [`server::H2Options`].

/// A deterministic pseudo-random sequence (xorshift64) for the codec's
/// randomized tests, so that a failure repeats.
#[cfg(test)]
pub(crate) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

pub mod client;
pub mod conn;
pub mod frame;
pub mod hpack;
mod protect;
pub mod server;
mod write_batch;

pub use protect::{H2Limits, ResetTracker};

use bytes::Bytes;
use h2::{Reason, SendStream};
use http::header::{self, HeaderMap, HeaderName};
use pingora_error::{Error, ErrorType, Result};
use std::future::poll_fn;

/// Headers that are specific to one HTTP/1 connection and are forbidden in
/// HTTP/2 (RFC 9113 §8.2.2); `te` is handled separately (only `trailers` may
/// pass).
const CONNECTION_SPECIFIC: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether `headers` hold anything [`strip_connection_headers`] would remove:
/// one pass over the names instead of a lookup per forbidden name.
fn has_connection_headers(headers: &HeaderMap) -> bool {
    headers.keys().any(|name| {
        if name == header::TE {
            return headers
                .get_all(header::TE)
                .iter()
                .any(|v| is_connection_specific(name, v.as_bytes()));
        }
        is_connection_specific(name, b"")
    })
}

/// Whether a field `name: value` is one HTTP/2 forbids (RFC 9113 §8.2.2):
/// a connection-specific header, or `te` other than `trailers`.
pub(crate) fn is_connection_specific(name: &HeaderName, value: &[u8]) -> bool {
    if name == header::TE {
        return !value.eq_ignore_ascii_case(b"trailers");
    }
    CONNECTION_SPECIFIC.iter().any(|c| c == name)
}

/// Remove what HTTP/2 must not carry: the connection-specific headers, the
/// headers a `Connection` header names, and `te` unless it is `trailers`.
pub fn strip_connection_headers(headers: &mut HeaderMap) {
    if !has_connection_headers(headers) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(CONNECTION_SPECIFIC.iter()) {
        headers.remove(name);
    }
    let te_trailers = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !te_trailers {
        headers.remove(header::TE);
    }
}

/// Turn an `h2` error into ours, blaming `etype` unless the error tells a
/// more precise story (a reset or GOAWAY from the peer, an I/O failure).
pub(crate) fn h2_error(e: h2::Error, etype: ErrorType, context: &'static str) -> Box<Error> {
    let etype = if e.is_io() {
        etype
    } else if e.is_remote() && (e.is_reset() || e.is_go_away()) {
        ErrorType::H2Error
    } else if e.is_library() {
        ErrorType::InvalidH2
    } else {
        etype
    };
    Error::because(etype, context, e)
}

/// Whether `e` is a stream reset by the peer with `reason`.
pub(crate) fn is_remote_reset(e: &h2::Error, reason: Reason) -> bool {
    e.is_remote() && e.is_reset() && e.reason() == Some(reason)
}

/// The largest last piece of a body handed to `h2` without waiting for
/// window: at most this much is held per stream beyond the send buffer.
const DIRECT_SEND_MAX: usize = 64 * 1024;

/// Send `data` on `stream` as the peer's flow-control window allows; `end`
/// ends the stream with the last piece. At most the send buffer of the
/// `h2` connection is held per stream: the call waits for window otherwise
/// (except for a small last piece, see [`DIRECT_SEND_MAX`]).
pub(crate) async fn send_flow_controlled(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<()> {
    let write_err = |e| h2_error(e, ErrorType::WriteError, "while sending HTTP/2 data");
    if data.is_empty() {
        return if end { send_end(stream) } else { Ok(()) };
    }
    if end && data.len() <= DIRECT_SEND_MAX {
        // nothing follows: no need to pace the caller, `h2` sends the piece as
        // the window allows
        return stream.send_data(data, true).map_err(write_err);
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(write_err(e)),
            None => {
                return Error::e_explain(
                    ErrorType::WriteError,
                    "HTTP/2 stream closed while sending data",
                )
            }
        };
        if granted == 0 {
            continue;
        }
        let piece = data.split_to(granted.min(data.len()));
        stream
            .send_data(piece, end && data.is_empty())
            .map_err(write_err)?;
    }
    Ok(())
}

/// End `stream` without more data.
pub(crate) fn send_end(stream: &mut SendStream<Bytes>) -> Result<()> {
    stream
        .send_data(Bytes::new(), true)
        .map_err(|e| h2_error(e, ErrorType::WriteError, "while ending an HTTP/2 stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-hop".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
        h.insert("keep-alive", "5".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("upgrade", "h2c".parse().unwrap());
        h.insert("te", "gzip".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip_connection_headers(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-keep"));
        let mut h = HeaderMap::new();
        h.insert("te", "trailers".parse().unwrap());
        strip_connection_headers(&mut h);
        assert!(h.contains_key("te"));
    }
}
