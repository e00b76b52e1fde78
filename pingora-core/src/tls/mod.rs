//! The TLS backend, chosen at build time by a cargo feature.
//!
//! `pingora_core::tls` is the one name the rest of the framework (and user
//! code) uses for the TLS library: with the `openssl` feature (the default)
//! it re-exports the [`openssl`](https://docs.rs/openssl) crate's modules,
//! with `boringssl` those of the [`boring`](https://docs.rs/boring) crate.
//! Both crates share their API shape, so `tls::ssl::SslVerifyMode`,
//! `tls::x509::X509`, `tls::pkey::PKey` ... are written the same way against
//! either backend. The few places where the libraries differ are wrapped in
//! [`ext`].
//!
//! Enable exactly one backend. With both, the build stops with an error
//! saying so; with neither, pingora builds without TLS (TLS listeners and
//! TLS peers are then unavailable).

#[cfg(all(feature = "openssl", feature = "boringssl"))]
compile_error!(
    "pingora-core: the `openssl` and `boringssl` features are mutually exclusive. \
     To use BoringSSL, depend on pingora (or pingora-core) with \
     `default-features = false, features = [\"boringssl\", ...]`."
);

#[cfg(feature = "openssl")]
pub use openssl::{asn1, bn, error, hash, nid, pkey, rsa, ssl, stack, version, x509};

#[cfg(all(feature = "boringssl", not(feature = "openssl")))]
pub use boring::{asn1, bn, error, hash, nid, pkey, rsa, ssl, stack, version, x509};

pub mod ext;

/// The name of the TLS backend this build uses: `"openssl"` or
/// `"boringssl"`.
pub const BACKEND: &str = if cfg!(feature = "openssl") {
    "openssl"
} else {
    "boringssl"
};
