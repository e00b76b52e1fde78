//! One error type for every crate of the framework.
//!
//! An [`Error`] records four things a proxy needs to decide what to do next:
//!
//! * **what** went wrong, as an [`ErrorType`] (connect refused, read timed out,
//!   an HTTP status to answer with, ...);
//! * **who** is to blame, as an [`ErrorSource`] (the upstream, the downstream
//!   client, or ourselves), which decides e.g. between a 502 and a 400;
//! * whether the operation **may be retried** ([`RetryType`]);
//! * a human readable **context** plus an optional **cause** (any
//!   `std::error::Error`, including another [`Error`]), which `Display` prints
//!   as a chain.
//!
//! ```
//! use pingora_error::{Error, ErrorType, OrErr, Result};
//!
//! fn parse_port(s: &str) -> Result<u16> {
//!     s.parse::<u16>()
//!         .or_err(ErrorType::InvalidHTTPHeader, "port is not a number")
//! }
//!
//! let e = parse_port("http").unwrap_err();
//! assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader);
//! assert!(e.to_string().contains("port is not a number"));
//!
//! let e = Error::explain(ErrorType::HTTPStatus(403), "forbidden by policy");
//! assert_eq!(e.etype().http_status(), Some(403));
//! ```
#![warn(missing_docs)]

mod error_type;
mod ext;
mod immut_str;

pub use error_type::{ErrorSource, ErrorType, RetryType};
pub use ext::{OkOrErr, OrErr};
pub use immut_str::ImmutStr;

use std::error::Error as ErrorTrait;
use std::fmt;

/// A boxed [`Error`]; the error half of every [`Result`] in the framework.
pub type BError = Box<Error>;

/// The framework's result type. The error defaults to [`BError`].
pub type Result<T, E = BError> = std::result::Result<T, E>;

/// Any error that can be kept as the cause of an [`Error`].
pub type Cause = Box<dyn ErrorTrait + Send + Sync>;

/// The framework's error.
///
/// Fields are public so that callbacks can inspect and adjust an error in
/// place (for example flip [`Error::retry`] in a `fail_to_connect` phase).
#[derive(Debug)]
pub struct Error {
    /// What kind of failure this is.
    pub etype: ErrorType,
    /// Which side of the proxy caused it.
    pub esource: ErrorSource,
    /// Whether the failed operation may be tried again.
    pub retry: RetryType,
    /// The lower level error that caused this one, if any.
    pub cause: Option<Cause>,
    /// What we were doing when it happened.
    pub context: Option<ImmutStr>,
}

impl Error {
    /// Build an error from all its parts.
    pub fn create(
        etype: ErrorType,
        esource: ErrorSource,
        context: Option<ImmutStr>,
        cause: Option<Cause>,
    ) -> BError {
        let retry = match &cause {
            // Inherit the retry decision of a wrapped framework error so that
            // adding context never loses it.
            Some(c) => match as_framework_error(c.as_ref()) {
                Some(inner) => inner.retry,
                None => RetryType::Decided(false),
            },
            None => RetryType::Decided(false),
        };
        Box::new(Error {
            etype,
            esource,
            retry,
            cause,
            context,
        })
    }

    fn do_new(etype: ErrorType, esource: ErrorSource) -> BError {
        Self::create(etype, esource, None, None)
    }

    /// A new error of this type with an unset source.
    pub fn new(etype: ErrorType) -> BError {
        Self::do_new(etype, ErrorSource::Unset)
    }

    /// A new error blamed on the upstream.
    pub fn new_up(etype: ErrorType) -> BError {
        Self::do_new(etype, ErrorSource::Upstream)
    }

    /// A new error blamed on the downstream client.
    pub fn new_down(etype: ErrorType) -> BError {
        Self::do_new(etype, ErrorSource::Downstream)
    }

    /// A new internal error.
    pub fn new_in(etype: ErrorType) -> BError {
        Self::do_new(etype, ErrorSource::Internal)
    }

    /// A new [`ErrorType::Custom`] error.
    pub fn new_str(name: &'static str) -> BError {
        Self::new(ErrorType::Custom(name))
    }

    /// A new error of this type with an explanation.
    pub fn explain<S: Into<ImmutStr>>(etype: ErrorType, context: S) -> BError {
        Self::create(etype, ErrorSource::Unset, Some(context.into()), None)
    }

    /// `Err` of [`Error::explain`].
    pub fn e_explain<T, S: Into<ImmutStr>>(etype: ErrorType, context: S) -> Result<T> {
        Err(Self::explain(etype, context))
    }

    /// A new error of this type caused by another error.
    pub fn because<S: Into<ImmutStr>, E: Into<Cause>>(
        etype: ErrorType,
        context: S,
        cause: E,
    ) -> BError {
        Self::create(
            etype,
            ErrorSource::Unset,
            Some(context.into()),
            Some(cause.into()),
        )
    }

    /// `Err` of [`Error::because`].
    pub fn e_because<T, S: Into<ImmutStr>, E: Into<Cause>>(
        etype: ErrorType,
        context: S,
        cause: E,
    ) -> Result<T> {
        Err(Self::because(etype, context, cause))
    }

    /// Wrap `cause` in a new error of this type, without context.
    pub fn new_with_cause<E: Into<Cause>>(etype: ErrorType, cause: E) -> BError {
        Self::create(etype, ErrorSource::Unset, None, Some(cause.into()))
    }

    /// The kind of this error.
    pub fn etype(&self) -> &ErrorType {
        &self.etype
    }

    /// Which side caused this error.
    pub fn esource(&self) -> &ErrorSource {
        &self.esource
    }

    /// Whether the operation may be retried. [`RetryType::ReusedOnly`]
    /// answers `false` here: see [`Error::retry_if_reused`].
    pub fn retry(&self) -> bool {
        matches!(self.retry, RetryType::Decided(true))
    }

    /// Whether the operation may be retried given whether the failing
    /// connection came from a pool (`reused`).
    pub fn retry_if_reused(&self, reused: bool) -> bool {
        match self.retry {
            RetryType::Decided(b) => b,
            RetryType::ReusedOnly => reused,
        }
    }

    /// Decide whether the failed operation may be retried.
    pub fn set_retry(&mut self, retry: bool) {
        self.retry = RetryType::Decided(retry);
    }

    /// Mark the error retryable only when the connection had been reused.
    pub fn set_retry_reused_only(&mut self) {
        self.retry = RetryType::ReusedOnly;
    }

    /// Change the kind of this error.
    pub fn set_etype(&mut self, etype: ErrorType) {
        self.etype = etype;
    }

    /// Change who is blamed for this error.
    pub fn set_esource(&mut self, esource: ErrorSource) {
        self.esource = esource;
    }

    /// Replace the context.
    pub fn set_context<S: Into<ImmutStr>>(&mut self, context: S) {
        self.context = Some(context.into());
    }

    /// Append to the context, keeping what was there.
    pub fn more_context<S: Into<ImmutStr>>(self: BError, more: S) -> BError {
        let mut e = self;
        let more = more.into();
        e.context = Some(match e.context.take() {
            Some(old) => ImmutStr::from(format!("{more}: {old}")),
            None => more,
        });
        e
    }

    /// Set the cause.
    pub fn set_cause<E: Into<Cause>>(&mut self, cause: E) {
        self.cause = Some(cause.into());
    }

    /// Blame the upstream.
    pub fn into_up(mut self: BError) -> BError {
        self.esource = ErrorSource::Upstream;
        self
    }

    /// Blame the downstream client.
    pub fn into_down(mut self: BError) -> BError {
        self.esource = ErrorSource::Downstream;
        self
    }

    /// Blame ourselves.
    pub fn into_in(mut self: BError) -> BError {
        self.esource = ErrorSource::Internal;
        self
    }

    /// Blame the upstream, in place.
    pub fn as_up(&mut self) {
        self.esource = ErrorSource::Upstream;
    }

    /// Blame the downstream client, in place.
    pub fn as_down(&mut self) {
        self.esource = ErrorSource::Downstream;
    }

    /// Blame ourselves, in place.
    pub fn as_in(&mut self) {
        self.esource = ErrorSource::Internal;
    }

    /// `Err(self)`.
    pub fn into_err<T>(self: BError) -> Result<T> {
        Err(self)
    }

    /// The name of this error's kind.
    pub fn reason_str(&self) -> &str {
        self.etype.as_str()
    }

    /// The innermost cause of this error (itself when it has none).
    pub fn root_cause(&self) -> &(dyn ErrorTrait + Send + Sync + 'static) {
        let mut current: &(dyn ErrorTrait + Send + Sync + 'static) = self;
        loop {
            let next = match as_framework_error(current) {
                Some(e) => e.cause.as_deref(),
                None => None,
            };
            match next {
                Some(n) => current = n,
                None => return current,
            }
        }
    }

    /// The kind of the innermost framework [`Error`] in the cause chain.
    pub fn root_etype(&self) -> &ErrorType {
        let mut current = self;
        while let Some(inner) = current.cause.as_deref().and_then(as_framework_error) {
            current = inner;
        }
        &current.etype
    }

    /// A copy of this error without its cause (causes are not `Clone`).
    pub fn duplicate(&self) -> BError {
        Box::new(Error {
            etype: self.etype.clone(),
            esource: self.esource.clone(),
            retry: self.retry,
            cause: None,
            context: self.context.clone(),
        })
    }

    fn chain_display(
        &self,
        previous: Option<&ErrorSource>,
        f: &mut fmt::Formatter<'_>,
    ) -> fmt::Result {
        if previous != Some(&self.esource) && self.esource != ErrorSource::Unset {
            write!(f, "{} ", self.esource.as_str())?;
        }
        write!(f, "{}", self.etype.as_str())?;
        if let Some(code) = self.etype.http_status() {
            write!(f, "({code})")?;
        }
        if let Some(ctx) = &self.context {
            write!(f, " context: {ctx}")?;
        }
        if let Some(cause) = &self.cause {
            write!(f, " cause: ")?;
            match as_framework_error(cause.as_ref()) {
                Some(inner) => inner.chain_display(Some(&self.esource), f)?,
                None => write!(f, "{cause}")?,
            }
        }
        Ok(())
    }
}

/// A cause that is itself a framework error, whether it was passed as `Error`
/// or as `Box<Error>` (which `Into<Cause>` boxes a second time).
fn as_framework_error<'a>(c: &'a (dyn ErrorTrait + Send + Sync + 'static)) -> Option<&'a Error> {
    c.downcast_ref::<Error>()
        .or_else(|| c.downcast_ref::<BError>().map(|b| b.as_ref()))
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chain_display(None, f)
    }
}

impl ErrorTrait for Error {
    fn source(&self) -> Option<&(dyn ErrorTrait + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn ErrorTrait + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_chain_and_sources() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer reset");
        let inner = Error::because(ErrorType::ReadError, "reading body", io).into_up();
        let outer = Error::because(ErrorType::InternalError, "proxying", inner).into_in();
        let s = outer.to_string();
        assert_eq!(
            s,
            "Internal InternalError context: proxying cause: Upstream ReadError context: reading body cause: peer reset"
        );
    }

    #[test]
    fn http_status_is_shown() {
        let e = Error::explain(ErrorType::HTTPStatus(404), "no route");
        assert_eq!(e.to_string(), "HTTPStatus(404) context: no route");
    }

    #[test]
    fn retry_is_inherited_from_wrapped_error() {
        let mut inner = Error::new_up(ErrorType::ConnectRefused);
        inner.set_retry(true);
        let outer = Error::because(ErrorType::ConnectError, "connecting", inner);
        assert!(outer.retry());
        assert_eq!(outer.root_etype(), &ErrorType::ConnectRefused);
    }

    #[test]
    fn reused_only_retry() {
        let mut e = Error::new(ErrorType::ConnectionClosed);
        e.set_retry_reused_only();
        assert!(!e.retry());
        assert!(e.retry_if_reused(true));
        assert!(!e.retry_if_reused(false));
    }

    #[test]
    fn decide_reuse_settles_reused_only() {
        let mut r = RetryType::ReusedOnly;
        r.decide_reuse(true);
        assert_eq!(r, RetryType::Decided(true));
        let mut r = RetryType::ReusedOnly;
        r.decide_reuse(false);
        assert!(!r.retry());
        let mut r = RetryType::Decided(true);
        r.decide_reuse(false);
        assert!(r.retry());
    }

    #[test]
    fn more_context_prepends() {
        let e = Error::explain(ErrorType::ReadError, "inner").more_context("outer");
        assert_eq!(e.context.as_ref().map(|c| c.as_str()), Some("outer: inner"));
    }

    #[test]
    fn root_cause_reaches_foreign_error() {
        let io = std::io::Error::other("disk on fire");
        let e = Error::because(ErrorType::FileReadError, "read", io);
        let e = Error::because(ErrorType::InternalError, "outer", e);
        assert_eq!(e.root_cause().to_string(), "disk on fire");
    }
}
