//! Closing a client connection without destroying the last response.
//!
//! Closing a TCP socket that still has unread received bytes makes the
//! kernel send a reset instead of a FIN, and a reset makes the client's
//! kernel discard response bytes it has not handed to the application yet:
//! the client sees "connection reset" instead of, say, the `400` explaining
//! why. This happens whenever the server gives up on a request the client is
//! still sending (a malformed or oversized head, an unread body, pipelined
//! requests). A lingering close avoids it: send the response, shut the write
//! side down (FIN), then read and discard what the client still sends until
//! it closes, within a time and byte budget.

use super::HttpSession;
use crate::protocols::http::error_resp;
use crate::protocols::http::v1::common::KeepaliveStatus;
use crate::protocols::http::v1::head;
use crate::protocols::Shutdown;
use bytes::BytesMut;
use http::header;
use log::debug;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long writing an automatic error response may take.
const ERROR_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a lingering close waits for the client to stop sending.
pub(crate) const LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// The most bytes a lingering close reads and discards.
pub(crate) const LINGER_MAX_BYTES: usize = 1 << 20;
/// The size of each discarding read.
const LINGER_READ_SIZE: usize = 16 * 1024;

impl HttpSession {
    /// Answer an unusable request with `code` and close the connection
    /// (lingering: the client may still be sending the rest of it).
    pub(super) async fn reject(&mut self, code: u16) {
        self.keepalive = KeepaliveStatus::Off;
        if self.response_written.is_none() {
            let mut resp = error_resp::gen_error_response(code);
            let _ = resp.insert_header(header::CONNECTION, "close");
            let mut buf = BytesMut::new();
            head::write_response_head(&resp, &mut buf);
            let stream = &mut self.underlying_stream;
            let send = async {
                stream.write_all(&buf).await?;
                stream.flush().await
            };
            match tokio::time::timeout(ERROR_WRITE_TIMEOUT, send).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!("failed to send the {code} response: {e}"),
                Err(_) => debug!("timed out sending the {code} response"),
            }
            self.body_writer.init_content_length(0);
            self.response_written = Some(Box::new(resp));
        }
        self.lingering_close().await;
    }

    /// Whether the client may have sent (or still be sending) bytes that
    /// were never read: an unfinished request body or pipelined requests.
    fn may_have_unread_input(&self) -> bool {
        let body_pending = !self.body_reader.need_init() && !self.body_reader.body_done();
        body_pending || self.body_reader.has_leftover()
    }

    /// Close the connection at the end of an exchange that does not reuse
    /// it: lingering when client bytes may be left unread, a plain shutdown
    /// otherwise. Idempotent.
    pub(super) async fn close(&mut self) {
        if self.may_have_unread_input() {
            self.lingering_close().await;
        } else if !self.closed {
            self.closed = true;
            Shutdown::shutdown(self.underlying_stream.as_mut()).await;
        }
    }

    /// Shut the write side down, then read and discard client bytes until
    /// the client closes, [`LINGER_TIMEOUT`] passes or [`LINGER_MAX_BYTES`]
    /// were read. Idempotent.
    pub(super) async fn lingering_close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        // bytes already buffered were read: they cannot cause a reset
        let _ = self.body_reader.take_leftover();
        let stream = &mut self.underlying_stream;
        let linger = async {
            // the FIN tells the client the response is complete
            Shutdown::shutdown(stream.as_mut()).await;
            let mut buf = vec![0u8; LINGER_READ_SIZE];
            let mut discarded = 0;
            while discarded < LINGER_MAX_BYTES {
                match stream.read(&mut buf).await {
                    Ok(0) => return true,
                    Ok(n) => discarded += n,
                    Err(e) => {
                        debug!("read error while lingering: {e}");
                        return true;
                    }
                }
            }
            false
        };
        match tokio::time::timeout(LINGER_TIMEOUT, linger).await {
            Ok(true) => {}
            Ok(false) => debug!("client kept sending after {LINGER_MAX_BYTES} bytes, closing"),
            Err(_) => debug!("client did not close within {LINGER_TIMEOUT:?}, closing"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::l4::stream::Stream as L4Stream;
    use pingora_error::ErrorType;
    use pingora_http::ResponseHeader;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// The client's view: the response head, then whether sending more
    /// bytes worked, then the rest of the response up to EOF.
    type ClientRun =
        tokio::task::JoinHandle<(String, std::io::Result<()>, std::io::Result<Vec<u8>>)>;

    /// Accept one TCP connection as a server session. The client sends
    /// `head`, reads the response head, sends `extra` more bytes (a body
    /// the server will never read) and reads until EOF. Without a lingering
    /// close the server's kernel answers those bytes with a reset, which
    /// fails the client's writes or reads.
    async fn tcp_session(head: &'static [u8], extra: usize) -> (HttpSession, ClientRun) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(head).await.unwrap();
            let mut resp_head = Vec::new();
            let mut byte = [0u8; 1];
            while !resp_head.ends_with(b"\r\n\r\n") {
                assert_eq!(c.read(&mut byte).await.unwrap(), 1, "{resp_head:?}");
                resp_head.push(byte[0]);
            }
            let wrote = c.write_all(&vec![b'x'; extra]).await;
            let mut rest = Vec::new();
            let read = c.read_to_end(&mut rest).await.map(|_| rest);
            (
                String::from_utf8_lossy(&resp_head).into_owned(),
                wrote,
                read,
            )
        });
        let (tcp, _) = listener.accept().await.unwrap();
        (HttpSession::new(Box::new(L4Stream::from(tcp))), client)
    }

    /// The response head and the rest, asserting no reset was seen.
    async fn client_output(client: ClientRun) -> (String, Vec<u8>) {
        let (head, wrote, rest) = tokio::time::timeout(Duration::from_secs(10), client)
            .await
            .expect("client done in time")
            .unwrap();
        wrote.expect("the server kept reading (no reset)");
        (
            head,
            rest.expect("the connection ended with a FIN, not a reset"),
        )
    }

    #[tokio::test]
    async fn bad_request_followed_by_bytes_still_gets_its_400() {
        let (mut s, client) = tcp_session(b"GARBAGE\r\n\r\n", 512 * 1024).await;
        let e = s.read_request().await.unwrap_err();
        assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader);
        drop(s);
        let (head, rest) = client_output(client).await;
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn unread_large_body_still_gets_the_error_response() {
        let head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n";
        let (mut s, client) = tcp_session(head, 512 * 1024).await;
        s.read_request().await.unwrap();
        let mut resp = ResponseHeader::build(413, None).unwrap();
        resp.insert_header("Content-Length", "8").unwrap();
        s.set_server_keepalive(None);
        s.write_response_header(Box::new(resp)).await.unwrap();
        s.write_body(b"too big!").await.unwrap();
        assert!(s.reuse().await.unwrap().is_none());
        let (head, rest) = client_output(client).await;
        assert!(head.starts_with("HTTP/1.1 413 "), "{head}");
        assert_eq!(rest, b"too big!");
    }

    #[tokio::test(start_paused = true)]
    async fn lingering_is_bounded_in_time() {
        let (server, mut c) = tokio::io::duplex(1 << 16);
        let mut s = HttpSession::new(Box::new(server));
        c.write_all(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nab")
            .await
            .unwrap();
        s.read_request().await.unwrap();
        s.set_server_keepalive(None);
        s.respond_error(500).await.unwrap();
        // the client neither sends the rest nor closes
        let started = tokio::time::Instant::now();
        assert!(s.reuse().await.unwrap().is_none());
        assert_eq!(started.elapsed(), LINGER_TIMEOUT);
        drop(c);
    }

    #[tokio::test(start_paused = true)]
    async fn lingering_is_bounded_in_bytes() {
        let (server, mut c) = tokio::io::duplex(4 << 20);
        let mut s = HttpSession::new(Box::new(server));
        c.write_all(b"POST / HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n")
            .await
            .unwrap();
        c.write_all(&vec![b'x'; 3 << 20]).await.unwrap();
        s.read_request().await.unwrap();
        s.respond_error(413).await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(s.reuse().await.unwrap().is_none());
        // stopped after the byte budget, without waiting for the timeout
        assert!(started.elapsed() < LINGER_TIMEOUT);
        drop(c);
    }
}
