//! The TLS examples, each run as its own process, against curl, openssl
//! s_client and openssl s_server, with certificates minted at test time.

mod common;

use common::tls::{curl, curl_as, s_client, wait_port, Pki};
use common::{example, Logged};
use pingora_e2e::{free_port, ChildGuard, Origin, Proxy};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn load_balancer_listens_with_tls_and_h2() {
    let pki = Pki::new();
    let origin = Origin::start("A");
    let tls_port = free_port();
    let tls_addr = format!("127.0.0.1:{tls_port}");
    let _lb = Proxy::start_with_env(
        &example("load_balancer"),
        &[origin.port],
        &[
            ("TLS_LISTEN", tls_addr.as_str()),
            ("TLS_CERT", pki.server.cert_str()),
            ("TLS_KEY", pki.server.key_str()),
        ],
    );
    wait_port(tls_port);
    let url = format!("https://localhost:{tls_port}/");
    let ca = pki.ca.cert_str();
    let (ok, body, err) = curl(&["--http1.1", "--cacert", ca, &url]);
    assert!(ok, "{err}");
    assert_eq!(body, "A");
    let out = s_client(tls_port, &["-alpn", "h2,http/1.1"]);
    assert!(out.contains("ALPN protocol: h2"), "{out}");
    // HTTP/2 chosen through ALPN, end to end
    let (ok, out, err) = curl(&[
        "--http2",
        "--cacert",
        ca,
        "-w",
        " http/%{http_version}",
        &url,
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "A http/2");
}

/// A one-connection-at-a-time origin answering with the `x-client-cn` it got.
fn header_origin() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten().take(16) {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(&conn);
            let mut cn = String::from("none");
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("x-client-cn:") {
                    cn = v.trim().to_string();
                }
                line.clear();
            }
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{cn}",
                cn.len()
            );
            let _ = (&conn).write_all(resp.as_bytes());
        }
    });
    port
}

#[test]
fn mtls_example_checks_clients_and_upstream_certificates() {
    let pki = Pki::new();
    let origin = header_origin();
    let (cert, key, ca) = (
        pki.server.cert_str(),
        pki.server.key_str(),
        pki.ca.cert_str(),
    );
    let env = [("TLS_CERT", cert), ("TLS_KEY", key), ("CLIENT_CA", ca)];
    let proxy = Proxy::start_with_env(&example("mtls"), &[origin], &env);
    let url = format!("https://localhost:{}/", proxy.port);
    let (ok, body, err) = curl_as(&pki.client, ca, &[&url]);
    assert!(ok, "{err}");
    assert_eq!(
        body, "client-1",
        "the verified identity reaches the upstream"
    );
    let (ok, body, _) = curl(&["--cacert", ca, &url]);
    assert!(!ok, "a client without certificate was served: {body}");

    // openssl s_server as the TLS upstream: verified with the right CA,
    // a 502 with the wrong one
    let up_port = free_port();
    let _s_server = ChildGuard::new(
        Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-www",
                "-accept",
                &up_port.to_string(),
            ])
            .args(["-cert", cert, "-key", key])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    wait_port(up_port);
    for (upstream_ca, status) in [(ca, "200"), (pki.other_ca.cert_str(), "502")] {
        let mut env = env.to_vec();
        env.extend([("UPSTREAM_TLS", "1"), ("UPSTREAM_CA", upstream_ca)]);
        let proxy = Proxy::start_with_env(&example("mtls"), &[up_port], &env);
        let url = format!("https://localhost:{}/", proxy.port);
        let (ok, code, err) = curl_as(
            &pki.client,
            ca,
            &["-o", "/dev/null", "-w", "%{http_code}", &url],
        );
        assert!(ok, "{err}");
        assert_eq!(code, status, "upstream CA {upstream_ca}");
    }
}

#[test]
fn dynamic_cert_example_picks_certificates_by_sni() {
    let pki = Pki::new();
    pki.leaf("default", &["localhost", "127.0.0.1"]);
    pki.leaf("a.test", &["a.test"]);
    pki.leaf("b.test", &["b.test"]);
    let origin = Origin::start("A");
    let dir = pki.dir.path().to_string_lossy().into_owned();
    let proxy = Proxy::start_with_env(
        &example("dynamic_cert"),
        &[origin.port],
        &[("CERT_DIR", dir.as_str())],
    );
    let ca = pki.ca.cert_str();
    for name in ["a.test", "b.test", "localhost"] {
        let resolve = format!("{name}:{}:127.0.0.1", proxy.port);
        let url = format!("https://{name}:{}/", proxy.port);
        let (ok, body, err) = curl(&["--http1.1", "--cacert", ca, "--resolve", &resolve, &url]);
        assert!(ok, "{name}: {err}");
        assert_eq!(body, "A");
        let out = s_client(proxy.port, &["-servername", name]);
        assert!(out.contains(&format!("subject=CN = {name}")), "{out}");
    }
    // an unknown name gets the default certificate
    let out = s_client(proxy.port, &["-servername", "unknown.test"]);
    assert!(out.contains("subject=CN = localhost"), "{out}");
}

/// How long a log line may take to appear.
const LOG_WAIT: Duration = Duration::from_secs(10);

#[test]
fn failed_tls_handshakes_are_logged_with_the_client_address() {
    let pki = Pki::new();
    let origin = Origin::start("A");
    let (ca, client) = (pki.ca.cert_str(), &pki.client);
    let server = Logged::start(
        "mtls",
        &[origin.port],
        &[
            ("TLS_CERT", pki.server.cert_str()),
            ("TLS_KEY", pki.server.key_str()),
            ("CLIENT_CA", ca),
        ],
    );
    let url = format!("https://localhost:{}/", server.port);

    // a good client, from a port we know: served, and not logged
    let good_port = free_port().to_string();
    let (ok, body, err) = curl_as(client, ca, &["--local-port", &good_port, &url]);
    assert!(ok, "{err}");
    assert_eq!(body, "A");

    // plain HTTP on the TLS port
    let mut plain = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let plain_addr = plain.local_addr().expect("local addr").to_string();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = plain.read_to_end(&mut Vec::new());
    let line = server
        .wait_for_line(&["TLS handshake with", &plain_addr], LOG_WAIT)
        .unwrap_or_else(|log| panic!("no log line for {plain_addr}:\n{log}"));
    assert!(line.contains("WARN"), "{line}");

    // a TLS client without the required client certificate
    let bad_port = free_port().to_string();
    let (ok, _, _) = curl(&["--cacert", ca, "--local-port", &bad_port, &url]);
    assert!(!ok, "served without a client certificate");
    let bad_addr = format!("127.0.0.1:{bad_port}");
    let line = server
        .wait_for_line(&["TLS handshake with", &bad_addr], LOG_WAIT)
        .unwrap_or_else(|log| panic!("no log line for {bad_addr}:\n{log}"));
    assert!(line.contains("WARN"), "{line}");

    let good_addr = format!("127.0.0.1:{good_port}");
    // logged in order of the handshakes: had it been, it would be there by now
    let log = server.wait_for_line(&[&good_addr], Duration::from_millis(500));
    assert!(log.is_err(), "the good handshake was logged: {log:?}");
}
