//! The simplest way to write an HTTP server: map a request to a response.
//!
//! Implement [`ServeHttp`] and run it in a listening service, either directly
//! or wrapped in an [`HttpServer`] (which can carry [`HttpServerOptions`]):
//!
//! ```ignore
//! struct Hello;
//! #[async_trait]
//! impl ServeHttp for Hello {
//!     async fn response(&self, _s: &mut ServerSession) -> http::Response<Vec<u8>> {
//!         http::Response::new(b"hello".to_vec())
//!     }
//! }
//! let mut service = Service::new("hello".into(), HttpServer::new_app(Hello));
//! service.add_tcp("127.0.0.1:8080");
//! ```

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use http::{header, Method, Response, StatusCode};
use log::{debug, error, trace};
use pingora_error::ErrorType;
use pingora_http::ResponseHeader;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::apps::{HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream};
use crate::protocols::http::ServerSession;
use crate::server::{ShutdownWatch, SHUTDOWN_IDLE_TIMEOUT};

/// Seconds an idle keep-alive connection is kept open between requests.
const KEEPALIVE_TIMEOUT_SECS: u64 = 60;

/// Maps a request to a complete response.
#[async_trait]
pub trait ServeHttp {
    /// Produce the response to the request in `http_session`.
    ///
    /// The request header has been read; the body has not: read it from
    /// `http_session` if needed (what is left unread is discarded before the
    /// connection is reused). The whole response is built in memory, so this
    /// does not suit streaming; implement [`HttpServerApp`] for that.
    async fn response(&self, http_session: &mut ServerSession) -> Response<Vec<u8>>;
}

#[async_trait]
impl<SV> HttpServerApp for SV
where
    SV: ServeHttp + Send + Sync,
{
    async fn process_new_http(
        self: &Arc<Self>,
        http: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        serve(self.as_ref(), http, shutdown).await
    }
}

/// A [`ServeHttp`] app with HTTP server options.
pub struct HttpServer<SV> {
    app: SV,
    /// Options of the connections this server handles.
    pub server_options: Option<HttpServerOptions>,
}

impl<SV> HttpServer<SV> {
    /// Wrap `app`, with default options.
    pub fn new_app(app: SV) -> Self {
        HttpServer {
            app,
            server_options: None,
        }
    }

    /// The wrapped app.
    pub fn app(&self) -> &SV {
        &self.app
    }
}

#[async_trait]
impl<SV> HttpServerApp for HttpServer<SV>
where
    SV: ServeHttp + Send + Sync,
{
    async fn process_new_http(
        self: &Arc<Self>,
        http: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        serve(&self.app, http, shutdown).await
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.server_options.as_ref()
    }
}

/// Whether a response with this status may carry a body (RFC 9110 §6.4.1).
fn status_allows_body(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// Turn the app's response into a header, framing the body with
/// `Content-Length` when the app did not frame it, so that the connection
/// can be kept alive.
fn response_header(parts: http::response::Parts, body_len: usize) -> Option<ResponseHeader> {
    let framed = parts.headers.contains_key(header::CONTENT_LENGTH)
        || parts.headers.contains_key(header::TRANSFER_ENCODING);
    let allows_body = status_allows_body(parts.status);
    let mut resp: ResponseHeader = parts.into();
    if !framed && allows_body {
        if let Err(e) = resp.insert_header(header::CONTENT_LENGTH, body_len) {
            error!("cannot set Content-Length: {e}");
            return None;
        }
    }
    Some(resp)
}

/// Read the next request. Once shutdown starts, a client gets
/// [`SHUTDOWN_IDLE_TIMEOUT`] more to send it; `None` when it did not.
async fn read_request(
    http: &mut ServerSession,
    shutdown: &ShutdownWatch,
) -> Option<pingora_error::Result<bool>> {
    if !*shutdown.borrow() {
        let mut watch = shutdown.clone();
        let read = http.read_request();
        tokio::pin!(read);
        tokio::select! {
            biased;
            r = &mut read => return Some(r),
            _ = async {
                if watch.wait_for(|down| *down).await.is_err() {
                    // a closed watch never flips: just keep reading
                    std::future::pending::<()>().await;
                }
            } => {}
        }
        return tokio::time::timeout(SHUTDOWN_IDLE_TIMEOUT, read).await.ok();
    }
    tokio::time::timeout(SHUTDOWN_IDLE_TIMEOUT, http.read_request())
        .await
        .ok()
}

/// One request/response exchange; returns the connection when reusable.
async fn serve<SV>(
    app: &SV,
    mut http: ServerSession,
    shutdown: &ShutdownWatch,
) -> Option<ReusedHttpStream>
where
    SV: ServeHttp + Send + Sync + ?Sized,
{
    let Some(read) = read_request(&mut http, shutdown).await else {
        debug!("shutting down: closing an idle connection");
        return None;
    };
    match read {
        Ok(true) => {}
        Ok(false) => {
            debug!("connection closed before a request arrived");
            return None;
        }
        Err(e) => {
            let malformed = matches!(e.etype(), ErrorType::H1Error | ErrorType::InvalidHTTPHeader);
            if malformed {
                debug!("bad request from downstream: {e}");
                let _ = http.respond_error(400).await;
            } else {
                debug!("cannot read a request from downstream: {e}");
            }
            return None;
        }
    }
    // boxed: a connection waiting for its next request then only holds the read state
    Box::pin(respond(app, http, shutdown)).await
}

/// Answer the request just read from `http` with the app's response; returns the connection
/// when reusable.
async fn respond<SV>(
    app: &SV,
    mut http: ServerSession,
    shutdown: &ShutdownWatch,
) -> Option<ReusedHttpStream>
where
    SV: ServeHttp + Send + Sync + ?Sized,
{
    trace!("{:?}", http.req_header());
    // during shutdown, answer the request in hand and then close
    if *shutdown.borrow() {
        http.set_keepalive(None);
    } else if http.get_keepalive().is_none() {
        http.set_keepalive(Some(KEEPALIVE_TIMEOUT_SECS));
    }

    let response = match AssertUnwindSafe(app.response(&mut http))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(_) => {
            error!("the HTTP app panicked: {}", http.request_summary());
            http.set_keepalive(None);
            let _ = http.respond_error(500).await;
            // closes (lingering if the request body was left unread)
            let _ = http.finish().await;
            return None;
        }
    };
    if *shutdown.borrow() {
        // shutdown began while the app worked: tell the client to go away
        http.set_keepalive(None);
    }
    // leave the connection positioned at the next request
    let mut reusable = true;
    if let Err(e) = http.drain_request_body().await {
        debug!("cannot drain the request body, closing after this response: {e}");
        http.set_keepalive(None);
        reusable = false;
    }

    let (parts, body) = response.into_parts();
    let resp = response_header(parts, body.len())?;
    let head = http.req_header().method == Method::HEAD;
    if let Err(e) = http.write_response_header(Box::new(resp)).await {
        error!(
            "cannot write the response header: {e}, {}",
            http.request_summary()
        );
        return None;
    }
    if !body.is_empty() && !head {
        if let Err(e) = http.write_response_body(Bytes::from(body), true).await {
            error!(
                "cannot write the response body: {e}, {}",
                http.request_summary()
            );
            return None;
        }
    }
    let settings = HttpPersistentSettings::for_session(&http);
    match http.finish().await {
        Ok(stream) if reusable => stream.map(|s| ReusedHttpStream::new(s, Some(settings))),
        Ok(_) => None,
        Err(e) => {
            error!("cannot finish the response: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("valid").into_parts().0
    }

    #[test]
    fn unframed_body_gets_content_length() {
        let h = response_header(parts(200, &[]), 5).expect("header");
        assert_eq!(h.headers.get("content-length").expect("set"), "5");
        let h = response_header(parts(404, &[]), 0).expect("header");
        assert_eq!(h.headers.get("content-length").expect("set"), "0");
    }

    #[test]
    fn app_framing_is_kept() {
        let h = response_header(parts(200, &[("content-length", "3")]), 3).expect("header");
        assert_eq!(h.headers.get_all("content-length").iter().count(), 1);
        let h =
            response_header(parts(200, &[("transfer-encoding", "chunked")]), 3).expect("header");
        assert!(h.headers.get("content-length").is_none());
    }

    #[test]
    fn bodiless_statuses_get_no_length() {
        for status in [101, 204, 304] {
            let h = response_header(parts(status, &[]), 0).expect("header");
            assert!(h.headers.get("content-length").is_none(), "{status}");
        }
    }
}
