//! Certificates chosen per connection by SNI: `CERT_DIR` holds
//! `<name>.crt` / `<name>.key` pairs (PEM); a client asking for `<name>`
//! gets that certificate, any other name gets `default.crt` /
//! `default.key`. Files are read at handshake time, so certificates can be
//! added or renewed without a restart.
//!
//! ```text
//! CERT_DIR=./certs LISTEN=127.0.0.1:6443 UPSTREAMS=127.0.0.1:8000 \
//!     cargo run -p pingora-examples --example dynamic_cert
//! curl --cacert ca.crt --resolve a.test:6443:127.0.0.1 https://a.test:6443/
//! ```

use async_trait::async_trait;
use log::warn;
use pingora::listeners::{TlsAccept, TlsSettings};
use pingora::prelude::*;
use pingora::tls::pkey::PKey;
use pingora::tls::ssl::{NameType, SslRef};
use pingora::tls::x509::X509;
use pingora_examples::{listen_addr, upstreams};
use std::path::PathBuf;

/// Picks the certificate files by the name the client asked for.
struct CertsBySni {
    dir: PathBuf,
}

impl CertsBySni {
    /// Load `<name>.crt` / `<name>.key`; names are restricted to
    /// hostname characters so a client cannot escape the directory.
    async fn load(&self, name: &str) -> Option<(Vec<X509>, PKey<pingora::tls::pkey::Private>)> {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !name.starts_with('.');
        if !valid {
            return None;
        }
        let cert = tokio::fs::read(self.dir.join(format!("{name}.crt")))
            .await
            .ok()?;
        let key = tokio::fs::read(self.dir.join(format!("{name}.key")))
            .await
            .ok()?;
        Some((
            X509::stack_from_pem(&cert).ok()?,
            PKey::private_key_from_pem(&key).ok()?,
        ))
    }
}

#[async_trait]
impl TlsAccept for CertsBySni {
    async fn certificate_callback(&self, ssl: &mut SslRef) {
        let sni = ssl
            .servername(NameType::HOST_NAME)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let loaded = match self.load(&sni).await {
            Some(found) => Some(found),
            None => self.load("default").await,
        };
        let Some((chain, key)) = loaded else {
            warn!("no certificate for {sni:?} and no default: the handshake fails");
            return;
        };
        let mut chain = chain.into_iter();
        let Some(leaf) = chain.next() else { return };
        if ssl.set_certificate(&leaf).is_err() || ssl.set_private_key(&key).is_err() {
            warn!("certificate for {sni:?} could not be used");
            return;
        }
        for extra in chain {
            if pingora::tls::ext::add_chain_cert(ssl, extra).is_err() {
                warn!("intermediate certificate for {sni:?} could not be used");
            }
        }
    }
}

struct Proxy {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::try_new(
            self.upstream.as_str(),
            false,
            String::new(),
        )?))
    }
}

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server setup");
    server.bootstrap();

    let dir = PathBuf::from(std::env::var("CERT_DIR").expect("CERT_DIR must be set"));
    let mut tls = TlsSettings::with_callbacks(Box::new(CertsBySni { dir })).expect("TLS settings");
    tls.enable_h2();

    let proxy_logic = Proxy {
        upstream: upstreams("127.0.0.1:8000")[0].clone(),
    };
    let mut proxy = http_proxy_service(&server.configuration, proxy_logic);
    proxy.add_tls_with_settings(&listen_addr("0.0.0.0:6443"), None, tls);
    server.add_service(proxy);
    server.run_forever();
}
