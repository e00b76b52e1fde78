//! Helpers for the end-to-end tests: spawning origins and proxies as child processes that are
//! killed when dropped, picking free loopback ports, and a small blocking HTTP/1.1 client that
//! shows exactly what came over the socket.
#![warn(missing_docs)]

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single wait in these tests may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A free TCP port on 127.0.0.1, found by binding port 0 and releasing it.
///
/// Never hands out the same port twice in one test process, so parallel tests cannot be given
/// the same port before either has bound it.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether something other than ourselves listens on the port (a connect to a free port in the
/// ephemeral range can, rarely, connect the socket to itself).
fn listening(port: u16) -> bool {
    match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s.local_addr().ok() != s.peer_addr().ok(),
        Err(_) => false,
    }
}

/// A child process that is killed (and reaped) when the guard is dropped.
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    /// Guard an already spawned child.
    pub fn new(child: Child) -> Self {
        ChildGuard(Some(child))
    }

    /// Kill the process now and wait for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Python origin (`origin/origin.py`) listening on 127.0.0.1.
pub struct Origin {
    /// The port the origin listens on.
    pub port: u16,
    /// The name the origin reports in `X-Origin-Name` and as its default body.
    pub name: String,
    _child: ChildGuard,
}

impl Origin {
    /// Start an origin on a port chosen by the kernel.
    pub fn start(name: &str) -> Origin {
        Self::start_on(name, 0)
    }

    /// Start an origin on a given port (0: any). Panics if it does not come up in time.
    pub fn start_on(name: &str, port: u16) -> Origin {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/origin/origin.py");
        let mut child = Command::new("python3")
            .args([script, "--name", name, "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python3 origin");
        let stdout = child.stdout.take().expect("piped stdout");
        let guard = ChildGuard::new(child);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(WAIT)
            .expect("origin did not report its port");
        let port = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected origin output {line:?}"));
        Origin {
            port,
            name: name.to_string(),
            _child: guard,
        }
    }

    /// `(accepted TCP connections, requests served)` so far, read from `/stats`.
    pub fn stats(&self) -> (u64, u64) {
        let resp = get(self.port, "/stats");
        let text = String::from_utf8_lossy(&resp.body).to_string();
        let field = |key: &str| -> u64 {
            let at = text.find(key).unwrap_or_else(|| panic!("{key} in {text}"));
            text[at + key.len()..]
                .trim_start_matches([':', ' ', '"'])
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
                .parse()
                .expect("number")
        };
        (field("\"connections\""), field("\"requests\""))
    }
}

/// A proxy program (one of this package's binaries) listening on 127.0.0.1.
pub struct Proxy {
    /// The port the proxy listens on.
    pub port: u16,
    child: ChildGuard,
}

impl Proxy {
    /// Spawn `bin` with `UPSTREAMS` set to the given origin ports and `LISTEN` to a free port,
    /// then wait until it accepts TCP connections.
    pub fn start(bin: &str, upstream_ports: &[u16]) -> Proxy {
        Self::start_with_env(bin, upstream_ports, &[])
    }

    /// [`Proxy::start`] with extra environment variables for the program.
    pub fn start_with_env(bin: &str, upstream_ports: &[u16], env: &[(&str, &str)]) -> Proxy {
        let upstreams: Vec<String> = upstream_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let port = free_port();
        let child = Command::new(bin)
            .env("UPSTREAMS", upstreams.join(","))
            .env("LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("warn".into()),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
        let mut proxy = Proxy {
            port,
            child: ChildGuard::new(child),
        };
        let deadline = Instant::now() + WAIT;
        while !listening(port) {
            if let Some(child) = proxy.child.0.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{bin} exited early: {status}");
                }
            }
            assert!(Instant::now() < deadline, "{bin} did not listen in time");
            thread::sleep(Duration::from_millis(50));
        }
        // a program that failed to bind (port taken meanwhile) exits or stays without listener
        thread::sleep(Duration::from_millis(100));
        if let Some(child) = proxy.child.0.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{bin} exited right after start: {status}");
            }
        }
        proxy
    }
}

/// Path of the announcement load balancer (`tests/announcement/src/main.rs`, built here as the
/// `e2e_lb` binary). A macro because Cargo defines `CARGO_BIN_EXE_*` only for integration tests.
#[macro_export]
macro_rules! announcement_bin {
    () => {
        env!("CARGO_BIN_EXE_e2e_lb")
    };
}

/// How a request body is sent.
pub enum Body<'a> {
    /// No body, no framing headers.
    Empty,
    /// `Content-Length` framing.
    Fixed(&'a [u8]),
    /// `Transfer-Encoding: chunked` with chunks of at most the given size.
    Chunked(&'a [u8], usize),
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A client connection that can carry several keep-alive requests.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connect to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> Conn {
        // a refused connect is retried briefly: a server that just started may still be
        // setting up its listener
        let deadline = Instant::now() + Duration::from_secs(2);
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    assert!(Instant::now() < deadline, "connect to {port}: {e}");
                    thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("connect to {port}: {e}"),
            }
        };
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            reader: BufReader::new(stream),
        }
    }

    /// Send one request and read its response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> std::io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: e2e.test\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        match body {
            Body::Empty => {}
            Body::Fixed(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
            Body::Chunked(..) => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        match body {
            Body::Empty => {}
            Body::Fixed(b) => stream.write_all(b)?,
            Body::Chunked(b, size) => {
                for piece in b.chunks(size.max(1)) {
                    stream.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
                    stream.write_all(piece)?;
                    stream.write_all(b"\r\n")?;
                }
                stream.write_all(b"0\r\n\r\n")?;
            }
        }
        read_response(&mut self.reader, method == "HEAD")
    }
}

fn read_line(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn bad(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// Read one response (status line, headers, body framed by CL, chunked or close).
pub fn read_response(reader: &mut impl BufRead, head_only: bool) -> std::io::Result<Response> {
    let status_line = read_line(reader)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header {line:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(resp);
    }
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let line = read_line(reader)?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                while !read_line(reader)?.is_empty() {}
                break;
            }
            let start = resp.body.len();
            resp.body.resize(start + size, 0);
            reader.read_exact(&mut resp.body[start..])?;
            if !read_line(reader)?.is_empty() {
                return Err(bad("chunk not followed by CRLF".into()));
            }
        }
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().map_err(|_| bad(format!("bad length {len}")))?;
        resp.body.resize(len, 0);
        reader.read_exact(&mut resp.body)?;
    } else {
        reader.read_to_end(&mut resp.body)?;
    }
    Ok(resp)
}

/// One GET on a fresh connection; panics on transport errors.
pub fn get(port: u16, path: &str) -> Response {
    Conn::connect(port)
        .request("GET", path, &[], Body::Empty)
        .unwrap_or_else(|e| panic!("GET {path} via port {port}: {e}"))
}

/// Write raw bytes, half-close nothing, and collect everything the server sends until it closes
/// the connection. Returns the bytes and whether the server closed (false: still open at timeout).
pub fn raw_exchange(port: u16, request: &[u8], timeout: Duration) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(timeout)).expect("timeout");
    let writer = stream.try_clone().expect("clone");
    let payload = request.to_vec();
    // write on another thread: the server may answer (and close) before reading everything
    let write_thread = thread::spawn(move || {
        let mut writer = writer;
        let _ = writer.write_all(&payload);
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let _ = stream.shutdown(Shutdown::Both);
    let _ = write_thread.join();
    (out, closed)
}

/// Hex sha256 of some bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic test payload of the given size (a simple xorshift stream).
pub fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Poll `f` every 100 ms until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}
