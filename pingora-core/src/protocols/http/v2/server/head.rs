//! Message heads between HPACK fields and our header types, with the rules
//! RFC 9113 §8.2-8.3 sets for a request to be well formed.

use super::super::conn::{Field, SendError, ServerConn};
use super::super::hpack::DecodedField;
use super::super::is_connection_specific;
use crate::protocols::http::v1::common::parse_decimal;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Method, Version};
use pingora_http::{known, RequestHeader, ResponseHeader};

/// Why a request head was refused (the stream is reset with PROTOCOL_ERROR).
pub(crate) type Malformed = &'static str;

/// A request received on stream, as [`RequestHeader`] plus what the
/// connection needs to police the body.
pub(crate) struct Request {
    pub header: RequestHeader,
    /// The `content-length` the body must match, if one was sent.
    pub content_length: Option<u64>,
}

/// Build a request head from its decoded fields. `last_host` keeps the
/// `Host` value made for the previous request of the connection, which the
/// next one with the same `:authority` shares (no copy, no allocation when
/// the proxy clones the head).
pub(crate) fn request_from_fields(
    fields: Vec<DecodedField>,
    end_stream: bool,
    last_host: &mut Option<HeaderValue>,
) -> Result<Request, Malformed> {
    let mut method = None;
    let mut scheme = None;
    let mut authority = None;
    let mut path = None;
    let mut protocol = None;
    let mut headers = HeaderMap::with_capacity(fields.len());
    let mut regular_seen = false;
    let mut content_length = None;
    for f in fields {
        if let Some(pseudo) = f.name.strip_prefix(b":") {
            if regular_seen {
                return Err("pseudo-header after a regular one");
            }
            let slot = match pseudo {
                b"method" => &mut method,
                b"scheme" => &mut scheme,
                b"authority" => &mut authority,
                b"path" => &mut path,
                b"protocol" => &mut protocol,
                _ => return Err("unknown pseudo-header"),
            };
            if slot.replace(f.value).is_some() {
                return Err("pseudo-header repeated");
            }
            continue;
        }
        regular_seen = true;
        if f.name.iter().any(u8::is_ascii_uppercase) {
            return Err("upper-case header name");
        }
        let name = HeaderName::from_bytes(&f.name).map_err(|_| "invalid header name")?;
        if is_connection_specific(&name, &f.value) {
            return Err("connection-specific header");
        }
        let mut value =
            HeaderValue::from_maybe_shared(f.value).map_err(|_| "invalid header value")?;
        if name == header::CONTENT_LENGTH {
            let len = parse_decimal(value.as_bytes()).ok_or("invalid content-length")?;
            if content_length.is_some_and(|l| l != len) {
                return Err("conflicting content-length");
            }
            content_length = Some(len);
        }
        value.set_sensitive(f.never_indexed);
        headers.append(name, value);
    }
    let method = method.ok_or("no :method")?;
    let method = Method::from_bytes(&method).map_err(|_| "invalid :method")?;
    let mut uri = http::uri::Parts::default();
    if let Some(a) = &authority {
        uri.authority =
            Some(Authority::from_maybe_shared(a.clone()).map_err(|_| "invalid :authority")?);
    }
    let connect = method == Method::CONNECT;
    if connect && protocol.is_none() {
        // a tunnel to :authority, nothing else (RFC 9113 §8.5)
        if scheme.is_some() || path.is_some() || authority.is_none() {
            return Err("malformed CONNECT");
        }
    } else {
        if protocol.is_some() && !connect {
            return Err(":protocol outside CONNECT");
        }
        let scheme = scheme.ok_or("no :scheme")?;
        let path = path.ok_or("no :path")?;
        if path.is_empty() {
            return Err("empty :path");
        }
        uri.scheme = Some(match &scheme[..] {
            b"http" => Scheme::HTTP,
            b"https" => Scheme::HTTPS,
            other => std::str::from_utf8(other)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("invalid :scheme")?,
        });
        uri.path_and_query =
            Some(PathAndQuery::from_maybe_shared(path).map_err(|_| "invalid :path")?);
        if uri.authority.is_none() {
            // `Uri` wants an authority with a scheme: an origin-form target
            uri.scheme = None;
        }
    }
    let uri = Uri::from_parts(uri).map_err(|_| "invalid request target")?;
    if let Some(a) = &authority {
        match headers.get(header::HOST) {
            // two names for the target that disagree: a request one hop
            // could route by one and the next by the other (RFC 9113 §8.3.1)
            Some(host) if !host.as_bytes().eq_ignore_ascii_case(a) => {
                return Err("host differs from :authority")
            }
            Some(_) => {}
            // code written for HTTP/1 looks for `Host`: mirror `:authority` there
            None => {
                if let Some(host) = host_value(a, last_host) {
                    let _ = headers.try_insert(header::HOST, host);
                }
            }
        }
    }
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = Version::HTTP_2;
    parts.headers = headers;
    if let Some(p) = protocol {
        let p = std::str::from_utf8(&p).map_err(|_| "invalid :protocol")?;
        parts.extensions.insert(h2::ext::Protocol::from(p));
    }
    let mut header: RequestHeader = parts.into();
    header.set_send_end_stream(end_stream);
    Ok(Request {
        header,
        content_length,
    })
}

/// The `Host` value for `authority`: the one in `last` when it is the same,
/// else a new one, kept in `last` for the next request.
pub(crate) fn host_value(authority: &[u8], last: &mut Option<HeaderValue>) -> Option<HeaderValue> {
    if let Some(v) = last.as_ref().filter(|v| v.as_bytes() == authority) {
        return Some(v.clone());
    }
    let v = HeaderValue::from_maybe_shared(Bytes::copy_from_slice(authority)).ok()?;
    *last = Some(v.clone());
    Some(v)
}

/// Send a response head (interim, final) on `stream_id`: `:status`, then
/// the headers HTTP/2 may carry.
pub(crate) fn send_response_head(
    conn: &mut ServerConn,
    stream_id: u32,
    head: &ResponseHeader,
    end: bool,
) -> Result<(), SendError> {
    // every name that may have to go is one of these or named by a
    // `Connection` header, which is one of these: usually none is there
    const FORBIDDEN: u16 = known::HOP_BY_HOP | known::TRANSFER_ENCODING;
    if head.known_headers() & FORBIDDEN == 0 {
        let fields = response_fields(head.status.as_str(), &head.headers);
        return conn.send_headers(stream_id, fields, end);
    }
    let mut headers = head.headers.clone();
    super::super::strip_connection_headers(&mut headers);
    conn.send_headers(
        stream_id,
        response_fields(head.status.as_str(), &headers),
        end,
    )
}

fn response_fields<'a>(status: &'a str, headers: &'a HeaderMap) -> impl Iterator<Item = Field<'a>> {
    let status = Field {
        name: b":status",
        value: status.as_bytes(),
        sensitive: false,
    };
    std::iter::once(status).chain(header_fields(headers))
}

/// The fields of a header map (trailers, or a head's regular headers).
pub(crate) fn header_fields(map: &HeaderMap) -> impl Iterator<Item = Field<'_>> {
    map.iter().map(|(name, value)| Field {
        name: name.as_str().as_bytes(),
        value: value.as_bytes(),
        sensitive: value.is_sensitive(),
    })
}

/// Trailers from their decoded fields; pseudo-headers are refused.
pub(crate) fn trailers_from_fields(fields: Vec<DecodedField>) -> Result<HeaderMap, Malformed> {
    let mut map = HeaderMap::with_capacity(fields.len());
    for f in fields {
        if f.name.first() == Some(&b':') {
            return Err("pseudo-header in trailers");
        }
        if f.name.iter().any(u8::is_ascii_uppercase) {
            return Err("upper-case header name");
        }
        let name = HeaderName::from_bytes(&f.name).map_err(|_| "invalid header name")?;
        let value = HeaderValue::from_maybe_shared(f.value).map_err(|_| "invalid header value")?;
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, value: &str) -> DecodedField {
        DecodedField {
            name: Bytes::copy_from_slice(name.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
            never_indexed: false,
        }
    }

    fn get(extra: &[(&str, &str)]) -> Vec<DecodedField> {
        let mut f = vec![
            field(":method", "GET"),
            field(":scheme", "https"),
            field(":authority", "a.test"),
            field(":path", "/x?y=1"),
        ];
        f.extend(extra.iter().map(|(n, v)| field(n, v)));
        f
    }

    #[test]
    fn request_head_with_host_mirrored() {
        let mut last = None;
        let req = request_from_fields(get(&[("x-a", "1")]), true, &mut last).expect("valid");
        let h = &req.header;
        assert_eq!(h.method, Method::GET);
        assert_eq!(h.uri.path(), "/x");
        assert_eq!(h.uri.query(), Some("y=1"));
        assert_eq!(h.uri.authority().map(|a| a.as_str()), Some("a.test"));
        assert_eq!(h.headers.get("host").expect("host"), "a.test");
        assert_eq!(h.headers.get("x-a").expect("x-a"), "1");
        assert_eq!(h.version, Version::HTTP_2);
        assert_eq!(h.send_end_stream(), Some(true));
        // the next request of the connection shares the value
        let again = request_from_fields(get(&[]), false, &mut last).expect("valid");
        assert_eq!(
            again.header.headers["host"].as_bytes().as_ptr(),
            h.headers["host"].as_bytes().as_ptr()
        );
    }

    #[test]
    fn malformed_requests_refused() {
        let mut last = None;
        let cases: Vec<(Vec<DecodedField>, &str)> = vec![
            (get(&[("X-Up", "1")]), "upper-case header name"),
            (
                get(&[("connection", "close")]),
                "connection-specific header",
            ),
            (get(&[("te", "gzip")]), "connection-specific header"),
            (get(&[("host", "b.test")]), "host differs from :authority"),
            (
                get(&[("content-length", "1"), ("content-length", "2")]),
                "conflicting content-length",
            ),
            (get(&[("content-length", "-1")]), "invalid content-length"),
            (
                vec![field(":method", "GET"), field(":path", "/")],
                "no :scheme",
            ),
            (
                vec![field(":scheme", "http"), field(":path", "/")],
                "no :method",
            ),
            (
                {
                    let mut f = get(&[("x", "1")]);
                    f.push(field(":path", "/"));
                    f
                },
                "pseudo-header after a regular one",
            ),
            (
                {
                    let mut f = get(&[]);
                    f.push(field(":path", "/"));
                    f
                },
                "pseudo-header repeated",
            ),
            (
                get(&[]).into_iter().chain([field(":x", "1")]).collect(),
                "unknown pseudo-header",
            ),
            (
                vec![
                    field(":method", "CONNECT"),
                    field(":authority", "a:443"),
                    field(":path", "/"),
                ],
                "malformed CONNECT",
            ),
        ];
        for (fields, why) in cases {
            assert_eq!(
                request_from_fields(fields, true, &mut last).err(),
                Some(why)
            );
        }
        let ok = get(&[
            ("te", "trailers"),
            ("content-length", "5"),
            ("host", "A.test"),
        ]);
        let req = request_from_fields(ok, false, &mut last).expect("valid");
        assert_eq!(req.content_length, Some(5));
    }

    #[test]
    fn connect_and_extended_connect() {
        let mut last = None;
        let tunnel = vec![
            field(":method", "CONNECT"),
            field(":authority", "a.test:443"),
        ];
        let req = request_from_fields(tunnel, false, &mut last).expect("CONNECT");
        assert_eq!(
            req.header.uri.authority().map(|a| a.as_str()),
            Some("a.test:443")
        );
        let mut ws = get(&[]);
        ws[0] = field(":method", "CONNECT");
        ws.push(field(":protocol", "websocket"));
        let req = request_from_fields(ws, false, &mut last).expect("extended CONNECT");
        let p = req
            .header
            .extensions
            .get::<h2::ext::Protocol>()
            .expect(":protocol");
        assert_eq!(p.as_str(), "websocket");
    }

    #[test]
    fn response_fields_drop_connection_headers() {
        let mut resp = ResponseHeader::build(200, None).expect("head");
        resp.insert_header("content-type", "text/plain")
            .expect("hdr");
        resp.insert_header("connection", "x-hop").expect("hdr");
        resp.insert_header("x-hop", "1").expect("hdr");
        let mut headers = resp.headers.clone();
        super::super::super::strip_connection_headers(&mut headers);
        let names: Vec<_> = response_fields(resp.status.as_str(), &headers)
            .map(|f| {
                (
                    String::from_utf8_lossy(f.name).into_owned(),
                    f.value.to_vec(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                (":status".to_string(), b"200".to_vec()),
                ("content-type".to_string(), b"text/plain".to_vec())
            ]
        );
    }
}
