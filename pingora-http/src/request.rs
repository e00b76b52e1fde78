//! [`RequestHeader`]: an HTTP request head that preserves header-name case and order.

use crate::case_header_name::{IntoCaseHeaderName, ParsedName};
use crate::case_map::{self, capacity_for, CaseMap};
use crate::target::{self, RawTarget};
use crate::{CaseHeaderName, HeaderNameVariant, Method, Version};
use bytes::BufMut;
use http::header::{AsHeaderName, HeaderValue};
use http::request::Parts as ReqParts;
use http::Uri;
use pingora_error::{ErrorType::InvalidHTTPHeader, OrErr, Result};
use std::ops::Deref;

/// A request-target handed to a constructor.
enum Target<'a> {
    Borrowed(&'a [u8]),
    Shared(&'a bytes::Bytes),
}

/// An HTTP request header: method, target, version and headers.
///
/// Reads go through [`Deref`] to [`http::request::Parts`] (`req.method`, `req.uri`,
/// `req.headers`, ...). Writes go through methods so the recorded header-name spellings stay
/// in step with the values; mutable access to the parts is deliberately not offered.
///
/// The request-target is kept byte-exact, even when it is not UTF-8 or not in origin-form:
/// see [`Self::raw_path`].
#[derive(Debug)]
pub struct RequestHeader {
    base: ReqParts,
    header_name_map: Option<CaseMap>,
    /// What is [`known`](crate::known) about `base.headers`, kept exact by every mutation.
    known: crate::known::Known,
    raw_target: RawTarget,
    send_end_stream: bool,
}

impl Deref for RequestHeader {
    type Target = ReqParts;

    fn deref(&self) -> &ReqParts {
        &self.base
    }
}

impl AsRef<ReqParts> for RequestHeader {
    fn as_ref(&self) -> &ReqParts {
        &self.base
    }
}

impl RequestHeader {
    /// Both constructors: everything that can fail is checked first, then the header is
    /// assembled in one go (it is large, so every extra move shows).
    #[inline]
    fn build_inner(
        method: impl TryInto<Method>,
        path: Target<'_>,
        size_hint: Option<usize>,
        case: bool,
    ) -> Result<Self> {
        let method = method
            .try_into()
            .explain_err(InvalidHTTPHeader, |_| "invalid method")?;
        let (uri, raw_target) = match path {
            Target::Borrowed(path) => target::parse(path)?,
            Target::Shared(path) => target::parse_shared(path)?,
        };
        let capacity = capacity_for(size_hint);
        let mut base = http::Request::new(()).into_parts().0;
        base.method = method;
        base.uri = uri;
        // sized in place: cheaper than building a second map and dropping the empty one
        // (cannot fail: the capacity is capped far below the map's limit)
        let _ = base.headers.try_reserve(capacity);
        Ok(RequestHeader {
            base,
            header_name_map: case.then(|| CaseMap::with_capacity(capacity)),
            known: crate::known::Known::default(),
            raw_target,
            send_end_stream: true,
        })
    }

    /// Create a request that records header-name case, for HTTP/1 traffic.
    ///
    /// `path` is the raw request-target and may be non-UTF-8. `size_hint` is the expected
    /// number of headers (capped), to size the storage once.
    pub fn build(
        method: impl TryInto<Method>,
        path: &[u8],
        size_hint: Option<usize>,
    ) -> Result<Self> {
        Self::build_inner(method, Target::Borrowed(path), size_hint, true)
    }

    /// [`Self::build`] for a request-target that is a slice of a received head: the usual
    /// origin-form target is then kept without a copy. Same result as [`Self::build`].
    #[doc(hidden)]
    pub fn build_shared(
        method: impl TryInto<Method>,
        path: &bytes::Bytes,
        size_hint: Option<usize>,
    ) -> Result<Self> {
        Self::build_inner(method, Target::Shared(path), size_hint, true)
    }

    /// Create a request that does not record header-name case.
    ///
    /// Smaller and faster than [`Self::build`]; right for HTTP/2, where names are lower case
    /// anyway. On HTTP/1 well-known names are written in title case.
    pub fn build_no_case(
        method: impl TryInto<Method>,
        path: &[u8],
        size_hint: Option<usize>,
    ) -> Result<Self> {
        Self::build_inner(method, Target::Borrowed(path), size_hint, false)
    }

    /// Add a header value, keeping existing values under the same name.
    ///
    /// Returns whether the name was already present. Fails with `InvalidHTTPHeader` on an
    /// invalid name or value.
    pub fn append_header(
        &mut self,
        name: impl IntoCaseHeaderName,
        value: impl TryInto<HeaderValue>,
    ) -> Result<bool> {
        let value = value
            .try_into()
            .explain_err(InvalidHTTPHeader, |_| "invalid header value")?;
        case_map::append(
            self.header_name_map.as_mut(),
            &mut self.base.headers,
            &mut self.known,
            name,
            value,
        )
    }

    /// Append the header fields of a received head, in order: the same as
    /// [`Self::append_header`] for each, done in one loop (the parsers call it for every
    /// message); stops at the first error. Each name is given as its place in `head` (the
    /// received head the values are slices of): standard names spelled in their usual title
    /// case are then recorded without referencing `head`.
    #[doc(hidden)]
    pub fn append_parsed_fields(
        &mut self,
        head: &bytes::Bytes,
        fields: impl Iterator<Item = (std::ops::Range<usize>, HeaderValue)>,
    ) -> Result<()> {
        case_map::append_all(
            self.header_name_map.as_mut(),
            &mut self.base.headers,
            &mut self.known,
            fields.map(|(range, value)| (ParsedName { head, range }, value)),
        )
    }

    /// Set a header, replacing every existing value under the same (case-insensitive) name.
    ///
    /// The new spelling of the name replaces the old one. Fails with `InvalidHTTPHeader` on an
    /// invalid name or value.
    pub fn insert_header(
        &mut self,
        name: impl IntoCaseHeaderName,
        value: impl TryInto<HeaderValue>,
    ) -> Result<()> {
        let value = value
            .try_into()
            .explain_err(InvalidHTTPHeader, |_| "invalid header value")?;
        case_map::insert(
            self.header_name_map.as_mut(),
            &mut self.base.headers,
            &mut self.known,
            name,
            value,
        )
    }

    /// Remove every value under `name`, returning the first one if there was any.
    pub fn remove_header<'a, N: ?Sized>(&mut self, name: &'a N) -> Option<HeaderValue>
    where
        &'a N: 'a + AsHeaderName,
    {
        case_map::remove(
            self.header_name_map.as_mut(),
            &mut self.base.headers,
            &mut self.known,
            name,
        )
    }

    /// [`Self::remove_header`] for a [`HeaderName`](http::header::HeaderName): found by comparing
    /// names rather than by a hashed lookup, which is cheaper for the few headers a message
    /// has (and free of hashing when the header is absent).
    #[doc(hidden)]
    pub fn remove_header_named(&mut self, name: &http::header::HeaderName) -> Option<HeaderValue> {
        case_map::remove_named(
            self.header_name_map.as_mut(),
            &mut self.base.headers,
            &mut self.known,
            name,
        )
    }

    /// Write the header lines (`Name: value\r\n` each, without the request line or the final
    /// empty line) in HTTP/1.1 format, with names spelled and ordered as recorded.
    pub fn header_to_h1_wire(&self, buf: &mut impl BufMut) {
        case_map::write_h1(self.header_name_map.as_ref(), &self.base.headers, buf)
    }

    /// Iterate over (recorded spelling, value) in wire order. Empty if case is not recorded.
    pub fn case_header_iter(&self) -> impl Iterator<Item = (&CaseHeaderName, &HeaderValue)> + '_ {
        case_map::case_iter(self.header_name_map.as_ref(), &self.base.headers)
    }

    /// Whether header-name case is recorded (built with [`Self::build`]).
    pub fn has_case(&self) -> bool {
        self.header_name_map.is_some()
    }

    /// Which of the headers named in [`known`](crate::known) this message holds, one bit each:
    /// a clear bit means absent, with no map lookup.
    #[doc(hidden)]
    #[inline]
    pub fn known_headers(&self) -> u16 {
        self.known.bits()
    }

    /// The `Content-Length` when the message has exactly one and it is a plain decimal
    /// number, without a lookup; `None` means "look at the headers".
    #[doc(hidden)]
    #[inline]
    pub fn known_content_length(&self) -> Option<u64> {
        self.known.content_length()
    }

    /// The `Connection` value when the message has exactly one and it is `keep-alive` or
    /// `close`, without a lookup; `None` means "look at the headers".
    #[doc(hidden)]
    #[inline]
    pub fn known_connection(&self) -> Option<crate::known::ConnectionValue> {
        self.known.connection()
    }

    /// Call `f` for each header in wire order with the name as it would be written; stops at
    /// the first error and returns it.
    pub fn map<F: FnMut(HeaderNameVariant, &HeaderValue) -> Result<()>>(&self, f: F) -> Result<()> {
        case_map::for_each(self.header_name_map.as_ref(), &self.base.headers, f)
    }

    /// Mutable access to the request extensions (typed per-request data).
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.base.extensions
    }

    /// Set the request method.
    pub fn set_method(&mut self, method: Method) {
        self.base.method = method;
    }

    /// Set the request URI. The request-target on the wire is then derived from it.
    pub fn set_uri(&mut self, uri: Uri) {
        self.base.uri = uri;
        self.raw_target = RawTarget::FromUri;
    }

    /// Set the request-target from raw bytes, which may be non-UTF-8 or not origin-form.
    ///
    /// Prefer [`Self::set_uri`] when the target is a valid URI. On error the current target
    /// is left unchanged.
    pub fn set_raw_path(&mut self, path: &[u8]) -> Result<()> {
        let (uri, raw_target) = target::parse(path)?;
        self.base.uri = uri;
        self.raw_target = raw_target;
        Ok(())
    }

    /// Choose whether an HTTP/2 HEADERS frame carries END_STREAM when there is no body.
    pub fn set_send_end_stream(&mut self, send_end_stream: bool) {
        self.send_end_stream = send_end_stream;
    }

    /// The END_STREAM choice of [`Self::set_send_end_stream`]; `None` unless the version is
    /// HTTP/2.
    pub fn send_end_stream(&self) -> Option<bool> {
        (self.base.version == Version::HTTP_2).then_some(self.send_end_stream)
    }

    /// The request-target exactly as it goes on the wire (possibly non-UTF-8).
    pub fn raw_path(&self) -> &[u8] {
        match self.raw_target.bytes() {
            Some(bytes) => bytes,
            None => target::from_uri(&self.base.uri),
        }
    }

    /// Whether [`Self::raw_path`] is valid UTF-8 (otherwise the URI holds an encoded form).
    pub fn raw_path_is_utf8(&self) -> bool {
        self.raw_target.is_utf8()
    }

    /// The file extension of the URI path (text after the last `.`), if any.
    pub fn uri_file_extension(&self) -> Option<&str> {
        let (_, ext) = self.base.uri.path().rsplit_once('.')?;
        Some(ext)
    }

    /// Set the HTTP version.
    pub fn set_version(&mut self, version: Version) {
        self.base.version = version;
    }

    /// The request host: `:authority` pseudo-header, then `Host` header, then the URI host.
    pub fn host(&self) -> Option<&str> {
        self.base
            .headers
            .get(":authority")
            .or_else(|| self.base.headers.get(http::header::HOST))
            .and_then(|v| v.to_str().ok())
            .or_else(|| self.base.uri.host())
    }

    /// Clone into a plain [`http::request::Parts`] (header case and a non-URI target are lost).
    pub fn as_owned_parts(&self) -> ReqParts {
        // cloned field by field in place: no default parts built and then overwritten
        self.base.clone()
    }
}

impl Clone for RequestHeader {
    fn clone(&self) -> Self {
        RequestHeader {
            base: self.as_owned_parts(),
            header_name_map: self.header_name_map.clone(),
            known: self.known,
            raw_target: self.raw_target.clone(),
            send_end_stream: self.send_end_stream,
        }
    }
}

/// The result does not record header case: [`ReqParts`] has none to give.
impl From<ReqParts> for RequestHeader {
    fn from(parts: ReqParts) -> Self {
        RequestHeader {
            known: crate::known::Known::of_map(&parts.headers),
            base: parts,
            header_name_map: None,
            raw_target: RawTarget::FromUri,
            send_end_stream: true,
        }
    }
}

impl From<RequestHeader> for ReqParts {
    fn from(req: RequestHeader) -> Self {
        req.base
    }
}
