//! Our HTTP/2 server connection (`v2::conn`) against real clients, curl and
//! nghttp (prior knowledge). Uploads larger than our windows, nghttp two at
//! once over one connection, complete only if our WINDOW_UPDATEs are right;
//! 1 MiB downloads, nghttp's through a 16 KiB stream window, complete only
//! if we follow the client's windows. Responses go out through
//! `send_headers`/`send_data`, written with vectored writes of
//! `output_slices`.

use bytes::{Bytes, BytesMut};
use pingora_core::protocols::http::v2::conn::{ConnConfig, Event, Field, ServerConn};
use std::collections::HashMap;
use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The size of the download.
const DOWNLOAD: usize = 1 << 20;

/// How long a client may take before it is killed.
const CLIENT_DEADLINE: Duration = Duration::from_secs(30);

/// The downloaded body: a pattern whose period (251) is not a divisor of any
/// frame or window size, so that a misplaced or repeated chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// What the server saw of one connection.
#[derive(Debug, Default)]
struct Served {
    paths: Vec<String>,
    /// Times a response body waited for the client's WINDOW_UPDATEs.
    window_waits: usize,
}

/// Write all queued output, vectored.
fn flush(conn: &mut ServerConn, sock: &mut TcpStream) {
    while conn.has_output() {
        let mut slices = [IoSlice::new(&[]); 32];
        let n = conn.output_slices(&mut slices);
        let written = sock.write_vectored(&slices[..n]).expect("write");
        assert!(written > 0, "socket closed for writing");
        conn.advance_output(written);
    }
}

/// Start the response to a finished request: its head now, its body as the
/// windows allow (queued in `pending`).
fn respond(
    conn: &mut ServerConn,
    stream_id: u32,
    path: &str,
    received: usize,
    pending: &mut Vec<(u32, Bytes)>,
) {
    let body = if path == "/download" {
        Bytes::from(pattern(DOWNLOAD))
    } else {
        Bytes::from(format!("got {received}\n"))
    };
    let len = body.len().to_string();
    let head = [(":status", "200"), ("content-length", len.as_str())];
    let fields = head.iter().map(|(n, v)| Field {
        name: n.as_bytes(),
        value: v.as_bytes(),
        sensitive: false,
    });
    conn.send_headers(stream_id, fields, false)
        .expect("head sent");
    pending.push((stream_id, body));
}

/// Serve one connection until the client closes it.
fn serve(mut sock: TcpStream) -> Served {
    sock.set_nonblocking(false).expect("blocking");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    sock.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut conn = ServerConn::new(ConnConfig {
        stream_window: 65_535,
        connection_window: 65_535,
        ..Default::default()
    });
    let mut served = Served::default();
    // per open request: its path and the body bytes received
    let mut requests: HashMap<u32, (String, usize)> = HashMap::new();
    let mut pending: Vec<(u32, Bytes)> = Vec::new();
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 16 << 10];
    loop {
        while let Some(event) = conn.poll_event() {
            let finished = match event {
                Event::Request {
                    stream_id,
                    fields,
                    end_stream,
                } => {
                    let path = fields.iter().find(|f| f.name == ":path").expect(":path");
                    let path = String::from_utf8(path.value.to_vec()).expect("utf-8");
                    served.paths.push(path.clone());
                    requests.insert(stream_id, (path, 0));
                    end_stream.then_some(stream_id)
                }
                Event::Data {
                    stream_id,
                    data,
                    end_stream,
                } => {
                    if let Some((_, n)) = requests.get_mut(&stream_id) {
                        *n += data.len();
                    }
                    conn.release(stream_id, data.len() as u32);
                    end_stream.then_some(stream_id)
                }
                _ => None,
            };
            if let Some(stream_id) = finished {
                let (path, received) = requests.remove(&stream_id).expect("request");
                respond(&mut conn, stream_id, &path, received, &mut pending);
            }
        }
        // send what the windows and the buffer allow, until neither grows
        loop {
            for (stream_id, body) in &mut pending {
                conn.send_data(*stream_id, body, true).expect("data sent");
            }
            pending.retain(|(_, body)| !body.is_empty());
            flush(&mut conn, &mut sock);
            if pending.is_empty() || !conn.take_window_grew() {
                break;
            }
        }
        if !pending.is_empty() {
            served.window_waits += 1;
        }
        let n = match sock.read(&mut chunk) {
            Ok(0) | Err(_) => return served,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Err(e) = conn.recv(&mut buf) {
            flush(&mut conn, &mut sock);
            panic!("connection error: {e:?}");
        }
    }
}

/// A client process, killed if the test fails before it ends.
struct Client(Child);

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `client` (given the upload file's path and the base URL) against one
/// served connection; returns its stdout and what the server saw.
fn exchange(client: impl FnOnce(&std::path::Path, &str) -> Command) -> (Vec<u8>, Served) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let deadline = Instant::now() + CLIENT_DEADLINE;
        loop {
            match listener.accept() {
                Ok((sock, _)) => return serve(sock),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no client connected");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let body = dir.path().join("body");
    std::fs::write(&body, vec![b'x'; 300_000]).expect("body written");
    let mut cmd = client(&body, &format!("http://127.0.0.1:{port}"));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Client(cmd.spawn().expect("client runs"));
    let mut stdout = child.0.stdout.take().expect("stdout");
    let mut stderr = child.0.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).map(|_| v)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + CLIENT_DEADLINE;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "client timed out");
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out.join().expect("stdout reader").expect("stdout");
    let stderr = err.join().expect("stderr reader").expect("stderr");
    assert!(status.success(), "client failed: {stderr}");
    let served = server.join().expect("server");
    (stdout, served)
}

#[test]
fn curl_uploads_past_our_windows() {
    // one URL: curl 7.88 cannot send the same upload twice over one HTTP/2
    // connection (it fails the same way against hypercorn)
    let (stdout, served) = exchange(|body, base| {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "20", "--http2-prior-knowledge"])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .arg(format!("{base}/upload"));
        c
    });
    assert_eq!(stdout, b"got 300000\n");
    assert_eq!(served.paths, ["/upload"]);
}

#[test]
fn nghttp_uploads_two_bodies_at_once() {
    let (stdout, mut served) = exchange(|body, base| {
        let mut c = Command::new("nghttp");
        c.args(["-t", "20", "-d"])
            .arg(body)
            .arg(format!("{base}/first"))
            .arg(format!("{base}/second"));
        c
    });
    assert_eq!(stdout, b"got 300000\ngot 300000\n");
    // both requests came over the one connection
    served.paths.sort();
    assert_eq!(served.paths, ["/first", "/second"]);
}

#[test]
fn nghttp_downloads_through_small_windows() {
    // a 16 KiB stream window and a 64 KiB connection window: 1 MiB takes
    // dozens of WINDOW_UPDATEs, each of which must unblock us
    let (stdout, served) = exchange(|_, base| {
        let mut c = Command::new("nghttp");
        c.args(["-t", "20", "-w", "14", "-W", "16"])
            .arg(format!("{base}/download"));
        c
    });
    assert_eq!(stdout.len(), DOWNLOAD);
    assert!(stdout == pattern(DOWNLOAD), "the body differs");
    assert_eq!(served.paths, ["/download"]);
    assert!(
        served.window_waits >= 16,
        "only {} waits for a window",
        served.window_waits
    );
}

#[test]
fn curl_downloads_a_mebibyte() {
    let (stdout, served) = exchange(|_, base| {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "20", "--http2-prior-knowledge"])
            .arg(format!("{base}/download"));
        c
    });
    assert_eq!(stdout.len(), DOWNLOAD);
    assert!(stdout == pattern(DOWNLOAD), "the body differs");
    assert_eq!(served.paths, ["/download"]);
}
