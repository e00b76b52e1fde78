//! Pieces shared by the proxy phases: error-to-status mapping, hop-by-hop header handling and
//! turning the request body read from the client into tasks for the upstream.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use pingora_core::protocols::http::HttpTask;
use pingora_error::{Error, ErrorSource, ErrorType};
use pingora_http::{known, RequestHeader, ResponseHeader};

/// The HTTP status a failed request should be answered with, or 0 when the client connection
/// is beyond answering (it broke, or it is the one that failed to read).
pub(crate) fn error_status(e: &Error) -> u16 {
    if let Some(code) = e.etype().http_status() {
        return code;
    }
    match e.esource() {
        ErrorSource::Upstream => match e.etype() {
            ErrorType::ConnectTimedout
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout
            | ErrorType::TLSHandshakeTimedout => 504,
            _ => 502,
        },
        ErrorSource::Downstream => match e.etype() {
            ErrorType::ReadError
            | ErrorType::WriteError
            | ErrorType::WriteTimedout
            | ErrorType::ConnectionClosed => 0,
            ErrorType::ReadTimedout => 408,
            _ => 400,
        },
        ErrorSource::Internal | ErrorSource::Unset => 500,
    }
}

/// Headers that describe one hop only and never travel through a proxy. `Connection` must
/// stay first: [`hop_by_hop_present`] relies on it.
static HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::UPGRADE,
];

/// The position in [`HOP_BY_HOP`] of the header named `name` (any case), if it is one. Runs
/// for every header of every message, so it dispatches on the length before comparing.
fn hop_by_hop_index(name: &[u8]) -> Option<usize> {
    let is = |h: &str| name.eq_ignore_ascii_case(h.as_bytes());
    match name.len() {
        10 if is("connection") => Some(0),
        10 if is("keep-alive") => Some(1),
        16 if is("proxy-connection") => Some(2),
        2 if is("te") => Some(3),
        7 if is("upgrade") => Some(4),
        _ => None,
    }
}

/// Headers a `Connection` option must not be able to remove: they frame or route the message.
fn is_protected(name: &HeaderName) -> bool {
    name == header::TRANSFER_ENCODING || name == header::CONTENT_LENGTH || name == header::HOST
}

/// Extra header names listed as options of the `Connection` header(s) of `headers` that
/// `headers` holds (the others have nothing to remove).
fn connection_options(headers: &http::HeaderMap) -> Vec<HeaderName> {
    let mut names = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        // the usual single token (`keep-alive`, `upgrade`) names nothing else: no splitting
        let value = value.as_bytes();
        if hop_by_hop_index(value).is_some() || value.eq_ignore_ascii_case(b"close") {
            continue;
        }
        for token in value.split(|b| *b == b',') {
            let token = token.trim_ascii();
            // The usual tokens (`keep-alive`, `upgrade`, `close`) end here without building a
            // name: a lookup by `&str` does not allocate, `HeaderName::from_bytes` may.
            if token.is_empty() || hop_by_hop_index(token).is_some() {
                continue;
            }
            let Ok(token) = std::str::from_utf8(token) else {
                continue;
            };
            if !headers.contains_key(token) {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                if !is_protected(&name) {
                    names.push(name);
                }
            }
        }
    }
    names
}

/// The [`known`] bit of each [`HOP_BY_HOP`] entry, in the same order.
const HOP_BY_HOP_BITS: [u16; 5] = [
    known::CONNECTION,
    known::KEEP_ALIVE,
    known::PROXY_CONNECTION,
    known::TE,
    known::UPGRADE,
];

/// Which hop-by-hop headers a message holds, from its [`known`] bits (no lookup, no pass over
/// the names): a bit per [`HOP_BY_HOP`] entry present, and the extra names listed as
/// `Connection` options (parsed only when there is a `Connection` header; empty, without
/// allocating, when it only holds standard tokens such as `keep-alive`).
fn hop_by_hop_present(
    present: u16,
    single_token: bool,
    headers: &http::HeaderMap,
) -> (u8, Vec<HeaderName>) {
    let mut fixed = 0u8;
    for (i, bit) in HOP_BY_HOP_BITS.iter().enumerate() {
        if present & bit != 0 {
            fixed |= 1 << i;
        }
    }
    // a `Connection` of one usual token (`keep-alive`, `close`) names no other header
    let options = if fixed & 1 != 0 && !single_token {
        connection_options(headers)
    } else {
        Vec::new()
    };
    (fixed, options)
}

/// Whether a `Transfer-Encoding` value ends with the `chunked` coding.
fn ends_chunked(value: &HeaderValue) -> bool {
    value
        .as_bytes()
        .rsplit(|b| *b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// The body of [`strip_request_hop_by_hop`] and [`strip_response_hop_by_hop`]: the two header
/// types have the same inherent methods but no common trait.
macro_rules! strip_hop_by_hop {
    ($msg:expr) => {{
        let msg = $msg;
        if msg.known_headers() & known::HOP_BY_HOP != 0 {
            let single_token = msg.known_connection().is_some();
            let (fixed, options) =
                hop_by_hop_present(msg.known_headers(), single_token, &msg.headers);
            for name in options {
                msg.remove_header_named(&name);
            }
            for (i, name) in HOP_BY_HOP.iter().enumerate() {
                if fixed & (1 << i) != 0 {
                    msg.remove_header_named(name);
                }
            }
        }
    }};
}

/// Remove the hop-by-hop headers of a request: the fixed list and the options its
/// `Connection` header names.
pub(crate) fn strip_request_hop_by_hop(req: &mut RequestHeader) {
    strip_hop_by_hop!(req)
}

/// Turn an HTTP/2 request into its HTTP/1.1 shape: the target in origin-form, `Host` from
/// `:authority`, and a body (HEADERS without END_STREAM) of unknown length or announcing
/// trailers sent chunked.
fn h2_to_h1_request(req: &mut RequestHeader) {
    if !req.headers.contains_key(header::HOST) {
        if let Some(authority) = req.uri.authority().map(|a| a.as_str().to_owned()) {
            let _ = req.insert_header(header::HOST, authority);
        }
    }
    if req.uri.scheme().is_some() || req.uri.authority().is_some() {
        // the parsed path is shared, not copied and parsed again
        let mut parts = http::uri::Parts::default();
        parts.path_and_query = Some(
            req.uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        );
        if let Ok(uri) = http::Uri::from_parts(parts) {
            req.set_uri(uri);
        }
    }
    // A body announcing trailers (`Trailer` header) goes chunked even with a length: only a
    // chunked HTTP/1.1 body can carry them. (Headers looked up only when a body follows.)
    let has_body = req.send_end_stream() == Some(false);
    if has_body
        && (!req.headers.contains_key(header::CONTENT_LENGTH)
            || req.headers.contains_key(header::TRAILER))
    {
        req.remove_header(&header::CONTENT_LENGTH);
        let _ = req.insert_header(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
}

/// Turn a copy of the client's request into the request to send upstream over HTTP/1.1:
/// hop-by-hop headers go, and a chunked body is re-announced as plain `chunked` (the body is
/// decoded on the way in and encoded again on the way out). HTTP/2 requests are translated
/// (`:authority` to `Host`, origin-form target, chunked body when its length is unknown).
pub(crate) fn prepare_upstream_request(req: &mut RequestHeader) {
    strip_request_hop_by_hop(req);
    if req.version == Version::HTTP_2 {
        h2_to_h1_request(req);
    }
    if req.known_headers() & known::TRANSFER_ENCODING != 0 {
        // The server session only accepts a request whose last coding is chunked, and hands us
        // the decoded payload: the upstream gets a fresh chunked body and no length.
        req.remove_header(&header::CONTENT_LENGTH);
        let _ = req.insert_header(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    req.set_version(Version::HTTP_11);
}

/// The (non-empty) trailers of the client's request (HTTP/2, or a chunked HTTP/1.1 body), once
/// its body was read to the end.
pub(crate) fn request_trailers(session: &crate::Session) -> Option<&http::HeaderMap> {
    let downstream = &session.downstream_session;
    match downstream.as_http2() {
        Some(h2) => h2.request_trailers(),
        // an HTTP/1.1 client sends them after the last chunk of a chunked body
        None => downstream.as_http1().and_then(|h1| h1.request_trailers()),
    }
    .filter(|t| !t.is_empty())
}

/// The tasks that take a piece of request body (`end`: the body is over) to the upstream: the
/// piece, then, when the body of the client's request ended with trailers, the trailers
/// (they end the body instead of the piece). On a retry the trailers are still there: the
/// session keeps them once read, so they follow the replayed body again.
pub(crate) fn request_body_tasks(
    session: &crate::Session,
    body: Option<Bytes>,
    end: bool,
) -> (Option<HttpTask>, Option<HttpTask>) {
    let trailers = end.then(|| request_trailers(session)).flatten().cloned();
    match trailers {
        None if body.is_none() && !end => (None, None),
        None => (Some(HttpTask::Body(body, end)), None),
        Some(t) => {
            let trailers = HttpTask::Trailer(Some(Box::new(t)));
            match body.filter(|b| !b.is_empty()) {
                Some(b) => (Some(HttpTask::Body(Some(b), false)), Some(trailers)),
                None => (Some(trailers), None),
            }
        }
    }
}

/// Whether a response with `status` to a `method` request may carry a body.
fn response_has_body(method: &Method, status: StatusCode) -> bool {
    !(method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// Remove the hop-by-hop headers of an upstream response (the server session writes its own
/// `Connection` header). Runs before the response filters.
pub(crate) fn strip_response_hop_by_hop(resp: &mut ResponseHeader) {
    strip_hop_by_hop!(resp)
}

/// Settle how the (filtered) response body is framed for the client: a transfer-coded body
/// ends chunked and carries no length, and a body with neither length nor coding (the upstream
/// delimited it by closing) is re-framed as chunked for HTTP/1.1 clients so their connection
/// can be kept.
pub(crate) fn frame_response_for_client(
    resp: &mut ResponseHeader,
    method: &Method,
    client_version: Version,
) {
    let has_body = response_has_body(method, resp.status);
    let present = resp.known_headers();
    let te = if present & known::TRANSFER_ENCODING != 0 {
        resp.headers.get(header::TRANSFER_ENCODING)
    } else {
        None
    };
    if let Some(te) = te {
        if has_body && !ends_chunked(te) {
            // Keep the codings and frame the result chunked.
            let mut codings = te.as_bytes().to_vec();
            codings.extend_from_slice(b", chunked");
            if let Ok(value) = HeaderValue::from_bytes(&codings) {
                let _ = resp.insert_header(header::TRANSFER_ENCODING, value);
            }
        }
        resp.remove_header(&header::CONTENT_LENGTH);
    } else if has_body && client_version == Version::HTTP_11 && present & known::CONTENT_LENGTH == 0
    {
        let _ = resp.insert_header(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_of_errors() {
        let e = Error::new(ErrorType::HTTPStatus(418));
        assert_eq!(error_status(&e), 418);
        assert_eq!(error_status(&Error::new_up(ErrorType::ConnectRefused)), 502);
        assert_eq!(
            error_status(&Error::new_up(ErrorType::ConnectTimedout)),
            504
        );
        assert_eq!(error_status(&Error::new_up(ErrorType::ReadTimedout)), 504);
        assert_eq!(
            error_status(&Error::new_down(ErrorType::ConnectionClosed)),
            0
        );
        assert_eq!(
            error_status(&Error::new_down(ErrorType::InvalidHTTPHeader)),
            400
        );
        assert_eq!(error_status(&Error::new_in(ErrorType::InternalError)), 500);
        assert_eq!(error_status(&Error::new(ErrorType::InternalError)), 500);
    }

    #[test]
    fn request_hop_by_hop_removed() {
        let mut req = RequestHeader::build("POST", b"/x", None).expect("valid request");
        req.insert_header("Host", "a.test").expect("header");
        req.insert_header("Connection", "keep-alive, X-Private, Host")
            .expect("header");
        req.insert_header("X-Private", "1").expect("header");
        req.insert_header("Keep-Alive", "timeout=5")
            .expect("header");
        req.insert_header("Proxy-Connection", "keep-alive")
            .expect("header");
        req.insert_header("TE", "trailers").expect("header");
        req.insert_header("Upgrade", "h2c").expect("header");
        req.insert_header("Transfer-Encoding", "gzip, chunked")
            .expect("header");
        req.insert_header("Content-Length", "10").expect("header");
        req.insert_header("X-Keep", "yes").expect("header");
        prepare_upstream_request(&mut req);
        for gone in [
            "connection",
            "x-private",
            "keep-alive",
            "proxy-connection",
            "te",
            "upgrade",
        ] {
            assert!(!req.headers.contains_key(gone), "{gone} must be removed");
        }
        assert!(!req.headers.contains_key("content-length"));
        assert_eq!(
            req.headers.get("transfer-encoding").map(|v| v.as_bytes()),
            Some(&b"chunked"[..])
        );
        assert_eq!(
            req.headers.get("host").map(|v| v.as_bytes()),
            Some(&b"a.test"[..])
        );
        assert!(req.headers.contains_key("x-keep"));
        assert_eq!(req.version, Version::HTTP_11);
    }

    #[test]
    fn hop_by_hop_bits_match_the_list() {
        for (name, bit) in HOP_BY_HOP.iter().zip(HOP_BY_HOP_BITS) {
            let mut resp = ResponseHeader::build(200, None).expect("response");
            resp.insert_header(name, "1").expect("header");
            assert_eq!(resp.known_headers(), bit, "{name}");
        }
    }

    #[test]
    fn hop_by_hop_index_matches_the_list() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name.as_str().as_bytes()), Some(i));
            assert_eq!(
                hop_by_hop_index(name.as_str().to_ascii_uppercase().as_bytes()),
                Some(i)
            );
        }
        for other in ["", "t", "host", "connectiox", "keep-alivee", "trailer"] {
            assert_eq!(hop_by_hop_index(other.as_bytes()), None, "{other}");
        }
    }

    #[test]
    fn response_hop_by_hop_removed_with_or_without_connection() {
        // no Connection header: the fixed names still go, the rest stays
        let mut resp = ResponseHeader::build(200, None).expect("response");
        resp.insert_header("Keep-Alive", "timeout=5")
            .expect("header");
        resp.insert_header("TE", "trailers").expect("header");
        resp.insert_header("X-Keep", "1").expect("header");
        strip_response_hop_by_hop(&mut resp);
        assert!(!resp.headers.contains_key("keep-alive"));
        assert!(!resp.headers.contains_key("te"));
        assert!(resp.headers.contains_key("x-keep"));
        let mut wire = Vec::new();
        resp.header_to_h1_wire(&mut wire);
        assert_eq!(wire, b"X-Keep: 1\r\n");

        // options in any case, spread over several Connection headers; absent ones are fine
        let mut resp = ResponseHeader::build(200, None).expect("response");
        resp.append_header("Connection", "Close, X-A")
            .expect("header");
        resp.append_header("Connection", "x-absent,, Content-Length")
            .expect("header");
        resp.insert_header("x-a", "1").expect("header");
        resp.insert_header("Content-Length", "0").expect("header");
        resp.insert_header("Upgrade", "h2c").expect("header");
        strip_response_hop_by_hop(&mut resp);
        for gone in ["connection", "x-a", "upgrade"] {
            assert!(!resp.headers.contains_key(gone), "{gone} must be removed");
        }
        assert!(resp.headers.contains_key("content-length"));
        assert_eq!(resp.headers.len(), 1);
    }

    #[test]
    fn h2_request_translated_to_h1() {
        let mut req = RequestHeader::build("POST", b"https://a.test:8443/p?q=1", None)
            .expect("valid request");
        req.set_version(Version::HTTP_2);
        req.set_send_end_stream(false);
        req.insert_header("TE", "trailers").expect("header");
        prepare_upstream_request(&mut req);
        assert_eq!(req.raw_path(), b"/p?q=1");
        assert_eq!(
            req.headers.get("host").map(|v| v.as_bytes()),
            Some(&b"a.test:8443"[..])
        );
        assert_eq!(
            req.headers.get("transfer-encoding").map(|v| v.as_bytes()),
            Some(&b"chunked"[..])
        );
        assert!(!req.headers.contains_key("te"));
        assert_eq!(req.version, Version::HTTP_11);

        // a length is kept, unless trailers are announced
        for (announced, chunked) in [(false, false), (true, true)] {
            let mut req = RequestHeader::build("POST", b"/", None).expect("valid");
            req.set_version(Version::HTTP_2);
            req.set_send_end_stream(false);
            req.insert_header("Content-Length", "3").expect("header");
            if announced {
                req.insert_header("Trailer", "x-sum").expect("header");
            }
            prepare_upstream_request(&mut req);
            assert_eq!(req.headers.contains_key("transfer-encoding"), chunked);
            assert_eq!(req.headers.contains_key("content-length"), !chunked);
        }

        // a bodiless request (END_STREAM on HEADERS) stays unframed; Host is kept
        let mut req = RequestHeader::build("GET", b"http://b.test/", None).expect("valid");
        req.set_version(Version::HTTP_2);
        req.insert_header("Host", "c.test").expect("header");
        prepare_upstream_request(&mut req);
        assert!(!req.headers.contains_key("transfer-encoding"));
        assert_eq!(
            req.headers.get("host").map(|v| v.as_bytes()),
            Some(&b"c.test"[..])
        );
        assert_eq!(req.raw_path(), b"/");
    }

    #[test]
    fn response_reframed() {
        let mut resp = ResponseHeader::build(200, None).expect("valid response");
        resp.insert_header("Connection", "close").expect("header");
        resp.insert_header("Keep-Alive", "timeout=5")
            .expect("header");
        strip_response_hop_by_hop(&mut resp);
        assert!(!resp.headers.contains_key("connection"));
        assert!(!resp.headers.contains_key("keep-alive"));
        frame_response_for_client(&mut resp, &Method::GET, Version::HTTP_11);
        assert_eq!(
            resp.headers.get("transfer-encoding").map(|v| v.as_bytes()),
            Some(&b"chunked"[..])
        );

        let mut resp = ResponseHeader::build(200, None).expect("valid response");
        resp.insert_header("Content-Length", "3").expect("header");
        frame_response_for_client(&mut resp, &Method::GET, Version::HTTP_11);
        assert!(!resp.headers.contains_key("transfer-encoding"));

        let mut resp = ResponseHeader::build(204, None).expect("valid response");
        frame_response_for_client(&mut resp, &Method::GET, Version::HTTP_11);
        assert!(!resp.headers.contains_key("transfer-encoding"));

        let mut resp = ResponseHeader::build(200, None).expect("valid response");
        frame_response_for_client(&mut resp, &Method::HEAD, Version::HTTP_11);
        assert!(!resp.headers.contains_key("transfer-encoding"));

        let mut resp = ResponseHeader::build(200, None).expect("valid response");
        frame_response_for_client(&mut resp, &Method::GET, Version::HTTP_10);
        assert!(
            !resp.headers.contains_key("transfer-encoding"),
            "no chunked for HTTP/1.0"
        );

        let mut resp = ResponseHeader::build(200, None).expect("valid response");
        resp.insert_header("Transfer-Encoding", "gzip")
            .expect("header");
        resp.insert_header("Content-Length", "9").expect("header");
        frame_response_for_client(&mut resp, &Method::GET, Version::HTTP_11);
        assert_eq!(
            resp.headers.get("transfer-encoding").map(|v| v.as_bytes()),
            Some(&b"gzip, chunked"[..])
        );
        assert!(!resp.headers.contains_key("content-length"));
    }
}
