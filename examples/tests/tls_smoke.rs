//! The TLS examples, each run as its own process, against curl, openssl
//! s_client and openssl s_server, with certificates minted at test time.

use pingora_e2e::{free_port, ChildGuard, Origin, Proxy};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn example(name: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let dir: PathBuf = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("examples");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built", path.display());
    path.to_string_lossy().into_owned()
}

/// A CA and leaf certificates signed by it, as PEM files in `dir`.
struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let issuer = Self::ca(dir.path(), "ca");
        Self::ca(dir.path(), "other_ca");
        Pki { dir, issuer }
    }

    fn ca(dir: &Path, name: &str) -> Issuer<'static, KeyPair> {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        p.distinguished_name
            .push(DnType::CommonName, format!("{name} root"));
        let key = KeyPair::generate().expect("key");
        let cert = p.self_signed(&key).expect("ca");
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).expect("write");
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write");
        Issuer::new(p, key)
    }

    /// Mint `<file>.crt` / `<file>.key` for `names` (the first is the CN).
    fn leaf(&self, file: &str, names: &[&str]) {
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
        p.distinguished_name.push(DnType::CommonName, names[0]);
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, &self.issuer).expect("sign");
        std::fs::write(self.path(&format!("{file}.crt")), cert.pem()).expect("write");
        std::fs::write(self.path(&format!("{file}.key")), key.serialize_pem()).expect("write");
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_string_lossy().into_owned()
    }
}

fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// curl's status code, body and error text.
fn curl(args: &[&str]) -> (bool, String, String) {
    let out = run(Command::new("curl")
        .args(["-sS", "--max-time", "15"])
        .args(args));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s_client(port: u16, args: &[&str]) -> String {
    let out = run(Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn load_balancer_listens_with_tls_and_h2() {
    let pki = Pki::new();
    pki.leaf("server", &["localhost", "127.0.0.1"]);
    let origin = Origin::start("A");
    let tls_port = free_port();
    let tls_addr = format!("127.0.0.1:{tls_port}");
    let (cert, key) = (pki.path("server.crt"), pki.path("server.key"));
    let _lb = Proxy::start_with_env(
        &example("load_balancer"),
        &[origin.port],
        &[
            ("TLS_LISTEN", tls_addr.as_str()),
            ("TLS_CERT", cert.as_str()),
            ("TLS_KEY", key.as_str()),
        ],
    );
    wait_port(tls_port);
    let url = format!("https://localhost:{tls_port}/");
    let (ok, body, err) = curl(&["--http1.1", "--cacert", &pki.path("ca.crt"), &url]);
    assert!(ok, "{err}");
    assert_eq!(body, "A");
    let out = s_client(tls_port, &["-alpn", "h2,http/1.1"]);
    assert!(out.contains("ALPN protocol: h2"), "{out}");
    // HTTP/2 chosen through ALPN, end to end
    let (ok, out, err) = curl(&[
        "--http2",
        "--cacert",
        &pki.path("ca.crt"),
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
    pki.leaf("server", &["localhost", "127.0.0.1"]);
    pki.leaf("client", &["client-1"]);
    let origin = header_origin();
    let (cert, key, ca) = (
        pki.path("server.crt"),
        pki.path("server.key"),
        pki.path("ca.crt"),
    );
    let env = [
        ("TLS_CERT", cert.as_str()),
        ("TLS_KEY", key.as_str()),
        ("CLIENT_CA", ca.as_str()),
    ];
    let proxy = Proxy::start_with_env(&example("mtls"), &[origin], &env);
    let url = format!("https://localhost:{}/", proxy.port);
    let (ok, body, err) = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &pki.path("client.crt"),
        "--key",
        &pki.path("client.key"),
        &url,
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        body, "client-1",
        "the verified identity reaches the upstream"
    );
    let (ok, body, _) = curl(&["--cacert", &ca, &url]);
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
            .args(["-cert", &cert, "-key", &key])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    wait_port(up_port);
    for (upstream_ca, status) in [(ca.clone(), "200"), (pki.path("other_ca.crt"), "502")] {
        let mut env = env.to_vec();
        env.extend([("UPSTREAM_TLS", "1"), ("UPSTREAM_CA", upstream_ca.as_str())]);
        let proxy = Proxy::start_with_env(&example("mtls"), &[up_port], &env);
        let url = format!("https://localhost:{}/", proxy.port);
        let (ok, code, err) = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            &ca,
            "--cert",
            &pki.path("client.crt"),
            "--key",
            &pki.path("client.key"),
            &url,
        ]);
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
    let ca = pki.path("ca.crt");
    for name in ["a.test", "b.test", "localhost"] {
        let resolve = format!("{name}:{}:127.0.0.1", proxy.port);
        let url = format!("https://{name}:{}/", proxy.port);
        let (ok, body, err) = curl(&["--http1.1", "--cacert", &ca, "--resolve", &resolve, &url]);
        assert!(ok, "{name}: {err}");
        assert_eq!(body, "A");
        let out = s_client(proxy.port, &["-servername", name]);
        assert!(out.contains(&format!("subject=CN = {name}")), "{out}");
    }
    // an unknown name gets the default certificate
    let out = s_client(proxy.port, &["-servername", "unknown.test"]);
    assert!(out.contains("subject=CN = localhost"), "{out}");
}
