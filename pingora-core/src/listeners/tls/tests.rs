//! The acceptor and connector talking to each other over in-memory pipes:
//! certificate callbacks (with the pause / resume of the handshake), the
//! handshake-complete extension, hostile input and timeouts.

use super::*;
use crate::connectors::tls::TlsConnector;
use crate::connectors::ConnectorOptions;
use crate::protocols::Ssl;
use crate::tls::pkey::PKey;
use crate::tls::x509::X509;
use crate::upstreams::peer::HttpPeer;
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

struct Minted {
    cert: X509,
    key: PKey<crate::tls::pkey::Private>,
}

fn mint(name: &str) -> Minted {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("cert");
    Minted {
        cert: X509::from_der(cert.der()).expect("der"),
        key: PKey::private_key_from_pkcs8(&key.serialize_der()).expect("key"),
    }
}

/// Serves `mint(sni)` for whatever name the client asked for, except
/// `none.test`, which gets no certificate.
struct Echo;

#[async_trait]
impl TlsAccept for Echo {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        let name = ssl
            .servername(ssl::NameType::HOST_NAME)
            .unwrap_or("default")
            .to_string();
        if name == "none.test" {
            return;
        }
        tokio::task::yield_now().await;
        let m = mint(&name);
        ssl.set_certificate(&m.cert).expect("cert");
        ssl.set_private_key(&m.key).expect("key");
    }

    async fn handshake_complete_callback(
        &self,
        ssl: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        Some(Arc::new(format!("done:{}", ssl.version_str())))
    }
}

fn client_peer(sni: &str) -> HttpPeer {
    let mut peer = HttpPeer::new("127.0.0.1:443", true, sni.to_string());
    // self-signed test certificates
    peer.options.verify_cert = false;
    peer
}

async fn pair(
    acceptor: &Acceptor,
    sni: &str,
) -> (
    Result<TlsStream<DuplexStream>>,
    Result<TlsStream<DuplexStream>>,
) {
    let (a, b) = duplex(64 * 1024);
    let connector = TlsConnector::new(Some(&ConnectorOptions::new(1))).expect("connector");
    let peer = client_peer(sni);
    tokio::join!(acceptor.tls_handshake(a), connector.connect(b, &peer, None))
}

#[tokio::test]
async fn certificate_callback_picks_by_sni_and_extension_is_attached() {
    let acceptor = TlsSettings::with_callbacks(Box::new(Echo))
        .expect("settings")
        .build();
    for name in ["a.test", "b.test"] {
        let (server, client) = pair(&acceptor, name).await;
        let (mut server, mut client) = (server.expect("server"), client.expect("client"));
        let seen = client.get_ssl_digest().expect("digest");
        assert_eq!(seen.common_name.as_deref(), Some(name));
        let digest = server.get_ssl_digest().expect("digest");
        assert_eq!(digest.sni.as_deref(), Some(name));
        let ext = digest.extension.get::<String>().expect("extension");
        assert!(ext.starts_with("done:TLSv1."), "{ext}");
        // data flows both ways through the bridge
        client.write_all(b"ping").await.expect("write");
        client.flush().await.expect("flush");
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.expect("write");
        server.shutdown().await.expect("close_notify");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.expect("read");
        assert_eq!(rest, b"pong");
    }
}

#[tokio::test]
async fn no_certificate_fails_the_handshake_cleanly() {
    let acceptor = TlsSettings::with_callbacks(Box::new(Echo))
        .expect("settings")
        .build();
    let (server, client) = pair(&acceptor, "none.test").await;
    let e = server.expect_err("server must fail");
    assert_eq!(e.etype, TLSHandshakeFailure, "{e}");
    assert!(client.is_err());
}

#[tokio::test]
async fn garbage_and_silence_are_errors_not_panics() {
    let mut settings = TlsSettings::with_callbacks(Box::new(Echo)).expect("settings");
    settings.set_handshake_timeout(Duration::from_millis(200));
    let acceptor = settings.build();

    // not TLS at all
    let (a, mut b) = duplex(4096);
    b.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let e = acceptor.tls_handshake(a).await.expect_err("must fail");
    assert_eq!(e.etype, TLSHandshakeFailure, "{e}");

    // a record header announcing a ClientHello, then nothing more
    let (a, mut b) = duplex(4096);
    b.write_all(&[0x16, 0x03, 0x01, 0x01, 0x00, 0x01])
        .await
        .expect("write");
    let e = acceptor.tls_handshake(a).await.expect_err("must fail");
    assert_eq!(e.etype, TLSHandshakeTimedout, "{e}");

    // the peer hangs up mid-handshake
    let (a, b) = duplex(4096);
    drop(b);
    let e = acceptor.tls_handshake(a).await.expect_err("must fail");
    assert_eq!(e.etype, TLSHandshakeFailure, "{e}");
}
