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
fn eq_lower<const N: usize>(input: &[u8; N], lower: &[u8; N]) -> bool {
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

macro_rules! by_length {
    ($name:expr; $($len:literal => [$($lit:literal => $hdr:ident),+],)+) => {
        match $name.len() {
            $($len => {
                // the length was just matched, so the conversion cannot fail
                let input: &[u8; $len] = $name.try_into().ok()?;
                $(if eq_lower(input, $lit) {
                    return Some($hdr);
                })+
                None
            })+
            _ => None,
        }
    };
}

/// The standard header `name` spells (in any letter case), or `None` if it is not one.
pub(crate) fn standard_header_name(name: &[u8]) -> Option<HeaderName> {
    // within a length, the most frequent names come first
    by_length! { name;
        2 => [b"te" => TE],
        3 => [b"via" => VIA, b"age" => AGE, b"dnt" => DNT],
        4 => [b"host" => HOST, b"date" => DATE, b"etag" => ETAG, b"vary" => VARY, b"from" => FROM, b"link" => LINK],
        5 => [b"allow" => ALLOW, b"range" => RANGE],
        6 => [b"accept" => ACCEPT, b"server" => SERVER, b"cookie" => COOKIE, b"expect" => EXPECT, b"origin" => ORIGIN, b"pragma" => PRAGMA],
        7 => [b"expires" => EXPIRES, b"referer" => REFERER, b"upgrade" => UPGRADE, b"alt-svc" => ALT_SVC, b"refresh" => REFRESH, b"trailer" => TRAILER, b"warning" => WARNING],
        8 => [b"location" => LOCATION, b"if-match" => IF_MATCH, b"if-range" => IF_RANGE],
        9 => [b"forwarded" => FORWARDED],
        10 => [b"user-agent" => USER_AGENT, b"connection" => CONNECTION, b"set-cookie" => SET_COOKIE],
        11 => [b"retry-after" => RETRY_AFTER],
        12 => [b"content-type" => CONTENT_TYPE, b"cache-status" => CACHE_STATUS, b"max-forwards" => MAX_FORWARDS],
        13 => [b"cache-control" => CACHE_CONTROL, b"last-modified" => LAST_MODIFIED, b"accept-ranges" => ACCEPT_RANGES, b"authorization" => AUTHORIZATION, b"content-range" => CONTENT_RANGE, b"if-none-match" => IF_NONE_MATCH],
        14 => [b"content-length" => CONTENT_LENGTH, b"accept-charset" => ACCEPT_CHARSET],
        15 => [b"accept-encoding" => ACCEPT_ENCODING, b"accept-language" => ACCEPT_LANGUAGE, b"public-key-pins" => PUBLIC_KEY_PINS, b"referrer-policy" => REFERRER_POLICY, b"x-frame-options" => X_FRAME_OPTIONS],
        16 => [b"content-encoding" => CONTENT_ENCODING, b"content-language" => CONTENT_LANGUAGE, b"content-location" => CONTENT_LOCATION, b"www-authenticate" => WWW_AUTHENTICATE, b"x-xss-protection" => X_XSS_PROTECTION],
        17 => [b"transfer-encoding" => TRANSFER_ENCODING, b"cdn-cache-control" => CDN_CACHE_CONTROL, b"if-modified-since" => IF_MODIFIED_SINCE, b"sec-websocket-key" => SEC_WEBSOCKET_KEY],
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
            assert_eq!(
                standard_header_name(name.as_bytes()),
                Some(std.clone()),
                "{name}"
            );
            let upper = name.to_ascii_uppercase();
            assert_eq!(standard_header_name(upper.as_bytes()), Some(std.clone()));
            let mut titled = name.as_bytes().to_vec();
            titled[0] = titled[0].to_ascii_uppercase();
            assert_eq!(standard_header_name(&titled), Some(std));
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
                    if let Some(h) = standard_header_name(&v) {
                        assert_eq!(Some(h), HeaderName::from_bytes(&v).ok(), "{v:?}");
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
            assert_eq!(standard_header_name(other.as_bytes()), None, "{other}");
        }
    }
}
