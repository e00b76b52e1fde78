use std::fmt;

/// A string that is either borrowed for `'static` or owned, so that the common
/// case (a literal context message) costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImmutStr {
    /// A string literal.
    Static(&'static str),
    /// A string built at run time.
    Owned(Box<str>),
}

impl ImmutStr {
    /// The string.
    pub fn as_str(&self) -> &str {
        match self {
            ImmutStr::Static(s) => s,
            ImmutStr::Owned(s) => s,
        }
    }

    /// Whether the string is owned (allocated).
    pub fn is_owned(&self) -> bool {
        matches!(self, ImmutStr::Owned(_))
    }
}

impl fmt::Display for ImmutStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for ImmutStr {
    fn from(s: &'static str) -> Self {
        ImmutStr::Static(s)
    }
}

impl From<String> for ImmutStr {
    fn from(s: String) -> Self {
        ImmutStr::Owned(s.into_boxed_str())
    }
}

impl AsRef<str> for ImmutStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}
