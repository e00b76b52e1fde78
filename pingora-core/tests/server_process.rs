//! Whole-process behaviour: `-t` exit codes and daemon mode with real
//! signals. The test binary re-runs itself, executing one of the ignored
//! `child_*` entry points in the child process.

mod server_common;

use async_trait::async_trait;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::Server;
use pingora_core::services::listening::Service;
use server_common::*;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "PINGORA_SERVER_TEST_CHILD";

/// Run the child entry point `name` of this test binary.
fn run_child(name: &str, envs: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        name,
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(CHILD_ENV, "1")
    .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("spawn child")
}

fn in_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

#[test]
#[ignore = "entry point of a child process, run by test_flag_exit_codes"]
fn child_test_mode() {
    assert!(in_child(), "only runs as a child process");
    let threads: usize = std::env::var("CHILD_THREADS")
        .expect("env")
        .parse()
        .expect("num");
    let conf = ServerConf {
        threads,
        ..Default::default()
    };
    let opt = Opt::parse_from_args(["prog", "-t"]);
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    unreachable!("bootstrap with -t always exits");
}

#[test]
fn test_flag_exit_codes() {
    let ok = run_child("child_test_mode", &[("CHILD_THREADS", "2")]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let bad = run_child("child_test_mode", &[("CHILD_THREADS", "0")]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("threads must be greater than 0"),
        "{stderr}"
    );
}

struct Hello;

#[async_trait]
impl ServeHttp for Hello {
    async fn response(&self, _s: &mut ServerSession) -> http::Response<Vec<u8>> {
        http::Response::new(b"daemon".to_vec())
    }
}

#[test]
#[ignore = "entry point of a child process, run by daemon_mode_with_signals"]
fn child_daemon() {
    assert!(in_child(), "only runs as a child process");
    let dir = std::env::var("CHILD_DIR").expect("env");
    let addr = std::env::var("CHILD_ADDR").expect("env");
    let conf = ServerConf {
        pid_file: format!("{dir}/server.pid"),
        error_log: Some(format!("{dir}/error.log")),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::parse_from_args(["prog", "-d"]), conf);
    server.bootstrap();
    let mut service = Service::new("daemon http".into(), Hello);
    service.add_tcp(&addr);
    server.add_service(service);
    server.run_forever();
}

/// Kills the daemon if the test fails half way.
struct Reaper(Option<nix::unistd::Pid>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` exited: no such process, or a zombie nobody reaped yet.
fn gone(pid: nix::unistd::Pid) -> bool {
    if nix::sys::signal::kill(pid, None).is_err() {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[test]
fn daemon_mode_with_signals() {
    use nix::sys::signal::{kill, Signal};
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf8").to_string();
    let addr = free_addr();
    let out = run_child("child_daemon", &[("CHILD_DIR", &d), ("CHILD_ADDR", &addr)]);
    // the foreground process exits at once with success
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let pid_path = dir.path().join("server.pid");
    let pid = wait_for("the pid file", || {
        std::fs::read_to_string(&pid_path)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
    });
    let pid = nix::unistd::Pid::from_raw(pid);
    let mut reaper = Reaper(Some(pid));
    assert!(dir.path().join("error.log").exists());

    let mut c = connect(&addr);
    let r = exchange(&mut c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"daemon");
    drop(c);

    kill(pid, Signal::SIGTERM).expect("signal the daemon");
    wait_for("the daemon to exit", || gone(pid).then_some(()));
    reaper.0 = None;
}
