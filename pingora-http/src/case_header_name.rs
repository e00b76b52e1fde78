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
        let (case, bit) = titled_and_bit(&self);
        Ok((CaseHeaderName(case), self, bit))
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
        let (case, bit) = titled_and_bit(self);
        Ok((CaseHeaderName(case), self.clone(), bit))
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
    titled_bytes(name, titled_header_name_str(name))
}

/// [`titled_header_name`] and the name's [`known`](crate::known) bit, found by one lookup:
/// a name added as a [`HeaderName`] needs both, and two lookups cost twice the dispatch on the
/// length and the compares.
fn titled_and_bit(name: &HeaderName) -> (Bytes, u16) {
    let (titled, bit) = titled_lookup(name);
    (titled_bytes(name, titled), bit)
}

#[inline(always)]
fn titled_bytes(name: &HeaderName, titled: Option<&'static str>) -> Bytes {
    match titled {
        Some(titled) => Bytes::from_static(titled.as_bytes()),
        None => Bytes::copy_from_slice(name.as_str().as_bytes()),
    }
}

/// The conventional title-case spelling of a well-known header, if `name` is one.
pub(crate) fn titled_header_name_str(name: &HeaderName) -> Option<&'static str> {
    titled_lookup(name).0
}

/// The conventional title-case spelling of a well-known header (if `name` is one) and the
/// name's [`known`](crate::known) bit (0 for other names), equal to what
/// [`known::bit`](crate::known::bit) returns (a test checks every name).
#[inline(always)]
fn titled_lookup(name: &HeaderName) -> (Option<&'static str>, u16) {
    use crate::known::*;
    // Names are lower case here. The length picks a few candidates, each compared as a
    // fixed-size array (a word compare or two).
    let lower = name.as_str().as_bytes();
    macro_rules! by_length {
        ($($len:literal => [$($lit:literal => $titled:expr $(, $bit:ident)?);+],)+) => {
            match lower.len() {
                $($len => {
                    // the length was just matched, so the conversion cannot fail
                    let Ok(lower) = <&[u8; $len]>::try_from(lower) else {
                        return (None, 0);
                    };
                    $(if lower == $lit {
                        return ($titled, 0 $(| $bit)?);
                    })+
                    (None, 0)
                })+
                _ => (None, 0),
            }
        };
    }
    by_length! {
        2 => [b"te" => Some("TE"), TE],
        3 => [b"via" => Some("Via"); b"age" => Some("Age")],
        4 => [b"host" => Some("Host"), HOST; b"date" => Some("Date"), DATE; b"etag" => Some("ETag"); b"vary" => Some("Vary"); b"from" => Some("From"); b"link" => Some("Link")],
        5 => [b"allow" => Some("Allow"); b"range" => Some("Range")],
        6 => [b"accept" => Some("Accept"); b"server" => Some("Server"); b"cookie" => Some("Cookie"); b"expect" => Some("Expect"), EXPECT; b"origin" => Some("Origin"); b"pragma" => Some("Pragma")],
        7 => [b"expires" => Some("Expires"); b"referer" => Some("Referer"); b"upgrade" => Some("Upgrade"), UPGRADE; b"alt-svc" => Some("Alt-Svc"); b"trailer" => Some("Trailer"), TRAILER],
        8 => [b"location" => Some("Location"); b"if-match" => Some("If-Match"); b"if-range" => Some("If-Range")],
        9 => [b"forwarded" => Some("Forwarded"); b"x-real-ip" => Some("X-Real-IP")],
        10 => [b"user-agent" => Some("User-Agent"); b"connection" => Some("Connection"), CONNECTION; b"set-cookie" => Some("Set-Cookie"); b"keep-alive" => Some("Keep-Alive"), KEEP_ALIVE],
        11 => [b"retry-after" => Some("Retry-After")],
        12 => [b"content-type" => Some("Content-Type"); b"x-request-id" => Some("X-Request-ID")],
        13 => [b"cache-control" => Some("Cache-Control"); b"last-modified" => Some("Last-Modified"); b"accept-ranges" => Some("Accept-Ranges"); b"authorization" => Some("Authorization"); b"content-range" => Some("Content-Range"); b"if-none-match" => Some("If-None-Match")],
        14 => [b"content-length" => Some("Content-Length"), CONTENT_LENGTH; b"accept-charset" => Some("Accept-Charset")],
        15 => [b"accept-encoding" => Some("Accept-Encoding"); b"accept-language" => Some("Accept-Language"); b"x-forwarded-for" => Some("X-Forwarded-For")],
        16 => [b"content-encoding" => Some("Content-Encoding"); b"content-language" => Some("Content-Language"); b"content-location" => Some("Content-Location"); b"proxy-connection" => Some("Proxy-Connection"), PROXY_CONNECTION; b"www-authenticate" => Some("WWW-Authenticate"); b"x-forwarded-host" => Some("X-Forwarded-Host")],
        17 => [b"transfer-encoding" => Some("Transfer-Encoding"), TRANSFER_ENCODING; b"if-modified-since" => Some("If-Modified-Since"); b"x-forwarded-proto" => Some("X-Forwarded-Proto"); b"sec-websocket-key" => None, SEC_WEBSOCKET_KEY],
        18 => [b"proxy-authenticate" => Some("Proxy-Authenticate")],
        19 => [b"content-disposition" => Some("Content-Disposition"); b"if-unmodified-since" => Some("If-Unmodified-Since"); b"proxy-authorization" => Some("Proxy-Authorization")],
        22 => [b"access-control-max-age" => Some("Access-Control-Max-Age")],
        23 => [b"content-security-policy" => Some("Content-Security-Policy")],
        25 => [b"strict-transport-security" => Some("Strict-Transport-Security")],
        27 => [b"access-control-allow-origin" => Some("Access-Control-Allow-Origin")],
        28 => [b"access-control-allow-headers" => Some("Access-Control-Allow-Headers"); b"access-control-allow-methods" => Some("Access-Control-Allow-Methods")],
        29 => [b"access-control-expose-headers" => Some("Access-Control-Expose-Headers")],
        32 => [b"access-control-allow-credentials" => Some("Access-Control-Allow-Credentials")],
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
        // one lookup gives both: the bits must be those of `known::bit`
        let known_only = ["sec-websocket-key", "x-custom", "hosts"];
        for lower in pairs.iter().map(|(lower, _)| *lower).chain(known_only) {
            let name = HeaderName::from_static(lower);
            let (case, bit) = titled_and_bit(&name);
            assert_eq!(bit, crate::known::bit(&name), "{lower}");
            assert_eq!(case, titled_header_name(&name), "{lower}");
        }
        for other in ["x-custom", "hosts", "hos", "a", "content-lengtx"] {
            assert_eq!(
                titled_header_name_str(&HeaderName::from_static(other)),
                None
            );
        }
    }
}
