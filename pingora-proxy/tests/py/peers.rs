//! Spawning the Python peers (servers and clients) of the WebSocket and gRPC tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The path of a helper script in `pingora-proxy/tests/py/` (this file is also included by
/// tests of other crates in the workspace).
pub fn script(name: &str) -> PathBuf {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let own = crate_dir.join("tests/py").join(name);
    if own.exists() {
        return own;
    }
    crate_dir.join("../pingora-proxy/tests/py").join(name)
}

/// A Python server process, killed when dropped.
pub struct PyServer {
    child: Child,
    /// The port it announced (`PORT <n>` on its stdout).
    pub port: u16,
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PyServer {
    /// Run `python3 <script> <args>` and wait (up to 30 s) for its `PORT <n>` line.
    pub fn start(script_name: &str, args: &[&str]) -> PyServer {
        let mut child = Command::new("python3")
            .arg(script(script_name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python3 server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(p) = line.strip_prefix("PORT ") {
                    let _ = tx.send(p.trim().parse::<u16>().ok());
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(p)) => p,
            other => {
                let _ = child.kill();
                panic!("python server {script_name} did not announce a port: {other:?}");
            }
        };
        PyServer { child, port }
    }
}

/// Run `python3 <script> <args>` to completion (at most `limit`), returning its output.
pub fn run_client(script_name: &str, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new("python3")
        .arg(script(script_name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3 client");
    let deadline = std::time::Instant::now() + limit;
    loop {
        match child.try_wait().expect("poll python client") {
            Some(_) => return child.wait_with_output().expect("client output"),
            None if std::time::Instant::now() > deadline => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("client output");
                panic!(
                    "python client {script_name} {args:?} timed out; stdout: {} stderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// [`run_client`] from async code: runs on a blocking thread of the tokio runtime.
pub async fn run_client_async(
    script_name: &'static str,
    args: Vec<String>,
    limit: Duration,
) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_client(script_name, &args, limit)
    })
    .await
    .expect("python client thread")
}

/// The stdout of a finished client, which must have succeeded (else panic with both outputs).
pub fn success_stdout(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Every check `grpc_peer.py client` runs; each prints `CHECK <name> ok` once it passed.
pub const GRPC_CHECKS: [&str; 6] = [
    "unary",
    "unary_1mib",
    "server_stream",
    "client_stream",
    "bidi",
    "error_status",
];

/// Assert that `out`, the stdout of `grpc_peer.py client`, reports every check passed.
pub fn assert_grpc_checks(out: &str) {
    for check in GRPC_CHECKS {
        assert!(out.contains(&format!("CHECK {check} ok")), "{check}: {out}");
    }
}
