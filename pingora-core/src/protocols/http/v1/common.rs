//! Rules of HTTP/1.x shared by the server and client sessions: limits,
//! keep-alive, message framing headers and upgrade detection.

use super::body::BodyWriter;
use crate::protocols::{Digest, Stream};
use http::{header, HeaderMap, HeaderValue, Version};
use pingora_error::{Error, ErrorType, ErrorType::*, OrErr, Result};
use pingora_http::{known, RequestHeader, ResponseHeader};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Most header fields accepted in one message head.
pub const MAX_HEADERS: usize = 128;
/// Largest accepted message head (request/status line plus fields), in bytes.
pub const MAX_HEADER_SIZE: usize = 64 * 1024;
/// Longest accepted request target (URI), in bytes.
pub const MAX_URI_LEN: usize = 8 * 1024;
/// Initial capacity of the buffer a message head is read into.
pub const INIT_HEADER_BUF_SIZE: usize = 4096;
/// How much of a request body is kept for retries.
pub const BODY_BUF_LIMIT: usize = 64 * 1024;
/// How long an idle connection waits for the first byte of a request when no
/// keep-alive timeout was configured.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether (and how long) a connection may be reused after this exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveStatus {
    /// Reusable; wait at most this long for the next request.
    Timeout(Duration),
    /// Reusable, with no idle limit.
    Infinite,
    /// Close after this exchange.
    Off,
}

/// What the `Connection` header asks for: `Some(false)` for `close` (which
/// wins), `Some(true)` for `keep-alive`, `None` when it says neither.
pub fn connection_keepalive(headers: &HeaderMap) -> Option<bool> {
    let mut keepalive = None;
    for value in headers.get_all(header::CONNECTION) {
        let value = value.as_bytes();
        // the usual single-token values, without splitting
        if value.eq_ignore_ascii_case(b"keep-alive") {
            keepalive = Some(true);
            continue;
        }
        if value.eq_ignore_ascii_case(b"close") {
            return Some(false);
        }
        for token in value.split(|b| *b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                return Some(false);
            }
            if token.eq_ignore_ascii_case(b"keep-alive") {
                keepalive = Some(true);
            }
        }
    }
    keepalive
}

/// Whether a message of `version` with `headers` lets the connection stay
/// open: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
/// `Connection: keep-alive`.
pub fn is_keepalive(version: Version, headers: &HeaderMap) -> bool {
    match connection_keepalive(headers) {
        Some(k) => k,
        None => version == Version::HTTP_11,
    }
}

/// Whether `headers` carries `name` with `token` among its comma separated
/// values (case-insensitive).
pub fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &[u8]) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    })
}

/// A request or response head, for the framing questions below: which of the
/// [`known`] headers it holds is answered without a map lookup, and a lookup
/// only happens when the header is there.
pub(crate) trait Head {
    fn head_headers(&self) -> &HeaderMap;
    fn head_version(&self) -> Version;
    fn has(&self, bit: u16) -> bool;
    fn known_length(&self) -> Option<u64>;
    fn known_connection(&self) -> Option<known::ConnectionValue>;
}

// both header types answer the same way, through their own inherent methods
macro_rules! impl_head {
    ($($ty:ty),+) => {$(
        impl Head for $ty {
            #[inline]
            fn head_headers(&self) -> &HeaderMap {
                &self.headers
            }
            #[inline]
            fn head_version(&self) -> Version {
                self.version
            }
            #[inline]
            fn has(&self, bit: u16) -> bool {
                self.known_headers() & bit != 0
            }
            #[inline]
            fn known_length(&self) -> Option<u64> {
                self.known_content_length()
            }
            #[inline]
            fn known_connection(&self) -> Option<known::ConnectionValue> {
                self.known_connection()
            }
        }
    )+};
}
impl_head!(RequestHeader, ResponseHeader);

/// [`content_length`] of a head.
#[inline]
pub(crate) fn head_content_length(head: &impl Head) -> Result<Option<u64>, &'static str> {
    if !head.has(known::CONTENT_LENGTH) {
        return Ok(None);
    }
    if let Some(len) = head.known_length() {
        // one plain number, read when the header was added
        return Ok(Some(len));
    }
    content_length(head.head_headers())
}

/// [`transfer_coding`] of a head.
#[inline]
pub(crate) fn head_transfer_coding(head: &impl Head) -> TransferCoding {
    if !head.has(known::TRANSFER_ENCODING) {
        return TransferCoding::Absent;
    }
    transfer_coding(head.head_headers())
}

/// [`is_keepalive`] of a head.
#[inline]
pub(crate) fn head_is_keepalive(head: &impl Head) -> bool {
    if !head.has(known::CONNECTION) {
        return head.head_version() == Version::HTTP_11;
    }
    // one usual token, read when the header was added
    match head.known_connection() {
        Some(known::ConnectionValue::KeepAlive) => true,
        Some(known::ConnectionValue::Close) => false,
        None => is_keepalive(head.head_version(), head.head_headers()),
    }
}

/// Whether the request asks to switch protocols (HTTP/1.1 with `Upgrade`).
pub fn is_upgrade_req(req: &RequestHeader) -> bool {
    req.version == Version::HTTP_11 && req.has(known::UPGRADE)
}

/// Whether the response accepts a protocol switch.
pub fn is_upgrade_resp(resp: &ResponseHeader) -> bool {
    resp.status == 101 && resp.has(known::UPGRADE)
}

/// Whether the request sends `Expect: 100-continue` (HTTP/1.1 only).
pub fn is_expect_continue_req(req: &RequestHeader) -> bool {
    req.version == Version::HTTP_11
        && req.has(known::EXPECT)
        && req.headers.get(header::EXPECT).is_some_and(|v| {
            v.as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue")
        })
}

/// The `Content-Length` of a message: `Ok(None)` when absent, an error when
/// any value is not a plain decimal number or values disagree (repeated
/// fields or comma lists of one identical value are accepted, per RFC 9110).
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut found: Option<u64> = None;
    let mut agree = |n: u64| match found {
        Some(prev) if prev != n => Err("conflicting Content-Length values"),
        _ => {
            found = Some(n);
            Ok(())
        }
    };
    for value in headers.get_all(header::CONTENT_LENGTH) {
        // the usual plain number needs no splitting or trimming
        if let Some(n) = parse_decimal(value.as_bytes()) {
            agree(n)?;
            continue;
        }
        for part in value.as_bytes().split(|b| *b == b',') {
            agree(parse_decimal(part.trim_ascii()).ok_or("invalid Content-Length")?)?;
        }
    }
    Ok(found)
}

/// A plain decimal number of at most 18 digits (no sign, no spaces).
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    // 18 digits always fit in u64; larger bodies are not credible anyway
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n = 0u64;
    for d in digits {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(n)
}

/// How the transfer codings of a message end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferCoding {
    /// No `Transfer-Encoding`.
    Absent,
    /// Exactly one coding, `chunked`.
    ChunkedOnly,
    /// Other codings first, `chunked` last (e.g. `gzip, chunked`).
    ChunkedFinal,
    /// `chunked` is not (only once, and) last: framing is ambiguous.
    Other,
}

/// Classify the `Transfer-Encoding` fields of a message.
pub fn transfer_coding(headers: &HeaderMap) -> TransferCoding {
    // one lookup: most messages have no Transfer-Encoding at all
    let fields = headers.get_all(header::TRANSFER_ENCODING);
    let mut fields = fields.iter().peekable();
    if fields.peek().is_none() {
        return TransferCoding::Absent;
    }
    let mut count = 0usize;
    let mut chunked_at = None;
    let mut chunked_seen = 0usize;
    for value in fields {
        for coding in value.as_bytes().split(|b| *b == b',') {
            let coding = coding.trim_ascii();
            if coding.is_empty() {
                continue;
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                chunked_at = Some(count);
                chunked_seen += 1;
            }
            count += 1;
        }
    }
    match (count, chunked_at) {
        (1, Some(0)) => TransferCoding::ChunkedOnly,
        (n, Some(i)) if i + 1 == n && chunked_seen == 1 => TransferCoding::ChunkedFinal,
        // no coding at all (empty values) is as ambiguous as an unknown one
        _ => TransferCoding::Other,
    }
}

/// The status an error from an HTTP/1 session should be answered with:
/// 414 / 431 for limits, 408 for timeouts, 400 for other malformed input.
pub fn error_status(e: &Error) -> u16 {
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ReadTimedout => 408,
        _ => 400,
    }
}

/// Whether the value is `chunked` (for callers inspecting a single field).
pub fn is_chunked_value(value: Option<&HeaderValue>) -> bool {
    value.is_some_and(|v| v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Snapshot the facts (TLS, timing, proxy, socket) of a connection a
/// session starts on.
pub(crate) fn stream_digest(stream: &Stream) -> Box<Digest> {
    Box::new(Digest {
        ssl_digest: stream.get_ssl_digest(),
        timing_digest: stream.get_timing_digest(),
        proxy_digest: stream.get_proxy_digest(),
        socket_digest: stream.get_socket_digest(),
    })
}

/// Run `fut` with an optional time limit; on expiry fail with `etype`.
///
/// Every read and write of a session goes through here, so it uses the coarse shared-tick
/// timeout of `pingora-timeout` (no timer at all when `fut` is ready at once; up to 10 ms
/// late, never early), not a precise tokio timer per operation.
pub(crate) async fn with_timeout<T>(
    limit: Option<Duration>,
    etype: ErrorType,
    what: &'static str,
    fut: impl std::future::Future<Output = pingora_error::Result<T>>,
) -> pingora_error::Result<T> {
    match limit {
        Some(t) => match pingora_timeout::timeout(t, fut).await {
            Ok(res) => res,
            Err(_) => Error::e_explain(etype, format!("{what}, timeout: {t:?}")),
        },
        None => fut.await,
    }
}

/// Write `data` (then flush, if `flush`) within `limit`: `WriteError` on
/// failure, `WriteTimedout` on expiry, both explained by `what`.
pub(crate) async fn write_within<S: AsyncWrite + Unpin + ?Sized>(
    stream: &mut S,
    data: &[u8],
    flush: bool,
    limit: Option<Duration>,
    what: &'static str,
) -> Result<()> {
    let send = async {
        stream.write_all(data).await.or_err(WriteError, what)?;
        if flush {
            stream.flush().await.or_err(WriteError, what)?;
        }
        Ok(())
    };
    with_timeout(limit, WriteTimedout, what, send).await
}

/// End `writer`'s body after `head` (see [`BodyWriter::finish_with_trailers`])
/// and flush, within `limit`.
pub(crate) async fn finish_within<S: AsyncWrite + Unpin + ?Sized>(
    writer: &mut BodyWriter,
    stream: &mut S,
    head: &[u8],
    trailers: Option<&HeaderMap>,
    limit: Option<Duration>,
    what: &'static str,
) -> Result<Option<usize>> {
    let finish = async {
        let res = writer.finish_with_trailers(stream, head, trailers).await?;
        stream.flush().await.or_err(WriteError, what)?;
        Ok(res)
    };
    with_timeout(limit, WriteTimedout, what, finish).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn keepalive_rules() {
        assert!(is_keepalive(Version::HTTP_11, &map(&[])));
        assert!(!is_keepalive(Version::HTTP_10, &map(&[])));
        assert!(is_keepalive(
            Version::HTTP_10,
            &map(&[("connection", "Keep-Alive")])
        ));
        let m = map(&[("connection", "keep-alive, Close")]);
        assert!(!is_keepalive(Version::HTTP_11, &m));
        assert!(header_has_token(&m, header::CONNECTION, b"close"));
    }

    #[test]
    fn content_length_rules() {
        assert_eq!(content_length(&map(&[])), Ok(None));
        assert_eq!(
            content_length(&map(&[("content-length", "42")])),
            Ok(Some(42))
        );
        let dup = map(&[("content-length", "5"), ("content-length", "5, 5")]);
        assert_eq!(content_length(&dup), Ok(Some(5)));
        for bad in [
            "5, 6",
            "-1",
            "+5",
            "0x10",
            "",
            " ",
            "1 2",
            "9999999999999999999",
        ] {
            let m = map(&[("content-length", bad)]);
            assert!(content_length(&m).is_err(), "{bad:?} accepted");
        }
        let two = map(&[("content-length", "5"), ("content-length", "6")]);
        assert!(content_length(&two).is_err());
    }

    #[test]
    fn transfer_coding_rules() {
        use TransferCoding::*;
        assert_eq!(transfer_coding(&map(&[])), Absent);
        assert_eq!(
            transfer_coding(&map(&[("transfer-encoding", "Chunked")])),
            ChunkedOnly
        );
        let gz = map(&[
            ("transfer-encoding", "gzip"),
            ("transfer-encoding", "chunked"),
        ]);
        assert_eq!(transfer_coding(&gz), ChunkedFinal);
        for bad in [
            "chunked, gzip",
            "chunked, chunked",
            "identity",
            "xchunked",
            "",
        ] {
            let m = map(&[("transfer-encoding", bad)]);
            assert_eq!(transfer_coding(&m), Other, "{bad:?}");
        }
    }

    #[test]
    fn error_status_mapping() {
        assert_eq!(error_status(&Error::new(ErrorType::HTTPStatus(431))), 431);
        assert_eq!(error_status(&Error::new(ErrorType::InvalidHTTPHeader)), 400);
        assert_eq!(error_status(&Error::new(ErrorType::ReadTimedout)), 408);
    }
}
