//! What a listening service runs for each accepted connection.
//!
//! * [`ServerApp`]: raw access to each connection ([`Stream`]);
//! * [`HttpServerApp`]: one HTTP session at a time; every `HttpServerApp` is
//!   a `ServerApp`;
//! * [`http_app::ServeHttp`]: just map a request to a response.

mod h2c;
pub mod http_app;
mod park;
pub mod prometheus_http_app;

use async_trait::async_trait;
use bytes::BytesMut;
use log::debug;
use pin_project_lite::pin_project;
use pingora_timeout::fast_timeout::FastTimeout;
use pingora_timeout::timer::TimerStub;
use pingora_timeout::ToTimeout;
use std::borrow::BorrowMut;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::protocols::http::v1::common::DEFAULT_IDLE_TIMEOUT;
use crate::protocols::http::v1::server::{read_first, HttpSession as SessionV1};
use crate::protocols::http::v2::server::H2Options;
use crate::protocols::http::v2::H2Limits;
use crate::protocols::http::ServerSession;
use crate::protocols::{Stream, ALPN};
use crate::server::{ShutdownWatch, SHUTDOWN_IDLE_TIMEOUT};
use h2c::{serve_h2, starts_with_h2_preface};
pub(crate) use park::ParkLot;
#[doc(hidden)]
pub use park::ServiceConn;
use park::{park, Carried, Parking, MIN_PARKED, PARK_AFTER};

/// The idle timeout (seconds) a new HTTP/1 connection starts with.
const DEFAULT_KEEPALIVE_SECS: u64 = 60;

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

    /// [`Self::process_new`] for a connection of a listening service, which counts it in
    /// `conn`. HTTP apps override it to park idle keep-alive connections (internal: the
    /// listening service calls it).
    #[doc(hidden)]
    async fn process_new_in_service(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
        conn: &mut ServiceConn,
    ) -> Option<Stream>
    where
        Self: Send + Sync,
    {
        let _ = conn;
        self.process_new(session, shutdown).await
    }
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
    /// Limits of HTTP/2 connections (streams, header list, windows, send
    /// buffer, rapid-reset defence), applied by our HTTP/2 codec. When
    /// [`HttpServerApp::h2_options`] returns settings, connections are
    /// served by the `h2` crate with those settings instead; the
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

    /// `h2` crate settings for downstream HTTP/2 connections. `None` (the
    /// default) serves them with our own codec, configured by
    /// [`HttpServerOptions::h2_limits`]; settings here serve them with the
    /// `h2` crate instead, for apps that tuned it.
    fn h2_options(&self) -> Option<H2Options> {
        None
    }

    /// Called once, after the service stopped accepting connections.
    async fn http_cleanup(&self) {}
}

/// Wake the HTTP/1 connections waiting for their next request when a service
/// starts shutting down (from [`ServerApp::cleanup`]); each one then checks its
/// own shutdown watch. Process-wide waiter lists instead of a watch
/// subscription per connection keep the waiting state small; sharded by
/// socket so that worker threads do not all queue on one lock.
static IDLE_WAKE: [Notify; IDLE_WAKE_SHARDS] = [const { Notify::const_new() }; IDLE_WAKE_SHARDS];
const IDLE_WAKE_SHARDS: usize = 16;

/// The waiter list of the connection `stream`.
fn idle_wake(stream: &Stream) -> &'static Notify {
    // the id is the socket's fd: spread evenly, and stable for the connection
    &IDLE_WAKE[stream.id().unsigned_abs() as usize % IDLE_WAKE_SHARDS]
}

/// What [`wait_for_request`] saw.
enum Waited {
    /// The first bytes of the next request.
    Request(BytesMut),
    /// The connection is to be closed: the client closed it or the read
    /// failed, nothing came within the idle limit, or the server is shutting
    /// down and nothing came within [`SHUTDOWN_IDLE_TIMEOUT`] (a request
    /// already on its way is still served, with `Connection: close`).
    Closed,
    /// Nothing came within [`PARK_AFTER`] (only when parking was asked for):
    /// time to park the connection.
    Park,
}

/// Wait for the first bytes of the next request on an HTTP/1 connection, for
/// at most `idle` (no limit when `None`); with `park`, for at most
/// [`PARK_AFTER`] when the connection may stay idle long enough to be worth
/// parking.
///
/// This is where a keep-alive connection spends its idle time, so it holds as
/// little as possible: the bytes land in a buffer on the stack of the poll
/// and are copied to a heap buffer of their size, the timer is a slot of the
/// shared coarse timer wheel, and the session with its buffers is only made
/// once the request is there.
fn wait_for_request<'a>(
    stream: &'a mut Stream,
    idle: Option<Duration>,
    shutdown: &'a ShutdownWatch,
    park: bool,
    timer: &'a mut Option<IdleTimer>,
    notified: Pin<&'a mut Notified<'static>>,
) -> WaitForRequest<'a> {
    // `notified` (of `idle_wake(stream)`) was made before the watch is read: a notice sent
    // in between still wakes it
    let shutting_down = *shutdown.borrow();
    // the park timer replaces the idle one: a busy connection still registers one timer
    let parks = park && !shutting_down && idle.is_none_or(|d| d >= PARK_AFTER + MIN_PARKED);
    let limit = if shutting_down {
        Some(SHUTDOWN_IDLE_TIMEOUT)
    } else if parks {
        Some(PARK_AFTER)
    } else {
        idle
    };
    WaitForRequest {
        stream,
        shutdown,
        notified,
        timer,
        deadline: limit.map(|limit| Instant::now() + limit),
        shutting_down,
        parks,
    }
}

/// The idle timer of a connection, kept from one wait for a request to the next: a slot of
/// the shared coarse timer wheel, and when it fires.
///
/// Arming a timer and taking it back (a lock each way on the wheel, waker clones, the slot's
/// reference count) for every request of a busy keep-alive connection cost more than the
/// rest of the wait. Instead, a timer that fires no later than the current wait's deadline
/// serves it: when it fires early (armed during an earlier wait), it is re-armed for the
/// rest, about once per idle limit on a connection that is never idle that long. Meanwhile
/// it stays registered with the connection's task, which may get one spurious wake-up.
struct IdleTimer {
    stub: TimerStub,
    fires: Instant,
}

impl IdleTimer {
    fn new(now: Instant, limit: Duration) -> Self {
        IdleTimer {
            stub: FastTimeout::create(limit).timeout(),
            fires: now + limit,
        }
    }
}

pin_project! {
    /// The future of [`wait_for_request`].
    struct WaitForRequest<'a> {
        stream: &'a mut Stream,
        shutdown: &'a ShutdownWatch,
        // Kept from one wait to the next like the timer: registering with the waiter list and
        // leaving it again (a lock each way) per request cost more than checking on it.
        notified: Pin<&'a mut Notified<'static>>,
        // the connection's timer, see `IdleTimer`
        timer: &'a mut Option<IdleTimer>,
        // when this wait ends without a request (`None`: no limit)
        deadline: Option<Instant>,
        shutting_down: bool,
        // the timer is the park timer
        parks: bool,
    }
}

impl Future for WaitForRequest<'_> {
    type Output = Waited;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.project();
        let mut buf = BytesMut::new();
        match read_first(me.stream, &mut buf, cx) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Waited::Closed),
            Poll::Ready(Ok(_)) => return Poll::Ready(Waited::Request(buf)),
            Poll::Ready(Err(e)) => {
                // common when the client closes a kept-alive connection
                debug!("read error while waiting for a request: {e}");
                return Poll::Ready(Waited::Closed);
            }
            Poll::Pending => {}
        }
        while !*me.shutting_down && me.notified.as_mut().poll(cx).is_ready() {
            if *me.shutdown.borrow() {
                debug!("shutting down: waiting briefly for a request on an idle connection");
                *me.shutting_down = true;
                *me.parks = false;
                *me.deadline = Some(Instant::now() + SHUTDOWN_IDLE_TIMEOUT);
            } else {
                // another service is shutting down: wait for the next notice
                me.notified.set(idle_wake(me.stream).notified());
            }
        }
        let Some(deadline) = *me.deadline else {
            return Poll::Pending;
        };
        let timer: &mut Option<IdleTimer> = me.timer;
        // a timer firing after the deadline would make this wait too long: replaced
        let mut fresh = false;
        if timer.as_ref().is_none_or(|t| t.fires > deadline) {
            let now = Instant::now();
            *timer = Some(IdleTimer::new(now, deadline.saturating_duration_since(now)));
            fresh = true;
        }
        loop {
            let Some(t) = timer.as_mut() else {
                return Poll::Pending;
            };
            if Pin::new(&mut t.stub).poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            // A fresh timer that fired is the deadline passing (or the wheel paused for a
            // fork, where every timer fires at once): re-arming it could spin.
            if fresh || now >= deadline {
                *timer = None;
                return Poll::Ready(match *me.parks {
                    true => Waited::Park,
                    false => Waited::Closed,
                });
            }
            // armed during an earlier wait: on for the rest of this one
            *timer = Some(IdleTimer::new(now, deadline - now));
            fresh = true;
        }
    }
}

/// The session of the first request on a new HTTP/1 connection.
fn first_h1_session<T: HttpServerApp + ?Sized>(
    app: &T,
    stream: Stream,
    preread: BytesMut,
) -> ServerSession {
    let mut session = SessionV1::new(stream);
    session.preload(preread);
    session.set_keepalive(Some(DEFAULT_KEEPALIVE_SECS));
    session.set_keepalive_reuses_remaining(
        app.server_options().and_then(|o| o.keepalive_request_limit),
    );
    ServerSession::H1(session)
}

/// The session of the next request on a kept-alive HTTP/1 connection.
fn reused_h1_session(
    stream: Stream,
    settings: Option<HttpPersistentSettings>,
    preread: BytesMut,
) -> ServerSession {
    let mut session = ServerSession::new_http1(stream);
    if let Some(settings) = settings {
        settings.apply_to_session(&mut session);
    }
    if let ServerSession::H1(s) = &mut session {
        s.preload(preread);
    }
    session
}

/// How long a kept-alive connection may wait for its next request, by the
/// settings carried over from its last session (as the session's own read
/// would apply them: no setting means the default idle timeout, `Some(0)` no
/// limit).
fn idle_limit(settings: Option<&HttpPersistentSettings>) -> Option<Duration> {
    match settings.and_then(|s| s.keepalive_timeout) {
        None => Some(DEFAULT_IDLE_TIMEOUT),
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(secs)),
    }
}

/// Serve a connection of an HTTP app until it is closed or parked.
///
/// `carried`: `None` for a connection that has not served a request yet, which is first
/// checked for HTTP/2 (ALPN, or the h2c preface where enabled); the settings carried over
/// from its last request for a resumed parked one. `conn`: the connection's count in its
/// listening service (which parking takes along), or [`ServiceConn::detached`].
///
/// Every idle keep-alive connection keeps this future (boxed) while it waits, so the
/// arguments double as the loop's state and the rare paths are boxed.
// not an `async fn`: see the body
#[allow(clippy::manual_async_fn)]
fn serve_http<'a, T, C>(
    app: &'a Arc<T>,
    mut stream: Stream,
    shutdown: &'a ShutdownWatch,
    mut conn: C,
    mut carried: Carried,
) -> impl Future<Output = Option<Stream>> + 'a
where
    T: HttpServerApp + Send + Sync + 'static,
    C: BorrowMut<ServiceConn> + 'a,
{
    // An async block rather than an `async fn`: that would keep a second copy of each
    // argument in the future, which every idle keep-alive connection holds.
    async move {
        if carried.is_none() {
            let h2c = app.server_options().is_some_and(|o| o.h2c);
            let h2 = stream.selected_alpn_proto() == Some(ALPN::H2)
                || (h2c && Box::pin(starts_with_h2_preface(&mut stream)).await?);
            if h2 {
                Box::pin(serve_h2(app, stream, shutdown)).await;
                return None;
            }
        }
        // A connection waits for each request in `wait_for_request`, holding just the
        // stream; the session is made once the request's first bytes are there, by plain
        // functions that hand it straight to `process_new_http` (a session kept in a local
        // would take its space in this future).
        // kept across the waits (see `IdleTimer`)
        let mut timer = None;
        let notified = idle_wake(&stream).notified();
        tokio::pin!(notified);
        let mut parking = if conn.borrow().can_park(&stream) {
            ParkState::Yes
        } else {
            ParkState::Never
        };
        loop {
            let mut idle = idle_of(&carried);
            if parking == ParkState::Refused {
                // it waited that long already before the lot refused it
                idle = idle.map(|d| d.saturating_sub(PARK_AFTER));
            }
            let wait = wait_for_request(
                &mut stream,
                idle,
                shutdown,
                parking == ParkState::Yes,
                &mut timer,
                notified.as_mut(),
            );
            let preread = match wait.await {
                Waited::Request(preread) => {
                    if parking == ParkState::Refused {
                        parking = ParkState::Yes;
                    }
                    preread
                }
                Waited::Closed => {
                    debug!("closing an idle HTTP connection");
                    return None;
                }
                Waited::Park => {
                    timer = None;
                    let left = idle_of(&carried).map(|d| d.saturating_sub(PARK_AFTER));
                    match park(app, shutdown, conn.borrow_mut(), stream, &mut carried, left) {
                        Parking::Parked | Parking::Closed => return None,
                        Parking::Kept(kept) => stream = kept,
                    }
                    // wait on (a second wait state here would enlarge the future)
                    parking = ParkState::Refused;
                    continue;
                }
            };
            let session = match carried.take() {
                None => first_h1_session(app.as_ref(), stream, preread),
                Some(settings) => reused_h1_session(stream, settings, preread),
            };
            let (next, settings) = app.process_new_http(session, shutdown).await?.consume();
            stream = next;
            carried = Some(settings);
        }
    }
}

/// Whether [`serve_http`] parks its connection when it stays idle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ParkState {
    /// Not a connection that can be parked.
    Never,
    /// Parked after [`PARK_AFTER`] without a request.
    Yes,
    /// The lot just refused it (shutting down, or the socket could not be watched): it waits
    /// out the rest of its idle time unparked, and is parked again after its next request.
    Refused,
}

/// How long a connection may wait for its next request: a new connection
/// ([`DEFAULT_KEEPALIVE_SECS`]), or as its last session's settings say.
fn idle_of(carried: &Carried) -> Option<Duration> {
    match carried {
        None => Some(Duration::from_secs(DEFAULT_KEEPALIVE_SECS)),
        Some(settings) => idle_limit(settings.as_ref()),
    }
}

/// The task of a parked connection whose client sent something: serve it as the
/// connection's old task would have.
async fn serve_resumed<T>(app: Arc<T>, shutdown: ShutdownWatch, resumed: park::Resumed)
where
    T: HttpServerApp + Send + Sync + 'static,
{
    let stream: Stream = match crate::protocols::l4::stream::Stream::from_parked(resumed.sock) {
        Ok(stream) => Box::new(stream),
        Err(e) => {
            debug!("could not resume a parked connection: {e}");
            return;
        }
    };
    let conn = ServiceConn::new(resumed.guard);
    serve_http(&app, stream, &shutdown, conn, resumed.carried).await;
}

#[async_trait]
impl<T> ServerApp for T
where
    T: HttpServerApp + Send + Sync + 'static,
{
    // Written out rather than as `async fn`: the box then holds `serve_http`'s state alone,
    // not also a wrapper's copy of the arguments (every idle connection keeps this box).
    fn process_new<'life0, 'life1, 'async_trait>(
        self: &'life0 Arc<Self>,
        stream: Stream,
        shutdown: &'life1 ShutdownWatch,
    ) -> Pin<Box<dyn Future<Output = Option<Stream>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(serve_http(
            self,
            stream,
            shutdown,
            ServiceConn::detached(),
            None,
        ))
    }

    fn process_new_in_service<'life0, 'life1, 'life2, 'async_trait>(
        self: &'life0 Arc<Self>,
        stream: Stream,
        shutdown: &'life1 ShutdownWatch,
        conn: &'life2 mut ServiceConn,
    ) -> Pin<Box<dyn Future<Output = Option<Stream>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: Send + Sync + 'async_trait,
    {
        Box::pin(serve_http(self, stream, shutdown, conn, None))
    }

    async fn cleanup(&self) {
        self.http_cleanup().await;
        for wake in &IDLE_WAKE {
            wake.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::l4::stream::Stream as L4Stream;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected client socket and the server side as a [`Stream`].
    pub(super) async fn pair() -> (TcpStream, Stream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let c = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (s, _) = l.accept().await.expect("accept");
        (c, Box::new(L4Stream::from(s)))
    }

    /// [`wait_for_request`] without parking, with a shutdown notice of its own.
    async fn wait(
        s: &mut Stream,
        idle: Option<Duration>,
        shutdown: &ShutdownWatch,
        timer: &mut Option<IdleTimer>,
    ) -> Waited {
        let notified = idle_wake(s).notified();
        tokio::pin!(notified);
        wait_for_request(s, idle, shutdown, false, timer, notified).await
    }

    #[tokio::test]
    async fn waiting_for_a_request_returns_its_first_bytes() {
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let (mut c, mut s) = pair().await;
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
            c
        });
        let got = wait(&mut s, Some(Duration::from_secs(5)), &shutdown, &mut None).await;
        let Waited::Request(got) = got else {
            panic!("no request");
        };
        assert_eq!(&got[..], b"GET / HTTP/1.1\r\n");
        drop(writer.await);
    }

    #[tokio::test]
    async fn waiting_for_a_request_ends_on_close_and_idle_timeout() {
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let (c, mut s) = pair().await;
        drop(c);
        assert!(matches!(
            wait(&mut s, None, &shutdown, &mut None).await,
            Waited::Closed
        ));

        let (_c, mut s) = pair().await;
        let start = std::time::Instant::now();
        let idle = Duration::from_millis(50);
        assert!(matches!(
            wait(&mut s, Some(idle), &shutdown, &mut None).await,
            Waited::Closed
        ));
        assert!(start.elapsed() >= idle);
    }

    #[tokio::test]
    async fn a_kept_idle_timer_firing_early_does_not_cut_the_next_wait_short() {
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let (mut c, mut s) = pair().await;
        let mut timer = None;
        // the first wait arms the connection's timer for 300 ms from now, and ends early
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
            c
        });
        let first = Duration::from_millis(300);
        let got = wait(&mut s, Some(first), &shutdown, &mut timer).await;
        assert!(matches!(got, Waited::Request(_)));
        assert!(timer.is_some(), "the timer is kept for the next wait");
        let _c = writer.await.expect("writer");
        // the next wait reuses it: it fires ~280 ms in, before this wait's limit
        let start = std::time::Instant::now();
        let idle = Duration::from_millis(400);
        let got = wait(&mut s, Some(idle), &shutdown, &mut timer).await;
        assert!(matches!(got, Waited::Closed));
        let waited = start.elapsed();
        assert!(waited >= idle, "{waited:?}");
        assert!(waited < idle * 3, "{waited:?}");
        assert!(timer.is_none(), "a timer that ended a wait is not kept");
    }

    #[tokio::test]
    async fn waiting_for_a_request_ends_soon_after_shutdown() {
        let (tx, shutdown) = tokio::sync::watch::channel(false);
        let (_c, mut s) = pair().await;
        let notice = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(true).expect("send");
            for wake in &IDLE_WAKE {
                wake.notify_waiters();
            }
            tx
        });
        let start = std::time::Instant::now();
        // no idle limit: only the shutdown ends the wait
        assert!(matches!(
            wait(&mut s, None, &shutdown, &mut None).await,
            Waited::Closed
        ));
        let waited = start.elapsed();
        assert!(waited >= SHUTDOWN_IDLE_TIMEOUT, "{waited:?}");
        assert!(waited < SHUTDOWN_IDLE_TIMEOUT * 3, "{waited:?}");
        drop(notice.await);
    }

    /// Answers every request with an empty 200.
    struct Empty;

    #[async_trait]
    impl http_app::ServeHttp for Empty {
        async fn response(&self, _http: &mut ServerSession) -> http::Response<Vec<u8>> {
            http::Response::new(Vec::new())
        }
    }

    #[tokio::test]
    async fn waiting_connection_futures_are_small() {
        // every idle keep-alive connection keeps this future (its largest state) until it is
        // parked; an `async fn` layer or a second wait state would add 40-100 B to it. (The
        // idle timer and shutdown notice kept across waits take 16 B more than per-wait ones,
        // for about 1,000 fewer instructions-equivalent per request, see `IdleTimer`.)
        let app = Arc::new(http_app::HttpServer::new_app(Empty));
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let (_c, s) = pair().await;
        let fut = app.process_new(s, &shutdown);
        let detached = std::mem::size_of_val(&*fut);
        drop(fut);
        let (_c, s) = pair().await;
        let mut conn = ServiceConn::detached();
        let fut = app.process_new_in_service(s, &shutdown, &mut conn);
        let in_service = std::mem::size_of_val(&*fut);
        drop(fut);
        eprintln!("process_new: {detached} B, process_new_in_service: {in_service} B");
        assert!(detached <= 248, "{detached} B");
        assert!(in_service <= 248, "{in_service} B");
    }
}
