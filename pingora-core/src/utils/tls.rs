//! Certificate helpers.
//!
//! [`CertKey`] (a certificate chain and its private key) and [`X509`] are
//! backend-neutral (DER encoded), so they look the same with OpenSSL and
//! BoringSSL; the TLS layer converts them when a connection is set up.

pub use crate::upstreams::peer::{CertKey, X509};
