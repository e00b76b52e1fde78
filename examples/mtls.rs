//! Mutual TLS on both sides: clients must present a certificate signed by
//! `CLIENT_CA`; their identity (certificate common name) is passed to the
//! upstream in `x-client-cn`. The upstream may be reached over TLS too,
//! verified against `UPSTREAM_CA`, optionally with our own client
//! certificate.
//!
//! ```text
//! LISTEN=127.0.0.1:6443 TLS_CERT=server.crt TLS_KEY=server.key CLIENT_CA=ca.crt \
//! UPSTREAMS=127.0.0.1:8000 cargo run -p pingora-examples --example mtls
//! curl --cacert ca.crt --cert client.crt --key client.key https://localhost:6443/
//! ```
//!
//! Environment: `LISTEN` (default `0.0.0.0:6443`), `TLS_CERT`, `TLS_KEY`,
//! `CLIENT_CA` (required), `UPSTREAMS` (first address used), and for a TLS
//! upstream `UPSTREAM_TLS=1`, `UPSTREAM_SNI` (default `localhost`),
//! `UPSTREAM_CA`, `UPSTREAM_CLIENT_CERT` + `UPSTREAM_CLIENT_KEY`.

use async_trait::async_trait;
use pingora::listeners::TlsSettings;
use pingora::prelude::*;
use pingora::upstreams::peer::{CertKey, X509};
use pingora_examples::{listen_addr, upstreams};
use std::sync::Arc;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn required(name: &str) -> String {
    env(name).unwrap_or_else(|| panic!("{name} must be set"))
}

/// Where and how to reach the upstream.
struct Upstream {
    addr: String,
    tls: bool,
    sni: String,
    ca: Option<Arc<Box<[X509]>>>,
    client_cert: Option<Arc<CertKey>>,
}

struct Mtls {
    upstream: Upstream,
}

#[async_trait]
impl ProxyHttp for Mtls {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        let up = &self.upstream;
        let mut peer = HttpPeer::try_new(up.addr.as_str(), up.tls, up.sni.clone())?;
        peer.options.ca = up.ca.clone();
        peer.client_cert_key = up.client_cert.clone();
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        // the listener refuses clients without a valid certificate, so a
        // request here always has a verified identity
        let cn = session
            .as_downstream()
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .and_then(|d| d.common_name.clone())
            .unwrap_or_default();
        req.insert_header("x-client-cn", cn)?;
        Ok(())
    }
}

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server setup");
    server.bootstrap();

    let ca = env("UPSTREAM_CA").map(|path| {
        let pem = std::fs::read(&path).expect("UPSTREAM_CA readable");
        Arc::new(
            X509::stack_from_pem(&pem)
                .expect("UPSTREAM_CA is PEM")
                .into_boxed_slice(),
        )
    });
    let client_cert = env("UPSTREAM_CLIENT_CERT").map(|cert| {
        let key = required("UPSTREAM_CLIENT_KEY");
        Arc::new(CertKey::from_pem_files(&cert, &key).expect("upstream client certificate"))
    });
    let upstream = Upstream {
        addr: upstreams("127.0.0.1:8000")[0].clone(),
        tls: env("UPSTREAM_TLS").is_some_and(|v| v == "1"),
        sni: env("UPSTREAM_SNI").unwrap_or_else(|| "localhost".into()),
        ca,
        client_cert,
    };

    let mut tls = TlsSettings::intermediate(&required("TLS_CERT"), &required("TLS_KEY"))
        .expect("TLS certificate and key");
    tls.verify_client_certs(&required("CLIENT_CA"), true)
        .expect("CLIENT_CA");
    tls.enable_h2();

    let mut proxy = http_proxy_service(&server.configuration, Mtls { upstream });
    proxy.add_tls_with_settings(&listen_addr("0.0.0.0:6443"), None, tls);
    server.add_service(proxy);
    server.run_forever();
}
