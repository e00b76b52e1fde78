//! HTTP/2 on a downstream connection: recognising the h2c preface and serving
//! the connection's streams as HTTP sessions of the app.

use log::{debug, warn};
use std::sync::Arc;
use std::time::Duration;

use super::HttpServerApp;
use crate::protocols::http::v1::common::stream_digest;
use crate::protocols::http::v2::server as h2_server;
use crate::protocols::http::v2::ResetTracker;
use crate::protocols::http::ServerSession;
use crate::protocols::Stream;
use crate::server::ShutdownWatch;

/// The connection preface every HTTP/2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How many times a preface that arrived only in part is peeked at again.
const PREFACE_PEEK_TRIES: usize = 50;

/// Whether the connection starts with the HTTP/2 preface. Waits for the
/// first bytes, and for more while what came is a strict prefix of the
/// preface (up to about half a second); `None` means the peer closed or the
/// read failed.
pub(super) async fn starts_with_h2_preface(stream: &mut Stream) -> Option<bool> {
    for _ in 0..PREFACE_PEEK_TRIES {
        // the preface holds no NUL byte: the first NUL ends what was peeked
        let mut buf = [0u8; H2_PREFACE.len()];
        match stream.try_peek(&mut buf).await {
            // a stream that cannot peek is served as HTTP/1
            Ok(false) => return Some(false),
            Ok(true) => {}
            Err(e) => {
                // common when a reused HTTP/1 connection is closed by the client
                debug!("read error while peeking for the h2c preface: {e}");
                return None;
            }
        }
        let got = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        if got == H2_PREFACE.len() || got == 0 || buf[..got] != H2_PREFACE[..got] {
            return Some(buf == H2_PREFACE);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Some(false)
}

/// Serve an HTTP/2 connection: accept its streams and run each one as an
/// HTTP session of `app` in its own task, until the client closes the
/// connection, the server shuts down (GOAWAY, in-flight streams finish) or
/// the client resets streams faster than allowed (GOAWAY `ENHANCE_YOUR_CALM`).
pub(super) async fn serve_h2<T>(app: &Arc<T>, stream: Stream, shutdown: &ShutdownWatch)
where
    T: HttpServerApp + Send + Sync + 'static,
{
    let limits = app
        .server_options()
        .map(|o| o.h2_limits)
        .unwrap_or_default();
    let options = app.h2_options().unwrap_or_else(|| limits.h2_options());
    let digest = Arc::new(*stream_digest(&stream));
    let mut conn = match h2_server::handshake(stream, Some(options)).await {
        Ok(c) => c,
        Err(e) => {
            debug!("HTTP/2 handshake with a client failed: {e}");
            return;
        }
    };
    let resets = Arc::new(ResetTracker::new(
        limits.max_resets_per_window,
        limits.reset_window,
    ));
    let mut shutdown_rx = shutdown.clone();
    let mut going_away = *shutdown.borrow();
    if going_away {
        conn.graceful_shutdown();
    }
    // after an abusive client got its GOAWAY, give the connection this long
    // to flush it before dropping it
    let mut abort_deadline: Option<tokio::time::Instant> = None;
    loop {
        let accept = h2_server::HttpSession::from_h2_conn(&mut conn, digest.clone());
        let next = tokio::select! {
            next = accept => next,
            _ = shutdown_rx.changed(), if !going_away => {
                debug!("shutting down: GOAWAY to an HTTP/2 client");
                conn.graceful_shutdown();
                going_away = true;
                continue;
            }
            _ = sleep_until_opt(abort_deadline) => break,
        };
        match next {
            Ok(Some(mut session)) => {
                session.set_reset_tracker(resets.clone());
                // a stream cancelled before it started costs nothing more
                if !session.poll_client_reset() && abort_deadline.is_none() {
                    let app = app.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        let session = ServerSession::new_http2(session);
                        app.process_new_http(session, &shutdown).await;
                    });
                }
            }
            Ok(None) => break,
            Err(e) => {
                debug!("HTTP/2 connection with a client ended: {e}");
                break;
            }
        }
        if abort_deadline.is_none() && resets.exceeded() {
            warn!(
                "HTTP/2 client reset more than {} streams in {:?}: GOAWAY",
                limits.max_resets_per_window, limits.reset_window
            );
            conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
            going_away = true;
            abort_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(1));
        }
    }
}

/// Sleep until `deadline`, or forever without one.
async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::l4::stream::Stream as L4Stream;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, Stream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let c = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (s, _) = l.accept().await.expect("accept");
        (c, Box::new(L4Stream::from(s)))
    }

    #[tokio::test]
    async fn preface_split_over_writes_is_recognised() {
        let (mut c, mut s) = pair().await;
        c.write_all(&H2_PREFACE[..10]).await.expect("write");
        let rest = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            c.write_all(&H2_PREFACE[10..]).await.expect("write");
            c
        });
        assert_eq!(starts_with_h2_preface(&mut s).await, Some(true));
        drop(rest.await);
    }

    #[tokio::test]
    async fn http1_is_not_taken_for_the_preface() {
        let (mut c, mut s) = pair().await;
        c.write_all(b"PUT / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        assert_eq!(starts_with_h2_preface(&mut s).await, Some(false));
        // a partial preface that never completes is not HTTP/2 either
        let (mut c, mut s) = pair().await;
        c.write_all(b"PRI * HTTP/2.0\r\n").await.expect("write");
        assert_eq!(starts_with_h2_preface(&mut s).await, Some(false));
    }
}
