//! HTTP/2 on a downstream connection: recognising the h2c preface and serving
//! the connection's streams as HTTP sessions of the app.

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use log::{debug, error, warn};
use std::future::{poll_fn, Future};
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use super::{HttpServerApp, ReusedHttpStream};
use crate::protocols::http::v1::common::stream_digest;
use crate::protocols::http::v2::frame::ErrorCode;
use crate::protocols::http::v2::server as h2_server;
use crate::protocols::http::v2::ResetTracker;
use crate::protocols::http::ServerSession;
use crate::protocols::{Digest, Stream};
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
/// HTTP session of `app`, until the client closes the connection, the server
/// shuts down (GOAWAY, in-flight streams finish) or the client resets streams
/// faster than allowed (GOAWAY `ENHANCE_YOUR_CALM`).
///
/// The streams run inside this connection's task rather than as tasks of
/// their own: a task per stream cost a spawn, a scheduling round trip for
/// every frame a stream queued (the stream woke the connection task to write
/// it) and a copy of the app and shutdown handles. Here every wakeup first
/// polls the streams that were woken, then the connection, so what the
/// streams queued goes out in the same write. A panic in one stream is caught
/// so that it ends only that stream, as it would in a task of its own.
pub(super) async fn serve_h2<T>(app: &Arc<T>, stream: Stream, shutdown: &ShutdownWatch)
where
    T: HttpServerApp + Send + Sync + 'static,
{
    let limits = app
        .server_options()
        .map(|o| o.h2_limits)
        .unwrap_or_default();
    let digest = Arc::new(*stream_digest(&stream));
    let resets = Arc::new(ResetTracker::new(
        limits.max_resets_per_window,
        limits.reset_window,
    ));
    let mut conn = match app.h2_options() {
        // the app configured the `h2` crate itself: serve the connection with it
        Some(options) => match h2_server::handshake(stream, Some(options)).await {
            Ok(conn) => Downstream::Crate {
                conn: Box::new(conn),
                batch: h2_server::WriteBatch::default(),
                last_host: None,
            },
            Err(e) => {
                debug!("HTTP/2 handshake with a client failed: {e}");
                return;
            }
        },
        None => {
            let mut conn = h2_server::Connection::new(stream, h2_server::conn_config(&limits));
            conn.set_reset_tracker(resets.clone());
            // the streams are polled on this task, right before the connection
            conn.set_driver_inline(true);
            Downstream::Codec(conn)
        }
    };
    let mut shutdown_rx = shutdown.clone();
    // one wait for the shutdown signal for the whole connection: a fresh one
    // per accepted stream registered (and dropped) a waiter every time
    let shutdown_wait = pin!(shutdown_rx.changed());
    let mut shutdown_signal = ShutdownSignal::new(shutdown, shutdown_wait);
    let mut going_away = *shutdown.borrow();
    if going_away {
        conn.go_away(false);
    }
    let run_stream = |session: h2_server::HttpSession| {
        let session = ServerSession::new_http2(session);
        AssertUnwindSafe(app.process_new_http(session, shutdown)).catch_unwind()
    };
    let mut streams = FuturesUnordered::new();
    // after an abusive client got its GOAWAY, give the connection this long
    // to flush it before dropping it
    let mut abort_deadline: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        // One wait serves the streams and accepts new ones until something
        // needs the connection itself: an accepted stream is set up and
        // started right here, so it is not moved out of this poll.
        let event = poll_fn(|cx| {
            let mut first_pass = true;
            loop {
                // the shutdown signal and the abort deadline must not be starved
                // by a client that keeps opening streams: they are looked at on
                // every wakeup (the signal's waiter is registered with this task,
                // so a signal sent meanwhile wakes it again)
                if std::mem::take(&mut first_pass)
                    && !going_away
                    && shutdown_signal.poll(cx).is_ready()
                {
                    return Poll::Ready(ConnEvent::Shutdown);
                }
                if let Some(deadline) = abort_deadline.as_mut() {
                    if deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(ConnEvent::Closed);
                    }
                }
                poll_streams(&mut streams, cx);
                let mut session = match ready!(conn.poll_session(cx, &digest, &resets)) {
                    Ok(Some(session)) => session,
                    Ok(None) => return Poll::Ready(ConnEvent::Closed),
                    Err(e) => return Poll::Ready(ConnEvent::Failed(e)),
                };
                // a stream cancelled before it started costs nothing more
                if !session.poll_client_reset() && abort_deadline.is_none() {
                    streams.push(run_stream(session));
                }
                if abort_deadline.is_none() && resets.exceeded() {
                    return Poll::Ready(ConnEvent::TooManyResets);
                }
            }
        })
        .await;
        match event {
            ConnEvent::Shutdown => {
                debug!("shutting down: GOAWAY to an HTTP/2 client");
                conn.go_away(false);
                going_away = true;
            }
            ConnEvent::TooManyResets => {
                warn!(
                    "HTTP/2 client reset more than {} streams in {:?}: GOAWAY",
                    limits.max_resets_per_window, limits.reset_window
                );
                conn.go_away(true);
                going_away = true;
                abort_deadline = Some(Box::pin(tokio::time::sleep(Duration::from_secs(1))));
            }
            ConnEvent::Closed => break,
            ConnEvent::Failed(e) => {
                debug!("HTTP/2 connection with a client ended: {e}");
                break;
            }
        }
    }
    // streams still running see the connection gone (their writes fail) and
    // end, as they did when they outlived the connection in their own tasks
    drop(conn);
    while let Some(done) = streams.next().await {
        log_panic(done);
    }
}

/// A downstream connection, served by our codec or by the `h2` crate.
enum Downstream {
    /// The `h2` crate's server, for apps that configure it.
    Crate {
        /// Boxed: the rare kind, and much larger than ours.
        conn: Box<h2_server::H2Connection<Stream>>,
        /// The connection's writes, gathered over each poll (see `WriteBatch`).
        batch: h2_server::WriteBatch,
        /// The `Host` value of the previous stream, shared with the next one.
        last_host: Option<http::HeaderValue>,
    },
    /// Our codec.
    Codec(h2_server::Connection),
}

impl Downstream {
    /// The next request, as a session; `Ok(None)` when the connection is over.
    fn poll_session(
        &mut self,
        cx: &mut Context<'_>,
        digest: &Arc<Digest>,
        resets: &Arc<ResetTracker>,
    ) -> Poll<pingora_error::Result<Option<h2_server::HttpSession>>> {
        match self {
            Downstream::Crate {
                conn,
                batch,
                last_host,
            } => {
                let Some((req, send_response)) =
                    ready!(h2_server::poll_accept_stream(conn, batch, cx))?
                else {
                    return Poll::Ready(Ok(None));
                };
                let mut session = h2_server::HttpSession::new_with_host(
                    req,
                    send_response,
                    digest.clone(),
                    last_host,
                );
                session.set_reset_tracker(resets.clone());
                Poll::Ready(Ok(Some(session)))
            }
            // the connection counts client resets itself
            Downstream::Codec(conn) => {
                let accepted = ready!(conn.poll_accept(cx))?;
                let session =
                    accepted.map(|a| h2_server::HttpSession::from_codec(a, digest.clone()));
                Poll::Ready(Ok(session))
            }
        }
    }

    /// GOAWAY: graceful (open streams finish), or for an abusive client.
    fn go_away(&mut self, abuse: bool) {
        match (self, abuse) {
            (Downstream::Crate { conn, .. }, false) => conn.graceful_shutdown(),
            (Downstream::Crate { conn, .. }, true) => {
                conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM)
            }
            (Downstream::Codec(conn), false) => conn.go_away(ErrorCode::NO_ERROR),
            (Downstream::Codec(conn), true) => conn.go_away(ErrorCode::ENHANCE_YOUR_CALM),
        }
    }
}

/// The wait for the server's shutdown signal, polled on every wakeup of the
/// connection. Polling the wait itself takes the signal's waiter lock; once
/// it is registered with the task's waker, a look at the signal's version
/// tells whether it can have become ready, so it is only polled again when
/// the version moved or the task's waker is a different one.
struct ShutdownSignal<'a, F> {
    /// A receiver of the same signal that only reads the version.
    probe: ShutdownWatch,
    wait: Pin<&'a mut F>,
    /// The waker the wait was last polled with.
    registered: Option<Waker>,
}

impl<'a, F: Future> ShutdownSignal<'a, F> {
    fn new(shutdown: &ShutdownWatch, wait: Pin<&'a mut F>) -> Self {
        ShutdownSignal {
            probe: shutdown.clone(),
            wait,
            registered: None,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let same_waker = self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()));
        // `Err`: the sender is gone, which the wait reports (as a shutdown)
        if same_waker && matches!(self.probe.has_changed(), Ok(false)) {
            return Poll::Pending;
        }
        let ready = self.wait.as_mut().poll(cx).is_ready();
        if ready {
            self.registered = None;
            return Poll::Ready(());
        }
        if !same_waker {
            self.registered = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Poll the streams that were woken until none is ready.
fn poll_streams<F>(streams: &mut FuturesUnordered<F>, cx: &mut Context<'_>)
where
    F: Future<Output = std::thread::Result<Option<ReusedHttpStream>>>,
{
    while let Poll::Ready(Some(done)) = streams.poll_next_unpin(cx) {
        log_panic(done);
    }
}

/// An HTTP/2 stream is never reused as a connection; only a panic is of note.
fn log_panic(done: std::thread::Result<Option<ReusedHttpStream>>) {
    if done.is_err() {
        error!("an HTTP/2 stream panicked; the stream was dropped");
    }
}

/// Why [`serve_h2`]'s wait on its connection ended.
enum ConnEvent {
    /// The server is shutting down: time for a GOAWAY.
    Shutdown,
    /// The client reset too many streams.
    TooManyResets,
    /// The client closed the connection, the GOAWAY completed, or the time
    /// given to flush the GOAWAY to an abusive client ran out.
    Closed,
    Failed(Box<pingora_error::Error>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::tests::pair;
    use tokio::io::AsyncWriteExt;

    /// Answers 200 with the request path as the body, and panics on `/panic`.
    struct Echo;

    #[async_trait::async_trait]
    impl HttpServerApp for Echo {
        async fn process_new_http(
            self: &Arc<Self>,
            mut session: ServerSession,
            _shutdown: &ShutdownWatch,
        ) -> Option<ReusedHttpStream> {
            let path = session.req_header().uri.path().to_string();
            assert!(path != "/panic", "the app panics on /panic");
            let resp = pingora_http::ResponseHeader::build(200, None).expect("head");
            session.write_response_header(Box::new(resp)).await.ok()?;
            let body = bytes::Bytes::from(path);
            session.write_response_body(body, true).await.ok()?;
            let _ = session.finish().await;
            None
        }
    }

    #[tokio::test]
    async fn streams_share_the_connection_task_and_a_panic_ends_only_its_stream() {
        let (c, s) = pair().await;
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let app = Arc::new(Echo);
        let server = tokio::spawn(async move { serve_h2(&app, s, &rx).await });
        let (client, conn) = h2::client::handshake(c).await.expect("client handshake");
        tokio::spawn(conn);
        let mut client = client.ready().await.expect("ready");
        let mut sent = Vec::new();
        for path in ["/a", "/panic", "/b", "/c"] {
            let req = http::Request::get(format!("http://x{path}"))
                .body(())
                .expect("request");
            let (resp, _) = client.send_request(req, true).expect("send");
            sent.push((path, resp));
        }
        for (path, resp) in sent {
            let resp = resp.await;
            if path == "/panic" {
                assert!(resp.is_err(), "the panicking stream is reset");
                continue;
            }
            let mut body = resp.expect("response").into_body();
            let mut got = Vec::new();
            while let Some(chunk) = body.data().await {
                got.extend_from_slice(&chunk.expect("body"));
            }
            assert_eq!(got, path.as_bytes());
        }
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("connection task ends with the client")
            .expect("connection task did not panic");
    }

    /// Answers 200 with the request's `Host` header as the body.
    struct EchoHost;

    #[async_trait::async_trait]
    impl HttpServerApp for EchoHost {
        async fn process_new_http(
            self: &Arc<Self>,
            mut session: ServerSession,
            _shutdown: &ShutdownWatch,
        ) -> Option<ReusedHttpStream> {
            let hosts: Vec<_> = session
                .req_header()
                .headers
                .get_all("host")
                .iter()
                .collect();
            let body = bytes::Bytes::from(format!("{hosts:?}"));
            let resp = pingora_http::ResponseHeader::build(200, None).expect("head");
            session.write_response_header(Box::new(resp)).await.ok()?;
            session.write_response_body(body, true).await.ok()?;
            let _ = session.finish().await;
            None
        }
    }

    #[tokio::test]
    async fn each_stream_gets_the_host_of_its_own_authority() {
        let (c, s) = pair().await;
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let app = Arc::new(EchoHost);
        let server = tokio::spawn(async move { serve_h2(&app, s, &rx).await });
        let (client, conn) = h2::client::handshake(c).await.expect("client handshake");
        tokio::spawn(conn);
        let mut client = client.ready().await.expect("ready");
        let cases = [
            ("http://a.test/", None, r#"["a.test"]"#),
            ("http://a.test/", None, r#"["a.test"]"#),
            ("http://b.test:8080/", None, r#"["b.test:8080"]"#),
            // a `Host` the client sent is kept as it is
            ("http://a.test/", Some("A.test"), r#"["A.test"]"#),
            // one naming another target is refused (RFC 9113 §8.3.1), only
            // that stream
            ("http://a.test/", Some("c.test"), "refused"),
            ("http://a.test/", None, r#"["a.test"]"#),
        ];
        for (uri, host, want) in cases {
            let mut req = http::Request::get(uri);
            if let Some(h) = host {
                req = req.header("host", h);
            }
            let req = req.body(()).expect("request");
            let (resp, _) = client.send_request(req, true).expect("send");
            let resp = match resp.await {
                Err(e) if want == "refused" => {
                    assert_eq!(e.reason(), Some(h2::Reason::PROTOCOL_ERROR), "{e}");
                    continue;
                }
                other => other,
            };
            let mut body = resp.expect("response").into_body();
            let mut got = Vec::new();
            while let Some(chunk) = body.data().await {
                got.extend_from_slice(&chunk.expect("body"));
            }
            assert_eq!(String::from_utf8_lossy(&got), want, "{uri} {host:?}");
        }
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("connection task ends with the client")
            .expect("connection task did not panic");
    }

    #[tokio::test]
    async fn idle_connection_ends_on_shutdown() {
        let (c, s) = pair().await;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let app = Arc::new(Echo);
        let server = tokio::spawn(async move { serve_h2(&app, s, &rx).await });
        let (client, conn) = h2::client::handshake(c).await.expect("client handshake");
        tokio::spawn(conn);
        // one exchange first: the connection has waited for the signal
        // before and is idle (nothing else will wake it) when it comes
        let mut client = client.ready().await.expect("ready");
        let req = http::Request::get("http://x/a").body(()).expect("request");
        let (resp, _) = client.send_request(req, true).expect("send");
        let mut body = resp.await.expect("response").into_body();
        while let Some(chunk) = body.data().await {
            chunk.expect("body");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(true).expect("signal");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the connection ends after its GOAWAY")
            .expect("connection task did not panic");
        drop(client);
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
