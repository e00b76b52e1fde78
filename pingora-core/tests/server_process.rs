//! Whole-process behaviour: `-t` exit codes and daemon mode with real
//! signals. The test binary re-runs itself, executing one of the ignored
//! `child_*` entry points in the child process.

#[path = "server_lifecycle/procs.rs"]
mod procs;
mod server_common;

use async_trait::async_trait;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::Server;
use pingora_core::services::listening::Service;
use procs::gone;
use server_common::*;
use std::io::Write;
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
        user: std::env::var("CHILD_USER").ok(),
        group: std::env::var("CHILD_GROUP").ok(),
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

/// Start the daemon child, check it serves, stop it with `signal`; returns
/// the daemon's `/proc/<pid>/status` taken while it ran.
fn run_daemon(envs: &[(&str, &str)], signal: nix::sys::signal::Signal) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf8").to_string();
    let addr = free_addr();
    let mut all = vec![("CHILD_DIR", d.as_str()), ("CHILD_ADDR", addr.as_str())];
    all.extend_from_slice(envs);
    let out = run_child("child_daemon", &all);
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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();

    nix::sys::signal::kill(pid, signal).expect("signal the daemon");
    wait_for("the daemon to exit", || gone(pid).then_some(()));
    reaper.0 = None;
    if let Some(cwd) = cwd {
        assert_eq!(cwd, std::path::Path::new("/"));
    }
    status
}

fn status_field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .expect("field")
        .trim()
}

#[test]
fn daemon_mode_with_signals() {
    use nix::sys::signal::Signal;
    run_daemon(&[], Signal::SIGTERM);
    // upgrades (SIGQUIT) of daemons: see server_upgrade.rs
    run_daemon(&[], Signal::SIGINT);
}

#[test]
fn daemon_drops_privileges() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: switching user cannot be tested here");
        return;
    }
    let status = run_daemon(
        &[("CHILD_USER", "nobody"), ("CHILD_GROUP", "nogroup")],
        nix::sys::signal::Signal::SIGINT,
    );
    let uid = nix::unistd::User::from_name("nobody")
        .expect("lookup")
        .expect("nobody")
        .uid;
    let gid = nix::unistd::Group::from_name("nogroup")
        .expect("lookup")
        .expect("nogroup")
        .gid;
    let uids = status_field(&status, "Uid:");
    assert!(
        uids.split_whitespace().all(|u| u == uid.to_string()),
        "{uids}"
    );
    let gids = status_field(&status, "Gid:");
    assert!(
        gids.split_whitespace().all(|g| g == gid.to_string()),
        "{gids}"
    );
}

#[test]
#[ignore = "entry point of a child process, run by out_of_fds_does_not_stop_accepting"]
fn child_low_fd_limit() {
    assert!(in_child(), "only runs as a child process");
    let _ = env_logger::builder().is_test(false).try_init();
    let addr = std::env::var("CHILD_ADDR").expect("env");
    let limit = libc::rlimit {
        rlim_cur: 48,
        rlim_max: 48,
    };
    // SAFETY: plain setrlimit call with a valid struct
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let conf = ServerConf {
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = Service::new("low fds".into(), Hello);
    service.add_tcp(&addr);
    server.add_service(service);
    server.run_forever();
}

#[test]
fn out_of_fds_does_not_stop_accepting() {
    use nix::sys::signal::{kill, Signal};
    let addr = free_addr();
    let exe = std::env::current_exe().expect("test binary");
    let child = Command::new(exe)
        .args(["--ignored", "--exact", "child_low_fd_limit", "--nocapture"])
        .env(CHILD_ENV, "1")
        .env("CHILD_ADDR", &addr)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut reaper = Reaper(Some(pid));

    let mut first = connect(&addr);
    assert_eq!(exchange(&mut first, "GET / HTTP/1.1\r\n\r\n").status, 200);
    // more connections than the server has descriptors: the surplus waits
    // in the backlog while accept() fails with EMFILE
    let flood: Vec<_> = (0..80).map(|_| connect(&addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    drop(flood);
    drop(first);
    // once descriptors are free again, new connections are served
    let start = Instant::now();
    loop {
        let mut c = connect(&addr);
        let served = c
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .ok()
            .and_then(|_| std::panic::catch_unwind(move || read_response(&mut c)).ok());
        if let Some(r) = served {
            assert_eq!(r.status, 200);
            break;
        }
        assert!(start.elapsed() < WAIT, "server never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
    kill(pid, Signal::SIGINT).expect("signal");
    let out = child.wait_with_output().expect("wait");
    reaper.0 = None;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("accept() failed on"), "{log}");
    assert!(log.contains("Too many open files"), "{log}");
}
