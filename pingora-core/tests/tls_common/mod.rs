//! Helpers shared by the `tls_*` integration tests: certificates minted at
//! test time, and independent TLS peers (curl, openssl s_client, nginx)
//! run under bounded waits and killed on drop.
#![allow(dead_code)]

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A certificate and its key, as PEM files and DER bytes.
pub struct Minted {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

impl Minted {
    pub fn cert_str(&self) -> &str {
        self.cert.to_str().expect("utf-8 path")
    }
    pub fn key_str(&self) -> &str {
        self.key.to_str().expect("utf-8 path")
    }
}

/// Every certificate the TLS tests need, in one temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The test CA.
    pub ca: Minted,
    /// Another CA that signed nothing the servers use.
    pub other_ca: Minted,
    /// localhost and 127.0.0.1, signed by `ca`.
    pub server: Minted,
    /// `other.test`, signed by `ca`.
    pub second: Minted,
    /// A client certificate (CN client-1, O Pingora Test Clients).
    pub client: Minted,
    /// localhost, expired in 2021.
    pub expired: Minted,
    /// `wrong.test` only.
    pub wrong_name: Minted,
    /// Signs further leaves (see [`Pki::leaf`]).
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.distinguished_name.push(DnType::CommonName, cn);
    p
}

/// A self-signed CA written as `<file>.crt` / `<file>.key`, and its issuer.
fn self_signed_ca(dir: &Path, file: &str, cn: &str) -> (Minted, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("key");
    let params = ca_params(cn);
    let cert = params.self_signed(&key).expect("ca");
    let minted = write(dir, file, &cert.pem(), &key, cert.der());
    (minted, Issuer::new(params, key))
}

fn write(dir: &Path, name: &str, cert_pem: &str, key: &KeyPair, cert_der: &[u8]) -> Minted {
    let cert = dir.join(format!("{name}.crt"));
    let keyf = dir.join(format!("{name}.key"));
    std::fs::write(&cert, cert_pem).expect("write cert");
    std::fs::write(&keyf, key.serialize_pem()).expect("write key");
    Minted {
        cert,
        key: keyf,
        cert_der: cert_der.to_vec(),
        key_der: key.serialize_der(),
    }
}

fn leaf(
    dir: &Path,
    name: &str,
    sans: &[&str],
    cn: &str,
    org: Option<&str>,
    expired: bool,
    issuer: &Issuer<'_, KeyPair>,
) -> Minted {
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("params");
    p.distinguished_name.push(DnType::CommonName, cn);
    if let Some(o) = org {
        p.distinguished_name.push(DnType::OrganizationName, o);
    }
    if expired {
        p.not_before = date_time_ymd(2020, 1, 1);
        p.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, issuer).expect("sign");
    write(dir, name, &cert.pem(), &key, cert.der())
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let (ca, issuer) = self_signed_ca(d, "ca", "Pingora Test CA");
        let (other_ca, _) = self_signed_ca(d, "other_ca", "Some Other CA");

        Pki {
            server: leaf(
                d,
                "server",
                &["localhost", "127.0.0.1"],
                "localhost",
                None,
                false,
                &issuer,
            ),
            second: leaf(
                d,
                "second",
                &["other.test"],
                "other.test",
                None,
                false,
                &issuer,
            ),
            client: leaf(
                d,
                "client",
                &["client-1"],
                "client-1",
                Some("Pingora Test Clients"),
                false,
                &issuer,
            ),
            expired: leaf(
                d,
                "expired",
                &["localhost", "127.0.0.1"],
                "localhost",
                None,
                true,
                &issuer,
            ),
            wrong_name: leaf(
                d,
                "wrong",
                &["wrong.test"],
                "wrong.test",
                None,
                false,
                &issuer,
            ),
            ca,
            other_ca,
            issuer,
            dir,
        }
    }

    /// Mint `<file>.crt` / `<file>.key` signed by the test CA, valid for
    /// `names` (the first one is also the CN).
    pub fn leaf(&self, file: &str, names: &[&str]) -> Minted {
        leaf(
            self.dir.path(),
            file,
            names,
            names[0],
            None,
            false,
            &self.issuer,
        )
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Run `cmd` to completion, killing it after `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{cmd:?} did not finish within {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `openssl s_client` with `args`, stdin closed right away (so it exits
/// after the handshake); stdout and stderr together.
pub fn s_client(port: u16, args: &[&str]) -> String {
    let out = run(
        Command::new("openssl")
            .arg("s_client")
            .arg("-connect")
            .arg(format!("127.0.0.1:{port}"))
            .args(args),
        Duration::from_secs(20),
    );
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// curl with `args`; returns (success, stdout, stderr).
pub fn curl(args: &[&str]) -> (bool, String, String) {
    let out = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "15"])
            .args(args),
        Duration::from_secs(20),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// curl presenting `who` as its client certificate, trusting `ca`, then
/// `args`; returns (success, stdout, stderr).
pub fn curl_as(who: &Minted, ca: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec![
        "--cacert",
        ca,
        "--cert",
        who.cert_str(),
        "--key",
        who.key_str(),
    ];
    all.extend_from_slice(args);
    curl(&all)
}

/// A child process killed when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until something listens on 127.0.0.1:`port`.
pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
