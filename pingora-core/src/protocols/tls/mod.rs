//! TLS-related types shared by peers, listeners and streams.
//!
//! [`SslDigest`] and [`ALPN`] exist in every build; [`TlsStream`] (a TLS
//! connection over any [`IO`](super::IO)) needs a TLS backend feature.

#[cfg(any(feature = "openssl", feature = "boringssl"))]
mod stream;
#[cfg(any(feature = "openssl", feature = "boringssl"))]
pub use crate::listeners::tls::{TlsAccept, TlsAcceptCallbacks, TlsRef};
#[cfg(any(feature = "openssl", feature = "boringssl"))]
pub use stream::{handshake_error, TlsStream};

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Facts about a TLS session, for logging and routing decisions.
///
/// On a downstream connection the certificate fields describe the client
/// certificate (mutual TLS), on an upstream connection the server's.
#[derive(Clone, Debug, Default)]
pub struct SslDigest {
    /// The negotiated cipher suite.
    pub cipher: &'static str,
    /// The negotiated protocol version (e.g. "TLSv1.3").
    pub version: &'static str,
    /// The organization of the peer certificate's subject, if any.
    pub organization: Option<String>,
    /// The serial number of the peer certificate (hex), if any.
    pub serial_number: Option<String>,
    /// The SHA-256 digest of the peer certificate (empty without one).
    pub cert_digest: Vec<u8>,
    /// The common name of the peer certificate's subject, if any.
    pub common_name: Option<String>,
    /// The key-exchange group negotiated (e.g. "X25519MLKEM768").
    pub group: Option<String>,
    /// The server name (SNI) of the connection, if one was sent.
    pub sni: Option<String>,
    /// Whether the session was resumed (session ticket or cache).
    pub session_reused: bool,
    /// Whether the TLS library runs in FIPS mode.
    pub fips: bool,
    /// What the listener's `handshake_complete_callback` returned.
    pub extension: SslDigestExtension,
}

/// User data attached to a [`SslDigest`] at the end of a handshake.
#[derive(Clone, Default)]
pub struct SslDigestExtension {
    value: Option<Arc<dyn Any + Send + Sync>>,
}

impl SslDigestExtension {
    /// Attach `value`.
    pub fn set(&mut self, value: Arc<dyn Any + Send + Sync>) {
        self.value = Some(value);
    }

    /// The attached value, if it is a `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.value.as_ref().and_then(|v| v.downcast_ref::<T>())
    }
}

impl fmt::Debug for SslDigestExtension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.value.is_some() {
            "Some(..)"
        } else {
            "None"
        })
    }
}

/// Which HTTP versions to offer or accept through ALPN.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum ALPN {
    /// HTTP/1.1 only.
    #[default]
    H1,
    /// HTTP/2 only.
    H2,
    /// HTTP/2 preferred, HTTP/1.1 accepted.
    H2H1,
}

impl ALPN {
    /// The preference with the given HTTP version bounds (1 or 2).
    pub fn new(max: u8, min: u8) -> Self {
        if max == 1 {
            ALPN::H1
        } else if min == 2 {
            ALPN::H2
        } else {
            ALPN::H2H1
        }
    }

    /// The highest HTTP major version this preference allows.
    pub fn get_max_http_version(&self) -> u8 {
        match self {
            ALPN::H1 => 1,
            ALPN::H2 | ALPN::H2H1 => 2,
        }
    }

    /// The lowest HTTP major version this preference allows.
    pub fn get_min_http_version(&self) -> u8 {
        match self {
            ALPN::H1 | ALPN::H2H1 => 1,
            ALPN::H2 => 2,
        }
    }

    /// The ALPN protocol list in wire format (length-prefixed names).
    pub fn to_wire_preference(&self) -> &'static [u8] {
        match self {
            ALPN::H1 => b"\x08http/1.1",
            ALPN::H2 => b"\x02h2",
            ALPN::H2H1 => b"\x02h2\x08http/1.1",
        }
    }

    /// Interpret the protocol name the peer selected.
    pub fn from_wire_selected(raw: &[u8]) -> Option<Self> {
        match raw {
            b"http/1.1" => Some(ALPN::H1),
            b"h2" => Some(ALPN::H2),
            _ => None,
        }
    }
}

impl fmt::Display for ALPN {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ALPN::H1 => "H1",
            ALPN::H2 => "H2",
            ALPN::H2H1 => "H2H1",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_versions() {
        assert_eq!(ALPN::new(1, 1), ALPN::H1);
        assert_eq!(ALPN::new(2, 2), ALPN::H2);
        assert_eq!(ALPN::new(2, 1), ALPN::H2H1);
        assert_eq!(ALPN::H2H1.get_max_http_version(), 2);
        assert_eq!(ALPN::H2H1.get_min_http_version(), 1);
        assert_eq!(ALPN::from_wire_selected(b"h2"), Some(ALPN::H2));
        assert_eq!(ALPN::from_wire_selected(b"spdy"), None);
    }
}
