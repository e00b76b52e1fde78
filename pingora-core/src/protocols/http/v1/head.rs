//! Parsing and writing of HTTP/1 message heads (start line + header fields).
//!
//! Parsing is done by `httparse` plus stricter checks of our own: any LF not
//! preceded by CR is rejected (httparse tolerates bare LF line endings, which
//! other parsers may split differently), limits map to 414 / 431, and header
//! fields are sliced out of the received buffer without copying.

use super::common::{MAX_HEADERS, MAX_HEADER_SIZE, MAX_URI_LEN};
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Version};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use std::mem::MaybeUninit;

/// A parsed head and the raw bytes it was parsed from.
pub(super) type Parsed<T> = Option<(Box<T>, Bytes)>;

#[cold]
#[inline(never)]
fn fail<T>(status: u16, msg: impl Into<String>) -> Result<T> {
    let etype = match status {
        400 => ErrorType::InvalidHTTPHeader,
        code => ErrorType::HTTPStatus(code),
    };
    Error::e_explain(etype, msg.into())
}

/// Offsets of one header field inside the head buffer.
#[derive(Clone, Copy)]
struct FieldRef {
    name: (usize, usize),
    value: (usize, usize),
}

/// Where `part` (a slice httparse returned, always inside `base`) starts.
fn offset_of(base: &[u8], part: &[u8]) -> (usize, usize) {
    let start = (part.as_ptr() as usize).saturating_sub(base.as_ptr() as usize);
    (start.min(base.len()), part.len())
}

/// What one pass over an accepted head found.
struct HeadScan {
    /// An LF not preceded by CR.
    bare_lf: bool,
    /// Only ASCII bytes.
    ascii: bool,
}

/// Scan a head that httparse accepted.
///
/// httparse only lets a CR through as the first half of a CRLF line end (CR
/// is invalid in every token, target, value and reason phrase), so in an
/// accepted head the number of CRs equals the number of CRLFs, and a bare LF
/// shows as more LFs than CRs. One pass without early exit: it vectorizes.
fn scan_head(head: &[u8]) -> HeadScan {
    let (mut cr, mut lf, mut high) = (0usize, 0usize, 0u8);
    // byte-wide counters per chunk keep 16+ lanes per vector register
    for chunk in head.chunks(128) {
        let (mut c, mut l) = (0u8, 0u8);
        for b in chunk {
            c += u8::from(*b == b'\r');
            l += u8::from(*b == b'\n');
            high |= *b;
        }
        cr += usize::from(c);
        lf += usize::from(l);
    }
    HeadScan {
        bare_lf: cr != lf,
        ascii: high < 0x80,
    }
}

/// Checks on an incomplete head: too big, or a request line that can only
/// be over-long.
fn check_partial(buf: &[u8], request: bool) -> Result<()> {
    if request && buf.len() > MAX_URI_LEN + 64 && !buf.contains(&b'\n') {
        return fail(414, "request line too long");
    }
    if buf.len() >= MAX_HEADER_SIZE {
        return fail(431, format!("header larger than {MAX_HEADER_SIZE} bytes"));
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn map_httparse_error(e: httparse::Error) -> Result<()> {
    match e {
        httparse::Error::TooManyHeaders => fail(431, format!("more than {MAX_HEADERS} headers")),
        e => fail(400, format!("malformed head: {e}")),
    }
}

/// Header slots for httparse. Left uninitialized: zeroing 128 slots (4 KiB)
/// for every message head cost more than parsing a typical head.
type HeaderSlots<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Field offsets, on the stack; only the first `n` (see [`collect_fields`])
/// are initialized. Declared in place by the parsers (not returned from a
/// constructor) so that the 4 KiB array is never copied.
type FieldRefs = [MaybeUninit<FieldRef>; MAX_HEADERS];

/// Record where each of `headers` (slices of `base`) lies; returns how many.
fn collect_fields(base: &[u8], headers: &[httparse::Header<'_>], refs: &mut FieldRefs) -> usize {
    // httparse never returns more headers than slots it was given
    for (r, h) in refs.iter_mut().zip(headers) {
        r.write(FieldRef {
            name: offset_of(base, h.name.as_bytes()),
            value: offset_of(base, h.value),
        });
    }
    headers.len().min(MAX_HEADERS)
}

/// The first `n` entries of `refs`, as written by [`collect_fields`].
fn fields(refs: &FieldRefs, n: usize) -> impl Iterator<Item = &FieldRef> {
    refs[..n].iter().map(|r| {
        // SAFETY: `collect_fields` initialized every slot below the `n` it returned
        unsafe { r.assume_init_ref() }
    })
}

fn slice(head: &Bytes, (start, len): (usize, usize)) -> Bytes {
    head.slice(start..start + len)
}

/// Parse a request head from the front of `buf`. `Ok(None)`: incomplete,
/// read more. On success the head bytes are split off `buf` (what stays is
/// body or a pipelined request). Errors carry `InvalidHTTPHeader` (400) or
/// `HTTPStatus(414 | 431)`.
// Out of line (the async read loops that call it are large): its code stays in one place
// instead of being spread through their state machines.
#[inline(never)]
pub(super) fn parse_request(buf: &mut BytesMut) -> Result<Parsed<RequestHeader>> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut slots: HeaderSlots<'_> = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut refs: FieldRefs = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = req.parse_with_uninit_headers(buf, &mut slots);
    let (len, n_fields, method, path, version) = match parsed {
        Ok(httparse::Status::Partial) => return check_partial(buf, true).map(|_| None),
        Err(e) => return map_httparse_error(e).map(|_| None),
        Ok(httparse::Status::Complete(len)) => {
            let (Some(m), Some(p)) = (req.method, req.path) else {
                return fail(400, "incomplete request line");
            };
            let n = collect_fields(buf, req.headers, &mut refs);
            let (path, method) = (offset_of(buf, p.as_bytes()), offset_of(buf, m.as_bytes()));
            (len, n, method, path, req.version.unwrap_or(1))
        }
    };
    if len > MAX_HEADER_SIZE {
        return fail(431, format!("header larger than {MAX_HEADER_SIZE} bytes"));
    }
    if path.1 > MAX_URI_LEN {
        return fail(
            414,
            format!("request target longer than {MAX_URI_LEN} bytes"),
        );
    }
    let scan = scan_head(&buf[..len]);
    if scan.bare_lf {
        return fail(400, "bare LF in request head");
    }
    let head = buf.split_to(len).freeze();
    // a token (httparse checked), so `Method` can take the bytes without a UTF-8 check
    let method = &head[method.0..method.0 + method.1];
    let mut req = Box::new(RequestHeader::build_shared(
        method,
        &slice(&head, path),
        Some(n_fields),
    )?);
    req.set_version(if version == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    });
    if scan.ascii {
        req.append_parsed_fields(&head, ascii_fields(&head, &refs, n_fields))?;
    } else {
        for r in fields(&refs, n_fields) {
            add_field(&head, r, |n, v| req.append_header(n, v).map(|_| ()))?;
        }
    }
    Ok(Some((req, head)))
}

/// The fields of an all-ASCII head as (where the name is in `head`, value as a slice of
/// `head`).
fn ascii_fields<'a>(
    head: &'a Bytes,
    refs: &'a FieldRefs,
    n: usize,
) -> impl Iterator<Item = (std::ops::Range<usize>, HeaderValue)> + 'a {
    fields(refs, n).map(move |r| {
        // SAFETY: the head is ASCII, which is valid UTF-8 (the requirement of the unchecked
        // constructor), and httparse already refused every byte a header value may not hold
        // (controls other than HTAB, DEL)
        let value = unsafe { HeaderValue::from_maybe_shared_unchecked(slice(head, r.value)) };
        (r.name.0..r.name.0 + r.name.1, value)
    })
}

fn add_field(
    head: &Bytes,
    r: &FieldRef,
    mut append: impl FnMut(Bytes, HeaderValue) -> Result<()>,
) -> Result<()> {
    let value = HeaderValue::from_maybe_shared(slice(head, r.value))
        .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "invalid header value"))?;
    append(slice(head, r.name), value)
}

/// Parse a response head from the front of `buf` (see [`parse_request`]).
#[inline(never)]
pub(super) fn parse_response(buf: &mut BytesMut) -> Result<Parsed<ResponseHeader>> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut slots: HeaderSlots<'_> = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut refs: FieldRefs = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let (len, n_fields, code, reason, version) = match parsed {
        Ok(httparse::Status::Partial) => return check_partial(buf, false).map(|_| None),
        Err(e) => return map_httparse_error(e).map(|_| None),
        Ok(httparse::Status::Complete(len)) => {
            let n = collect_fields(buf, resp.headers, &mut refs);
            let reason = resp.reason.map(|r| offset_of(buf, r.as_bytes()));
            (
                len,
                n,
                resp.code.unwrap_or(0),
                reason,
                resp.version.unwrap_or(1),
            )
        }
    };
    if len > MAX_HEADER_SIZE {
        return fail(431, format!("header larger than {MAX_HEADER_SIZE} bytes"));
    }
    let scan = scan_head(&buf[..len]);
    if scan.bare_lf {
        return fail(400, "bare LF in response head");
    }
    let head = buf.split_to(len).freeze();
    let mut resp = Box::new(ResponseHeader::build(code, Some(n_fields))?);
    resp.set_version(if version == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    });
    if let Some((start, l)) = reason {
        let r = &head[start..start + l];
        // the usual canonical phrase ("OK") is what an unset phrase means anyway
        let canonical = resp.status.canonical_reason().map(str::as_bytes);
        if !r.is_empty() && Some(r) != canonical {
            if let Ok(r) = std::str::from_utf8(r) {
                resp.set_reason_phrase(Some(r))?;
            }
        }
    }
    if scan.ascii {
        resp.append_parsed_fields(&head, ascii_fields(&head, &refs, n_fields))?;
    } else {
        for r in fields(&refs, n_fields) {
            add_field(&head, r, |n, v| resp.append_header(n, v).map(|_| ()))?;
        }
    }
    Ok(Some((resp, head)))
}

/// Serialize a response head as HTTP/1.1 into `buf`.
pub(crate) fn write_response_head(resp: &ResponseHeader, buf: &mut BytesMut) {
    buf.reserve(64 + resp.headers.len() * 32);
    // "HTTP/1.1 200 " as one copy: a status code always has three digits
    let mut start = *b"HTTP/1.1 000 ";
    match <&[u8; 3]>::try_from(resp.status.as_str().as_bytes()) {
        Ok(code) => start[9..12].copy_from_slice(code),
        Err(_) => start[9..12].copy_from_slice(b"500"),
    }
    buf.put_slice(&start);
    if let Some(reason) = resp.get_reason_phrase() {
        buf.put_slice(reason.as_bytes());
    }
    buf.put_slice(b"\r\n");
    resp.header_to_h1_wire(buf);
    buf.put_slice(b"\r\n");
}

/// Serialize a request head into `buf`. Fails when the target holds bytes
/// that would split the request line.
pub(crate) fn write_request_head(req: &RequestHeader, buf: &mut BytesMut) -> Result<()> {
    let path = req.raw_path();
    if path.is_empty() || path.iter().any(|b| matches!(b, b' ' | b'\r' | b'\n' | 0)) {
        return fail(400, "request target cannot be sent over HTTP/1");
    }
    buf.reserve(64 + path.len() + req.headers.len() * 32);
    buf.put_slice(req.method.as_str().as_bytes());
    buf.put_u8(b' ');
    buf.put_slice(path);
    buf.put_slice(if req.version == Version::HTTP_10 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    req.header_to_h1_wire(buf);
    buf.put_slice(b"\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_bare_lf_and_non_ascii() {
        assert!(!scan_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").bare_lf);
        assert!(scan_head(b"GET / HTTP/1.1\nHost: a\r\n\r\n").bare_lf);
        assert!(scan_head(b"\nGET / HTTP/1.1\r\n\r\n").bare_lf);
        assert!(scan_head(b"GET / HTTP/1.1\r\nHost: a\r\n\n").bare_lf);
        assert!(scan_head(b"GET / HTTP/1.1\r\n\r\n").ascii);
        assert!(!scan_head(b"GET / HTTP/1.1\r\nX: \xe9\r\n\r\n").ascii);
        // longer than one 128-byte counting chunk, LF near the end
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 300));
        long.extend_from_slice(b"\r\nY: b\n\r\n");
        assert!(scan_head(&long).bare_lf);
    }

    #[test]
    fn parse_request_values_ascii_and_obs_text() {
        let mut buf =
            BytesMut::from(&b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: caf\xc3\xa9\r\n\r\nrest"[..]);
        let (req, raw) = parse_request(&mut buf).expect("valid").expect("complete");
        assert_eq!(&buf[..], b"rest");
        assert_eq!(raw.len(), 40);
        assert_eq!(req.headers["host"], "h");
        assert_eq!(req.headers["x-a"].as_bytes(), b"caf\xc3\xa9");
        let mut empty = BytesMut::new();
        assert!(parse_request(&mut empty).expect("no error").is_none());
        let mut bad = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: h\n\r\n"[..]);
        assert!(parse_request(&mut bad).is_err());
    }

    #[test]
    fn parse_response_with_many_fields() {
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..100 {
            head.extend_from_slice(format!("x-{i}: {i}\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let mut buf = BytesMut::from(&head[..]);
        let (resp, _) = parse_response(&mut buf).expect("valid").expect("complete");
        assert_eq!(resp.headers.len(), 100);
        assert_eq!(resp.headers["x-99"], "99");
    }
}
