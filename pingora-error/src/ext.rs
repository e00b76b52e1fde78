use super::{BError, Cause, Error, ErrorType, ImmutStr};

/// Turn a foreign `Result` into the framework's, attaching a kind and context.
pub trait OrErr<T, E> {
    /// Wrap the error as the cause of a new error of kind `et`.
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T, BError>
    where
        E: Into<Cause>;

    /// Like [`OrErr::or_err`] with a context built only on failure.
    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError>
    where
        E: Into<Cause>;

    /// Replace the error with a new one of kind `et` whose context is built
    /// from the old error (which is dropped).
    fn explain_err<C: Into<ImmutStr>, F: FnOnce(E) -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError>;

    /// Wrap the error with kind [`ErrorType::InternalError`] and no context.
    fn or_fail(self) -> Result<T, BError>
    where
        E: Into<Cause>;
}

impl<T, E> OrErr<T, E> for Result<T, E> {
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T, BError>
    where
        E: Into<Cause>,
    {
        self.map_err(|e| Error::because(et, context, e))
    }

    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError>
    where
        E: Into<Cause>,
    {
        self.map_err(|e| Error::because(et, context(), e))
    }

    fn explain_err<C: Into<ImmutStr>, F: FnOnce(E) -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError> {
        self.map_err(|e| Error::explain(et, context(e)))
    }

    fn or_fail(self) -> Result<T, BError>
    where
        E: Into<Cause>,
    {
        self.map_err(|e| Error::new_with_cause(ErrorType::InternalError, e))
    }
}

/// Turn an `Option` into the framework's `Result`.
pub trait OkOrErr<T> {
    /// `None` becomes an error of kind `et` with this context.
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T, BError>;

    /// Like [`OkOrErr::or_err`] with a context built only on failure.
    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError>;
}

impl<T> OkOrErr<T> for Option<T> {
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T, BError> {
        self.ok_or_else(|| Error::explain(et, context))
    }

    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError> {
        self.ok_or_else(|| Error::explain(et, context()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn or_err_keeps_cause() {
        let r: Result<u8, std::num::ParseIntError> = "x".parse::<u8>();
        let e = r
            .or_err(ErrorType::InvalidHTTPHeader, "bad number")
            .unwrap_err();
        assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader);
        assert!(e.cause.is_some());
    }

    #[test]
    fn explain_err_uses_old_error() {
        let r: Result<(), &str> = Err("boom");
        let e = r
            .explain_err(ErrorType::InternalError, |e| format!("it went {e}"))
            .unwrap_err();
        assert_eq!(e.context.unwrap().as_str(), "it went boom");
    }

    #[test]
    fn option_or_err() {
        let e = None::<u8>
            .or_err_with(ErrorType::ConnectNoRoute, || "no backend".to_string())
            .unwrap_err();
        assert_eq!(e.etype(), &ErrorType::ConnectNoRoute);
        assert_eq!(Some(3u8).or_err(ErrorType::ConnectNoRoute, "x").unwrap(), 3);
    }
}
