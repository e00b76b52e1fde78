//! HTTP request and response headers that remember how header names were spelled.
//!
//! Header names are case-insensitive, yet a transparent proxy should forward what it received
//! byte for byte where it can: some peers (wrongly) depend on a particular spelling. The
//! [`RequestHeader`] and [`ResponseHeader`] types here wrap [`http::request::Parts`] and
//! [`http::response::Parts`] (reachable through [`Deref`](std::ops::Deref)) and keep, next to
//! the normalized [`HeaderMap`](http::HeaderMap), the original spelling of every header name.
//! [`RequestHeader::header_to_h1_wire`] then writes the header block exactly as received.
//!
//! Mutation goes through methods (`insert_header`, `append_header`, `remove_header`, ...)
//! rather than through the inner `Parts`, so values and spellings can never drift apart.
//!
//! Order: distinct names keep their first-insertion order; repeated values of one name are
//! written together, in the order they were added, at the position of the name's first
//! occurrence (the grouping [`http::HeaderMap`] imposes). Removing a name may move the last
//! name into its place.
//!
//! ```
//! use pingora_http::RequestHeader;
//!
//! let mut req = RequestHeader::build("GET", b"/index.html", None).unwrap();
//! req.insert_header("hOSt", "example.com").unwrap();
//! req.append_header("X-Trace", "1").unwrap();
//! assert_eq!(req.headers.get("host").unwrap(), "example.com"); // lookups ignore case
//!
//! let mut wire = Vec::new();
//! req.header_to_h1_wire(&mut wire);
//! assert_eq!(wire, b"hOSt: example.com\r\nX-Trace: 1\r\n");
//! ```
//!
//! The parts cannot be mutated behind the header's back:
//!
//! ```compile_fail
//! let mut req = pingora_http::RequestHeader::build("GET", b"/", None).unwrap();
//! req.headers.remove("host");
//! ```

#![warn(missing_docs)]

mod case_header_name;
mod case_map;
#[doc(hidden)]
pub mod known;
mod request;
mod response;
mod standard_name;
mod target;

pub use case_header_name::{CaseHeaderName, IntoCaseHeaderName};
pub use http::method::Method;
pub use http::status::StatusCode;
pub use http::version::Version;
/// The [`http::HeaderMap`] type, re-exported under the short name Pingora uses.
pub use http::HeaderMap as HMap;
pub use request::RequestHeader;
pub use response::ResponseHeader;

/// The header types most code needs, for a single glob import.
pub mod prelude {
    pub use crate::RequestHeader;
    pub use crate::ResponseHeader;
}

/// One header name as handed to the callback of [`RequestHeader::map`] /
/// [`ResponseHeader::map`].
pub enum HeaderNameVariant<'a> {
    /// The spelling recorded when the header was added (case-preserving headers).
    Case(&'a CaseHeaderName),
    /// A canonical spelling: title case for well-known names, lower case otherwise
    /// (headers built without case preservation).
    Titled(&'a str),
}

#[cfg(test)]
mod tests;
