//! The keep-alive HTTP/1.1 load client of the upgrade-under-load tests
//! (`pingora-core/tests/server_upgrade.rs`, and by path
//! `pingora-proxy/tests/upgrade.rs`): std threads and raw sockets, nothing
//! retried, every error counted.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Requests answered so far, by all load clients of the process.
pub static ANSWERED: AtomicU64 = AtomicU64::new(0);

/// Let the load run for at least ten seconds and at least 20,000 requests
/// (a slow machine takes longer), but never more than 30 seconds.
pub fn wait_for_load_target(start: Instant) {
    while start.elapsed() < Duration::from_secs(10)
        || (ANSWERED.load(Ordering::Relaxed) < 20_000 && start.elapsed() < Duration::from_secs(30))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Counts of one load run.
#[derive(Default, Debug)]
pub struct Stats {
    pub ok: u64,
    pub failed: u64,
    pub resets: u64,
    pub connects: u64,
    /// Connections the server ended with `Connection: close`.
    pub closes_by_server: u64,
    /// Answered requests per serving process.
    pub per_pid: HashMap<String, u64>,
    pub errors: Vec<String>,
}

impl Stats {
    /// Add another client's counts (and its first few errors).
    pub fn merge(&mut self, o: Stats) {
        self.ok += o.ok;
        self.failed += o.failed;
        self.resets += o.resets;
        self.connects += o.connects;
        self.closes_by_server += o.closes_by_server;
        for (k, v) in o.per_pid {
            *self.per_pid.entry(k).or_default() += v;
        }
        self.errors.extend(o.errors.into_iter().take(5));
    }

    /// Count an I/O error: a reset (or broken pipe) apart from other failures.
    pub fn error(&mut self, e: &std::io::Error, what: &str) {
        if matches!(
            e.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
        ) {
            self.resets += 1;
        } else {
            self.failed += 1;
        }
        if self.errors.len() < 5 {
            self.errors.push(format!("{what}: {e}"));
        }
    }
}

/// A client connection: TCP or Unix socket.
pub trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// One response as the load client reads it.
pub struct Reply {
    pub status: u16,
    /// `Connection: close`.
    pub close: bool,
    /// The `x-pid` header, if any.
    pub pid: Option<String>,
    pub body: Vec<u8>,
}

/// Read one response; it must have a `Content-Length`.
pub fn read_one(r: &mut impl BufRead) -> std::io::Result<Reply> {
    let eof = |what: &str| std::io::Error::new(ErrorKind::UnexpectedEof, format!("closed {what}"));
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(eof("before the response"));
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let (mut len, mut close, mut pid) = (None, false, None);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(eof("inside the head"));
        }
        if line == "\r\n" {
            break;
        }
        let (k, v) = line.split_once(':').unwrap_or((&line, ""));
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            len = Some(v.parse::<usize>().map_err(std::io::Error::other)?);
        } else if k.eq_ignore_ascii_case("connection") {
            close = v.eq_ignore_ascii_case("close");
        } else if k.eq_ignore_ascii_case("x-pid") {
            pid = Some(v.to_string());
        }
    }
    let len = len.ok_or_else(|| std::io::Error::other("no content-length"))?;
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Reply {
        status,
        close,
        pid,
        body,
    })
}

/// Keep-alive `GET /c<id>/r<n>` requests until `stop`, reconnecting (with
/// `connect`) when the server says `Connection: close`. `served_by` checks
/// an answer to `path` and names the process that served it; any other
/// answer is a failure.
pub fn client(
    id: usize,
    connect: impl Fn() -> std::io::Result<Box<dyn Conn>>,
    served_by: impl Fn(&str, &Reply) -> Option<String>,
    stop: &AtomicBool,
) -> Stats {
    let mut st = Stats::default();
    let mut conn: Option<BufReader<Box<dyn Conn>>> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect() {
                Ok(s) => {
                    st.connects += 1;
                    conn.insert(BufReader::new(s))
                }
                Err(e) => {
                    st.error(&e, "connect");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        i += 1;
        let path = format!("/c{id}/r{i}");
        let req = format!("GET {path} HTTP/1.1\r\nHost: load\r\n\r\n");
        if let Err(e) = c.get_mut().write_all(req.as_bytes()) {
            st.error(&e, "write");
            conn = None;
            continue;
        }
        match read_one(c) {
            Ok(reply) => match served_by(&path, &reply) {
                Some(pid) if reply.status == 200 => {
                    st.ok += 1;
                    ANSWERED.fetch_add(1, Ordering::Relaxed);
                    *st.per_pid.entry(pid).or_default() += 1;
                    if reply.close {
                        st.closes_by_server += 1;
                        conn = None;
                    }
                }
                _ => {
                    st.failed += 1;
                    let body = String::from_utf8_lossy(&reply.body);
                    st.errors
                        .push(format!("wrong answer {} {body}", reply.status));
                    conn = None;
                }
            },
            Err(e) => {
                st.error(&e, "read");
                conn = None;
            }
        }
    }
    st
}
