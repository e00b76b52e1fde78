//! HTTP/2 over TLS through the proxy: clients negotiate h2 by ALPN (`curl --http2`), and the
//! proxy negotiates h2 with TLS origins by ALPN, falling back to HTTP/1.1 with an origin that
//! only offers it when HTTP/2 was only preferred.

#[path = "h2/harness.rs"]
mod harness;

use harness::*;
use pingora_core::listeners::TlsSettings;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::services::listening::Service;
use pingora_core::upstreams::peer::{HttpPeer, X509};
use pingora_proxy::http_proxy_service;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A self-signed certificate for localhost, minted with the openssl CLI.
fn mint(dir: &Path) -> (String, String) {
    let cert = dir.join("cert.pem").to_string_lossy().to_string();
    let key = dir.join("key.pem").to_string_lossy().to_string();
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .args(["-keyout", &key, "-out", &cert])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

fn tls(cert: &str, key: &str, h2: bool) -> TlsSettings {
    let mut t = TlsSettings::intermediate(cert, key).expect("tls settings");
    if h2 {
        t.enable_h2();
    }
    t
}

fn tls_peer(port: u16, cert_pem: &[u8]) -> HttpPeer {
    let mut peer = HttpPeer::new(("127.0.0.1", port), true, "localhost".to_string());
    let ca = pingora_core::tls::x509::X509::from_pem(cert_pem).expect("pem");
    let der = ca.to_der().expect("der");
    peer.options.ca = Some(Arc::new(vec![X509::from_der(der)].into()));
    peer.options.set_http_version(2, 1);
    peer.options.max_h2_streams = 10;
    peer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_both_sides_with_alpn_fallback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = mint(dir.path());
    let pem = std::fs::read(&cert).expect("cert");
    let (origin_h2, origin_h1, proxy_h2, proxy_h1) =
        (free_port(), free_port(), free_port(), free_port());

    let conf = ServerConf {
        threads: 2,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut o2 = Service::new("origin h2".into(), Origin::bare());
    o2.add_tls_with_settings(
        &format!("127.0.0.1:{origin_h2}"),
        None,
        tls(&cert, &key, true),
    );
    let mut o1 = Service::new("origin h1".into(), Origin::bare());
    o1.add_tls_with_settings(
        &format!("127.0.0.1:{origin_h1}"),
        None,
        tls(&cert, &key, false),
    );
    let mut p2 = http_proxy_service(&server.configuration, ToPeer(tls_peer(origin_h2, &pem)));
    p2.add_tls_with_settings(
        &format!("127.0.0.1:{proxy_h2}"),
        None,
        tls(&cert, &key, true),
    );
    let mut p1 = http_proxy_service(&server.configuration, ToPeer(tls_peer(origin_h1, &pem)));
    p1.add_tls_with_settings(
        &format!("127.0.0.1:{proxy_h1}"),
        None,
        tls(&cert, &key, true),
    );
    server.add_service(o2);
    server.add_service(o1);
    server.add_service(p2);
    server.add_service(p1);
    // the server runs until the test process ends
    std::thread::spawn(move || server.run_forever());
    for p in [origin_h2, origin_h1, proxy_h2, proxy_h1] {
        wait_port(p);
    }

    let curl = |port: u16, version: &'static str, path: &'static str| {
        let args = vec![
            "-sS".to_string(),
            "--max-time".into(),
            "20".into(),
            version.into(),
            "--cacert".into(),
            cert.clone(),
            "-D-".into(),
            "--resolve".into(),
            format!("localhost:{port}:127.0.0.1"),
            format!("https://localhost:{port}{path}"),
        ];
        async move { text(&run_for("curl", &args, STEP).await) }
    };

    // h2 client -> proxy -> h2 origin, all by ALPN
    let out = curl(proxy_h2, "--http2", "/").await;
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(out.contains("x-downstream-proto: h2"), "{out}");
    assert!(
        out.contains("x-origin-proto: h2") && out.ends_with("hello h2"),
        "{out}"
    );
    // HTTP/1.1 client on the same TLS listener
    let out = curl(proxy_h2, "--http1.1", "/").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("x-origin-proto: h2"), "{out}");
    // the origin only offers HTTP/1.1: the proxy falls back to it
    let out = curl(proxy_h1, "--http2", "/").await;
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(
        out.contains("x-origin-proto: h1") && out.ends_with("hello h1"),
        "{out}"
    );

    // 10,000 requests over TLS h2 through the proxy
    let args = vec![
        "-n".to_string(),
        "10000".into(),
        "-c".into(),
        "10".into(),
        "-m".into(),
        "10".into(),
        format!("https://127.0.0.1:{proxy_h2}/"),
    ];
    let out = text(&run_for("h2load", &args, Duration::from_secs(240)).await);
    println!(
        "h2load over TLS through the proxy: {}",
        out.lines()
            .find(|l| l.starts_with("finished in"))
            .unwrap_or("")
    );
    assert!(out.contains("status codes: 10000 2xx"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_1_required_reset_downgrades_a_preferring_peer() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = mint(dir.path());
    let pem = std::fs::read(&cert).expect("cert");
    let mut child = Command::new("python3")
        .arg(format!(
            "{}/tests/h2/h11_required_origin.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args([&cert, &key])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start origin");
    let stdout = child.stdout.take().expect("stdout");
    let _guard = ChildGuard(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let port: u16 = lines
        .next()
        .expect("port line")
        .expect("read")
        .trim()
        .parse()
        .expect("port");

    let proxy = serve(h2c_proxy(ToPeer(tls_peer(port, &pem)))).await;
    let args = vec![
        "-sS".to_string(),
        "--max-time".into(),
        "20".into(),
        "--http2-prior-knowledge".into(),
        "-D-".into(),
        format!("http://{proxy}/"),
    ];
    // the h2 attempt is refused with HTTP_1_1_REQUIRED, the retry goes over HTTP/1.1
    let out = text(&run_for("curl", &args, STEP).await);
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(out.ends_with("hello after downgrade"), "{out}");
    // and the peer stays on HTTP/1.1
    let out = text(&run_for("curl", &args, STEP).await);
    assert!(out.ends_with("hello after downgrade"), "{out}");
    let protos: Vec<String> =
        tokio::task::spawn_blocking(move || lines.take(2).map(|l| l.expect("line")).collect())
            .await
            .expect("join");
    assert_eq!(protos, ["h2", "http/1.1"]);
}
