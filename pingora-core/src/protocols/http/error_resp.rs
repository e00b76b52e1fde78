//! Ready-made error responses (empty body, not cacheable).

use super::SERVER_NAME;
use http::header;
use once_cell::sync::Lazy;
use pingora_http::ResponseHeader;

/// A response header for the error status `code`, with an empty body:
/// `Server`, `Date`, `Content-Length: 0` and `Cache-Control: private, no-store`.
/// Codes outside 100..=999 become 500.
pub fn gen_error_response(code: u16) -> ResponseHeader {
    let mut resp = ResponseHeader::build(code, Some(4))
        .or_else(|_| ResponseHeader::build(500, Some(4)))
        .expect("500 is a valid status");
    // static names and ASCII values: these inserts cannot fail
    let _ = resp.insert_header(header::SERVER, &SERVER_NAME[..]);
    let _ = resp.insert_header(header::DATE, super::date::get_cached_date());
    let _ = resp.insert_header(header::CONTENT_LENGTH, "0");
    let _ = resp.insert_header(header::CACHE_CONTROL, "private, no-store");
    resp
}

/// A ready `502 Bad Gateway` (clone it; refresh `Date` if it matters).
pub static HTTP_502_RESPONSE: Lazy<ResponseHeader> = Lazy::new(|| gen_error_response(502));
/// A ready `400 Bad Request` (clone it; refresh `Date` if it matters).
pub static HTTP_400_RESPONSE: Lazy<ResponseHeader> = Lazy::new(|| gen_error_response(400));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_headers() {
        let r = gen_error_response(404);
        assert_eq!(r.status.as_u16(), 404);
        assert_eq!(r.headers.get("content-length").unwrap(), "0");
        assert_eq!(r.headers.get("server").unwrap(), "Pingora");
        assert_eq!(HTTP_502_RESPONSE.status.as_u16(), 502);
        assert_eq!(HTTP_400_RESPONSE.status.as_u16(), 400);
        assert_eq!(gen_error_response(20).status.as_u16(), 500);
    }
}
