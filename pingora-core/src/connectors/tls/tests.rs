//! The per-CA-set context cache, driven against the crate's own TLS acceptor
//! over in-memory pipes.

use super::*;
use crate::listeners::tls::{TlsAccept, TlsRef, TlsSettings};
use crate::tls::pkey::{PKey, Private};
use crate::upstreams::peer::HttpPeer;
use async_trait::async_trait;
use tokio::io::duplex;

/// A self-signed certificate for `name`: (certificate, key, DER).
fn mint(name: &str) -> (X509, PKey<Private>, Vec<u8>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("cert");
    (
        X509::from_der(cert.der()).expect("der"),
        PKey::private_key_from_pkcs8(&key.serialize_der()).expect("key"),
        cert.der().to_vec(),
    )
}

/// Always serves the one certificate it holds.
struct Fixed(X509, PKey<Private>);

#[async_trait]
impl TlsAccept for Fixed {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        ssl.set_certificate(&self.0).expect("cert");
        ssl.set_private_key(&self.1).expect("key");
    }
}

/// A peer for `a.test` that trusts exactly `ca` (a fresh `Arc` each time).
fn peer(ca: &[u8]) -> HttpPeer {
    let mut peer = HttpPeer::new("127.0.0.1:443", true, "a.test".to_string());
    peer.options.ca = Some(Arc::new(vec![PeerCert::from_der(ca.to_vec())].into()));
    peer
}

#[tokio::test]
async fn peer_ca_store_is_built_once_per_distinct_ca_set() {
    let (cert, key, der) = mint("a.test");
    let acceptor = TlsSettings::with_callbacks(Box::new(Fixed(cert, key)))
        .expect("settings")
        .build();
    let connector = TlsConnector::new(Some(&ConnectorOptions::new(1))).expect("connector");
    let handshake = |peer: HttpPeer| {
        let (a, b) = duplex(64 * 1024);
        let acceptor = &acceptor;
        let connector = &connector;
        async move {
            let (server, client) =
                tokio::join!(acceptor.tls_handshake(a), connector.connect(b, &peer, None));
            (server.is_ok(), client.map(|_| ()))
        }
    };

    // one peer object connected twice, then an equal CA set in another Arc:
    // all verified against the cached store, built once
    let same = peer(&der);
    for _ in 0..2 {
        let (server_ok, client) = handshake(same.clone()).await;
        assert!(server_ok);
        client.expect("verified against the peer CA");
    }
    let (_, client) = handshake(peer(&der)).await;
    client.expect("equal CA set in another Arc");
    assert_eq!(connector.ca_contexts_built(), 1);
    assert_eq!(connector.by_ca.lock().len(), 1);

    // a different CA set gets its own store, and it really is used: the
    // server's certificate is not trusted by it
    let (_, _, other) = mint("other.test");
    let (_, client) = handshake(peer(&other)).await;
    let e = client.expect_err("untrusted by the other CA set");
    assert_eq!(e.etype, InvalidCert, "{e}");
    assert_eq!(connector.ca_contexts_built(), 2);
    // and the first set is still served from the cache
    let (_, client) = handshake(peer(&der)).await;
    client.expect("cached store still valid");
    assert_eq!(connector.ca_contexts_built(), 2);
}
