//! Certificate material carried by peers for the TLS layer.
//!
//! TLS itself arrives with the TLS backend features; until then peers can
//! already carry the DER-encoded material that layer will consume, and that
//! material takes part in connection-reuse decisions.

use std::fmt;
use std::hash::{Hash, Hasher};

/// A DER-encoded X.509 certificate (e.g. a trusted CA for upstream checks).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct X509 {
    der: Vec<u8>,
}

impl X509 {
    /// Wrap a DER-encoded certificate.
    pub fn from_der(der: impl Into<Vec<u8>>) -> Self {
        X509 { der: der.into() }
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

impl fmt::Debug for X509 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "X509({} bytes DER)", self.der.len())
    }
}

/// A client certificate chain and its private key, for mutual TLS.
#[derive(Clone)]
pub struct CertKey {
    certificates: Vec<X509>,
    key: Vec<u8>,
}

impl CertKey {
    /// A leaf certificate followed by its intermediates, and the DER-encoded
    /// private key of the leaf.
    pub fn new(certificates: Vec<X509>, key: impl Into<Vec<u8>>) -> Self {
        CertKey {
            certificates,
            key: key.into(),
        }
    }

    /// The leaf certificate, if any.
    pub fn leaf(&self) -> Option<&X509> {
        self.certificates.first()
    }

    /// The intermediate certificates after the leaf.
    pub fn intermediates(&self) -> &[X509] {
        self.certificates.get(1..).unwrap_or_default()
    }

    /// The DER-encoded private key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

// Identity is the certificate chain: the key never leaves this struct, not
// even through Debug or hashing.
impl Hash for CertKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.certificates.hash(state);
    }
}

impl fmt::Debug for CertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertKey")
            .field("certificates", &self.certificates)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for CertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cert chain of {}", self.certificates.len())
    }
}

#[cfg(any(feature = "openssl", feature = "boringssl"))]
mod pem {
    use super::{CertKey, X509};
    use crate::tls::pkey::PKey;
    use crate::tls::x509::X509 as TlsX509;
    use pingora_error::{ErrorType::InternalError, OrErr, Result};

    impl X509 {
        /// Every certificate in a PEM document (e.g. a CA bundle).
        pub fn stack_from_pem(pem: &[u8]) -> Result<Vec<X509>> {
            let certs =
                TlsX509::stack_from_pem(pem).or_err(InternalError, "invalid PEM certificates")?;
            certs
                .iter()
                .map(|c| {
                    c.to_der()
                        .map(X509::from_der)
                        .or_err(InternalError, "cannot encode certificate")
                })
                .collect()
        }
    }

    impl CertKey {
        /// A certificate chain (leaf first) and its private key, read from
        /// PEM files.
        pub fn from_pem_files(cert_path: &str, key_path: &str) -> Result<CertKey> {
            let certs = std::fs::read(cert_path)
                .or_err_with(InternalError, || format!("cannot read {cert_path}"))?;
            let key = std::fs::read(key_path)
                .or_err_with(InternalError, || format!("cannot read {key_path}"))?;
            let key = PKey::private_key_from_pem(&key)
                .and_then(|k| k.private_key_to_der())
                .or_err_with(InternalError, || format!("invalid private key {key_path}"))?;
            Ok(CertKey::new(X509::stack_from_pem(&certs)?, key))
        }
    }
}
