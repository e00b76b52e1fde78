//! Helpers shared by the example smoke tests: locating the built example
//! programs, running them with their log captured, and the Python peers and
//! TLS helpers of the crates' own integration tests.
#![allow(dead_code)]

#[path = "../../../pingora-proxy/tests/py/peers.rs"]
pub mod peers;
#[path = "../../../pingora-core/tests/tls_common/mod.rs"]
pub mod tls;

use pingora_e2e::{free_port, ChildGuard};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The path of example `name`: `cargo test` builds the examples into
/// `target/<profile>/examples/` before running tests.
pub fn example(name: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/examples/<name>
    let dir: PathBuf = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("examples");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built", path.display());
    path.to_string_lossy().into_owned()
}

/// Run a Python peer's client mode to completion; it must succeed. Returns
/// its stdout.
pub fn run_py_ok(script: &str, args: &[&str]) -> String {
    let out = peers::run_client(script, args, Duration::from_secs(60));
    peers::success_stdout(&format!("{script} {args:?}"), &out)
}

/// An example program whose log (stderr, at `RUST_LOG=warn`) goes to a file.
pub struct Logged {
    /// The port its `LISTEN` address uses.
    pub port: u16,
    log: tempfile::NamedTempFile,
    _child: ChildGuard,
}

impl Logged {
    /// Start example `name` listening on a free port, with `UPSTREAMS` set
    /// to the given origin ports and extra environment `env`; waits until
    /// it accepts connections.
    pub fn start(name: &str, upstream_ports: &[u16], env: &[(&str, &str)]) -> Logged {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let port = free_port();
        let upstreams: Vec<String> = upstream_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let child = Command::new(example(name))
            .env("UPSTREAMS", upstreams.join(","))
            .env("LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log file"))
            .spawn()
            .expect("spawn example");
        let logged = Logged {
            port,
            log,
            _child: ChildGuard::new(child),
        };
        tls::wait_port(port);
        logged
    }

    /// Wait (up to `limit`) until the log holds a line containing every one
    /// of `parts`; returns that line, or the whole log as the error.
    pub fn wait_for_line(&self, parts: &[&str], limit: Duration) -> Result<String, String> {
        let deadline = Instant::now() + limit;
        loop {
            let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return Ok(line.to_string());
            }
            if Instant::now() > deadline {
                return Err(text);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
