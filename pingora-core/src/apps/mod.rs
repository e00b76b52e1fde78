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

use crate::protocols::http::ServerSession;
use crate::protocols::Stream;
use crate::server::ShutdownWatch;

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
    /// Accept HTTP/2 over plain TCP (h2c, prior knowledge). HTTP/2 support
    /// is not there yet: with this set, connections that start with the
    /// HTTP/2 preface are closed instead of being misread as HTTP/1.
    pub h2c: bool,
    /// The most requests one HTTP/1 connection serves before it is closed
    /// (like nginx's `keepalive_requests`): closing long-lived connections
    /// now and then returns their per-connection memory. `None`: no limit.
    pub keepalive_request_limit: Option<u32>,
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

    /// Called once, after the service stopped accepting connections.
    async fn http_cleanup(&self) {}
}

/// Whether the connection starts with the HTTP/2 preface. Waits for the
/// first bytes; `None` means the peer closed or the read failed.
async fn starts_with_h2_preface(stream: &mut Stream) -> Option<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    match stream.try_peek(&mut buf).await {
        // a stream that cannot peek is served as HTTP/1
        Ok(peeked) => Some(peeked && buf == H2_PREFACE),
        Err(e) => {
            // common when a reused HTTP/1 connection is closed by the client
            debug!("read error while peeking for the h2c preface: {e}");
            None
        }
    }
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
        if h2c && starts_with_h2_preface(&mut stream).await? {
            warn!("HTTP/2 (h2c) connection refused: HTTP/2 is not supported yet");
            return None;
        }
        let mut session = ServerSession::new_http1(stream);
        session.set_keepalive(Some(DEFAULT_KEEPALIVE_SECS));
        session.set_keepalive_reuses_remaining(
            self.server_options()
                .and_then(|o| o.keepalive_request_limit),
        );
        // serve the requests of this connection one after the other
        let mut next = self.process_new_http(session, shutdown).await;
        while let Some(reused) = next {
            if *shutdown.borrow() {
                debug!("shutting down: closing a reusable HTTP connection");
                return None;
            }
            let (stream, settings) = reused.consume();
            let mut session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
            next = self.process_new_http(session, shutdown).await;
        }
        None
    }

    async fn cleanup(&self) {
        self.http_cleanup().await;
    }
}
