//! Key exchange: the post-quantum hybrid X25519MLKEM768 is offered by both
//! sides by default when the TLS library supports it (always with
//! BoringSSL; OpenSSL from 3.5), the negotiated group is in the digest, and
//! `curves` overrides the offer. The FIPS flag of the digest follows the
//! library.

#[path = "server_common/mod.rs"]
mod server_common;
mod tls_common;
#[path = "tls_common/server.rs"]
mod tls_server;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::connectors::TransportConnector;
use pingora_core::listeners::TlsSettings;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use pingora_core::upstreams::peer::{HttpPeer, X509};
use server_common::Running;
use std::sync::Arc;
use std::time::Duration;
use tls_common::*;
use tls_server::start_tls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Tells the client which group the server saw negotiated.
struct Group;

#[async_trait]
impl ServerApp for Group {
    async fn process_new(self: &Arc<Self>, mut s: Stream, _: &ShutdownWatch) -> Option<Stream> {
        let group = s.get_ssl_digest().and_then(|d| d.group.clone());
        let line = format!("server-group={}\n", group.unwrap_or_default());
        let _ = s.write_all(line.as_bytes()).await;
        let _ = s.flush().await;
        let _ = s.shutdown().await;
        None
    }
}

fn start(pki: &Pki) -> (Running, u16) {
    let tls =
        TlsSettings::intermediate(pki.server.cert_str(), pki.server.key_str()).expect("settings");
    start_tls(Group, tls)
}

/// Connect with our client; (client-side group, server-side line, fips).
async fn negotiate(pki: &Pki, port: u16, curves: Option<&'static str>) -> (String, String, bool) {
    let c = TransportConnector::new(None);
    let mut p = HttpPeer::new(("127.0.0.1", port), true, "localhost".into());
    p.options.ca = Some(Arc::new(
        vec![X509::from_der(pki.ca.cert_der.clone())].into(),
    ));
    p.options.curves = curves;
    let (mut s, _) = c.get_stream(&p).await.expect("connect");
    let d = s.get_ssl_digest().expect("digest");
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut line));
    read.await.expect("in time").expect("read");
    (d.group.clone().unwrap_or_default(), line, d.fips)
}

/// Whether the linked library knows the hybrid group.
fn library_has_mlkem() -> bool {
    cfg!(feature = "boringssl") || pingora_core::tls::version::number() >= 0x3050_0000
}

#[tokio::test]
async fn default_offer_prefers_the_pq_hybrid_when_supported() {
    let pki = Pki::new();
    let (_server, port) = start(&pki);
    let (group, server_line, fips) = negotiate(&pki, port, None).await;
    if library_has_mlkem() {
        assert_eq!(group, "X25519MLKEM768");
        assert!(
            server_line.contains("server-group=X25519MLKEM768"),
            "{server_line}"
        );
    } else {
        // OpenSSL < 3.5: the classical X25519 is the best both sides know
        assert!(group.eq_ignore_ascii_case("x25519"), "{group}");
        assert!(
            server_line.to_lowercase().contains("server-group=x25519"),
            "{server_line}"
        );
    }
    assert_eq!(fips, pingora_core::tls::ext::fips_enabled());
    assert!(!fips, "this machine's libraries are not FIPS builds");
}

#[tokio::test]
async fn curves_override_the_offer() {
    let pki = Pki::new();
    let (_server, port) = start(&pki);
    let (group, line, _) = negotiate(&pki, port, Some("P-256")).await;
    assert!(
        matches!(group.as_str(), "prime256v1" | "P-256" | "secp256r1"),
        "{group}"
    );
    assert!(line.contains("server-group="), "{line}");
}

/// Built only with BoringSSL: the hybrid group must be negotiated.
#[cfg(feature = "boringssl")]
#[tokio::test]
async fn boringssl_negotiates_x25519mlkem768() {
    let pki = Pki::new();
    let (_server, port) = start(&pki);
    let (group, line, _) = negotiate(&pki, port, Some("X25519MLKEM768")).await;
    assert_eq!(group, "X25519MLKEM768");
    assert!(line.contains("server-group=X25519MLKEM768"), "{line}");
}
