//! The client side of TLS: one shared context per [`TransportConnector`]
//! (trusted roots, default client certificate), adjusted per connection by
//! the peer's options. Peers with their own CA set get a context built once
//! per distinct set and cached, so the trust store is not rebuilt for every
//! connection.
//!
//! [`TransportConnector`]: super::TransportConnector

use super::ConnectorOptions;
use crate::protocols::tls::{handshake_error, TlsStream};
use crate::protocols::{ALPN, IO};
use crate::tls::ext;
use crate::tls::pkey::PKey;
use crate::tls::ssl::{SslConnector, SslConnectorBuilder, SslFiletype, SslMethod, SslVerifyMode};
use crate::tls::x509::store::X509StoreBuilder;
use crate::tls::x509::X509;
use crate::upstreams::peer::{Peer, X509 as PeerCert};
use log::{error, warn};
use parking_lot::Mutex;
use pingora_error::{Error, ErrorSource, ErrorType::*, OkOrErr, OrErr, Result};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How many distinct peer CA sets keep a cached context; past this the cache
/// starts over (a bound against peers minting endless CA sets).
const MAX_CA_CONTEXTS: usize = 128;

/// A peer's own trusted CA set, compared and hashed by its DER contents.
type CaSet = Arc<Box<[PeerCert]>>;

/// The shared TLS client context of a connector.
pub(crate) struct TlsConnector {
    ctx: SslConnector,
    /// What `ctx` was built from, to build the per-CA-set contexts alike.
    options: Option<ConnectorOptions>,
    /// One context per distinct peer CA set, its trust store holding that set.
    by_ca: Mutex<HashMap<CaSet, SslConnector>>,
    /// How many per-CA-set contexts were built (for tests and diagnostics).
    ca_builds: AtomicUsize,
}

impl TlsConnector {
    /// Build the context from the connector options. A CA or certificate
    /// file that cannot be loaded is logged and left out (connections that
    /// need it then fail verification rather than the whole server).
    pub(crate) fn new(options: Option<&ConnectorOptions>) -> Result<Self> {
        Ok(TlsConnector {
            ctx: Self::builder(options)?.build(),
            options: options.cloned(),
            by_ca: Mutex::new(HashMap::new()),
            ca_builds: AtomicUsize::new(0),
        })
    }

    /// A context builder configured from the connector options.
    fn builder(options: Option<&ConnectorOptions>) -> Result<SslConnectorBuilder> {
        let mut builder = SslConnector::builder(SslMethod::tls())
            .or_err(InternalError, "failed to create the TLS connector")?;
        ext::offer_pq_groups(&mut builder);
        if let Some(opts) = options {
            if let Some(ca_file) = &opts.ca_file {
                if let Err(e) = builder.set_ca_file(ca_file) {
                    error!("failed to load CA file {ca_file}: {e}");
                }
            }
            if let Some((cert, key)) = &opts.cert_key_file {
                let loaded = builder
                    .set_certificate_chain_file(cert)
                    .and_then(|()| builder.set_private_key_file(key, SslFiletype::PEM));
                if let Err(e) = loaded {
                    error!("failed to load client certificate {cert} / {key}: {e}");
                }
            }
            if opts.debug_ssl_keylog {
                if let Some(path) = std::env::var_os("SSLKEYLOGFILE") {
                    match std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                    {
                        Ok(file) => {
                            let file = parking_lot::Mutex::new(file);
                            builder.set_keylog_callback(move |_, line| {
                                let _ = writeln!(file.lock(), "{line}");
                            });
                        }
                        Err(e) => error!("cannot open SSLKEYLOGFILE {path:?}: {e}"),
                    }
                }
            }
        }
        Ok(builder)
    }

    /// The context for peers trusting exactly `cas`: cached per distinct set
    /// (by contents, so equal sets in different `Arc`s share one), built on
    /// first use with the connector options and a trust store of `cas` only.
    fn ca_ctx(&self, cas: &CaSet) -> Result<SslConnector> {
        if let Some(ctx) = self.by_ca.lock().get(cas) {
            return Ok(ctx.clone());
        }
        let mut builder = Self::builder(self.options.as_ref())?;
        let mut store = X509StoreBuilder::new().or_err(InternalError, "TLS CA store")?;
        for ca in cas.iter() {
            let cert = X509::from_der(ca.der()).or_err(InternalError, "peer CA certificate")?;
            store
                .add_cert(cert)
                .or_err(InternalError, "peer CA store")?;
        }
        builder.set_cert_store(store.build());
        let ctx = builder.build();
        self.ca_builds.fetch_add(1, Ordering::Relaxed);
        let mut cache = self.by_ca.lock();
        if cache.len() >= MAX_CA_CONTEXTS {
            cache.clear();
        }
        Ok(cache.entry(cas.clone()).or_insert(ctx).clone())
    }

    /// How many per-CA-set contexts were built so far.
    #[cfg(test)]
    pub(crate) fn ca_contexts_built(&self) -> usize {
        self.ca_builds.load(Ordering::Relaxed)
    }

    /// Run the TLS handshake with `peer` over `stream`, configured by the
    /// peer's options: SNI, verification, custom roots, client
    /// certificate, ALPN (`alpn_override` wins) and key-exchange groups.
    pub(crate) async fn connect<T: IO, P: Peer>(
        &self,
        stream: T,
        peer: &P,
        alpn_override: Option<ALPN>,
    ) -> Result<TlsStream<T>> {
        let setup = |e| {
            let mut e = Error::because(TLSHandshakeFailure, format!("TLS setup for {peer}"), e);
            e.esource = ErrorSource::Internal;
            e
        };
        let mut conf = match peer.get_ca() {
            Some(cas) => {
                let ctx = self.ca_ctx(cas).map_err(|e| {
                    let mut e =
                        Error::because(TLSHandshakeFailure, format!("TLS setup for {peer}"), e);
                    e.esource = ErrorSource::Internal;
                    e
                })?;
                ctx.configure()
            }
            None => self.ctx.configure(),
        }
        .map_err(setup)?;
        if let Some(ck) = peer.get_client_cert_key() {
            let leaf = ck
                .leaf()
                .or_err(InternalError, "client certificate chain is empty")?;
            let leaf = X509::from_der(leaf.der()).map_err(setup)?;
            conf.set_certificate(&leaf).map_err(setup)?;
            let key = PKey::private_key_from_der(ck.key()).map_err(setup)?;
            conf.set_private_key(&key).map_err(setup)?;
            for c in ck.intermediates() {
                ext::add_chain_cert(&mut conf, X509::from_der(c.der()).map_err(setup)?)
                    .map_err(setup)?;
            }
        }
        if let Some(groups) = peer.get_peer_options().and_then(|o| o.curves) {
            ext::set_groups_list(&mut conf, groups).map_err(setup)?;
        }
        if let Some(alpn) = alpn_override.or_else(|| peer.get_alpn().copied()) {
            conf.set_alpn_protos(alpn.to_wire_preference())
                .map_err(setup)?;
        }
        let sni = peer.sni();
        let verify_cert = peer.verify_cert();
        let alt_cn = peer.alternative_cn().filter(|cn| !cn.is_empty());
        if !verify_cert {
            conf.set_verify(SslVerifyMode::NONE);
        }
        // hostname checks need a name: the SNI, or else the alternative CN
        let check_host =
            verify_cert && peer.verify_hostname() && (!sni.is_empty() || alt_cn.is_some());
        conf.set_verify_hostname(check_host && !sni.is_empty());
        conf.set_use_server_name_indication(!sni.is_empty());
        let mut ssl = conf.into_ssl(sni).map_err(setup)?;
        if check_host {
            if let Some(cn) = alt_cn {
                ext::add_host(&mut ssl, cn).map_err(setup)?;
            }
        }

        let mut tls = TlsStream::new(ssl, stream).map_err(setup)?;
        if let Err(e) = tls.connect().await {
            let mut err = handshake_error(e, tls.ssl(), format!("TLS handshake with {peer}"));
            err.esource = ErrorSource::Upstream;
            if err.etype == InvalidCert {
                warn!("{err}");
            }
            return Err(err);
        }
        Ok(tls)
    }
}

#[cfg(test)]
mod tests;
