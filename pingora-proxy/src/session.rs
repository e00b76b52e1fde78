//! [`Session`]: one proxied request as the [`crate::ProxyHttp`] phases see it.

use bytes::Bytes;
use http::HeaderMap;
use pingora_core::modules::http::HttpModuleCtx;
use pingora_core::protocols::http::{HttpTask, ServerSession as HttpSession};
use pingora_core::protocols::Stream;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One request being proxied: the client (downstream) HTTP session plus what the proxy engine
/// records about it.
///
/// It dereferences to the downstream [`HttpSession`], so its methods (`req_header()`,
/// `req_header_mut()`, `read_request_body()`, `get_header()`, `client_addr()`,
/// `set_keepalive()`, `response_written()`, ...) are available directly on the session.
pub struct Session {
    /// The HTTP session with the client.
    pub downstream_session: Box<HttpSession>,
    /// Response body bytes received from upstream for this request.
    upstream_body_bytes_received: usize,
    /// Set when the service began shutting down.
    shutdown_flag: Arc<AtomicBool>,
    /// This request's instances of the service's HTTP modules (see
    /// `ProxyHttp::init_downstream_modules`); their response filters run inside the
    /// `write_response_*` methods below.
    pub downstream_modules_ctx: HttpModuleCtx,
}

impl Session {
    pub(crate) fn new(
        downstream_session: Box<HttpSession>,
        shutdown_flag: Arc<AtomicBool>,
    ) -> Self {
        Session {
            downstream_session,
            upstream_body_bytes_received: 0,
            shutdown_flag,
            downstream_modules_ctx: HttpModuleCtx::empty(),
        }
    }

    /// Make a session over an HTTP/1 client connection `stream`, mostly for tests and mocks.
    /// The request header still has to be read (`read_request()`).
    pub fn new_h1(stream: Stream) -> Self {
        Self::new(
            Box::new(HttpSession::new_http1(stream)),
            Arc::new(AtomicBool::new(false)),
        )
    }

    /// The client-side HTTP session.
    pub fn as_downstream(&self) -> &HttpSession {
        &self.downstream_session
    }

    /// The client-side HTTP session, mutably.
    pub fn as_downstream_mut(&mut self) -> &mut HttpSession {
        &mut self.downstream_session
    }

    /// Answer the client with a bodiless response of status `error`.
    pub async fn respond_error(&mut self, error: u16) -> Result<()> {
        self.downstream_session.respond_error(error).await
    }

    /// Answer the client with a response of status `error` carrying `body`.
    pub async fn respond_error_with_body(&mut self, error: u16, body: Bytes) -> Result<()> {
        self.downstream_session
            .respond_error_with_body(error, body)
            .await
    }

    /// Write `resp` to the client; `end_of_stream` says the response has no body to follow.
    pub async fn write_response_header(
        &mut self,
        mut resp: Box<ResponseHeader>,
        end_of_stream: bool,
    ) -> Result<()> {
        if !self.downstream_modules_ctx.is_empty() {
            self.downstream_modules_ctx
                .response_header_filter(&mut resp, end_of_stream)
                .await?;
        }
        if end_of_stream && self.downstream_session.is_http2() {
            // One HEADERS frame carrying END_STREAM: a gRPC "trailers-only" answer (status in
            // the header block) is only read as such when nothing follows it.
            self.downstream_session
                .response_duplex_vec(vec![HttpTask::Header(resp, true)])
                .await?;
            return Ok(());
        }
        self.downstream_session.write_response_header(resp).await?;
        if end_of_stream {
            self.downstream_session.finish_body().await?;
        }
        Ok(())
    }

    /// Like [`Session::write_response_header`], for a header the caller keeps (it is copied).
    pub async fn write_response_header_ref(
        &mut self,
        resp: &ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        self.write_response_header(Box::new(resp.clone()), end_of_stream)
            .await
    }

    /// Write a piece of response body to the client. `None` with `end_of_stream` unset is a
    /// no-op; `end_of_stream` ends the response.
    pub async fn write_response_body(
        &mut self,
        mut body: Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        if !self.downstream_modules_ctx.is_empty() {
            self.downstream_modules_ctx
                .response_body_filter(&mut body, end_of_stream)?;
        }
        match body {
            Some(data) if !data.is_empty() => {
                self.downstream_session
                    .write_response_body(data, end_of_stream)
                    .await
            }
            _ if end_of_stream => self.downstream_session.finish_body().await,
            _ => Ok(()),
        }
    }

    /// End the response with `trailers`. The HTTP modules may turn them into a last piece of
    /// body instead (e.g. the gRPC-web bridge); otherwise they are sent as trailers where the
    /// client connection can carry them (a chunked HTTP/1.1 body, HTTP/2) and dropped where
    /// it cannot.
    pub async fn write_response_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        let mut trailers = Some(Box::new(trailers));
        if !self.downstream_modules_ctx.is_empty() {
            if let Some(tail) = self
                .downstream_modules_ctx
                .response_trailer_filter(&mut trailers)?
            {
                return self
                    .downstream_session
                    .write_response_body(tail, true)
                    .await;
            }
        }
        match trailers {
            Some(t) => self.downstream_session.write_response_trailers(*t).await,
            None => self.downstream_session.finish_body().await,
        }
    }

    /// Write a batch of response tasks (header, body pieces, trailers, end) to the client.
    /// Returns whether the response is complete.
    /// The HTTP modules' response filters run on each task first (trailers they fold into
    /// the body become a last body piece).
    pub async fn write_response_tasks(&mut self, mut tasks: Vec<HttpTask>) -> Result<bool> {
        if !self.downstream_modules_ctx.is_empty() {
            for task in tasks.iter_mut() {
                self.module_filter_task(task).await?;
            }
        }
        self.downstream_session.response_duplex_vec(tasks).await
    }

    /// Run the HTTP modules' response filter matching `task` on it.
    async fn module_filter_task(&mut self, task: &mut HttpTask) -> Result<()> {
        let modules = &mut self.downstream_modules_ctx;
        match task {
            HttpTask::Header(resp, end) => modules.response_header_filter(resp, *end).await,
            HttpTask::Body(body, end) => modules.response_body_filter(body, *end),
            HttpTask::Trailer(trailers) => {
                if let Some(tail) = modules.response_trailer_filter(trailers)? {
                    *task = HttpTask::Body(Some(tail), true);
                }
                Ok(())
            }
            HttpTask::Done => {
                if let Some(tail) = modules.response_done_filter()? {
                    *task = HttpTask::Body(Some(tail), true);
                }
                Ok(())
            }
            HttpTask::Failed(_) => Ok(()),
        }
    }

    /// Response body bytes received from upstream for this request so far.
    pub fn upstream_body_bytes_received(&self) -> usize {
        self.upstream_body_bytes_received
    }

    pub(crate) fn add_upstream_body_bytes_received(&mut self, n: usize) {
        self.upstream_body_bytes_received += n;
    }

    /// Whether the service this request belongs to is shutting down.
    pub fn is_process_shutting_down(&self) -> bool {
        self.shutdown_flag.load(Ordering::Acquire)
    }

    /// Whether the request could still be sent (again) to an upstream: true unless part of its
    /// body was already streamed out and no longer fits the session's retry buffer.
    pub fn request_body_replayable(&self) -> bool {
        !self.downstream_session.retry_buffer_truncated()
    }
}

impl AsRef<HttpSession> for Session {
    fn as_ref(&self) -> &HttpSession {
        &self.downstream_session
    }
}

impl AsMut<HttpSession> for Session {
    fn as_mut(&mut self) -> &mut HttpSession {
        &mut self.downstream_session
    }
}

impl Deref for Session {
    type Target = HttpSession;

    fn deref(&self) -> &Self::Target {
        &self.downstream_session
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.downstream_session
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn session_reads_request_and_writes_response() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut session = Session::new_h1(Box::new(server));
        client
            .write_all(
                b"POST /p?x=1 HTTP/1.1\r\nHost: s.test\r\nX-A: b\r\nContent-Length: 3\r\n\r\nabc",
            )
            .await
            .expect("write request");
        assert!(session.read_request().await.expect("request read"));
        assert_eq!(session.req_header().uri.path(), "/p");
        assert_eq!(
            session.get_header("x-a").map(|v| v.as_bytes()),
            Some(&b"b"[..])
        );
        assert_eq!(session.get_header_bytes("host"), b"s.test");
        assert!(!session.is_upgrade_req());
        session
            .req_header_mut()
            .insert_header("X-Added", "1")
            .expect("header");
        assert!(session.as_downstream().get_header("x-added").is_some());
        assert_eq!(
            session.read_request_body().await.expect("body"),
            Some(Bytes::from_static(b"abc"))
        );
        assert!(session.request_body_replayable());
        assert!(session.response_written().is_none());

        let mut resp = ResponseHeader::build(201, None).expect("response");
        resp.insert_header("Content-Length", "2").expect("header");
        session
            .write_response_header(Box::new(resp), false)
            .await
            .expect("header written");
        // A `None` piece that does not end the body writes nothing.
        session
            .write_response_body(None, false)
            .await
            .expect("no-op");
        session
            .write_response_body(Some(Bytes::from_static(b"ok")), true)
            .await
            .expect("body written");
        assert_eq!(
            session.response_written().map(|r| r.status.as_u16()),
            Some(201)
        );
        drop(session);
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.expect("read response");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 201"), "{text}");
        assert!(text.ends_with("\r\n\r\nok"), "{text}");
    }

    #[tokio::test]
    async fn respond_error_writes_status() {
        let (mut client, server) = tokio::io::duplex(4096);
        let mut session = Session::new_h1(Box::new(server));
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: s.test\r\n\r\n")
            .await
            .expect("write request");
        assert!(session.read_request().await.expect("request read"));
        session
            .respond_error_with_body(418, Bytes::from_static(b"teapot"))
            .await
            .expect("error response");
        assert!(!session.is_process_shutting_down());
        drop(session);
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.expect("read response");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 418"), "{text}");
        assert!(text.ends_with("teapot"), "{text}");
    }

    #[tokio::test]
    async fn response_tasks_go_through_http_modules() {
        use pingora_core::modules::http::grpc_web::{GrpcWeb, GrpcWebBridge};
        use pingora_core::modules::http::HttpModules;

        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut session = Session::new_h1(Box::new(server));
        let mut modules = HttpModules::new();
        modules.add_module(Box::new(GrpcWeb));
        session.downstream_modules_ctx = modules.build_ctx();
        client
            .write_all(
                b"POST /s/M HTTP/1.1\r\nHost: g\r\nContent-Type: application/grpc-web\r\n\
                  Content-Length: 0\r\n\r\n",
            )
            .await
            .expect("write request");
        assert!(session.read_request().await.expect("request read"));
        session
            .downstream_modules_ctx
            .get_mut::<GrpcWebBridge>()
            .expect("module added")
            .init();
        let req = session.downstream_session.req_header_mut();
        session
            .downstream_modules_ctx
            .request_header_filter(req)
            .await
            .expect("request filter");
        assert_eq!(
            session.req_header().headers["content-type"],
            "application/grpc"
        );

        let mut resp = ResponseHeader::build(200, None).expect("response");
        resp.insert_header("content-type", "application/grpc")
            .expect("header");
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().expect("value"));
        let done = session
            .write_response_tasks(vec![
                HttpTask::Header(Box::new(resp), false),
                HttpTask::Body(Some(Bytes::from_static(b"\0\0\0\0\x01A")), false),
                HttpTask::Trailer(Some(Box::new(trailers))),
            ])
            .await
            .expect("tasks written");
        assert!(done);
        drop(session);
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.expect("read response");
        let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
        assert!(
            text.contains("content-type: application/grpc-web\r\n"),
            "{text}"
        );
        assert!(text.contains("transfer-encoding: chunked"), "{text}");
        // the message frame, then the trailer frame as body bytes, then the last chunk
        let frames = b"\0\0\0\0\x01A\x80\0\0\0\x10grpc-status: 0\r\n";
        assert!(out.windows(frames.len()).any(|w| w == frames), "{text}");
        assert!(text.ends_with("0\r\n\r\n"), "{text}");
    }
}
