//! Header names that remember the exact bytes (including letter case) they were written with.

use bytes::Bytes;
use http::header::HeaderName;
use pingora_error::{ErrorType::InvalidHTTPHeader, OrErr, Result};

/// A header name exactly as it appeared (or should appear) on an HTTP/1 wire.
///
/// HTTP header names are case-insensitive, but a transparent proxy should not rewrite bytes it
/// does not need to touch, so the original spelling is kept next to the normalized
/// [`HeaderName`]. Backed by [`Bytes`], so static and received names are stored without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseHeaderName(Bytes);

impl CaseHeaderName {
    /// Take ownership of `name` as the case-preserved spelling.
    pub fn new(name: String) -> Self {
        CaseHeaderName(Bytes::from(name))
    }

    /// The name bytes as they will be written on the wire.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Copy `buf` into a new case-preserved name (e.g. from a parser's borrowed buffer).
    pub fn from_slice(buf: &[u8]) -> Self {
        CaseHeaderName(Bytes::copy_from_slice(buf))
    }
}

impl AsRef<[u8]> for CaseHeaderName {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

pub(crate) mod sealed {
    /// Proof of a call from inside this crate (see
    /// [`IntoCaseHeaderName::into_case_and_header_name`](super::IntoCaseHeaderName)).
    #[derive(Debug)]
    pub struct Internal(pub(crate) ());
}

/// Conversion into a [`CaseHeaderName`], accepted by the header mutation methods.
///
/// Implemented for `&'static str`, [`String`], [`Bytes`], [`HeaderName`], `&HeaderName` and
/// [`CaseHeaderName`]. A [`HeaderName`] has lost its original case, so it is written in the
/// conventional title case (`Content-Length`) when it is a well-known header.
pub trait IntoCaseHeaderName {
    /// Convert `self` into its case-preserved spelling.
    fn into_case_header_name(self) -> CaseHeaderName;

    /// Produce the spelling, the normalized name and the name's [`known`](crate::known) bit,
    /// failing on an invalid name.
    ///
    /// The default parses the spelling; the implementations for [`HeaderName`] override it to
    /// skip that work. The argument cannot be named outside this crate, so no other override
    /// exists: the parts always name the same header, which the header types rely on.
    #[doc(hidden)]
    // always: out of line, the large result is returned through memory and copied, which
    // costs more than the lookup itself (this runs for every header parsed)
    #[inline(always)]
    fn into_case_and_header_name(
        self,
        _: sealed::Internal,
    ) -> Result<(CaseHeaderName, HeaderName, u16)>
    where
        Self: Sized,
    {
        let case = self.into_case_header_name();
        let (name, bit) = match crate::standard_name::standard_header_name(case.as_slice()) {
            Some(found) => (found.name, found.bit),
            None => {
                let name = HeaderName::from_bytes(case.as_slice())
                    .or_err(InvalidHTTPHeader, "invalid header name")?;
                let bit = crate::known::bit(&name);
                (name, bit)
            }
        };
        Ok((case, name, bit))
    }
}

impl IntoCaseHeaderName for CaseHeaderName {
    #[inline]
    fn into_case_header_name(self) -> CaseHeaderName {
        self
    }
}

impl IntoCaseHeaderName for String {
    #[inline]
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(Bytes::from(self))
    }
}

impl IntoCaseHeaderName for &'static str {
    #[inline]
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(Bytes::from_static(self.as_bytes()))
    }
}

impl IntoCaseHeaderName for Bytes {
    #[inline]
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(self)
    }
}

impl IntoCaseHeaderName for HeaderName {
    #[inline]
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(titled_header_name(&self))
    }

    fn into_case_and_header_name(
        self,
        _: sealed::Internal,
    ) -> Result<(CaseHeaderName, HeaderName, u16)> {
        let bit = crate::known::bit(&self);
        Ok((CaseHeaderName(titled_header_name(&self)), self, bit))
    }
}

impl IntoCaseHeaderName for &HeaderName {
    #[inline]
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(titled_header_name(self))
    }

    fn into_case_and_header_name(
        self,
        _: sealed::Internal,
    ) -> Result<(CaseHeaderName, HeaderName, u16)> {
        let bit = crate::known::bit(self);
        Ok((CaseHeaderName(titled_header_name(self)), self.clone(), bit))
    }
}

/// A header name inside a received head, not sliced out of it yet.
///
/// A standard name spelled exactly in its title case (`Content-Length`, as most servers and
/// clients write them) is recorded as the static spelling: no reference to the head's buffer
/// is taken, so none is counted up and down when the header is cloned and dropped. Any other
/// spelling becomes a slice of the head, as with [`Bytes`].
pub(crate) struct ParsedName<'a> {
    pub(crate) head: &'a Bytes,
    /// Where the name lies in `head`.
    pub(crate) range: std::ops::Range<usize>,
}

impl IntoCaseHeaderName for ParsedName<'_> {
    #[inline]
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(self.head.slice(self.range))
    }

    #[inline(always)]
    fn into_case_and_header_name(
        self,
        _: sealed::Internal,
    ) -> Result<(CaseHeaderName, HeaderName, u16)> {
        let Some(bytes) = self.head.get(self.range.clone()) else {
            return Err(pingora_error::Error::explain(
                InvalidHTTPHeader,
                "header name out of range",
            ));
        };
        match crate::standard_name::standard_header_name(bytes) {
            Some(found) => {
                let case = match found.titled {
                    Some(titled) => Bytes::from_static(titled),
                    None => self.head.slice(self.range),
                };
                Ok((CaseHeaderName(case), found.name, found.bit))
            }
            None => {
                let name = HeaderName::from_bytes(bytes)
                    .or_err(InvalidHTTPHeader, "invalid header name")?;
                let bit = crate::known::bit(&name);
                Ok((CaseHeaderName(self.head.slice(self.range)), name, bit))
            }
        }
    }
}

/// The wire spelling for a name with no recorded case: title case for well-known headers
/// (static, no allocation), otherwise the normalized lower-case name.
fn titled_header_name(name: &HeaderName) -> Bytes {
    match titled_header_name_str(name) {
        Some(titled) => Bytes::from_static(titled.as_bytes()),
        None => Bytes::copy_from_slice(name.as_str().as_bytes()),
    }
}

/// The conventional title-case spelling of a well-known header, if `name` is one.
pub(crate) fn titled_header_name_str(name: &HeaderName) -> Option<&'static str> {
    // Names are lower case here. The length picks a few candidates, each compared as a
    // fixed-size array (a word compare or two).
    let lower = name.as_str().as_bytes();
    macro_rules! by_length {
        ($($len:literal => [$($lit:literal => $titled:literal),+],)+) => {
            match lower.len() {
                $($len => {
                    // the length was just matched, so the conversion cannot fail
                    let lower: &[u8; $len] = lower.try_into().ok()?;
                    $(if lower == $lit {
                        return Some($titled);
                    })+
                    None
                })+
                _ => None,
            }
        };
    }
    by_length! {
        2 => [b"te" => "TE"],
        3 => [b"via" => "Via", b"age" => "Age"],
        4 => [b"host" => "Host", b"date" => "Date", b"etag" => "ETag", b"vary" => "Vary", b"from" => "From", b"link" => "Link"],
        5 => [b"allow" => "Allow", b"range" => "Range"],
        6 => [b"accept" => "Accept", b"server" => "Server", b"cookie" => "Cookie", b"expect" => "Expect", b"origin" => "Origin", b"pragma" => "Pragma"],
        7 => [b"expires" => "Expires", b"referer" => "Referer", b"upgrade" => "Upgrade", b"alt-svc" => "Alt-Svc", b"trailer" => "Trailer"],
        8 => [b"location" => "Location", b"if-match" => "If-Match", b"if-range" => "If-Range"],
        9 => [b"forwarded" => "Forwarded", b"x-real-ip" => "X-Real-IP"],
        10 => [b"user-agent" => "User-Agent", b"connection" => "Connection", b"set-cookie" => "Set-Cookie", b"keep-alive" => "Keep-Alive"],
        11 => [b"retry-after" => "Retry-After"],
        12 => [b"content-type" => "Content-Type", b"x-request-id" => "X-Request-ID"],
        13 => [b"cache-control" => "Cache-Control", b"last-modified" => "Last-Modified", b"accept-ranges" => "Accept-Ranges", b"authorization" => "Authorization", b"content-range" => "Content-Range", b"if-none-match" => "If-None-Match"],
        14 => [b"content-length" => "Content-Length", b"accept-charset" => "Accept-Charset"],
        15 => [b"accept-encoding" => "Accept-Encoding", b"accept-language" => "Accept-Language", b"x-forwarded-for" => "X-Forwarded-For"],
        16 => [b"content-encoding" => "Content-Encoding", b"content-language" => "Content-Language", b"content-location" => "Content-Location", b"proxy-connection" => "Proxy-Connection", b"www-authenticate" => "WWW-Authenticate", b"x-forwarded-host" => "X-Forwarded-Host"],
        17 => [b"transfer-encoding" => "Transfer-Encoding", b"if-modified-since" => "If-Modified-Since", b"x-forwarded-proto" => "X-Forwarded-Proto"],
        18 => [b"proxy-authenticate" => "Proxy-Authenticate"],
        19 => [b"content-disposition" => "Content-Disposition", b"if-unmodified-since" => "If-Unmodified-Since", b"proxy-authorization" => "Proxy-Authorization"],
        22 => [b"access-control-max-age" => "Access-Control-Max-Age"],
        23 => [b"content-security-policy" => "Content-Security-Policy"],
        25 => [b"strict-transport-security" => "Strict-Transport-Security"],
        27 => [b"access-control-allow-origin" => "Access-Control-Allow-Origin"],
        28 => [b"access-control-allow-headers" => "Access-Control-Allow-Headers", b"access-control-allow-methods" => "Access-Control-Allow-Methods"],
        29 => [b"access-control-expose-headers" => "Access-Control-Expose-Headers"],
        32 => [b"access-control-allow-credentials" => "Access-Control-Allow-Credentials"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    #[test]
    fn conversions_keep_spelling() {
        assert_eq!("FoO".into_case_header_name().as_slice(), b"FoO");
        assert_eq!(
            String::from("bAr").into_case_header_name().as_slice(),
            b"bAr"
        );
        assert_eq!(
            Bytes::from_static(b"X-a")
                .into_case_header_name()
                .as_slice(),
            b"X-a"
        );
        assert_eq!(CaseHeaderName::from_slice(b"Ab").as_slice(), b"Ab");
    }

    #[test]
    fn header_name_is_title_cased() {
        assert_eq!(header::SERVER.into_case_header_name().as_slice(), b"Server");
        assert_eq!((&header::ETAG).into_case_header_name().as_slice(), b"ETag");
        let custom = HeaderName::from_static("x-custom");
        assert_eq!(custom.into_case_header_name().as_slice(), b"x-custom");
    }

    #[test]
    fn invalid_name_is_an_error() {
        assert!("bad name"
            .into_case_and_header_name(sealed::Internal(()))
            .is_err());
        assert!("".into_case_and_header_name(sealed::Internal(())).is_err());
        let (case, name, bit) = "X-Ok"
            .into_case_and_header_name(sealed::Internal(()))
            .unwrap();
        assert_eq!(case.as_slice(), b"X-Ok");
        assert_eq!(name.as_str(), "x-ok");
        assert_eq!(bit, 0);
        // a custom name can still be a known one
        let (_, _, bit) = "Proxy-Connection"
            .into_case_and_header_name(sealed::Internal(()))
            .unwrap();
        assert_eq!(bit, crate::known::PROXY_CONNECTION);
    }

    #[test]
    fn titled_table() {
        let pairs = [
            ("accept", "Accept"),
            ("accept-charset", "Accept-Charset"),
            ("accept-encoding", "Accept-Encoding"),
            ("accept-language", "Accept-Language"),
            ("accept-ranges", "Accept-Ranges"),
            (
                "access-control-allow-credentials",
                "Access-Control-Allow-Credentials",
            ),
            (
                "access-control-allow-headers",
                "Access-Control-Allow-Headers",
            ),
            (
                "access-control-allow-methods",
                "Access-Control-Allow-Methods",
            ),
            ("access-control-allow-origin", "Access-Control-Allow-Origin"),
            (
                "access-control-expose-headers",
                "Access-Control-Expose-Headers",
            ),
            ("access-control-max-age", "Access-Control-Max-Age"),
            ("age", "Age"),
            ("allow", "Allow"),
            ("alt-svc", "Alt-Svc"),
            ("authorization", "Authorization"),
            ("cache-control", "Cache-Control"),
            ("connection", "Connection"),
            ("content-disposition", "Content-Disposition"),
            ("content-encoding", "Content-Encoding"),
            ("content-language", "Content-Language"),
            ("content-length", "Content-Length"),
            ("content-location", "Content-Location"),
            ("content-range", "Content-Range"),
            ("content-security-policy", "Content-Security-Policy"),
            ("content-type", "Content-Type"),
            ("cookie", "Cookie"),
            ("date", "Date"),
            ("etag", "ETag"),
            ("expect", "Expect"),
            ("expires", "Expires"),
            ("forwarded", "Forwarded"),
            ("from", "From"),
            ("host", "Host"),
            ("if-match", "If-Match"),
            ("if-modified-since", "If-Modified-Since"),
            ("if-none-match", "If-None-Match"),
            ("if-range", "If-Range"),
            ("if-unmodified-since", "If-Unmodified-Since"),
            ("keep-alive", "Keep-Alive"),
            ("last-modified", "Last-Modified"),
            ("link", "Link"),
            ("location", "Location"),
            ("origin", "Origin"),
            ("pragma", "Pragma"),
            ("proxy-authenticate", "Proxy-Authenticate"),
            ("proxy-authorization", "Proxy-Authorization"),
            ("proxy-connection", "Proxy-Connection"),
            ("range", "Range"),
            ("referer", "Referer"),
            ("retry-after", "Retry-After"),
            ("server", "Server"),
            ("set-cookie", "Set-Cookie"),
            ("strict-transport-security", "Strict-Transport-Security"),
            ("te", "TE"),
            ("trailer", "Trailer"),
            ("transfer-encoding", "Transfer-Encoding"),
            ("upgrade", "Upgrade"),
            ("user-agent", "User-Agent"),
            ("vary", "Vary"),
            ("via", "Via"),
            ("www-authenticate", "WWW-Authenticate"),
            ("x-forwarded-for", "X-Forwarded-For"),
            ("x-forwarded-host", "X-Forwarded-Host"),
            ("x-forwarded-proto", "X-Forwarded-Proto"),
            ("x-real-ip", "X-Real-IP"),
            ("x-request-id", "X-Request-ID"),
        ];
        for (lower, titled) in pairs {
            let name = HeaderName::from_static(lower);
            assert_eq!(titled_header_name_str(&name), Some(titled));
        }
        for other in ["x-custom", "hosts", "hos", "a", "content-lengtx"] {
            assert_eq!(
                titled_header_name_str(&HeaderName::from_static(other)),
                None
            );
        }
    }
}
