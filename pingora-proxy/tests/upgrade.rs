//! The proxy upgraded twice in a row (`-u` + `SIGQUIT`) under keep-alive
//! load, with real processes: not one request may fail or be reset.
//!
//! The test binary re-runs itself as the proxy (the ignored `child_proxy`
//! entry point); the origin runs in the test process so that it outlives
//! every proxy generation.

#[path = "../../pingora-core/tests/server_lifecycle/load.rs"]
mod load;

use async_trait::async_trait;
use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::{http_proxy_service, ProxyHttp, Session};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "PINGORA_PROXY_UPGRADE_CHILD";
const WAIT: Duration = Duration::from_secs(10);

struct Forward {
    origin: String,
}

#[async_trait]
impl ProxyHttp for Forward {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.origin.as_str(),
            false,
            String::new(),
        )))
    }

    async fn response_filter(
        &self,
        _s: &mut Session,
        resp: &mut ResponseHeader,
        _c: &mut (),
    ) -> Result<()> {
        resp.insert_header("x-pid", std::process::id().to_string())?;
        Ok(())
    }
}

#[test]
#[ignore = "entry point of a child process, run by proxy_upgraded_twice_under_load"]
fn child_proxy() {
    assert!(
        std::env::var_os(CHILD_ENV).is_some(),
        "only runs as a child"
    );
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .try_init();
    let var = |k: &str| std::env::var(k).expect("child env");
    let mut args = vec!["proxy".to_string()];
    args.extend(var("CHILD_ARGS").split_whitespace().map(String::from));
    let mut server = Server::new(Some(Opt::parse_from_args(args))).expect("configuration");
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        Forward {
            origin: var("CHILD_ORIGIN"),
        },
    );
    proxy.add_tcp(&var("CHILD_ADDR"));
    server.add_service(proxy);
    server.run_forever();
}

/// Answers every request with its path, keeping connections alive.
fn origin() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind origin");
    let addr = l.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || {
                let mut w = conn.try_clone().expect("clone");
                let mut r = BufReader::new(conn);
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                    // skip the rest of the head (requests have no body)
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{path}",
                        path.len()
                    );
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A proxy process, killed when dropped.
struct Proxy(Option<Child>);

impl Proxy {
    fn start(dir: &std::path::Path, addr: &str, origin: &str, upgrade: bool, log: &str) -> Proxy {
        let conf = dir.join("conf.yaml");
        let args = format!("-c {}{}", conf.display(), if upgrade { " -u" } else { "" });
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--ignored", "--exact", "child_proxy", "--nocapture"])
            .env(CHILD_ENV, "1")
            .env("CHILD_ARGS", args)
            .env("CHILD_ADDR", addr)
            .env("CHILD_ORIGIN", origin)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(log)).expect("log"))
            .spawn()
            .expect("spawn proxy");
        Proxy(Some(child))
    }

    fn pid(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Wait up to `limit` for the process to exit; whether it succeeded.
    fn wait(&mut self, limit: Duration) -> bool {
        let child = self.0.as_mut().expect("running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.0 = None;
                return status.success();
            }
            assert!(start.elapsed() < limit, "proxy did not exit in {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("probe");
    l.local_addr().expect("addr").to_string()
}

#[test]
fn proxy_upgraded_twice_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("upgrade.sock");
    std::fs::write(
        dir.path().join("conf.yaml"),
        format!(
            "---\nversion: 1\nthreads: 2\nupgrade_sock: {}\n\
             grace_period_seconds: 1\ngraceful_shutdown_timeout_seconds: 5\n",
            sock.display()
        ),
    )
    .expect("conf");
    let origin = origin();
    let addr = free_addr();
    let mut old = Proxy::start(dir.path(), &addr, &origin, false, "p1.log");
    let start = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(start.elapsed() < WAIT, "proxy never listened");
        std::thread::sleep(Duration::from_millis(20));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(Mutex::new(load::Stats::default()));
    let clients: Vec<_> = (0..8)
        .map(|id| {
            let (stop, total, addr) = (stop.clone(), total.clone(), addr.clone());
            std::thread::spawn(move || {
                let connect = move || -> std::io::Result<Box<dyn load::Conn>> {
                    let s = TcpStream::connect(&addr)?;
                    s.set_read_timeout(Some(WAIT))?;
                    s.set_nodelay(true)?;
                    Ok(Box::new(s))
                };
                // the origin echoes the path, the proxy adds its pid
                let served_by = |path: &str, reply: &load::Reply| {
                    let pid = reply.pid.clone().filter(|p| !p.is_empty())?;
                    (reply.body == path.as_bytes()).then_some(pid)
                };
                let st = load::client(id, connect, served_by, &stop);
                total.lock().expect("stats").merge(st);
            })
        })
        .collect();

    let load_start = Instant::now();
    for log in ["p2.log", "p3.log"] {
        std::thread::sleep(Duration::from_millis(2_500));
        let new = Proxy::start(dir.path(), &addr, &origin, true, log);
        let t = Instant::now();
        while !sock.exists() {
            assert!(t.elapsed() < WAIT, "new proxy never got ready");
            std::thread::sleep(Duration::from_millis(10));
        }
        old.signal("-QUIT");
        assert!(old.wait(Duration::from_secs(8)), "old proxy failed");
        old = new;
    }
    load::wait_for_load_target(load_start);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    let elapsed = load_start.elapsed();
    old.signal("-INT");
    assert!(old.wait(WAIT));

    let st = total.lock().expect("stats");
    println!(
        "proxy upgraded twice under load: {} ok, {} failed, {} reset, {} closed by the proxy \
         with Connection: close, in {:.1}s; per process: {:?}",
        st.ok,
        st.failed,
        st.resets,
        st.closes_by_server,
        elapsed.as_secs_f64(),
        st.per_pid
    );
    let logs = ["p1.log", "p2.log", "p3.log"]
        .map(|l| std::fs::read_to_string(dir.path().join(l)).unwrap_or_default())
        .join("\n");
    assert_eq!(st.failed, 0, "{:?}\n{logs}", st.errors);
    assert_eq!(st.resets, 0, "{:?}\n{logs}", st.errors);
    assert!(st.ok >= 20_000, "only {} requests", st.ok);
    assert_eq!(st.per_pid.len(), 3, "{:?}", st.per_pid);
}
