//! Parsing of HTTP/1 request-targets (RFC 9112 section 3.2) into a [`Uri`] plus, when the
//! [`Uri`] cannot reproduce them byte for byte, the original bytes.

use bytes::Bytes;
use http::uri::{PathAndQuery, Uri};
use pingora_error::{ErrorType::InvalidHTTPHeader, OrErr, Result};
use std::fmt::Write;

/// Where the request-target that goes on the wire comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawTarget {
    /// The URI's path-and-query (or authority, for CONNECT) is the target. No copy kept.
    FromUri,
    /// Valid UTF-8 that the URI does not reproduce verbatim (absolute-form, authority-form).
    Verbatim(Box<[u8]>),
    /// Not valid UTF-8: the URI holds a percent-encoded rendering, these are the real bytes.
    NonUtf8(Box<[u8]>),
}

impl RawTarget {
    /// The stored bytes, if the target is not taken from the URI.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            RawTarget::FromUri => None,
            RawTarget::Verbatim(b) | RawTarget::NonUtf8(b) => Some(b),
        }
    }

    /// Whether the target bytes are valid UTF-8.
    pub(crate) fn is_utf8(&self) -> bool {
        !matches!(self, RawTarget::NonUtf8(_))
    }
}

/// Parse `target` as received on a request line.
///
/// * origin-form (`/p?q`), asterisk-form (`*`) and query-only targets round-trip through the
///   URI, so nothing else is stored;
/// * absolute-form (`http://h/p`) becomes a full URI (so `uri.host()` and `uri.path()` work)
///   and authority-form (`h:443`, CONNECT) an authority-only URI; the bytes are kept verbatim;
/// * non-UTF-8 bytes are percent-encoded for the URI and kept verbatim for the wire.
///
/// A fragment is never part of a request-target, so it is dropped. An empty target means
/// `/`. Anything the URI parser rejects is an `InvalidHTTPHeader` error.
pub(crate) fn parse(target: &[u8]) -> Result<(Uri, RawTarget)> {
    let target = match target.iter().position(|&b| b == b'#') {
        Some(end) => &target[..end],
        None => target,
    };
    if target.is_empty() {
        return Ok((Uri::from_static("/"), RawTarget::FromUri));
    }
    if target.is_ascii() {
        // SAFETY: ASCII is valid UTF-8. (The usual target is a short ASCII path, for which
        // this check is much cheaper than a full UTF-8 validation.)
        let text = unsafe { std::str::from_utf8_unchecked(target) };
        return parse_str(text, target);
    }
    match std::str::from_utf8(target) {
        Ok(text) => parse_str(text, target),
        Err(_) => {
            let encoded = percent_encode_non_ascii(target);
            let (uri, _) = parse_str(&encoded, encoded.as_bytes())?;
            Ok((uri, RawTarget::NonUtf8(target.into())))
        }
    }
}

/// [`parse`] for a target that is a slice of a received head: the usual origin-form target
/// becomes the URI's path-and-query without a copy (it shares the head's buffer, as the
/// header values do). Every other target takes [`parse`]; the result is the same either way.
///
/// The path-and-query parser is given the target as is: it ends the target at the first `#`
/// and accepts valid UTF-8 beyond ASCII exactly as [`parse`] does, so neither needs a scan
/// beforehand. What it refuses (bytes that are not UTF-8, invalid targets) goes to [`parse`],
/// which percent-encodes the former and reports the latter.
pub(crate) fn parse_shared(target: &Bytes) -> Result<(Uri, RawTarget)> {
    if matches!(target.first(), Some(b'/' | b'?')) {
        if let Ok(path_and_query) = PathAndQuery::from_maybe_shared(target.clone()) {
            return Ok((Uri::from(path_and_query), RawTarget::FromUri));
        }
    }
    parse(target)
}

fn parse_str(text: &str, raw: &[u8]) -> Result<(Uri, RawTarget)> {
    let origin_like = matches!(raw[0], b'/' | b'?') || raw == b"*";
    if origin_like {
        let path_and_query = PathAndQuery::try_from(text).or_err_with(InvalidHTTPHeader, || {
            format!("invalid request target {text}")
        })?;
        return Ok((Uri::from(path_and_query), RawTarget::FromUri));
    }
    let uri = Uri::try_from(text).or_err_with(InvalidHTTPHeader, || {
        format!("invalid request target {text}")
    })?;
    if uri.authority().is_none() {
        // Neither absolute- nor authority-form: nothing a request line may carry.
        return pingora_error::Error::e_explain(
            InvalidHTTPHeader,
            format!("invalid request target {text}"),
        );
    }
    Ok((uri, RawTarget::Verbatim(raw.into())))
}

/// Percent-encode every byte outside ASCII so the URI parser accepts it; all else is kept.
fn percent_encode_non_ascii(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() + raw.len() / 2);
    for &b in raw {
        if b.is_ascii() {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The bytes to put on the request line when the target is taken from `uri`.
pub(crate) fn from_uri(uri: &Uri) -> &[u8] {
    if let Some(pq) = uri.path_and_query() {
        return pq.as_str().as_bytes();
    }
    match (uri.scheme(), uri.authority()) {
        (None, Some(authority)) => authority.as_str().as_bytes(),
        _ => b"/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_form_round_trips_through_uri() {
        for t in ["/", "/a/b?c=d", "*", "/%20x", "?q=1"] {
            let (uri, raw) = parse(t.as_bytes()).unwrap();
            assert_eq!(raw, RawTarget::FromUri, "{t}");
            assert_eq!(from_uri(&uri), t.as_bytes(), "{t}");
        }
    }

    #[test]
    fn fragment_and_empty() {
        let (uri, raw) = parse(b"/a#frag").unwrap();
        assert_eq!((from_uri(&uri), raw), (&b"/a"[..], RawTarget::FromUri));
        let (uri, _) = parse(b"").unwrap();
        assert_eq!(from_uri(&uri), b"/");
    }

    #[test]
    fn absolute_and_authority_form_are_kept_verbatim() {
        let (uri, raw) = parse(b"http://example.com:8080/p?q").unwrap();
        assert_eq!(uri.host(), Some("example.com"));
        assert_eq!(uri.path(), "/p");
        assert_eq!(raw.bytes(), Some(&b"http://example.com:8080/p?q"[..]));
        let (uri, raw) = parse(b"example.com:443").unwrap();
        assert_eq!(uri.authority().map(|a| a.as_str()), Some("example.com:443"));
        assert_eq!(raw.bytes(), Some(&b"example.com:443"[..]));
    }

    #[test]
    fn non_utf8_is_encoded_for_uri_and_kept_for_wire() {
        let raw_target = b"/Hello\xF0\x90\x80World";
        let (uri, raw) = parse(raw_target).unwrap();
        assert_eq!(uri.path(), "/Hello%F0%90%80World");
        assert!(!raw.is_utf8());
        assert_eq!(raw.bytes(), Some(&raw_target[..]));
    }

    /// The copy-free path gives what [`parse`] gives, for every kind of target.
    #[test]
    fn shared_targets_parse_the_same() {
        let targets: [&[u8]; 27] = [
            b"/caf\xc3\xa9?q=\xc3\xa9",
            b"/caf\xc3\xa9#x",
            b"?#",
            b"/#",
            b"/a?b#c",
            b"/a?b#c#d",
            b"/a#\xFF",
            b"/\xc3",
            b"/",
            b"/a/b?c=d",
            b"*",
            b"/%20x",
            b"?q=1",
            b"/a#frag",
            b"",
            b"http://example.com:8080/p?q",
            b"example.com:443",
            b"/Hello\xF0\x90\x80World",
            b"a b",
            b"\x00",
            b"/\r\n",
            b"/a b",
            b"/\x7f",
            b"/{}|",
            b"http://",
            b"\xFF",
            b"/\xFF",
        ];
        for t in targets {
            let shared = parse_shared(&Bytes::copy_from_slice(t));
            match (parse(t), shared) {
                (Ok((uri, raw)), Ok((shared_uri, shared_raw))) => {
                    assert_eq!(uri, shared_uri, "{t:?}");
                    assert_eq!(raw, shared_raw, "{t:?}");
                }
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{t:?}: {:?} vs {:?}", a.is_ok(), b.is_ok()),
            }
        }
    }

    #[test]
    fn garbage_is_rejected_not_panicking() {
        for t in [&b"a b"[..], b"\x00", b"/\r\n", b"http://", b"\xFF"] {
            assert!(parse(t).is_err(), "{:?}", t);
        }
    }
}
