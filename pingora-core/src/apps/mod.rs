//! What a listening service runs for each accepted connection.
//!
//! * [`ServerApp`]: raw access to each connection ([`Stream`]);
//! * [`HttpServerApp`]: one HTTP session at a time; every `HttpServerApp` is
//!   a `ServerApp`;
//! * [`http_app::ServeHttp`]: just map a request to a response.

pub mod http_app;
pub mod prometheus_http_app;

use async_trait::async_trait;
use log::{debug, warn};
use std::sync::Arc;
use std::time::Duration;

use crate::protocols::http::v1::common::stream_digest;
use crate::protocols::http::v2::server::{self as h2_server, H2Options};
use crate::protocols::http::v2::{H2Limits, ResetTracker};
use crate::protocols::http::ServerSession;
use crate::protocols::{Stream, ALPN};
use crate::server::{ShutdownWatch, SHUTDOWN_IDLE_TIMEOUT};

/// The idle timeout (seconds) a new HTTP/1 connection starts with.
const DEFAULT_KEEPALIVE_SECS: u64 = 60;

/// The connection preface every HTTP/2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An application that handles whole connections (TCP, Unix socket, TLS).
#[async_trait]
pub trait ServerApp {
    /// Handle a newly accepted connection, or one returned by a previous
    /// call for reuse.
    ///
    /// Return `Some(stream)` when the connection can serve another round
    /// (e.g. HTTP keep-alive): it is passed to `process_new` again. Return
    /// `None` to close it. `shutdown` turns `true` when the server shuts
    /// down: finish the work in hand and return `None`.
    async fn process_new(
        self: &Arc<Self>,
        mut session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream>;

    /// Called once, after the service stopped accepting connections.
    async fn cleanup(&self) {}
}

/// Options of an HTTP server app.
#[non_exhaustive]
#[derive(Default, Debug, Clone)]
pub struct HttpServerOptions {
    /// Accept HTTP/2 over plain TCP (h2c, prior knowledge). A connection
    /// that starts with the HTTP/2 preface is served as HTTP/2, any other as
    /// HTTP/1.1, on the same port.
    pub h2c: bool,
    /// The most requests one HTTP/1 connection serves before it is closed
    /// (like nginx's `keepalive_requests`): closing long-lived connections
    /// now and then returns their per-connection memory. `None`: no limit.
    pub keepalive_request_limit: Option<u32>,
    /// Limits of HTTP/2 connections (streams, header list, windows,
    /// rapid-reset defence). [`HttpServerApp::h2_options`], when it returns
    /// settings, replaces the `h2` settings derived from these; the
    /// rapid-reset limit applies either way.
    pub h2_limits: H2Limits,
}

/// The keep-alive settings of an HTTP/1 session that carry over to the next
/// request on the same connection: the idle timeout and how many more
/// requests the connection may serve.
#[derive(Debug, Clone)]
pub struct HttpPersistentSettings {
    keepalive_timeout: Option<u64>,
    keepalive_reuses_remaining: Option<u32>,
}

impl HttpPersistentSettings {
    /// Capture the settings of `session` (call before finishing it).
    pub fn for_session(session: &ServerSession) -> Self {
        HttpPersistentSettings {
            keepalive_timeout: session.get_keepalive(),
            keepalive_reuses_remaining: session.get_keepalive_reuses_remaining(),
        }
    }

    /// Apply the captured settings to the next session on the connection;
    /// that session counts as one reuse.
    pub fn apply_to_session(self, session: &mut ServerSession) {
        session.set_keepalive(self.keepalive_timeout);
        session.set_keepalive_reuses_remaining(
            self.keepalive_reuses_remaining
                .map(|left| left.saturating_sub(1)),
        );
    }
}

/// A connection handed back by [`HttpServerApp::process_new_http`] for the
/// next request, with the settings to carry over to it.
#[derive(Debug)]
pub struct ReusedHttpStream {
    stream: Stream,
    persistent_settings: Option<HttpPersistentSettings>,
}

impl ReusedHttpStream {
    /// Wrap a reusable connection and, optionally, its persisted settings.
    pub fn new(stream: Stream, persistent_settings: Option<HttpPersistentSettings>) -> Self {
        ReusedHttpStream {
            stream,
            persistent_settings,
        }
    }

    /// Take the connection and its settings apart.
    pub fn consume(self) -> (Stream, Option<HttpPersistentSettings>) {
        (self.stream, self.persistent_settings)
    }
}

/// An application that handles HTTP sessions.
#[async_trait]
pub trait HttpServerApp {
    /// Handle one HTTP session (request and response).
    ///
    /// After a complete exchange, capture [`HttpPersistentSettings::for_session`]
    /// and return the connection from [`ServerSession::finish()`] wrapped in
    /// a [`ReusedHttpStream`] so the next request on it is served; return
    /// `None` when it is not reusable (errors, unread body, ...).
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream>;

    /// Options for each new connection; `None` for the defaults.
    fn server_options(&self) -> Option<&HttpServerOptions> {
        None
    }

    /// The `h2` settings of downstream HTTP/2 connections; `None` derives
    /// them from [`HttpServerOptions::h2_limits`].
    fn h2_options(&self) -> Option<H2Options> {
        None
    }

    /// Called once, after the service stopped accepting connections.
    async fn http_cleanup(&self) {}
}

/// How many times a preface that arrived only in part is peeked at again.
const PREFACE_PEEK_TRIES: usize = 50;

/// Whether the connection starts with the HTTP/2 preface. Waits for the
/// first bytes, and for more while what came is a strict prefix of the
/// preface (up to about half a second); `None` means the peer closed or the
/// read failed.
async fn starts_with_h2_preface(stream: &mut Stream) -> Option<bool> {
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
async fn serve_h2<T>(app: &Arc<T>, stream: Stream, shutdown: &ShutdownWatch)
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

/// During shutdown, whether the client of a kept-alive connection sends its
/// next request within [`SHUTDOWN_IDLE_TIMEOUT`]: one already on its way is
/// served (with `Connection: close`) rather than lost to the close. A stream
/// that cannot peek goes on to the app, whose read applies the same limit.
async fn next_request_arrives(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    // data, end of stream or "cannot peek": the app's read decides
    matches!(
        tokio::time::timeout(SHUTDOWN_IDLE_TIMEOUT, stream.try_peek(&mut byte)).await,
        Ok(Ok(_))
    )
}

/// The session of the first request on a new HTTP/1 connection.
fn first_h1_session<T: HttpServerApp + ?Sized>(app: &T, stream: Stream) -> ServerSession {
    let mut session = ServerSession::new_http1(stream);
    session.set_keepalive(Some(DEFAULT_KEEPALIVE_SECS));
    session.set_keepalive_reuses_remaining(
        app.server_options().and_then(|o| o.keepalive_request_limit),
    );
    session
}

/// The session of the next request on a kept-alive HTTP/1 connection.
fn reused_h1_session(stream: Stream, settings: Option<HttpPersistentSettings>) -> ServerSession {
    let mut session = ServerSession::new_http1(stream);
    if let Some(settings) = settings {
        settings.apply_to_session(&mut session);
    }
    session
}

#[async_trait]
impl<T> ServerApp for T
where
    T: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let h2c = self.server_options().is_some_and(|o| o.h2c);
        let h2 = stream.selected_alpn_proto() == Some(ALPN::H2)
            || (h2c && starts_with_h2_preface(&mut stream).await?);
        if h2 {
            // boxed so that the HTTP/1 connections' futures do not carry its size
            Box::pin(serve_h2(self, stream, shutdown)).await;
            return None;
        }
        // The sessions are made by plain functions and handed straight to `process_new_http`:
        // a session kept in a local would take its space in this future, which a keep-alive
        // connection holds while it waits.
        let mut next = self
            .process_new_http(first_h1_session(self.as_ref(), stream), shutdown)
            .await;
        while let Some(reused) = next {
            let (mut stream, settings) = reused.consume();
            if *shutdown.borrow() && !next_request_arrives(&mut stream).await {
                debug!("shutting down: closing an idle HTTP connection");
                return None;
            }
            next = self
                .process_new_http(reused_h1_session(stream, settings), shutdown)
                .await;
        }
        None
    }

    async fn cleanup(&self) {
        self.http_cleanup().await;
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
