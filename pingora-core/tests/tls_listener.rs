//! TLS listeners driven by independent clients: curl and openssl s_client.
//! Covers TLS 1.2 / 1.3, ALPN, the SNI certificate callback, mutual TLS,
//! session resumption and the handshake timeout.

#[path = "server_common/mod.rs"]
mod server_common;
mod tls_common;
#[path = "tls_common/server.rs"]
mod tls_server;

use async_trait::async_trait;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::apps::ServerApp;
use pingora_core::listeners::{TlsAccept, TlsSettings};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use pingora_core::tls::pkey::{PKey, Private};
use pingora_core::tls::ssl::NameType;
use pingora_core::tls::x509::X509;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tls_common::*;
use tls_server::start_tls;
use tokio::io::AsyncWriteExt;

/// Answers with what the TLS layer reported about the connection.
struct Info;

#[async_trait]
impl ServeHttp for Info {
    async fn response(&self, s: &mut ServerSession) -> http::Response<Vec<u8>> {
        let d = s.digest().and_then(|d| d.ssl_digest.clone());
        let text = match d {
            Some(d) => format!(
                "version={} cn={} org={} sni={} fips={}\n",
                d.version,
                d.common_name.as_deref().unwrap_or("-"),
                d.organization.as_deref().unwrap_or("-"),
                d.sni.as_deref().unwrap_or("-"),
                d.fips,
            ),
            None => "plain\n".to_string(),
        };
        http::Response::builder()
            .status(200)
            .body(text.into_bytes())
            .expect("response")
    }
}

/// Writes one line about the raw stream (ALPN, client CN), then closes.
struct Raw;

#[async_trait]
impl ServerApp for Raw {
    async fn process_new(self: &Arc<Self>, mut s: Stream, _: &ShutdownWatch) -> Option<Stream> {
        let cn = s.get_ssl_digest().and_then(|d| d.common_name.clone());
        let line = format!("alpn={:?} client={:?}\n", s.selected_alpn_proto(), cn);
        let _ = s.write_all(line.as_bytes()).await;
        let _ = s.flush().await;
        let _ = s.shutdown().await;
        None
    }
}

fn intermediate(pki: &Pki) -> TlsSettings {
    TlsSettings::intermediate(pki.server.cert_str(), pki.server.key_str()).expect("settings")
}

#[test]
fn curl_speaks_tls13_and_tls12() {
    let pki = Pki::new();
    let (_server, port) = start_tls(HttpServer::new_app(Info), intermediate(&pki));
    let ca = pki.ca.cert_str();
    let url = format!("https://localhost:{port}/");
    let (ok, body, err) = curl(&["--cacert", ca, &url]);
    assert!(ok, "{err}");
    assert!(body.contains("version=TLSv1.3"), "{body}");
    assert!(body.contains("sni=localhost"), "{body}");
    let (ok, body, err) = curl(&["--cacert", ca, "--tlsv1.2", "--tls-max", "1.2", &url]);
    assert!(ok, "{err}");
    assert!(body.contains("version=TLSv1.2"), "{body}");
    // the certificate also names 127.0.0.1
    let (ok, body, err) = curl(&["--cacert", ca, &format!("https://127.0.0.1:{port}/")]);
    assert!(ok, "{err}");
    assert!(
        body.contains("cn=-"),
        "no client certificate was sent: {body}"
    );
    // a client that does not trust the CA refuses the server
    let (ok, _, _) = curl(&["--cacert", pki.other_ca.cert_str(), &url]);
    assert!(!ok);
}

#[test]
fn alpn_selects_h2_or_http11_and_the_stream_reports_it() {
    let pki = Pki::new();
    let mut tls = intermediate(&pki);
    tls.enable_h2();
    let (_server, port) = start_tls(Raw, tls);
    let ca = pki.ca.cert_str();
    let out = s_client(port, &["-alpn", "h2,http/1.1", "-CAfile", ca, "-ign_eof"]);
    assert!(out.contains("ALPN protocol: h2"), "{out}");
    assert!(out.contains("alpn=Some(H2)"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let out = s_client(port, &["-alpn", "http/1.1", "-CAfile", ca, "-ign_eof"]);
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    assert!(out.contains("alpn=Some(H1)"), "{out}");

    // without enable_h2 nothing is selected: clients fall back to HTTP/1.1
    let (_plain, port) = start_tls(Raw, intermediate(&pki));
    let out = s_client(port, &["-alpn", "h2", "-ign_eof"]);
    assert!(out.contains("No ALPN negotiated"), "{out}");
    assert!(out.contains("alpn=None"), "{out}");
}

/// Serves `other.test` with its own certificate, everything else with the
/// localhost one.
struct BySni {
    default: (X509, PKey<Private>),
    other: (X509, PKey<Private>),
}

fn load(m: &Minted) -> (X509, PKey<Private>) {
    (
        X509::from_der(&m.cert_der).expect("cert"),
        PKey::private_key_from_pkcs8(&m.key_der).expect("key"),
    )
}

#[async_trait]
impl TlsAccept for BySni {
    async fn certificate_callback(&self, ssl: &mut pingora_core::listeners::tls::TlsRef) {
        // an await point, as a real certificate lookup would have
        tokio::task::yield_now().await;
        let (cert, key) = match ssl.servername(NameType::HOST_NAME) {
            Some("other.test") => &self.other,
            _ => &self.default,
        };
        ssl.set_certificate(cert).expect("set cert");
        ssl.set_private_key(key).expect("set key");
    }
}

#[test]
fn sni_callback_serves_the_right_certificate() {
    let pki = Pki::new();
    let cb = BySni {
        default: load(&pki.server),
        other: load(&pki.second),
    };
    let tls = TlsSettings::with_callbacks(Box::new(cb)).expect("settings");
    let (_server, port) = start_tls(HttpServer::new_app(Info), tls);
    let ca = pki.ca.cert_str();

    let out = s_client(port, &["-servername", "other.test", "-CAfile", ca]);
    assert!(out.contains("subject=CN = other.test"), "{out}");
    let out = s_client(port, &["-servername", "localhost", "-CAfile", ca]);
    assert!(out.contains("subject=CN = localhost"), "{out}");

    // curl checks that each name gets a certificate valid for it
    for name in ["other.test", "localhost"] {
        let resolve = format!("{name}:{port}:127.0.0.1");
        let url = format!("https://{name}:{port}/");
        let (ok, body, err) = curl(&["--cacert", ca, "--resolve", &resolve, &url]);
        assert!(ok, "{name}: {err}");
        assert!(body.contains(&format!("sni={name}")), "{body}");
    }
}

/// Settings that ask clients for a certificate from the test CA.
fn client_certs(pki: &Pki, required: bool) -> TlsSettings {
    let mut tls = intermediate(pki);
    tls.verify_client_certs(pki.ca.cert_str(), required)
        .expect("client CA");
    tls
}

#[test]
fn mutual_tls_accepts_good_client_and_refuses_others() {
    let pki = Pki::new();
    let ca = pki.ca.cert_str();
    // required, then optional client certificates
    for required in [true, false] {
        let (_server, port) = start_tls(HttpServer::new_app(Info), client_certs(&pki, required));
        let url = format!("https://localhost:{port}/");
        // a presented certificate is verified and reported either way
        let (ok, body, err) = curl_as(&pki.client, ca, &[&url]);
        assert!(ok, "required={required}: {err}");
        assert!(body.contains("cn=client-1"), "{body}");
        assert!(body.contains("org=Pingora Test Clients"), "{body}");
        // a client certificate from another CA is refused either way
        let (ok, body, _) = curl_as(&pki.other_ca, ca, &[&url]);
        assert!(
            !ok,
            "required={required}: accepted a foreign client certificate: {body}"
        );
        // no client certificate: refused when required, else served without an identity
        let (ok, body, err) = curl(&["--cacert", ca, &url]);
        if required {
            assert!(!ok, "accepted without a client certificate: {body}");
        } else {
            assert!(ok, "{err}");
            assert!(body.contains("cn=-"), "{body}");
        }
    }

    // openssl s_client: the identity reaches the app through the digest
    let (_raw, port) = start_tls(Raw, client_certs(&pki, true));
    let out = s_client(
        port,
        &[
            "-cert",
            pki.client.cert_str(),
            "-key",
            pki.client.key_str(),
            "-ign_eof",
        ],
    );
    assert!(out.contains("client=Some(\"client-1\")"), "{out}");
    let out = s_client(port, &["-ign_eof"]);
    assert!(!out.contains("client="), "{out}");
}

#[test]
fn tls12_sessions_resume_with_tickets() {
    let pki = Pki::new();
    let (_server, port) = start_tls(Raw, intermediate(&pki));
    let sess = pki.path("session.pem");
    let sess = sess.to_str().expect("path");
    let out = s_client(port, &["-tls1_2", "-sess_out", sess, "-ign_eof"]);
    assert!(out.contains("New, TLSv1.2"), "{out}");
    assert!(out.contains("TLS session ticket:"), "{out}");
    let out = s_client(port, &["-tls1_2", "-sess_in", sess, "-ign_eof"]);
    assert!(out.contains("Reused, TLSv1.2"), "{out}");
}

#[test]
fn handshake_timeout_and_failures_stay_isolated() {
    let pki = Pki::new();
    let mut tls = intermediate(&pki);
    tls.set_handshake_timeout(Duration::from_millis(500));
    let (_server, port) = start_tls(HttpServer::new_app(Info), tls);

    // a client that never says anything is cut off after the timeout
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // a client that sends garbage fails its handshake
    let mut garbage = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");

    // meanwhile good clients are served
    let url = format!("https://localhost:{port}/");
    let (ok, body, err) = curl(&["--cacert", pki.ca.cert_str(), &url]);
    assert!(ok, "{err}");
    assert!(body.contains("version=TLSv1"), "{body}");

    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = silent.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the silent client must be disconnected");
    assert!(started.elapsed() < Duration::from_secs(3));
    // garbage gets at most an alert, then the connection is closed
    let mut rest = Vec::new();
    let _ = garbage.read_to_end(&mut rest);
    assert!(!String::from_utf8_lossy(&rest).contains("HTTP/1.1"));

    let (ok, _, err) = curl(&["--cacert", pki.ca.cert_str(), &url]);
    assert!(ok, "server still serves after failed handshakes: {err}");
}
