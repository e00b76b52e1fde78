//! The [`ProxyHttp`] trait: the user's hooks into each phase of a proxied request.

use async_trait::async_trait;
use bytes::Bytes;
use http::header::HeaderMap;
use log::error;
use pingora_core::modules::http::HttpModules;
use pingora_core::protocols::Digest;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, Result, RetryType};
use pingora_http::{RequestHeader, ResponseHeader};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::proxy_common::error_status;
use crate::Session;

/// The future the default phases return: ready on its first poll with `F`'s value.
///
/// The phases are `async_trait` methods, whose `async` bodies are boxed futures: a heap block
/// per call even when the body does nothing. This one is zero-sized (`F` is a closure without
/// captures), and boxing a zero-sized value allocates nothing, so a proxy that keeps the
/// defaults pays no allocation for them on every request.
struct Ready<F>(F);

impl<T, F: Fn() -> T + Unpin> Future for Ready<F> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        Poll::Ready((self.0)())
    }
}

/// The programmable part of an HTTP proxy.
///
/// The proxy engine calls these methods, in the order they are declared below, for every request
/// it serves. Only [`ProxyHttp::new_ctx`] and [`ProxyHttp::upstream_peer`] have to be written:
/// every other phase has a default that lets the request through unchanged.
///
/// When a phase returns `Err`, the request stops there: [`ProxyHttp::fail_to_proxy`] decides the
/// error response, an error line is logged (unless [`ProxyHttp::suppress_error_log`] says not
/// to) and [`ProxyHttp::logging`] runs.
#[async_trait]
pub trait ProxyHttp {
    /// State kept for one request and handed to every phase of it.
    type CTX;

    /// Make the per-request state. Called once per request, before any phase.
    fn new_ctx(&self) -> Self::CTX;

    /// Add the HTTP modules (e.g. the gRPC-web bridge) every request of this proxy runs.
    /// Called once, when the proxy service is made.
    ///
    /// Module filters run after [`ProxyHttp::early_request_filter`] for the request header,
    /// before [`ProxyHttp::request_body_filter`] for each body piece, and after the
    /// response phases, right before the response is written. Each request's module
    /// instances are in `session.downstream_modules_ctx`.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    /// Choose the upstream server this request goes to.
    ///
    /// Called again for each retry, so an implementation may pick a different peer after a
    /// failure (the `ctx` is the same object across attempts).
    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>>;

    /// The very first phase, run as soon as the request header has been read and before
    /// [`ProxyHttp::request_filter`].
    fn early_request_filter<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _ctx: &'life2 mut Self::CTX,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'async_trait>>
    where
        Self::CTX: Send + Sync,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(Ready(|| Ok(())))
    }

    /// Inspect the request: validate, authenticate, rate limit, or answer it directly.
    ///
    /// Return `Ok(true)` when this phase has already written a complete response: the engine then
    /// stops processing (no upstream is contacted). `Ok(false)` continues to the next phase.
    fn request_filter<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _ctx: &'life2 mut Self::CTX,
    ) -> Pin<Box<dyn Future<Output = Result<bool>> + Send + 'async_trait>>
    where
        Self::CTX: Send + Sync,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(Ready(|| Ok(false)))
    }

    /// Decide, once the request passed [`ProxyHttp::request_filter`], whether it may go upstream.
    ///
    /// `Ok(true)` proxies it. `Ok(false)` stops: if this phase wrote no response itself, the
    /// engine answers `502 Bad Gateway`.
    fn proxy_upstream_filter<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _ctx: &'life2 mut Self::CTX,
    ) -> Pin<Box<dyn Future<Output = Result<bool>> + Send + 'async_trait>>
    where
        Self::CTX: Send + Sync,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(Ready(|| Ok(true)))
    }

    /// See or change one piece of the request body on its way upstream.
    ///
    /// Called once per chunk read from the client (never the whole body at once), and a last time
    /// with `end_of_stream` set. Setting `body` to `None` drops the chunk. Because it is async, a
    /// slow implementation throttles the upload.
    fn request_body_filter<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _body: &'life2 mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &'life3 mut Self::CTX,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'async_trait>>
    where
        Self::CTX: Send + Sync,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(Ready(|| Ok(())))
    }

    /// Change the request header sent upstream (for example its `Host` or path).
    ///
    /// `upstream_request` is a copy of the client's request with hop-by-hop headers already
    /// removed; the client's own header (`session.req_header()`) is left as it came.
    fn upstream_request_filter<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _upstream_request: &'life2 mut RequestHeader,
        _ctx: &'life3 mut Self::CTX,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'async_trait>>
    where
        Self::CTX: Send + Sync,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(Ready(|| Ok(())))
    }

    /// Change the response header as received from upstream, before
    /// [`ProxyHttp::response_filter`].
    fn upstream_response_filter<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _upstream_response: &'life2 mut ResponseHeader,
        _ctx: &'life3 mut Self::CTX,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'async_trait>>
    where
        Self::CTX: Send + Sync,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(Ready(|| Ok(())))
    }

    /// Change the response header right before it is written to the client.
    fn response_filter<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _upstream_response: &'life2 mut ResponseHeader,
        _ctx: &'life3 mut Self::CTX,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'async_trait>>
    where
        Self::CTX: Send + Sync,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(Ready(|| Ok(())))
    }

    /// See or change one piece of the response body as received from upstream.
    ///
    /// Runs before [`ProxyHttp::response_body_filter`] for the same chunk. A returned duration
    /// makes the engine pause that long before going on, which throttles the download.
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        Ok(None)
    }

    /// See or change the response trailers as received from upstream.
    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        _upstream_trailers: &mut HeaderMap,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        Ok(())
    }

    /// See or change one piece of the response body right before it is written to the client.
    ///
    /// A returned duration makes the engine pause that long after writing the chunk.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>>
    where
        Self::CTX: Send + Sync,
    {
        Ok(None)
    }

    /// See or change the response trailers before they go to the client.
    ///
    /// Returning `Ok(Some(bytes))` writes those bytes as the final piece of the response body
    /// instead of the trailers (useful for HTTP/1 clients, which rarely accept trailers).
    async fn response_trailer_filter(
        &self,
        _session: &mut Session,
        _upstream_trailers: &mut HeaderMap,
        _ctx: &mut Self::CTX,
    ) -> Result<Option<Bytes>>
    where
        Self::CTX: Send + Sync,
    {
        Ok(None)
    }

    /// The last phase: called exactly once per request, after the response was sent or the
    /// request failed (`e` is the failure). Meant for access logs and metrics; an error log line
    /// has already been written when `e` is set.
    fn logging<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _e: Option<&'life2 Error>,
        _ctx: &'life3 mut Self::CTX,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'async_trait>>
    where
        Self::CTX: Send + Sync,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(Ready(|| ()))
    }

    /// Return `true` to keep the engine from writing its error log line for `error`.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, _error: &Error) -> bool {
        false
    }

    /// Called when proxying fails after a connection to `peer` was established (or taken from the
    /// pool): the returned error is what the engine goes on with.
    ///
    /// Mark the error retryable (`e.set_retry(true)`) to have [`ProxyHttp::upstream_peer`] called
    /// again. The default names the peer and allows a retry only when the connection came from
    /// the pool (it may have been closed by the peer while idle) and the error allows it.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        _ctx: &mut Self::CTX,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let retry = e.retry_if_reused(client_reused) && session.request_body_replayable();
        e.retry = RetryType::Decided(retry);
        e
    }

    /// Called when connecting to `peer` failed: the returned error is what the engine goes on
    /// with.
    ///
    /// Mark it retryable (`e.set_retry(true)`) to have [`ProxyHttp::upstream_peer`] called again,
    /// for instance to pick another server. The default returns `e` unchanged.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut Self::CTX,
        e: Box<Error>,
    ) -> Box<Error> {
        e
    }

    /// Called once when the request failed for good: write an error response if the client can
    /// still get one.
    ///
    /// The default answers with the status the error implies (see [`FailToProxy`]) when no
    /// response header was written yet, and never lets the client connection be reused.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut Self::CTX,
    ) -> FailToProxy
    where
        Self::CTX: Send + Sync,
    {
        let mut code = error_status(e);
        if code > 0 {
            if session.response_written().is_some() {
                // Part of the response is already out: all we can do is cut the connection.
                code = 0;
            } else if is_grpc_request(session) {
                // A gRPC client cannot read an HTML error page: answer in gRPC terms.
                let resp = grpc_error_response(code, e);
                if let Err(write_err) = session.write_response_header(Box::new(resp), true).await {
                    error!("failed to send gRPC error response to downstream: {write_err}");
                }
            } else if let Err(write_err) = session.respond_error(code).await {
                error!("failed to send error response to downstream: {write_err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Called each time a connection to `peer` was established or taken from the pool
    /// (`reused`), with its file descriptor and timing/socket details. For logging and metrics.
    fn connected_to_upstream<'life0, 'life1, 'life2, 'life3, 'life4, 'async_trait>(
        &'life0 self,
        _session: &'life1 mut Session,
        _reused: bool,
        _peer: &'life2 HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        _digest: Option<&'life3 Digest>,
        _ctx: &'life4 mut Self::CTX,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'async_trait>>
    where
        Self::CTX: Send + Sync,
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        'life4: 'async_trait,
        Self: Sync + 'async_trait,
    {
        Box::pin(Ready(|| Ok(())))
    }

    /// A one-line description of the request, appended to the engine's error log lines.
    fn request_summary(&self, session: &Session, _ctx: &Self::CTX) -> String {
        session.as_ref().request_summary()
    }
}

/// Whether the client request is gRPC (HTTP/2 gRPC, or gRPC-web already bridged to it by
/// the gRPC-web module): its content type is `application/grpc[+codec|;params]`.
fn is_grpc_request(session: &Session) -> bool {
    let ct = session.get_header_bytes(http::header::CONTENT_TYPE);
    let grpc = b"application/grpc";
    ct.len() >= grpc.len()
        && ct[..grpc.len()].eq_ignore_ascii_case(grpc)
        && matches!(ct.get(grpc.len()), None | Some(b'+') | Some(b';'))
}

/// The gRPC status code for a failed request answered with HTTP status `http_status`, as the
/// gRPC HTTP-to-gRPC status mapping has it (UNAVAILABLE for a failing upstream).
pub(crate) fn grpc_status_for_http(http_status: u16) -> u8 {
    match http_status {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    }
}

/// A gRPC "trailers-only" error response: HTTP 200 whose header block carries `grpc-status`
/// and a percent-encoded `grpc-message`, with no body.
fn grpc_error_response(http_status: u16, e: &Error) -> ResponseHeader {
    let mut message = String::new();
    let text = format!("proxy error {http_status}: {}", e.etype().as_str());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            message.push(b as char);
        } else {
            message.push_str(&format!("%{b:02X}"));
        }
    }
    let mut resp = ResponseHeader::build(200, Some(3)).expect("200 is a valid status");
    // All three values are plain ASCII: inserting them cannot fail.
    let _ = resp.insert_header(http::header::CONTENT_TYPE, "application/grpc");
    let _ = resp.insert_header("grpc-status", grpc_status_for_http(http_status).to_string());
    let _ = resp.insert_header("grpc-message", message);
    resp
}

/// What [`ProxyHttp::fail_to_proxy`] did about a failed request.
///
/// The default status for an error: the code of an [`pingora_error::ErrorType::HTTPStatus`] error; 504 for an
/// upstream timeout; 502 for any other upstream failure; 400 for a malformed client request;
/// nothing (0) when the client connection itself broke; 500 otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailToProxy {
    /// The status sent to the client, or 0 if none was sent. Used in logs.
    pub error_code: u16,
    /// Whether the client connection may serve another request despite the error. Only
    /// honoured for failures before an upstream was chosen; the session's own keep-alive
    /// setting still has the last word.
    pub can_reuse_downstream: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    struct Defaults;

    #[async_trait]
    impl ProxyHttp for Defaults {
        type CTX = ();
        fn new_ctx(&self) {}

        async fn upstream_peer(&self, _s: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
            Ok(Box::new(HttpPeer::new("127.0.0.1:1", false, String::new())))
        }

        // overridden: an `async fn` of the implementation is boxed as usual
        async fn request_filter(&self, _s: &mut Session, _ctx: &mut ()) -> Result<bool> {
            Ok(true)
        }
    }

    /// The default phases run on every request: they must not allocate (a boxed zero-sized
    /// future does not), and still answer what the defaults mean.
    #[tokio::test]
    async fn default_phases_are_zero_sized_futures() {
        let (_client, server) = tokio::io::duplex(1024);
        let mut s = Session::new_h1(Box::new(server));
        let p = Defaults;
        let peer = HttpPeer::new("127.0.0.1:1", false, String::new());
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        let mut resp = ResponseHeader::build(200, None).expect("response");
        let mut body = None;
        let mut ctx = ();

        let f = p.early_request_filter(&mut s, &mut ctx);
        assert_eq!(std::mem::size_of_val(&*f), 0);
        assert!(f.await.is_ok());
        let f = p.proxy_upstream_filter(&mut s, &mut ctx);
        assert_eq!(std::mem::size_of_val(&*f), 0);
        assert!(f.await.expect("default"));
        let f = p.request_body_filter(&mut s, &mut body, true, &mut ctx);
        assert_eq!(std::mem::size_of_val(&*f), 0);
        assert!(f.await.is_ok());
        let f = p.upstream_request_filter(&mut s, &mut req, &mut ctx);
        assert_eq!(std::mem::size_of_val(&*f), 0);
        assert!(f.await.is_ok());
        let f = p.upstream_response_filter(&mut s, &mut resp, &mut ctx);
        assert_eq!(std::mem::size_of_val(&*f), 0);
        assert!(f.await.is_ok());
        let f = p.response_filter(&mut s, &mut resp, &mut ctx);
        assert_eq!(std::mem::size_of_val(&*f), 0);
        assert!(f.await.is_ok());
        let f = p.connected_to_upstream(&mut s, false, &peer, 0, None, &mut ctx);
        assert_eq!(std::mem::size_of_val(&*f), 0);
        assert!(f.await.is_ok());
        let f = p.logging(&mut s, None, &mut ctx);
        assert_eq!(std::mem::size_of_val(&*f), 0);
        f.await;

        // the override is what runs
        assert!(p.request_filter(&mut s, &mut ()).await.expect("filter"));
    }
}
