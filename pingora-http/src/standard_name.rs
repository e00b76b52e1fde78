//! A fast path from a header-name spelling to the [`HeaderName`] of a standard header.
//!
//! [`HeaderName::from_bytes`] lower-cases the input into a scratch buffer, validates it and then
//! looks it up; for the handful of names nearly every message carries that is most of the cost
//! of adding a header. Here the length selects a few candidates, each compared in place without
//! ASCII case. Names that are not recognised (custom names, invalid bytes) return `None` and take
//! the full parse, so the result always equals what `from_bytes` would produce.

use http::header::*;

/// ASCII-case-insensitive equality with a lower-case name made of letters and `-`.
///
/// Letters of `lower` match either case of `input`; every other byte must match exactly. That
/// is precisely `input.eq_ignore_ascii_case(lower)` for such names, done a machine word at a
/// time: `lower` is a constant, so its case-folding mask and value fold into immediates.
#[inline(always)]
pub(crate) fn eq_lower<const N: usize>(input: &[u8; N], lower: &[u8; N]) -> bool {
    if N >= 8 {
        let mut diff = 0u64;
        let mut at = 0;
        while at + 8 <= N {
            diff |= word_diff::<N, 8>(input, lower, at);
            at += 8;
        }
        if at < N {
            // the tail as one word overlapping the previous one
            diff |= word_diff::<N, 8>(input, lower, N - 8);
        }
        diff == 0
    } else if N >= 4 {
        (word_diff::<N, 4>(input, lower, 0) | word_diff::<N, 4>(input, lower, N - 4)) == 0
    } else {
        word_diff::<N, N>(input, lower, 0) == 0
    }
}

/// The bits in which `W` bytes of `input` at `at` differ from `lower`, letters folded.
#[inline(always)]
fn word_diff<const N: usize, const W: usize>(input: &[u8; N], lower: &[u8; N], at: usize) -> u64 {
    let (Some(input), Some(lower)) = (input.get(at..at + W), lower.get(at..at + W)) else {
        // out of range: only reachable through a bad offset, which the callers never pass
        return u64::MAX;
    };
    let (mut x, mut want, mut fold) = ([0u8; 8], [0u8; 8], [0u8; 8]);
    // a fixed-size copy: one load of W bytes
    x[..W].copy_from_slice(input);
    want[..W].copy_from_slice(lower);
    for (f, l) in fold.iter_mut().zip(lower) {
        if l.is_ascii_lowercase() {
            *f = 0x20;
        }
    }
    let (x, want, fold) = (
        u64::from_le_bytes(x),
        u64::from_le_bytes(want),
        u64::from_le_bytes(fold),
    );
    (x | fold) ^ want
}

/// Whether `input` is exactly `want`, a machine word at a time.
#[inline(always)]
fn eq_exact<const N: usize>(input: &[u8; N], want: &[u8; N]) -> bool {
    let word = |bytes: &[u8; N], at: usize| -> u64 {
        let mut w = [0u8; 8];
        let end = (at + 8).min(N);
        if let (Some(dst), Some(src)) = (w.get_mut(..end - at), bytes.get(at..end)) {
            dst.copy_from_slice(src);
        }
        u64::from_le_bytes(w)
    };
    let mut diff = 0u64;
    let mut at = 0;
    while at < N {
        diff |= word(input, at) ^ word(want, at);
        at += 8;
    }
    diff == 0
}

/// A standard header recognised by [`standard_header_name`].
pub(crate) struct Standard {
    pub(crate) name: HeaderName,
    /// The [`known`](crate::known) bit of the name.
    pub(crate) bit: u16,
    /// The input itself as a static string, when it is the name's usual title-case spelling.
    pub(crate) titled: Option<&'static [u8]>,
}

macro_rules! by_length {
    ($name:expr; $($len:literal => [$($lit:literal => $hdr:ident $(| $bit:ident)? $(/ $titled:literal)?),+],)+) => {
        match $name.len() {
            $($len => {
                // the length was just matched, so the conversion cannot fail
                let input: &[u8; $len] = $name.try_into().ok()?;
                $(if eq_lower(input, $lit) {
                    let titled: Option<&'static [u8]> = None;
                    $(let titled = if eq_exact(input, $titled) { Some(&$titled[..]) } else { titled };)?
                    return Some(Standard { name: $hdr, bit: 0 $(| crate::known::$bit)?, titled });
                })+
                None
            })+
            _ => None,
        }
    };
}

/// The standard header `name` spells (in any letter case), its [`known`](crate::known) bit and
/// whether `name` is the usual title-case spelling (all found by the same comparisons, so
/// nearly free), or `None` if it is not one.
pub(crate) fn standard_header_name(name: &[u8]) -> Option<Standard> {
    // within a length, the most frequent names come first
    by_length! { name;
        2 => [b"te" => TE | TE / b"TE"],
        3 => [b"via" => VIA / b"Via", b"age" => AGE / b"Age", b"dnt" => DNT],
        4 => [b"host" => HOST | HOST / b"Host", b"date" => DATE | DATE / b"Date", b"etag" => ETAG / b"ETag", b"vary" => VARY / b"Vary", b"from" => FROM, b"link" => LINK / b"Link"],
        5 => [b"allow" => ALLOW / b"Allow", b"range" => RANGE / b"Range"],
        6 => [b"accept" => ACCEPT / b"Accept", b"server" => SERVER / b"Server", b"cookie" => COOKIE / b"Cookie", b"expect" => EXPECT | EXPECT / b"Expect", b"origin" => ORIGIN / b"Origin", b"pragma" => PRAGMA / b"Pragma"],
        7 => [b"expires" => EXPIRES / b"Expires", b"referer" => REFERER / b"Referer", b"upgrade" => UPGRADE | UPGRADE / b"Upgrade", b"alt-svc" => ALT_SVC / b"Alt-Svc", b"refresh" => REFRESH, b"trailer" => TRAILER | TRAILER / b"Trailer", b"warning" => WARNING],
        8 => [b"location" => LOCATION / b"Location", b"if-match" => IF_MATCH / b"If-Match", b"if-range" => IF_RANGE / b"If-Range"],
        9 => [b"forwarded" => FORWARDED / b"Forwarded"],
        10 => [b"user-agent" => USER_AGENT / b"User-Agent", b"connection" => CONNECTION | CONNECTION / b"Connection", b"set-cookie" => SET_COOKIE / b"Set-Cookie"],
        11 => [b"retry-after" => RETRY_AFTER / b"Retry-After"],
        12 => [b"content-type" => CONTENT_TYPE / b"Content-Type", b"cache-status" => CACHE_STATUS, b"max-forwards" => MAX_FORWARDS],
        13 => [b"cache-control" => CACHE_CONTROL / b"Cache-Control", b"last-modified" => LAST_MODIFIED / b"Last-Modified", b"accept-ranges" => ACCEPT_RANGES / b"Accept-Ranges", b"authorization" => AUTHORIZATION / b"Authorization", b"content-range" => CONTENT_RANGE / b"Content-Range", b"if-none-match" => IF_NONE_MATCH / b"If-None-Match"],
        14 => [b"content-length" => CONTENT_LENGTH | CONTENT_LENGTH / b"Content-Length", b"accept-charset" => ACCEPT_CHARSET / b"Accept-Charset"],
        15 => [b"accept-encoding" => ACCEPT_ENCODING / b"Accept-Encoding", b"accept-language" => ACCEPT_LANGUAGE / b"Accept-Language", b"public-key-pins" => PUBLIC_KEY_PINS, b"referrer-policy" => REFERRER_POLICY, b"x-frame-options" => X_FRAME_OPTIONS],
        16 => [b"content-encoding" => CONTENT_ENCODING / b"Content-Encoding", b"content-language" => CONTENT_LANGUAGE / b"Content-Language", b"content-location" => CONTENT_LOCATION / b"Content-Location", b"www-authenticate" => WWW_AUTHENTICATE / b"WWW-Authenticate", b"x-xss-protection" => X_XSS_PROTECTION],
        17 => [b"transfer-encoding" => TRANSFER_ENCODING | TRANSFER_ENCODING / b"Transfer-Encoding", b"cdn-cache-control" => CDN_CACHE_CONTROL, b"if-modified-since" => IF_MODIFIED_SINCE / b"If-Modified-Since", b"sec-websocket-key" => SEC_WEBSOCKET_KEY | SEC_WEBSOCKET_KEY],
        18 => [b"proxy-authenticate" => PROXY_AUTHENTICATE],
        19 => [b"content-disposition" => CONTENT_DISPOSITION, b"if-unmodified-since" => IF_UNMODIFIED_SINCE, b"proxy-authorization" => PROXY_AUTHORIZATION],
        20 => [b"sec-websocket-accept" => SEC_WEBSOCKET_ACCEPT],
        21 => [b"sec-websocket-version" => SEC_WEBSOCKET_VERSION],
        22 => [b"access-control-max-age" => ACCESS_CONTROL_MAX_AGE, b"sec-websocket-protocol" => SEC_WEBSOCKET_PROTOCOL, b"x-content-type-options" => X_CONTENT_TYPE_OPTIONS, b"x-dns-prefetch-control" => X_DNS_PREFETCH_CONTROL],
        23 => [b"content-security-policy" => CONTENT_SECURITY_POLICY],
        24 => [b"sec-websocket-extensions" => SEC_WEBSOCKET_EXTENSIONS],
        25 => [b"strict-transport-security" => STRICT_TRANSPORT_SECURITY, b"upgrade-insecure-requests" => UPGRADE_INSECURE_REQUESTS],
        27 => [b"access-control-allow-origin" => ACCESS_CONTROL_ALLOW_ORIGIN, b"public-key-pins-report-only" => PUBLIC_KEY_PINS_REPORT_ONLY],
        28 => [b"access-control-allow-headers" => ACCESS_CONTROL_ALLOW_HEADERS, b"access-control-allow-methods" => ACCESS_CONTROL_ALLOW_METHODS],
        29 => [b"access-control-expose-headers" => ACCESS_CONTROL_EXPOSE_HEADERS, b"access-control-request-method" => ACCESS_CONTROL_REQUEST_METHOD],
        30 => [b"access-control-request-headers" => ACCESS_CONTROL_REQUEST_HEADERS],
        32 => [b"access-control-allow-credentials" => ACCESS_CONTROL_ALLOW_CREDENTIALS],
        35 => [b"content-security-policy-report-only" => CONTENT_SECURITY_POLICY_REPORT_ONLY],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [&str; 81] = [
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "access-control-allow-credentials",
        "access-control-allow-headers",
        "access-control-allow-methods",
        "access-control-allow-origin",
        "access-control-expose-headers",
        "access-control-max-age",
        "access-control-request-headers",
        "access-control-request-method",
        "age",
        "allow",
        "alt-svc",
        "authorization",
        "cache-control",
        "cache-status",
        "cdn-cache-control",
        "connection",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-range",
        "content-security-policy",
        "content-security-policy-report-only",
        "content-type",
        "cookie",
        "dnt",
        "date",
        "etag",
        "expect",
        "expires",
        "forwarded",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "link",
        "location",
        "max-forwards",
        "origin",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "public-key-pins",
        "public-key-pins-report-only",
        "range",
        "referer",
        "referrer-policy",
        "refresh",
        "retry-after",
        "sec-websocket-accept",
        "sec-websocket-extensions",
        "sec-websocket-key",
        "sec-websocket-protocol",
        "sec-websocket-version",
        "server",
        "set-cookie",
        "strict-transport-security",
        "te",
        "trailer",
        "transfer-encoding",
        "user-agent",
        "upgrade",
        "upgrade-insecure-requests",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "x-content-type-options",
        "x-dns-prefetch-control",
        "x-frame-options",
        "x-xss-protection",
    ];

    #[test]
    fn agrees_with_from_bytes() {
        for name in ALL {
            let std = HeaderName::from_bytes(name.as_bytes()).expect("standard name");
            let bit = crate::known::bit(&std);
            let found = |input: &[u8]| {
                standard_header_name(input).map(|f| {
                    // a static spelling is only ever the input itself
                    if let Some(titled) = f.titled {
                        assert_eq!(titled, input);
                    }
                    (f.name, f.bit)
                })
            };
            assert_eq!(found(name.as_bytes()), Some((std.clone(), bit)), "{name}");
            let upper = name.to_ascii_uppercase();
            assert_eq!(found(upper.as_bytes()), Some((std.clone(), bit)));
            let mut titled = name.as_bytes().to_vec();
            titled[0] = titled[0].to_ascii_uppercase();
            assert_eq!(found(&titled), Some((std.clone(), bit)));
            // the usual spelling, where one is listed, is recognised as such
            let usual = crate::case_header_name::titled_header_name_str(&std);
            if let Some(usual) = usual {
                let f = standard_header_name(usual.as_bytes()).expect("standard");
                if let Some(titled) = f.titled {
                    assert_eq!(titled, usual.as_bytes());
                }
            }
        }
    }

    #[test]
    fn titled_spellings_name_the_same_header() {
        // the header types group spellings by comparing them without case
        for name in ALL {
            let std = HeaderName::from_bytes(name.as_bytes()).expect("standard name");
            let titled = crate::IntoCaseHeaderName::into_case_header_name(std);
            assert!(
                titled.as_slice().eq_ignore_ascii_case(name.as_bytes()),
                "{name}"
            );
        }
    }

    #[test]
    fn near_misses_are_not_standard() {
        // every byte of every standard name, replaced by each byte value: a hit must be exactly
        // what the full parser says
        for name in ALL {
            for i in 0..name.len() {
                for b in 0..=255u8 {
                    let mut v = name.as_bytes().to_vec();
                    v[i] = b;
                    if let Some(f) = standard_header_name(&v) {
                        assert_eq!(Some(f.name), HeaderName::from_bytes(&v).ok(), "{v:?}");
                        assert!(f.titled.is_none_or(|t| t == &v[..]), "{v:?}");
                    }
                }
            }
        }
        for other in [
            "",
            "x",
            "hos",
            "hostt",
            "x-custom",
            "content_length",
            "content-lengtH ",
        ] {
            assert!(standard_header_name(other.as_bytes()).is_none(), "{other}");
        }
    }
}
