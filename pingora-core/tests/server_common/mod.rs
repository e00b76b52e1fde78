//! Helpers shared by the `server_*` integration tests.
#![allow(dead_code)]

use async_trait::async_trait;
use pingora_core::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc as tmpsc, Mutex};

/// Upper bound of any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// The lowest port the kernel hands out for `bind(0)` and outgoing
/// connections.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A loopback address with a port that was free a moment ago.
///
/// The port is taken below the ephemeral range, so no outgoing connection
/// (of any process) can be holding it when the server binds it, nor can a
/// test client connect to itself on it; a per-process sequence keeps the
/// tests of one binary apart. See [`port_is_free`] for the probe.
pub fn free_addr() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    let span = u32::from(ephemeral_low()).saturating_sub(LOW).max(1_000);
    let seed = std::process::id().wrapping_mul(7_919);
    for _ in 0..span {
        let port = LOW + seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = u16::try_from(port).expect("below 65536");
        if port_is_free(port) {
            return format!("127.0.0.1:{port}");
        }
    }
    panic!("no free port below the ephemeral range");
}

/// Whether `port` can be bound on loopback. The probe binds without
/// listening: a listening probe could outlive its close in a child process
/// forked meanwhile by a parallel test (until that child execs), and a
/// client connecting then would reach that dying listener instead of the
/// server, and be reset. A bound socket that never listened refuses such
/// connections and does not keep the server (`SO_REUSEADDR`) from binding.
fn port_is_free(port: u16) -> bool {
    let Ok(sock) = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None) else {
        return false;
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    sock.set_reuse_address(true).is_ok() && sock.bind(&addr.into()).is_ok()
}

/// Shutdown requests sent by the test instead of Unix signals.
pub struct ChannelSignal(Mutex<tmpsc::UnboundedReceiver<ShutdownSignal>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelSignal {
    async fn recv(&self) -> ShutdownSignal {
        match self.0.lock().await.recv().await {
            Some(s) => s,
            // the test dropped its sender: never shut down by itself
            None => std::future::pending().await,
        }
    }
}

/// A server running on its own thread.
pub struct Running {
    pub signal: tmpsc::UnboundedSender<ShutdownSignal>,
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Run `server` (already bootstrapped or not) on a new thread.
    pub fn start(server: Server) -> Running {
        let (tx, rx) = tmpsc::unbounded_channel();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(ChannelSignal(Mutex::new(rx))),
            });
            let _ = done_tx.send(());
        });
        Running {
            signal: tx,
            done,
            thread: Some(thread),
        }
    }

    /// Ask for a shutdown.
    pub fn send(&self, s: ShutdownSignal) {
        self.signal.send(s).expect("server thread alive");
    }

    /// Wait until `run()` returned; panics after `limit`.
    pub fn wait_exit(mut self, limit: Duration) -> Duration {
        let start = Instant::now();
        self.done
            .recv_timeout(limit)
            .expect("server did not exit in time");
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread panicked");
        }
        start.elapsed()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // a failed test must not leave a server running
        let _ = self.signal.send(ShutdownSignal::FastShutdown);
    }
}

/// Connect, retrying while the server starts.
pub fn connect(addr: &str) -> std::net::TcpStream {
    let start = Instant::now();
    loop {
        match std::net::TcpStream::connect(addr) {
            // connected to itself (TCP simultaneous open) while the server
            // is not listening yet: that is not the server
            Ok(s) if s.local_addr().ok() == s.peer_addr().ok() => {
                drop(s);
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(s) => {
                s.set_read_timeout(Some(WAIT)).expect("timeout");
                return s;
            }
            Err(e) if start.elapsed() > WAIT => panic!("cannot connect to {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read one response framed by Content-Length (or by close when absent).
pub fn read_response(s: &mut impl Read) -> Resp {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read head");
        assert!(n == 1, "connection closed inside the head: {head:?}");
        head.push(byte[0]);
        assert!(head.len() < 64 * 1024, "head too long");
    }
    let text = String::from_utf8(head).expect("utf8 head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut resp = Resp {
        status,
        headers,
        body: vec![],
    };
    match resp
        .header("content-length")
        .map(|v| v.parse::<usize>().expect("len"))
    {
        Some(len) => {
            resp.body = vec![0; len];
            s.read_exact(&mut resp.body).expect("read body");
        }
        None => {
            s.read_to_end(&mut resp.body).expect("read to close");
        }
    }
    resp
}

/// Send `req` and read one response.
pub fn exchange(s: &mut std::net::TcpStream, req: &str) -> Resp {
    s.write_all(req.as_bytes()).expect("write request");
    read_response(s)
}

/// Whether the peer closed the connection within the read timeout: EOF, or
/// a reset when it closed with our bytes still unread.
pub fn is_closed(s: &mut impl Read) -> bool {
    let mut buf = [0u8; 1];
    match s.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}
