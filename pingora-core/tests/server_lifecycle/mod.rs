//! Shared by the process-level lifecycle tests (`server_upgrade`,
//! `server_shutdown`): the server they run as a child process, and helpers
//! to start, signal and query it.
//!
//! The test binary re-runs itself as the server: the ignored
//! `server_lifecycle::child_server` entry point builds a `Server` from its
//! command line (`CHILD_ARGS`), with an HTTP app on a TCP and a Unix socket
//! and a background service.
#![allow(dead_code)]

use crate::server_common::{free_addr, read_response, Resp, WAIT};
use async_trait::async_trait;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::Opt;
use pingora_core::server::{Server, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::listening::Service;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub mod procs;

const CHILD_ENV: &str = "PINGORA_LIFECYCLE_TEST_CHILD";

/// `/slow` fetches `/slow` from the origin in `CHILD_ORIGIN` (which takes
/// its time); anything else is answered with `<pid> <path>` at once.
pub struct LifeApp {
    origin: Option<String>,
    connector: Connector,
}

impl LifeApp {
    async fn fetch_origin(&self) -> Result<Vec<u8>, String> {
        let origin = self.origin.as_ref().ok_or("no origin configured")?;
        let peer = HttpPeer::new(origin.as_str(), false, String::new());
        let (mut up, _) = self
            .connector
            .get_http_session(&peer)
            .await
            .map_err(|e| e.to_string())?;
        let mut req = RequestHeader::build("GET", b"/slow", None).map_err(|e| e.to_string())?;
        req.insert_header("Host", "origin")
            .map_err(|e| e.to_string())?;
        up.write_request_header(Box::new(req))
            .await
            .map_err(|e| e.to_string())?;
        up.finish_request_body().await.map_err(|e| e.to_string())?;
        up.read_response_header().await.map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        while let Some(chunk) = up.read_response_body().await.map_err(|e| e.to_string())? {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[async_trait]
impl ServeHttp for LifeApp {
    async fn response(&self, s: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = s.req_header().uri.path().to_string();
        let (status, body) = if path == "/slow" {
            match self.fetch_origin().await {
                Ok(b) => (200, [b"slow:".as_slice(), &b].concat()),
                Err(e) => (502, e.into_bytes()),
            }
        } else {
            (200, format!("{} {path}", std::process::id()).into_bytes())
        };
        http::Response::builder()
            .status(status)
            .body(body)
            .expect("valid response")
    }
}

/// Appends a line to `CHILD_MARKER` when it sees the shutdown.
pub struct Marker(Option<String>);

#[async_trait]
impl BackgroundService for Marker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.wait_for(|down| *down).await.is_ok() {
            if let Some(path) = &self.0 {
                let line = format!("{} saw shutdown\n", std::process::id());
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("marker file");
                f.write_all(line.as_bytes()).expect("write marker");
            }
        }
    }
}

#[test]
#[ignore = "entry point of a child process, run by the tests below"]
fn child_server() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "only runs as a child"
    );
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .try_init();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut args = vec!["server".to_string()];
    args.extend(
        env("CHILD_ARGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from),
    );
    let opt = Opt::parse_from_args(args);
    // the way a typical main() reports a bad configuration: the reason,
    // then a non-zero exit
    let mut server = match Server::new(Some(opt)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start: {e}");
            std::process::exit(2);
        }
    };
    server.bootstrap();
    let app = LifeApp {
        origin: env("CHILD_ORIGIN"),
        connector: Connector::new(None),
    };
    let mut service = Service::new("lifecycle http".into(), app);
    if let Some(addr) = env("CHILD_ADDR") {
        service.add_tcp(&addr);
    }
    if let Some(path) = env("CHILD_UDS") {
        service.add_uds(&path, None);
    }
    server.add_service(service);
    server.add_service(background_service("marker", Marker(env("CHILD_MARKER"))));
    server.run_forever();
}

// ---------------------------------------------------------------- helpers

/// A server process; killed when dropped (a failed test leaves nothing).
pub struct Proc {
    child: Option<Child>,
    pub pid: Pid,
}

impl Proc {
    pub fn signal(&self, s: Signal) {
        kill(self.pid, s).expect("signal the server");
    }

    /// Wait for the process to exit, for up to `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("not waited yet");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "server {} still running after {limit:?}",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Kills a daemon (not our child) when dropped.
pub struct Reaper(pub Option<Pid>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

/// What one test's servers share.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub addr: String,
    pub uds: String,
    pub conf: String,
}

impl Setup {
    pub fn new(conf_extra: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        let conf = format!("{d}/conf.yaml");
        std::fs::write(
            &conf,
            format!(
                "---\nversion: 1\nthreads: 2\nupgrade_sock: {d}/upgrade.sock\n\
                 pid_file: {d}/server.pid\nerror_log: {d}/error.log\n{conf_extra}"
            ),
        )
        .expect("write conf");
        Setup {
            addr: free_addr(),
            uds: format!("{d}/http.sock"),
            conf,
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Start a server with `args` (besides `-c`); its log goes to `log`.
    pub fn spawn(&self, args: &str, log: &str, envs: &[(&str, String)]) -> Proc {
        let exe = std::env::current_exe().expect("test binary");
        let log = std::fs::File::create(self.path(log)).expect("log file");
        let mut cmd = Command::new(exe);
        cmd.args([
            "--ignored",
            "--exact",
            "server_lifecycle::child_server",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, "1")
        .env("CHILD_ARGS", format!("-c {} {args}", self.conf))
        .env("CHILD_ADDR", &self.addr)
        .env("CHILD_UDS", &self.uds)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn server");
        Proc {
            pid: Pid::from_raw(child.id() as i32),
            child: Some(child),
        }
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Wait until the server answers on TCP; returns the answering pid.
    pub fn wait_serving(&self) -> u32 {
        let start = Instant::now();
        loop {
            if let Ok(r) = get_once(&self.addr, "/ping") {
                if r.status == 200 {
                    return pid_of(&r);
                }
            }
            assert!(start.elapsed() < WAIT, "server never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until a new process started with `-u` listens for the sockets.
    pub fn wait_upgrade_sock(&self) {
        let sock = self.path("upgrade.sock");
        let start = Instant::now();
        while !sock.exists() {
            assert!(start.elapsed() < WAIT, "the new process never got ready");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

pub fn pid_of(r: &Resp) -> u32 {
    std::str::from_utf8(&r.body)
        .ok()
        .and_then(|b| b.split(' ').next()?.parse().ok())
        .expect("body starts with the pid")
}

/// One request on a new connection.
pub fn get_once(addr: &str, path: &str) -> std::io::Result<Resp> {
    let mut c = std::net::TcpStream::connect(addr)?;
    c.set_read_timeout(Some(WAIT))?;
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())?;
    std::panic::catch_unwind(move || read_response(&mut c))
        .map_err(|_| std::io::Error::other("bad response"))
}

/// An origin that answers each request after `delay`; returns its address.
pub fn slow_origin(delay: Duration) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind origin");
    let addr = l.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                // one request head, then the slow answer
                while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        std::thread::sleep(delay);
                        let _ = conn.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\norigin",
                        );
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

/// Send a request now, read its response on another thread.
pub fn request_in_background(addr: &str, path: &str) -> std::thread::JoinHandle<(Resp, Duration)> {
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(WAIT)).expect("timeout");
    let sent = Instant::now();
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .expect("write");
    std::thread::spawn(move || {
        let r = read_response(&mut c);
        (r, sent.elapsed())
    })
}

pub fn read_pid(path: &std::path::Path) -> Option<Pid> {
    std::fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Pid::from_raw)
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
