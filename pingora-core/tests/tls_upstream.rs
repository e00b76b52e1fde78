//! Upstream TLS against nginx as an independent origin: SNI, verification
//! (right CA, wrong CA, wrong hostname, expired), alternative names, client
//! certificates, ALPN, key-exchange groups and pooling of TLS connections.

mod tls_common;

use pingora_core::connectors::TransportConnector;
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::upstreams::peer::{CertKey, HttpPeer, Peer, X509};
use pingora_core::ErrorType;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tls_common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Nginx {
    _child: KillOnDrop,
    good: u16,
    expired: u16,
    wrong: u16,
    mtls: u16,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn start_nginx(pki: &Pki) -> Nginx {
    let dir = pki.dir.path();
    let (good, expired, wrong, mtls) = (free_port(), free_port(), free_port(), free_port());
    let body = r#"return 200 "sni=$ssl_server_name alpn=$ssl_alpn_protocol curve=$ssl_curve client=$ssl_client_s_dn\n";"#;
    let server = |port: u16, m: &Minted, extra: &str| {
        format!(
            "server {{ listen 127.0.0.1:{port} ssl http2; ssl_certificate {}; \
             ssl_certificate_key {}; ssl_protocols TLSv1.2 TLSv1.3; {extra} location / {{ {body} }} }}\n",
            m.cert.display(),
            m.key.display()
        )
    };
    let tmp = dir.join("nginx_tmp");
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let conf = format!(
        "daemon off; master_process off; worker_processes 1;\n\
         pid {d}/nginx.pid; error_log {d}/nginx_error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {t}; proxy_temp_path {t}; \
         fastcgi_temp_path {t}; uwsgi_temp_path {t}; scgi_temp_path {t};\n{}{}{}{}}}\n",
        server(good, &pki.server, ""),
        server(expired, &pki.expired, ""),
        server(wrong, &pki.wrong_name, ""),
        server(
            mtls,
            &pki.server,
            &format!(
                "ssl_verify_client on; ssl_client_certificate {};",
                pki.ca.cert.display()
            )
        ),
        d = dir.display(),
        t = tmp.display(),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write conf");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx is installed");
    let child = KillOnDrop(child);
    for port in [good, expired, wrong, mtls] {
        wait_port(port);
    }
    Nginx {
        _child: child,
        good,
        expired,
        wrong,
        mtls,
    }
}

fn peer(port: u16, sni: &str, ca: &Minted) -> HttpPeer {
    let mut p = HttpPeer::new(("127.0.0.1", port), true, sni.to_string());
    p.options.ca = Some(Arc::new(vec![X509::from_der(ca.cert_der.clone())].into()));
    p.options.total_connection_timeout = Some(Duration::from_secs(10));
    p
}

async fn get(stream: &mut Stream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out));
    read.await.expect("in time").expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

async fn fetch(c: &TransportConnector, p: &HttpPeer) -> pingora_core::Result<String> {
    let (mut s, _) = c.get_stream(p).await?;
    Ok(get(&mut s).await)
}

fn rejected(res: pingora_core::Result<String>, reason: &str) {
    let e = res.expect_err("must be refused");
    assert_eq!(e.etype, ErrorType::InvalidCert, "{e}");
    let text = e.to_string();
    // the libraries differ in capitalisation ("hostname mismatch")
    assert!(text.to_lowercase().contains(reason), "{text}");
}

#[tokio::test]
async fn verification_against_nginx() {
    let pki = Pki::new();
    let ng = start_nginx(&pki);
    let c = TransportConnector::new(None);

    // the right CA: verified, SNI sent
    let p = peer(ng.good, "localhost", &pki.ca);
    let (mut s, reused) = c.get_stream(&p).await.expect("connect");
    assert!(!reused);
    let d = s.get_ssl_digest().expect("tls digest");
    assert_eq!(d.version, "TLSv1.3");
    assert_eq!(d.common_name.as_deref(), Some("localhost"));
    assert_eq!(d.cert_digest.len(), 32);
    assert!(d.group.is_some());
    let body = get(&mut s).await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("sni=localhost"), "{body}");

    // the wrong CA
    rejected(
        fetch(&c, &peer(ng.good, "localhost", &pki.other_ca)).await,
        "certificate verification failed",
    );
    // the wrong name
    rejected(
        fetch(&c, &peer(ng.wrong, "localhost", &pki.ca)).await,
        "hostname mismatch",
    );
    // expired
    rejected(
        fetch(&c, &peer(ng.expired, "localhost", &pki.ca)).await,
        "expired",
    );

    // the wrong name is accepted as the alternative CN, or without hostname checks
    let mut p = peer(ng.wrong, "localhost", &pki.ca);
    p.options.alternative_cn = Some("wrong.test".into());
    let body = fetch(&c, &p).await.expect("alternative cn");
    assert!(body.contains("sni=localhost"), "{body}");
    let mut p = peer(ng.wrong, "localhost", &pki.ca);
    p.options.verify_hostname = false;
    fetch(&c, &p).await.expect("no hostname check");
    // expired is accepted without certificate checks
    let mut p = peer(ng.expired, "localhost", &pki.ca);
    p.options.verify_cert = false;
    fetch(&c, &p).await.expect("no certificate check");

    // an IP address as the name: no SNI, checked against the IP SAN
    let body = fetch(&c, &peer(ng.good, "127.0.0.1", &pki.ca))
        .await
        .expect("ip name");
    assert!(body.contains("sni= "), "{body}");
}

#[tokio::test]
async fn client_certificates_alpn_and_groups() {
    let pki = Pki::new();
    let ng = start_nginx(&pki);
    let c = TransportConnector::new(None);

    // mutual TLS: nginx requires a client certificate signed by the CA
    let p = peer(ng.mtls, "localhost", &pki.ca);
    let body = fetch(&c, &p).await.expect("connect");
    assert!(body.starts_with("HTTP/1.1 400"), "{body}");
    let mut p = HttpPeer::new_mtls(
        ("127.0.0.1", ng.mtls),
        "localhost".into(),
        Arc::new(CertKey::new(
            vec![X509::from_der(pki.client.cert_der.clone())],
            pki.client.key_der.clone(),
        )),
    );
    p.options.ca = Some(Arc::new(
        vec![X509::from_der(pki.ca.cert_der.clone())].into(),
    ));
    let body = fetch(&c, &p).await.expect("mtls");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("CN=client-1"), "{body}");

    // ALPN
    let mut p = peer(ng.good, "localhost", &pki.ca);
    p.options.alpn = ALPN::H2H1;
    let s = c.new_stream(&p).await.expect("connect");
    assert_eq!(s.selected_alpn_proto(), Some(ALPN::H2));
    p.options.alpn = ALPN::H1;
    let mut s = c.new_stream(&p).await.expect("connect");
    assert_eq!(s.selected_alpn_proto(), Some(ALPN::H1));
    assert!(get(&mut s).await.contains("alpn=http/1.1"));

    // key-exchange groups
    let mut p = peer(ng.good, "localhost", &pki.ca);
    p.options.curves = Some("P-256");
    let mut s = c.new_stream(&p).await.expect("connect");
    let group = s.get_ssl_digest().and_then(|d| d.group.clone());
    assert!(
        matches!(
            group.as_deref(),
            Some("prime256v1") | Some("P-256") | Some("secp256r1")
        ),
        "{group:?}"
    );
    assert!(get(&mut s).await.contains("curve=prime256v1"));
}

#[tokio::test]
async fn pooled_tls_connections_are_keyed_by_tls_options() {
    let pki = Pki::new();
    let ng = start_nginx(&pki);
    let c = TransportConnector::new(None);
    let mut p = peer(ng.good, "localhost", &pki.ca);
    p.options.alpn = ALPN::H1;
    let (s, reused) = c.get_stream(&p).await.expect("connect");
    assert!(!reused);
    c.release_stream(s, p.reuse_hash(), None);
    let (s, reused) = c.get_stream(&p).await.expect("connect");
    assert!(reused, "the same peer reuses the pooled TLS connection");
    assert!(s.get_ssl_digest().is_some());
    c.release_stream(s, p.reuse_hash(), None);

    // any TLS option that changes the session gets its own connection
    type Change<'a> = Box<dyn Fn(&mut HttpPeer) + 'a>;
    let variants: Vec<Change> = vec![
        Box::new(|p| p.sni = "127.0.0.1".into()),
        Box::new(|p| p.options.verify_hostname = false),
        Box::new(|p| p.options.alternative_cn = Some("x".into())),
        Box::new(|p| p.options.curves = Some("P-256")),
        Box::new(|p| p.options.alpn = ALPN::H2H1),
        Box::new(|p| {
            p.client_cert_key = Some(Arc::new(CertKey::new(
                vec![X509::from_der(pki.client.cert_der.clone())],
                pki.client.key_der.clone(),
            )))
        }),
    ];
    for change in variants {
        let mut q = p.clone();
        change(&mut q);
        assert_ne!(q.reuse_hash(), p.reuse_hash());
        let (_s, reused) = c.get_stream(&q).await.expect("connect");
        assert!(!reused, "{q} must not reuse {p}'s connection");
    }
}
