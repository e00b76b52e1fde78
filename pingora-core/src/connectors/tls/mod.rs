//! The client side of TLS: one shared context per [`TransportConnector`]
//! (trusted roots, default client certificate), adjusted per connection by
//! the peer's options.
//!
//! [`TransportConnector`]: super::TransportConnector

use super::ConnectorOptions;
use crate::protocols::tls::{handshake_error, TlsStream};
use crate::protocols::{ALPN, IO};
use crate::tls::ext;
use crate::tls::pkey::PKey;
use crate::tls::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use crate::tls::x509::store::X509StoreBuilder;
use crate::tls::x509::X509;
use crate::upstreams::peer::Peer;
use log::{error, warn};
use pingora_error::{Error, ErrorSource, ErrorType::*, OkOrErr, OrErr, Result};
use std::io::Write;

/// The shared TLS client context of a connector.
pub(crate) struct TlsConnector {
    ctx: SslConnector,
}

impl TlsConnector {
    /// Build the context from the connector options. A CA or certificate
    /// file that cannot be loaded is logged and left out (connections that
    /// need it then fail verification rather than the whole server).
    pub(crate) fn new(options: Option<&ConnectorOptions>) -> Result<Self> {
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
        Ok(TlsConnector {
            ctx: builder.build(),
        })
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
        let mut conf = self.ctx.configure().map_err(setup)?;
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
        if let Some(cas) = peer.get_ca() {
            let mut store = X509StoreBuilder::new().map_err(setup)?;
            for ca in cas.iter() {
                store
                    .add_cert(X509::from_der(ca.der()).map_err(setup)?)
                    .map_err(setup)?;
            }
            conf.set_verify_cert_store(store.build()).map_err(setup)?;
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
