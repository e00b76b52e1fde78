//! The receiving half of our HTTP/2 server connection (`v2::conn`) against
//! real clients: curl and nghttp (prior knowledge) upload request bodies
//! larger than our windows, nghttp two at once over one connection, which
//! only completes if our WINDOW_UPDATEs are right. The responses are written
//! here with the frame and HPACK layers, standing in for the sending half.

use bytes::{Buf, BytesMut};
use pingora_core::protocols::http::v2::conn::{ConnConfig, Event, ServerConn};
use pingora_core::protocols::http::v2::frame;
use pingora_core::protocols::http::v2::hpack::{Encoder, Field};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

/// Serve one connection until the client closes it; returns the paths seen.
fn serve(mut sock: TcpStream) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut conn = ServerConn::new(ConnConfig {
        stream_window: 65_535,
        connection_window: 65_535,
        ..Default::default()
    });
    let mut encoder = Encoder::default();
    let mut received: HashMap<u32, usize> = HashMap::new();
    let mut paths = Vec::new();
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 16 << 10];
    loop {
        let mut out = conn.take_output();
        while let Some(event) = conn.poll_event() {
            let finished = match event {
                Event::Request {
                    stream_id,
                    fields,
                    end_stream,
                } => {
                    let path = fields.iter().find(|f| f.name == ":path").expect(":path");
                    paths.push(String::from_utf8(path.value.to_vec()).expect("utf-8"));
                    received.insert(stream_id, 0);
                    end_stream.then_some(stream_id)
                }
                Event::Data {
                    stream_id,
                    data,
                    end_stream,
                } => {
                    *received.entry(stream_id).or_default() += data.len();
                    conn.release(stream_id, data.len() as u32);
                    end_stream.then_some(stream_id)
                }
                _ => None,
            };
            if let Some(stream_id) = finished {
                let body = format!("got {}\n", received[&stream_id]);
                let len = body.len().to_string();
                let mut block = BytesMut::new();
                let head = [(":status", "200"), ("content-length", len.as_str())];
                encoder.encode(
                    head.iter().map(|(n, v)| Field {
                        name: n.as_bytes(),
                        value: v.as_bytes(),
                        sensitive: false,
                    }),
                    &mut block,
                );
                out.extend_from_slice(&conn.take_output());
                frame::write_headers(
                    stream_id,
                    &block,
                    false,
                    conn.peer_max_frame_size(),
                    &mut out,
                );
                frame::write_data_header(stream_id, body.len(), true, &mut out);
                out.extend_from_slice(body.as_bytes());
                conn.close_stream(stream_id);
            }
        }
        out.extend_from_slice(&conn.take_output());
        if out.has_remaining() {
            sock.write_all(&out).expect("write");
        }
        let n = match sock.read(&mut chunk) {
            Ok(0) | Err(_) => return paths,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Err(e) = conn.recv(&mut buf) {
            let _ = sock.write_all(&conn.take_output());
            panic!("connection error: {e:?}");
        }
    }
}

/// Run `client` (with the upload file's path and the base URL) against one
/// served connection; returns its stdout and the paths the server saw.
fn exchange(client: impl FnOnce(&std::path::Path, &str) -> Command) -> (String, Vec<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (sock, _) = listener.accept().expect("accept");
        serve(sock)
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let body = dir.path().join("body");
    std::fs::write(&body, vec![b'x'; 300_000]).expect("body written");
    let out = client(&body, &format!("http://127.0.0.1:{port}"))
        .output()
        .expect("client runs");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let paths = server.join().expect("server");
    (String::from_utf8_lossy(&out.stdout).into_owned(), paths)
}

#[test]
fn curl_uploads_past_our_windows() {
    // one URL: curl 7.88 cannot send the same upload twice over one HTTP/2
    // connection (it fails the same way against hypercorn)
    let (stdout, paths) = exchange(|body, base| {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "20", "--http2-prior-knowledge"])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .arg(format!("{base}/upload"));
        c
    });
    assert_eq!(stdout, "got 300000\n");
    assert_eq!(paths, ["/upload"]);
}

#[test]
fn nghttp_uploads_two_bodies_at_once() {
    let (stdout, mut paths) = exchange(|body, base| {
        let mut c = Command::new("nghttp");
        c.args(["-t", "20", "-d"])
            .arg(body)
            .arg(format!("{base}/first"))
            .arg(format!("{base}/second"));
        c
    });
    assert_eq!(stdout, "got 300000\ngot 300000\n");
    // both requests came over the one connection
    paths.sort();
    assert_eq!(paths, ["/first", "/second"]);
}
