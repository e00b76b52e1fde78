//! TLS endpoints: [`TlsSettings`] describes how a listener terminates TLS,
//! [`TlsAccept`] lets user code pick certificates at handshake time.

use crate::protocols::tls::{handshake_error, TlsStream};
use crate::protocols::{ALPN, IO};
use crate::tls::ext;
use crate::tls::ssl::{
    self, select_next_proto, AlpnError, SslAcceptor, SslAcceptorBuilder, SslContext, SslFiletype,
    SslMethod, SslRef, SslVerifyMode,
};
use crate::tls::x509::X509Name;
use async_trait::async_trait;
use log::warn;
use pingora_error::{Error, ErrorType::*, OrErr, Result};
use std::any::Any;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

/// The TLS session handed to [`TlsAccept`] callbacks (the backend's
/// `SslRef`).
pub type TlsRef = SslRef;

/// Boxed [`TlsAccept`] callbacks, as taken by [`TlsSettings::with_callbacks`].
pub type TlsAcceptCallbacks = Box<dyn TlsAccept + Send + Sync>;

/// How long a client may take to complete the TLS handshake by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Hooks into the server side of the TLS handshake.
#[async_trait]
pub trait TlsAccept {
    /// Called once the ClientHello has been read (the SNI is known through
    /// `ssl.servername(NameType::HOST_NAME)`) and before the server
    /// certificate is sent: set the certificate and key here with
    /// `ssl.set_certificate` / `ssl.set_private_key` (and
    /// `ssl.add_chain_cert` for intermediates). It may await, e.g. to load a
    /// certificate from storage. Leaving the certificate unset fails the
    /// handshake (unless the settings carry a default one).
    async fn certificate_callback(&self, _ssl: &mut TlsRef) -> () {}

    /// Called after a successful handshake; a returned value is attached to
    /// the connection's [`SslDigest`](crate::protocols::tls::SslDigest) as
    /// its `extension`.
    async fn handshake_complete_callback(
        &self,
        _ssl: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        None
    }
}

/// How a listener terminates TLS.
///
/// Starts from the Mozilla "intermediate" profile (TLS 1.2 and 1.3, modern
/// AEAD ciphers), session tickets on, the post-quantum hybrid key exchange
/// offered first when the TLS library supports it. It dereferences to the
/// backend's `SslAcceptorBuilder` for anything else (protocol versions,
/// ciphers, curves, client certificate verification ...).
pub struct TlsSettings {
    builder: SslAcceptorBuilder,
    callbacks: Option<TlsAcceptCallbacks>,
    alpn: Option<ALPN>,
    handshake_timeout: Duration,
}

impl TlsSettings {
    fn base() -> Result<SslAcceptorBuilder> {
        let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
            .or_err(InternalError, "failed to create the TLS acceptor")?;
        ext::offer_pq_groups(&mut builder);
        // needed for session resumption when client certificates are verified
        builder
            .set_session_id_context(b"pingora")
            .or_err(InternalError, "failed to set the TLS session id context")?;
        Ok(builder)
    }

    /// The Mozilla intermediate profile with the certificate chain in the
    /// PEM file `cert_path` and its private key in `key_path`.
    pub fn intermediate(cert_path: &str, key_path: &str) -> Result<Self> {
        let mut builder = Self::base()?;
        builder
            .set_certificate_chain_file(cert_path)
            .or_err_with(InternalError, || {
                format!("failed to load the TLS certificate {cert_path}")
            })?;
        builder
            .set_private_key_file(key_path, SslFiletype::PEM)
            .or_err_with(InternalError, || {
                format!("failed to load the TLS private key {key_path}")
            })?;
        builder.check_private_key().or_err_with(InternalError, || {
            format!("the key {key_path} does not match the certificate {cert_path}")
        })?;
        Ok(Self::from_builder(builder))
    }

    /// The Mozilla intermediate profile without a fixed certificate:
    /// `callbacks` choose one for every handshake.
    pub fn with_callbacks(callbacks: TlsAcceptCallbacks) -> Result<Self> {
        let mut settings = Self::from_builder(Self::base()?);
        settings.callbacks = Some(callbacks);
        Ok(settings)
    }

    fn from_builder(builder: SslAcceptorBuilder) -> Self {
        TlsSettings {
            builder,
            callbacks: None,
            alpn: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Accept HTTP/2 through ALPN (`h2`, with `http/1.1` as the fallback).
    pub fn enable_h2(&mut self) {
        self.set_alpn(ALPN::H2H1);
    }

    /// Which protocols to accept through ALPN. Without a call no ALPN
    /// protocol is selected and clients speak HTTP/1.1.
    pub fn set_alpn(&mut self, alpn: ALPN) {
        self.alpn = Some(alpn);
    }

    /// Ask clients for a certificate signed by a CA in the PEM file
    /// `ca_file` (mutual TLS). With `required`, clients without one are
    /// refused; otherwise they may connect anonymously. The verified
    /// identity is in the connection's `SslDigest`.
    pub fn verify_client_certs(&mut self, ca_file: &str, required: bool) -> Result<()> {
        self.builder
            .set_ca_file(ca_file)
            .or_err_with(InternalError, || {
                format!("failed to load CA file {ca_file}")
            })?;
        let names = X509Name::load_client_ca_file(ca_file).or_err_with(InternalError, || {
            format!("failed to read CA names of {ca_file}")
        })?;
        self.builder.set_client_ca_list(names);
        let mut mode = SslVerifyMode::PEER;
        if required {
            mode |= SslVerifyMode::FAIL_IF_NO_PEER_CERT;
        }
        self.builder.set_verify(mode);
        Ok(())
    }

    /// How long a client may take to complete the handshake (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.handshake_timeout = timeout;
    }

    pub(crate) fn build(self) -> Acceptor {
        let mut builder = self.builder;
        if let Some(alpn) = self.alpn {
            let ours = alpn.to_wire_preference();
            builder.set_alpn_select_callback(move |_ssl, client| {
                select_next_proto(ours, client).ok_or(AlpnError::NOACK)
            });
        }
        Acceptor {
            ctx: builder.build().into_context(),
            callbacks: self.callbacks.map(Arc::from),
            handshake_timeout: self.handshake_timeout,
        }
    }
}

impl Deref for TlsSettings {
    type Target = SslAcceptorBuilder;
    fn deref(&self) -> &SslAcceptorBuilder {
        &self.builder
    }
}

impl DerefMut for TlsSettings {
    fn deref_mut(&mut self) -> &mut SslAcceptorBuilder {
        &mut self.builder
    }
}

/// The server side of TLS for one endpoint.
pub(crate) struct Acceptor {
    ctx: SslContext,
    callbacks: Option<Arc<dyn TlsAccept + Send + Sync>>,
    handshake_timeout: Duration,
}

impl Acceptor {
    /// Run the handshake on an accepted connection, within the handshake
    /// timeout. Failures are logged with the client's address.
    pub(crate) async fn tls_handshake<T: IO>(&self, stream: T) -> Result<TlsStream<T>> {
        let client = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().map(|a| a.to_string()))
            .unwrap_or_else(|| "unknown client".into());
        let res =
            match pingora_timeout::timeout(self.handshake_timeout, self.handshake(stream)).await {
                Ok(res) => res,
                Err(_) => Err(Error::explain(
                    TLSHandshakeTimedout,
                    format!("no TLS handshake within {:?}", self.handshake_timeout),
                )),
            };
        res.map_err(|mut e| {
            e = e.more_context(format!("TLS handshake with {client}"));
            warn!("{e}");
            e
        })
    }

    async fn handshake<T: IO>(&self, stream: T) -> Result<TlsStream<T>> {
        let ssl = ssl::Ssl::new(&self.ctx).or_err(InternalError, "failed to create TLS session")?;
        let mut tls =
            TlsStream::new(ssl, stream).or_err(InternalError, "failed to create TLS stream")?;
        let mut paused = false;
        if self.callbacks.is_some() {
            ext::pause_for_certificate(tls.ssl_mut());
        }
        loop {
            match tls.accept().await {
                Ok(()) => break,
                Err(e) if !paused && ext::is_certificate_pause(&e) => {
                    paused = true;
                    if let Some(cb) = &self.callbacks {
                        cb.certificate_callback(tls.ssl_mut()).await;
                    }
                    ext::resume_certificate(tls.ssl_mut());
                }
                Err(e) => {
                    return Err(handshake_error(e, tls.ssl(), "handshake failed".into()));
                }
            }
        }
        if let Some(cb) = &self.callbacks {
            if let Some(value) = cb.handshake_complete_callback(tls.ssl()).await {
                if let Some(digest) = tls.digest_mut() {
                    digest.extension.set(value);
                }
            }
        }
        Ok(tls)
    }
}

#[cfg(test)]
mod tests;
