/// Which side of the proxy an error is blamed on.
#[derive(Debug, PartialEq, Eq, Clone, Hash)]
pub enum ErrorSource {
    /// The upstream server (origin) misbehaved or was unreachable.
    Upstream,
    /// The downstream client misbehaved.
    Downstream,
    /// A bug or resource problem of our own.
    Internal,
    /// Not decided yet.
    Unset,
}

impl ErrorSource {
    /// Name used in logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorSource::Upstream => "Upstream",
            ErrorSource::Downstream => "Downstream",
            ErrorSource::Internal => "Internal",
            ErrorSource::Unset => "",
        }
    }
}

/// Whether an operation that failed may be tried again.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum RetryType {
    /// The decision is made.
    Decided(bool),
    /// Retry only if the connection used had come from the pool: a reused
    /// connection may have been closed by the peer in the meantime, a fresh
    /// one failing means the peer is really failing.
    ReusedOnly,
}

impl RetryType {
    /// Settle a [`RetryType::ReusedOnly`] decision now that it is known
    /// whether the connection had been reused.
    pub fn decide_reuse(&mut self, reused: bool) {
        if matches!(self, RetryType::ReusedOnly) {
            *self = RetryType::Decided(reused);
        }
    }

    /// Whether to retry; an unsettled [`RetryType::ReusedOnly`] answers `false`.
    pub fn retry(&self) -> bool {
        matches!(self, RetryType::Decided(true))
    }
}

impl From<bool> for RetryType {
    fn from(b: bool) -> Self {
        RetryType::Decided(b)
    }
}

/// What kind of failure an [`crate::Error`] is.
#[derive(Debug, PartialEq, Eq, Clone, Hash)]
pub enum ErrorType {
    // connecting
    /// Connecting took longer than the connect timeout.
    ConnectTimedout,
    /// The peer refused the connection.
    ConnectRefused,
    /// No route to the peer (or no peer to pick).
    ConnectNoRoute,
    /// A TLS handshake needs a certificate lookup (used by certificate callbacks).
    TLSWantX509Lookup,
    /// The TLS handshake failed.
    TLSHandshakeFailure,
    /// The TLS handshake took too long.
    TLSHandshakeTimedout,
    /// The peer's certificate failed verification.
    InvalidCert,
    /// A handshake (of any protocol) failed.
    HandshakeError,
    /// Connecting failed for another reason.
    ConnectError,
    /// Binding a socket failed.
    BindError,
    /// Accepting a connection failed.
    AcceptError,
    /// A socket operation failed.
    SocketError,
    /// A CONNECT proxy in front of the peer refused us.
    ConnectProxyFailure,
    // protocol
    /// An HTTP header could not be parsed or is not allowed.
    InvalidHTTPHeader,
    /// An HTTP/1 protocol violation.
    H1Error,
    /// An HTTP/2 protocol error.
    H2Error,
    /// The HTTP/2 peer asked us to downgrade to HTTP/1.1.
    H2Downgrade,
    /// An HTTP/2 peer sent something invalid.
    InvalidH2,
    // IO
    /// Reading failed.
    ReadError,
    /// Writing failed.
    WriteError,
    /// Reading took longer than the read timeout.
    ReadTimedout,
    /// Writing took longer than the write timeout.
    WriteTimedout,
    /// The peer closed the connection.
    ConnectionClosed,
    // application
    /// Answer the client with this HTTP status.
    HTTPStatus(u16),
    // files
    /// Opening a file failed.
    FileOpenError,
    /// Creating a file failed.
    FileCreateError,
    /// Reading a file failed.
    FileReadError,
    /// Writing a file failed.
    FileWriteError,
    // other
    /// An internal error.
    InternalError,
    /// An unknown error.
    UnknownError,
    /// A user-defined error.
    Custom(&'static str),
    /// A user-defined error with a code.
    CustomCode(&'static str, u16),
}

impl ErrorType {
    /// A user-defined error kind.
    pub const fn new(name: &'static str) -> Self {
        ErrorType::Custom(name)
    }

    /// A user-defined error kind with a code.
    pub const fn new_code(name: &'static str, code: u16) -> Self {
        ErrorType::CustomCode(name, code)
    }

    /// The status carried by [`ErrorType::HTTPStatus`].
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ErrorType::HTTPStatus(c) => Some(*c),
            _ => None,
        }
    }

    /// Name used in logs.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorType::ConnectTimedout => "ConnectTimedout",
            ErrorType::ConnectRefused => "ConnectRefused",
            ErrorType::ConnectNoRoute => "ConnectNoRoute",
            ErrorType::TLSWantX509Lookup => "TLSWantX509Lookup",
            ErrorType::TLSHandshakeFailure => "TLSHandshakeFailure",
            ErrorType::TLSHandshakeTimedout => "TLSHandshakeTimedout",
            ErrorType::InvalidCert => "InvalidCert",
            ErrorType::HandshakeError => "HandshakeError",
            ErrorType::ConnectError => "ConnectError",
            ErrorType::BindError => "BindError",
            ErrorType::AcceptError => "AcceptError",
            ErrorType::SocketError => "SocketError",
            ErrorType::ConnectProxyFailure => "ConnectProxyFailure",
            ErrorType::InvalidHTTPHeader => "InvalidHTTPHeader",
            ErrorType::H1Error => "H1Error",
            ErrorType::H2Error => "H2Error",
            ErrorType::H2Downgrade => "H2Downgrade",
            ErrorType::InvalidH2 => "InvalidH2",
            ErrorType::ReadError => "ReadError",
            ErrorType::WriteError => "WriteError",
            ErrorType::ReadTimedout => "ReadTimedout",
            ErrorType::WriteTimedout => "WriteTimedout",
            ErrorType::ConnectionClosed => "ConnectionClosed",
            ErrorType::HTTPStatus(_) => "HTTPStatus",
            ErrorType::FileOpenError => "FileOpenError",
            ErrorType::FileCreateError => "FileCreateError",
            ErrorType::FileReadError => "FileReadError",
            ErrorType::FileWriteError => "FileWriteError",
            ErrorType::InternalError => "InternalError",
            ErrorType::UnknownError => "UnknownError",
            ErrorType::Custom(s) => s,
            ErrorType::CustomCode(s, _) => s,
        }
    }
}

impl std::fmt::Display for ErrorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
