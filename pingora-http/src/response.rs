//! [`ResponseHeader`]: an HTTP response head that preserves header-name case and order.

use crate::case_header_name::{IntoCaseHeaderName, ParsedName};
use crate::case_map::{self, capacity_for, CaseMap};
use crate::{CaseHeaderName, HeaderNameVariant, StatusCode, Version};
use bytes::BufMut;
use http::header::{AsHeaderName, HeaderValue};
use http::response::Parts as RespParts;
use pingora_error::{Error, ErrorType::InvalidHTTPHeader, OrErr, Result};
use std::ops::Deref;

/// An HTTP response header: status, version, headers and an optional custom reason phrase.
///
/// Reads go through [`Deref`] to [`http::response::Parts`]; writes go through methods so the
/// recorded header-name spellings stay in step with the values.
#[derive(Debug)]
pub struct ResponseHeader {
    base: RespParts,
    header_name_map: Option<CaseMap>,
    /// What is [`known`](crate::known) about `base.headers`, kept exact by every mutation.
    known: crate::known::Known,
    /// `None` means the canonical phrase of the status code.
    reason_phrase: Option<Box<str>>,
}

impl Deref for ResponseHeader {
    type Target = RespParts;

    fn deref(&self) -> &RespParts {
        &self.base
    }
}

impl AsRef<RespParts> for ResponseHeader {
    fn as_ref(&self) -> &RespParts {
        &self.base
    }
}

impl ResponseHeader {
    /// Both constructors: the status is checked first, then the header is assembled in one go.
    #[inline]
    fn build_inner(
        code: impl TryInto<StatusCode>,
        size_hint: Option<usize>,
        case: bool,
    ) -> Result<Self> {
        let status = code
            .try_into()
            .explain_err(InvalidHTTPHeader, |_| "invalid status")?;
        let capacity = capacity_for(size_hint);
        let mut base = http::Response::new(()).into_parts().0;
        base.status = status;
        // sized in place: cheaper than building a second map and dropping the empty one
        // (cannot fail: the capacity is capped far below the map's limit)
        let _ = base.headers.try_reserve(capacity);
        Ok(ResponseHeader {
            base,
            header_name_map: case.then(|| CaseMap::with_capacity(capacity)),
            known: crate::known::Known::default(),
            reason_phrase: None,
        })
    }

    /// Create a response that records header-name case, for HTTP/1 traffic.
    ///
    /// `code` is anything convertible to a [`StatusCode`] (e.g. `200u16`); `size_hint` is the
    /// expected number of headers.
    pub fn build(code: impl TryInto<StatusCode>, size_hint: Option<usize>) -> Result<Self> {
        Self::build_inner(code, size_hint, true)
    }

    /// Create a response that does not record header-name case (smaller; right for HTTP/2).
    pub fn build_no_case(code: impl TryInto<StatusCode>, size_hint: Option<usize>) -> Result<Self> {
        Self::build_inner(code, size_hint, false)
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

    /// Write the header lines (`Name: value\r\n` each, without the status line or the final
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

    /// Mutable access to the response extensions (typed per-response data).
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.base.extensions
    }

    /// Set the status code. A custom reason phrase set earlier is kept.
    pub fn set_status(&mut self, status: impl TryInto<StatusCode>) -> Result<()> {
        self.base.status = status
            .try_into()
            .explain_err(InvalidHTTPHeader, |_| "invalid status")?;
        Ok(())
    }

    /// Set the HTTP version.
    pub fn set_version(&mut self, version: Version) {
        self.base.version = version;
    }

    /// Set the reason phrase; `None` (or the canonical phrase) means the status's default.
    ///
    /// Fails with `InvalidHTTPHeader` if the phrase has characters a status line cannot carry
    /// (anything but HTAB, SP, visible ASCII and obs-text).
    pub fn set_reason_phrase(&mut self, reason_phrase: Option<&str>) -> Result<()> {
        match reason_phrase {
            None => self.reason_phrase = None,
            Some(phrase) if Some(phrase) == self.base.status.canonical_reason() => {
                // The default is produced on demand; no need to store it.
                self.reason_phrase = None;
            }
            Some(phrase) => {
                let valid = phrase
                    .bytes()
                    .all(|b| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80);
                if !valid {
                    return Error::e_explain(InvalidHTTPHeader, "invalid reason phrase");
                }
                self.reason_phrase = Some(phrase.into());
            }
        }
        Ok(())
    }

    /// The reason phrase to send: the custom one if set, else the status's canonical phrase.
    pub fn get_reason_phrase(&self) -> Option<&str> {
        self.reason_phrase
            .as_deref()
            .or_else(|| self.base.status.canonical_reason())
    }

    /// Clone into a plain [`http::response::Parts`] (header case and reason phrase are lost).
    pub fn as_owned_parts(&self) -> RespParts {
        // cloned field by field in place: no default parts built and then overwritten
        self.base.clone()
    }

    /// Set `Content-Length` to `len`, replacing any previous value.
    pub fn set_content_length(&mut self, len: usize) -> Result<()> {
        self.insert_header(http::header::CONTENT_LENGTH, len)
    }
}

impl Clone for ResponseHeader {
    fn clone(&self) -> Self {
        ResponseHeader {
            base: self.as_owned_parts(),
            header_name_map: self.header_name_map.clone(),
            known: self.known,
            reason_phrase: self.reason_phrase.clone(),
        }
    }
}

/// The result does not record header case: [`RespParts`] has none to give.
impl From<RespParts> for ResponseHeader {
    fn from(parts: RespParts) -> Self {
        ResponseHeader {
            known: crate::known::Known::of_map(&parts.headers),
            base: parts,
            header_name_map: None,
            reason_phrase: None,
        }
    }
}

impl From<ResponseHeader> for RespParts {
    fn from(resp: ResponseHeader) -> Self {
        resp.base
    }
}

impl From<Box<ResponseHeader>> for Box<RespParts> {
    fn from(resp: Box<ResponseHeader>) -> Self {
        Box::new(resp.base)
    }
}
