//! Zero downtime upgrades with real processes: two upgrades in a row under
//! load, an upgrade nobody takes, and daemons upgraded the way systemd does.

#[path = "server_lifecycle/load.rs"]
mod load;
mod server_common;
mod server_lifecycle;

use nix::sys::signal::{kill, Signal};
use server_common::{read_response, WAIT};
use server_lifecycle::procs::gone;
use server_lifecycle::*;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn upgrade_twice_under_load() {
    let s = Setup::new("grace_period_seconds: 1\ngraceful_shutdown_timeout_seconds: 5\n");
    let first = s.spawn("", "s1.log", &[]);
    let pid1 = s.wait_serving();
    assert_eq!(pid1, first.pid.as_raw() as u32);

    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(Mutex::new(load::Stats::default()));
    let mut clients = Vec::new();
    for id in 0..8 {
        let (stop, total) = (stop.clone(), total.clone());
        let (addr, uds) = (s.addr.clone(), s.uds.clone());
        clients.push(std::thread::spawn(move || {
            // six clients over TCP, two over the Unix socket
            let connect = move || -> std::io::Result<Box<dyn load::Conn>> {
                if id < 6 {
                    let c = std::net::TcpStream::connect(&addr)?;
                    c.set_read_timeout(Some(WAIT))?;
                    c.set_nodelay(true)?;
                    Ok(Box::new(c))
                } else {
                    let c = UnixStream::connect(&uds)?;
                    c.set_read_timeout(Some(WAIT))?;
                    Ok(Box::new(c))
                }
            };
            // the app answers "<pid> <path>"
            let served_by = |path: &str, reply: &load::Reply| {
                let text = String::from_utf8_lossy(&reply.body);
                let (pid, echoed) = text.split_once(' ')?;
                pid.parse::<u32>().ok()?;
                (echoed == path).then(|| pid.to_string())
            };
            let st = load::client(id, connect, served_by, &stop);
            total.lock().expect("stats").merge(st);
        }));
    }

    let start = Instant::now();
    let mut old = first;
    let mut drains = Vec::new();
    for (round, log) in ["s2.log", "s3.log"].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(2_500));
        let new = s.spawn("-u", log, &[]);
        s.wait_upgrade_sock();
        let quit_at = Instant::now();
        old.signal(Signal::SIGQUIT);
        let status = old.wait(Duration::from_secs(8));
        drains.push(quit_at.elapsed());
        assert!(
            status.success(),
            "upgrade {}: old server exited with {status}",
            round + 1
        );
        old = new;
    }
    load::wait_for_load_target(start);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    let load_time = start.elapsed();
    old.signal(Signal::SIGINT);
    assert!(old.wait(WAIT).success());

    let st = std::mem::take(&mut *total.lock().expect("stats"));
    println!(
        "upgrade under load: {} ok, {} failed, {} reset, {} connections ({} closed by the server \
         with Connection: close) in {:.1}s; per process: {:?}; old processes exited {:?} after \
         SIGQUIT",
        st.ok,
        st.failed,
        st.resets,
        st.connects,
        st.closes_by_server,
        load_time.as_secs_f64(),
        st.per_pid,
        drains
    );
    let logs = format!(
        "{}\n{}\n{}",
        s.log("s1.log"),
        s.log("s2.log"),
        s.log("s3.log")
    );
    assert_eq!(st.failed, 0, "errors: {:?}\n{logs}", st.errors);
    assert_eq!(st.resets, 0, "errors: {:?}\n{logs}", st.errors);
    assert!(st.ok >= 20_000, "only {} requests", st.ok);
    assert_eq!(st.per_pid.len(), 3, "not served by three processes");
    assert!(st.per_pid.values().all(|n| *n > 100), "{:?}", st.per_pid);
    assert!(
        s.log("s1.log").contains("took 2 listening socket(s)"),
        "{logs}"
    );
    assert!(
        s.log("s2.log").contains("received 2 listening socket(s)"),
        "{logs}"
    );
}

#[test]
fn sigquit_without_a_new_process_keeps_serving() {
    let s = Setup::new("grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 2\n");
    let mut server = s.spawn("", "quit.log", &[]);
    let pid = s.wait_serving();
    let mut c = std::net::TcpStream::connect(&s.addr).expect("connect");
    c.set_read_timeout(Some(WAIT)).expect("timeout");
    server.signal(Signal::SIGQUIT);
    // keep using a connection and opening new ones while the hand-over is
    // attempted, and after it gave up
    let start = Instant::now();
    while !s.log("quit.log").contains("keeps serving") {
        assert!(
            start.elapsed() < Duration::from_secs(12),
            "{}",
            s.log("quit.log")
        );
        c.write_all(b"GET /same HTTP/1.1\r\n\r\n").expect("write");
        let r = read_response(&mut c);
        // kept open: no `Connection: close` (HTTP/1.1 reuse goes unannounced)
        assert_eq!((r.status, r.header("connection")), (200, None));
        assert_eq!(
            pid_of(&get_once(&s.addr, "/new").expect("new connection")),
            pid
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = s.log("quit.log");
    assert!(log.contains("no new process is listening on"), "{log}");
    assert!(log.contains("upgrade.sock"), "{log}");
    assert_eq!(pid_of(&get_once(&s.addr, "/after").expect("served")), pid);
    // and a later upgrade still works
    let mut new = s.spawn("-u", "quit-new.log", &[]);
    s.wait_upgrade_sock();
    server.signal(Signal::SIGQUIT);
    assert!(server.wait(WAIT).success());
    assert_eq!(
        pid_of(&get_once(&s.addr, "/upgraded").expect("served")),
        new.pid.as_raw() as u32
    );
    new.signal(Signal::SIGTERM);
    assert!(new.wait(WAIT).success());
}

// ---------------------------------------------------------------- daemon

/// The systemd sequence: a daemon runs; the new binary is started with
/// `-u -d` (its foreground process returns at once, ready to receive), then
/// the old one gets SIGQUIT. Returns the `/proc/<pid>/status` of the new
/// daemon.
fn daemon_upgrade(extra_conf: &str) -> String {
    let s = Setup::new(&format!(
        "grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 2\n{extra_conf}"
    ));
    // daemons that switch user must still reach their files
    std::fs::set_permissions(
        s.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let pid_file = s.path("server.pid");
    let mut fg = s.spawn("-d", "d1.log", &[]);
    assert!(fg.wait(WAIT).success(), "{}", s.log("d1.log"));
    // the foreground process returns once the pid file is written
    let old = read_pid(&pid_file).expect("pid file written before the foreground exits");
    let mut reap_old = Reaper(Some(old));
    assert_eq!(s.wait_serving(), old.as_raw() as u32);

    let mut fg = s.spawn("-u -d", "d2.log", &[]);
    assert!(fg.wait(WAIT).success(), "{}", s.log("d2.log"));
    // what systemd's ExecReload relies on: when `-u -d` returns, the new
    // daemon listens for the sockets and the pid file names it
    assert!(s.path("upgrade.sock").exists());
    let new = read_pid(&pid_file).expect("new pid");
    let _reap_new = Reaper(Some(new));
    assert_ne!(new, old);
    kill(old, Signal::SIGQUIT).expect("SIGQUIT the old daemon");
    wait_until("the old daemon to exit", || gone(old));
    reap_old.0 = None;
    assert_eq!(read_pid(&s.path("server.pid.old")), Some(old));
    assert_eq!(s.wait_serving(), new.as_raw() as u32);
    let log = std::fs::read_to_string(s.path("error.log")).expect("error_log");
    assert!(log.contains("received 2 listening socket(s)"), "{log}");
    let status = std::fs::read_to_string(format!("/proc/{new}/status")).expect("status");
    kill(new, Signal::SIGTERM).expect("SIGTERM the new daemon");
    wait_until("the new daemon to exit", || gone(new));
    status
}

#[test]
fn daemon_upgrade_rewrites_the_pid_file() {
    daemon_upgrade("");
}

/// As root, daemons switch to `user`; the old (unprivileged) process must
/// still reach the new one's upgrade socket.
#[test]
fn daemon_upgrade_after_dropping_privileges() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: switching user cannot be tested here");
        return;
    }
    let status = daemon_upgrade("user: nobody\ngroup: nogroup\n");
    let uid = nix::unistd::User::from_name("nobody")
        .expect("lookup")
        .expect("nobody")
        .uid;
    let uids = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("Uid line");
    assert!(
        uids.split_whitespace().all(|u| u == uid.to_string()),
        "{uids}"
    );
}

/// A new configuration without one of the old listeners: that socket is
/// closed (clients refused), not left to queue connections nobody takes.
#[test]
fn upgrade_closes_sockets_the_new_configuration_dropped() {
    let s = Setup::new("grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 2\n");
    let mut old = s.spawn("", "drop-old.log", &[]);
    s.wait_serving();
    assert!(UnixStream::connect(&s.uds).is_ok());
    // the new process only listens on TCP
    let mut new = s.spawn("-u", "drop-new.log", &[("CHILD_UDS", String::new())]);
    s.wait_upgrade_sock();
    old.signal(Signal::SIGQUIT);
    assert!(old.wait(WAIT).success());
    assert_eq!(s.wait_serving(), new.pid.as_raw() as u32);
    wait_until("the dropped unix socket to refuse", || {
        UnixStream::connect(&s.uds).is_err()
    });
    // the socket is closed before its warning is written: wait for both
    wait_until("the close to be logged", || {
        s.log("drop-new.log").contains("closing the socket of")
    });
    let log = s.log("drop-new.log");
    assert!(log.contains("received 2 listening socket(s)"), "{log}");
    new.signal(Signal::SIGINT);
    assert!(new.wait(WAIT).success());
}
